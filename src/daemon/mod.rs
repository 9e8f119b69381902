//! The long-running side: a loop per target that reconciles it on its
//! schedule, at start, on SIGHUP, on a manual trigger and, after a retriable
//! failure, on its retry with backoff — never twice at once, never two targets
//! of one group at once — and a shutdown that lets an in-flight rollout finish
//! or roll back.

pub mod availability;
pub mod board;
pub mod context;
pub mod events;
mod job;
pub mod lease;
pub mod mesh;
mod monitor;
pub mod observer;
pub mod retry;
pub mod schedule;
pub mod settings;
pub mod shutdown;
pub mod signals;
pub mod tasks;
pub mod wiring;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore, mpsc};

use crate::config::{Config, ConfigError};
use crate::ecs::{ClientSettings, Clients};
use board::{Board, TargetStatus, Trigger};
use context::{Contexts, Why};
use retry::Backoff;
use schedule::{Scheduler, WallClock};
use shutdown::Stop;
pub use signals::{Signal, Signals, os_signals};
use tasks::{Done, Tasks};

/// How the daemon runs, beyond its config.
#[derive(Clone)]
pub struct Options {
    /// Skip the reconcile of every target at start.
    pub no_initial_run: bool,
    /// Run scheduled rollouts even when the error budget is spent.
    pub force: bool,
    pub clock: Arc<dyn WallClock>,
    /// The wait before retrying a reconcile that failed for a passing reason (15 s doubling to 5 min).
    pub retry: Backoff,
    /// Adjusts the AWS clients (the simulator's fixed credentials in the demo and tests).
    pub adjust_client: Arc<dyn Fn(&mut ClientSettings) + Send + Sync>,
    /// This replica's id with `[daemon.lease]` (default `<hostname>-<pid>-<4 random hex>`).
    pub replica_id: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            no_initial_run: false,
            force: false,
            clock: Arc::new(schedule::SystemClock),
            retry: Backoff::default(),
            adjust_client: Arc::new(|_| {}),
            replica_id: None,
        }
    }
}

/// One target's loop and availability monitor for one config version.
struct Running {
    stop: Stop,
    job: Done,
    monitor: Done,
}

/// How long the monitors get, after the loops ended or were given up on, to write their last
/// downtime: a tag write takes milliseconds, and a second stop signal still means now.
const MONITOR_GRACE: Duration = Duration::from_secs(2);

/// The supervisor: every task it starts is tracked, told to stop through one [`Stop`] per
/// target and config version, and awaited on exit.
struct Supervisor {
    board: Arc<Board>,
    options: Options,
    scheduler: Arc<Scheduler>,
    /// One client cache for the run: every target's clients share SDK configurations and
    /// rate budgets per (identity, region).
    clients: Clients,
    contexts: Contexts,
    running: BTreeMap<String, Running>,
    loops: Tasks,
    monitors: Tasks,
    /// The per-cluster observers feeding the monitors, and the stop of the current config
    /// version's ones.
    observers: Tasks,
    observing: Stop,
    /// With `[daemon.lease]`: the leases; a target is written only under its own.
    lease: Option<Arc<lease::Fleet>>,
}

