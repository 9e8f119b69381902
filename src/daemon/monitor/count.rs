//! A monitor's downtime count, and the downtime tag it shares with the target's other
//! monitors (other replicas, the next config version's monitor).
//!
//! With leases, every replica's monitor probes the target, but only the lease holder's writes
//! the tag. When another replica takes the lease over, its own count is not the truth: the
//! previous holder counted since its own start and wrote its count to the tag. So the count
//! keeps, beside the total it shows, the tag's value as last read and the downtime this monitor
//! observed itself after that value was written; the total of a monitor that does not write
//! (and of one that just took the lease over) is the tag's value plus that downtime.
//!
//! When the value was written cannot be read from the tag: a value is taken as written when
//! it was first read (or when this monitor wrote it). Own downtime between the write and that
//! read is then not added, so it is never counted twice; it is at most one observer period.

use chrono::{DateTime, Utc};

use crate::daemon::availability::{Availability, Report};

/// The downtime tag's value as this monitor knows it, and since when it has had it (at the
/// latest).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    value: String,
    at: DateTime<Utc>,
}

/// One target's downtime: what it shows and what it writes.
#[derive(Debug, Clone)]
pub(super) struct Count {
    slo: f64,
    since: DateTime<Utc>,
    availability: Availability,
    tag: Seen,
    /// Downtime this monitor observed itself, as `(from, to]`, oldest first, contiguous ones
    /// joined; only what ended after `tag.at` is kept.
    own: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    ((to - from).num_milliseconds() as f64 / 1000.0).max(0.0)
}

impl Count {
    /// A count of nothing yet, before the service's tags were read.
    pub(super) fn new(slo: f64, now: DateTime<Utc>) -> Count {
        Count {
            slo,
            since: now,
            availability: Availability::new(slo, now),
            tag: Seen {
                value: String::new(),
                at: now,
            },
            own: Vec::new(),
        }
    }

    /// Bases the count on the service's tags as a read asked for at `read_at` saw them: when
    /// observation started and the downtime tag's value (empty when there is none).
    pub(super) fn adopt(&mut self, since: DateTime<Utc>, downtime: &str, read_at: DateTime<Utc>) {
        self.since = since;
        self.tag = Seen {
            value: downtime.to_owned(),
            at: read_at,
        };
        self.own.clear();
        self.rebase();
    }

    /// When observation started, as another monitor wrote it.
    pub(super) fn set_since(&mut self, since: DateTime<Utc>) {
        self.since = since;
        // The tag as last read or written and the own downtime after it are the total.
        self.rebase();
    }

    /// A later read of the downtime tag; a read older than what is known is ignored (it was
    /// asked for before this monitor's own last write, say).
    pub(super) fn saw(&mut self, downtime: &str, read_at: DateTime<Utc>) {
        if read_at < self.tag.at || downtime == self.tag.value {
            return;
        }
        self.tag = Seen {
            value: downtime.to_owned(),
            at: read_at,
        };
        self.forget_own_before(read_at);
    }

    /// This monitor wrote `downtime` to the tag at `at`.
    pub(super) fn wrote(&mut self, downtime: String, at: DateTime<Utc>) {
        self.tag = Seen {
            value: downtime,
            at,
        };
        self.forget_own_before(at);
    }

    /// Downtime this monitor observed, in `(from, to]`.
    pub(super) fn add_downtime(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        if to <= from {
            return;
        }
        self.availability.add_downtime(to, seconds(from, to));
        match self.own.last_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ => self.own.push((from, to)),
        }
        // Older than the availability window: it would not count.
        let window = chrono::Duration::days(crate::daemon::availability::WINDOW_DAYS);
        self.own.retain(|(_, end)| *end > to - window);
    }

    /// The total from the tag's value and the own downtime after it was written.
    pub(super) fn rebase(&mut self) {
        let mut a = Availability::decode(self.slo, self.since, &self.tag.value);
        for (from, to) in &self.own {
            let from = (*from).max(self.tag.at);
            if *to > from {
                a.add_downtime(*to, seconds(from, *to));
            }
        }
        self.availability = a;
    }

    fn forget_own_before(&mut self, at: DateTime<Utc>) {
        self.own.retain(|(_, to)| *to > at);
    }

    /// The tag's value for the total.
    pub(super) fn encode(&self) -> String {
        self.availability.encode()
    }

    /// The downtime tag's value as last read or written.
    pub(super) fn tag_value(&self) -> &str {
        &self.tag.value
    }

    pub(super) fn report(&self, now: DateTime<Utc>) -> Report {
        self.availability.report(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 10, minute, second)
            .single()
            .expect("a time")
    }

    fn downtime(c: &Count) -> f64 {
        c.report(at(59, 0)).downtime_seconds
    }

    #[test]
    fn a_takeover_continues_from_the_previous_holders_count() {
        // Replica B starts while A holds the lease: the tag says A counted 30 s.
        let mut b = Count::new(0.999, at(0, 0));
        b.adopt(
            at(0, 0) - chrono::Duration::days(3),
            "20261202=30.0",
            at(0, 0),
        );
        // B sees 10 s of downtime A sees too; A writes 40 s, which B reads at 2:00.
        b.add_downtime(at(1, 0), at(1, 10));
        b.saw("20261202=40.0", at(2, 0));
        b.rebase();
        assert_eq!(downtime(&b), 40.0, "B's 10 s are in A's 40 s");
        // A dies; B observes 5 s more, then takes the lease over: 45 s, not B's own 45 s
        // from its start nor the 15 s it saw itself.
        b.add_downtime(at(3, 0), at(3, 5));
        b.rebase();
        assert_eq!(downtime(&b), 45.0);
        assert_eq!(b.encode(), "20261202=45.0");
    }

    #[test]
    fn a_previous_holder_that_counted_more_is_not_overwritten() {
        // B started with an empty tag, A counted 120 s B never saw (B's probes answered).
        let mut b = Count::new(0.999, at(0, 0));
        b.adopt(at(0, 0), "", at(0, 0));
        b.add_downtime(at(0, 30), at(0, 40));
        assert_eq!(downtime(&b), 10.0);
        b.saw("20261202=120.0", at(5, 0));
        // After A's write B saw 2 s more: A's 120 s and B's 2 s.
        b.add_downtime(at(5, 10), at(5, 12));
        b.rebase();
        assert_eq!(b.encode(), "20261202=122.0");
    }

    #[test]
    fn own_downtime_across_the_read_counts_only_after_it() {
        let mut b = Count::new(0.999, at(0, 0));
        b.adopt(at(0, 0), "", at(0, 0));
        // 20 s of downtime in two rounds, joined; the read at 1:10 falls in the middle.
        b.add_downtime(at(1, 0), at(1, 10));
        b.add_downtime(at(1, 10), at(1, 20));
        assert_eq!(b.own.len(), 1, "contiguous rounds are one interval");
        b.saw("20261202=50.0", at(1, 10));
        b.rebase();
        assert_eq!(downtime(&b), 60.0);
    }

    #[test]
    fn a_read_older_than_the_own_write_is_ignored() {
        let mut a = Count::new(0.999, at(0, 0));
        a.adopt(at(0, 0), "", at(0, 0));
        a.add_downtime(at(1, 0), at(1, 30));
        a.wrote(a.encode(), at(2, 0));
        // A read asked for before the write, taken after it, still shows the empty tag.
        a.saw("", at(1, 50));
        assert_eq!(a.tag_value(), "20261202=30.0");
        a.rebase();
        assert_eq!(downtime(&a), 30.0);
    }
}
