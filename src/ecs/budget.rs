//! Client-side rate budgets: one token bucket per ECS throttling family, shared by every
//! client of one (identity, region), so that the daemon waits for a token instead of being
//! throttled by ECS.
//!
//! ECS throttles each account and region with token buckets per group of actions (API
//! reference, "Request throttling for the Amazon ECS API"). A fleet-wide update otherwise
//! runs into the RegisterTaskDefinition bucket (20 burst, 1 /s) after 20 targets and then
//! retries into ThrottlingException; pacing ourselves with the same numbers keeps every
//! call inside the bucket and leaves the retries for real failures.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// One token bucket: `burst` calls at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub burst: u32,
    pub per_second: f64,
}

impl Bucket {
    pub const fn new(burst: u32, per_second: f64) -> Self {
        Self { burst, per_second }
    }

    /// The bucket as a governor quota. The config rejects `burst = 0` and rates outside
    /// `(0, 10000]`; a value that got here anyway is brought to the nearest usable one
    /// (at least one call, at least one call a day) rather than disabling the budget.
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        let per_second = if self.per_second.is_finite() && self.per_second > 0.0 {
            self.per_second.clamp(1.0 / 86_400.0, 1e9)
        } else {
            1.0 / 86_400.0
        };
        let period = Duration::from_secs_f64(1.0 / per_second);
        Quota::with_period(period)
            .expect("the period is at least one nanosecond: the rate is at most 1e9 /s")
            .allow_burst(burst)
    }
}

/// The budgets of one (identity, region): ECS's documented buckets by default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// DescribeServices, ListServices and the other ECS Describe*/List* reads.
    pub services: Bucket,
    /// ListTasks and DescribeTasks: one bucket in ECS.
    pub tasks: Bucket,
    /// CreateService, UpdateService, DeleteService and the task-set writes.
    pub service_writes: Bucket,
    /// RegisterTaskDefinition and DeregisterTaskDefinition.
    pub task_definitions: Bucket,
    /// List/DescribeServiceDeployments and StopServiceDeployment.
    pub service_deployments: Bucket,
    /// Tags, CloudWatch Logs and every other call; DynamoDB and STS draw from no bucket.
    pub other: Bucket,
}

impl Default for RateLimits {
    /// /work/shared/FACTS.md, "Throttling" (ECS API reference, "Request throttling").
    fn default() -> Self {
        Self {
            services: Bucket::new(100, 20.0),
            tasks: Bucket::new(100, 20.0),
            service_writes: Bucket::new(50, 5.0),
            task_definitions: Bucket::new(20, 1.0),
            service_deployments: Bucket::new(50, 20.0),
            other: Bucket::new(100, 20.0),
        }
    }
}

impl RateLimits {
    pub fn bucket(&self, family: Family) -> Bucket {
        match family {
            Family::Services => self.services,
            Family::Tasks => self.tasks,
            Family::ServiceWrites => self.service_writes,
            Family::TaskDefinitions => self.task_definitions,
            Family::ServiceDeployments => self.service_deployments,
            Family::Other => self.other,
        }
    }
}

/// An ECS throttling family: which bucket an operation draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Services,
    Tasks,
    ServiceWrites,
    TaskDefinitions,
    ServiceDeployments,
    Other,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Services,
        Family::Tasks,
        Family::ServiceWrites,
        Family::TaskDefinitions,
        Family::ServiceDeployments,
        Family::Other,
    ];

    /// The family of an operation, by its AWS name. Listed by name rather than by prefix:
    /// CloudWatch Logs' `DescribeLogGroups` is no ECS read and must not drain ECS's bucket.
    pub fn of(op: &str) -> Family {
        match op {
            "DescribeServices"
            | "ListServices"
            | "DescribeTaskSets"
            | "DescribeTaskDefinition"
            | "ListTaskDefinitions"
            | "ListTaskDefinitionFamilies"
            | "DescribeClusters"
            | "ListClusters" => Family::Services,
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
            _ => Family::Other,
        }
    }

    /// The family's name in the config (`[aws.rate_limits]`) and in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Family::Services => "services",
            Family::Tasks => "tasks",
            Family::ServiceWrites => "service_writes",
            Family::TaskDefinitions => "task_definitions",
            Family::ServiceDeployments => "service_deployments",
            Family::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// DynamoDB (the lease table) and STS have limits of their own, not ECS's: a lease renewal
