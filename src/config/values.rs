//! The types of config values, each parsed from the text where the config is
//! read: a value that does not parse is refused there, with what was found and
//! what is allowed; a value that parsed is of its real type from then on.

use std::fmt;

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

use crate::model::aws::LOG_RETENTION_DAYS;
use crate::model::schedule::Schedule;

/// Why a value was refused: what was found and what is allowed (never a secret's
/// value). It becomes the parser's message, which `locate` places.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl From<&str> for Refused {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Declares a newtype over a deserialised value, checked by a function that
/// returns the error message (what was found and what is allowed).
macro_rules! checked {
    ($(#[$doc:meta])* $name:ident($inner:ty), $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <$inner>::deserialize(d)?;
                let check: fn(&$inner) -> Result<(), Refused> = $check;
                check(&v).map_err(serde::de::Error::custom)?;
                Ok(Self(v))
            }
        }
    };
}

checked!(
    /// A target's name: `[a-z0-9-]{1,63}`, starting with a letter or digit.
    TargetName(String),
    |s| {
        let ok = !s.is_empty()
            && s.len() <= 63
            && !s.starts_with('-')
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then_some(()).ok_or_else(|| {
            format!("expected 1 to 63 lower-case letters, digits and `-` (e.g. `prod-eu`), found {}", crate::model::secret::shown(s))
        }).map_err(Refused)
    }
);

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

checked!(
    /// An image reference as text: `repository[:tag][@digest]`.
    ImageText(String),
    |s| {
        // ECS's own rule for images (ContainerDefinition.image): at most 255 of
        // letters, digits and `-_:./#@`.
        let ok = crate::model::limits::image("image", s).is_ok();
        ok.then_some(()).ok_or_else(|| {
            format!("expected an image reference of at most 255 letters, digits and `-_:./#@` (ECS's limit), such as `public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512`, found {}", crate::model::secret::shown(s))
        }).map_err(Refused)
    }
);

checked!(
    /// Desired task count: 1 to 100.
    DesiredCount(u32),
    |n| (1..=100).contains(n).then_some(()).ok_or_else(|| Refused(format!("expected 1 to 100 tasks, found {n}")))
);

checked!(
    /// Days CloudWatch Logs keeps the containers' output; one of CloudWatch's values.
    RetentionDays(u32),
    |n| LOG_RETENTION_DAYS.contains(n).then_some(()).ok_or_else(|| {
        let allowed: Vec<String> = LOG_RETENTION_DAYS.iter().map(ToString::to_string).collect();
        let nearest = LOG_RETENTION_DAYS.iter().min_by_key(|d| d.abs_diff(*n)).copied().unwrap_or(30);
        format!("{n} days is not a CloudWatch Logs retention; allowed: {} (nearest: {nearest})", allowed.join(", "))
    }).map_err(Refused)
);

checked!(
    /// The awslogs stream prefix.
    StreamPrefix(String),
    |s| {
        let ok = !s.is_empty() && s.len() <= 256 && !s.contains([':', '*']) && !s.contains(char::is_whitespace);
        ok.then_some(()).ok_or_else(|| Refused(format!("expected a non-empty stream prefix without `:`, `*` or spaces, found {}", crate::model::secret::shown(s))))
    }
);

checked!(
    /// The Dynatrace environment ID (`DT_TENANT`).
    TenantId(String),
    |s| {
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then_some(()).ok_or_else(|| Refused(format!("expected an environment ID such as `abc12345` (letters, digits, `-`, at most 64), found {}", dt_shape(s, |b| b.is_ascii_alphanumeric() || b == b'-'))))
    }
);

checked!(
    /// `DT_SERVER`: comma-separated `https://` communication endpoints.
    ServerList(String),
    |s| {
        let bad: Vec<&str> = s.split(',').map(str::trim).filter(|u| parse_https_url(u).is_none()).collect();
        if s.trim().is_empty() || !bad.is_empty() {
            Err(Refused(format!(
                "expected comma-separated https URLs such as `https://abc12345.live.dynatrace.com:443/communication`, found {} (entry {} is no https URL)",
                dt_shape(s, |_| true),
                s.split(',').position(|u| parse_https_url(u.trim()).is_none()).map_or(1, |p| p + 1)
            )))
        } else if let Err(v) = crate::model::limits::env_value("DT_SERVER", s) {
            Err(Refused(format!("found {}; allowed: {}", v.found, v.allowed)))
        } else {
            Ok(())
        }
    }
);

