//! One container definition: its name, image, memory and CPU, port mappings,
//! environment, commands and paths, health check and stop timeout.

use std::collections::BTreeSet;

use super::*;
use crate::model::task_definition::{ContainerDefinition, HealthCheck};

/// Every limit of one container of a task of `task_memory` MiB and `task_cpu` CPU units
/// (0 and 0 when the task size itself is refused).
pub(super) fn container(
    c: &ContainerDefinition,
    task_memory: u32,
    task_cpu: u32,
    out: &mut Vec<Violation>,
) {
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
    port_mappings(&cpath, c, &mut push);
    environment(&cpath, c, &mut push);
    commands_and_paths(&cpath, c, &mut push);
    if let Some(h) = &c.health_check {
        health_check(&cpath, h, &mut push);
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

/// Port mappings: valid ports, each once, tcp or udp, unique valid names.
fn port_mappings(
    cpath: &str,
    c: &ContainerDefinition,
    push: &mut impl FnMut(Result<(), Violation>),
) {
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
}

/// Environment variables (count, names, values, total size, no name twice) and the
/// names of secrets.
fn environment(cpath: &str, c: &ContainerDefinition, push: &mut impl FnMut(Result<(), Violation>)) {
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
}

/// The entry point and command arguments, the working directory, the user, the
/// mount points' container paths.
fn commands_and_paths(
    cpath: &str,
    c: &ContainerDefinition,
    push: &mut impl FnMut(Result<(), Violation>),
) {
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
}

/// The health check: its command form and the documented ranges.
fn health_check(cpath: &str, h: &HealthCheck, push: &mut impl FnMut(Result<(), Violation>)) {
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
