//! Building the AWS clients: `ClientSettings` (region, endpoint, retries, credentials, an
//! optional role to assume, rate budgets) and `Clients`, the cache owned by whoever runs (the
//! daemon for its run, a command for its own) that hands out `Aws` values sharing one SDK
//! configuration and one set of rate budgets per key.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls;

use super::budget::{Budget, Family, RateLimits, WaitCount};
use super::error::classify;
use super::{Aws, EcsError};
use crate::model::secret::Redacted;

/// An IAM role the clients act as (a target in another account): assumed with the base
/// credentials through STS, at the configured endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub arn: String,
    /// The role's trust policy may require it (`sts:ExternalId`); never printed.
    pub external_id: Option<Redacted>,
    pub session_name: String,
}

/// How the AWS clients are built and how hard calls are retried.
#[derive(Clone)]
pub struct ClientSettings {
    pub region: String,
    /// An explicit endpoint (the simulator, a VPC endpoint); otherwise the SDK's
    /// resolution applies, including `AWS_ENDPOINT_URL`. STS follows it when a role is set.
    pub endpoint_url: Option<String>,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, with jitter, capped at `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per-attempt timeout.
    pub attempt_timeout: Duration,
    /// Fixed credentials instead of the default chain: for the simulator (the
    /// `demo` command and tests), never read from a config file.
    pub static_credentials: Option<(String, String)>,
    /// A role to assume with the credentials above (or the default chain's).
    pub role: Option<AssumeRole>,
    /// Client-side token buckets, shared per (identity, region); the first settings of a
    /// key in a `Clients` set them.
    pub rate_limits: RateLimits,
    /// The SDK's app name, sent in every call's user agent (`app/<name>`): the daemon's
    /// replica id, a command's name, so that CloudTrail and the simulator tell the writers
    /// of one fleet apart. Sanitised to what the SDK allows when the clients are built.
    pub app_name: Option<String>,
}

impl ClientSettings {
    pub fn new(region: &str) -> Self {
        Self {
            region: region.to_owned(),
            endpoint_url: None,
            max_attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(20),
            static_credentials: None,
            role: None,
            rate_limits: RateLimits::default(),
            app_name: None,
        }
    }
}

/// Longer app names are allowed but warned about by the SDK ("recommended to be no more than
/// 50 characters"); a replica id is cut to this rather than warned about on every start.
const APP_NAME_MAX: usize = 50;

/// `text` as the SDK's app name: every character the SDK refuses (it allows ASCII letters,
/// digits and ``!#$%&'*+-.^_`|~``) replaced by `-`; past 50 characters, its first 24 and last
/// 25 joined by `~` (a default replica id, `<hostname>-<pid>-<hex>`, keeps both the host and
/// the part that tells two processes on it apart); `None` for an empty text. A replica id
/// comes from the command line or the environment, so it is made to fit rather than refused.
fn app_name(text: &str) -> Option<aws_config::AppName> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let mut name: Vec<char> = text
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .collect();
    if name.len() > APP_NAME_MAX {
        let tail = name.split_off(name.len() - (APP_NAME_MAX - 25));
        name.truncate(24);
        name.push('~');
        name.extend(tail);
    }
    if name.is_empty() {
        return None;
    }
    aws_config::AppName::new(name.into_iter().collect::<String>()).ok()
}

/// The secret access key of static credentials is left out.
impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("attempt_timeout", &self.attempt_timeout)
            .field(
                "static_credentials",
                &self.static_credentials.as_ref().map(|(id, _)| id),
            )
            .field("role", &self.role)
            .field("rate_limits", &self.rate_limits)
            .field("app_name", &self.app_name)
            .finish()
    }
}

/// What an SDK configuration depends on: settings that give the same key share one HTTP
/// client (connection pool, TLS roots) and one credentials cache.
#[derive(PartialEq)]
struct ConfigKey {
    region: String,
    endpoint_url: Option<String>,
    static_credentials: Option<(String, String)>,
    attempt_timeout: Duration,
    role: Option<AssumeRole>,
    app_name: Option<String>,
}

impl ConfigKey {
    fn of(s: &ClientSettings) -> Self {
        Self {
            region: s.region.clone(),
            endpoint_url: s.endpoint_url.clone(),
            static_credentials: s.static_credentials.clone(),
            attempt_timeout: s.attempt_timeout,
            role: s.role.clone(),
            app_name: s.app_name.clone(),
        }
    }
}

