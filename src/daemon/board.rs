//! What the daemon knows about its targets, for `/status` and `/metrics`.
//! Memory is only a cache here: ECS tags hold what must survive a restart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::ecs::CallCount;

/// Why a reconcile started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    Start,
    Schedule,
    Reload,
    Manual,
    /// The retry armed after a retriable failure (not limited by the window or the budget).
    Retry,
    /// This replica just took the target's lease (it resumes what the previous holder left).
    Lease,
}

/// One target as the status server shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetStatus {
    pub cluster: String,
    pub service: String,
    pub schedule: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub running: bool,
    pub last_trigger: Option<Trigger>,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    /// The revision the last reconcile left verified (or restored).
    pub revision: Option<String>,
    pub last_error: Option<String>,
    pub outcomes: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub missed_fires: u64,
    pub coalesced_triggers: u64,
    /// Scheduled runs skipped because the error budget was spent.
    pub skipped_for_budget: u64,
    /// Scheduled runs skipped because they fell outside the maintenance window.
    pub skipped_outside_window: u64,
    /// Version discoveries that failed (the running version was kept).
    pub discovery_failures: u64,
    /// When the retry armed after a retriable failure runs; `None` when none is pending.
    pub retry_at: Option<DateTime<Utc>>,
    /// Consecutive retriable failures; 0 after a finished reconcile or a failure not worth retrying.
    pub retry_attempt: u32,
    /// The wait the pending retry was armed with, in seconds; 0 when none is pending.
    pub retry_backoff_seconds: f64,
    /// Retries run since the daemon started.
    pub retries: u64,
    /// Over the last 30 days (observed part), 0..=1.
    pub availability: Option<f64>,
    pub downtime_seconds: f64,
    pub error_budget_remaining_seconds: Option<f64>,
    pub probes_ok: u64,
    pub probes_failed: u64,
    pub probe_latency_seconds_sum: f64,
    /// The Consul destination the daemon keeps current, when the target has one.
    pub mesh: Option<MeshStatus>,
    /// What the last verified ActiveGates reported in Dynatrace before the old ones were
    /// removed (with `[target.verify.dynatrace]`).
    pub connected_hosts: Option<ConnectedHosts>,
}

impl TargetStatus {
    /// The status of a target that a reload kept: `self` (built from the new config) for where
    /// it runs and its schedule, and history from `prev` for everything else, so that counters
    /// never go back to 0 and an in-flight reconcile (its loop ends after it) stays visible.
    /// Every field is named below without `..`: a new field does not compile until it is put
    /// in one of the two groups.
    fn reloaded(self, prev: &TargetStatus) -> TargetStatus {
        let TargetStatus {
            // From the new config; the new loop arms `next_run` itself.
            cluster,
            service,
            schedule,
            next_run,
            // A pending retry belongs to the loop that armed it; the new loop reconciles at once.
            retry_at,
            retry_attempt,
            retry_backoff_seconds,
            // History: taken from `prev`.
            running: _,
            last_trigger: _,
            last_started: _,
            last_finished: _,
            last_outcome: _,
            revision: _,
            last_error: _,
            outcomes: _,
            errors: _,
            missed_fires: _,
            coalesced_triggers: _,
            skipped_for_budget: _,
            skipped_outside_window: _,
            discovery_failures: _,
            retries: _,
            availability: _,
            downtime_seconds: _,
            error_budget_remaining_seconds: _,
            probes_ok: _,
            probes_failed: _,
            probe_latency_seconds_sum: _,
            mesh: _,
            connected_hosts: _,
        } = self;
        TargetStatus {
            cluster,
            service,
            schedule,
            next_run,
            retry_at,
            retry_attempt,
            retry_backoff_seconds,
            ..prev.clone()
        }
    }
}

/// OneAgents connected to newly verified ActiveGates, as Dynatrace's `connectedHosts` says
/// (information, not a gate: OneAgents move over gradually).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConnectedHosts {
    pub revision: String,
    /// New ActiveGates the environment listed online.
    pub activegates: u32,
    /// OneAgents connected to them.
    pub hosts: u64,
    /// OneAgents connected to the ActiveGates being replaced, when any were listed.
    pub old_hosts: Option<u64>,
    pub at: Option<DateTime<Utc>>,
}

