//! What ECS accepts, field by field: the one place that knows ECS's limits.
//!
//! The translator checks each value here where it copies it (so that a refusal
//! points at the manifest's line and column), the config checks the values only
//! it can hold (subnets, security groups, names), and every document is checked
//! as a whole before anything prints or registers it ([`task_definition`],
//! [`create_service`]); the rollout engine builds its task definitions, services
//! and task sets through the same translator and so through the same checks.
//!
//! Each limit names where AWS documents it. Where AWS documents none and the
//! product still needs a bound (so that no input can make a document, a report
//! or memory grow without end), the bound is marked as the product's own budget.
//!
//! A [`Violation`] never repeats a value that looks like a secret: it gives the
//! value through [`crate::model::secret::shown`], or only its shape.

mod container;
mod documents;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;

use super::secret;
use super::service::AwsVpcConfiguration;

pub use documents::{create_service, task_definition};

/// Where AWS documents a limit.
pub mod source {
    pub const CONTAINER_DEFINITION: &str = "ECS API reference, ContainerDefinition";
    pub const REGISTER_TASK_DEFINITION: &str = "ECS API reference, RegisterTaskDefinition";
    pub const PORT_MAPPING: &str = "ECS API reference, PortMapping";
    pub const HEALTH_CHECK: &str = "ECS API reference, HealthCheck";
    pub const AWSVPC: &str = "ECS API reference, AwsVpcConfiguration";
    pub const TAG: &str = "ECS API reference, Tag";
    pub const CREATE_SERVICE: &str = "ECS API reference, CreateService";
    pub const FARGATE_SIZES: &str = "ECS developer guide, Fargate task sizes";
    pub const FARGATE_PARAMETERS: &str =
        "ECS developer guide, task definition parameters for Fargate";
    pub const QUOTAS: &str = "ECS developer guide, Amazon ECS service quotas";
    pub const DOCKER_RUN: &str =
        "Docker reference, docker run (execve: no NUL in arguments or environment)";
    pub const KUBERNETES_ENV: &str = "Kubernetes API, EnvVar.name (the manifest's own rule)";
    pub const BUDGET: &str = "activegate-lifecycle's own budget; ECS documents no limit";
}

/// A value ECS would refuse (or one beyond the product's budget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The document field, e.g. `containerDefinitions[activegate].memory`.
    pub field: String,
    /// What was found: a value through [`secret::shown`], or its shape.
    pub found: String,
    /// What is allowed.
    pub allowed: String,
    /// Where the limit is documented.
    pub source: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: found {}; allowed: {} ({})",
            self.field, self.found, self.allowed, self.source
        )
    }
}

impl std::error::Error for Violation {}

fn violation(
    field: &str,
    found: impl Into<String>,
    allowed: impl Into<String>,
    source: &'static str,
) -> Violation {
    Violation {
        field: field.to_owned(),
        found: found.into(),
        allowed: allowed.into(),
        source,
    }
}

// ---- the limits ------------------------------------------------------------------------