/// Whose ECS buckets a call draws from: ECS throttles per account and region. A role's
/// account is in its ARN (two roles of one account share that account's buckets); the
/// account of the base credentials is not known without a call, so the static access key or
/// "the default chain" stand for it (one daemon has one default chain).
#[derive(PartialEq)]
struct BudgetKey {
    identity: Identity,
    region: String,
    endpoint_url: Option<String>,
}

#[derive(PartialEq)]
enum Identity {
    /// A role's account (the whole ARN where it names none).
    Account(String),
    StaticKey(String),
    DefaultChain,
}

impl BudgetKey {
    fn of(s: &ClientSettings) -> Self {
        let identity = match (&s.role, &s.static_credentials) {
            (Some(role), _) => Identity::Account(
                crate::model::aws::parse_arn(&role.arn)
                    .map_or(role.arn.as_str(), |a| a.account)
                    .to_owned(),
            ),
            (None, Some((id, _))) => Identity::StaticKey(id.clone()),
            (None, None) => Identity::DefaultChain,
        };
        Self {
            identity,
            region: s.region.clone(),
            endpoint_url: s.endpoint_url.clone(),
        }
    }
}

/// The client cache: one per daemon run or command, never process-wide, so that two
/// runtimes (tests) or two runs never share connections bound to another runtime.
#[derive(Clone, Default)]
pub struct Clients {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// A tokio mutex, held while a configuration is built: 1,000 targets starting at once
    /// build it once and wait for it, instead of loading credentials 1,000 times.
    configs: tokio::sync::Mutex<Vec<(ConfigKey, Sdk)>>,
    /// Never held across an await.
    budgets: Mutex<Vec<(BudgetKey, Arc<Budget>)>>,
    /// The services a reconcile runs on, among every `Aws` handed out (`claims`).
    claims: super::claims::Claims,
}

impl fmt::Debug for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clients")
            .field("budgets", &self.lock_budgets().len())
            .finish_non_exhaustive()
    }
}

impl Clients {
    pub fn new() -> Self {
        Self::default()
    }

    /// The clients for `settings`: the SDK configuration (HTTP client with its connection
    /// pool and TLS roots, credentials with their cache, the assumed role's too) is built
    /// once per key and shared — a daemon with 1,000 targets otherwise held 1,000 copies of
    /// the system's root certificates and fetched its credentials 1,000 times — and so are
    /// the rate budgets of the (identity, region). Call counts stay per `Aws`.
    pub async fn aws(&self, settings: ClientSettings) -> Aws {
        let sdk = self.sdk(&settings).await;
        let budget = self.budget(&settings);
        Aws {
            ecs: sdk.ecs,
            logs: sdk.logs,
            sts: sdk.sts,
            dynamodb: sdk.dynamodb,
            claims: self.shared.claims.clone(),
            budget,
            settings,
            counts: Arc::default(),
        }
    }

    /// Waits for a token per family so far, summed over every (identity, region).
    pub fn budget_waits(&self) -> BTreeMap<Family, WaitCount> {
        let mut sum: BTreeMap<Family, WaitCount> = Family::ALL
            .iter()
            .map(|&f| (f, WaitCount::default()))
            .collect();
        for (_, budget) in self.lock_budgets().iter() {
            for (family, count) in budget.waits() {
                *sum.entry(family).or_default() += count;
            }
        }
        sum
    }

    fn lock_budgets(&self) -> std::sync::MutexGuard<'_, Vec<(BudgetKey, Arc<Budget>)>> {
        self.shared
            .budgets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn budget(&self, settings: &ClientSettings) -> Arc<Budget> {
        let key = BudgetKey::of(settings);
        let mut budgets = self.lock_budgets();
        if let Some((_, b)) = budgets.iter().find(|(k, _)| *k == key) {
            return b.clone();
        }
        let b = Arc::new(Budget::new(settings.rate_limits));
        budgets.push((key, b.clone()));
        b
    }

    async fn sdk(&self, settings: &ClientSettings) -> Sdk {
        let key = ConfigKey::of(settings);
        let mut configs = self.shared.configs.lock().await;
        if let Some((_, c)) = configs.iter().find(|(k, _)| *k == key) {
            return c.clone();
        }
        let config = sdk_config(settings).await;
        let c = Sdk {
            ecs: aws_sdk_ecs::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
        };
        configs.push((key, c.clone()));
        c
    }
}

