//! From a config target to a ready rollout engine: read and parse its
//! manifest, build its prober and its AWS clients.
//!
//! [`check`] makes every refusal `run` makes, without the network, and the engine is
//! built from what it returns; `check-config` makes the same checks through [`preflight`].

use std::sync::Arc;

use crate::config::{Config, ConfigError, Target};
use crate::ecs::{Aws, ClientSettings};
use crate::health::{HealthError, Prober, Trust};
use crate::rollout::{Discovery, Engine, Spec};
use crate::translate::{self, TranslateError, manifest::MAX_MANIFEST_BYTES};

/// Why a target cannot be turned into an engine: all bad input.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{config}: target `{target}` has no `manifest`: name the Kubernetes manifest its task definition is rendered from"
    )]
    NoManifest { config: String, target: String },
    #[error("{path}: cannot read the manifest")]
    ReadManifest {
        path: String,
        #[source]
        source: crate::ReadError,
    },
    #[error(transparent)]
    Translate(Box<TranslateError>),
    #[error("cannot build the HTTPS prober")]
    Prober(#[from] HealthError),
    #[error("version discovery: {0}")]
    Versions(String),
    /// A variable the process environment must provide (not the config): `check-config`,
    /// which may run where the daemon's secrets are not, reports it without refusing.
    #[error("version discovery: the environment variable `{var}` ({field}) is not set")]
    VersionsVariable { var: String, field: &'static str },
    #[error(
        "{config}: target `{target}`: verify.dynatrace: the environment variable `{var}` (token_env) is not set; it must hold an API token with the `{scope}` scope"
    )]
    DynatraceToken {
        config: String,
        target: String,
        var: String,
        scope: &'static str,
    },
    #[error("{config}: target `{target}`: verify.dynatrace: {why}")]
    Dynatrace {
        config: String,
        target: String,
        why: String,
    },
}

