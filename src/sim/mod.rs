//! The embedded ECS simulator.
//!
//! AWS cannot be reached from a developer's machine or CI, and moto stores ECS
//! objects but never runs a service. This simulator speaks the real wire
//! protocols (ECS and CloudWatch Logs, AWS JSON 1.1) so that the AWS SDK and
//! the AWS CLI reach it through `--endpoint-url`, runs services like ECS does
//! (rolling deployments, health checks, the circuit breaker, service deployments
//! and their rollback, the task sets of the EXTERNAL controller), and makes every
//! RUNNING task a real HTTPS fake ActiveGate on its own loopback address.
//!
//! Only the `sim` and `demo` commands and tests use it; production code never does.

pub mod activegate;
mod api;
pub mod clock;
mod control;
pub mod dynatrace;
mod ecs;
pub mod engine;
mod logs;
pub mod registry;
mod server;
pub mod state;
mod sts;
pub mod throttle;
pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use dynatrace::{ApiFault, Registration};
pub use engine::Delays;
pub use state::{Behaviour, Fault, Health, IssuedKey, Mode, TimelineEvent, WriteCall};

use clock::Clock;
use state::{State, TaskStatus};
use tls::Authority;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Address of the AWS endpoint and control API (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Where the CA certificate is written (default: a fresh temporary folder, removed
    /// again when the simulator is shut down or its handle dropped; a folder given here is
    /// left in place).
    pub state_dir: Option<PathBuf>,
    pub region: String,
    pub account: String,
    pub delays: Delays,
    /// Real time between two steps of the engine.
    pub tick: Duration,
    /// ECS's request throttling: ECS calls draw from ECS's token buckets (see [`throttle`])
    /// and an empty bucket answers `ThrottlingException`. Buckets refill on real time, not
    /// on the simulated clock (`speed`), since the client budgets they check run in real
    /// time. Off by default: scenario tests make bursts of calls ECS would throttle.
    pub ecs_rate_limits: bool,
    /// ECS and CloudWatch Logs calls must be signed with an access key this simulator
    /// issued (STS AssumeRole at its endpoint); any other key is refused with
    /// `UnrecognizedClientException`, as AWS refuses a key it does not know.
    pub require_assumed_role: bool,
    /// Calls whose SigV4 credential scope names another region than `region` are refused
    /// (`InvalidSignatureException`), as a regional AWS endpoint refuses them.
    pub check_region: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4566)),
            speed: 1.0,
            state_dir: None,
            region: "us-east-1".into(),
            account: "123456789012".into(),
            delays: Delays::default(),
            tick: Duration::from_millis(10),
            ecs_rate_limits: false,
            require_assumed_role: false,
            check_region: false,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the CA certificate to {path}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the speed must be a positive number, not {0}")]
    Speed(f64),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// What the server, the engine and the fake ActiveGates share.
pub struct Shared {
    state: Mutex<State>,
    clock: Clock,
    ca: Authority,
    rogue_ca: Authority,
    options: SimOptions,
    /// While set, no fake ActiveGate answers a probe (the path from the prober to the tasks
    /// is cut, or the prober is too slow): probes time out, ECS sees its tasks healthy.
    unreachable: std::sync::atomic::AtomicBool,
    /// ECS's token buckets, used when `options.ecs_rate_limits` is on. A lock of their own,
    /// taken inside the state's lock (a call is counted and drawn in one step) and never the
    /// other way round.
    buckets: Mutex<throttle::Buckets>,
}

