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
//! What the crate does not do, and [`Alarm`] makes up for: a one-shot job
//! keeps its time as whole wall-clock seconds and the scheduler looks every
//! 500 ms, so a job may fire up to a second early (or half a second late).
//! An alarm that fired early waits the rest on tokio's timer: no run starts
//! before its time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use tokio::sync::mpsc;
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

/// The daemon's one tokio-cron-scheduler, used for one-shot jobs only.
///
/// Its jobs do nothing but ring an [`Alarm`]: the run itself happens in the target's loop,
/// which the daemon's shutdown joins (the crate's own shutdown does not wait for jobs).
pub struct Scheduler {
    jobs: JobScheduler,
    clock: Arc<dyn WallClock>,
}

impl Scheduler {
    /// Starts the scheduler's ticker.
    pub async fn start(clock: Arc<dyn WallClock>) -> Result<Scheduler, ScheduleError> {
        let jobs = JobScheduler::new().await.map_err(ScheduleError::Start)?;
        jobs.start().await.map_err(ScheduleError::Start)?;
        Ok(Scheduler { jobs, clock })
    }

    /// Adds a one-shot job that rings the returned alarm when the wall clock reaches `at`.
    pub async fn arm(&self, at: DateTime<Utc>) -> Result<Alarm, ScheduleError> {
        let wait = self.clock.wait_until(at);
        let instant = std::time::Instant::now()
            .checked_add(wait)
            .ok_or(ScheduleError::TooFar(at))?;
        // Room for one ring: should the crate fire a job twice, the second finds it full.
        let (ring, rung) = mpsc::channel(1);
        let job = Job::new_one_shot_at_instant_async(instant, move |_, _| {
            let _ = ring.try_send(());
            Box::pin(async {})
        })
        .map_err(|source| ScheduleError::Arm { at, source })?;
        let id = self
            .jobs
            .add(job)
            .await
            .map_err(|source| ScheduleError::Arm { at, source })?;
        Ok(Alarm {
            id,
            at,
            rung: Some(rung),
            clock: self.clock.clone(),
        })
    }

    /// Removes the alarm's job (it may have fired already: then there is nothing to remove).
    pub async fn disarm(&self, alarm: Alarm) {
        if let Err(e) = self.jobs.remove(&alarm.id).await {
            tracing::debug!(at = %alarm.at, error = %e, "the one-shot job was not removed");
        }
    }

    /// Stops the scheduler's ticker: no job fires after this.
    pub async fn shutdown(&self) {
        let mut jobs = self.jobs.clone();
        if let Err(e) = jobs.shutdown().await {
            tracing::warn!(error = %e, "tokio-cron-scheduler did not shut down cleanly");
        }
    }
}

/// One armed one-shot job.
pub struct Alarm {
    id: uuid::Uuid,
    at: DateTime<Utc>,
    /// `None` once the job has fired.
    rung: Option<mpsc::Receiver<()>>,
    clock: Arc<dyn WallClock>,
}

impl Alarm {
    /// The wall-clock time it rings at.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// Resolves once the job has fired and the wall clock has reached `at`; never when the job
    /// went without firing (the scheduler stopped). Cancel-safe: a ring is kept once received.
    pub async fn rung(&mut self) {
        if let Some(rx) = &mut self.rung {
            if rx.recv().await.is_none() {
                return std::future::pending().await;
            }
            self.rung = None;
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
    async fn nothing_rings_after_the_scheduler_shut_down() {
        let clock = SkipClock::at(utc(2026, 5, 1, 12, 0));
        let scheduler = Scheduler::start(clock.clone()).await.expect("scheduler");
        scheduler.shutdown().await;
        let mut alarm = scheduler.arm(utc(2026, 5, 1, 12, 0)).await.expect("armed");
        let rang = tokio::time::timeout(Duration::from_secs(60), alarm.rung()).await;
        assert!(rang.is_err(), "a job fired after shutdown");
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
            .as_mut()
            .expect("not fired yet")
            .recv()
            .await
            .expect("the job fired");
        let fired = Utc::now();
        alarm.rung = None;
        assert!(
            fired < at,
            "tokio-cron-scheduler fired at {fired}, not before {at}: it no longer truncates to whole seconds, and Alarm::rung need not wait the rest"
        );
        alarm.rung().await;
        assert!(Utc::now() >= at);
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