impl WiringError {
    /// Whether the process environment, not the config, lacks something: a variable with
    /// a token or password, or the `env:` variable a manifest is read from.
    pub fn is_unset_variable(&self) -> bool {
        match self {
            Self::VersionsVariable { .. } | Self::DynatraceToken { .. } => true,
            Self::ReadManifest {
                path,
                source: crate::ReadError::Io(e),
            } => path.starts_with(crate::ENV_PREFIX) && e.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

impl From<TranslateError> for WiringError {
    fn from(e: TranslateError) -> Self {
        Self::Translate(Box::new(e))
    }
}

/// [`check`] for `check-config`, which may run where the daemon's secrets are not: what the
/// process environment lacks (a token's or password's variable, the `env:` variable of the
/// manifest) is returned, not refused; every check of the config and the files it names
/// still refuses as in `run` (without the manifest, the probes' trust is checked alone).
pub fn preflight(config: &Config, target: &Target) -> Result<Vec<WiringError>, WiringError> {
    let mut unset = Vec::new();
    let mut soft = |r: Result<(), WiringError>| match r {
        Err(e) if e.is_unset_variable() => {
            unset.push(e);
            Ok(())
        }
        other => other,
    };
    match inputs(config, target, &Shared::default()) {
        Err(e) if e.is_unset_variable() => {
            soft(Err(e))?;
            super::settings::trust(config, target)?;
        }
        r => soft(r.map(|_| ()))?,
    }
    soft(discovery(config, target, &Shared::default()).map(|_| ()))?;
    soft(environment_check(config, target).map(|_| ()))?;
    Ok(unset)
}

/// Builds the engine for one target.
pub async fn engine(config: &Config, target: &Target) -> Result<Engine, WiringError> {
    engine_with(config, target, |_| {}).await
}

/// Builds the engine, letting the caller adjust the AWS client settings (the
/// simulator's fixed credentials).
pub async fn engine_with(
    config: &Config,
    target: &Target,
    adjust: impl FnOnce(&mut ClientSettings),
) -> Result<Engine, WiringError> {
    let checked = check(config, target)?;
    let aws = aws(config, target, adjust).await;
    Ok(engine_from(target, checked, aws))
}

/// The engine from a target's checked inputs and its AWS clients (the daemon builds those
/// from its one `ecs::Clients` for the run).
pub fn engine_from(target: &Target, checked: Checked, aws: Aws) -> Engine {
    let spec = Spec {
        target: target.name.to_string(),
        cluster: target.cluster.to_string(),
        service: target.service.to_string(),
        manifest: checked.manifest,
        settings: checked.settings,
        deployment: super::settings::deployment(target),
        keep_revisions: target.rollout.keep_revisions.0,
        log_retention_days: target.logs.retention_days.0,
        verify: super::settings::verify_policy(target),
        strategy: match target.rollout.strategy {
            crate::config::StrategyName::BlueGreen => crate::rollout::Strategy::BlueGreen,
            crate::config::StrategyName::Rolling => crate::rollout::Strategy::Rolling,
        },
        migrate_to: target
            .rollout
            .migrate_to
            .as_ref()
            .map_or_else(|| format!("{}-bg", target.service), ToString::to_string),
        versions: checked.versions,
        environment: checked.environment,
    };
    Engine::new(aws, checked.prober, spec)
}

/// Everything a target's engine is made of but its AWS clients, each input checked.
pub struct Checked {
    /// Shared with every target of the config version that reads the same bytes.
    pub manifest: Arc<translate::Manifest>,
    pub settings: translate::Settings,
    pub prober: Prober,
    pub versions: Option<Discovery>,
    pub environment: Option<crate::rollout::EnvironmentCheck>,
}

/// Every refusal `run` makes for this target, without the network, in `run`'s order: the
/// manifest read and translated, the probe settings and prober, version discovery's
/// settings, the Dynatrace-side check's. `run` builds every engine from it; `check-config`
/// makes the same checks, step by step, through [`preflight`].
pub fn check(config: &Config, target: &Target) -> Result<Checked, WiringError> {
    check_shared(config, target, &Shared::default())
}

/// [`check`], with the manifest parsed once for every target that reads the same bytes.
pub fn check_shared(
    config: &Config,
    target: &Target,
    shared: &Shared,
) -> Result<Checked, WiringError> {
    let inputs = inputs(config, target, shared)?;
    Ok(Checked {
        versions: discovery(config, target, shared)?,
        environment: environment_check(config, target)?,
        manifest: inputs.manifest,
        settings: inputs.settings,
        prober: inputs.prober,
    })
}

/// The Dynatrace-side check from `[target.verify.dynatrace]`: the token read from its
/// variable (never shown: only the variable's name is), requests as patient as the probes.
fn environment_check(
    config: &Config,
    target: &Target,
) -> Result<Option<crate::rollout::EnvironmentCheck>, WiringError> {
    use crate::config::OnApiError as Configured;
    use crate::health::environment::{Environment, EnvironmentSettings};
    use crate::rollout::{EnvironmentCheck, OnApiError};
    let Some(d) = target.verify.as_ref().and_then(|v| v.dynatrace.as_ref()) else {
        return Ok(None);
    };
    let error = |why: String| WiringError::Dynatrace {
        config: config.path.clone(),
        target: target.name.to_string(),
        why,
    };
    let var = &d.token_env.0;
    let token = std::env::var(var)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| WiringError::DynatraceToken {
            config: config.path.clone(),
            target: target.name.to_string(),
            var: var.clone(),
            scope: crate::health::environment::SCOPE,
        })?;
    let environment = Environment::new(EnvironmentSettings {
        url: d.environment_url.0.clone(),
        token: crate::model::secret::Redacted(token.trim().to_owned()),
        token_env: var.clone(),
        timeout: target.probe.timeout_seconds.duration(),
    })
    .map_err(|e| error(e.to_string()))?;
    Ok(Some(EnvironmentCheck {
        environment,
        network_zone: d.network_zone.as_ref().map(|z| z.0.clone()),
        group: d.group.as_ref().map(|g| g.0.clone()),
        on_api_error: match d.on_api_error {
            Configured::Fail => OnApiError::Fail,
            Configured::ProbeOnly => OnApiError::ProbeOnly,
        },
    }))
}

/// Version discovery from the target's `versions` settings.
fn discovery(
    config: &Config,
    target: &Target,
    shared: &Shared,
) -> Result<Option<Discovery>, WiringError> {
    use crate::config::VersionSourceKind;
    use crate::versions::{Constraint, Policy, registry};
    let Some(v) = &target.versions else {
        return Ok(None);
    };
    if v.source == VersionSourceKind::Pinned {
        return Ok(None);
    }
    let repository = v
        .repository
        .as_ref()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let (base, name) = registry::split_repository(&repository).ok_or_else(|| WiringError::Versions(format!("`{repository}` is not an image repository such as `public.ecr.aws/dynatrace/dynatrace-activegate`")))?;
    let base = v.registry_url.as_ref().map_or(base, |u| u.0.clone());
    let password = match (&v.password_env, &v.password_file) {
        (Some(env), _) => Some(
            std::env::var(env).map_err(|_| WiringError::VersionsVariable {
                var: env.clone(),
                field: "versions.password_env",
            })?,
        ),
        (None, Some(file)) => {
            let path = config.resolve(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                WiringError::Versions(format!(
                    "cannot read {} (versions.password_file): {e}",
                    path.display()
                ))
            })?;
            Some(text.trim().to_owned())
        }
        (None, None) => None,
    };
    let basic = v.username.clone().zip(password);
    let client = shared.discovery_client()?;
    let registry = registry::Registry::with_client(client.clone(), &base, &name, basic);
    let policy = Policy {
        constraint: Constraint::parse(&v.constraint.0)
            .map_err(|e| WiringError::Versions(e.to_string()))?,
        min_age_days: v.min_age_days.as_ref().map_or(0.0, |d| d.0),
        fips: v.fips,
    };
    let metainfo = match (v.source, &v.environment_url) {
        (VersionSourceKind::DynatraceApi, Some(env)) => {
            let var = v
                .token_env
                .clone()
                .unwrap_or_else(|| "DT_PAAS_TOKEN".into());
            let token = std::env::var(&var).map_err(|_| WiringError::VersionsVariable {
                var: var.clone(),
                field: "versions.token_env",
            })?;
            let m = crate::versions::dynatrace::Metainfo::with_client(client, &env.0, token);
            Some(Arc::new(m))
        }
        _ => None,
    };
    Ok(Some(Discovery {
        registry: Arc::new(registry),
        repository,
        policy,
        metainfo,
    }))
}

/// What an engine and the availability monitor are made of.
pub struct Parts {
    pub manifest: Arc<translate::Manifest>,
    pub settings: translate::Settings,
    pub prober: Prober,
    pub aws: Aws,
}

/// The target's AWS clients (its region, the config's endpoint and attempts).
pub async fn aws(
    config: &Config,
    target: &Target,
    adjust: impl FnOnce(&mut ClientSettings),
) -> Aws {
    Aws::connect(client_settings(config, target, adjust)).await
}

/// The target's AWS client settings, for the caller's `ecs::Clients` (the daemon's one cache).
pub fn client_settings(
    config: &Config,
    target: &Target,
    adjust: impl FnOnce(&mut ClientSettings),
) -> ClientSettings {
    let mut client = ClientSettings::new(target.region.as_str());
    client.endpoint_url = super::settings::endpoint_url(config, target);
    client.max_attempts = config.aws.max_attempts.0;
    client.role = super::settings::assume_role(target);
    client.rate_limits = super::settings::rate_limits(&config.aws.rate_limits);
    adjust(&mut client);
    client
}

/// Reads the target's manifest, builds its prober and its AWS clients.
pub async fn parts(
    config: &Config,
    target: &Target,
    adjust: impl FnOnce(&mut ClientSettings),
) -> Result<Parts, WiringError> {
    let inputs = inputs(config, target, &Shared::default())?;
    let aws = aws(config, target, adjust).await;
    Ok(Parts {
        manifest: inputs.manifest,
        settings: inputs.settings,
        prober: inputs.prober,
        aws,
    })
}

/// The manifest, the translator's settings and the prober: what the engine and the
/// availability monitor share.
struct Inputs {
    manifest: Arc<translate::Manifest>,
    settings: translate::Settings,
    prober: Prober,
}

/// Reads and translates the target's manifest and builds its prober.
fn inputs(config: &Config, target: &Target, shared: &Shared) -> Result<Inputs, WiringError> {
    let Some(manifest_path) = &target.manifest else {
        return Err(WiringError::NoManifest {
            config: config.path.clone(),
            target: target.name.to_string(),
        });
    };
    let path = config.resolve(manifest_path);
    let shown = path.display().to_string();
    let bytes = crate::read_limited(&path, MAX_MANIFEST_BYTES).map_err(|source| {
        WiringError::ReadManifest {
            path: shown.clone(),
            source,
        }
    })?;
    let manifest = shared.parse(&shown, &bytes)?;
    let settings = super::settings::translate(target);
    // With version discovery and no configured image, each reconcile picks the image; until
    // then the repository stands in, so that a manifest whose image is a placeholder still
    // renders (its probe port and path are what is needed here).
    let mut first = settings.clone();
    if first.image.is_none()
        && let Some(v) = target
            .versions
            .as_ref()
            .filter(|v| v.source != crate::config::VersionSourceKind::Pinned)
        && let Some(repo) = &v.repository
    {
        first.image = Some(repo.0.clone());
    }
    let translation = translate::translate(&manifest, &first)?;
    let probe = super::settings::probe(config, target, &translation.readiness)?;
    if matches!(probe.trust, Trust::Insecure) {
        tracing::warn!(target = %target.name, "probe.insecure = true: ActiveGate certificates are not verified");
    }
    let prober = Prober::new(probe)?;
    Ok(Inputs {
        manifest,
        settings,
        prober,
    })
}

/// What the targets of one build (a config version) share rather than make each: parsed
/// manifests by (path as shown, SHA-256 of the bytes) — a fleet's targets often render one
/// manifest, which parsed (its raw documents kept for the report) is tens of KiB per copy —
/// and version discovery's HTTP client, which keeps the system's root certificates (~100 KiB
/// a copy). Never process-wide: one per build.
#[derive(Default)]
pub struct Shared {
    parsed: std::sync::Mutex<std::collections::BTreeMap<ManifestKey, Arc<translate::Manifest>>>,
    discovery: std::sync::OnceLock<reqwest::Client>,
}

/// A manifest's path as shown and the SHA-256 of its bytes.
type ManifestKey = (String, Vec<u8>);

impl Shared {
    fn parse(&self, shown: &str, bytes: &[u8]) -> Result<Arc<translate::Manifest>, WiringError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes)
            .as_ref()
            .to_vec();
        let key = (shown.to_owned(), digest);
        let mut parsed = self
            .parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = parsed.get(&key) {
            return Ok(m.clone());
        }
        let m = Arc::new(translate::parse(shown, bytes)?);
        parsed.insert(key, m.clone());
        Ok(m)
    }

    /// Version discovery's client, built on first use.
    fn discovery_client(&self) -> Result<reqwest::Client, WiringError> {
        if let Some(c) = self.discovery.get() {
            return Ok(c.clone());
        }
        let c = crate::versions::registry::client()
            .map_err(|e| WiringError::Versions(e.to_string()))?;
        Ok(self.discovery.get_or_init(|| c).clone())
    }
}
