//! The ActiveGate container: which one it is, what is refused before anything
//! is mapped, and its plain fields (name, working directory, command, args,
//! stop timeout). The other concerns have their own modules.

use super::context::Ctx;
use super::manifest::{Container, Manifest, Where};
use super::report::Action;
use super::{TranslateError, secrets};
use crate::model::limits;
use crate::model::secret;
use crate::model::task_definition::ContainerDefinition;

/// The ActiveGate container: the only one, or the one named or imaged like it.
pub(super) fn pick_activegate(m: &Manifest) -> Result<&Container, TranslateError> {
    let cs = &m.workload.pod.containers;
    match cs.len() {
        0 => Err(TranslateError::Unsupported {
            at: m.workload.at.clone(),
            message: secret::scrub(&format!(
                "{} has no containers (spec.template.spec.containers is empty)",
                m.workload.id()
            ))
            .into_owned(),
        }),
        1 => Ok(&cs[0]),
        _ => cs
            .iter()
            .find(|c| c.name.value.contains("activegate"))
            .or_else(|| {
                cs.iter().find(|c| {
                    c.image
                        .as_ref()
                        .is_some_and(|i| i.value.contains("activegate"))
                })
            })
            .ok_or_else(|| TranslateError::Unsupported {
                at: m.workload.at.clone(),
                message: secret::scrub(&format!(
                    "{} has {} containers and none is named or imaged like an ActiveGate: {}",
                    m.workload.id(),
                    cs.len(),
                    cs.iter()
                        .map(|c| secret::shown(&c.name.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into_owned(),
            }),
    }
}

/// Every container but the ActiveGate is reported as dropped.
pub(super) fn drop_sidecars(cx: &mut Ctx<'_>) {
    let ag_name = cx.ag_name();
    for other in
        cx.m.workload
            .pod
            .containers
            .iter()
            .filter(|c| c.name.value != ag_name)
    {
        cx.note(
            Action::Dropped,
            &format!("containers[{}]", other.name.value),
            None,
            "only the ActiveGate container is translated; run sidecars as their own ECS containers",
        );
    }
}

/// Refuses env values and arguments that carry a token, pointing at the place.
pub(super) fn refuse_literal_secrets(m: &Manifest, c: &Container) -> Result<(), TranslateError> {
    let cname = &c.name.value;
    for e in &c.env {
        if let Some(v) = &e.value {
            let name = &e.name.value;
            let found = secret::find(&v.value);
            if !v.value.is_empty() && (secrets::is_secret_name(name) || found.is_some()) {
                return Err(TranslateError::LiteralSecret {
                    at: Where::of(&m.source, v),
                    what: format!(
                        "env `{}` of container `{}`",
                        secret::scrub(name),
                        secret::scrub(cname)
                    ),
                    shape: match found {
                        Some(f) => format!("it looks like {}", secret::describe(&v.value, &f)),
                        None => format!(
                            "a literal value of {} chars under a secret's name",
                            v.value.chars().count()
                        ),
                    },
                });
            }
        }
    }
    for (field, list) in [("args", &c.args), ("command", &c.command)] {
        let mut next_is_secret = false;
        for (i, a) in list.iter().enumerate() {
            let (here, next) = secrets::secret_in_arg(&a.value);
            if here || (next_is_secret && !a.value.starts_with('-')) {
                return Err(TranslateError::LiteralSecret {
                    at: Where::of(&m.source, a),
                    what: format!("{field}[{i}] of container `{}`", secret::scrub(cname)),
                    shape: if here {
                        secret::shape(&a.value)
                    } else {
                        format!(
                            "the value of the flag before it, {} chars",
                            a.value.chars().count()
                        )
                    },
                });
            }
            next_is_secret = next;
        }
    }
    Ok(())
}

/// Init containers are not translated; one holding a literal token is refused
/// all the same (it is in the file the user keeps).
pub(super) fn drop_init_containers(cx: &mut Ctx<'_>) -> Result<(), TranslateError> {
    for init in &cx.m.workload.pod.init_containers {
        refuse_literal_secrets(cx.m, init)?;
        drop_init_container(cx, init);
    }
    Ok(())
}

fn drop_init_container(cx: &mut Ctx<'_>, init: &Container) {
    let name = &init.name.value;
    let builds_truststore = name == "certificate-loader"
        || init
            .command
            .iter()
            .chain(&init.args)
            .any(|a| a.value.contains("k8scrt2jks"));
    let why = if builds_truststore {
        "builds a Java trust store from the Kubernetes service-account CA for kubernetes_monitoring; there is no Kubernetes API on ECS"
    } else {
        "init containers are not translated; add it as a non-essential ECS container with dependsOn SUCCESS if it is needed"
    };
    cx.note(
        Action::Dropped,
        &format!("initContainers[{name}]"),
        None,
        why,
    );
    if !builds_truststore {
        cx.note(
            Action::Warning,
            &format!("initContainers[{name}]"),
            None,
            "check that ActiveGate starts without it",
        );
    }
}

/// The container's name, as ECS allows it.
pub(super) fn gate_name(cx: &mut Ctx<'_>) -> Result<(), TranslateError> {
    cx.gate(
        &cx.at(&cx.ag.name),
        &cx.src("name"),
        &cx.dst("name"),
        cx.ag_name(),
        |f, v| limits::name(f, v, limits::source::CONTAINER_DEFINITION),
    )
}

/// The container definition with its name, image, working directory,
/// entry point and command.
pub(super) fn start(cx: &mut Ctx<'_>, image: &str) -> Result<ContainerDefinition, TranslateError> {
    let ag = cx.ag;
    let mut c = ContainerDefinition::new(ag.name.value.clone(), image.to_owned());
    let (cpath, tpath) = (cx.cpath.clone(), cx.tpath.clone());
    cx.origin(&tpath, &cx.at(&ag.name), &cpath);
    if let Some(dir) = &ag.working_dir {
        cx.gate(
            &cx.at(dir),
            &cx.src("workingDir"),
            &cx.dst("workingDirectory"),
            &dir.value,
            limits::path,
        )?;
        c.working_directory = Some(dir.value.clone());
        cx.note(
            Action::Mapped,
            &cx.src("workingDir"),
            Some(&cx.dst("workingDirectory")),
            "",
        );
    }
    for (field, list, target) in [
        ("command", &ag.command, "entryPoint"),
        ("args", &ag.args, "command"),
    ] {
        for (i, a) in list.iter().enumerate() {
            cx.gate(
                &cx.at(a),
                &cx.src(&format!("{field}[{i}]")),
                &cx.dst(&format!("{target}[{i}]")),
                &a.value,
                |f, v| limits::text(f, v, limits::VALUE_MAX_BYTES, true, limits::source::BUDGET),
            )?;
        }
    }
    if !ag.command.is_empty() {
        c.entry_point = ag.command.iter().map(|a| a.value.clone()).collect();
        cx.note(
            Action::Mapped,
            &cx.src("command"),
            Some(&cx.dst("entryPoint")),
            "Kubernetes `command` replaces the image's ENTRYPOINT, as ECS `entryPoint` does",
        );
    }
    if !ag.args.is_empty() {
        c.command = ag.args.iter().map(|a| a.value.clone()).collect();
        cx.note(
            Action::Mapped,
            &cx.src("args"),
            Some(&cx.dst("command")),
            "Kubernetes `args` replaces the image's CMD, as ECS `command` does",
        );
    }
    Ok(c)
}

/// terminationGracePeriodSeconds → stopTimeout, within Fargate's 2–120 s.
pub(super) fn map_stop_timeout(cx: &mut Ctx<'_>, c: &mut ContainerDefinition) {
    let Some(grace) = cx.m.workload.pod.termination_grace_period_seconds else {
        return;
    };
    let secs = u32::try_from(grace.clamp(2, 120)).expect("clamped to 2..=120");
    let action = if i64::from(secs) == grace {
        Action::Mapped
    } else {
        Action::Adjusted
    };
    cx.note(
        action,
        "terminationGracePeriodSeconds",
        Some(&cx.dst("stopTimeout")),
        if action == Action::Mapped {
            format!("{secs} s")
        } else {
            format!("{grace} s → {secs} s (Fargate allows 2–120 s)")
        },
    );
    c.stop_timeout = Some(secs);
}
