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

use std::collections::BTreeSet;
use std::fmt;

use super::secret;
use super::service::{AwsVpcConfiguration, CreateService};
use super::task_definition::{ContainerDefinition, TaskDefinition};

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

// ---- whole documents --------------------------------------------------------------------

/// Every string of a JSON document, with its path: no token-looking text, no NUL
/// anywhere, no other control character outside commands.
fn strings(path: &str, v: &serde_json::Value, out: &mut Vec<Violation>) {
    match v {
        serde_json::Value::String(s) => {
            if let Err(e) = no_secret(path, s) {
                out.push(e);
            }
            let command = path.ends_with(".command")
                || path.contains(".command[")
                || path.contains(".entryPoint[");
            if let Some(c) = control_char(s, command) {
                out.push(violation(
                    path,
                    describe_char(c),
                    "text without control characters",
                    source::DOCKER_RUN,
                ));
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                // Name list members by their `name` when they have one.
                let key = x
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .filter(|n| !secret::is_token_like(n) && n.len() <= NAME_MAX)
                    .map_or_else(|| i.to_string(), str::to_owned);
                strings(&format!("{path}[{key}]"), x, out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                strings(&p, x, out);
            }
        }
        _ => {}
    }
}

fn document_size(what: &str, json: &str, out: &mut Vec<Violation>) {
    if json.len() > DOCUMENT_MAX_BYTES {
        out.push(violation(
            what,
            format!("{} bytes of JSON", json.len()),
            format!("at most {DOCUMENT_MAX_BYTES} bytes"),
            source::BUDGET,
        ));
    }
}

fn container(c: &ContainerDefinition, task_memory: u32, task_cpu: u32, out: &mut Vec<Violation>) {
    let cpath = format!(
        "containerDefinitions[{}]",
        if name("", &c.name, source::CONTAINER_DEFINITION).is_ok() {
            c.name.as_str()
        } else {
            "?"
        }
    );
    let mut push = |r: Result<(), Violation>| {
        if let Err(e) = r {
            out.push(e);
        }
    };
    push(name(
        &format!("{cpath}.name"),
        &c.name,
        source::CONTAINER_DEFINITION,
    ));
    push(image(&format!("{cpath}.image"), &c.image));
    push(container_memory(
        &cpath,
        c.memory,
        c.memory_reservation,
        task_memory,
    ));
    if let Some(cpu) = c.cpu
        && cpu > task_cpu
    {
        push(Err(violation(
            &format!("{cpath}.cpu"),
            format!("{cpu} CPU units"),
            format!("at most the task's {task_cpu} CPU units"),
            source::CONTAINER_DEFINITION,
        )));
    }
    let mut ports = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    for p in &c.port_mappings {
        let field = format!("{cpath}.portMappings[{}]", p.container_port);
        push(port(
            &format!("{field}.containerPort"),
            u32::from(p.container_port),
        ));
        if !ports.insert(p.container_port) {
            push(Err(violation(
                &format!("{field}.containerPort"),
                format!("port {} mapped twice", p.container_port),
                "each container port once (ECS cannot expose one port for several protocols)",
                source::PORT_MAPPING,
            )));
        }
        if !matches!(p.protocol.as_str(), "tcp" | "udp") {
            push(Err(violation(
                &format!("{field}.protocol"),
                secret::shown(&p.protocol),
                "tcp or udp",
                source::PORT_MAPPING,
            )));
        }
        if let Some(n) = &p.name {
            push(port_name(&format!("{field}.name"), n));
            if !port_names.insert(n.clone()) {
                push(Err(violation(
                    &format!("{field}.name"),
                    format!("the name {} used twice", secret::shown(n)),
                    "unique port mapping names",
                    source::PORT_MAPPING,
                )));
            }
        }
    }
    push(count(
        &format!("{cpath}.environment"),
        c.environment.len(),
        ENVIRONMENT_MAX_COUNT,
        "variables",
        source::BUDGET,
    ));
    let mut env_bytes = 0;
    let mut env_names = BTreeSet::new();
    for kv in &c.environment {
        let field = format!(
            "{cpath}.environment[{}]",
            if env_name("", &kv.name).is_ok() {
                kv.name.as_str()
            } else {
                "?"
            }
        );
        push(env_name(&format!("{field}.name"), &kv.name));
        push(env_value(&format!("{field}.value"), &kv.value));
        env_bytes += kv.name.len() + kv.value.len();
        if !env_names.insert(kv.name.as_str()) {
            push(Err(violation(
                &format!("{field}.name"),
                "a name set twice",
                "unique names",
                source::CONTAINER_DEFINITION,
            )));
        }
    }
    if env_bytes > ENVIRONMENT_MAX_BYTES {
        push(Err(violation(
            &format!("{cpath}.environment"),
            format!("{env_bytes} bytes of names and values"),
            format!("at most {ENVIRONMENT_MAX_BYTES} bytes"),
            source::BUDGET,
        )));
    }
    for s in &c.secrets {
        push(env_name(
            &format!("{cpath}.secrets[{}].name", s.name),
            &s.name,
        ));
    }
    for (what, list) in [("entryPoint", &c.entry_point), ("command", &c.command)] {
        for (i, a) in list.iter().enumerate() {
            push(text(
                &format!("{cpath}.{what}[{i}]"),
                a,
                VALUE_MAX_BYTES,
                true,
                source::BUDGET,
            ));
        }
    }
    if let Some(dir) = &c.working_directory {
        push(path(&format!("{cpath}.workingDirectory"), dir));
    }
    if let Some(u) = &c.user {
        push(text(
            &format!("{cpath}.user"),
            u,
            NAME_MAX,
            false,
            source::CONTAINER_DEFINITION,
        ));
    }
    for m in &c.mount_points {
        push(path(
            &format!("{cpath}.mountPoints[{}].containerPath", m.source_volume),
            &m.container_path,
        ));
    }
    if let Some(h) = &c.health_check {
        let hp = format!("{cpath}.healthCheck");
        if !matches!(
            h.command.first().map(String::as_str),
            Some("CMD" | "CMD-SHELL" | "NONE")
        ) || h.command.len() < 2
        {
            push(Err(violation(
                &format!("{hp}.command"),
                format!("{} arguments", h.command.len()),
                "CMD or CMD-SHELL followed by the command",
                source::HEALTH_CHECK,
            )));
        }
        push(range(
            &format!("{hp}.interval"),
            h.interval,
            HEALTH_INTERVAL,
            " s",
            source::HEALTH_CHECK,
        ));
        push(range(
            &format!("{hp}.timeout"),
            h.timeout,
            HEALTH_TIMEOUT,
            " s",
            source::HEALTH_CHECK,
        ));
        push(range(
            &format!("{hp}.retries"),
            h.retries,
            HEALTH_RETRIES,
            "",
            source::HEALTH_CHECK,
        ));
        push(range(
            &format!("{hp}.startPeriod"),
            h.start_period,
            HEALTH_START_PERIOD,
            " s",
            source::HEALTH_CHECK,
        ));
    }
    if let Some(t) = c.stop_timeout {
        push(range(
            &format!("{cpath}.stopTimeout"),
            t,
            STOP_TIMEOUT,
            " s",
            source::FARGATE_PARAMETERS,
        ));
    }
}

/// Every limit of a Fargate task definition. Empty when ECS would accept it.
pub fn task_definition(td: &TaskDefinition) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Err(e) = name("family", &td.family, source::REGISTER_TASK_DEFINITION) {
        out.push(e);
    }
    let cpu = td.cpu.parse::<u32>().ok();
    let memory = td.memory.parse::<u32>().ok();
    let (task_cpu, task_memory) = match (cpu, memory) {
        (Some(c), Some(m)) if super::fargate::is_valid(c, m) => (c, m),
        _ => {
            out.push(violation(
                "cpu, memory",
                format!(
                    "cpu {} / memory {}",
                    secret::shown(&td.cpu),
                    secret::shown(&td.memory)
                ),
                "a Fargate task size, e.g. cpu 256 with memory 512, 1024 or 2048",
                source::FARGATE_SIZES,
            ));
            (0, 0)
        }
    };
    if td.container_definitions.is_empty() || td.container_definitions.len() > CONTAINERS_MAX {
        out.push(violation(
            "containerDefinitions",
            format!("{} containers", td.container_definitions.len()),
            format!("1 to {CONTAINERS_MAX} containers"),
            source::QUOTAS,
        ));
    }
    let mut names = BTreeSet::new();
    let mut reserved: u64 = 0;
    for c in &td.container_definitions {
        container(c, task_memory, task_cpu, &mut out);
        if !names.insert(c.name.as_str()) {
            out.push(violation(
                "containerDefinitions",
                "a container name used twice",
                "unique container names",
                source::CONTAINER_DEFINITION,
            ));
        }
        reserved += u64::from(c.memory_reservation.or(c.memory).unwrap_or(0));
    }
    if task_memory > 0 && reserved > u64::from(task_memory) {
        out.push(violation(
            "containerDefinitions[*].memoryReservation",
            format!("{reserved} MiB reserved in all"),
            format!("at most the task's memory, {task_memory} MiB"),
            source::CONTAINER_DEFINITION,
        ));
    }
    let volumes: BTreeSet<&str> = td.volumes.iter().map(|v| v.name.as_str()).collect();
    for v in &td.volumes {
        if let Err(e) = name(
            &format!("volumes[{}].name", v.name),
            &v.name,
            source::REGISTER_TASK_DEFINITION,
        ) {
            out.push(e);
        }
    }
    for c in &td.container_definitions {
        for m in &c.mount_points {
            if !volumes.contains(m.source_volume.as_str()) {
                out.push(violation(
                    &format!("containerDefinitions[{}].mountPoints.sourceVolume", c.name),
                    secret::shown(&m.source_volume),
                    "the name of one of the task's volumes",
                    source::CONTAINER_DEFINITION,
                ));
            }
        }
        for d in &c.depends_on {
            if !names.contains(d.container_name.as_str())
                || !matches!(
                    d.condition.as_str(),
                    "START" | "COMPLETE" | "SUCCESS" | "HEALTHY"
                )
            {
                out.push(violation(
                    &format!("containerDefinitions[{}].dependsOn", c.name),
                    format!(
                        "{} {}",
                        secret::shown(&d.container_name),
                        secret::shown(&d.condition)
                    ),
                    "a container of the task with START, COMPLETE, SUCCESS or HEALTHY",
                    source::CONTAINER_DEFINITION,
                ));
            }
        }
    }
    out.extend(tags(
        "tags",
        td.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
    ));
    let json = serde_json::to_value(td).expect("a task definition serialises");
    strings("", &json, &mut out);
    document_size("(task definition)", &json.to_string(), &mut out);
    out
}

