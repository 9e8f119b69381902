//! The long-running side: wiring config into engines (and, to come, cron
//! schedules, signals, single flight per service, the availability monitor).

pub mod schedule;
pub mod wiring;
