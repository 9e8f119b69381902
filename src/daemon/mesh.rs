//! Keeps a target's Consul destination true. The ActiveGate tasks' addresses change at every
//! rollout and whenever ECS replaces a task, so the destination is written after every
//! reconcile (with the addresses of the revision the service now runs) and whenever the
//! availability monitor sees the set of healthy tasks change. A failed write is reported on the
//! board and retried with backoff; it never touches the ActiveGate service.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::board::{Board, MeshStatus};
use crate::config::{Config, Target};
use crate::mesh::{AddressSource, Spec, consul, envoy};

const CONSUL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the terminating gateway gets to show the new addresses HEALTHY.
const GATEWAY_WAIT: Duration = Duration::from_secs(30);
const FIRST_RETRY: Duration = Duration::from_secs(15);
const MAX_RETRY: Duration = Duration::from_secs(300);

pub struct MeshSync {
    target: String,
    spec: Spec,
    client: consul::Client,
    /// Held across the write: the reconcile and the monitor never write at once.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    written: Option<Vec<String>>,
    failures: u32,
    retry_at: Option<Instant>,
    /// When the last reconcile asked for a write.
    reconciled_at: Option<Instant>,
}

/// Why a sync was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// After a reconcile: write, and check the gateway.
    Reconciled,
    /// The monitor saw the set of serving tasks change: write when changed, no waiting.
    TasksChanged,
}

impl MeshSync {
    /// The target's sync, when its mesh names a Consul to write to.
    pub fn new(config: &Config, target: &Target) -> Option<Arc<MeshSync>> {
        let spec = super::settings::mesh(config, target)?;
        let settings = spec.consul.clone()?;
        match consul::Client::new(&settings, spec.namespace.as_deref(), CONSUL_TIMEOUT) {
            Ok(client) => Some(Arc::new(MeshSync {
                target: target.name.to_string(),
                spec,
                client,
                state: Mutex::new(State::default()),
            })),
            Err(e) => {
                tracing::warn!(target = %target.name, error = %e, "mesh updates off: cannot build the Consul client");
                None
            }
        }
    }

    /// Whether the destination follows the tasks (else it names a stable address).
    pub fn follows_tasks(&self) -> bool {
        self.spec.addresses == AddressSource::Tasks
    }

    /// Makes the destination name `task_addresses` (or the stable name), as ECS showed them at
    /// `observed_at`.
    pub async fn sync(
        &self,
        task_addresses: &[String],
        observed_at: Instant,
        board: &Board,
        cause: Cause,
    ) {
        let mut wanted: Vec<String> = match &self.spec.addresses {
            AddressSource::Stable(a) => vec![a.clone()],
            AddressSource::Tasks => task_addresses.to_vec(),
        };
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            // No task to point at: an empty destination would only hide the last good one.
            return;
        }
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if cause == Cause::TasksChanged {
            // The monitor's view may predate the last reconcile's write (its task list is
            // refreshed every few rounds): then it is stale, and not written.
            let stale = state.reconciled_at.is_some_and(|r| observed_at < r);
            let backing_off = state.retry_at.is_some_and(|r| r > now);
            if state.written.as_ref() == Some(&wanted) || stale || backing_off {
                return;
            }
        } else {
            // After a reconcile the entry is always read (a GET when nothing changed), so an
            // entry deleted or edited by hand is repaired.
            state.reconciled_at = Some(now);
        }
        let name = self.target.as_str();
        match self.client.write_destination(&self.spec, &wanted).await {
            Ok(written) => {
                let result = match &written {
                    consul::Written::Unchanged => "unchanged",
                    consul::Written::Created => "created",
                    consul::Written::Updated { .. } => "updated",
                };
                tracing::info!(target = name, service = %self.spec.service, destination = ?wanted, result, "Consul destination written");
                state.written = Some(wanted.clone());
                state.failures = 0;
                state.retry_at = None;
                board.target(name, |t| {
                    let m = t.mesh.get_or_insert_with(MeshStatus::default);
                    m.destination = wanted.clone();
                    m.last_result = Some(result.to_owned());
                    m.last_written = Some(chrono::Utc::now());
                    m.last_error = None;
                    m.updates += u64::from(written != consul::Written::Unchanged);
                });
                drop(state);
                if cause == Cause::Reconciled
                    && let Some(admin) = &self.spec.envoy_admin
                {
                    self.check_gateway(admin, &wanted, board).await;
                }
            }
            Err(e) => {
                state.failures += 1;
                let backoff = FIRST_RETRY
                    .saturating_mul(1 << (state.failures - 1).min(5))
                    .min(MAX_RETRY);
                state.retry_at = Some(now + backoff);
                let message = e.to_string();
                tracing::warn!(target = name, error = %message, retry_in_s = backoff.as_secs(), "the Consul destination could not be written; the ActiveGate itself is unaffected; retrying");
                board.target(name, |t| {
                    let m = t.mesh.get_or_insert_with(MeshStatus::default);
                    m.last_error = Some(message);
                    m.failures += 1;
                });
            }
        }
    }

    async fn check_gateway(&self, admin: &str, wanted: &[String], board: &Board) {
        let name = self.target.as_str();
        let seen = envoy::wait_healthy(admin, &self.spec.service, wanted, GATEWAY_WAIT).await;
        let (summary, healthy) = match seen {
            Ok(v) => (v.summary(), v.all_healthy()),
            Err(e) => (format!("cannot read the gateway: {e}"), false),
        };
        if healthy {
            tracing::info!(target = name, gateway = %summary, "the terminating gateway reaches the ActiveGate");
        } else {
            tracing::warn!(target = name, gateway = %summary, "the terminating gateway does not show every ActiveGate address HEALTHY");
        }
        board.target(name, |t| {
            let m = t.mesh.get_or_insert_with(MeshStatus::default);
            m.gateway = Some(summary);
            m.gateway_healthy = Some(healthy);
        });
    }
}
