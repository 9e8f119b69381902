//! Verified from Dynatrace's side: a new task counts as healthy only when its HTTPS probe
//! passes *and* the environment lists an ActiveGate with the task's address among its
//! `networkAddresses`, online (`offlineSince` empty), with the rolled out version (the image
//! tag's) and, when configured, the expected network zone and group. A locally "healthy"
//! ActiveGate with a wrong tenant token, a blocked egress or a typo in `DT_NETWORK_ZONE`
//! serves nobody; this is how the engine tells.
//!
//! One request per verification round answers for the whole target (filtered by zone and
//! group, addresses matched here); the tasks of the revision being replaced are looked up in
//! the same answer as a baseline. When the filter hides a task's ActiveGate, one lookup by its
//! address alone (once per task) says what Dynatrace sees of it instead. A 429 is waited out
//! between rounds for as long as `Retry-After` asks (capped).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::health::environment::{Environment, EnvironmentError, Filter, Listed};
use crate::versions::Version;

/// What the engine does when the environment cannot be asked (unreachable, 401, 403, 5xx,
/// throttled for good).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnApiError {
    /// Wait until the deadline; then remove the new revision with the API error as the reason
    /// (not quarantined: nothing says the version is bad).
    Fail,
    /// Judge on the HTTPS probes alone while the API fails, with a warning in the outcome.
    ProbeOnly,
}

impl OnApiError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::ProbeOnly => "probe-only",
        }
    }
}

/// A target's Dynatrace-side check (`[target.verify.dynatrace]`).
#[derive(Debug, Clone)]
pub struct EnvironmentCheck {
    pub environment: Environment,
    pub network_zone: Option<String>,
    pub group: Option<String>,
    pub on_api_error: OnApiError,
}

impl EnvironmentCheck {
    /// One line for `plan`: where, what is compared, what an API error does.
    pub fn describe(&self) -> String {
        let mut what = vec![
            "listed online".to_owned(),
            "the image tag's version".to_owned(),
        ];
        if let Some(z) = &self.network_zone {
            what.push(format!("network zone `{z}`"));
        }
        if let Some(g) = &self.group {
            what.push(format!("group `{g}`"));
        }
        format!(
            "on: {} ({}; token from `{}`; on API errors: {})",
            self.environment.endpoint(),
            what.join(", "),
            self.environment.token_env(),
            self.on_api_error.as_str()
        )
    }
}

/// What the new ActiveGates reported when they were verified: how many OneAgents they serve
/// already (OneAgents move over gradually; information, not a gate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    pub revision: String,
    /// New ActiveGates the environment listed online.
    pub activegates: u32,
    /// OneAgents connected to them (`connectedHosts`).
    pub hosts: u64,
    /// OneAgents connected to the ActiveGates being replaced, when the environment lists any.
    pub old_hosts: Option<u64>,
}

/// What the environment's last answer said of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Listing {
    /// No answer since the task ran.
    Unknown,
    /// Not among the ActiveGates listed.
    Absent,
    /// Listed, not connected (milliseconds since the epoch).
    Offline(i64),
    /// Listed online, but not as rolled out: what differs.
    Wrong(String),
    /// Listed online as rolled out.
    Confirmed { hosts: u64 },
}

/// ActiveGate versions as a person reads them: `1.303.10`.
fn short(v: &Version) -> String {
    format!("{}.{}.{}", v.major, v.sprint, v.fix)
}

/// The version an image names: `repo:TAG[@digest]` → TAG, when TAG is an ActiveGate version.
pub(super) fn image_version(image: &str) -> Option<Version> {
    Version::parse(crate::model::ids::ImageRef::parse(image).ok()?.tag()?)
}

/// What differs between a listed ActiveGate and the rollout; empty when nothing does.
fn differences(
    gate: &Listed,
    expected: Option<&Version>,
    zone: Option<&str>,
    group: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(want) = expected {
        match gate.version.as_deref() {
            None => out.push(format!(
                "listed without a version, expected {}",
                short(want)
            )),
            Some(got) => match Version::parse(got) {
                Some(v) if (v.major, v.sprint, v.fix) == (want.major, want.sprint, want.fix) => {}
                Some(v) => out.push(format!(
                    "listed with version {}, expected {}",
                    short(&v),
                    short(want)
                )),
                None if got.starts_with(&format!("{}.", short(want))) || got == short(want) => {}
                None => out.push(format!(
                    "listed with version {}, expected {}",
                    crate::model::secret::shown(got),
                    short(want)
                )),
            },
        }
    }
    if let Some(want) = zone {
        let got = gate.network_zone.as_deref().unwrap_or("default");
        if !got.eq_ignore_ascii_case(want) {
            out.push(format!("network zone `{got}`, expected `{want}`"));
        }
    }
    if let Some(want) = group {
        match gate.group.as_deref() {
            Some(got) if got.eq_ignore_ascii_case(want) => {}
            Some(got) => out.push(format!("group `{got}`, expected `{want}`")),
            None => out.push(format!("no group, expected `{want}`")),
        }
    }
    out
}

