//! Leases in the daemon: which targets this replica may write.
//!
//! With `[daemon.lease]`, every writer holds a target's lease (`ecs::leases`) before it
//! writes the target's service. Replicas share the targets: each one announces itself
//! with a heartbeat, every replica computes the same assignment of targets to the live
//! replicas (`assign`: rendezvous hashing, at most the fair share each), takes the leases
//! assigned to it and gives up those that are not (once nothing is in flight on them).
//! When a replica dies, its heartbeat and leases expire and the assignment moves its
//! targets to the others, who resume any interrupted rollout from the ECS tags.
//!
//! A holder stops writing as soon as its lease *might* have ended: `may_write` is true only
//! until the start of the last successful renewal + duration − margin, measured on this
//! process's monotonic clock (Kubernetes' leader election and Amazon's DynamoDB lock client
//! do the same). Duration > 3 × the renewal interval, so two renewals can fail in a row
//! before the lease is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::ecs::EcsError;
use crate::ecs::leases::{LeaseRecord, LeaseTable, Taken};

mod fleet;
pub use fleet::{Fleet, Guard, LeaseStatus, TargetLease, Turn, default_replica_id, named_after};

/// How leases are kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// How long a lease and a heartbeat last after each renewal.
    pub duration: Duration,
    /// How often this replica renews (and reassigns).
    pub renew_every: Duration,
    /// How long before the end of a lease its holder stops writing (clock skew, a slow call).
    pub margin: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(30),
            renew_every: Duration::from_secs(5),
            margin: Duration::from_secs(5),
        }
    }
}

/// Why lease settings cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TimingError {
    #[error(
        "lease duration {duration:?} must exceed 3 × the renewal interval {renew_every:?} (two renewals may fail before the lease is lost)"
    )]
    TooShort {
        duration: Duration,
        renew_every: Duration,
    },
    #[error(
        "lease margin {margin:?} leaves less than two renewal intervals ({renew_every:?} each) of the lease duration {duration:?}"
    )]
    Margin {
        margin: Duration,
        renew_every: Duration,
        duration: Duration,
    },
}

impl Timing {
    pub fn check(&self) -> Result<(), TimingError> {
        if self.duration <= self.renew_every.saturating_mul(3) {
            return Err(TimingError::TooShort {
                duration: self.duration,
                renew_every: self.renew_every,
            });
        }
        if self.duration.saturating_sub(self.margin) <= self.renew_every.saturating_mul(2) {
            return Err(TimingError::Margin {
                margin: self.margin,
                renew_every: self.renew_every,
                duration: self.duration,
            });
        }
        Ok(())
    }
}

/// A stable 64-bit hash (FNV-1a): every replica, of any build, computes the same one.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Which replica should hold which lease: each key goes to the live replica that ranks it
/// highest (rendezvous hashing) among those still under the fair share ⌈keys ÷ replicas⌉.
/// Every replica computes the same answer from the same keys and live set, so a replica
/// only ever reaches for the leases that are its own; when one replica goes, mostly its
/// keys move.
pub fn assign(keys: &[String], replicas: &[String]) -> BTreeMap<String, String> {
    let replicas: BTreeSet<&str> = replicas.iter().map(String::as_str).collect();
    let keys: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    let mut out = BTreeMap::new();
    if replicas.is_empty() {
        return out;
    }
    let share = keys.len().div_ceil(replicas.len());
    let mut load: BTreeMap<&str, usize> = replicas.iter().map(|r| (*r, 0)).collect();
    for key in keys {
        let mut ranked: Vec<&str> = replicas.iter().copied().collect();
        ranked.sort_by_key(|r| (std::cmp::Reverse(fnv(&[key, r])), *r));
        if let Some(r) = ranked.into_iter().find(|r| load[r] < share) {
            *load.entry(r).or_default() += 1;
            out.insert(key.to_owned(), r.to_owned());
        }
    }
    out
}

/// Lease calls of one round in flight at once.
const CONCURRENT_CALLS: usize = 32;

/// Runs `futures` together on the calling task (they borrow the keeper, so they are not
/// spawned) and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("poll_fn ends only once every future is ready"))
        .collect()
}

/// A lease this process holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    fence: u64,
    /// Writes stop at this instant unless a renewal moves it.
    valid_until: Instant,
}

/// What one round of keeping leases did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub replicas: Vec<String>,
    pub acquired: Vec<String>,
    pub released: Vec<String>,
    pub lost: Vec<String>,
    /// Leases assigned to this replica that another still holds, with the holder.
    pub waiting: Vec<(String, String)>,
}

