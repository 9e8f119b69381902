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