/// What `gates` say of the task at `ip`: an online ActiveGate as rolled out wins; else the
/// first online one, with what differs; else an offline one (an old ActiveGate may have had
/// the address: an offline entry is no proof against the new one).
pub(super) fn judge(
    gates: &[Listed],
    ip: &str,
    expected: Option<&Version>,
    zone: Option<&str>,
    group: Option<&str>,
) -> Listing {
    let mine: Vec<&Listed> = gates.iter().filter(|g| g.has_address(ip)).collect();
    let mut wrong = None;
    for g in mine.iter().filter(|g| g.online()) {
        let d = differences(g, expected, zone, group);
        if d.is_empty() {
            return Listing::Confirmed {
                hosts: g.connected_hosts.unwrap_or(0),
            };
        }
        wrong.get_or_insert_with(|| d.join("; "));
    }
    if let Some(w) = wrong {
        return Listing::Wrong(w);
    }
    match mine.iter().filter_map(|g| g.offline_since).max() {
        Some(since) => Listing::Offline(since),
        None => Listing::Absent,
    }
}

/// Consecutive 429s after which `probe-only` stops waiting for the environment.
const THROTTLED_FOR_GOOD: u32 = 3;

/// Asks the environment once per round, remembers its last error and waits out a 429.
pub(super) struct Asker<'a> {
    pub check: &'a EnvironmentCheck,
    pub on_api_error: OnApiError,
    /// `None`: the image tag names no version, which is then not compared.
    pub expected: Option<Version>,
    not_before: Option<Instant>,
    /// The last attempt's error; `None` after an answer.
    pub error: Option<EnvironmentError>,
    failures: u32,
    told: bool,
    pub asked: u64,
    /// The environment's own zone/group filter hid an ActiveGate that matches: ask unfiltered.
    unfiltered: bool,
}

impl fmt::Debug for Asker<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Asker")
            .field("asked", &self.asked)
            .field("error", &self.error)
            .finish()
    }
}

impl<'a> Asker<'a> {
    pub fn new(check: &'a EnvironmentCheck, on_api_error: OnApiError, image: &str) -> Self {
        Self {
            check,
            on_api_error,
            expected: image_version(image),
            not_before: None,
            error: None,
            failures: 0,
            told: false,
            asked: 0,
            unfiltered: false,
        }
    }

    /// The round's request: the configured zone and group, unless the environment's filter
    /// proved to hide matching ActiveGates.
    pub fn filter(&self) -> Filter {
        if self.unfiltered {
            return Filter::default();
        }
        Filter {
            network_zone: self.check.network_zone.clone(),
            group: self.check.group.clone(),
            network_address: None,
        }
    }

    /// Whether the filter can hide an ActiveGate that is listed (in another zone or group).
    pub fn filtered(&self) -> bool {
        !self.unfiltered && (self.check.network_zone.is_some() || self.check.group.is_some())
    }

    /// A lookup by address found, as rolled out, an ActiveGate the filtered answer left out
    /// (the environment compares zones or groups otherwise than the engine): from now on the
    /// rounds ask without the filter and match everything locally.
    pub fn distrust_filter(&mut self, revision: &str) {
        if !self.unfiltered {
            tracing::warn!(revision = %revision, "the environment's networkZone/group filter left out an ActiveGate that matches; asking without it");
            self.unfiltered = true;
        }
    }

    /// Whether this round asks (not while a 429's `Retry-After` runs).
    pub fn due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// One request; its error remembered (and a 429's wait). `None` when it failed.
    pub async fn ask(&mut self, filter: &Filter, revision: &str) -> Option<Vec<Listed>> {
        self.asked += 1;
        match self.check.environment.list(filter).await {
            Ok(gates) => {
                if self.error.take().is_some() {
                    tracing::info!(revision = %revision, "the Dynatrace environment answers again");
                }
                self.failures = 0;
                Some(gates)
            }
            Err(e) => {
                self.failures += 1;
                if let Some(wait) = e.retry_after() {
                    self.not_before = Some(Instant::now() + wait);
                }
                if e.is_config() && !self.told {
                    self.told = true;
                    tracing::error!(revision = %revision, error = %e, "configuration error: the Dynatrace environment refuses the token; verification waits for it until the deadline");
                } else if self.error.as_ref().map(EnvironmentError::metric_label)
                    != Some(e.metric_label())
                {
                    tracing::warn!(revision = %revision, error = %e, "cannot ask the Dynatrace environment which ActiveGates it sees");
                }
                self.error = Some(e);
                None
            }
        }
    }