impl Shared {
    /// The state. A panic while holding the lock cannot leave it half-changed
    /// in a way that matters to a simulator, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refill_buckets(&self) {
        *self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            throttle::Buckets::new(std::time::Instant::now());
    }

    /// Takes a token of ECS operation `op`'s bucket now; false when the bucket is empty.
    /// Always true unless `ecs_rate_limits` is on.
    fn take_token(&self, op: &str) -> bool {
        if !self.options.ecs_rate_limits {
            return true;
        }
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(op, std::time::Instant::now())
    }

    fn set_image(&self, image: &str, b: Behaviour) {
        let mut st = self.lock();
        st.images.insert(image.to_owned(), b);
        let now = self.clock.now();
        st.record(now, "image-behaviour", image, format!("{:?}", b.mode));
    }

    fn set_registration(&self, image: &str, registration: Registration) {
        let now = self.clock.now();
        let mut st = self.lock();
        st.record(
            now,
            "dynatrace-registration",
            image,
            format!("{registration:?}"),
        );
        st.registrations.insert(image.to_owned(), registration);
    }

    fn set_dynatrace_fault(&self, fault: Option<ApiFault>) {
        let now = self.clock.now();
        let mut st = self.lock();
        st.record(now, "dynatrace-fault", "activeGates", format!("{fault:?}"));
        st.dynatrace_fault = fault;
    }

    /// What the fake ActiveGate of this task answers now.
    fn health_of(&self, task_id: &str) -> Option<Health> {
        let st = self.lock();
        let t = st.tasks.get(task_id)?;
        if t.status != TaskStatus::Running || !t.desired_running {
            return None;
        }
        let age = self.clock.now() - t.started_at?;
        Some(
            t.behaviour
                .health(age, self.options.delays.activegate_start),
        )
    }
}

/// The simulator, started.
pub struct Sim;

impl Sim {
    /// Starts the endpoint and the engine on the current tokio runtime.
    pub async fn start(options: SimOptions) -> Result<SimHandle, SimError> {
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(SimError::Speed(options.speed));
        }
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| SimError::Listen {
                    addr: options.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| SimError::Listen {
            addr: options.listen,
            source,
        })?;
        let ca = Authority::new("activegate-lifecycle simulator CA")?;
        let rogue_ca = Authority::new("untrusted CA")?;
        let dir = options.state_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "activegate-lifecycle-sim-{}-{}",
                std::process::id(),
                addr.port()
            ))
        });
        let ca_path = dir.join("ca.pem");
        // Before the folder exists, so that a failure below removes it too.
        let owned_dir = OwnedDir(options.state_dir.is_none().then(|| dir.clone()));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&ca_path, ca.pem()))
            .map_err(|source| SimError::StateDir {
                path: ca_path.clone(),
                source,
            })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&options.region, &options.account)),
            clock: Clock::new(options.speed),
            ca,
            rogue_ca,
            options,
            unreachable: std::sync::atomic::AtomicBool::new(false),
            buckets: Mutex::new(throttle::Buckets::new(std::time::Instant::now())),
        });
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(server::serve(listener, shared.clone(), rx.clone()));
        let engine = tokio::spawn(run_engine(shared.clone(), rx));
        Ok(SimHandle {
            shared,
            endpoint: format!("http://{addr}"),
            ca_path,
            shutdown,
            tasks: vec![server, engine],
            _owned_dir: owned_dir,
        })
    }
}

/// Steps the engine and keeps one fake ActiveGate listening per RUNNING task.
async fn run_engine(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut listeners: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut interval = tokio::time::interval(shared.options.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => break,
        }
        let wanted: Vec<(String, IpAddr, u16, Mode)> = {
            let mut st = shared.lock();
            engine::tick(&mut st, shared.clock.now(), &shared.options.delays);
            st.tasks
                .values()
                .filter(|t| t.status == TaskStatus::Running && t.desired_running)
                .map(|t| (t.id.clone(), IpAddr::V4(t.ip), t.port, t.behaviour.mode))
                .collect()
        };
        listeners.retain(|id, handle| {
            let keep = wanted.iter().any(|(w, ..)| w == id);
            if !keep {
                handle.abort();
            }
            keep
        });
        for (id, ip, port, mode) in wanted {
            if listeners.contains_key(&id) {
                continue;
            }
            match activegate::spawn(shared.clone(), id.clone(), ip, port, mode) {
                Ok(handle) => {
                    listeners.insert(id, handle);
                }
                Err(e) => {
                    let mut st = shared.lock();
                    let now = shared.clock.now();
                    st.record(now, "listener-failed", &id, format!("{ip}:{port}: {e}"));
                    engine::begin_stop(
                        &mut st,
                        &id,
                        now,
                        &format!("CannotStartContainerError: {e}"),
                        "TaskFailedToStart",
                        None,
                    );
                }
            }
        }
    }
    for (_, handle) in listeners {
        handle.abort();
    }
}

/// The temporary folder a simulator made for its CA (no `state_dir` given): removed when
/// dropped, so that thousands of test runs leave no folders behind. Best effort: a folder
/// that cannot be removed is left, as a temporary folder.
struct OwnedDir(Option<PathBuf>);

