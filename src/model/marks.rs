//! The one schema of the tags the daemon owns: every key defined once, and [`Marks`], the
//! typed view of a service's tags that the engine and the availability monitor read.
//!
//! ECS is the source of truth; these tags are what survives a restart (the last good
//! revision, the rollout in flight, the verdict on a task set, quarantined images,
//! downtime). The wire format — keys and values — is the one earlier versions wrote, so
//! state an older daemon left is read back unchanged.

use std::collections::BTreeMap;

/// On everything the product creates; the value is [`super::MANAGED_BY`].
pub const MANAGED_BY: &str = "managed-by";
/// On a task definition: the hash of its rendered content, so an unchanged render is not
/// registered again.
pub const HASH: &str = "activegate-lifecycle:content-hash";
/// On a task definition: the image it was rendered with (at most 256 characters).
pub const IMAGE: &str = "activegate-lifecycle:image";
/// On a service: the ARN of the last verified revision.
pub const LAST_GOOD: &str = "activegate-lifecycle:last-good";
/// On a service, while a rollout is in flight: the revision it started from.
pub const ROLLOUT_FROM: &str = "activegate-lifecycle:rollout-from";
/// On a service, while a rollout is in flight: the revision it rolls out.
pub const ROLLOUT_TO: &str = "activegate-lifecycle:rollout-to";
/// On a service, while a rollout is in flight: when it started (seconds since the epoch).
pub const ROLLOUT_STARTED: &str = "activegate-lifecycle:rollout-started";
/// On a task definition that failed verification: `true`.
pub const QUARANTINED: &str = "activegate-lifecycle:quarantined";
/// Prefix of the service tags that quarantine an image (the value is the image).
pub const QUARANTINE_PREFIX: &str = "activegate-lifecycle:quarantine:";
/// The verdict on the task set in flight: `passed:ID`, `failed:ID` or `inconclusive:ID`.
pub const VERDICT: &str = "activegate-lifecycle:verdict";
/// The `externalId` of the task sets the product creates (a task set field, not a tag).
pub const EXTERNAL_ID: &str = "activegate-lifecycle";
/// On a rolling service moved to blue/green: the name of the service that replaced it.
pub const MIGRATED_TO: &str = "activegate-lifecycle:migrated-to";
/// On a service: the downtime per day, as the availability monitor encodes it.
pub const DOWNTIME: &str = "activegate-lifecycle:downtime";
/// On a service: when the availability monitor started observing it (RFC 3339).
pub const OBSERVED_SINCE: &str = "activegate-lifecycle:observed-since";
/// On a service and its task definitions: the configured target's name.
pub const TARGET: &str = "activegate-lifecycle:target";

/// The keys of a rollout in flight, removed together when it ends.
pub const ROLLOUT_KEYS: [&str; 4] = [ROLLOUT_FROM, ROLLOUT_TO, ROLLOUT_STARTED, VERDICT];

/// ECS's limit on a tag value, which the image and quarantine tags are cut to.
const VALUE_MAX_CHARS: usize = 256;

/// The verdict on a task set, kept in a service tag (`passed:ID` / `failed:ID`) so that a
/// restarted daemon neither promotes an unverified set nor verifies a failed one again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed(String),
    Failed(String),
    /// Not proven either way (the daemon could not judge): removed, never quarantined.
    Inconclusive(String),
}

impl Verdict {
    pub fn parse(v: &str) -> Option<Verdict> {
        match v.split_once(':') {
            Some(("passed", id)) => Some(Self::Passed(id.to_owned())),
            Some(("failed", id)) => Some(Self::Failed(id.to_owned())),
            Some(("inconclusive", id)) => Some(Self::Inconclusive(id.to_owned())),
            _ => None,
        }
    }

    pub fn tag_value(&self) -> String {
        match self {
            Self::Passed(id) => format!("passed:{id}"),
            Self::Failed(id) => format!("failed:{id}"),
            Self::Inconclusive(id) => format!("inconclusive:{id}"),
        }
    }
}