    /// `probe-only` and the environment cannot be asked now: the probes alone judge.
    pub fn degraded(&self) -> bool {
        self.on_api_error == OnApiError::ProbeOnly
            && match &self.error {
                None => false,
                Some(e) if e.retry_after().is_some() => self.failures >= THROTTLED_FOR_GOOD,
                Some(_) => true,
            }
    }

    /// The last error as a reason; a 401/403 called what it is.
    pub fn error_reason(&self) -> Option<String> {
        let e = self.error.as_ref()?;
        Some(if e.is_config() {
            format!("configuration error: {e}")
        } else {
            format!("the Dynatrace environment could not be asked: {e}")
        })
    }

    /// The reason a task is not confirmed, as Dynatrace saw it.
    pub fn task_reason(&self, ip: &str, listing: &Listing, waited: Duration) -> Option<String> {
        let text = match listing {
            Listing::Confirmed { .. } => return None,
            Listing::Unknown if self.error.is_some() => {
                "not confirmed: the environment could not be asked".to_owned()
            }
            Listing::Unknown => "not confirmed: the environment was not asked yet".to_owned(),
            Listing::Absent => {
                format!("not listed by the environment after {} s", waited.as_secs())
            }
            Listing::Offline(ms) => format!(
                "listed by the environment as offline since {}",
                chrono::DateTime::from_timestamp_millis(*ms).map_or_else(
                    || ms.to_string(),
                    |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
                )
            ),
            Listing::Wrong(w) => w.clone(),
        };
        Some(format!("task {ip}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(ip: &str, version: &str, zone: &str) -> Listed {
        Listed {
            id: "0x1".into(),
            addresses: vec![ip.into()],
            version: Some(version.into()),
            offline_since: None,
            network_zone: Some(zone.into()),
            group: None,
            connected_hosts: Some(4),
        }
    }

    fn v(tag: &str) -> Version {
        Version::parse(tag).expect("a version")
    }

    #[test]
    fn the_version_is_the_image_tags() {
        let want = image_version(
            "public.ecr.aws/dynatrace/dynatrace-activegate:1.303.10.20250115-101010@sha256:0a",
        )
        .expect("a version");
        assert_eq!(short(&want), "1.303.10");
        assert!(image_version("localhost:5000/activegate").is_none());
        assert!(image_version("repo/activegate:latest").is_none());
        assert!(image_version("repo/activegate@sha256:0a").is_none());
    }

    #[test]
    fn a_listed_activegate_as_rolled_out_is_confirmed() {
        let want = v("1.303.10.20250115-101010");
        let gates = [gate(
            "10.0.1.7",
            "1.303.10.20250115-101010",
            "AWS.eu-central-1",
        )];
        assert_eq!(
            judge(
                &gates,
                "10.0.1.7",
                Some(&want),
                Some("aws.eu-central-1"),
                None
            ),
            Listing::Confirmed { hosts: 4 }
        );
        assert_eq!(
            judge(&gates, "10.0.1.70", Some(&want), None, None),
            Listing::Absent
        );
    }

    #[test]
    fn differences_are_named_as_dynatrace_saw_them() {
        let want = v("1.303.10.20250115-101010");
        let gates = [gate(
            "10.0.1.7",
            "1.301.70.20241127-162512",
            "aws.eu-centrl-1",
        )];
        let Listing::Wrong(w) = judge(
            &gates,
            "10.0.1.7",
            Some(&want),
            Some("aws.eu-central-1"),
            Some("ecs"),
        ) else {
            panic!("expected a difference")
        };
        assert_eq!(
            w,
            "listed with version 1.301.70, expected 1.303.10; network zone `aws.eu-centrl-1`, expected `aws.eu-central-1`; no group, expected `ecs`"
        );
    }

    #[test]
    fn an_offline_entry_of_the_address_is_no_proof_against_an_online_one() {
        let want = v("1.303.10.20250115-101010");
        let mut old = gate("10.0.1.7", "1.301.70.20241127-162512", "default");
        old.offline_since = Some(1_700_000_000_000);
        assert_eq!(
            judge(
                std::slice::from_ref(&old),
                "10.0.1.7",
                Some(&want),
                None,
                None
            ),
            Listing::Offline(1_700_000_000_000)
        );
        let new = gate("10.0.1.7", "1.303.10.20250115-101010", "default");
        assert_eq!(
            judge(&[old, new], "10.0.1.7", Some(&want), None, None),
            Listing::Confirmed { hosts: 4 }
        );
    }
}
