//! When a target's rollouts run: a cron expression with seconds, in an IANA
//! time zone, evaluated with croner.
//!
//! Why not tokio-cron-scheduler, the named scheduler: in 0.15.1 a job fixes
//! its UTC offset when it is created (a 03:30 Europe/Berlin job stays at the
//! winter offset after the change to summer time), combines day-of-month and
//! day-of-week with AND, may stop firing repeated jobs under load, and lets
//! runs overlap. This module computes every next fire time afresh from the
//! wall clock in the target's zone, so DST changes apply while the daemon
//! runs, day fields follow standard cron (OR), and the loop that waits for it
//! (in `runner`) never overlaps itself.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

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
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.tz)
    }
}

/// The wall clock the daemon schedules by.
pub trait WallClock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A wall clock that follows tokio's clock from a fixed start: with paused
/// tokio time, months of schedule pass in milliseconds, deterministically.
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_wall: DateTime<Utc>) -> Self {
        Self {
            start_wall,
            start: tokio::time::Instant::now(),
        }
    }
}

impl WallClock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed =
            chrono::Duration::from_std(self.start.elapsed()).unwrap_or(chrono::Duration::MAX);
        self.start_wall + elapsed
    }
}

/// How long to wait from `now` until `at` (zero if it has passed).
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("a valid time")
    }

    /// Fires a schedule in a loop on paused tokio time, as the runner does.
    async fn fires(s: &Schedule, start: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let clock = TokioClock::starting_at(start);
        let mut out = Vec::new();
        while out.len() < count {
            let next = s.next_after(clock.now()).expect("a next fire");
            tokio::time::sleep(until(clock.now(), next)).await;
            out.push(clock.now());
        }
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

    #[test]
    fn day_of_month_or_day_of_week_as_in_standard_cron() {
        // Noon on the 13th, or on a Friday.
        let s = Schedule::parse("0 0 12 13 * FRI", "UTC").expect("valid");
        let mut t = utc(2026, 2, 1, 0, 0);
        let mut days = Vec::new();
        for _ in 0..6 {
            t = s.next_after(t).expect("next");
            days.push(t.format("%a %d").to_string());
        }
        assert_eq!(
            days,
            ["Fri 06", "Fri 13", "Fri 20", "Fri 27", "Fri 06", "Fri 13"]
        );
        let s = Schedule::parse("0 0 12 13 * MON", "UTC").expect("valid");
        let t = s.next_after(utc(2026, 3, 1, 0, 0)).expect("next");
        assert_eq!(
            t,
            utc(2026, 3, 2, 12, 0),
            "Monday 2 March comes before the 13th"
        );
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