checked!(
    /// `DT_NETWORK_ZONE`: letters, digits, `-`, `_`, `.`; at most 256.
    NetworkZone(String),
    |s| {
        let ok = !s.is_empty()
            && s.len() <= 256
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.contains("..")
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        ok.then_some(()).ok_or_else(|| {
            format!("expected a network zone of letters, digits, `-`, `_` with `.` as separator, at most 256 (e.g. `aws.eu-central-1`), found {}", dt_shape(s, |b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        }).map_err(Refused)
    }
);

checked!(
    /// `DT_CAPABILITIES`: comma-separated capability names.
    CapabilityList(String),
    |s| {
        let caps: Vec<&str> = s.split(',').map(str::trim).collect();
        if caps.iter().any(|c| c.starts_with("kubernetes")) {
            return Err(Refused::from("`kubernetes_monitoring` needs the Kubernetes API and cannot work on ECS; routing needs `MSGrouter`, the API `restInterface`"));
        }
        let ok = caps.iter().all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        ok.then_some(()).ok_or_else(|| Refused(format!("expected comma-separated capabilities such as `MSGrouter,restInterface,metrics_ingest`, found {}", dt_shape(s, |b| b.is_ascii_alphanumeric() || b == b'_' || b == b',' || b == b' '))))
    }
);

checked!(
    /// An http(s) URL of an AWS endpoint.
    EndpointUrl(String),
    |s| {
        let ok = (s.starts_with("https://") || s.starts_with("http://")) && s.len() > 8 && !s.contains(char::is_whitespace);
        ok.then_some(()).ok_or_else(|| Refused(format!("expected an http(s) URL such as `https://ecs.eu-central-1.amazonaws.com`, found {}", crate::model::secret::shown(s))))
    }
);

checked!(
    /// A number of days, 0 to 365.
    Days(f64),
    |n| (n.is_finite() && (0.0..=365.0).contains(n)).then_some(()).ok_or_else(|| Refused(format!("expected 0 to 365 days, found {n}")))
);

checked!(
    /// A version constraint: `newest`, `1.301.*`, `<= 1.303`, `>= 1.301`.
    ConstraintText(String),
    |s| crate::model::version::Constraint::parse(s).map(|_| ()).map_err(|e| Refused(e.to_string()))
);

checked!(
    /// An availability objective in percent: at least 90, below 100.
    SloPercent(f64),
    |n| (n.is_finite() && *n >= 90.0 && *n < 100.0).then_some(()).ok_or_else(|| Refused(format!("expected a percentage from 90 to below 100, such as 99.999, found {n}")))
);

checked!(
    /// Attempts per AWS call: 1 to 20.
    Attempts(u32),
    |n| (1..=20).contains(n).then_some(()).ok_or_else(|| Refused(format!("expected 1 to 20 attempts, found {n}")))
);

checked!(
    /// A percentage of the desired count: 0 to 200.
    Percent(u32),
    |n| (*n <= 200).then_some(()).ok_or_else(|| Refused(format!("expected a percentage from 0 to 200, found {n}")))
);

checked!(
    /// A Consul service, namespace or datacenter name.
    ConsulName(String),
    |s| {
        let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        ok.then_some(()).ok_or_else(|| Refused(format!("expected letters, digits, `-`, `_` or `.` (at most 128), found {}", crate::model::secret::shown(s))))
    }
);

checked!(
    /// A host name or IP address (no port, no wildcard).
    MeshAddress(String),
    |s| {
        let ip = s.parse::<std::net::IpAddr>().is_ok();
        let name = !s.is_empty() && s.len() <= 253 && s.contains('.')
            && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        (ip || name).then_some(()).ok_or_else(|| Refused(format!("expected a DNS name such as `activegate.observability.internal` or an IP address, found {}", crate::model::secret::shown(s))))
    }
);

checked!(
    /// An IPv4 or IPv6 CIDR block.
    CidrText(String),
    |s| {
        let ok = s.split_once('/').is_some_and(|(ip, bits)| match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        });
        ok.then_some(()).ok_or_else(|| Refused(format!("expected a CIDR block such as `10.0.16.0/20`, found {}", crate::model::secret::shown(s))))
    }
);

checked!(
    /// Task-definition revisions kept registered: 0 (pruning off) to 100.
    KeepRevisions(u32),
    |n| (0..=100).contains(n).then_some(()).ok_or_else(|| Refused(format!("expected 0 (off) to 100, found {n}")))
);

checked!(
    /// A small positive count: 1 to 100.
    Count(u32),
    |n| (1..=100).contains(n).then_some(()).ok_or_else(|| Refused(format!("expected 1 to 100, found {n}")))
);

checked!(
    /// A positive number of seconds, at most a day.
    Seconds(f64),
    |n| (n.is_finite() && *n > 0.0 && *n <= 86_400.0).then_some(()).ok_or_else(|| Refused(format!("expected a number of seconds above 0 and at most 86400, found {n}")))
);

impl Seconds {
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0)
    }
}

