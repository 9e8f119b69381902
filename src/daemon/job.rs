//! One target's loop for one config version: wait for a trigger, the schedule or the pending
//! retry; reconcile with the target's context; repeat until told to stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore, mpsc};

use super::board::{Board, TargetStatus, Trigger};
use super::context::{self, Slot, TargetContext};
use super::retry::{Ended, Retries};
use super::schedule::{Scheduler, Ticker, until};
use super::shutdown::Shutdown;
use super::tasks::Done;
use super::{Options, events, mesh};
use crate::config::{Config, Target};
use crate::rollout::Outcome;

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

pub(super) struct Job {
    pub config: Arc<Config>,
    /// The target's place in `config.targets` (the config holds it; a copy here would be
    /// 2 KiB per target for the daemon's life).
    pub index: usize,
    pub board: Arc<Board>,
    pub options: Options,
    pub limit: Arc<Semaphore>,
    pub group: Option<Arc<Mutex<()>>>,
    pub mesh: Option<Arc<mesh::MeshSync>>,
    pub scheduler: Arc<Scheduler>,
    pub context: Slot,
    /// The daemon's one client cache, for a context rebuilt when the manifest changed.
    pub clients: crate::ecs::Clients,
    /// With `[daemon.lease]`: the target is reconciled only under its lease.
    pub lease: Option<Arc<super::lease::Fleet>>,
}

impl Job {
    fn target(&self) -> &Target {
        &self.config.targets[self.index]
    }

    fn name(&self) -> String {
        self.target().name.to_string()
    }

    /// Runs the loop once `before` (the previous config version's loop) has ended.
    pub async fn run(
        self,
        triggers: mpsc::Receiver<Trigger>,
        stop: Shutdown,
        before: Option<Done>,
    ) {
        if let Some(b) = before {
            b.wait().await;
        }
        let jitter = self
            .target()
            .jitter_seconds
            .as_ref()
            .map_or(Duration::ZERO, |j| Duration::from_secs_f64(j.0.max(0.0)));
        let mut ticker = self.target().schedule().map(|s| Ticker::new(s, jitter));
        self.serve(triggers, stop, ticker.as_mut()).await;
        // The loop ends (stop, reload, shutdown): its next scheduled run is not left armed.
        if let Some(t) = &mut ticker {
            Box::pin(t.disarm(&self.scheduler)).await;
        }
    }

