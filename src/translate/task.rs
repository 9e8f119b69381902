//! The task-level fields: family, execution role, desired count, tags; and the
//! whole document against ECS's limits.

use super::context::Ctx;
use super::image::is_placeholder;
use super::report::Action;
use super::{Settings, TranslateError};
use crate::model::MANAGED_BY;
use crate::model::limits;
use crate::model::marks;
use crate::model::task_definition::{Tag, TaskDefinition};

fn sanitize_family(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(255)
        .collect();
    if s.is_empty() {
        "dynatrace-activegate".into()
    } else {
        s
    }
}

/// The config's family, else the workload's name made valid for ECS.
pub(super) fn family(cx: &mut Ctx<'_>) -> Result<String, TranslateError> {
    let (m, s) = (cx.m, cx.s);
    match &s.family {
        Some(f) => {
            cx.origin("family", &s.at("family"), "(config) family");
            Ok(f.to_string())
        }
        None => {
            // The name as written, before `.` becomes `-`: a token must not slip through.
            cx.gate(
                &m.workload.at,
                "metadata.name",
                "family",
                &m.workload.name,
                |_, _| Ok(()),
            )?;
            let f = sanitize_family(&m.workload.name);
            cx.gate(&m.workload.at, "metadata.name", "family", &f, |_, _| Ok(()))?;
            cx.note(
                Action::Mapped,
                "metadata.name",
                Some("family"),
                format!("`{f}`"),
            );
            Ok(f)
        }
    }
}

/// Secrets, a private registry and logs all need an execution role.
pub(super) fn check_execution_role(cx: &mut Ctx<'_>) {
    let s = cx.s;
    match &s.execution_role_arn {
        Some(_) => {}
        None if s.tenant_token.is_some()
            || s.logs.is_some()
            || s.registry_credentials.is_some() =>
        {
            cx.note(Action::NeedsSetting, "(config) execution_role_arn", Some("executionRoleArn"),
                "ECS needs an execution role to read secrets, pull from a private registry and write logs");
        }
        None => {}
    }
}

/// Desired count: config, else the manifest's replicas, else 2.
pub(super) fn desired_count(cx: &mut Ctx<'_>) -> u32 {
    let (m, s) = (cx.m, cx.s);
    let desired_count = s.desired_count.or(m.workload.replicas).unwrap_or(2);
    match (s.desired_count, m.workload.replicas) {
        (Some(n), _) => cx.note(
            Action::Adjusted,
            "spec.replicas",
            Some("desiredCount"),
            format!("{n} from the config"),
        ),
        (None, Some(n)) => cx.note(
            Action::Mapped,
            "spec.replicas",
            Some("desiredCount"),
            format!("{n}"),
        ),
        (None, None) => cx.note(
            Action::Added,
            "spec.replicas",
            Some("desiredCount"),
            "2: one ActiveGate may fail without losing routing",
        ),
    }
    if desired_count < 2 {
        cx.note(Action::Warning, "spec.replicas", Some("desiredCount"),
            format!("{desired_count} task: a single ActiveGate is a single point of failure for every OneAgent that routes through it"));
    }
    desired_count
}

/// The tags of what is created: ours, and the config's target.
pub(super) fn tags(s: &Settings) -> Vec<Tag> {
    let mut tags = vec![Tag::new(marks::MANAGED_BY, MANAGED_BY)];
    if let Some(t) = &s.target {
        tags.push(Tag::new(marks::TARGET, t.clone()));
    }
    tags
}

/// The whole document against ECS's limits, before anything prints or
/// registers it; a draft's placeholder image is let through (the report asks for it).
pub(super) fn check_limits(
    cx: &Ctx<'_>,
    task_definition: &TaskDefinition,
    image: &str,
) -> Result<(), TranslateError> {
    let draft_image = is_placeholder(image) && cx.s.target.is_none();
    match limits::task_definition(task_definition)
        .into_iter()
        .find(|v| !(draft_image && v.field.ends_with(".image")))
    {
        Some(v) => Err(cx.refusal(v)),
        None => Ok(()),
    }
}