/// The target's Consul service-mesh destination, as last written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MeshStatus {
    /// The addresses the destination names (as last written or found).
    pub destination: Vec<String>,
    /// `created`, `updated` or `unchanged`.
    pub last_result: Option<String>,
    pub last_written: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// What the terminating gateway's Envoy showed after the last write.
    pub gateway: Option<String>,
    pub gateway_healthy: Option<bool>,
    pub updates: u64,
    pub failures: u64,
}

#[derive(Debug, Default)]
struct State {
    targets: BTreeMap<String, TargetStatus>,
    triggers: BTreeMap<String, mpsc::Sender<Trigger>>,
    aws: BTreeMap<String, CallCount>,
    reloads: u64,
    reload_failures: u64,
    last_reload_error: Option<String>,
    /// With `[daemon.lease]`: this replica and its leases.
    lease: Option<super::lease::LeaseStatus>,
}

/// Shared by the runners (writers) and the status server (reader).
#[derive(Debug)]
pub struct Board {
    state: Mutex<State>,
    /// Per target; kept across reloads like the other counters.
    probe_latency:
        prometheus_client::metrics::family::Family<TargetLabel, Histogram, fn() -> Histogram>,
    /// The run's probe slots and event-loop lateness: the daemon hands it to every prober.
    load: std::sync::Arc<crate::health::load::Load>,
}

impl Default for Board {
    fn default() -> Self {
        Board {
            load: std::sync::Arc::default(),
            state: Mutex::default(),
            probe_latency: prometheus_client::metrics::family::Family::new_with_constructor(
                probe_histogram,
            ),
        }
    }
}

/// What `/status` answers.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub targets: BTreeMap<String, TargetStatus>,
    pub reloads: u64,
    pub reload_failures: u64,
    pub last_reload_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<super::lease::LeaseStatus>,
}

