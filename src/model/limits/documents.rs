//! Whole documents: a task definition and a `create-service` document, every field
//! through the checks of [`super`], every string for secrets and control characters,
//! and the document's size.

use std::collections::BTreeSet;

use super::container::container;
use super::*;
use crate::model::service::CreateService;
use crate::model::task_definition::TaskDefinition;

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

/// Every limit of a Fargate task definition. Empty when ECS would accept it.
pub fn task_definition(td: &TaskDefinition) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Err(e) = name("family", &td.family, source::REGISTER_TASK_DEFINITION) {
        out.push(e);
    }
    let (task_cpu, task_memory) = task_size(td, &mut out);
    let names = containers(td, task_cpu, task_memory, &mut out);
    volumes_and_references(td, &names, &mut out);
    out.extend(tags(
        "tags",
        td.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
    ));
    let json = serde_json::to_value(td).expect("a task definition serialises");
    strings("", &json, &mut out);
    document_size("(task definition)", &json.to_string(), &mut out);
    out
}

/// The task's (cpu, memory) when they are a Fargate size, else (0, 0) and a violation.
fn task_size(td: &TaskDefinition, out: &mut Vec<Violation>) -> (u32, u32) {
    let cpu = td.cpu.parse::<u32>().ok();
    let memory = td.memory.parse::<u32>().ok();
    match (cpu, memory) {
        (Some(c), Some(m)) if crate::model::fargate::is_valid(c, m) => (c, m),
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
    }
}

/// The containers: how many, each one's limits, unique names, and the memory they
/// reserve together within the task's. Returns their names.
fn containers<'a>(
    td: &'a TaskDefinition,
    task_cpu: u32,
    task_memory: u32,
    out: &mut Vec<Violation>,
) -> BTreeSet<&'a str> {
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
        container(c, task_memory, task_cpu, out);
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
    names
}

/// Volume names, and what containers refer to: the volumes they mount and the
/// containers (of `names`) they depend on.
fn volumes_and_references(td: &TaskDefinition, names: &BTreeSet<&str>, out: &mut Vec<Violation>) {
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
