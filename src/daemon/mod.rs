//! The long-running side: a loop per target that reconciles it on its
//! schedule, at start, on SIGHUP, on a manual trigger and, after a retriable
//! failure, on its retry with backoff — never twice at once, never two targets
//! of one group at once — and a shutdown that lets an in-flight rollout finish
//! or roll back.

pub mod availability;
pub mod board;
pub mod events;
pub mod mesh;
mod monitor;
pub mod retry;
pub mod schedule;
pub mod settings;
pub mod wiring;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError, Target};
use crate::ecs::ClientSettings;
use board::{Board, TargetStatus, Trigger};
use retry::{Backoff, Ended, Retries};
use schedule::{Scheduler, Ticker, WallClock, until};

/// What the outside world asks of the daemon (signals become these in one place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: re-read the config and reconcile every target now.
    Reload,
    /// SIGTERM or SIGINT: stop taking work, let in-flight rollouts end. A second one exits at once.
    Terminate,
}

/// Turns SIGHUP, SIGTERM and SIGINT into `Signal`s.
pub fn os_signals() -> std::io::Result<mpsc::Receiver<Signal>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let s = tokio::select! {
                _ = hup.recv() => Signal::Reload,
                _ = term.recv() => Signal::Terminate,
                _ = int.recv() => Signal::Terminate,
            };
            if tx.send(s).await.is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

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
}

impl Default for Options {
    fn default() -> Self {
        Self {
            no_initial_run: false,
            force: false,
            clock: Arc::new(schedule::SystemClock),
            retry: Backoff::default(),
            adjust_client: Arc::new(|_| {}),
        }
    }
}