impl Board {
    /// The run's probe slots and event-loop lateness.
    pub fn load(&self) -> &std::sync::Arc<crate::health::load::Load> {
        &self.load
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // Never held across an await; a poisoned lock still holds consistent counters.
        f(&mut self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    pub fn target(&self, name: &str, f: impl FnOnce(&mut TargetStatus)) {
        self.with(|s| f(s.targets.entry(name.to_owned()).or_default()));
    }

    /// Replaces the set of targets and their trigger channels (start, reload). A target that
    /// stays keeps what the daemon learnt about it ([`TargetStatus::reloaded`]).
    pub fn set_targets(&self, entries: Vec<(String, TargetStatus, mpsc::Sender<Trigger>)>) {
        self.with(|s| {
            let old = std::mem::take(&mut s.targets);
            s.triggers.clear();
            for (name, status, tx) in entries {
                let status = match old.get(&name) {
                    Some(prev) => status.reloaded(prev),
                    None => status,
                };
                s.targets.insert(name.clone(), status);
                s.triggers.insert(name, tx);
            }
            for gone in old.into_keys().filter(|n| !s.targets.contains_key(n)) {
                self.probe_latency.remove(&TargetLabel { target: gone });
            }
        });
    }

    /// Asks a target for a reconcile; `false` if no such target. A request while
    /// one is already pending is merged into it.
    pub fn trigger(&self, name: &str, why: Trigger) -> bool {
        let Some(tx) = self.with(|s| s.triggers.get(name).cloned()) else {
            return false;
        };
        if tx.try_send(why).is_err() {
            self.target(name, |t| t.coalesced_triggers += 1);
        }
        true
    }

    pub fn add_aws_counts(&self, counts: BTreeMap<&'static str, CallCount>) {
        self.with(|s| {
            for (op, c) in counts {
                let e = s.aws.entry(op.to_owned()).or_default();
                e.calls += c.calls;
                e.retries += c.retries;
                e.throttled += c.throttled;
                e.failed += c.failed;
                e.budget_waits += c.budget_waits;
                e.budget_waited += c.budget_waited;
            }
        });
    }

    pub fn reloaded(&self, error: Option<String>) {
        self.with(|s| match error {
            None => s.reloads += 1,
            Some(e) => {
                s.reload_failures += 1;
                // Shown by /status and `status`: nothing that looks like a secret.
                s.last_reload_error = Some(crate::model::secret::scrub(&e).into_owned());
            }
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        self.with(|s| Snapshot {
            targets: s.targets.clone(),
            reloads: s.reloads,
            reload_failures: s.reload_failures,
            last_reload_error: s.last_reload_error.clone(),
            lease: s.lease.clone(),
        })
    }

    /// Shows the leases from now on (a run with `[daemon.lease]`).
    pub fn set_lease(&self, status: super::lease::LeaseStatus) {
        self.with(|s| s.lease = Some(status));
    }

    /// Updates the leases' view (nothing without leases).
    pub fn lease(&self, f: impl FnOnce(&mut super::lease::LeaseStatus)) {
        self.with(|s| s.lease.as_mut().map(f));
    }

    /// Counts one round of availability probes' latencies into the target's histogram.
    pub fn probe_latencies(&self, target: &str, seconds: &[f64]) {
        let h = self.probe_latency.get_or_create(&TargetLabel {
            target: target.to_owned(),
        });
        for s in seconds {
            h.observe(*s);
        }
    }

    /// `/metrics` in the Prometheus text format (0.0.4): what `promtool check metrics` reads.
    pub fn metrics(&self) -> String {
        self.encode(prometheus_client::encoding::prometheus_text::encode)
    }

    /// `/metrics` in the OpenMetrics text format, for scrapers that ask for it.
    pub fn openmetrics(&self) -> String {
        self.encode(prometheus_client::encoding::text::encode)
    }

    fn encode(&self, encode: fn(&mut String, &Registry) -> Result<(), std::fmt::Error>) -> String {
        let now = self.with(|s| Collected {
            targets: s.targets.clone(),
            aws: s.aws.clone(),
            reloads: s.reloads,
            refused: s.reload_failures,
            lateness: self.load.event_loop_lateness().as_secs_f64(),
            leases: s.lease.as_ref().map(|l| (l.held, l.round_errors)),
        });
        let mut registry = Registry::with_prefix("activegate_lifecycle");
        registry.register_collector(Box::new(now));
        registry.register_with_unit(
            "probe_latency",
            "Latency of the availability probes",
            Unit::Seconds,
            self.probe_latency.clone(),
        );
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String does not fail");
        out
    }
}

/// A target's label on its series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

/// Buckets for HTTPS probes of tasks in the same VPC: a few milliseconds when well, up to the
/// probe timeout when not.
const PROBE_BUCKETS: [f64; 9] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0];

fn probe_histogram() -> Histogram {
    Histogram::new(PROBE_BUCKETS)
}

/// The board as it was at a scrape: counters and gauges come from the state `/status` shows,
/// encoded by prometheus-client as constant metrics.
#[derive(Debug)]
struct Collected {
    targets: BTreeMap<String, TargetStatus>,
    aws: BTreeMap<String, CallCount>,
    reloads: u64,
    refused: u64,
    lateness: f64,
    /// Leases held and failed lease rounds, with `[daemon.lease]`.
    leases: Option<(u64, u64)>,
}

/// One metric family being written, series by series.
struct Series<'a> {
    encoder: MetricEncoder<'a>,
}

impl<'a> Series<'a> {
    fn start(
        e: &'a mut DescriptorEncoder<'_>,
        name: &'a str,
        help: &str,
        unit: Option<&'a Unit>,
        kind: MetricType,
    ) -> Result<Series<'a>, std::fmt::Error> {
        Ok(Series {
            encoder: e.encode_descriptor(name, help, unit, kind)?,
        })
    }

    fn counter(&mut self, labels: &[(&str, &str)], v: u64) -> Result<(), std::fmt::Error> {
        ConstCounter::new(v).encode(self.encoder.encode_family(&labels)?)
    }

    fn gauge(&mut self, labels: &[(&str, &str)], v: f64) -> Result<(), std::fmt::Error> {
        ConstGauge::new(v).encode(self.encoder.encode_family(&labels)?)
    }
}

/// A per-target series: its name, help, unit, type and value (`None`: no series for the target).
type PerTarget = (
    &'static str,
    &'static str,
    Option<Unit>,
    MetricType,
    fn(&TargetStatus) -> Option<f64>,
);

/// The per-target families with one series per target, in the order `/metrics` shows them.
const PER_TARGET: [PerTarget; 15] = {
    use MetricType::{Counter, Gauge};
    [
        (
            "rollbacks",
            "Roll-backs to the last good revision.",
            None,
            Counter,
            |t| Some(t.outcomes.get("rolled-back").copied().unwrap_or(0) as f64),
        ),
        (
            "reconcile_retries",
            "Reconciles retried after a retriable failure.",
            None,
            Counter,
            |t| Some(t.retries as f64),
        ),
        (
            "reconcile_retry_backoff",
            "The wait of the pending retry; 0 when none is pending.",
            Some(Unit::Seconds),
            Gauge,
            |t| Some(t.retry_backoff_seconds),
        ),
        (
            "rollout_in_progress",
            "1 while a reconcile of the target runs.",
            None,
            Gauge,
            |t| Some(f64::from(u8::from(t.running))),
        ),
        (
            "next_run_timestamp",
            "The next scheduled reconcile (Unix time).",
            Some(Unit::Seconds),
            Gauge,
            |t| t.next_run.map(|n| n.timestamp() as f64),
        ),
        (
            "missed_fires",
            "Scheduled times that passed while a reconcile ran.",
            None,
            Counter,
            |t| Some(t.missed_fires as f64),
        ),
        (
            "availability_ratio",
            "Availability over the last 30 days (observed part).",
            None,
            Gauge,
            |t| t.availability,
        ),
        (
            "error_budget_remaining",
            "Downtime the SLO still allows in the 30-day window.",
            Some(Unit::Seconds),
            Gauge,
            |t| t.error_budget_remaining_seconds,
        ),
        (
            "downtime",
            "Time in the 30-day window with no task answering healthy.",
            Some(Unit::Seconds),
            Gauge,
            |t| Some(t.downtime_seconds),
        ),
        (
            "mesh_updates",
            "Writes of the Consul destination (created or updated).",
            None,
            Counter,
            |t| t.mesh.as_ref().map(|m| m.updates as f64),
        ),
        (
            "mesh_failures",
            "Consul destination updates that failed (retried).",
            None,
            Counter,
            |t| t.mesh.as_ref().map(|m| m.failures as f64),
        ),
        (
            "mesh_gateway_healthy",
            "1 when the terminating gateway showed every destination address HEALTHY.",
            None,
            Gauge,
            |t| {
                t.mesh
                    .as_ref()
                    .and_then(|m| m.gateway_healthy)
                    .map(|h| f64::from(u8::from(h)))
            },
        ),
        (
            "skipped_for_budget",
            "Scheduled runs skipped because the error budget was spent.",
            None,
            Counter,
            |t| Some(t.skipped_for_budget as f64),
        ),
        (
            "skipped_outside_window",
            "Scheduled runs outside the maintenance window.",
            None,
            Counter,
            |t| Some(t.skipped_outside_window as f64),
        ),
        (
            "discovery_failures",
            "Version discoveries that failed; the running version was kept.",
            None,
            Counter,
            |t| Some(t.discovery_failures as f64),
        ),
    ]
};

/// A per-target family with one series per key of a map: name, help, the key's label, the map.
type Labelled = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TargetStatus) -> &BTreeMap<String, u64>,
);