checked!(
    /// An HTTP path starting with `/`.
    ProbePath(String),
    |s| (s.starts_with('/') && !s.contains(char::is_whitespace)).then_some(()).ok_or_else(|| Refused(format!("expected a path starting with `/`, such as `/rest/health`, found {}", crate::model::secret::shown(s))))
);

checked!(
    /// A plain environment value: one line, no secret.
    PlainValue(String),
    |s| {
        if let Some(f) = crate::model::secret::find(s) {
            Err(Refused(format!("this looks like {}; tokens belong in Secrets Manager or SSM, named under [target.secrets]", crate::model::secret::describe(s, &f))))
        } else if s.contains('\n') {
            Err(Refused::from("expected a single line"))
        } else if let Err(v) = crate::model::limits::env_value("value", s) {
            Err(Refused(format!("found {}; allowed: {}", v.found, v.allowed)))
        } else {
            Ok(())
        }
    }
);

checked!(
    /// The name of an environment variable: letters, digits and `_`, not starting with a digit.
    VariableName(String),
    |s| {
        if crate::model::secret::is_token_like(s) {
            return Err(Refused::from("this looks like a token, not the name of the variable that holds it; put the token in a variable and name that"));
        }
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then_some(()).ok_or_else(|| Refused(format!("expected the name of an environment variable such as `DT_API_TOKEN`, found {}", crate::model::secret::shown(s))))
    }
);

/// What a refused `DT_*` value looks like, never the value (it may be a secret
/// pasted into the wrong field): its length and the first character not allowed.
fn dt_shape(s: &str, allowed: impl Fn(u8) -> bool) -> String {
    let mut out = crate::model::secret::shape(s);
    if let Some((i, c)) = s
        .char_indices()
        .find(|(_, c)| c.len_utf8() > 1 || !allowed(*c as u8))
    {
        let c = if c.is_alphanumeric() {
            "a letter or digit".to_owned()
        } else {
            format!("`{}`", c.escape_debug())
        };
        out.push_str(&format!(
            " with {c} at position {}",
            s[..i].chars().count() + 1
        ));
    }
    out
}

/// A list that must hold at least one element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmpty<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        if v.is_empty() {
            return Err(serde::de::Error::custom(
                "expected at least one element, found an empty list",
            ));
        }
        Ok(Self(v))
    }
}

/// `https://host[:port][/path]` → (host, port).
fn parse_https_url(s: &str) -> Option<(String, u16)> {
    let rest = s.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|&p| p > 0)?),
        None => (authority, 443),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    host_ok.then(|| (host.to_owned(), port))
}

