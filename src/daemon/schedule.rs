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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use tokio::sync::watch;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// A parsed schedule.
#[derive(Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
    text: String,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({} in {})", self.text, self.tz)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.tz == other.tz
    }
}

impl Schedule {
    /// Parses `sec min hour day-of-month month day-of-week [year]` in zone `tz`.
    pub fn parse(expr: &str, tz: &str) -> Result<Schedule, String> {
        let tz: Tz = tz.parse().map_err(|_| {
            format!("`{tz}` is not an IANA time zone (such as `UTC` or `Europe/Berlin`)")
        })?;
        let fields = expr.split_whitespace().count();
        if !(6..=7).contains(&fields) && !expr.trim_start().starts_with('@') {
            return Err(format!(
                "`{expr}` has {fields} fields; expected 6 (with seconds first), e.g. `0 30 3 * * *` for 03:30:00 every day"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            // Standard cron: a day matches when day-of-month OR day-of-week matches.
            .dom_and_dow(false)
            .build()
            .parse(expr)
            .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))?;
        Ok(Schedule {
            cron,
            tz,
            text: expr.to_owned(),
        })
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// How many fire times fall in `(from, to]`: the ones that passed while a run went on.
    pub fn fires_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        let mut n = 0;
        let mut t = from;
        while let Some(x) = self.next_after(t).filter(|x| *x <= to) {
            n += 1;
            t = x;
        }
        n
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.tz)
    }
}

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
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Mutex;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("a valid time")
    }

    /// A wall clock that skips idle time, as paused tokio time does: it stands still while
    /// the test works, and arming a wait moves it to the wait's end. tokio-cron-scheduler
    /// reads the real wall clock, which paused tokio time cannot move; with this clock every
    /// job is due when it is added, and the crate's 500 ms polls (tokio sleeps) pass at once
    /// on paused time: months of schedule in milliseconds, deterministically.
    struct SkipClock(Mutex<DateTime<Utc>>);

    impl SkipClock {
        fn at(t: DateTime<Utc>) -> Arc<SkipClock> {
            Arc::new(SkipClock(Mutex::new(t)))
        }
    }

    impl WallClock for SkipClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().expect("clock")
        }

        fn wait_until(&self, at: DateTime<Utc>) -> Duration {
            let mut now = self.0.lock().expect("clock");
            *now = (*now).max(at);
            Duration::ZERO
        }
    }

    /// Fires a schedule `count` times through the daemon's scheduler, as a target's loop does:
    /// arm the next time, wait for it to ring, note the wall clock, arm the next.
    async fn fires(s: &Schedule, start: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let clock = SkipClock::at(start);
        let scheduler = Scheduler::start(clock.clone()).await.expect("scheduler");
        let mut ticker = Ticker::new(s.clone(), Duration::ZERO);
        let mut out = Vec::new();
        while out.len() < count {
            let at = ticker
                .arm(&scheduler, clock.now())
                .await
                .expect("a next fire");
            let fired = ticker.fired().await;
            assert_eq!(fired, at, "no jitter");
            assert!(clock.now() >= fired, "never before its time");
            out.push(clock.now());
        }
        assert_eq!(scheduler.fallbacks(), 0, "every run was fired by the crate");
        scheduler.shutdown().await;
        out
    }

    #[tokio::test(start_paused = true)]
    async fn berlin_0330_follows_daylight_saving_time_while_running() {
        let s = Schedule::parse("0 30 3 * * *", "Europe/Berlin").expect("valid");
        // 2026: summer time starts 29 March, ends 25 October.
        let got = fires(&s, utc(2026, 3, 27, 12, 0), 3).await;
        assert_eq!(
            got,
            [
                utc(2026, 3, 28, 2, 30),
                utc(2026, 3, 29, 1, 30),
                utc(2026, 3, 30, 1, 30)
            ]
        );
        let got = fires(&s, utc(2026, 10, 24, 12, 0), 3).await;
        assert_eq!(
            got,
            [
                utc(2026, 10, 25, 2, 30),
                utc(2026, 10, 26, 2, 30),
                utc(2026, 10, 27, 2, 30)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_schedule_keeps_firing_for_months() {
        let s = Schedule::parse("0 30 3 * * *", "Europe/Berlin").expect("valid");
        let got = fires(&s, utc(2026, 1, 1, 0, 0), 400).await;
        assert_eq!(got.len(), 400);
        for pair in got.windows(2) {
            let gap = pair[1] - pair[0];
            // A day, give or take the hour of a DST change.
            assert!(
                gap >= chrono::Duration::hours(23) && gap <= chrono::Duration::hours(25),
                "{pair:?}"
            );
        }
        for t in &got {
            let local = t.with_timezone(&chrono_tz::Europe::Berlin);
            assert_eq!(local.format("%H:%M:%S").to_string(), "03:30:00", "{t}");
        }
        assert_eq!(
            got.last().map(|t| t.date_naive()),
            Some(chrono::NaiveDate::from_ymd_opt(2027, 2, 4).expect("date"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn day_of_month_or_day_of_week_as_in_standard_cron() {
        // Noon on the 13th, or on a Friday.
        let s = Schedule::parse("0 0 12 13 * FRI", "UTC").expect("valid");
        let days: Vec<String> = fires(&s, utc(2026, 2, 1, 0, 0), 6)
            .await
            .iter()
            .map(|t| t.format("%a %d").to_string())
            .collect();
        assert_eq!(
            days,
            ["Fri 06", "Fri 13", "Fri 20", "Fri 27", "Fri 06", "Fri 13"]
        );
        let s = Schedule::parse("0 0 12 13 * MON", "UTC").expect("valid");
        let got = fires(&s, utc(2026, 3, 1, 0, 0), 1).await;
        assert_eq!(
            got,
            [utc(2026, 3, 2, 12, 0)],
            "Monday 2 March comes before the 13th"
        );
    }

    #[test]
    fn fire_times_passed_during_a_run_are_counted() {
        let s = Schedule::parse("*/10 * * * * *", "UTC").expect("valid");
        let from = utc(2026, 5, 1, 12, 0);
        assert_eq!(s.fires_between(from, from), 0);
        assert_eq!(
            s.fires_between(from, from + chrono::Duration::seconds(35)),
            3,
            ":10, :20 and :30"
        );
        assert_eq!(
            s.fires_between(from, from + chrono::Duration::seconds(10)),
            1,
            "the end is included"
        );
    }

    /// A wall clock that stands still: what is armed against it stays in the future.
    struct FixedClock(DateTime<Utc>);

    impl WallClock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trigger_in_between_keeps_the_armed_job_and_its_jitter() {
        let now = utc(2026, 5, 1, 12, 0);
        let scheduler = Scheduler::start(Arc::new(FixedClock(now)))
            .await
            .expect("scheduler");
        let s = Schedule::parse("0 0 13 * * *", "UTC").expect("valid");
        let mut ticker = Ticker::new(s, Duration::from_secs(600));
        let first = ticker.arm(&scheduler, now).await.expect("armed");
        assert!(first >= utc(2026, 5, 1, 13, 0) && first <= utc(2026, 5, 1, 13, 10));
        let again = ticker.arm(&scheduler, now).await.expect("armed");
        assert_eq!(again, first, "the same job, the same jitter");
        let mut jobs = scheduler.jobs.clone();
        assert!(jobs.time_till_next_job().await.expect("ask").is_some());
        ticker.disarm(&scheduler).await;
        assert_eq!(
            jobs.time_till_next_job().await.expect("ask"),
            None,
            "disarm removes the job"
        );
        scheduler.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn after_shutdown_no_job_fires_and_an_alarm_rings_only_by_the_fallback() {
        let clock = SkipClock::at(utc(2026, 5, 1, 12, 0));
        let scheduler = Scheduler::start(clock.clone()).await.expect("scheduler");
        scheduler.shutdown().await;
        let mut alarm = scheduler.arm(utc(2026, 5, 1, 12, 0)).await.expect("armed");
        let started = tokio::time::Instant::now();
        alarm.rung().await;
        assert!(alarm.by_fallback());
        assert!(started.elapsed() >= FALLBACK_AFTER);
        assert_eq!(scheduler.fallbacks(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_targets_at_one_time_share_one_job() {
        let at = utc(2026, 5, 1, 3, 30);
        let clock = SkipClock::at(at - chrono::Duration::hours(1));
        let scheduler = Scheduler::start(clock.clone()).await.expect("scheduler");
        let mut alarms = Vec::new();
        for _ in 0..1000 {
            alarms.push(scheduler.arm(at).await.expect("armed"));
        }
        assert_eq!(scheduler.seconds().len(), 1, "one job");
        assert_eq!(scheduler.seconds()[&at.timestamp()].alarms, 1000);
        for a in &mut alarms {
            a.rung().await;
        }
        assert_eq!(scheduler.fallbacks(), 0, "the one job rang them all");
        assert_eq!(clock.now(), at);
    }

    /// The defect the sharing works around, shown on the crate alone: its job runner hears of
    /// due jobs through a broadcast channel of 200 places and drops what it falls behind on.
    #[tokio::test(start_paused = true)]
    async fn tokio_cron_scheduler_loses_jobs_when_more_than_200_are_due_in_one_poll() {
        let jobs = JobScheduler::new().await.expect("scheduler");
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..300 {
            let ran = ran.clone();
            let job = Job::new_one_shot_at_instant_async(std::time::Instant::now(), move |_, _| {
                ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Box::pin(async {})
            })
            .expect("job");
            jobs.add(job).await.expect("added");
        }
        jobs.start().await.expect("started");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let ran = ran.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            ran < 300,
            "all 300 jobs ran: tokio-cron-scheduler no longer drops activations, and Scheduler's sharing of a second's job is no longer needed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_the_crate_drops_jobs_their_alarms_ring_by_the_fallback() {
        // 300 alarms at 300 different seconds, all past due when armed: 300 jobs due at once.
        let t0 = utc(2026, 5, 1, 12, 0);
        let scheduler = Scheduler::start(Arc::new(FixedClock(t0 + chrono::Duration::hours(1))))
            .await
            .expect("scheduler");
        let mut alarms = Vec::new();
        for i in 0..300 {
            alarms.push(
                scheduler
                    .arm(t0 + chrono::Duration::seconds(i))
                    .await
                    .expect("armed"),
            );
        }
        for a in &mut alarms {
            a.rung().await;
        }
        let late = alarms.iter().filter(|a| a.by_fallback()).count() as u64;
        assert!(late > 0, "the crate dropped none of 300 due jobs");
        assert_eq!(scheduler.fallbacks(), late);
        // Giving alarms up still ends, even when the crate's deleter has stopped.
        for a in alarms {
            scheduler.disarm(a).await;
        }
    }

    /// Real time: the crate's one-shot job fires early (it keeps whole seconds); the alarm does
    /// not ring before its time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_fires_early_rings_at_its_time() {
        let scheduler = Scheduler::start(Arc::new(SystemClock))
            .await
            .expect("scheduler");
        let at = Utc::now() + chrono::Duration::milliseconds(1990);
        let mut alarm = scheduler.arm(at).await.expect("armed");
        alarm
            .rung
            .clone()
            .wait_for(|fired| *fired)
            .await
            .expect("the job fired");
        let fired = Utc::now();
        assert!(
            fired < at,
            "tokio-cron-scheduler fired at {fired}, not before {at}: it no longer truncates to whole seconds, and Alarm::rung need not wait the rest"
        );
        alarm.rung().await;
        assert!(Utc::now() >= at);
        assert!(!alarm.by_fallback());
        scheduler.shutdown().await;
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_allowed() {
        let e = Schedule::parse("30 3 * * *", "UTC").expect_err("five fields");
        assert!(e.contains("has 5 fields; expected 6"), "{e}");
        let e = Schedule::parse("0 61 3 * * *", "UTC").expect_err("minute 61");
        assert!(e.contains("not a valid cron expression"), "{e}");
        let e = Schedule::parse("0 30 3 * * *", "Mars/Olympus").expect_err("zone");
        assert!(e.contains("not an IANA time zone"), "{e}");
    }
}

/// A maintenance window: days of the week and a time span in a time zone.
/// A span whose end is before its start runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub days: Vec<chrono::Weekday>,
    pub from: chrono::NaiveTime,
    pub to: chrono::NaiveTime,
}

impl Window {
    /// Whether `t` falls in the window, in zone `tz`.
    pub fn contains(&self, t: DateTime<Utc>, tz: Tz) -> bool {
        use chrono::Datelike;
        let local = t.with_timezone(&tz);
        let time = local.time();
        let today = local.weekday();
        if self.from <= self.to {
            self.days.contains(&today) && time >= self.from && time < self.to
        } else {
            (self.days.contains(&today) && time >= self.from)
                || (self.days.contains(&today.pred()) && time < self.to)
        }
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;
    use chrono::{NaiveTime, TimeZone, Weekday};

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn a_weekend_night_window_in_berlin() {
        let w = Window {
            days: vec![Weekday::Sat, Weekday::Sun],
            from: NaiveTime::from_hms_opt(2, 0, 0).expect("time"),
            to: NaiveTime::from_hms_opt(5, 0, 0).expect("time"),
        };
        let berlin = chrono_tz::Europe::Berlin;
        // Saturday 21 November 2026, 03:00 in Berlin is 02:00 UTC.
        assert!(w.contains(at(21, 2, 0), berlin));
        assert!(!w.contains(at(21, 4, 0), berlin), "05:00 local is outside");
        assert!(!w.contains(at(20, 2, 0), berlin), "Friday is outside");
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_starts() {
        let w = Window {
            days: vec![Weekday::Fri],
            from: NaiveTime::from_hms_opt(23, 0, 0).expect("time"),
            to: NaiveTime::from_hms_opt(1, 0, 0).expect("time"),
        };
        assert!(w.contains(at(20, 23, 30), chrono_tz::UTC), "Friday 23:30");
        assert!(
            w.contains(at(21, 0, 30), chrono_tz::UTC),
            "Saturday 00:30, still Friday's window"
        );
        assert!(
            !w.contains(at(21, 23, 30), chrono_tz::UTC),
            "Saturday 23:30"
        );
    }
}