const LABELLED: [Labelled; 2] = [
    ("rollouts", "Reconciles by outcome.", "outcome", |t| {
        &t.outcomes
    }),
    (
        "reconcile_errors",
        "Reconciles that could not finish, by kind.",
        "kind",
        |t| &t.errors,
    ),
];

/// An AWS call family, one series per operation: name, help, the count.
type PerOperation = (&'static str, &'static str, fn(&CallCount) -> u64);

const AWS_CALLS: [PerOperation; 4] = [
    (
        "aws_calls",
        "AWS calls by operation, retries included.",
        |c| c.calls,
    ),
    ("aws_retries", "AWS calls retried by operation.", |c| {
        c.retries
    }),
    ("aws_throttled", "AWS calls throttled by operation.", |c| {
        c.throttled
    }),
    (
        "aws_failed",
        "AWS calls that failed for good, by operation.",
        |c| c.failed,
    ),
];

/// One function per group of families, called in the order `/metrics` shows them; a new
/// family is a row in one of the tables above or a function here.
impl Collector for Collected {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.event_loop(&mut e)?;
        self.labelled(&mut e)?;
        self.per_target(&mut e)?;
        self.probes(&mut e)?;
        self.aws_calls(&mut e)?;
        self.aws_rate_budget(&mut e)?;
        self.leases(&mut e)?;
        self.config_reloads(&mut e)
    }
}