impl Supervisor {
    /// Starts a loop and a monitor per target, its schedule on the daemon's `scheduler`, with
    /// the target's context (kept from the previous config version when its inputs did not
    /// change). Loops and monitors of the previous config are told to stop; a new one waits
    /// for its predecessor to end.
    async fn start_targets(&mut self, config: &Arc<Config>, first: Option<Trigger>, why: Why) {
        for r in self.running.values() {
            r.stop.fire();
        }
        let mut previous = std::mem::take(&mut self.running);
        let contexts = std::mem::take(&mut self.contexts);
        let shared = wiring::Shared::default();
        let env = context::Env {
            clients: &self.clients,
            shared: &shared,
            adjust: &self.options.adjust_client,
            board: &self.board,
        };
        self.contexts = Contexts::for_config(contexts, config, &env, why).await;
        if let Some(fleet) = &self.lease {
            fleet.set_targets(config);
        }
        let limit = Arc::new(Semaphore::new(config.daemon.max_parallel.0 as usize));
        let mut groups: BTreeMap<String, Arc<Mutex<()>>> = BTreeMap::new();
        let mut entries = Vec::new();
        // One observer per (identity, region, endpoint, cluster) of this config version.
        let mut observers = observer::Observers::new(self.clients.clone());
        for (index, target) in config.targets.iter().enumerate() {
            let name = target.name.to_string();
            let (tx, rx) = mpsc::channel(1);
            if let Some(t) = first {
                let _ = tx.try_send(t);
            }
            entries.push((
                name.clone(),
                TargetStatus {
                    cluster: target.cluster.to_string(),
                    service: target.service.to_string(),
                    schedule: target.schedule().as_ref().map(ToString::to_string),
                    ..TargetStatus::default()
                },
                tx,
            ));
            let group = target.group.as_ref().map(|g| {
                groups
                    .entry(g.clone())
                    .or_insert_with(|| Arc::new(Mutex::new(())))
                    .clone()
            });
            let slot = self
                .contexts
                .slot(&name)
                .expect("every target of the config has a context")
                .clone();
            let stop = Stop::new();
            let mesh = mesh::MeshSync::new(config, target);
            let before = previous.remove(&name);
            let context = slot.get().await;
            let feed = observers.feed(&context, target).await;
            let monitor = self.monitors.spawn(monitor::watch(
                context,
                target.clone(),
                self.board.clone(),
                self.options.clone(),
                mesh.clone(),
                stop.subscribe(),
                before.as_ref().map(|b| b.monitor.clone()),
                self.lease.clone(),
                feed,
            ));
            let job = job::Job {
                config: config.clone(),
                index,
                board: self.board.clone(),
                options: self.options.clone(),
                limit: limit.clone(),
                group,
                mesh,
                scheduler: self.scheduler.clone(),
                context: slot,
                clients: self.clients.clone(),
                lease: self.lease.clone(),
            };
            let job = self
                .loops
                .spawn(job.run(rx, stop.subscribe(), before.map(|b| b.job)));
            self.running.insert(name, Running { stop, job, monitor });
        }
        self.board.set_targets(entries);
        // The previous version's observers end with its monitors.
        self.observing.fire();
        self.observing = observers.start(&mut self.observers, &self.board);
        // Loops of removed targets were told to stop; they end after their current run, and
        // stay tracked until then.
    }

    /// SIGHUP: the new config, or the running one when the new one is invalid.
    async fn reload(&mut self, config_path: &std::path::Path, config: &mut Arc<Config>) {
        // A large config takes seconds to parse: off the event loop, whose probes and lease
        // renewals go on meanwhile.
        let path = config_path.to_owned();
        let loaded = match tokio::task::spawn_blocking(move || Config::load(&path)).await {
            Ok(loaded) => loaded,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down.
            Err(_) => return,
        };
        match loaded {
            Err(e) => {
                // Config errors name fields and shapes, never values; the scrub is the last guard.
                let why = crate::model::secret::scrub(&context::chain(&e)).into_owned();
                tracing::error!(error = %why, "SIGHUP: the new config is invalid; keeping the running one");
                self.board.reloaded(Some(why));
            }
            Ok(new) => {
                for w in new.warnings() {
                    tracing::warn!("{w}");
                }
                tracing::info!("SIGHUP: config reloaded; reconciling every target");
                lease::warn_on_reload(config, &new);
                self.board.reloaded(None);
                *config = Arc::new(new);
                self.start_targets(config, Some(Trigger::Reload), Why::Reload)
                    .await;
            }
        }
        self.loops.reap();
        self.monitors.reap();
        self.observers.reap();
    }

