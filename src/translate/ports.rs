//! Container ports → portMappings; the ActiveGate port is always there.

use std::collections::BTreeMap;

use super::context::Ctx;
use super::manifest::{Container, ContainerPort, IntOrString};
use super::report::Action;
use super::{ACTIVEGATE_PORT, TranslateError};
use crate::model::limits::{self, Violation};
use crate::model::task_definition::{ContainerDefinition, PortMapping};

pub(super) fn map_ports(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
) -> Result<(), TranslateError> {
    // Each container port and the manifest field that mapped it first.
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    let ag = cx.ag;
    for (i, p) in ag.ports.iter().enumerate() {
        map_port(cx, c, i, p, &mut seen)?;
    }
    if !c
        .port_mappings
        .iter()
        .any(|p| p.container_port == ACTIVEGATE_PORT)
    {
        c.port_mappings.push(PortMapping {
            name: Some("ag-https".into()),
            container_port: ACTIVEGATE_PORT,
            protocol: "tcp".into(),
        });
        cx.note(
            Action::Added,
            &cx.src("ports"),
            Some(&cx.dst("portMappings")),
            format!("{ACTIVEGATE_PORT} (ag-https): the port OneAgents and the health probe use"),
        );
    }
    Ok(())
}

/// One container port (the `i`th): checked, then mapped unless its protocol
/// is one ECS does not have.
fn map_port(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
    i: usize,
    p: &ContainerPort,
    seen: &mut BTreeMap<u16, String>,
) -> Result<(), TranslateError> {
    let protocol = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
    let src = cx.src(&format!(
        "ports[{}]",
        p.name.clone().unwrap_or_else(|| i.to_string())
    ));
    let at = cx.at(&p.container_port);
    let port = p.container_port.value;
    let target = cx.dst(&format!("portMappings[{port}]"));
    cx.gate(
        &at,
        &format!("{src}.containerPort"),
        &format!("{target}.containerPort"),
        "",
        |f, _| limits::port(f, u32::from(port)),
    )?;
    if let Some(name) = &p.name {
        cx.gate(
            &at,
            &format!("{src}.name"),
            &format!("{target}.name"),
            name,
            limits::port_name,
        )?;
    }
    if let Some(first) = seen.insert(port, src.clone()) {
        return Err(TranslateError::Limit {
            at,
            source_field: format!("{src}.containerPort"),
            violation: Box::new(Violation {
                field: format!("{target}.containerPort"),
                found: format!("port {port}, which {first} maps already"),
                allowed:
                    "each container port once (ECS cannot expose one port for several protocols)"
                        .into(),
                source: limits::source::PORT_MAPPING,
            }),
        });
    }
    if protocol != "tcp" && protocol != "udp" {
        cx.note(
            Action::Dropped,
            &src,
            None,
            format!("protocol {protocol} is not supported by ECS"),
        );
        return Ok(());
    }
    c.port_mappings.push(PortMapping {
        name: p.name.clone(),
        container_port: port,
        protocol,
    });
    cx.note(
        Action::Mapped,
        &src,
        Some(&cx.dst("portMappings")),
        format!(
            "{}{}",
            port,
            p.name
                .as_ref()
                .map(|n| format!(" (name `{n}` kept)"))
                .unwrap_or_default()
        ),
    );
    if port != ACTIVEGATE_PORT {
        cx.note(
            Action::Warning,
            &src,
            None,
            format!("ActiveGate listens on {ACTIVEGATE_PORT} (HTTPS); port {port} is unusual"),
        );
    }
    Ok(())
}

/// Resolves a named or numbered port against the container's ports.
pub(super) fn resolve_port(ag: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => Some(*n),
        IntOrString::Name(name) => ag
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port.value),
    }
}