/// One target's loop.
struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts a loop per target, its schedule on the daemon's `scheduler`. Loops of the previous config are told to stop;
/// a new loop for the same target waits for its predecessor's run to end.
fn start_targets(
    config: &Arc<Config>,
    board: &Arc<Board>,
    options: &Options,
    previous: BTreeMap<String, Running>,
    first: Option<Trigger>,
    scheduler: &Arc<Scheduler>,
) -> BTreeMap<String, Running> {
    let mut previous = previous;
    for r in previous.values() {
        let _ = r.stop.send(true);
    }
    let limit = Arc::new(Semaphore::new(config.daemon.max_parallel.0 as usize));
    let mut groups: BTreeMap<String, Arc<Mutex<()>>> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut running = BTreeMap::new();
    for target in &config.targets {
        let name = target.name.to_string();
        let (tx, rx) = mpsc::channel(1);
        if let Some(t) = first {
            let _ = tx.try_send(t);
        }
        let schedule = target.schedule();
        entries.push((
            name.clone(),
            TargetStatus {
                cluster: target.cluster.to_string(),
                service: target.service.to_string(),
                schedule: schedule.as_ref().map(ToString::to_string),
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
        let (stop, stopped) = watch::channel(false);
        let mesh = mesh::MeshSync::new(config, target);
        let job = Job {
            config: config.clone(),
            target: target.clone(),
            board: board.clone(),
            options: options.clone(),
            limit: limit.clone(),
            group,
            mesh: mesh.clone(),
            scheduler: scheduler.clone(),
        };
        tokio::spawn(monitor::watch(
            config.clone(),
            target.clone(),
            board.clone(),
            options.clone(),
            mesh,
            stopped.clone(),
        ));
        let before = previous.remove(&name).map(|r| r.task);
        let task = tokio::spawn(job.run(rx, stopped, before));
        running.insert(name, Running { stop, task });
    }
    board.set_targets(entries);
    // Loops of removed targets end on their own after their current run.
    running
}

/// A reconcile that could not finish: its metric label, its message and whether to retry it.
struct Failure {
    kind: String,
    message: String,
    retriable: bool,
}

/// Shows a target's retry state on the board.
fn show_retry(t: &mut TargetStatus, r: &Retries) {
    t.retry_attempt = r.attempt;
    t.retry_at = r.pending.map(|p| p.at);
    t.retry_backoff_seconds = r.pending.map_or(0.0, |p| p.backoff.as_secs_f64());
}

struct Job {
    config: Arc<Config>,
    target: Target,
    board: Arc<Board>,
    options: Options,
    limit: Arc<Semaphore>,
    group: Option<Arc<Mutex<()>>>,
    mesh: Option<Arc<mesh::MeshSync>>,
    scheduler: Arc<Scheduler>,
}

impl Job {
    fn name(&self) -> String {
        self.target.name.to_string()
    }

    async fn run(
        self,
        triggers: mpsc::Receiver<Trigger>,
        stop: watch::Receiver<bool>,
        before: Option<JoinHandle<()>>,
    ) {
        if let Some(b) = before {
            let _ = b.await;
        }
        let jitter = self
            .target
            .jitter_seconds
            .as_ref()
            .map_or(Duration::ZERO, |j| Duration::from_secs_f64(j.0.max(0.0)));
        let mut ticker = self.target.schedule().map(|s| Ticker::new(s, jitter));
        self.serve(triggers, stop, ticker.as_mut()).await;
        // The loop ends (stop, reload, shutdown): its next scheduled run is not left armed.
        if let Some(t) = &mut ticker {
            t.disarm(&self.scheduler).await;
        }
    }

    /// The loop: wait for the first of a trigger, the scheduled time and the pending retry;
    /// run; repeat until told to stop.
    async fn serve(
        &self,
        mut triggers: mpsc::Receiver<Trigger>,
        mut stop: watch::Receiver<bool>,
        mut ticker: Option<&mut Ticker>,
    ) {
        let clock = self.options.clock.clone();
        // A retry armed by the previous config's loop is not carried over: this loop starts
        // with a reconcile of its own (SIGHUP) and decides afresh.
        let mut retries = Retries::default();
        self.board.target(&self.name(), |t| show_retry(t, &retries));
        loop {
            if *stop.borrow() {
                return;
            }
            // The next scheduled time, as a one-shot job on the daemon's scheduler (kept when
            // it is still the next one: a trigger in between does not move it).
            let next = match ticker.as_deref_mut() {
                Some(t) => t.arm(&self.scheduler, clock.now()).await,
                None => None,
            };
            self.board.target(&self.name(), |t| t.next_run = next);
            let retry_at = retries.pending.map(|p| p.at);
            let retry_wait = retry_at.map_or(Duration::ZERO, |r| until(clock.now(), r));
            // Whichever comes first: a trigger, the schedule or the pending retry. A backoff is a
            // wait on the monotonic clock, not a calendar time: tokio's timer keeps it precise.
            let scheduled = async {
                match ticker.as_deref_mut() {
                    Some(t) => t.fired().await,
                    None => std::future::pending().await,
                }
            };
            let why = tokio::select! {
                biased;
                _ = stop.changed() => return,
                t = triggers.recv() => match t {
                    Some(t) => t,
                    None => return,
                },
                _ = scheduled, if next.is_some() => Trigger::Schedule,
                _ = tokio::time::sleep(retry_wait), if retry_at.is_some() => Trigger::Retry,
            };
            if why == Trigger::Retry {
                let attempt = retries.attempt;
                retries.fire();
                tracing::info!(target = %self.target.name, attempt, "retrying the reconcile that failed");
                self.board.target(&self.name(), |t| {
                    t.retries += 1;
                    show_retry(t, &retries);
                });
            }
            let started = clock.now();
            self.reconcile(why, &mut retries).await;
            if let (Some(t), Some(_)) = (ticker.as_deref(), next) {
                // Scheduled times that passed while this run went on are skipped, not queued.
                let missed = t.schedule().fires_between(started, clock.now());
                if missed > 0 {
                    tracing::warn!(target = %self.target.name, missed, "the schedule fired while a reconcile was running; those runs were skipped");
                    self.board
                        .target(&self.name(), |t| t.missed_fires += missed);
                }
            }
        }
    }

    /// The Dynatrace event sink, when configured and its token is in the environment.
    fn events(&self) -> Option<events::Sink> {
        let e = self.config.daemon.events.as_ref()?;
        let token = std::env::var(&e.token_env).ok().filter(|t| !t.is_empty())?;
        events::Sink::new(&e.environment_url.0, token)
    }

    /// One run for `why`; its end updates `retries` (shown on the board with the outcome).
    /// The maintenance window and the error budget hold back scheduled runs only: a retry
    /// continues a reconcile that was already allowed to start.
    async fn reconcile(&self, why: Trigger, retries: &mut Retries) {
        let name = self.name();
        if let (Trigger::Schedule, Some(m)) = (why, &self.target.maintenance) {
            let tz = self
                .target
                .schedule()
                .map_or(chrono_tz::UTC, |s| s.timezone());
            if !m.window().contains(self.options.clock.now(), tz) {
                tracing::info!(target = %name, "scheduled time outside the maintenance window; skipped");
                self.board.target(&name, |t| t.skipped_outside_window += 1);
                return;
            }
        }
        if why == Trigger::Schedule && !self.options.force {
            let mut spent = None;
            self.board.target(&name, |t| {
                if let Some(b) = t.error_budget_remaining_seconds.filter(|b| *b < 0.0) {
                    t.skipped_for_budget += 1;
                    spent = Some(b);
                }
            });
            if let Some(b) = spent {
                tracing::warn!(target = %name, overspent_s = -b, "scheduled rollout skipped: the error budget is spent (SIGHUP, POST /trigger or --force still roll)");
                return;
            }
        }
        let _permit = self.limit.acquire().await;
        let _group = match &self.group {
            Some(g) => Some(g.lock().await),
            None => None,
        };
        let now = self.options.clock.now();
        self.board.target(&name, |t| {
            t.running = true;
            t.last_trigger = Some(why);
            t.last_started = Some(now);
        });
        tracing::info!(target = %name, trigger = ?why, "reconciling");
        let adjust = self.options.adjust_client.clone();
        let mut kept = None;
        let result = match wiring::engine_with(&self.config, &self.target, |c| adjust(c)).await {
            // Bad input: the same config fails the same way until a new one is loaded (SIGHUP).
            Err(e) => Err(Failure {
                kind: "config".to_owned(),
                message: format!("{:#}", anyhow::Error::new(e)),
                retriable: false,
            }),
            Ok(engine) => {
                let (board, target) = (self.board.clone(), name.clone());
                let engine = kept.insert(engine.with_connected(Arc::new(move |c| {
                    board.target(&target, |t| {
                        t.connected_hosts = Some(board::ConnectedHosts {
                            revision: c.revision.clone(),
                            activegates: c.activegates,
                            hosts: c.hosts,
                            old_hosts: c.old_hosts,
                            at: Some(chrono::Utc::now()),
                        });
                    });
                })));
                let r = engine.reconcile(None).await;
                self.board.add_aws_counts(engine.aws().counts());
                let failures = engine.discovery_failures();
                self.board
                    .target(&name, |t| t.discovery_failures += failures);
                r.map_err(|e| Failure {
                    kind: e.metric_label().to_owned(),
                    retriable: e.is_retriable(),
                    message: format!("{:#}", anyhow::Error::new(e)),
                })
            }
        };
        let finished = self.options.clock.now();
        if let (Ok(o), Some(sink)) = (&result, self.events()) {
            let image = self.target.image.as_ref().map(|i| i.0.as_str());
            if let Some(e) = events::Sink::event(
                &name,
                self.target.cluster.as_str(),
                self.target.service.as_str(),
                o,
                image,
            ) {
                sink.send(e).await;
            }
        }
        match &result {
            Ok(o) => tracing::info!(target = %name, outcome = o.label(), "reconciled"),
            Err(f) if f.retriable => {
                tracing::warn!(target = %name, kind = %f.kind, error = %f.message, "the reconcile could not finish; it is retried with backoff and resumes from the ECS tags")
            }
            Err(f) => {
                tracing::error!(target = %name, kind = %f.kind, error = %f.message, "the reconcile could not finish and is not retried; the next run resumes from the ECS tags")
            }
        }
        let ended = match &result {
            Ok(_) => Ended::Finished,
            Err(f) => Ended::Failed {
                retriable: f.retriable,
            },
        };
        retries.after(ended, finished, &self.options.retry, fastrand::f64());
        if let Some(p) = retries.pending {
            tracing::info!(target = %name, attempt = retries.attempt, retry_at = %p.at, backoff_s = p.backoff.as_secs_f64(), "retry armed");
        }
        // After a reconcile that finished: the revision it leaves serving (None: unknown).
        let serves = result.as_ref().ok().map(|o| o.serving().map(str::to_owned));
        self.board.target(&name, |t| {
            t.running = false;
            t.last_finished = Some(finished);
            match result {
                Ok(o) => {
                    *t.outcomes.entry(o.label().to_owned()).or_default() += 1;
                    t.last_outcome = Some(o.label().to_owned());
                    t.last_error = None;
                    if let Some(serving) = o.serving() {
                        t.revision = Some(serving.to_owned());
                    }
                }
                Err(f) => {
                    *t.errors.entry(f.kind).or_default() += 1;
                    t.last_error = Some(crate::model::secret::scrub(&f.message).into_owned());
                }
            }
            show_retry(t, retries);
        });
        // The mesh follows what the service now runs; its failures never undo the outcome, and
        // it holds neither the parallelism permit nor the group's turn.
        drop(_permit);
        drop(_group);
        if let (Some(mesh), Some(engine), Some(revision)) = (&self.mesh, &kept, serves) {
            let observed_at = tokio::time::Instant::now();
            let addresses = if mesh.follows_tasks() {
                match engine
                    .aws()
                    .tasks(
                        self.target.cluster.as_str(),
                        self.target.service.as_str(),
                        false,
                    )
                    .await
                {
                    Ok(tasks) => crate::ecs::running_ips(tasks, revision.as_deref()),
                    Err(e) => {
                        tracing::warn!(target = %name, error = %e, "cannot list the tasks for the mesh destination; the monitor retries");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            mesh.sync(
                &addresses,
                observed_at,
                &self.board,
                mesh::Cause::Reconciled,
            )
            .await;
        }
    }
}

/// Runs the daemon until a Terminate signal; returns after in-flight rollouts
/// ended (or the shutdown deadline passed, or a second Terminate came).
pub async fn run(
    config_path: PathBuf,
    config: Config,
    board: Arc<Board>,
    options: Options,
    mut signals: mpsc::Receiver<Signal>,
) -> Result<(), ConfigError> {
    let mut config = Arc::new(config);
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    // How late the event loop runs: the verdicts on new versions read it (a busy daemon
    // never blames a good version), and /metrics shows it.
    let (lateness_stop, lateness_stopped) = tokio::sync::oneshot::channel::<()>();
    let lateness = tokio::spawn(crate::health::load::watch_event_loop(async move {
        let _ = lateness_stopped.await;
    }));
    // One tokio-cron-scheduler for the daemon: every target's next scheduled run is a one-shot
    // job on it.
    let scheduler = Arc::new(
        Scheduler::start(options.clock.clone())
            .await
            .expect("tokio-cron-scheduler with its in-memory stores always starts"),
    );
    let first = (!options.no_initial_run).then_some(Trigger::Start);
    let mut running = start_targets(
        &config,
        &board,
        &options,
        BTreeMap::new(),
        first,
        &scheduler,
    );
    tracing::info!(targets = config.targets.len(), "daemon running");
    // Until Terminate (or the signal source closes): Reload re-reads the config.
    while let Some(Signal::Reload) = signals.recv().await {
        match Config::load(&config_path) {
            Err(e) => {
                // Config errors name fields and shapes, never values; the scrub is the last guard.
                let why = crate::model::secret::scrub(&format!("{:#}", anyhow::Error::new(e)))
                    .into_owned();
                tracing::error!(error = %why, "SIGHUP: the new config is invalid; keeping the running one");
                board.reloaded(Some(why));
            }
            Ok(new) => {
                for w in new.warnings() {
                    tracing::warn!("{w}");
                }
                tracing::info!("SIGHUP: config reloaded; reconciling every target");
                board.reloaded(None);
                config = Arc::new(new);
                running = start_targets(
                    &config,
                    &board,
                    &options,
                    running,
                    Some(Trigger::Reload),
                    &scheduler,
                );
            }
        }
    }
    let deadline = config.daemon.shutdown_deadline_seconds.duration();
    tracing::info!(
        deadline_s = deadline.as_secs(),
        "stopping: no new work; in-flight rollouts finish or roll back"
    );
    for r in running.values() {
        let _ = r.stop.send(true);
    }
    let all = futures_join(running.into_values().map(|r| r.task).collect());
    tokio::select! {
        _ = all => tracing::info!("stopped"),
        _ = tokio::time::sleep(deadline) => tracing::error!("in-flight rollouts did not end within the shutdown deadline; the next start resumes them from the ECS tags"),
                _ = signals.recv() => tracing::warn!("a second stop signal: exiting now; the next start resumes from the ECS tags"),
    }
    // The loops have disarmed their jobs (or the deadline passed): the ticker stops.
    scheduler.shutdown().await;
    let _ = lateness_stop.send(());
    let _ = lateness.await;
    Ok(())
}

async fn futures_join(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}