    /// Stops every loop and monitor and waits for them: the loops until the deadline or a
    /// second stop signal, the monitors (whose last downtime write must land) a little longer.
    async fn stop(&mut self, deadline: Duration, signals: &mut Signals) {
        tracing::info!(
            deadline_s = deadline.as_secs(),
            "stopping: no new work; in-flight rollouts finish or roll back"
        );
        for r in self.running.values() {
            r.stop.fire();
        }
        self.observing.fire();
        tokio::select! {
            _ = self.loops.join_all() => tracing::info!("stopped"),
            _ = tokio::time::sleep(deadline) => tracing::error!("in-flight rollouts did not end within the shutdown deadline; the next start resumes them from the ECS tags"),
            _ = second_terminate(signals) => tracing::warn!("a second stop signal: exiting now; the next start resumes from the ECS tags"),
        }
        self.loops.abort_all().await;
        if tokio::time::timeout(MONITOR_GRACE, self.monitors.join_all())
            .await
            .is_err()
        {
            tracing::warn!("an availability monitor did not write its last downtime in time");
        }
        self.monitors.abort_all().await;
        // Stopped above, and a poll in flight ends with the stop: they end at once.
        self.observers.join_all().await;
        // The loops have disarmed their jobs (or were given up on): the ticker stops.
        self.scheduler.shutdown().await;
    }
}

/// Resolves on the next Terminate; reloads during the shutdown are ignored, and a source that
/// closed leaves the deadline to decide.
async fn second_terminate(signals: &mut Signals) {
    loop {
        match signals.recv().await {
            Some(Signal::Terminate) => return,
            Some(Signal::Reload) => {
                tracing::info!("SIGHUP while stopping: ignored");
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// Runs the daemon until a Terminate signal (or until `signals` closes); returns after
/// in-flight rollouts ended (or the shutdown deadline passed, or a second Terminate came) and
/// every task it started has ended.
pub async fn run(
    config_path: PathBuf,
    config: Config,
    board: Arc<Board>,
    mut options: Options,
    signals: impl Into<Signals>,
) -> Result<(), ConfigError> {
    let mut signals = signals.into();
    let mut config = Arc::new(config);
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    // How late the event loop runs: the verdicts on new versions read it (a busy daemon
    // never blames a good version), and /metrics shows it. It runs until the loops ended.
    let lateness_stop = Stop::new();
    let mut services = Tasks::default();
    let mut lateness = lateness_stop.subscribe();
    let load = board.load().clone();
    services.spawn(async move {
        load.watch_event_loop(lateness.recv()).await;
    });
    // One tokio-cron-scheduler for the daemon: every target's next scheduled run is a one-shot
    // job on it.
    let scheduler = Arc::new(
        Scheduler::start(options.clock.clone())
            .await
            .expect("tokio-cron-scheduler with its in-memory stores always starts"),
    );
    let first = (!options.no_initial_run).then_some(Trigger::Start);
    let clients = Clients::new();
    // With `[daemon.lease]`, the keeper's rounds run until the loops and monitors ended (the
    // lateness watch's stop), so that an in-flight rollout keeps its lease to the end.
    let replica = options
        .replica_id
        .clone()
        .unwrap_or_else(lease::default_replica_id);
    options.adjust_client = lease::named_after(&replica, options.adjust_client.clone());
    let adjust = options.adjust_client.clone();
    let fleet = lease::keeper_for(&config, &clients, replica, &*adjust)
        .await
        .map(|keeper| lease::Fleet::new(keeper, board.clone()));
    if let Some(f) = &fleet {
        tracing::info!(replica = %f.keeper().me(), "leases on: this replica writes only the targets whose lease it holds");
        f.set_targets(&config);
        services.spawn(f.clone().keep(lateness_stop.subscribe()));
    }
    let mut supervisor = Supervisor {
        board,
        options,
        scheduler,
        clients,
        contexts: Contexts::default(),
        running: BTreeMap::new(),
        loops: Tasks::default(),
        monitors: Tasks::default(),
        observers: Tasks::default(),
        observing: Stop::new(),
        lease: fleet.clone(),
    };
    supervisor.start_targets(&config, first, Why::Start).await;
    tracing::info!(targets = config.targets.len(), "daemon running");
    // Until Terminate (or the signal source closes): Reload re-reads the config.
    while let Some(Signal::Reload) = signals.recv().await {
        supervisor.reload(&config_path, &mut config).await;
    }
    let deadline = config.daemon.shutdown_deadline_seconds.duration();
    supervisor.stop(deadline, &mut signals).await;
    lateness_stop.fire();
    services.join_all().await;
    // After the last write: the next replica takes over at once instead of after expiry.
    if let Some(f) = fleet {
        f.release_all().await;
    }
    Ok(())
}