/// Container names, families, volume names, service names: "Up to 255 letters
/// (uppercase and lowercase), numbers, underscores, and hyphens".
pub const NAME_MAX: usize = 255;
/// Images: "Up to 255 letters (uppercase and lowercase), numbers, hyphens,
/// underscores, colons, periods, forward slashes, and number signs" (`@` for a digest).
pub const IMAGE_MAX: usize = 255;
/// Port mapping names: up to 64 lowercase letters, numbers, `_` and `-`, not
/// starting with `-` (PortMapping.name).
pub const PORT_NAME_MAX: usize = 64;
/// Containers per task definition (service quotas, not adjustable).
pub const CONTAINERS_MAX: usize = 10;
/// The Docker 20.10 daemon reserves 6 MiB per container: "don't specify less than
/// 6 MiB of memory for your containers" (ContainerDefinition.memory).
pub const CONTAINER_MEMORY_MIN_MIB: u32 = 6;
/// Subnets per awsvpc configuration.
pub const SUBNETS_MAX: usize = 16;
/// Security groups per awsvpc configuration.
pub const SECURITY_GROUPS_MAX: usize = 5;
/// Tags per resource, key and value lengths (in Unicode characters).
pub const TAGS_MAX: usize = 50;
pub const TAG_KEY_MAX: usize = 128;
pub const TAG_VALUE_MAX: usize = 256;
/// Health check ranges (HealthCheck).
pub const HEALTH_INTERVAL: (u32, u32) = (5, 300);
pub const HEALTH_TIMEOUT: (u32, u32) = (2, 60);
pub const HEALTH_RETRIES: (u32, u32) = (1, 10);
pub const HEALTH_START_PERIOD: (u32, u32) = (0, 300);
/// Fargate's stopTimeout: at most 120 s (task definition parameters for Fargate).
pub const STOP_TIMEOUT: (u32, u32) = (2, 120);
/// Load balancers (target groups) per service (CreateService.loadBalancers).
pub const LOAD_BALANCERS_MAX: usize = 5;
/// Service registries per service (CreateService.serviceRegistries: one).
pub const SERVICE_REGISTRIES_MAX: usize = 1;

/// Budget: one environment value, one argument, a working directory or a path.
/// Linux limits one execve string to 128 KiB; ECS documents nothing smaller.
pub const VALUE_MAX_BYTES: usize = 32 * 1024;
/// Budget: all environment names and values of one container together.
pub const ENVIRONMENT_MAX_BYTES: usize = 32 * 1024;
/// Budget: a whole task definition or service document as JSON.
pub const DOCUMENT_MAX_BYTES: usize = 64 * 1024;
/// Budget: the length of a path (Linux's PATH_MAX).
pub const PATH_MAX_BYTES: usize = 4096;
/// Budget: environment variables per container.
pub const ENVIRONMENT_MAX_COUNT: usize = 512;

fn control_char(s: &str, allow_newlines: bool) -> Option<char> {
    s.chars()
        .find(|&c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\t' | '\r')))
}

fn describe_char(c: char) -> String {
    format!("the control character {}", c.escape_unicode())
}

/// An ECS name (container, family, volume, service, cluster): 1 to 255 of
/// `[A-Za-z0-9_-]`.
pub fn name(field: &str, s: &str, source: &'static str) -> Result<(), Violation> {
    let ok = !s.is_empty()
        && s.len() <= NAME_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(violation(
            field,
            found_text(s, NAME_MAX),
            "1 to 255 letters, digits, `_` and `-`",
            source,
        ))
    }
}

/// What a refused text looked like: its length when too long, a bad character,
/// or the (bounded, redacted) value.
fn found_text(s: &str, max: usize) -> String {
    if s.is_empty() {
        "an empty value".into()
    } else if s.chars().count() > max {
        format!("{} chars", s.chars().count())
    } else if let Some(c) = control_char(s, false) {
        describe_char(c)
    } else {
        secret::shown(s)
    }
}

/// An image reference: 1 to 255 of letters, digits, `-_:./#@`.
pub fn image(field: &str, s: &str) -> Result<(), Violation> {
    let ok = !s.is_empty()
        && s.len() <= IMAGE_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:./#@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(violation(
            field,
            found_text(s, IMAGE_MAX),
            "1 to 255 letters, digits, `-`, `_`, `:`, `.`, `/`, `#` (and `@` before a digest)",
            source::CONTAINER_DEFINITION,
        ))
    }
}

/// A container port: 1 to 65535.
pub fn port(field: &str, p: u32) -> Result<(), Violation> {
    if (1..=65535).contains(&p) {
        Ok(())
    } else {
        Err(violation(
            field,
            p.to_string(),
            "a port from 1 to 65535",
            source::PORT_MAPPING,
        ))
    }
}