/// The leases of one replica (or one command), and the one task that keeps them.
pub struct Keeper {
    table: LeaseTable,
    me: String,
    timing: Timing,
    /// Milliseconds since the epoch: the wall clock the lease items carry.
    wall_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Never held across an await.
    held: Mutex<BTreeMap<String, Held>>,
}

pub fn system_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Someone else holds a lease a command needs.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "`{key}` is being written by `{holder}` (lease until {until}, fence {fence}); try again after it, or pass --wait"
    )]
    Held {
        key: String,
        holder: String,
        until: String,
        fence: u64,
    },
    #[error("lease table: {0}")]
    Table(#[from] EcsError),
}

/// A wall-clock time in milliseconds as RFC 3339 (UTC), for messages and `/status`.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

impl Keeper {
    pub fn new(table: LeaseTable, me: impl Into<String>, timing: Timing) -> Self {
        Self::with_clock(table, me, timing, Arc::new(system_ms))
    }

    pub fn with_clock(
        table: LeaseTable,
        me: impl Into<String>,
        timing: Timing,
        wall_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Self {
        Self {
            table,
            me: me.into(),
            timing,
            wall_ms,
            held: Mutex::default(),
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Held>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this process may write what `key` guards now: it holds the lease and the
    /// lease cannot have ended yet (the margin included).
    pub fn may_write(&self, key: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|h| Instant::now() < h.valid_until)
    }

    /// The fence of the lease on `key`, while it may be written.
    pub fn fence(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        self.lock()
            .get(key)
            .filter(|h| now < h.valid_until)
            .map(|h| h.fence)
    }

    /// The keys this process holds, sorted.
    pub fn holding(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn valid_until(&self, started: Instant) -> Instant {
        started + self.timing.duration.saturating_sub(self.timing.margin)
    }

    /// Takes or renews `key`; `Some(holder record)` when someone else has it.
    async fn take(&self, key: &str) -> Result<Option<LeaseRecord>, EcsError> {
        let started = Instant::now();
        let now_ms = (self.wall_ms)();
        let held = self.lock().get(key).copied();
        if let Some(h) = held {
            if self
                .table
                .renew(key, &self.me, h.fence, self.timing.duration, now_ms)
                .await?
            {
                let until = self.valid_until(started);
                self.lock().insert(
                    key.to_owned(),
                    Held {
                        valid_until: until,
                        ..h
                    },
                );
                return Ok(None);
            }
            self.lock().remove(key);
        }
        match self
            .table
            .acquire(key, &self.me, self.timing.duration, now_ms)
            .await?
        {
            Taken::Acquired { fence } => {
                let until = self.valid_until(started);
                self.lock().insert(
                    key.to_owned(),
                    Held {
                        fence,
                        valid_until: until,
                    },
                );
                Ok(None)
            }
            Taken::Held(rec) => Ok(Some(rec)),
        }
    }

    /// One round: read the live replicas, take or renew the leases assigned to this replica,
    /// give up the others unless `busy` says a reconcile is in flight on it (that one keeps
    /// its lease until it ends, and is given up on a later round), then the heartbeat. The
    /// heartbeat comes last so that it never outlives the leases renewed before it: when the
    /// others see a replica gone, its leases have expired and they take them on that round.
    pub async fn round(
        &self,
        keys: &[String],
        busy: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Round, EcsError> {
        let now_ms = (self.wall_ms)();
        let mut replicas = self.table.live_replicas(now_ms).await?;
        if !replicas.contains(&self.me) {
            replicas.push(self.me.clone());
            replicas.sort();
        }
        let assignment = assign(keys, &replicas);
        let mut round = Round {
            replicas,
            ..Round::default()
        };
        let before: BTreeSet<String> = self.holding().into_iter().collect();
        // What to do with each lease: take (or renew) it, or give it up.
        let mut moves: Vec<(&String, bool)> = Vec::new();
        for key in keys {
            let mine = assignment.get(key).is_some_and(|r| *r == self.me);
            let held = before.contains(key);
            if mine || (held && busy(key)) {
                moves.push((key, true));
            } else if held {
                moves.push((key, false));
            }
        }
        // Leases of targets no longer configured.
        moves.extend(
            before
                .iter()
                .filter(|k| !keys.contains(k) && !busy(k))
                .map(|k| (k, false)),
        );
        // Concurrently, a bounded number at a time: one call after another, a round of a few
        // hundred leases would outlast the renewal interval (and a busy process's leases lapse).
        for chunk in moves.chunks(CONCURRENT_CALLS) {
            let done = join_all(chunk.iter().map(|(key, take)| async move {
                if *take {
                    self.take(key).await.map(Some)
                } else {
                    self.release(key).await.map(|()| None)
                }
            }))
            .await;
            for ((key, take), result) in chunk.iter().zip(done) {
                let held = before.contains(*key);
                match result? {
                    _ if !take => round.released.push((*key).clone()),
                    Some(None) if !held => round.acquired.push((*key).clone()),
                    Some(None) | None => {}
                    Some(Some(rec)) => {
                        if held {
                            round.lost.push((*key).clone());
                        }
                        round.waiting.push(((*key).clone(), rec.holder));
                    }
                }
            }
        }
        self.table
            .heartbeat(&self.me, self.timing.duration, (self.wall_ms)())
            .await?;
        Ok(round)
    }

    /// Gives `key` up (no-op when not held).
    pub async fn release(&self, key: &str) -> Result<(), EcsError> {
        let held = self.lock().remove(key);
        if let Some(h) = held {
            self.table.release(key, &self.me, h.fence).await?;
        }
        Ok(())
    }

    /// Gives every lease up (at shutdown, after the last write).
    pub async fn release_all(&self) -> Result<(), EcsError> {
        for key in self.holding() {
            self.release(&key).await?;
        }
        Ok(())
    }

    /// For a command (`rollout`, `rollback`): takes `key` now, or says who holds it and
    /// until when; with `wait`, tries every renewal interval until it is free.
    pub async fn take_for_command(&self, key: &str, wait: bool) -> Result<(), LeaseError> {
        loop {
            match self.take(key).await? {
                None => return Ok(()),
                Some(rec) if !wait => {
                    return Err(LeaseError::Held {
                        key: key.to_owned(),
                        holder: rec.holder,
                        until: rfc3339(rec.expires_at_ms),
                        fence: rec.fence,
                    });
                }
                Some(rec) => {
                    tracing::info!(key, holder = %rec.holder, until = %rfc3339(rec.expires_at_ms), "waiting for the lease");
                    tokio::time::sleep(self.timing.renew_every).await;
                }
            }
        }
    }

    /// Renews the command's leases every interval until dropped (spawned beside the
    /// command's work, aborted when it ends).
    pub async fn keep_renewing(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.timing.renew_every).await;
            for key in self.holding() {
                if let Err(e) = self.take(&key).await {
                    tracing::warn!(key, error = %e, "lease renewal failed");
                }
            }
        }
    }
}

/// The keeper of `config`'s `[daemon.lease]` (None without one), for `holder`: its table's
/// clients from `clients` (the lease table's region and endpoint, not the targets'), `adjust`
/// applied last (the simulator's and tests' fixed credentials). Used by `daemon::run` and by
/// the `rollout` and `rollback` commands, so both take leases the same way.
pub async fn keeper_for(
    config: &crate::config::Config,
    clients: &crate::ecs::Clients,
    holder: String,
    adjust: &(dyn Fn(&mut crate::ecs::ClientSettings) + Send + Sync),
) -> Option<Keeper> {
    let lease = config.daemon.lease.as_ref()?;
    let mut settings = crate::ecs::ClientSettings::new(&lease.region.to_string());
    settings.max_attempts = config.aws.max_attempts.0;
    adjust(&mut settings);
    // `adjust` may point ECS at the simulator; the table keeps its own endpoint.
    settings.endpoint_url = lease.endpoint_url.as_ref().map(|u| u.0.clone());
    let table = LeaseTable::new(clients.aws(settings).await, lease.table.0.clone());
    let timing = Timing {
        duration: lease.duration_seconds.duration(),
        renew_every: lease.renew_seconds.duration(),
        margin: lease.margin_seconds.duration(),
    };
    Some(Keeper::new(table, holder, timing))
}

/// The lease key of a target: the service it writes.
pub fn key_of(target: &crate::config::Target) -> String {
    let key = LeaseTable::key_of(
        &target.region.to_string(),
        target.cluster.as_str(),
        target.service.as_str(),
    );
    // A service in another account (reached through `role_arn`) is another service, whose
    // lease must not be the one of a same-named service in the daemon's own account. The
    // daemon's own account keeps the key it always had, so replicas of two versions agree.
    match &target.role_arn {
        Some(role) => format!("{key}@{}", role.account()),
        None => key,
    }
}

/// On SIGHUP: the keeper, its table's clients and its timing were built at start, so a
/// changed `[daemon.lease]` (added, removed, another table, region, endpoint or timing) is
/// not applied by a reload; one warning says so. Returns whether it warned.
pub fn warn_on_reload(running: &crate::config::Config, new: &crate::config::Config) -> bool {
    let (was, now) = (&running.daemon.lease, &new.daemon.lease);
    if was == now {
        return false;
    }
    let state =
        |l: &Option<crate::config::lease::LeaseSettings>| if l.is_some() { "on" } else { "off" };
    tracing::warn!(
        running = state(was),
        new = state(now),
        "SIGHUP: [daemon.lease] changed, but the lease settings take effect at restart: this \
         run keeps the ones it started with; restart every replica to apply them"
    );
    true
}

/// This host's name, for holder names (`/proc`, then `HOSTNAME`, then `unknown`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The holder name of a command run by a person: `cli:<host>:<pid>`.
pub fn command_holder() -> String {
    format!("cli:{}:{}", hostname(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `f` logged, as text.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("sink").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().expect("sink").clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_reload_that_changes_the_lease_settings_warns_they_apply_at_restart() {
        let target = crate::config::MINIMAL_TARGET;
        let with = |lease: &str| {
            crate::config::Config::parse("ag.toml", &format!("{lease}\n{target}")).expect("valid")
        };
        let table = "[daemon.lease]\ntable = \"ag-leases\"\nregion = \"eu-central-1\"";
        let running = with(table);
        // The same settings, or no lease before and after: nothing to say.
        let mut quiet = true;
        let text = logged(|| {
            quiet =
                !warn_on_reload(&running, &with(table)) && !warn_on_reload(&with(""), &with(""));
        });
        assert!(quiet && text.is_empty(), "{text}");
        // Another timing, leases removed, leases added: one warning each, naming the restart.
        for (before, after) in [
            (
                running,
                with(&format!(
                    "{table}\nduration_seconds = 60\nrenew_seconds = 10"
                )),
            ),
            (with(table), with("")),
            (with(""), with(table)),
        ] {
            let mut warned = false;
            let text = logged(|| warned = warn_on_reload(&before, &after));
            assert!(warned, "{text}");
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains("WARN"), "{text}");
            assert!(text.contains("take effect at restart"), "{text}");
        }
    }

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn every_key_gets_exactly_one_replica_within_the_fair_share() {
        let keys = names("lease/eu-central-1/c/s", 30);
        let replicas = names("replica-", 3);
        let a = assign(&keys, &replicas);
        assert_eq!(a.len(), 30);
        for r in &replicas {
            let n = a.values().filter(|v| *v == r).count();
            assert!(n <= 10, "{r} has {n} > fair share 10");
        }
        assert_eq!(assign(&keys, &replicas), a, "deterministic");
        let mut reversed = replicas.clone();
        reversed.reverse();
        assert_eq!(
            assign(&keys, &reversed),
            a,
            "order of the live set does not matter"
        );
    }

    #[test]
    fn when_a_replica_goes_its_keys_move_to_the_others() {
        let keys = names("lease/r/c/s", 30);
        let three = names("replica-", 3);
        let before = assign(&keys, &three);
        let two = vec![three[0].clone(), three[2].clone()];
        let after = assign(&keys, &two);
        assert_eq!(after.len(), 30);
        assert!(after.values().all(|r| two.contains(r)));
        for r in &two {
            assert_eq!(after.values().filter(|v| *v == r).count(), 15);
        }
        // Most keys of the survivors stay where they were (rendezvous hashing).
        let kept = keys
            .iter()
            .filter(|k| before[*k] != three[1] && before[*k] == after[*k])
            .count();
        let theirs = keys.iter().filter(|k| before[*k] != three[1]).count();
        assert!(kept * 10 >= theirs * 7, "kept {kept} of {theirs}");
    }

    #[test]
    fn no_replicas_no_assignment_and_more_replicas_than_keys() {
        let keys = names("k", 2);
        assert!(assign(&keys, &[]).is_empty());
        let a = assign(&keys, &names("r", 5));
        assert_eq!(a.len(), 2);
        let holders: BTreeSet<_> = a.values().collect();
        assert_eq!(holders.len(), 2, "one each");
    }

    #[test]
    fn timing_needs_three_renewals_per_lease() {
        assert!(Timing::default().check().is_ok());
        let t = Timing {
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            margin: Duration::from_secs(1),
        };
        assert!(matches!(t.check(), Err(TimingError::TooShort { .. })));
        let t = Timing {
            duration: Duration::from_secs(20),
            renew_every: Duration::from_secs(5),
            margin: Duration::from_secs(12),
        };
        assert!(matches!(t.check(), Err(TimingError::Margin { .. })));
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_633_600_000), "2025-12-02T00:00:00Z");
    }
}