/// must never wait behind a burst of ECS tag writes in the `other` bucket.
fn outside_ecs(op: &str) -> bool {
    matches!(
        op,
        "GetItem"
            | "PutItem"
            | "UpdateItem"
            | "DeleteItem"
            | "Query"
            | "Scan"
            | "BatchGetItem"
            | "BatchWriteItem"
            | "TransactGetItems"
            | "TransactWriteItems"
            | "CreateTable"
            | "DescribeTable"
            | "UpdateTimeToLive"
            | "DescribeTimeToLive"
            | "GetCallerIdentity"
            | "AssumeRole"
    )
}

/// How often calls of one family waited for a token, and how long in all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WaitCount {
    pub waits: u64,
    pub waited: Duration,
}

impl std::ops::AddAssign for WaitCount {
    fn add_assign(&mut self, rhs: Self) {
        self.waits += rhs.waits;
        self.waited += rhs.waited;
    }
}

/// governor on tokio's clock: a test with paused time advances the buckets with it, and
/// the daemon's waits are tokio sleeps that shutdown can cancel like any other.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// ECS calls in flight at once per (identity, region). Each holds an SDK future of about
/// 12 KiB and a connection (its buffers, its TLS state) until it ends; ECS's own buckets
/// allow 20 a second at most in any family, so this many at ~100 ms each never hold
/// a call back that a bucket would let through.
pub const MAX_IN_FLIGHT: usize = 32;

/// The token buckets of one (identity, region), with their wait counters.
pub(crate) struct Budget {
    limits: RateLimits,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    limiters: [Limiter; 6],
    waits: [AtomicU64; 6],
    waited_nanos: [AtomicU64; 6],
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Budget {
    pub(crate) fn new(limits: RateLimits) -> Self {
        for family in Family::ALL {
            let b = limits.bucket(family);
            if b.burst == 0 || !(b.per_second > 0.0 && b.per_second <= 10_000.0) {
                tracing::warn!(
                    family = family.label(),
                    burst = b.burst,
                    per_second = b.per_second,
                    "rate budget outside burst >= 1, 0 < per_second <= 10000; using the nearest usable value"
                );
            }
        }
        Self {
            limits,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            limiters: Family::ALL.map(|family| {
                RateLimiter::direct_with_clock(limits.bucket(family).quota(), TokioClock)
            }),
            waits: Default::default(),
            waited_nanos: Default::default(),
        }
    }

    /// One of the [`MAX_IN_FLIGHT`] slots for an ECS call (waits while all are out); `None`
    /// for a call outside ECS, which no slot holds back.
    pub(crate) async fn in_flight(
        &self,
        op: &'static str,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if outside_ecs(op) {
            return None;
        }
        self.in_flight.clone().acquire_owned().await.ok()
    }