/// The SDK clients of one configuration, built once and shared (a clone is a handle): each
/// client carries its own runtime plugins and configuration bag, about 20 KiB, which a
/// 1,000-target daemon used to build twice per target (engine and monitor).
#[derive(Clone)]
struct Sdk {
    ecs: aws_sdk_ecs::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    sts: aws_sdk_sts::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn sdk_config(settings: &ClientSettings) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(settings.region.clone()))
        .http_client(http)
        // Retries happen in `call`, where they are counted.
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(settings.attempt_timeout)
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    // Set here, it reaches every client of the configuration: ECS, Logs, STS (the assumed
    // role's calls too, made with this configuration) and DynamoDB.
    if let Some(name) = settings.app_name.as_deref().and_then(app_name) {
        loader = loader.app_name(name);
    }
    if let Some((id, secret)) = &settings.static_credentials {
        loader = loader.credentials_provider(aws_sdk_ecs::config::Credentials::new(
            id, secret, None, None, "static",
        ));
    }
    let base = loader.load().await;
    match &settings.role {
        Some(role) => assume(base, role).await,
        None => base,
    }
}

/// The base configuration with its credentials replaced by the SDK's assume-role provider,
/// which takes the base credentials as its source and STS's client from the base
/// configuration (region, endpoint, HTTP client). The configuration's identity cache keeps
/// the assumed credentials and refreshes them before they expire.
async fn assume(base: aws_config::SdkConfig, role: &AssumeRole) -> aws_config::SdkConfig {
    let mut provider = AssumeRoleProvider::builder(role.arn.clone())
        .session_name(role.session_name.clone())
        .configure(&base);
    if let Some(id) = &role.external_id {
        provider = provider.external_id(id.0.clone());
    }
    let provider = Assumed {
        role: role.clone(),
        provider: provider.build().await,
    };
    base.into_builder()
        .credentials_provider(aws_sdk_ecs::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build()
}

/// The SDK's assume-role provider with a `Debug` of our own: the SDK prints the credentials
/// provider of every call at TRACE, and the provider's own `Debug` shows its request, the
/// external id included.
struct Assumed {
    role: AssumeRole,
    provider: AssumeRoleProvider,
}

impl fmt::Debug for Assumed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRoleProvider")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl aws_credential_types::provider::ProvideCredentials for Assumed {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.provider.provide_credentials()
    }

    fn fallback_on_interrupt(&self) -> Option<aws_credential_types::Credentials> {
        self.provider.fallback_on_interrupt()
    }
}

/// Who a client acts as (STS GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

