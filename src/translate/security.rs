//! securityContext → user, read-only root, Linux capabilities; what Fargate
//! cannot express is reported as dropped.

use super::TranslateError;
use super::context::Ctx;
use super::manifest::{Capabilities, PodSecurityContext, SecurityContext};
use super::report::Action;
use crate::model::limits::{self, Violation};
use crate::model::secret;
use crate::model::task_definition::{ContainerDefinition, KernelCapabilities, LinuxParameters};

pub(super) fn map_security(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
) -> Result<(), TranslateError> {
    let pod = cx.m.workload.pod.security_context.as_ref();
    let sc = cx.ag.security_context.as_ref();
    let p = cx.src("securityContext");

    if let Some(ro) = sc.and_then(|s| s.read_only_root_filesystem) {
        c.readonly_root_filesystem = Some(ro);
        cx.note(
            Action::Mapped,
            &format!("{p}.readOnlyRootFilesystem"),
            Some(&cx.dst("readonlyRootFilesystem")),
            format!("{ro}"),
        );
    }
    map_user(cx, c, sc, pod, &p);
    if let Some(caps) = sc.and_then(|s| s.capabilities.as_ref()) {
        map_capabilities(cx, c, caps, &p)?;
    }
    drop_the_rest(cx, sc, pod, &p);
    Ok(())
}

/// runAsUser/runAsGroup (the container's, else the pod's) → user; runAsNonRoot
/// alone → the ActiveGate image's non-root user.
fn map_user(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
    sc: Option<&SecurityContext>,
    pod: Option<&PodSecurityContext>,
    p: &str,
) {
    let uid = sc
        .and_then(|s| s.run_as_user)
        .or(pod.and_then(|s| s.run_as_user));
    let gid = sc
        .and_then(|s| s.run_as_group)
        .or(pod.and_then(|s| s.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod.and_then(|s| s.run_as_non_root));
    match (uid, gid) {
        (Some(u), g) => {
            let user = match g {
                Some(g) => format!("{u}:{g}"),
                None => u.to_string(),
            };
            cx.note(
                Action::Mapped,
                &format!("{p}.runAsUser"),
                Some(&cx.dst("user")),
                format!("`{user}`"),
            );
            c.user = Some(user);
        }
        (None, _) if non_root == Some(true) => {
            c.user = Some("1001".into());
            cx.note(Action::Adjusted, &format!("{p}.runAsNonRoot"), Some(&cx.dst("user")),
                "`1001`: ECS has no runAsNonRoot check, so the ActiveGate image's non-root user is set explicitly");
        }
        _ => {}
    }
}

/// A Linux capability name, as it will be written into the task definition.
fn capability_limit(f: &str, v: &str) -> Result<(), Violation> {
    let ok =
        !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Violation {
            field: f.to_owned(),
            found: secret::shown(v),
            allowed: "a Linux capability name such as `ALL` or `NET_BIND_SERVICE`".into(),
            source: limits::source::CONTAINER_DEFINITION,
        })
    }
}

/// capabilities → linuxParameters.capabilities, upper case; of the added ones
/// Fargate allows only SYS_PTRACE.
fn map_capabilities(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
    caps: &Capabilities,
    p: &str,
) -> Result<(), TranslateError> {
    let at = cx.at(&cx.ag.name);
    for (i, cap) in caps.drop.iter().chain(&caps.add).enumerate() {
        cx.gate(
            &at,
            &format!("{p}.capabilities[{i}]"),
            &cx.dst("linuxParameters.capabilities"),
            cap,
            capability_limit,
        )?;
    }
    let drop: Vec<String> = caps.drop.iter().map(|d| d.to_ascii_uppercase()).collect();
    let (add, refused): (Vec<String>, Vec<String>) = caps
        .add
        .iter()
        .map(|a| a.to_ascii_uppercase())
        .partition(|a| a == "SYS_PTRACE");
    if !drop.is_empty() {
        let changed = drop.iter().zip(&caps.drop).any(|(a, b)| a != b);
        cx.note(
            if changed {
                Action::Adjusted
            } else {
                Action::Mapped
            },
            &format!("{p}.capabilities.drop"),
            Some(&cx.dst("linuxParameters.capabilities.drop")),
            format!(
                "{:?}{}",
                drop,
                if changed {
                    " (ECS wants upper case)"
                } else {
                    ""
                }
            ),
        );
    }
    if !refused.is_empty() {
        cx.note(
            Action::Dropped,
            &format!("{p}.capabilities.add"),
            None,
            format!("{refused:?}: Fargate allows adding only SYS_PTRACE"),
        );
    }
    if !add.is_empty() {
        cx.note(
            Action::Mapped,
            &format!("{p}.capabilities.add"),
            Some(&cx.dst("linuxParameters.capabilities.add")),
            format!("{add:?}"),
        );
    }
    if !drop.is_empty() || !add.is_empty() {
        c.linux_parameters = Some(LinuxParameters {
            capabilities: Some(KernelCapabilities { add, drop }),
            init_process_enabled: None,
        });
    }
    Ok(())
}

/// privileged, allowPrivilegeEscalation, seccompProfile, fsGroup: reported.
fn drop_the_rest(
    cx: &mut Ctx<'_>,
    sc: Option<&SecurityContext>,
    pod: Option<&PodSecurityContext>,
    p: &str,
) {
    match sc.and_then(|s| s.privileged) {
        Some(true) => cx.note(
            Action::Dropped,
            &format!("{p}.privileged"),
            None,
            "Fargate never runs privileged containers",
        ),
        Some(false) => cx.note(
            Action::Mapped,
            &format!("{p}.privileged"),
            Some(&cx.dst("privileged")),
            "false: left unset, Fargate never runs privileged containers",
        ),
        None => {}
    }
    if sc.and_then(|s| s.allow_privilege_escalation).is_some() {
        cx.note(Action::Dropped, &format!("{p}.allowPrivilegeEscalation"), None,
            "ECS task definitions cannot express it; with all capabilities dropped and a non-root user there is little to escalate to");
    }
    if sc.and_then(|s| s.seccomp_profile.as_ref()).is_some()
        || pod.and_then(|s| s.seccomp_profile.as_ref()).is_some()
    {
        cx.note(
            Action::Dropped,
            &format!("{p}.seccompProfile"),
            None,
            "Fargate applies its own default seccomp profile; ECS cannot choose one",
        );
    }
    if pod.and_then(|s| s.fs_group).is_some() {
        cx.note(
            Action::Dropped,
            "securityContext.fsGroup",
            None,
            "ECS cannot set volume group ownership",
        );
    }
}
