//! When a target may roll: its cron schedule in an IANA time zone, and its
//! maintenance window. Parsed once, where the config is read; the daemon's
//! runner (`daemon::schedule`) only asks these for times.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// Why a schedule or a time zone was refused: what was found and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("`{0}` is not an IANA time zone (such as `UTC` or `Europe/Berlin`)")]
    Zone(String),
    #[error(
        "`{expr}` has {fields} fields; expected 6 (with seconds first), e.g. `0 30 3 * * *` for 03:30:00 every day"
    )]
    Fields { expr: String, fields: usize },
    #[error("`{expr}` is not a valid cron expression: {why}")]
    Cron { expr: String, why: String },
}

/// Parses an IANA time zone name.
pub fn zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse()
        .map_err(|_| ScheduleError::Zone(name.to_owned()))
}

/// A parsed schedule: a cron expression with seconds, in a time zone.
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
    pub fn parse(expr: &str, tz: &str) -> Result<Schedule, ScheduleError> {
        let tz = zone(tz)?;
        Self::parse_in(expr, tz)
    }

    /// Parses `sec min hour day-of-month month day-of-week [year]` in a parsed zone.
    pub fn parse_in(expr: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let fields = expr.split_whitespace().count();
        if !(6..=7).contains(&fields) && !expr.trim_start().starts_with('@') {
            return Err(ScheduleError::Fields {
                expr: expr.to_owned(),
                fields,
            });
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            // Standard cron: a day matches when day-of-month OR day-of-week matches.
            .dom_and_dow(false)
            .build()
            .parse(expr)
            .map_err(|e| ScheduleError::Cron {
                expr: expr.to_owned(),
                why: e.to_string(),
            })?;
        Ok(Schedule {
            cron,
            tz,
            text: expr.to_owned(),
        })
    }

    /// The same expression in another zone (the zone is a field of its own in the config).
    pub fn in_zone(mut self, tz: Tz) -> Schedule {
        self.tz = tz;
        self
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
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
mod tests {
    use super::*;
    use chrono::{NaiveTime, TimeZone, Weekday};

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_allowed() {
        let e = Schedule::parse("30 3 * * *", "UTC")
            .expect_err("five fields")
            .to_string();
        assert!(e.contains("has 5 fields; expected 6"), "{e}");
        let e = Schedule::parse("0 61 3 * * *", "UTC")
            .expect_err("minute 61")
            .to_string();
        assert!(e.contains("not a valid cron expression"), "{e}");
        let e = Schedule::parse("0 30 3 * * *", "Mars/Olympus")
            .expect_err("zone")
            .to_string();
        assert!(e.contains("not an IANA time zone"), "{e}");
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
