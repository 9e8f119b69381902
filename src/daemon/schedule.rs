//! When a target's rollouts run: a cron expression with seconds, in an IANA
//! time zone. croner computes each next fire time; the daemon's one
//! tokio-cron-scheduler fires it, as a one-shot job at that instant.
//!
//! Why one-shots and not the scheduler's own cron jobs: in tokio-cron-scheduler
//! 0.15.1 a cron job fixes its UTC offset when it is created (a 03:30
//! Europe/Berlin job stays at the winter offset after the change to summer
//! time), combines day-of-month and day-of-week with AND, its repeated jobs may
//! stop firing under load, and runs may overlap. A one-shot job at an instant
//! has none of that: croner computes every next fire time afresh from the wall
//! clock in the target's zone (so DST changes apply while the daemon runs, and
//! the day fields follow standard cron, OR), the target's loop arms the next
//! one only after a run ended (so runs never overlap), and the crate only has
//! to fire once.
//!
//! What the crate does not do, and [`Scheduler`] and [`Alarm`] make up for: a
//! one-shot job keeps its time as whole wall-clock seconds and the scheduler
//! looks every 500 ms, so a job may fire up to a second early (or half a
//! second late): an alarm that fired early waits the rest on tokio's timer, and
//! no run starts before its time. Its tasks pass work through broadcast
//! channels of 200 places that drop what a slow receiver falls behind on: with
//! more than 200 jobs due in one poll some never run (tested below), so the
//! alarms of one second share one job, jobs are added and removed one at a
//! time, and an alarm whose job did not fire rings [`FALLBACK_AFTER`] late on
//! tokio's timer, with a warning.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

pub use crate::model::schedule::{Schedule, Window};

/// The wall clock the daemon schedules by.
pub trait WallClock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// How long to wait, on the monotonic clock, until this clock reads `at` (zero if it has
    /// passed). A test clock that skips idle time, as paused tokio time does, moves to `at`
    /// and answers zero.
    fn wait_until(&self, at: DateTime<Utc>) -> Duration {
        until(self.now(), at)
    }
}

/// The system clock.
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How long to wait from `now` until `at` (zero if it has passed).
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// What the scheduler could not do.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("tokio-cron-scheduler did not start: {0}")]
    Start(#[source] JobSchedulerError),
    #[error("cannot add the one-shot job for {at}: {source}")]
    Arm {
        at: DateTime<Utc>,
        #[source]
        source: JobSchedulerError,
    },
    #[error("{0} is too far in the future to wait for")]
    TooFar(DateTime<Utc>),
}

/// How long after its time an alarm whose job did not fire rings anyway (logged).
pub const FALLBACK_AFTER: Duration = Duration::from_secs(10);
/// How long a call into the scheduler may take before it is given up (logged).
const CALL_LIMIT: Duration = Duration::from_secs(5);

/// The daemon's one tokio-cron-scheduler, used for one-shot jobs only.
///
/// Its jobs do nothing but ring [`Alarm`]s: the run itself happens in the target's loop,
/// which the daemon's shutdown joins (the crate's own shutdown does not wait for jobs).
///
/// Alarms in the same wall-clock second share one job, and jobs are added and removed one
/// at a time. Both because of how the crate passes work between its tasks: broadcast channels
/// of 200 places, whose receivers drop what they fall behind on. More than 200 jobs due in
/// one poll lose their activations (the jobs never run), and more than 200 additions or
/// removals at once end the task that makes them. The crate only keeps whole seconds anyway.
/// Should a job still not fire, its alarms ring [`FALLBACK_AFTER`] late, with a warning.
pub struct Scheduler {
    jobs: JobScheduler,
    clock: Arc<dyn WallClock>,
    /// The jobs by the second they fire at.
    seconds: Arc<std::sync::Mutex<std::collections::BTreeMap<i64, Second>>>,
    /// One addition or removal at a time.
    turn: tokio::sync::Mutex<()>,
    /// Alarms that rang without their job.
    fallbacks: Arc<std::sync::atomic::AtomicU64>,
}

/// The job of one wall-clock second.
struct Second {
    /// `None` when the crate would not take the job: its alarms ring by the fallback.
    id: Option<uuid::Uuid>,
    ring: Arc<watch::Sender<bool>>,
    alarms: usize,
}

