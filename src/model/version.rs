//! ActiveGate versions as they appear in image tags — `1.301.70.20241127-162512`, with
//! `-fips` variants — ordered numerically, then by build time, and the constraints a config
//! puts on them. Domain types: the config parses constraints at load, `versions` chooses.

use std::cmp::Ordering;
use std::fmt;

use chrono::NaiveDateTime;

/// A parsed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub sprint: u32,
    pub fix: u32,
    /// The build time in the tag, when it has one.
    pub built: Option<NaiveDateTime>,
    pub fips: bool,
    /// The tag as written.
    pub tag: String,
}

impl Version {
    /// Parses an ActiveGate tag; `None` for anything else (`latest`, `raw`, garbage).
    pub fn parse(tag: &str) -> Option<Version> {
        let (rest, fips) = match tag.strip_suffix("-fips") {
            Some(r) => (r, true),
            None => (tag, false),
        };
        let rest = rest.strip_suffix("-raw").unwrap_or(rest);
        let mut parts = rest.splitn(4, '.');
        let num = |p: Option<&str>| {
            p.filter(|s| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()))?
                .parse::<u32>()
                .ok()
        };
        let major = num(parts.next())?;
        let sprint = num(parts.next())?;
        let fix = num(parts.next())?;
        let built = match parts.next() {
            None => None,
            Some(b) => Some(NaiveDateTime::parse_from_str(b, "%Y%m%d-%H%M%S").ok()?),
        };
        Some(Version {
            major,
            sprint,
            fix,
            built,
            fips,
            tag: tag.to_owned(),
        })
    }

    fn key(&self) -> (u32, u32, u32, Option<NaiveDateTime>) {
        (self.major, self.sprint, self.fix, self.built)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key()
            .cmp(&other.key())
            .then_with(|| self.tag.cmp(&other.tag))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag)
    }
}

/// Which versions a target accepts.
/// Why a version constraint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("expected `newest`, `1.301.*`, `<= 1.303` or `>= 1.301`, found `{found}`")]
    Constraint { found: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    Newest,
    /// `1.301.*`: that major and sprint.
    Sprint(u32, u32),
    /// `<= 1.303`: at most that sprint.
    AtMost(u32, u32),
    /// `>= 1.301`: at least that sprint.
    AtLeast(u32, u32),
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, VersionError> {
        let t = text.trim();
        let sprint = |s: &str| -> Option<(u32, u32)> {
            let (a, b) = s.trim().split_once('.')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        let bad = || VersionError::Constraint {
            found: text.to_owned(),
        };
        if t == "newest" {
            Ok(Constraint::Newest)
        } else if let Some(r) = t.strip_prefix("<=") {
            sprint(r)
                .map(|(a, b)| Constraint::AtMost(a, b))
                .ok_or_else(bad)
        } else if let Some(r) = t.strip_prefix(">=") {
            sprint(r)
                .map(|(a, b)| Constraint::AtLeast(a, b))
                .ok_or_else(bad)
        } else if let Some(r) = t.strip_suffix(".*") {
            sprint(r)
                .map(|(a, b)| Constraint::Sprint(a, b))
                .ok_or_else(bad)
        } else {
            Err(bad())
        }
    }

    /// Whether `v` is within the constraint.
    pub fn allows(&self, v: &Version) -> bool {
        let s = (v.major, v.sprint);
        match *self {
            Constraint::Newest => true,
            Constraint::Sprint(a, b) => s == (a, b),
            Constraint::AtMost(a, b) => s <= (a, b),
            Constraint::AtLeast(a, b) => s >= (a, b),
        }
    }
}
