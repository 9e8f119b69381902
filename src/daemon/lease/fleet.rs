//! The daemon's side of the leases: one [`Fleet`] per run with `[daemon.lease]`. Its keeper
//! task renews and reassigns every `renew_every`; the target loops, the availability
//! monitors and the engine's write guard ask it whether they may write; `/status` and
//! `/metrics` show what it holds. Without `[daemon.lease]` there is no `Fleet` and nothing
//! asks (one process, every write allowed, no DynamoDB call).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Keeper, Round, key_of};
use crate::config::Config;
use crate::daemon::board::{Board, Trigger};
use crate::daemon::shutdown::Shutdown;

/// What `/status` shows of the leases (`lease` beside the targets; absent without leases).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeaseStatus {
    /// This replica's id (its heartbeat item and the holder of its leases).
    pub replica: String,
    pub table: String,
    /// The replicas whose heartbeat was live at the last round, this one included.
    pub replicas: Vec<String>,
    /// Per target: its lease and whether this replica holds it.
    pub targets: BTreeMap<String, TargetLease>,
    /// Leases this replica may write under now (as of the last round).
    pub held: u64,
    /// Rounds that failed (a DynamoDB call failed); the leases then lapse at their end.
    pub round_errors: u64,
    pub last_error: Option<String>,
    pub last_round: Option<DateTime<Utc>>,
}

/// One target's lease, as this replica sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetLease {
    pub key: String,
    /// This replica holds the lease and may write the target's service.
    pub held: bool,
    /// The fence of this replica's lease, while held.
    pub fence: Option<u64>,
    /// The other replica holding it, when the last round found one.
    pub holder: Option<String>,
    /// Reconciles skipped because this replica did not hold the lease.
    pub skipped: u64,
}

/// The targets' leases of one daemon run.
pub struct Fleet {
    keeper: Keeper,
    board: Arc<Board>,
    /// Lease key → target name, for the current config (replaced on SIGHUP).
    targets: Mutex<BTreeMap<String, String>>,
    /// Keys with a reconcile in flight: their leases are kept until it ends, even when the
    /// assignment moved them (the next holder would otherwise start beside it).
    busy: Mutex<BTreeSet<String>>,
}

/// A target's turn to write: the key stays busy (its lease kept) until this is dropped.
pub struct Turn {
    fleet: Arc<Fleet>,
    key: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.fleet.lock_busy().remove(&self.key);
    }
}

/// The engine's write guard: true while the lease on one target's key may be written under.
pub type Guard = crate::rollout::WriteGuard;

impl Fleet {
    pub fn new(keeper: Keeper, board: Arc<Board>) -> Arc<Fleet> {
        let table = keeper.table.table().to_owned();
        board.set_lease(LeaseStatus {
            replica: keeper.me().to_owned(),
            table,
            ..LeaseStatus::default()
        });
        Arc::new(Fleet {
            keeper,
            board,
            targets: Mutex::default(),
            busy: Mutex::default(),
        })
    }

    pub fn keeper(&self) -> &Keeper {
        &self.keeper
    }