    /// The loop: wait for the first of a trigger, the scheduled time and the pending retry;
    /// run; repeat until told to stop.
    async fn serve(
        &self,
        mut triggers: mpsc::Receiver<Trigger>,
        mut stop: Shutdown,
        mut ticker: Option<&mut Ticker>,
    ) {
        let clock = self.options.clock.clone();
        // A retry armed by the previous config's loop is not carried over: this loop starts
        // with a reconcile of its own (SIGHUP) and decides afresh.
        let mut retries = Retries::default();
        self.board.target(&self.name(), |t| show_retry(t, &retries));
        loop {
            if stop.is_shutdown() {
                return;
            }
            // The next scheduled time, as a one-shot job on the daemon's scheduler (kept when
            // it is still the next one: a trigger in between does not move it).
            let next = match ticker.as_deref_mut() {
                // Boxed like the reconcile: the scheduler crate's futures are large.
                Some(t) => Box::pin(t.arm(&self.scheduler, clock.now())).await,
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
                _ = stop.recv() => return,
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
                tracing::info!(target = %self.target().name, attempt, "retrying the reconcile that failed");
                self.board.target(&self.name(), |t| {
                    t.retries += 1;
                    show_retry(t, &retries);
                });
            }
            let started = clock.now();
            // Boxed: a reconcile's future (the engine's whole pass) is tens of KiB, and the
            // loop's own future, alive for the daemon's life, would otherwise hold its size.
            Box::pin(self.reconcile(why, &mut retries)).await;
            if let (Some(t), Some(_)) = (ticker.as_deref(), next) {
                // Scheduled times that passed while this run went on are skipped, not queued.
                let missed = t.schedule().fires_between(started, clock.now());
                if missed > 0 {
                    tracing::warn!(target = %self.target().name, missed, "the schedule fired while a reconcile was running; those runs were skipped");
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

    /// Whether the maintenance window or a spent error budget holds back this run. They hold
    /// back scheduled runs only: a retry continues a reconcile that was already allowed to start.
    fn held_back(&self, why: Trigger) -> bool {
        let name = self.name();
        if why != Trigger::Schedule {
            return false;
        }
        if let Some(m) = &self.target().maintenance {
            let tz = self
                .target()
                .schedule()
                .map_or(chrono_tz::UTC, |s| s.timezone());
            if !m.window().contains(self.options.clock.now(), tz) {
                tracing::info!(target = %name, "scheduled time outside the maintenance window; skipped");
                self.board.target(&name, |t| t.skipped_outside_window += 1);
                return true;
            }
        }
        if self.options.force {
            return false;
        }
        let mut spent = None;
        self.board.target(&name, |t| {
            if let Some(b) = t.error_budget_remaining_seconds.filter(|b| *b < 0.0) {
                t.skipped_for_budget += 1;
                spent = Some(b);
            }
        });
        if let Some(b) = spent {
            tracing::warn!(target = %name, overspent_s = -b, "scheduled rollout skipped: the error budget is spent (SIGHUP, POST /trigger or --force still roll)");
            return true;
        }
        false
    }

    /// One run for `why`; its end updates `retries` (shown on the board with the outcome).
    async fn reconcile(&self, why: Trigger, retries: &mut Retries) {
        if self.held_back(why) {
            return;
        }
        let name = self.name();
        let context = self
            .context
            .current(
                &self.config,
                self.target(),
                &context::Env {
                    clients: &self.clients,
                    shared: &super::wiring::Shared::default(),
                    adjust: &self.options.adjust_client,
                    board: &self.board,
                },
            )
            .await;
        let permit = self.limit.acquire().await;
        let group = match &self.group {
            Some(g) => Some(g.lock().await),
            None => None,
        };
        // Checked after the waits above: the lease may have moved during them.
        let key = super::lease::key_of(self.target());
        let turn = match &self.lease {
            Some(fleet) => match fleet.turn(&name, &key) {
                Some(turn) => Some(turn),
                None => {
                    tracing::info!(target = %name, trigger = ?why, "reconcile skipped: another replica holds the target's lease (or it is not assigned here)");
                    return;
                }
            },
            None => None,
        };
        let guard = self.lease.as_ref().map(|f| f.guard(&key));
        let now = self.options.clock.now();
        self.board.target(&name, |t| {
            t.running = true;
            t.last_trigger = Some(why);
            t.last_started = Some(now);
        });
        tracing::info!(target = %name, trigger = ?why, "reconciling");
        let result = self.run_engine(&context, guard).await;
        let finished = self.options.clock.now();
        self.send_event(&result).await;
        self.record(result.as_ref(), retries, finished);
        // After a reconcile that finished: the revision it leaves serving (None: unknown).
        let serves = result.as_ref().ok().map(|o| o.serving().map(str::to_owned));
        // The mesh follows what the service now runs; its failures never undo the outcome, and
        // it holds neither the parallelism permit nor the group's turn.
        drop(permit);
        drop(group);
        if let (Some(mesh), Some(revision)) = (&self.mesh, serves) {
            self.follow_mesh(mesh, &context, revision.as_deref()).await;
        }
        drop(turn);
    }

    /// The engine's reconcile with the context's engine, its counters added to the board.
    async fn run_engine(
        &self,
        context: &TargetContext,
        guard: Option<super::lease::Guard>,
    ) -> Result<Outcome, Failure> {
        let engine = match context.engine() {
            Ok(engine) => engine,
            // Bad input: the same config fails the same way until a new one is loaded (SIGHUP)
            // or the manifest changes.
            Err(why) => {
                return Err(Failure {
                    kind: "config".to_owned(),
                    message: super::context::chain(why),
                    retriable: false,
                });
            }
        };
        let r = engine.reconcile_guarded(None, guard).await;
        let (counts, failures) = context.new_counts();
        self.board.add_aws_counts(counts);
        self.board
            .target(&self.name(), |t| t.discovery_failures += failures);
        r.map_err(|e| Failure {
            kind: e.metric_label().to_owned(),
            retriable: e.is_retriable(),
            message: super::context::chain(&e),
        })
    }

    /// The Dynatrace event for an outcome, when events are configured.
    async fn send_event(&self, result: &Result<Outcome, Failure>) {
        let (Ok(o), Some(sink)) = (result, self.events()) else {
            return;
        };
        let image = self.target().image.as_ref().map(|i| i.0.as_str());
        if let Some(e) = events::Sink::event(
            &self.name(),
            self.target().cluster.as_str(),
            self.target().service.as_str(),
            o,
            image,
        ) {
            sink.send(e).await;
        }
    }

    /// Logs the result, arms the retry it calls for and shows both on the board.
    fn record(
        &self,
        result: Result<&Outcome, &Failure>,
        retries: &mut Retries,
        finished: chrono::DateTime<chrono::Utc>,
    ) {
        let name = self.name();
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
                    *t.errors.entry(f.kind.clone()).or_default() += 1;
                    t.last_error = Some(crate::model::secret::scrub(&f.message).into_owned());
                }
            }
            show_retry(t, retries);
        });
    }

    /// Points the mesh at the tasks of the revision the service now serves.
    async fn follow_mesh(
        &self,
        mesh: &mesh::MeshSync,
        context: &TargetContext,
        revision: Option<&str>,
    ) {
        let Ok(engine) = context.engine() else {
            return;
        };
        let observed_at = tokio::time::Instant::now();
        let addresses = if mesh.follows_tasks() {
            match engine
                .aws()
                .tasks(
                    self.target().cluster.as_str(),
                    self.target().service.as_str(),
                    false,
                )
                .await
            {
                Ok(tasks) => crate::ecs::running_ips(tasks, revision),
                Err(e) => {
                    tracing::warn!(target = %self.name(), error = %e, "cannot list the tasks for the mesh destination; the monitor retries");
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