/// Declares a newtype over a value parsed from its TOML form `$raw` by a function
/// that refuses what does not parse.
macro_rules! parsed {
    ($(#[$doc:meta])* $name:ident($inner:ty) from $raw:ty, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <$raw>::deserialize(d)?;
                let parse: fn(&$raw) -> Result<$inner, Refused> = $parse;
                parse(&raw).map(Self).map_err(serde::de::Error::custom)
            }
        }
    };
}

parsed!(
    /// A cron expression with seconds: `sec min hour day month weekday [year]`, e.g.
    /// `0 30 3 * * *`. Parsed at load; its zone is the target's `timezone`.
    CronSchedule(Schedule) from String,
    |s| Schedule::parse_in(s, chrono_tz::UTC).map_err(|e| Refused(e.to_string()))
);

parsed!(
    /// An IANA time zone name such as `Europe/Berlin`.
    TimezoneName(Tz) from String,
    |s| crate::model::schedule::zone(s).map_err(|e| Refused(e.to_string()))
);

parsed!(
    /// A day of the week: `Mon` … `Sun`.
    DayName(Weekday) from String,
    |s| s.parse::<Weekday>().map_err(|_| Refused(format!("expected a day such as `Mon` or `Sat`, found {}", crate::model::secret::shown(s))))
);

parsed!(
    /// A time of day, `HH:MM`, e.g. `02:30`.
    ClockTime(NaiveTime) from String,
    |s| NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| Refused(format!("expected a time of day such as `02:30`, found {}", crate::model::secret::shown(s))))
);

parsed!(
    /// A public-key pin: the SHA-256 of the certificate's public key, as 64 hex digits or
    /// base64 (with or without a `sha256/` prefix).
    PinText([u8; 32]) from String,
    |s| crate::model::pin::parse(s).ok_or_else(|| Refused::from("expected the SHA-256 of the certificate's public key as 64 hex digits or base64"))
);

/// The entry point OneAgents use: `https://HOST[:PORT]/PATH`, with its host and port.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryPointUrl {
    /// The URL as written.
    pub url: String,
    pub host: String,
    /// The port; 443 when the URL names none.
    pub port: u16,
}

impl<'de> Deserialize<'de> for EntryPointUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let url = String::deserialize(d)?;
        let (host, port) = parse_https_url(&url).ok_or_else(|| {
            serde::de::Error::custom(Refused(format!(
                "expected an https URL such as `https://activegate.example.internal:9999/communication`, found {}",
                crate::model::secret::shown(&url)
            )))
        })?;
        Ok(Self { url, host, port })
    }
}

checked!(
    /// A token bucket's burst: at least 1 call.
    Burst(u32),
    |n| (*n >= 1).then_some(()).ok_or_else(|| Refused(format!("expected a burst of at least 1 call, found {n}")))
);

checked!(
    /// A token bucket's refill rate: above 0 and at most 10000 calls a second.
    PerSecond(f64),
    |n| (n.is_finite() && *n > 0.0 && *n <= 10_000.0).then_some(()).ok_or_else(|| Refused(format!("expected calls per second above 0 and at most 10000, found {n}")))
);

checked!(
    /// A role session name: 2 to 64 of letters, digits and `_+=,.@-` (STS AssumeRole).
    SessionName(String),
    |s| {
        let ok = (2..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        ok.then_some(()).ok_or_else(|| Refused(format!("expected 2 to 64 letters, digits and `_+=,.@-` (STS's RoleSessionName), found {}", crate::model::secret::shown(s))))
    }
);

/// The external ID a role's trust policy requires: 1 to 1224 of letters, digits and
/// `_+=,.@:/-` (STS AssumeRole). It works like a shared secret, so it is never printed:
/// not by `Debug`, not in a refusal (which gives its shape).
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalId(pub String);

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExternalId({} chars)", self.0.chars().count())
    }
}

impl<'de> Deserialize<'de> for ExternalId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b);
        if (1..=1224).contains(&s.len()) && s.bytes().all(allowed) {
            Ok(Self(s))
        } else {
            Err(serde::de::Error::custom(Refused(format!(
                "expected 1 to 1224 letters, digits and `_+=,.@:/-` (STS's ExternalId), found {}",
                dt_shape(&s, allowed)
            ))))
        }
    }
}