/// A port mapping name: 1 to 64 of `[a-z0-9_-]`, not starting with `-`.
pub fn port_name(field: &str, s: &str) -> Result<(), Violation> {
    let ok = !s.is_empty()
        && s.len() <= PORT_NAME_MAX
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(violation(
            field,
            found_text(s, PORT_NAME_MAX),
            "1 to 64 lower-case letters, digits, `_` and `-`, not starting with `-`",
            source::PORT_MAPPING,
        ))
    }
}

/// An environment variable name: letters, digits, `_`, `-`, `.`, not starting
/// with a digit (Kubernetes' rule; ECS documents none, execve forbids `=` and NUL).
pub fn env_name(field: &str, s: &str) -> Result<(), Violation> {
    let ok = !s.is_empty()
        && s.len() <= NAME_MAX
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(violation(
            field,
            found_text(s, NAME_MAX),
            "1 to 255 letters, digits, `_`, `-` and `.`, not starting with a digit",
            source::KUBERNETES_ENV,
        ))
    }
}

/// Text copied into a document: no control characters (newlines and tabs only
/// where `allow_newlines`, as in a shell script), at most `max` bytes.
pub fn text(
    field: &str,
    s: &str,
    max: usize,
    allow_newlines: bool,
    source: &'static str,
) -> Result<(), Violation> {
    if s.len() > max {
        return Err(violation(
            field,
            format!("{} bytes", s.len()),
            format!("at most {max} bytes"),
            source,
        ));
    }
    match control_char(s, allow_newlines) {
        Some(c) => Err(violation(
            field,
            describe_char(c),
            if allow_newlines {
                "text without control characters other than newlines and tabs"
            } else {
                "one line of text without control characters"
            },
            source::DOCKER_RUN,
        )),
        None => Ok(()),
    }
}

/// An environment value: one line without control characters, at most 32 KiB.
pub fn env_value(field: &str, s: &str) -> Result<(), Violation> {
    text(field, s, VALUE_MAX_BYTES, false, source::BUDGET)
}

/// An absolute path inside the container (workingDirectory, containerPath).
pub fn path(field: &str, s: &str) -> Result<(), Violation> {
    text(field, s, PATH_MAX_BYTES, false, source::BUDGET)?;
    if s.starts_with('/') {
        Ok(())
    } else {
        Err(violation(
            field,
            found_text(s, PATH_MAX_BYTES),
            "an absolute path (Docker refuses a relative working directory)",
            source::DOCKER_RUN,
        ))
    }
}

/// No token-looking text: the product copies no secret into a document.
pub fn no_secret(field: &str, s: &str) -> Result<(), Violation> {
    match secret::find(s) {
        None => Ok(()),
        Some(f) => Err(violation(
            field,
            format!("something that looks like {}", secret::describe(s, &f)),
            "no literal secret: name a Secrets Manager or SSM ARN under [target.secrets]",
            source::BUDGET,
        )),
    }
}

/// A container's memory (hard limit) and reservation, in MiB, within a Fargate
/// task of `task_memory` MiB. Returns the first violation.
pub fn container_memory(
    cpath: &str,
    memory: Option<u32>,
    reservation: Option<u32>,
    task_memory: u32,
) -> Result<(), Violation> {
    for (what, v) in [("memory", memory), ("memoryReservation", reservation)] {
        let Some(v) = v else { continue };
        let field = format!("{cpath}.{what}");
        if v < CONTAINER_MEMORY_MIN_MIB {
            return Err(violation(
                &field,
                format!("{v} MiB"),
                format!("at least {CONTAINER_MEMORY_MIN_MIB} MiB"),
                source::CONTAINER_DEFINITION,
            ));
        }
        if v > task_memory {
            return Err(violation(
                &field,
                format!("{v} MiB"),
                format!("at most the task's memory, {task_memory} MiB"),
                source::CONTAINER_DEFINITION,
            ));
        }
    }
    if let (Some(m), Some(r)) = (memory, reservation)
        && m <= r
    {
        return Err(violation(
            &format!("{cpath}.memory"),
            format!("{m} MiB with memoryReservation {r} MiB"),
            "memory greater than memoryReservation",
            source::CONTAINER_DEFINITION,
        ));
    }
    Ok(())
}

