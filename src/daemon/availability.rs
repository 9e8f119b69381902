//! Availability against the SLO: time in which no task of a target answered
//! healthy, per UTC day over the last 30 days, the ratio it leaves and the
//! error budget. Kept compactly in a service tag, so a restart does not reset it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The window availability is measured over.
pub const WINDOW_DAYS: i64 = 30;
/// The service tag holding the downtime per day.
pub const TAG: &str = crate::model::marks::DOWNTIME;
/// The service tag holding when observation started.
pub const SINCE_TAG: &str = crate::model::marks::OBSERVED_SINCE;

/// Downtime seconds per day.
#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    slo: f64,
    since: DateTime<Utc>,
    days: BTreeMap<NaiveDate, f64>,
}

/// What the monitor reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// 0..=1 over the observed part of the window.
    pub availability: f64,
    pub downtime_seconds: f64,
    /// Allowed downtime in the window minus the downtime in it (negative when spent).
    pub budget_remaining_seconds: f64,
}

impl Availability {
    /// `slo` as a fraction, e.g. 0.99999.
    pub fn new(slo: f64, since: DateTime<Utc>) -> Self {
        Self {
            slo,
            since,
            days: BTreeMap::new(),
        }
    }

    /// Adds `seconds` of downtime ending at `now`, split over the days it spans.
    pub fn add_downtime(&mut self, now: DateTime<Utc>, seconds: f64) {
        let mut end = now;
        let mut left = seconds.max(0.0);
        while left > 0.0 {
            let day = end.date_naive();
            let day_start = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
            let in_day = ((end - day_start).num_milliseconds() as f64 / 1000.0).min(left);
            let take = if in_day <= 0.0 { left } else { in_day };
            *self.days.entry(day).or_default() += take;
            left -= take;
            end = day_start - Duration::milliseconds(1);
        }
        self.forget_before(now);
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let first = (now - Duration::days(WINDOW_DAYS - 1)).date_naive();
        self.days.retain(|d, _| *d >= first);
    }

    pub fn report(&self, now: DateTime<Utc>) -> Report {
        let window_start = now - Duration::days(WINDOW_DAYS);
        let observed_from = self.since.max(window_start);
        let observed = ((now - observed_from).num_milliseconds() as f64 / 1000.0).max(1.0);
        let first = window_start.date_naive();
        let downtime: f64 = self
            .days
            .iter()
            .filter(|(d, _)| **d >= first)
            .map(|(_, s)| s)
            .sum();
        let allowed = WINDOW_DAYS as f64 * 86_400.0 * (1.0 - self.slo);
        Report {
            availability: (1.0 - downtime / observed).clamp(0.0, 1.0),
            downtime_seconds: downtime,
            budget_remaining_seconds: allowed - downtime,
        }
    }

    /// The tag value: `YYYYMMDD=seconds` for days with downtime, newest last,
    /// cut to the 256 characters a tag value may hold (oldest days dropped first).
    pub fn encode(&self) -> String {
        let mut parts: Vec<String> = self
            .days
            .iter()
            .filter(|(_, s)| **s > 0.0)
            .map(|(d, s)| format!("{}={:.1}", d.format("%Y%m%d"), s))
            .collect();
        while parts.join(" ").len() > 256 {
            parts.remove(0);
        }
        parts.join(" ")
    }

    /// Reads a tag value; unreadable entries are skipped (a person may have edited it).
    pub fn decode(slo: f64, since: DateTime<Utc>, text: &str) -> Self {
        let days = text
            .split_whitespace()
            .filter_map(|p| {
                let (d, s) = p.split_once('=')?;
                let day = NaiveDate::parse_from_str(d, "%Y%m%d").ok()?;
                let secs: f64 = s
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
                Some((day, secs))
            })
            .collect();
        Self { slo, since, days }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn five_nines_allow_26_seconds_in_30_days() {
        let a = Availability::new(0.99999, t(1, 0) - Duration::days(40));
        let r = a.report(t(1, 0));
        assert!((r.budget_remaining_seconds - 25.92).abs() < 0.01, "{r:?}");
        assert_eq!(r.availability, 1.0);
    }

    #[test]
    fn downtime_spends_the_budget_and_leaves_the_window_after_30_days() {
        let mut a = Availability::new(0.99999, t(1, 0) - Duration::days(40));
        a.add_downtime(t(2, 12), 30.0);
        let r = a.report(t(3, 0));
        assert!(r.budget_remaining_seconds < 0.0, "{r:?}");
        assert!(r.availability < 1.0 && r.availability > 0.9999, "{r:?}");
        let later = a.report(t(2, 12) + Duration::days(31));
        assert_eq!(later.downtime_seconds, 0.0);
    }

    #[test]
    fn downtime_across_midnight_is_split_between_days() {
        let mut a = Availability::new(0.999, t(1, 0));
        a.add_downtime(
            Utc.with_ymd_and_hms(2026, 11, 5, 0, 0, 10)
                .single()
                .expect("time"),
            30.0,
        );
        assert_eq!(a.encode(), "20261104=20.0 20261105=10.0");
    }

    #[test]
    fn the_tag_round_trips_and_stays_within_256_characters() {
        let mut a = Availability::new(0.99999, t(1, 0));
        for d in 1..=29 {
            a.add_downtime(t(d, 12), 1.5);
        }
        let text = a.encode();
        assert!(text.len() <= 256, "{}", text.len());
        let b = Availability::decode(0.99999, t(1, 0), &text);
        assert_eq!(b.encode(), text);
        assert!(text.ends_with("20261129=1.5"), "newest days are kept");
        let c = Availability::decode(0.99999, t(1, 0), "garbage 20261101=x 20261102=2.0");
        assert_eq!(c.encode(), "20261102=2.0");
    }
}
