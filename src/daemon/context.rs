//! A target's context, built once per config version (kube-rs controller-rs's `Context`): its
//! manifest read and translated once, its rollout engine with its AWS clients and prober, and
//! the availability monitor's prober. Reconciles and the monitor use it; nothing is re-read or
//! rebuilt per reconcile.
//!
//! A SIGHUP rebuilds only the contexts whose inputs changed: the target's config section (and
//! the config outside the targets, which every target reads), or the manifest's bytes. Between
//! reloads, a reconcile looks at the manifest file's metadata (size, modification time, inode:
//! no read) and rebuilds only when it changed and its bytes did too, so that a new version
//! written into the manifest is still picked up by the next scheduled run, as it always was.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::board::{self, Board};
use super::wiring;
use crate::config::{Config, Target};
use crate::ecs::{Aws, CallCount, ClientSettings, Clients};
use crate::health::Prober;
use crate::rollout::Engine;
use crate::translate::manifest::MAX_MANIFEST_BYTES;

/// Adjusts the AWS client settings (the simulator's fixed credentials in the demo and tests).
pub type Adjust = Arc<dyn Fn(&mut ClientSettings) + Send + Sync>;

/// An error and its causes on one line (`outer: inner: innermost`), for logs and `/status`.
pub fn chain(e: &dyn std::error::Error) -> String {
    crate::error_chain(e)
}

/// What a manifest file looked like without reading it: a change to any of these is worth a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // `env:NAME` manifests come from the environment, which does not change under a process.
    if path
        .to_str()
        .is_some_and(|p| p.starts_with(crate::ENV_PREFIX))
    {
        return None;
    }
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode: m.ino(),
    })
}

/// SHA-256 of the manifest's bytes (`None`: it cannot be read; the build then says why).
fn digest(path: &std::path::Path) -> Option<Vec<u8>> {
    let bytes = crate::read_limited(path, MAX_MANIFEST_BYTES).ok()?;
    Some(
        ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .to_vec(),
    )
}

/// What a context was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    /// SHA-256 of the target's section and the config outside the targets, as parsed (a
    /// digest: the text itself is kilobytes per target, kept for the context's life).
    section: Vec<u8>,
    manifest: Option<PathBuf>,
    bytes: Option<Vec<u8>>,
}

impl Inputs {
    fn of(config: &Config, target: &Target) -> Inputs {
        let text = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}",
            config.path, config.base_dir, config.aws, config.daemon, target
        );
        let section = ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
            .as_ref()
            .to_vec();
        let manifest = target.manifest.as_ref().map(|m| config.resolve(m));
        let bytes = manifest.as_deref().and_then(digest);
        Inputs {
            section,
            manifest,
            bytes,
        }
    }
}

/// What the engine and the monitor run with.
struct Built {
    /// The engine, or why the target cannot run (bad input), shared by every reconcile of
    /// this config version that reports it.
    engine: Result<Engine, Arc<wiring::WiringError>>,
    /// The monitor's clients and prober (`None`: the monitor is off).
    monitor: Option<(Aws, Prober)>,
}

/// What building a context takes besides the config: the daemon's one client cache, the
/// client adjustment, the board the engine reports to.
pub struct Env<'a> {
    pub clients: &'a Clients,
    /// What this build's targets share: parsed manifests, version discovery's HTTP client.
    pub shared: &'a wiring::Shared,
    pub adjust: &'a Adjust,
    pub board: &'a Arc<Board>,
}

/// One target's context for one config version.
pub struct TargetContext {
    name: String,
    inputs: Inputs,
    /// The manifest's metadata when it was last known to match `inputs.bytes`.
    stamp: Mutex<Option<Stamp>>,
    built: Built,
    /// What has been added to the board of the engine's counters, so that each reconcile adds
    /// only what it did.
    reported_counts: Mutex<BTreeMap<&'static str, CallCount>>,
    reported_discovery_failures: AtomicU64,
}

/// Why a context was built, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Start,
    /// A SIGHUP brought a different section or manifest.
    Reload,
    /// The manifest's bytes changed between reloads.
    ManifestChanged,
}

impl TargetContext {
    /// Builds the context: reads and translates the manifest, builds the engine (with its AWS
    /// clients and prober) and the monitor's prober.
    pub async fn build(config: &Config, target: &Target, env: &Env<'_>, why: Why) -> TargetContext {
        let name = target.name.to_string();
        let inputs = Inputs::of(config, target);
        let stamp = inputs.manifest.as_deref().and_then(stamp);
        let built = Self::parts(config, target, env).await;
        match &built.engine {
            Ok(_) => tracing::info!(target = %name, why = ?why, "target context built"),
            Err(e) => {
                tracing::info!(target = %name, why = ?why, error = %e, "target context built; the target cannot run")
            }
        }
        if built.monitor.is_none() {
            tracing::warn!(target = %name, "availability monitor off: cannot build its prober");
        }
        TargetContext {
            name,
            inputs,
            stamp: Mutex::new(stamp),
            built,
            reported_counts: Mutex::default(),
            reported_discovery_failures: AtomicU64::new(0),
        }
    }