fn range(
    field: &str,
    v: u32,
    (lo, hi): (u32, u32),
    unit: &str,
    src: &'static str,
) -> Result<(), Violation> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(violation(
            field,
            format!("{v}{unit}"),
            format!("{lo} to {hi}{unit}"),
            src,
        ))
    }
}

/// awsvpc: 1 to 16 subnets, at most 5 security groups, `ENABLED`/`DISABLED`.
pub fn awsvpc(prefix: &str, c: &AwsVpcConfiguration) -> Vec<Violation> {
    let mut out = Vec::new();
    if c.subnets.is_empty() || c.subnets.len() > SUBNETS_MAX {
        out.push(violation(
            &format!("{prefix}.subnets"),
            format!("{} subnets", c.subnets.len()),
            format!("1 to {SUBNETS_MAX} subnets"),
            source::AWSVPC,
        ));
    }
    if c.security_groups.len() > SECURITY_GROUPS_MAX {
        out.push(violation(
            &format!("{prefix}.securityGroups"),
            format!("{} security groups", c.security_groups.len()),
            format!("at most {SECURITY_GROUPS_MAX} security groups"),
            source::AWSVPC,
        ));
    }
    if !matches!(c.assign_public_ip.as_str(), "ENABLED" | "DISABLED") {
        out.push(violation(
            &format!("{prefix}.assignPublicIp"),
            secret::shown(&c.assign_public_ip),
            "ENABLED or DISABLED",
            source::AWSVPC,
        ));
    }
    out
}

/// A count of list members against its maximum.
pub fn count(
    field: &str,
    n: usize,
    max: usize,
    what: &str,
    src: &'static str,
) -> Result<(), Violation> {
    if n <= max {
        Ok(())
    } else {
        Err(violation(
            field,
            format!("{n} {what}"),
            format!("at most {max} {what}"),
            src,
        ))
    }
}

/// Tags: at most 50, unique keys of 1 to 128 characters, values of at most 256,
/// letters, digits, spaces and `+-=._:/@`, no `aws:` prefix.
pub fn tags<'a>(
    prefix: &str,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut keys = BTreeSet::new();
    let allowed = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c))
    };
    let mut n = 0;
    for (key, value) in tags {
        n += 1;
        let field = format!("{prefix}[{}]", secret::shown(key));
        if key.is_empty()
            || key.chars().count() > TAG_KEY_MAX
            || !allowed(key)
            || key.to_ascii_lowercase().starts_with("aws:")
        {
            out.push(violation(
                &format!("{field}.key"),
                found_text(key, TAG_KEY_MAX),
                "1 to 128 letters, digits, spaces and `+-=._:/@`, not starting with `aws:`",
                source::TAG,
            ));
        }
        if value.chars().count() > TAG_VALUE_MAX
            || !allowed(value)
            || value.to_ascii_lowercase().starts_with("aws:")
        {
            out.push(violation(
                &format!("{field}.value"),
                found_text(value, TAG_VALUE_MAX),
                "at most 256 letters, digits, spaces and `+-=._:/@`, not starting with `aws:`",
                source::TAG,
            ));
        }
        if !keys.insert(key.to_owned()) {
            out.push(violation(
                &format!("{field}.key"),
                "a key used twice",
                "unique keys",
                source::TAG,
            ));
        }
    }
    if n > TAGS_MAX {
        out.push(violation(
            prefix,
            format!("{n} tags"),
            format!("at most {TAGS_MAX} tags"),
            source::TAG,
        ));
    }
    out
}