impl Collected {
    fn event_loop(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Series::start(
            e,
            "event_loop_lateness",
            "How late the daemon's event loop wakes up (recent peak, decaying); above 1 s probe failures are not held against a new version.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?
        .gauge(&[], self.lateness)
    }

    fn labelled(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, label, pick) in &LABELLED {
            let mut f = Series::start(e, name, help, None, MetricType::Counter)?;
            for (target, t) in &self.targets {
                for (k, n) in pick(t) {
                    f.counter(&[("target", target), (label, k)], *n)?;
                }
            }
        }
        Ok(())
    }

    fn per_target(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, unit, kind, pick) in &PER_TARGET {
            let mut f = Series::start(e, name, help, unit.as_ref(), *kind)?;
            for (target, t) in &self.targets {
                let Some(v) = pick(t) else { continue };
                let labels = [("target", target.as_str())];
                match kind {
                    // Counters are whole numbers here; written as such.
                    MetricType::Counter => f.counter(&labels, v as u64)?,
                    _ => f.gauge(&labels, v)?,
                }
            }
        }
        Ok(())
    }

    fn probes(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut f = Series::start(
            e,
            "probes",
            "Availability probes by result.",
            None,
            MetricType::Counter,
        )?;
        for (target, t) in &self.targets {
            f.counter(&[("target", target), ("result", "ok")], t.probes_ok)?;
            f.counter(&[("target", target), ("result", "failed")], t.probes_failed)?;
        }
        Ok(())
    }

    fn aws_calls(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, pick) in &AWS_CALLS {
            let mut f = Series::start(e, name, help, None, MetricType::Counter)?;
            for (op, c) in &self.aws {
                f.counter(&[("operation", op)], pick(c))?;
            }
        }
        Ok(())
    }

    /// The client-side rate budgets' waits, by ECS throttling family (every family listed).
    fn aws_rate_budget(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use crate::ecs::Family;
        let mut by_family: BTreeMap<Family, CallCount> = Family::ALL
            .iter()
            .map(|&f| (f, CallCount::default()))
            .collect();
        for (op, c) in &self.aws {
            let sum = by_family.entry(Family::of(op)).or_default();
            sum.budget_waits += c.budget_waits;
            sum.budget_waited += c.budget_waited;
        }
        let mut f = Series::start(
            e,
            "aws_rate_budget_waits",
            "AWS calls that waited for a token of the client-side rate budget, by ECS throttling family.",
            None,
            MetricType::Counter,
        )?;
        for (family, c) in &by_family {
            f.counter(&[("family", family.label())], c.budget_waits)?;
        }
        let mut f = Series::start(
            e,
            "aws_rate_budget_wait",
            "Time AWS calls waited for the client-side rate budget, by ECS throttling family.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for (family, c) in &by_family {
            let labels = [("family", family.label())];
            ConstCounter::new(c.budget_waited.as_secs_f64())
                .encode(f.encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// With `[daemon.lease]` only: how many targets this replica may write, failed rounds.
    fn leases(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((held, errors)) = self.leases else {
            return Ok(());
        };
        let help = "Target leases this replica holds (it writes only those targets).";
        Series::start(e, "leases_held", help, None, MetricType::Gauge)?.gauge(&[], held as f64)?;
        let help = "Lease rounds that failed (DynamoDB); leases not renewed lapse at their end.";
        Series::start(e, "lease_round_errors", help, None, MetricType::Counter)?
            .counter(&[], errors)
    }

    fn config_reloads(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut f = Series::start(
            e,
            "config_reloads",
            "Config reloads by result.",
            None,
            MetricType::Counter,
        )?;
        f.counter(&[("result", "applied")], self.reloads)?;
        f.counter(&[("result", "refused")], self.refused)
    }
}

#[cfg(test)]
mod tests;
