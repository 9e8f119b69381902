//! ECS's request throttling, opt-in (`SimOptions::ecs_rate_limits`): one token bucket per
//! group of actions for the simulator's (account, region), as the ECS API reference
//! ("Request throttling for the Amazon ECS API") describes; an empty bucket answers
//! `ThrottlingException` ("Rate exceeded", HTTP 400).
//!
//! The table is the simulator's own (DESIGN.md: `sim/` uses nothing of the crate but
//! `model`), written from /work/shared/FACTS.md and cross-checked against the client's
//! families in `ecs::budget`: where ECS documents no bucket, actions are grouped as the
//! client groups them, so that a client keeping to its budget stays inside these buckets.
//!
//! Buckets refill on real (wall-clock) time, not on the simulator's clock: a simulator run
//! at `speed` 60 still throttles at ECS's rates, because the client's budget it is meant
//! to check runs in real time.

use std::time::{Duration, Instant};

/// One bucket: `burst` tokens when full, `per_second` added back continuously.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub burst: f64,
    pub per_second: f64,
}

/// A group of ECS actions that draw from one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// DescribeServices and ListServices (FACTS: 100 / 20); with the other reads the client
    /// budgets together with them.
    ServiceReads,
    /// DescribeTasks and ListTasks: one bucket in ECS (100 / 20).
    Tasks,
    /// CreateService, UpdateService, DeleteService (50 / 5) and the task-set writes.
    ServiceWrites,
    /// RegisterTaskDefinition and DeregisterTaskDefinition (20 / 1).
    TaskDefinitions,
    /// List/DescribeServiceDeployments (50 / 20) and StopServiceDeployment.
    ServiceDeployments,
    /// DescribeClusters and ListClusters: the reference's own example, 50 / 20.
    ClusterReads,
    /// Every other ECS action (tags, CreateCluster, StopTask, …): 100 / 20.
    Other,
}

impl Family {
    const ALL: [Family; 7] = [
        Family::ServiceReads,
        Family::Tasks,
        Family::ServiceWrites,
        Family::TaskDefinitions,
        Family::ServiceDeployments,
        Family::ClusterReads,
        Family::Other,
    ];

    /// The family of an ECS operation, by name.
    pub fn of(op: &str) -> Family {
        match op {
            "DescribeServices"
            | "ListServices"
            | "DescribeTaskSets"
            | "DescribeTaskDefinition"
            | "ListTaskDefinitions"
            | "ListTaskDefinitionFamilies" => Family::ServiceReads,
            "ListTasks" | "DescribeTasks" => Family::Tasks,
            "CreateService"
            | "UpdateService"
            | "DeleteService"
            | "CreateTaskSet"
            | "UpdateTaskSet"
            | "UpdateServicePrimaryTaskSet"
            | "DeleteTaskSet" => Family::ServiceWrites,
            "RegisterTaskDefinition" | "DeregisterTaskDefinition" => Family::TaskDefinitions,
            "ListServiceDeployments" | "DescribeServiceDeployments" | "StopServiceDeployment" => {
                Family::ServiceDeployments
            }
            "DescribeClusters" | "ListClusters" => Family::ClusterReads,
            _ => Family::Other,
        }
    }

    pub fn bucket(self) -> Bucket {
        let (burst, per_second) = match self {
            Family::ServiceReads | Family::Tasks | Family::Other => (100.0, 20.0),
            Family::ServiceWrites => (50.0, 5.0),
            Family::TaskDefinitions => (20.0, 1.0),
            Family::ServiceDeployments | Family::ClusterReads => (50.0, 20.0),
        };
        Bucket { burst, per_second }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How early a call may come and still be served, in refill time. A client that paces
/// itself with the same bucket starts its clock when it takes the first token of a burst,
/// the simulator when that request arrives: if the first request of a burst takes longer
/// to arrive than a later paced one (the first one of a run opens the connection; on a
/// loaded machine a task waits for a core), the client is early by the difference by the
/// simulator's clock. Seen: the 21st of 25 budgeted RegisterTaskDefinition calls refused
/// with an allowance of 100 ms while other builds loaded the 2 cores. The allowance never
/// lets a bucket go further below empty than this much refill, so it adds no sustained
/// rate: at most 5 calls in the 20 /s buckets, 1 in the 5 /s one, none in the 1 /s one.
pub const GRACE: Duration = Duration::from_millis(250);

/// The buckets of one simulator, full at the start.
#[derive(Debug)]
pub struct Buckets {
    /// Per family: tokens at `at` (may dip below zero by up to [`GRACE`]'s worth).
    levels: [(f64, Instant); 7],
}

impl Buckets {
    pub fn new(now: Instant) -> Self {
        Self {
            levels: Family::ALL.map(|f| (f.bucket().burst, now)),
        }
    }

    /// Takes a token for `op` at `now`; false when its bucket is empty.
    pub fn take(&mut self, op: &str, now: Instant) -> bool {
        let family = Family::of(op);
        let b = family.bucket();
        let (tokens, at) = &mut self.levels[family.index()];
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        let level = (*tokens + elapsed * b.per_second).min(b.burst);
        *at = (*at).max(now);
        *tokens = level;
        if level + GRACE.as_secs_f64() * b.per_second >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_task_definition_serves_its_burst_then_one_a_second() {
        let start = Instant::now();
        let mut b = Buckets::new(start);
        let served = (0..40)
            .filter(|_| b.take("RegisterTaskDefinition", start))
            .count();
        assert_eq!(served, 20);
        // The other families are untouched.
        assert!(b.take("DescribeServices", start));
        assert!(!b.take(
            "DeregisterTaskDefinition",
            start + Duration::from_millis(500)
        ));
        assert!(b.take("DeregisterTaskDefinition", start + Duration::from_secs(1)));
        assert!(!b.take("RegisterTaskDefinition", start + Duration::from_secs(1)));
        // Ten seconds later ten tokens are back, not more.
        let later = start + Duration::from_secs(11);
        let served = (0..40)
            .filter(|_| b.take("RegisterTaskDefinition", later))
            .count();
        assert_eq!(served, 10);
    }

    #[test]
    fn a_call_a_little_early_is_served_but_no_sustained_rate_is_added() {
        let start = Instant::now();
        let mut b = Buckets::new(start);
        for _ in 0..20 {
            assert!(b.take("RegisterTaskDefinition", start));
        }
        // 50 ms early: inside the grace.
        let t = start + Duration::from_millis(950);
        assert!(b.take("RegisterTaskDefinition", t));
        // The next one a second after that is early by the same 50 ms plus nothing more.
        let t = t + Duration::from_millis(1_000);
        assert!(b.take("RegisterTaskDefinition", t));
        // But the bucket is in debt: a call 700 ms later (300 ms early) is refused.
        assert!(!b.take("RegisterTaskDefinition", t + Duration::from_millis(700)));
    }

    #[test]
    fn a_full_bucket_holds_no_more_than_its_burst() {
        let start = Instant::now();
        let mut b = Buckets::new(start);
        let later = start + Duration::from_secs(3_600);
        let served = (0..200).filter(|_| b.take("UpdateService", later)).count();
        // The burst of 50, and the one call the grace's 1.25 tokens (250 ms × 5 /s) allow.
        assert_eq!(served, 51);
        assert_eq!(
            Family::of("UpdateServicePrimaryTaskSet"),
            Family::ServiceWrites
        );
        assert_eq!(Family::of("TagResource"), Family::Other);
    }
}