    /// Waits until the bucket of `op`'s family has a token and takes it; how long it
    /// waited, when it had to. Dropping the future while it waits takes no token.
    pub(crate) async fn acquire(&self, op: &'static str) -> Option<Duration> {
        if outside_ecs(op) {
            return None;
        }
        let family = Family::of(op);
        let limiter = &self.limiters[family.index()];
        let mut started: Option<tokio::time::Instant> = None;
        // Several tasks may wake at the same instant for one token: the one that takes it
        // goes on, the others learn their new earliest time from governor and sleep again.
        while let Err(not_until) = limiter.check() {
            started.get_or_insert_with(tokio::time::Instant::now);
            let wait = not_until.wait_time_from(TokioClock.now());
            tokio::time::sleep(wait).await;
        }
        let waited = started?.elapsed();
        let i = family.index();
        self.waits[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.waited_nanos[i].fetch_add(nanos, Ordering::Relaxed);
        tracing::debug!(
            op,
            family = family.label(),
            waited_ms = waited.as_millis() as u64,
            "waited for the rate budget"
        );
        Some(waited)
    }

    /// Waits per family so far, every family listed.
    pub(crate) fn waits(&self) -> Vec<(Family, WaitCount)> {
        Family::ALL
            .iter()
            .map(|&family| {
                let i = family.index();
                let count = WaitCount {
                    waits: self.waits[i].load(Ordering::Relaxed),
                    waited: Duration::from_nanos(self.waited_nanos[i].load(Ordering::Relaxed)),
                };
                (family, count)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn register_task_definition_is_paced_at_one_per_second_after_the_burst() {
        let budget = Budget::new(RateLimits::default());
        let start = tokio::time::Instant::now();
        for _ in 0..20 {
            budget.acquire("RegisterTaskDefinition").await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the burst of 20 is there at once"
        );
        for _ in 0..5 {
            budget.acquire("DeregisterTaskDefinition").await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(6),
            "{elapsed:?}"
        );
        let waits: Vec<_> = budget.waits();
        let td = waits
            .iter()
            .find(|(f, _)| *f == Family::TaskDefinitions)
            .expect("every family is listed")
            .1;
        assert_eq!(td.waits, 5);
        assert!(td.waited >= Duration::from_secs(5), "{td:?}");
        assert!(
            waits
                .iter()
                .filter(|(f, _)| *f != Family::TaskDefinitions)
                .all(|(_, c)| *c == WaitCount::default())
        );
    }

    #[tokio::test]
    async fn at_most_max_in_flight_ecs_calls_at_once_and_lease_calls_are_not_held() {
        let budget = Budget::new(RateLimits::default());
        let mut held = Vec::new();
        for _ in 0..MAX_IN_FLIGHT {
            held.push(
                budget
                    .in_flight("TagResource")
                    .await
                    .expect("an ECS call has a slot"),
            );
        }
        // Every slot is out: the next ECS call waits, of any family.
        let waiting = budget.in_flight("DescribeTasks");
        tokio::pin!(waiting);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        // A lease write is not an ECS call: no slot, no wait.
        assert!(budget.in_flight("UpdateItem").await.is_none());
        // One call ends: the waiting one goes.
        held.pop();
        assert!(waiting.await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn families_draw_from_their_own_buckets() {
        let budget = Budget::new(RateLimits::default());
        for _ in 0..20 {
            budget.acquire("RegisterTaskDefinition").await;
        }
        let start = tokio::time::Instant::now();
        // The task-definition bucket is empty; the others are full.
        for op in [
            "DescribeServices",
            "ListTasks",
            "UpdateService",
            "TagResource",
            "DescribeLogGroups",
        ] {
            budget.acquire(op).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn lease_and_sts_calls_never_wait_for_ecs_tokens() {
        let budget = Budget::new(RateLimits {
            other: Bucket::new(1, 0.001),
            ..RateLimits::default()
        });
        budget.acquire("TagResource").await;
        let start = tokio::time::Instant::now();
        for op in [
            "UpdateItem",
            "GetItem",
            "PutItem",
            "Scan",
            "GetCallerIdentity",
        ] {
            assert_eq!(budget.acquire(op).await, None, "{op}");
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn operations_are_in_ecs_families() {
        assert_eq!(Family::of("DescribeTasks"), Family::of("ListTasks"));
        assert_eq!(Family::of("DescribeServices"), Family::Services);
        assert_eq!(
            Family::of("UpdateServicePrimaryTaskSet"),
            Family::ServiceWrites
        );
        assert_eq!(
            Family::of("StopServiceDeployment"),
            Family::ServiceDeployments
        );
        // CloudWatch Logs and tagging are not ECS's service reads.
        assert_eq!(Family::of("DescribeLogGroups"), Family::Other);
        assert_eq!(Family::of("TagResource"), Family::Other);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_outside_the_allowed_range_still_paces() {
        let limits = RateLimits {
            other: Bucket::new(0, f64::NAN),
            ..RateLimits::default()
        };
        let budget = Budget::new(limits);
        budget.acquire("TagResource").await;
        // The second call waits (one a day), it is not let through unlimited.
        let second = tokio::time::timeout(Duration::from_secs(3600), budget.acquire("TagResource"));
        assert!(second.await.is_err());
    }
}