    fn lock_busy(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_targets(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.targets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The targets of `config` (at start and on every SIGHUP).
    pub fn set_targets(&self, config: &Config) {
        let targets: BTreeMap<String, String> = config
            .targets
            .iter()
            .map(|t| (key_of(t), t.name.to_string()))
            .collect();
        *self.lock_targets() = targets;
        self.show(&Round::default());
    }

    /// Whether this replica may write what `key` guards now.
    pub fn may_write(&self, key: &str) -> bool {
        self.keeper.may_write(key)
    }

    /// The guard the engine checks before each step it acts on.
    pub fn guard(self: &Arc<Self>, key: &str) -> Guard {
        let (fleet, key) = (self.clone(), key.to_owned());
        Arc::new(move || fleet.may_write(&key))
    }

    /// A reconcile's turn on `target` (`key`): `None` when this replica does not hold the
    /// lease (the reconcile is skipped and counted). Marked busy before the lease is checked,
    /// so that a round in between cannot give it up under the reconcile.
    pub fn turn(self: &Arc<Self>, target: &str, key: &str) -> Option<Turn> {
        self.lock_busy().insert(key.to_owned());
        let turn = Turn {
            fleet: self.clone(),
            key: key.to_owned(),
        };
        if self.may_write(key) {
            return Some(turn);
        }
        drop(turn);
        self.board.lease(|l| {
            l.targets.entry(target.to_owned()).or_default().skipped += 1;
        });
        None
    }

    /// Keeps the leases until `stop`: a round every `renew_every`. A target whose lease was
    /// just taken gets a reconcile (it resumes any rollout its previous holder left).
    pub async fn keep(self: Arc<Self>, mut stop: Shutdown) {
        let every = self.keeper.timing().renew_every;
        loop {
            self.round().await;
            tokio::select! {
                _ = stop.recv() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One round and what it shows.
    async fn round(&self) {
        let keys: Vec<String> = self.lock_targets().keys().cloned().collect();
        let busy = |k: &str| self.lock_busy().contains(k);
        let started = tokio::time::Instant::now();
        let result = self.keeper.round(&keys, &busy).await;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "lease round"
        );
        match result {
            Ok(round) => {
                for key in &round.lost {
                    tracing::warn!(
                        key,
                        "lease lost: another replica holds it now; writes to it stopped"
                    );
                }
                let names = self.lock_targets().clone();
                for key in &round.acquired {
                    if let Some(name) = names.get(key) {
                        tracing::info!(target = %name, key, fence = ?self.keeper.fence(key), "lease taken; reconciling");
                        self.board.trigger(name, Trigger::Lease);
                    }
                }
                self.show(&round);
            }
            Err(e) => {
                let why = crate::model::secret::scrub(&e.to_string()).into_owned();
                tracing::warn!(error = %why, "lease round failed; leases not renewed lapse at their end");
                self.board.lease(|l| {
                    l.round_errors += 1;
                    l.last_error = Some(why);
                });
                self.show(&Round::default());
            }
        }
    }

    /// The board's view of the leases after a round (`round` says who holds the others).
    fn show(&self, round: &Round) {
        let names = self.lock_targets().clone();
        let others: BTreeMap<&str, &str> = round
            .waiting
            .iter()
            .map(|(k, h)| (k.as_str(), h.as_str()))
            .collect();
        let now = Utc::now();
        let keeper = &self.keeper;
        self.board.lease(|l| {
            if !round.replicas.is_empty() {
                l.replicas = round.replicas.clone();
                l.last_round = Some(now);
            }
            let before = std::mem::take(&mut l.targets);
            for (key, name) in &names {
                let fence = keeper.fence(key);
                let prev = before.get(name);
                l.targets.insert(
                    name.clone(),
                    TargetLease {
                        key: key.clone(),
                        held: fence.is_some(),
                        fence,
                        holder: others.get(key.as_str()).map(|h| (*h).to_owned()),
                        skipped: prev.map_or(0, |p| p.skipped),
                    },
                );
            }
            l.held = l.targets.values().filter(|t| t.held).count() as u64;
        });
    }

    /// Gives every lease up, after the last write (the next replica takes over at once
    /// instead of after expiry).
    pub async fn release_all(&self) {
        match self.keeper.release_all().await {
            Ok(()) => tracing::info!("leases released"),
            Err(e) => {
                tracing::warn!(error = %e, "could not release every lease; the rest expire")
            }
        }
        self.show(&Round::default());
    }
}

/// This process's replica id unless one is given: `<hostname>-<pid>-<4 random hex>` (the
/// random part tells a restarted process with a reused pid from its predecessor).
pub fn default_replica_id() -> String {
    format!(
        "{}-{}-{:04x}",
        super::hostname(),
        std::process::id(),
        fastrand::u16(..)
    )
}

/// `adjust` preceded by setting the SDK's app name to the replica id, so that every AWS call
/// of the run (ECS, Logs, STS, the lease table's DynamoDB) names its replica in the user
/// agent (`app/<id>`, made to fit the SDK's characters): CloudTrail and the simulator tell
/// the replicas of one fleet apart. The caller's `adjust` runs after and may still change it.
pub fn named_after(
    replica: &str,
    adjust: crate::daemon::context::Adjust,
) -> crate::daemon::context::Adjust {
    let name = replica.to_owned();
    Arc::new(move |c: &mut crate::ecs::ClientSettings| {
        c.app_name = Some(name.clone());
        adjust(c);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::lease::Timing;
    use crate::ecs::leases::LeaseTable;
    use crate::ecs::{Aws, ClientSettings};

    const LEASE: &str = "[daemon.lease]\ntable = \"ag-leases\"\nregion = \"eu-central-1\"\n";

    fn config_text() -> String {
        format!("{LEASE}\n{}", crate::config::MINIMAL_TARGET)
    }

    /// A fleet whose table is never called (nothing here takes a lease).
    async fn fleet(board: &Arc<Board>) -> Arc<Fleet> {
        let mut settings = ClientSettings::new("eu-central-1");
        settings.endpoint_url = Some("http://127.0.0.1:9".into());
        settings.static_credentials = Some(("AKIDTEST".into(), "not-a-secret".into()));
        let table = LeaseTable::new(Aws::connect(settings).await, "ag-leases");
        Fleet::new(
            Keeper::new(table, "replica-a", Timing::default()),
            board.clone(),
        )
    }

    #[tokio::test]
    async fn without_its_lease_a_target_is_skipped_and_status_says_so() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let board = Arc::new(Board::default());
        let f = fleet(&board).await;
        let config = Config::parse("ag.toml", &config_text()).expect("valid");
        f.set_targets(&config);
        let key = key_of(&config.targets[0]);
        assert_eq!(key, "lease/eu-central-1/observability/dynatrace-activegate");
        // The same service names in another account have a lease of their own.
        let other = config_text().replace(
            "[[target]]",
            "[[target]]\nrole_arn = \"arn:aws:iam::210987654321:role/ag\"",
        );
        let other = Config::parse("ag.toml", &other).expect("valid");
        assert_eq!(
            key_of(&other.targets[0]),
            "lease/eu-central-1/observability/dynatrace-activegate@210987654321"
        );
        assert!(!f.may_write(&key));
        assert!(!(f.guard(&key))(), "the engine's guard fails too");
        assert!(f.turn("prod-eu", &key).is_none());
        assert!(
            f.lock_busy().is_empty(),
            "a skipped turn leaves nothing busy"
        );
        let s = board.snapshot();
        let l = s.lease.expect("a lease section");
        assert_eq!(
            (l.replica.as_str(), l.table.as_str()),
            ("replica-a", "ag-leases")
        );
        let t = &l.targets["prod-eu"];
        assert_eq!(
            (t.key.as_str(), t.held, t.fence, t.skipped),
            (key.as_str(), false, None, 1)
        );
        let m = board.metrics();
        assert!(m.contains("activegate_lifecycle_leases_held 0"), "{m}");
        assert!(
            m.contains("activegate_lifecycle_lease_round_errors_total 0"),
            "{m}"
        );
    }

    #[test]
    fn without_leases_status_and_metrics_show_none() {
        let board = Board::default();
        board.lease(|l| l.held = 7);
        let json = serde_json::to_value(board.snapshot()).expect("JSON");
        assert!(json.get("lease").is_none(), "{json}");
        assert!(!board.metrics().contains("lease"));
    }

    #[test]
    fn every_client_of_a_run_is_named_after_its_replica() {
        let adjust = named_after(
            "replica-a",
            Arc::new(|c: &mut ClientSettings| c.max_attempts = 9),
        );
        let mut settings = ClientSettings::new("eu-central-1");
        adjust(&mut settings);
        assert_eq!(
            (settings.app_name.as_deref(), settings.max_attempts),
            (Some("replica-a"), 9)
        );
        // The caller's adjustment comes last and may name the clients otherwise.
        let adjust = named_after(
            "replica-a",
            Arc::new(|c: &mut ClientSettings| c.app_name = Some("test".into())),
        );
        adjust(&mut settings);
        assert_eq!(settings.app_name.as_deref(), Some("test"));
    }

    #[test]
    fn a_default_replica_id_names_host_and_process() {
        let id = default_replica_id();
        let pid = format!("-{}-", std::process::id());
        assert!(id.contains(&pid), "{id}");
        let hex = id.rsplit('-').next().expect("a suffix");
        assert_eq!(hex.len(), 4);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
}