impl Aws {
    /// Builds the clients on a cache of their own (no sharing with any other `Aws`); the
    /// daemon and commands hold one `Clients` and ask it instead.
    pub async fn connect(settings: ClientSettings) -> Aws {
        Clients::new().aws(settings).await
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Waits for a token per family so far, of every client of this one's (identity, region).
    pub fn budget_waits(&self) -> BTreeMap<Family, WaitCount> {
        self.budget.waits().into_iter().collect()
    }

    /// The identity the credentials of these clients belong to: the assumed role's session
    /// when a role is set. GetCallerIdentity needs no permission.
    pub async fn caller_identity(&self) -> Result<CallerIdentity, EcsError> {
        const OP: &str = "GetCallerIdentity";
        let out = self
            .call(OP, || async {
                self.sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        let field = |v: Option<&str>, what| {
            v.map(str::to_owned)
                .ok_or(EcsError::Incomplete { op: OP, what })
        };
        Ok(CallerIdentity {
            account: field(out.account(), "Account")?,
            arn: field(out.arn(), "Arn")?,
            user_id: field(out.user_id(), "UserId")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_role(region: &str, arn: &str) -> ClientSettings {
        let mut s = ClientSettings::new(region);
        s.static_credentials = Some(("AKIDBASE".into(), "base-secret-key".into()));
        s.role = Some(AssumeRole {
            arn: arn.into(),
            external_id: Some(Redacted("external-id-canary".into())),
            session_name: "activegate-lifecycle".into(),
        });
        s
    }

    #[test]
    fn settings_print_neither_the_secret_key_nor_the_external_id() {
        let shown = format!("{:?}", with_role("eu-west-1", "arn:aws:iam::1:role/a"));
        assert!(shown.contains("AKIDBASE") && shown.contains("arn:aws:iam::1:role/a"));
        assert!(!shown.contains("base-secret-key"), "{shown}");
        assert!(!shown.contains("external-id-canary"), "{shown}");
    }

    #[test]
    fn budgets_are_per_identity_and_region() {
        let a = BudgetKey::of(&with_role("eu-west-1", "arn:aws:iam::1:role/a"));
        assert!(a == BudgetKey::of(&with_role("eu-west-1", "arn:aws:iam::1:role/a")));
        // Another role (account) or region: ECS's buckets of another account or region.
        assert!(a != BudgetKey::of(&with_role("eu-west-1", "arn:aws:iam::2:role/a")));
        assert!(a != BudgetKey::of(&with_role("us-east-1", "arn:aws:iam::1:role/a")));
        // Two roles of one account draw from that account's buckets.
        let (one, other) = (
            "arn:aws:iam::123456789012:role/a",
            "arn:aws:iam::123456789012:role/b",
        );
        assert!(
            BudgetKey::of(&with_role("eu-west-1", one))
                == BudgetKey::of(&with_role("eu-west-1", other))
        );
        // The base credentials are another identity than the role they assume.
        let mut base = with_role("eu-west-1", "arn:aws:iam::1:role/a");
        base.role = None;
        assert!(a != BudgetKey::of(&base));
        // Another endpoint (another region's VPC endpoint, another simulator): its own
        // buckets, and its own SDK configuration.
        let mut elsewhere = with_role("eu-west-1", "arn:aws:iam::1:role/a");
        elsewhere.endpoint_url = Some("http://127.0.0.1:4567".into());
        assert!(a != BudgetKey::of(&elsewhere));
        assert!(
            ConfigKey::of(&with_role("eu-west-1", "arn:aws:iam::1:role/a"))
                != ConfigKey::of(&elsewhere)
        );
        // Retry settings do not make another identity.
        let mut patient = with_role("eu-west-1", "arn:aws:iam::1:role/a");
        patient.max_attempts = 10;
        assert!(a == BudgetKey::of(&patient));
    }

    #[test]
    fn an_app_name_is_made_to_fit_the_sdk() {
        let shown = |t: &str| app_name(t).map(|n| n.to_string());
        assert_eq!(shown("replica-0").as_deref(), Some("replica-0"));
        // Spaces, `/`, `:`, `@` and non-ASCII are not allowed: each becomes one `-`.
        assert_eq!(
            shown("ip-10-0-1-5.ec2 internal/7:é@x").as_deref(),
            Some("ip-10-0-1-5.ec2-internal-7---x")
        );
        let long = "a".repeat(80);
        assert_eq!(shown(&long).map(|n| n.len()), Some(50));
        // A long default replica id keeps its host's start and its pid and random end.
        let id = "ip-172-31-10-200.eu-central-1.compute.internal-12345-9f3a";
        assert_eq!(
            shown(id).as_deref(),
            Some("ip-172-31-10-200.eu-cent~mpute.internal-12345-9f3a")
        );
        assert_eq!(shown(&"b".repeat(50)), Some("b".repeat(50)), "50 fit");
        assert_eq!(shown(""), None);
        // Every name it makes, the SDK takes.
        for t in ["x y", "ünïcödé", "~!#$%&'*+-.^_`|", &long] {
            let name = shown(t).expect("a name");
            assert!(aws_config::AppName::new(name.clone()).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_app_name_is_part_of_the_configuration_key() {
        let a = with_role("eu-west-1", "arn:aws:iam::1:role/a");
        let mut named = with_role("eu-west-1", "arn:aws:iam::1:role/a");
        named.app_name = Some("replica-0".into());
        assert!(ConfigKey::of(&a) != ConfigKey::of(&named));
        // The same account's buckets, whoever calls.
        assert!(BudgetKey::of(&a) == BudgetKey::of(&named));
    }

    #[tokio::test]
    async fn one_cache_shares_budgets_and_lists_every_family() {
        let clients = Clients::new();
        let a = clients.budget(&with_role("eu-west-1", "arn:aws:iam::1:role/a"));
        let b = clients.budget(&with_role("eu-west-1", "arn:aws:iam::1:role/a"));
        let c = clients.budget(&with_role("us-east-1", "arn:aws:iam::1:role/a"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        let other = Clients::new().budget(&with_role("eu-west-1", "arn:aws:iam::1:role/a"));
        assert!(
            !Arc::ptr_eq(&a, &other),
            "no budget outlives or crosses its cache"
        );
        let waits = clients.budget_waits();
        assert_eq!(waits.keys().copied().collect::<Vec<_>>(), Family::ALL);
    }
}
