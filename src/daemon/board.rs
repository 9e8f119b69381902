//! What the daemon knows about its targets, for `/status` and `/metrics`.
//! Memory is only a cache here: ECS tags hold what must survive a restart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

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
}

/// Shared by the runners (writers) and the status server (reader).
#[derive(Debug, Default)]
pub struct Board {
    state: Mutex<State>,
}

/// What `/status` answers.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub targets: BTreeMap<String, TargetStatus>,
    pub reloads: u64,
    pub reload_failures: u64,
    pub last_reload_error: Option<String>,
}

impl Board {
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

    /// Replaces the set of targets and their trigger channels (start, reload).
    pub fn set_targets(&self, entries: Vec<(String, TargetStatus, mpsc::Sender<Trigger>)>) {
        self.with(|s| {
            let old = std::mem::take(&mut s.targets);
            s.triggers.clear();
            for (name, mut status, tx) in entries {
                if let Some(prev) = old.get(&name) {
                    // Keep history across reloads.
                    status.outcomes = prev.outcomes.clone();
                    status.errors = prev.errors.clone();
                    status.last_outcome = prev.last_outcome.clone();
                    status.revision = prev.revision.clone();
                    status.last_finished = prev.last_finished;
                    status.availability = prev.availability;
                    status.downtime_seconds = prev.downtime_seconds;
                    status.error_budget_remaining_seconds = prev.error_budget_remaining_seconds;
                    status.probes_ok = prev.probes_ok;
                    status.probes_failed = prev.probes_failed;
                    status.probe_latency_seconds_sum = prev.probe_latency_seconds_sum;
                    status.skipped_for_budget = prev.skipped_for_budget;
                    status.skipped_outside_window = prev.skipped_outside_window;
                    status.discovery_failures = prev.discovery_failures;
                    // A pending retry belongs to the loop that armed it; the new loop reconciles at once.
                    status.retries = prev.retries;
                    status.mesh = prev.mesh.clone();
                    status.connected_hosts = prev.connected_hosts.clone();
                }
                s.targets.insert(name.clone(), status);
                s.triggers.insert(name, tx);
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
            }
        });
    }