/// Every limit of a `create-service` document (its network part is also what a
/// task set gets). Empty when ECS would accept it.
pub fn create_service(doc: &CreateService) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Err(e) = name("serviceName", &doc.service_name, source::CREATE_SERVICE) {
        out.push(e);
    }
    out.extend(awsvpc(
        "networkConfiguration.awsvpcConfiguration",
        &doc.network_configuration.awsvpc_configuration,
    ));
    for r in [
        count(
            "loadBalancers",
            doc.load_balancers.len(),
            LOAD_BALANCERS_MAX,
            "target groups",
            source::CREATE_SERVICE,
        ),
        count(
            "serviceRegistries",
            doc.service_registries.len(),
            SERVICE_REGISTRIES_MAX,
            "registries",
            source::CREATE_SERVICE,
        ),
    ] {
        if let Err(e) = r {
            out.push(e);
        }
    }
    for lb in &doc.load_balancers {
        if let Err(e) = port("loadBalancers.containerPort", u32::from(lb.container_port)) {
            out.push(e);
        }
    }
    out.extend(tags(
        "tags",
        doc.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
    ));
    let json = serde_json::to_value(doc).expect("a service document serialises");
    strings("", &json, &mut out);
    document_size("(service document)", &json.to_string(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::task_definition::{KeyValuePair, PortMapping};

    fn td() -> TaskDefinition {
        let mut c = ContainerDefinition::new("activegate", "repo/ag:1");
        c.port_mappings.push(PortMapping {
            name: Some("ag-https".into()),
            container_port: 9999,
            protocol: "tcp".into(),
        });
        TaskDefinition {
            family: "ag".into(),
            task_role_arn: None,
            execution_role_arn: None,
            network_mode: "awsvpc".into(),
            container_definitions: vec![c],
            volumes: Vec::new(),
            requires_compatibilities: vec!["FARGATE".into()],
            cpu: "256".into(),
            memory: "512".into(),
            runtime_platform: None,
            tags: Vec::new(),
        }
    }

    fn fields(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn a_plain_task_definition_passes() {
        assert_eq!(task_definition(&td()), Vec::new());
    }

    #[test]
    fn memory_below_the_reservation_or_docker_minimum_is_refused() {
        let mut t = td();
        t.container_definitions[0].memory = Some(1);
        t.container_definitions[0].memory_reservation = Some(512);
        let v = task_definition(&t);
        assert!(
            fields(&v).contains(&"containerDefinitions[activegate].memory"),
            "{v:?}"
        );
        assert!(container_memory("c", Some(512), Some(512), 512).is_err());
        assert!(container_memory("c", Some(512), Some(256), 512).is_ok());
        assert!(container_memory("c", Some(1024), None, 512).is_err());
    }

    #[test]
    fn names_images_and_ports_follow_ecs() {
        let mut t = td();
        t.container_definitions[0].name = "a".repeat(256);
        t.container_definitions[0].image = format!("r/{}", "b".repeat(300));
        t.container_definitions[0].port_mappings[0].container_port = 0;
        let v = task_definition(&t);
        let f = fields(&v);
        assert!(f.contains(&"containerDefinitions[?].name"), "{f:?}");
        assert!(f.contains(&"containerDefinitions[?].image"), "{f:?}");
        assert!(
            f.contains(&"containerDefinitions[?].portMappings[0].containerPort"),
            "{f:?}"
        );
        assert!(v.iter().all(|v| v.found.len() < 100), "{v:?}");
    }

    #[test]
    fn control_characters_and_tokens_never_reach_a_document() {
        let mut t = td();
        t.container_definitions[0].environment.push(KeyValuePair {
            name: "X".into(),
            value: "a\0b".into(),
        });
        t.container_definitions[0].environment.push(KeyValuePair {
            name: "Y".into(),
            value: "dt0c01.ABCDEFGHIJKLMNOPQRSTUVWX.ABCDEFGHIJKLMNOPQRSTUVWXYZ".into(),
        });
        let v = task_definition(&t);
        let f = fields(&v);
        assert!(
            f.contains(&"containerDefinitions[activegate].environment[X].value"),
            "{f:?}"
        );
        assert!(
            f.contains(&"containerDefinitions[activegate].environment[Y].value"),
            "{f:?}"
        );
        assert!(
            v.iter().all(|v| !v.to_string().contains("ABCDEFGH")),
            "{v:?}"
        );
    }

    #[test]
    fn awsvpc_allows_16_subnets_and_5_security_groups() {
        let c = AwsVpcConfiguration {
            subnets: vec!["subnet-01234567".into(); 17],
            security_groups: vec!["sg-01234567".into(); 6],
            assign_public_ip: "DISABLED".into(),
        };
        assert_eq!(awsvpc("n", &c).len(), 2);
        let ok = AwsVpcConfiguration {
            subnets: vec!["subnet-01234567".into(); 16],
            security_groups: vec!["sg-01234567".into(); 5],
            assign_public_ip: "ENABLED".into(),
        };
        assert!(awsvpc("n", &ok).is_empty());
    }

    #[test]
    fn tags_follow_the_tag_rules() {
        assert!(tags("tags", [("managed-by", "activegate-lifecycle")]).is_empty());
        assert_eq!(tags("tags", [("aws:x", "y")]).len(), 1);
        let key = "k".repeat(129);
        assert_eq!(tags("tags", [(key.as_str(), "v")]).len(), 1);
        let many: Vec<(String, String)> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            tags("tags", many.iter().map(|(k, v)| (k.as_str(), v.as_str()))).len(),
            1
        );
    }

    #[test]
    fn a_violation_says_field_found_allowed_and_source() {
        let e = port("containerDefinitions[ag].portMappings[0].containerPort", 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "containerDefinitions[ag].portMappings[0].containerPort: found 0; allowed: a port from 1 to 65535 (ECS API reference, PortMapping)"
        );
    }
}