impl Scheduler {
    /// Starts the scheduler's ticker.
    pub async fn start(clock: Arc<dyn WallClock>) -> Result<Scheduler, ScheduleError> {
        let jobs = JobScheduler::new().await.map_err(ScheduleError::Start)?;
        jobs.start().await.map_err(ScheduleError::Start)?;
        Ok(Scheduler {
            jobs,
            clock,
            seconds: Arc::default(),
            turn: tokio::sync::Mutex::new(()),
            fallbacks: Arc::default(),
        })
    }

    fn seconds(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<i64, Second>> {
        // Never held across an await; the map stays consistent through a panic.
        self.seconds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Arms an alarm that rings when the wall clock reaches `at`: a one-shot job for `at`'s
    /// second (shared with the other alarms of that second), then tokio's timer for the rest.
    pub async fn arm(&self, at: DateTime<Utc>) -> Result<Alarm, ScheduleError> {
        let second = at.timestamp();
        let start = DateTime::from_timestamp(second, 0).ok_or(ScheduleError::TooFar(at))?;
        let wait = self.clock.wait_until(start);
        let fallback = tokio::time::Instant::now()
            .checked_add(wait + FALLBACK_AFTER)
            .ok_or(ScheduleError::TooFar(at))?;
        let _turn = self.turn.lock().await;
        // Jobs that fired and whose alarms are gone: the crate has deleted them itself.
        self.seconds()
            .retain(|_, s| s.alarms > 0 || !*s.ring.borrow());
        let existing = self.seconds().get_mut(&second).map(|s| {
            s.alarms += 1;
            s.ring.subscribe()
        });
        let rung = match existing {
            Some(rung) => rung,
            None => {
                let instant = std::time::Instant::now()
                    .checked_add(wait)
                    .ok_or(ScheduleError::TooFar(at))?;
                let (ring, rung) = watch::channel(false);
                let ring = Arc::new(ring);
                let fire = ring.clone();
                let job = Job::new_one_shot_at_instant_async(instant, move |_, _| {
                    fire.send_replace(true);
                    Box::pin(async {})
                })
                .map_err(|source| ScheduleError::Arm { at, source })?;
                let id = match tokio::time::timeout(CALL_LIMIT, self.jobs.add(job)).await {
                    Ok(Ok(id)) => Some(id),
                    Ok(Err(e)) => {
                        tracing::warn!(%at, error = %e, "tokio-cron-scheduler would not take the job; the run starts on tokio's timer instead");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(%at, "tokio-cron-scheduler did not take the job in time; the run starts on tokio's timer instead");
                        None
                    }
                };
                self.seconds().insert(
                    second,
                    Second {
                        id,
                        ring,
                        alarms: 1,
                    },
                );
                rung
            }
        };
        let fallback = match self.seconds().get(&second).and_then(|s| s.id) {
            Some(_) => fallback,
            None => fallback - FALLBACK_AFTER,
        };
        Ok(Alarm {
            second,
            at,
            rung,
            rang: false,
            by_fallback: false,
            fallback,
            clock: self.clock.clone(),
            seconds: self.seconds.clone(),
            fallbacks: self.fallbacks.clone(),
        })
    }

    /// Gives the alarm up; its second's job is removed when no other alarm waits for it.
    pub async fn disarm(&self, alarm: Alarm) {
        let second = alarm.second;
        drop(alarm);
        let _turn = self.turn.lock().await;
        let unused = {
            let mut seconds = self.seconds();
            match seconds.get(&second) {
                Some(s) if s.alarms == 0 => seconds.remove(&second).and_then(|s| s.id),
                _ => None,
            }
        };
        if let Some(id) = unused {
            match tokio::time::timeout(CALL_LIMIT, self.jobs.remove(&id)).await {
                Ok(Ok(())) => {}
                // It may have fired already: then there is nothing to remove.
                Ok(Err(e)) => {
                    tracing::debug!(second, error = %e, "the one-shot job was not removed")
                }
                Err(_) => tracing::warn!(
                    second,
                    "tokio-cron-scheduler did not remove the job in time; it fires for no one"
                ),
            }
        }
    }

    /// How many alarms rang without their job (each logged as a warning).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the scheduler's ticker: no job fires after this.
    pub async fn shutdown(&self) {
        let mut jobs = self.jobs.clone();
        if let Err(e) = jobs.shutdown().await {
            tracing::warn!(error = %e, "tokio-cron-scheduler did not shut down cleanly");
        }
    }
}

/// One armed time.
pub struct Alarm {
    second: i64,
    at: DateTime<Utc>,
    rung: watch::Receiver<bool>,
    /// The job has fired (or the fallback came).
    rang: bool,
    by_fallback: bool,
    /// When to ring without the job (monotonic).
    fallback: tokio::time::Instant,
    clock: Arc<dyn WallClock>,
    seconds: Arc<std::sync::Mutex<std::collections::BTreeMap<i64, Second>>>,
    fallbacks: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for Alarm {
    fn drop(&mut self) {
        let mut seconds = self
            .seconds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = seconds.get_mut(&self.second) {
            s.alarms = s.alarms.saturating_sub(1);
        }
    }
}

impl Alarm {
    /// The wall-clock time it rings at.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// Whether it rang because its job did not fire.
    pub fn by_fallback(&self) -> bool {
        self.by_fallback
    }

    /// Resolves once the job has fired and the wall clock has reached `at`. Cancel-safe: a
    /// ring is kept once received.
    pub async fn rung(&mut self) {
        if !self.rang {
            let fired = tokio::select! {
                r = self.rung.wait_for(|fired| *fired) => r.is_ok(),
                _ = tokio::time::sleep_until(self.fallback) => false,
            };
            if !fired {
                // The job did not fire in time, or is gone (the scheduler stopped).
                tokio::time::sleep_until(self.fallback).await;
                tracing::warn!(at = %self.at, "tokio-cron-scheduler did not fire the one-shot job; running on tokio's timer");
                self.by_fallback = true;
                self.fallbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.rang = true;
        }
        // The crate may fire up to a second early (whole seconds, 500 ms polls).
        tokio::time::sleep(self.clock.wait_until(self.at)).await;
    }
}

/// A target's schedule on the daemon's scheduler: its next fire time armed as one one-shot job,
/// with the target's jitter drawn once per fire time.
pub struct Ticker {
    schedule: Schedule,
    max_jitter: Duration,
    /// The fire time croner gave and its alarm (the jitter included).
    armed: Option<(DateTime<Utc>, Alarm)>,
}

impl Ticker {
    pub fn new(schedule: Schedule, max_jitter: Duration) -> Ticker {
        Ticker {
            schedule,
            max_jitter,
            armed: None,
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Arms the first fire time after `now`, unless that one is armed already (a trigger in
    /// between changes nothing); returns when it rings, jitter included. `None` when the
    /// schedule has no time left, or the job cannot be added (logged).
    pub async fn arm(
        &mut self,
        scheduler: &Scheduler,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let next = self.schedule.next_after(now);
        if let (Some(next), Some((armed, alarm))) = (next, &self.armed)
            && *armed == next
        {
            return Some(alarm.at());
        }
        self.disarm(scheduler).await;
        let next = next?;
        let jitter = self.max_jitter.mul_f64(fastrand::f64());
        let at = next + chrono::Duration::from_std(jitter).unwrap_or_default();
        match scheduler.arm(at).await {
            Ok(alarm) => {
                self.armed = Some((next, alarm));
                Some(at)
            }
            Err(e) => {
                tracing::warn!(schedule = %self.schedule, error = %e, "the next scheduled run could not be armed");
                None
            }
        }
    }

    /// Waits for the armed time to ring and returns the fire time croner gave for it; never
    /// resolves when nothing is armed. Cancel-safe.
    pub async fn fired(&mut self) -> DateTime<Utc> {
        let Some((_, alarm)) = &mut self.armed else {
            return std::future::pending().await;
        };
        alarm.rung().await;
        let (next, _) = self
            .armed
            .take()
            .expect("the alarm that just rang is armed");
        next
    }

    /// Removes the armed job, if any.
    pub async fn disarm(&mut self, scheduler: &Scheduler) {
        if let Some((_, alarm)) = self.armed.take() {
            scheduler.disarm(alarm).await;
        }
    }
}

#[cfg(test)]
mod tests;