/// The tags that hold a service's state, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    pub last_good: Option<String>,
    /// The revision of a rollout in flight, what it started from, and when.
    pub to: Option<String>,
    pub from: Option<String>,
    pub started: Option<String>,
    pub verdict: Option<Verdict>,
    /// Quarantine key → the image it quarantines.
    pub quarantined: BTreeMap<String, String>,
    pub migrated_to: Option<String>,
    /// The availability monitor's encoded downtime per day, and since when it observes.
    pub downtime: Option<String>,
    pub observed_since: Option<String>,
}

impl Marks {
    /// Reads the marks from a service's tags; tags of others are ignored, and a verdict
    /// that does not parse counts as none.
    pub fn parse(tags: &BTreeMap<String, String>) -> Marks {
        let get = |k: &str| tags.get(k).cloned();
        Marks {
            last_good: get(LAST_GOOD),
            to: get(ROLLOUT_TO),
            from: get(ROLLOUT_FROM),
            started: get(ROLLOUT_STARTED),
            verdict: tags.get(VERDICT).and_then(|v| Verdict::parse(v)),
            quarantined: tags
                .iter()
                .filter(|(k, _)| k.starts_with(QUARANTINE_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            migrated_to: get(MIGRATED_TO),
            downtime: get(DOWNTIME),
            observed_since: get(OBSERVED_SINCE),
        }
    }

    /// Whether `image` is quarantined on this service.
    pub fn is_quarantined(&self, image: &str) -> bool {
        // The value must be the image too: the key holds only 6 bytes of its hash.
        self.quarantined
            .get(&quarantine_key(image))
            .map(String::as_str)
            == Some(image)
    }

    /// The quarantined images.
    pub fn quarantined_images(&self) -> impl Iterator<Item = &str> {
        self.quarantined.values().map(String::as_str)
    }
}

/// Tags to write: key and value, as ECS takes them.
pub type Tags = Vec<(String, String)>;

/// The tag that keeps `revision` as the last good one.
pub fn last_good(revision: &str) -> Tags {
    vec![(LAST_GOOD.into(), revision.to_owned())]
}

/// The tags that mark a rollout to `to` in flight, written before the service changes.
pub fn rollout_started(to: &str, from: Option<&str>, started: &str) -> Tags {
    let mut t = vec![
        (ROLLOUT_TO.into(), to.to_owned()),
        (ROLLOUT_STARTED.into(), started.to_owned()),
    ];
    if let Some(f) = from {
        t.push((ROLLOUT_FROM.into(), f.to_owned()));
    }
    t
}

/// The tag that records a verdict on a task set.
pub fn verdict(v: &Verdict) -> Tags {
    vec![(VERDICT.into(), v.tag_value())]
}

/// The service tag that quarantines `image` (its value cut to ECS's limit).
pub fn quarantine(image: &str) -> Tags {
    vec![(
        quarantine_key(image),
        image.chars().take(VALUE_MAX_CHARS).collect(),
    )]
}

/// The key of the quarantine tag of `image`: the prefix and 6 bytes of its SHA-256, since a
/// tag key cannot hold an image reference (`/`, `@` and its length).
pub fn quarantine_key(image: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, image.as_bytes());
    let short: String = d
        .as_ref()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{QUARANTINE_PREFIX}{short}")
}

/// The tags of a registered revision: its content hash and the image (cut to ECS's limit).
pub fn revision(hash: &str, image: &str) -> Tags {
    vec![
        (HASH.into(), hash.to_owned()),
        (IMAGE.into(), image.chars().take(VALUE_MAX_CHARS).collect()),
    ]
}

/// The tag on a revision that failed verification.
pub fn quarantined_revision() -> Tags {
    vec![(QUARANTINED.into(), "true".into())]
}

/// The tag on a rolling service that was moved to blue/green.
pub fn migrated_to(service: &str) -> Tags {
    vec![(MIGRATED_TO.into(), service.to_owned())]
}

#[cfg(test)]
mod tests;