    async fn parts(config: &Config, target: &Target, env: &Env<'_>) -> Built {
        let a = env.adjust.clone();
        let settings = wiring::client_settings(config, target, |c| a(c));
        let checked = match wiring::check_shared(config, target, env.shared) {
            Ok(checked) => checked,
            Err(e) => {
                // The monitor needs only the manifest and the prober: a target whose rollout
                // cannot run (e.g. a missing token) is still watched, as it always was.
                let a = env.adjust.clone();
                let monitor = match wiring::parts(config, target, |c| a(c)).await {
                    Ok(p) => Some((
                        env.clients.aws(settings).await,
                        p.prober.with_load(env.board.load().clone()),
                    )),
                    Err(_) => None,
                };
                return Built {
                    engine: Err(Arc::new(e)),
                    monitor,
                };
            }
        };
        // Every prober of the run counts against the run's load (probe slots, lateness).
        let mut checked = checked;
        checked.prober = checked.prober.with_load(env.board.load().clone());
        let prober = checked.prober.clone();
        let engine = wiring::engine_from(target, checked, env.clients.aws(settings.clone()).await);
        let (board, name) = (env.board.clone(), target.name.to_string());
        let engine = engine.with_connected(Arc::new(move |c| {
            board.target(&name, |t| {
                t.connected_hosts = Some(board::ConnectedHosts {
                    revision: c.revision.clone(),
                    activegates: c.activegates,
                    hosts: c.hosts,
                    old_hosts: c.old_hosts,
                    at: Some(chrono::Utc::now()),
                });
            });
        }));
        // The monitor's own `Aws`, so that its call counts stay its own (the board adds them
        // when it stops); it shares the SDK configuration and rate budgets with the engine's.
        let monitor = Some((env.clients.aws(settings).await, prober));
        Built {
            engine: Ok(engine),
            monitor,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine, or why the target cannot run (bad input: the same until it changes).
    pub fn engine(&self) -> Result<&Engine, &wiring::WiringError> {
        self.built.engine.as_ref().map_err(|e| &**e)
    }

    /// The availability monitor's clients and prober (`None`: the monitor is off).
    pub fn monitor(&self) -> Option<(Aws, Prober)> {
        self.built.monitor.clone()
    }

    /// Whether this context was built from what `config` says of `target` now.
    fn matches(&self, config: &Config, target: &Target) -> bool {
        self.inputs == Inputs::of(config, target)
    }

    /// Whether the manifest's bytes differ from the ones this context was built from. Reads
    /// the file only when its metadata changed.
    fn manifest_changed(&self) -> bool {
        let Some(path) = self.inputs.manifest.as_deref() else {
            return false;
        };
        let now = stamp(path);
        let mut known = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        if now.is_some() && now == *known {
            return false;
        }
        if digest(path) == self.inputs.bytes {
            *known = now;
            return false;
        }
        true
    }

    /// What the engine counted since the last call (the board sums these).
    pub fn new_counts(&self) -> (BTreeMap<&'static str, CallCount>, u64) {
        let Ok(engine) = self.engine() else {
            return (BTreeMap::new(), 0);
        };
        let now = engine.aws().counts();
        let mut seen = self
            .reported_counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut delta = BTreeMap::new();
        for (op, c) in &now {
            let before = seen.get(op).copied().unwrap_or_default();
            delta.insert(*op, c.since(&before));
        }
        *seen = now;
        let failures = engine.discovery_failures();
        let before = self
            .reported_discovery_failures
            .swap(failures, Ordering::Relaxed);
        (delta, failures.saturating_sub(before))
    }
}

/// A target's current context, shared by its loop (which rebuilds it when the manifest
/// changed) and the daemon (which hands it to the next config version's loop).
#[derive(Clone)]
pub struct Slot(Arc<tokio::sync::Mutex<Arc<TargetContext>>>);

impl Slot {
    pub fn new(ctx: TargetContext) -> Slot {
        Slot(Arc::new(tokio::sync::Mutex::new(Arc::new(ctx))))
    }

    /// The context as it is.
    pub async fn get(&self) -> Arc<TargetContext> {
        self.0.lock().await.clone()
    }

    /// The context for a reconcile: rebuilt first when the manifest's bytes changed.
    pub async fn current(
        &self,
        config: &Config,
        target: &Target,
        env: &Env<'_>,
    ) -> Arc<TargetContext> {
        let mut ctx = self.0.lock().await;
        if ctx.manifest_changed() {
            *ctx = Arc::new(TargetContext::build(config, target, env, Why::ManifestChanged).await);
        }
        ctx.clone()
    }
}

/// The contexts of one config version, by target name.
#[derive(Default)]
pub struct Contexts(BTreeMap<String, Slot>);

impl Contexts {
    /// The contexts for `config`: the previous version's where a target's inputs are the same,
    /// new ones where they changed or the target is new. Contexts of removed targets are dropped.
    pub async fn for_config(
        previous: Contexts,
        config: &Config,
        env: &Env<'_>,
        why: Why,
    ) -> Contexts {
        let mut previous = previous.0;
        let mut next = BTreeMap::new();
        for target in &config.targets {
            // A thousand targets are seconds of work: let the probes and renewals run between.
            tokio::task::yield_now().await;
            let name = target.name.to_string();
            let kept = match previous.remove(&name) {
                Some(slot) if slot.get().await.matches(config, target) => Some(slot),
                _ => None,
            };
            let slot = match kept {
                Some(slot) => {
                    tracing::debug!(target = %name, "target context kept: its inputs did not change");
                    slot
                }
                None => Slot::new(TargetContext::build(config, target, env, why).await),
            };
            next.insert(name, slot);
        }
        Contexts(next)
    }

    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.0.get(name)
    }
}