impl Drop for OwnedDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A running simulator: its endpoint, its CA, and control methods.
pub struct SimHandle {
    shared: Arc<Shared>,
    endpoint: String,
    ca_path: PathBuf,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Dropped last, by [`SimHandle::shutdown`] once the tasks ended, or with the handle.
    _owned_dir: OwnedDir,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the AWS endpoint URL and the control API's base.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The CA that signs the fake ActiveGates' certificates, PEM.
    pub fn ca_pem(&self) -> &str {
        self.shared.ca.pem()
    }

    /// SHA-256 (hex) of the public key every fake ActiveGate's certificate carries.
    pub fn pin_sha256(&self) -> String {
        self.shared
            .ca
            .leaf_pin()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Where the CA certificate was written.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    pub fn region(&self) -> &str {
        &self.shared.options.region
    }

    /// Sets how tasks started from this image (tag or digest) behave.
    pub fn set_image(&self, image: &str, behaviour: Behaviour) {
        self.shared.set_image(image, behaviour);
    }

    /// Injects a fault into an operation (`*` for all).
    pub fn set_fault(&self, operation: &str, fault: Fault) {
        self.shared
            .lock()
            .faults
            .insert(operation.to_owned(), fault);
    }

    /// Cuts (true) or restores (false) the network path to every task's HTTPS endpoint: the
    /// fake ActiveGates hold their answers while it is cut. ECS's own view is unchanged.
    pub fn set_unreachable(&self, cut: bool) {
        self.shared
            .unreachable
            .store(cut, std::sync::atomic::Ordering::Relaxed);
        let now = self.shared.clock.now();
        self.shared.lock().record(
            now,
            "network",
            "tasks",
            if cut { "cut" } else { "restored" },
        );
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every state change so far.
    pub fn timeline(&self) -> Vec<TimelineEvent> {
        self.shared.lock().timeline.clone()
    }

    /// Publishes a tag in the simulated OCI registry (`/v2/`); returns its digest.
    pub fn publish_tag(&self, repository: &str, tag: &str) -> String {
        let now = self.shared.clock.now();
        registry::publish(&mut self.shared.lock(), repository, tag, None, now)
    }

    /// What the Dynatrace environment sees of the ActiveGates of `image` (tag or digest).
    pub fn set_registration(&self, image: &str, registration: Registration) {
        self.shared.set_registration(image, registration);
    }

    /// Makes Dynatrace's ActiveGate list answer as `fault` says (`None`: normally again).
    pub fn set_dynatrace_fault(&self, fault: Option<ApiFault>) {
        self.shared.set_dynatrace_fault(fault);
    }

    /// Calls of Dynatrace's ActiveGate list so far.
    pub fn dynatrace_calls(&self) -> u64 {
        self.shared
            .lock()
            .calls
            .get(dynatrace::OPERATION)
            .copied()
            .unwrap_or(0)
    }

    /// What the Dynatrace metainfo endpoint names as the latest ActiveGate version.
    pub fn set_latest_gateway_version(&self, version: &str) {
        self.shared.lock().latest_gateway_version = Some(version.to_owned());
    }

    /// Creates an ECS cluster, as CreateCluster would.
    pub fn create_cluster(&self, name: &str) {
        let mut st = self.shared.lock();
        let arn = st.arn(&format!("cluster/{name}"));
        st.clusters
            .entry(name.to_owned())
            .or_insert_with(|| state::Cluster {
                arn,
                name: name.to_owned(),
                tags: Vec::new(),
            });
    }

    /// The latest healthy-task count of a service, from the timeline.
    pub fn healthy_tasks(&self, service: &str) -> usize {
        let st = self.shared.lock();
        st.timeline
            .iter()
            .rev()
            .find(|e| e.kind == "healthy-count" && e.subject.ends_with(&format!("/{service}")))
            .and_then(|e| e.detail.parse().ok())
            .unwrap_or(0)
    }

    /// A service's running tasks per task-definition revision: `(revision, image, running,
    /// healthy)`, oldest revision first.
    pub fn tasks_by_revision(&self, service: &str) -> Vec<(u32, String, usize, usize)> {
        let st = self.shared.lock();
        let mut by: BTreeMap<u32, (String, usize, usize)> = BTreeMap::new();
        for t in st.tasks.values() {
            let ours = t.service.as_ref().is_some_and(|(s, _)| s == service);
            if !ours || !t.desired_running || t.status != state::TaskStatus::Running {
                continue;
            }
            let td = st.find_task_definition(&t.task_definition);
            let revision = td.map_or(0, |d| d.revision);
            let checked = td.and_then(state::TaskDefinition::health_check).is_some();
            let e = by
                .entry(revision)
                .or_insert_with(|| (t.image.clone(), 0, 0));
            e.1 += 1;
            e.2 += usize::from(t.is_healthy(checked));
        }
        by.into_iter().map(|(r, (i, n, h))| (r, i, n, h)).collect()
    }

    /// Puts the registry behind the bearer-token flow (or not).
    pub fn set_registry_auth(&self, required: bool) {
        self.shared.lock().registry_auth = required;
    }

    /// Dynatrace events received so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.shared.lock().events.clone()
    }

    /// Calls per operation so far.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.shared.lock().calls.clone()
    }