    pub fn reloaded(&self, error: Option<String>) {
        self.with(|s| match error {
            None => s.reloads += 1,
            Some(e) => {
                s.reload_failures += 1;
                s.last_reload_error = Some(e);
            }
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        self.with(|s| Snapshot {
            targets: s.targets.clone(),
            reloads: s.reloads,
            reload_failures: s.reload_failures,
            last_reload_error: s.last_reload_error.clone(),
        })
    }

    /// Prometheus text exposition.
    pub fn metrics(&self) -> String {
        let (targets, aws, reloads, refused) = self.with(|s| {
            (
                s.targets.clone(),
                s.aws.clone(),
                s.reloads,
                s.reload_failures,
            )
        });
        let mut m = Metrics(String::new());
        m.header(
            "event_loop_lateness_seconds",
            "How late the daemon's event loop wakes up (recent peak, decaying); above 1 s probe failures are not held against a new version.",
            "gauge",
        );
        m.line(
            "event_loop_lateness_seconds",
            &[],
            crate::health::load::event_loop_lateness().as_secs_f64(),
        );
        m.labelled(
            "rollouts_total",
            "Reconciles by outcome.",
            "counter",
            &targets,
            "outcome",
            |t| &t.outcomes,
        );
        m.per_target(
            "rollbacks_total",
            "Roll-backs to the last good revision.",
            "counter",
            &targets,
            |t| {
                Some(
                    t.outcomes
                        .get("rolled-back")
                        .copied()
                        .unwrap_or(0)
                        .to_string(),
                )
            },
        );
        m.labelled(
            "reconcile_errors_total",
            "Reconciles that could not finish, by kind.",
            "counter",
            &targets,
            "kind",
            |t| &t.errors,
        );
        m.per_target(
            "reconcile_retries_total",
            "Reconciles retried after a retriable failure.",
            "counter",
            &targets,
            |t| Some(t.retries.to_string()),
        );
        m.per_target(
            "reconcile_retry_backoff_seconds",
            "The wait of the pending retry; 0 when none is pending.",
            "gauge",
            &targets,
            |t| Some(t.retry_backoff_seconds.to_string()),
        );
        m.per_target(
            "rollout_in_progress",
            "1 while a reconcile of the target runs.",
            "gauge",
            &targets,
            |t| Some(u8::from(t.running).to_string()),
        );
        m.per_target(
            "next_run_timestamp_seconds",
            "The next scheduled reconcile.",
            "gauge",
            &targets,
            |t| t.next_run.map(|n| n.timestamp().to_string()),
        );
        m.per_target(
            "missed_fires_total",
            "Scheduled times that passed while a reconcile ran.",
            "counter",
            &targets,
            |t| Some(t.missed_fires.to_string()),
        );
        m.per_target(
            "availability_ratio",
            "Availability over the last 30 days (observed part).",
            "gauge",
            &targets,
            |t| t.availability.map(|v| v.to_string()),
        );
        m.per_target(
            "error_budget_remaining_seconds",
            "Downtime the SLO still allows in the 30-day window.",
            "gauge",
            &targets,
            |t| t.error_budget_remaining_seconds.map(|v| v.to_string()),
        );
        m.per_target(
            "downtime_seconds",
            "Time in the 30-day window with no task answering healthy.",
            "gauge",
            &targets,
            |t| Some(t.downtime_seconds.to_string()),
        );
        m.per_target(
            "probe_latency_seconds_sum",
            "Sum of the availability probes' latencies.",
            "gauge",
            &targets,
            |t| Some(t.probe_latency_seconds_sum.to_string()),
        );
        m.header("probes_total", "Availability probes by result.", "counter");
        for (name, t) in &targets {
            m.line(
                "probes_total",
                &[("target", name), ("result", "ok")],
                t.probes_ok,
            );
            m.line(
                "probes_total",
                &[("target", name), ("result", "failed")],
                t.probes_failed,
            );
        }
        m.per_target(
            "mesh_updates_total",
            "Writes of the Consul destination (created or updated).",
            "counter",
            &targets,
            |t| t.mesh.as_ref().map(|m| m.updates.to_string()),
        );
        m.per_target(
            "mesh_failures_total",
            "Consul destination updates that failed (retried).",
            "counter",
            &targets,
            |t| t.mesh.as_ref().map(|m| m.failures.to_string()),
        );
        m.per_target(
            "mesh_gateway_healthy",
            "1 when the terminating gateway showed every destination address HEALTHY.",
            "gauge",
            &targets,
            |t| {
                t.mesh
                    .as_ref()
                    .and_then(|m| m.gateway_healthy)
                    .map(|h| u8::from(h).to_string())
            },
        );
        m.per_target(
            "skipped_for_budget_total",
            "Scheduled runs skipped because the error budget was spent.",
            "counter",
            &targets,
            |t| Some(t.skipped_for_budget.to_string()),
        );
        m.per_target(
            "skipped_outside_window_total",
            "Scheduled runs outside the maintenance window.",
            "counter",
            &targets,
            |t| Some(t.skipped_outside_window.to_string()),
        );
        m.per_target(
            "discovery_failures_total",
            "Version discoveries that failed; the running version was kept.",
            "counter",
            &targets,
            |t| Some(t.discovery_failures.to_string()),
        );
        for (metric, help, pick) in [
            (
                "aws_calls_total",
                "AWS calls by operation, retries included.",
                (|c: &CallCount| c.calls) as fn(&CallCount) -> u64,
            ),
            (
                "aws_retries_total",
                "AWS calls retried by operation.",
                |c: &CallCount| c.retries,
            ),
            (
                "aws_throttled_total",
                "AWS calls throttled by operation.",
                |c: &CallCount| c.throttled,
            ),
            (
                "aws_failed_total",
                "AWS calls that failed for good, by operation.",
                |c: &CallCount| c.failed,
            ),
        ] {
            m.header(metric, help, "counter");
            for (op, c) in &aws {
                m.line(metric, &[("operation", op)], pick(c));
            }
        }
        m.header(
            "config_reloads_total",
            "Config reloads by result.",
            "counter",
        );
        m.line("config_reloads_total", &[("result", "applied")], reloads);
        m.line("config_reloads_total", &[("result", "refused")], refused);
        m.0
    }
}

/// Prometheus text being written; every name gets the `activegate_lifecycle_` prefix.
struct Metrics(String);

impl Metrics {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        use std::fmt::Write;
        let _ = writeln!(self.0, "# HELP activegate_lifecycle_{name} {help}");
        let _ = writeln!(self.0, "# TYPE activegate_lifecycle_{name} {kind}");
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        use std::fmt::Write;
        let esc = |v: &str| {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.0, "activegate_lifecycle_{name}{labels} {value}");
    }

    /// One line per target, skipping targets without a value.
    fn per_target(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        targets: &BTreeMap<String, TargetStatus>,
        value: impl Fn(&TargetStatus) -> Option<String>,
    ) {
        self.header(name, help, kind);
        for (target, t) in targets {
            if let Some(v) = value(t) {
                self.line(name, &[("target", target)], v);
            }
        }
    }

    /// One line per target and key of a per-target map.
    fn labelled(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        targets: &BTreeMap<String, TargetStatus>,
        label: &str,
        values: impl Fn(&TargetStatus) -> &BTreeMap<String, u64>,
    ) {
        self.header(name, help, kind);
        for (target, t) in targets {
            for (k, n) in values(t) {
                self.line(name, &[("target", target), (label, k)], n);
            }
        }
    }
}