    /// Calls answered `ThrottlingException` per operation so far: by ECS's buckets
    /// (`ecs_rate_limits`) and by injected throttling faults alike. Operations never
    /// throttled are absent.
    pub fn throttled(&self) -> BTreeMap<String, u64> {
        self.shared.lock().throttled.clone()
    }

    /// Fills ECS's buckets again, as a quiet minute would: a benchmark's own set-up calls
    /// then leave the daemon it starts next the full bursts ECS would give it.
    pub fn refill_buckets(&self) {
        self.shared.refill_buckets();
    }

    /// Calls answered `ThrottlingException` per access key id of their signature (`unsigned`
    /// for none): tells a benchmark's own set-up calls from the daemon's.
    pub fn throttled_by_key(&self) -> BTreeMap<String, u64> {
        self.shared.lock().throttled_by_key.clone()
    }

    /// AWS calls (ECS, CloudWatch Logs, STS) per access key id of their SigV4 signature so
    /// far; unsigned calls under `unsigned`.
    pub fn calls_by_key(&self) -> BTreeMap<String, u64> {
        self.shared.lock().calls_by_key.clone()
    }

    /// The credentials STS AssumeRole handed out so far (secrets left out), by access key id.
    pub fn issued_keys(&self) -> BTreeMap<String, IssuedKey> {
        self.shared.lock().issued_keys.clone()
    }

    /// ECS write calls so far (the newest [`state::WRITE_CALLS_KEPT`]), oldest first.
    pub fn write_calls(&self) -> Vec<WriteCall> {
        self.shared.lock().write_calls.iter().cloned().collect()
    }

    /// Simulated seconds since the epoch.
    pub fn now(&self) -> f64 {
        self.shared.clock.now()
    }

    /// Real time that `sim_seconds` of simulated time take.
    pub fn real(&self, sim_seconds: f64) -> Duration {
        self.shared.clock.real(sim_seconds)
    }

    /// Stops the endpoint, the engine and every fake ActiveGate, and removes the CA's
    /// folder if the simulator made it.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(state_dir: Option<PathBuf>) -> SimOptions {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir,
            ..SimOptions::default()
        }
    }

    #[tokio::test]
    async fn the_ca_folder_the_simulator_made_is_removed_and_a_given_one_kept() {
        let sim = Sim::start(options(None)).await.expect("starts");
        let dir = sim.ca_path().parent().expect("a folder").to_owned();
        assert!(sim.ca_path().is_file());
        sim.shutdown().await;
        assert!(!dir.exists(), "{} is left behind", dir.display());

        let sim = Sim::start(options(None)).await.expect("starts");
        let dir = sim.ca_path().parent().expect("a folder").to_owned();
        drop(sim);
        assert!(!dir.exists(), "{} is left behind on drop", dir.display());

        let given = std::env::temp_dir().join(format!(
            "activegate-lifecycle-sim-test-given-{}",
            std::process::id()
        ));
        let sim = Sim::start(options(Some(given.clone())))
            .await
            .expect("starts");
        sim.shutdown().await;
        assert!(
            given.join("ca.pem").is_file(),
            "the caller's folder is kept"
        );
        std::fs::remove_dir_all(&given).expect("cleaned up");
    }
}
