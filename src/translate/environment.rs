//! env → environment: `$(VAR)` references expanded within ECS's budgets, the
//! config's `DT_*` values winning, Kubernetes-only capabilities removed.

use std::collections::BTreeMap;

use super::context::Ctx;
use super::manifest::{EnvVar, EnvVarSource, Where};
use super::report::Action;
use super::{EntryPoint, TranslateError};
use crate::model::limits;
use crate::model::secret;
use crate::model::task_definition::{ContainerDefinition, KeyValuePair};

/// Capabilities that only make sense with the Kubernetes API.
const KUBERNETES_ONLY_CAPABILITIES: [&str; 2] = ["kubernetes_monitoring", "kubernetes-monitoring"];

/// Why `$(VAR)` expansion gave no value.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unexpanded {
    /// These names could not be resolved.
    Missing(Vec<String>),
    /// The value would grow beyond its budget (`$(A)$(A)` doubling, variable after
    /// variable, grows exponentially): refused before anything that large exists.
    OverBudget,
}

/// Expands Kubernetes `$(VAR)` references within `budget` bytes of output.
pub(super) fn expand(
    value: &str,
    known: &BTreeMap<String, String>,
    entry: Option<&EntryPoint>,
    budget: usize,
) -> Result<String, Unexpanded> {
    let mut out = String::new();
    let mut missing = Vec::new();
    let mut rest = value;
    let push = |out: &mut String, piece: &str| {
        if out.len() + piece.len() > budget {
            return Err(Unexpanded::OverBudget);
        }
        out.push_str(piece);
        Ok(())
    };
    while let Some(pos) = rest.find('$') {
        push(&mut out, &rest[..pos])?;
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$$") {
            push(&mut out, "$")?;
            rest = tail;
        } else if let Some(inner) = after.strip_prefix("$(") {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match resolve(name, known, entry) {
                        Some(v) => push(&mut out, &v)?,
                        None => missing.push(name.to_owned()),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    push(&mut out, after)?;
                    rest = "";
                }
            }
        } else {
            push(&mut out, "$")?;
            rest = &after[1..];
        }
    }
    push(&mut out, rest)?;
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(Unexpanded::Missing(missing))
    }
}

/// A `$(NAME)`: a variable defined before it, else a Service's host or port
/// (Kubernetes' `X_SERVICE_HOST`, `X_SERVICE_PORT`), which the entry point stands for.
fn resolve<'v>(
    name: &str,
    known: &'v BTreeMap<String, String>,
    entry: Option<&'v EntryPoint>,
) -> Option<std::borrow::Cow<'v, str>> {
    match known.get(name) {
        Some(v) => Some(v.as_str().into()),
        None => entry.and_then(|e| {
            if name.ends_with("_SERVICE_HOST") {
                Some(e.host.as_str().into())
            } else if name.ends_with("_SERVICE_PORT") || name.ends_with("_SERVICE_PORT_HTTPS") {
                Some(e.port.to_string().into())
            } else {
                None
            }
        }),
    }
}

/// The environment being built.
#[derive(Default)]
struct Env {
    vars: BTreeMap<String, String>,
    /// Bytes of names and values so far: the budget of the whole environment.
    used: usize,
}

pub(super) fn map_environment(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
) -> Result<(), TranslateError> {
    let ag = cx.ag;
    let target = cx.dst("environment");
    let mut env = Env::default();
    for e in &ag.env {
        manifest_var(cx, e, &target, &mut env)?;
    }
    config_vars(cx, &target, &mut env)?;
    for required in ["DT_TENANT", "DT_SERVER"] {
        if !env.vars.contains_key(required) {
            cx.note(
                Action::NeedsSetting,
                &format!("(config) environment.{required}"),
                Some(&target),
                "ActiveGate needs it to find its environment; set it under [target.environment]",
            );
        }
    }
    c.environment = env
        .vars
        .into_iter()
        .map(|(name, value)| KeyValuePair { name, value })
        .collect();
    Ok(())
}

/// One env entry of the manifest: copied, expanded, replaced or reported.
fn manifest_var(
    cx: &mut Ctx<'_>,
    e: &EnvVar,
    target: &str,
    env: &mut Env,
) -> Result<(), TranslateError> {
    let s = cx.s;
    let name = e.name.value.clone();
    let src = cx.src(&format!("env[{name}]"));
    let name_at = cx.at(&e.name);
    cx.gate(
        &name_at,
        &src,
        &format!("{target}[{name}].name"),
        &name,
        limits::env_name,
    )?;
    if let Some(from) = &e.value_from {
        note_reference(cx, &src, from);
        return Ok(());
    }
    let raw = e
        .value
        .as_ref()
        .map(|v| v.value.clone())
        .unwrap_or_default();
    let at = e
        .value
        .as_ref()
        .map_or_else(|| name_at.clone(), |v| cx.at(v));
    if name.starts_with("DT_ID_SEED_") {
        cx.note(
            Action::Dropped,
            &src,
            None,
            "seeds the ActiveGate ID from the Kubernetes cluster and namespace; meaningless on ECS",
        );
        return Ok(());
    }
    if s.environment.contains_key(&name) {
        // Reported with the config's value, in `config_vars`.
        return Ok(());
    }
    let value_target = format!("{target}[{name}].value");
    if let Some(ep) = s
        .entry_point
        .as_ref()
        .filter(|_| name == "DT_DNS_ENTRY_POINT")
    {
        cx.gate(
            &s.at("entry_point"),
            "(config) entry_point",
            &value_target,
            &ep.url,
            limits::env_value,
        )?;
        cx.note(
            Action::Adjusted,
            &src,
            Some(target),
            format!("`{}` from the config's entry_point", ep.url),
        );
        env.used += name.len() + ep.url.len();
        env.vars.insert(name, ep.url.clone());
        return Ok(());
    }
    let Some(value) = expand_value(cx, &name, &raw, at.clone(), &src, target, env)? else {
        return Ok(());
    };
    cx.gate(&at, &src, &value_target, &value, limits::env_value)?;
    env.used += name.len() + value.len();
    if name == "DT_CAPABILITIES" {
        let kept = map_capabilities(cx, &src, target, &value);
        env.vars.insert(name, kept);
        return Ok(());
    }
    if value != raw {
        cx.note(
            Action::Adjusted,
            &src,
            Some(target),
            format!("`$(...)` references resolved to {}", secret::shown(&value)),
        );
    } else {
        cx.note(Action::Mapped, &src, Some(target), "");
    }
    env.vars.insert(name, value);
    Ok(())
}

/// valueFrom: ECS cannot read a Kubernetes secret, ConfigMap or the downward API.
fn note_reference(cx: &mut Ctx<'_>, src: &str, from: &EnvVarSource) {
    if let Some(r) = &from.secret_key_ref {
        cx.note(Action::NeedsSetting, src, None, format!(
            "from Kubernetes secret `{}` key `{}`: ECS reads secrets from Secrets Manager or SSM; tokens go under [target.secrets], other secrets must be added by hand", r.name, r.key));
    } else if let Some(r) = &from.config_map_key_ref {
        cx.note(Action::NeedsSetting, src, None, format!(
            "from ConfigMap `{}` key `{}`: set the value under [target.environment] in the config", r.name, r.key));
    } else {
        cx.note(
            Action::Dropped,
            src,
            None,
            "the Kubernetes downward API has no ECS equivalent",
        );
    }
}

/// The value with its `$(VAR)` references expanded; `None` (reported) when one
/// cannot be resolved. A value beyond the budget is refused.
fn expand_value(
    cx: &mut Ctx<'_>,
    name: &str,
    raw: &str,
    at: Where,
    src: &str,
    target: &str,
    env: &Env,
) -> Result<Option<String>, TranslateError> {
    let budget =
        limits::VALUE_MAX_BYTES.min(limits::ENVIRONMENT_MAX_BYTES.saturating_sub(env.used));
    match expand(raw, &env.vars, cx.s.entry_point.as_ref(), budget) {
        Ok(v) => Ok(Some(v)),
        Err(Unexpanded::OverBudget) => Err(TranslateError::ExpansionBudget {
            at,
            what: format!("env `{name}` of container `{}`", cx.ag_name()),
            limit: limits::ENVIRONMENT_MAX_BYTES,
            value_limit: limits::VALUE_MAX_BYTES,
        }),
        Err(Unexpanded::Missing(missing)) => {
            let hint = if name == "DT_DNS_ENTRY_POINT"
                || missing.iter().any(|m| m.contains("_SERVICE_"))
            {
                "set `entry_point` in the config to the address OneAgents use"
            } else {
                "set the value under [target.environment] in the config"
            };
            cx.note(
                Action::NeedsSetting,
                src,
                Some(target),
                format!(
                    "refers to $({}), which ECS cannot resolve; not copied: {hint}",
                    missing.join("), $(")
                ),
            );
            Ok(None)
        }
    }
}

/// DT_CAPABILITIES without the capabilities that need the Kubernetes API.
fn map_capabilities(cx: &mut Ctx<'_>, src: &str, target: &str, value: &str) -> String {
    let (kept, removed): (Vec<&str>, Vec<&str>) = value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .partition(|c| !KUBERNETES_ONLY_CAPABILITIES.contains(c));
    let kept = kept.join(",");
    if removed.is_empty() {
        cx.note(Action::Mapped, src, Some(target), format!("`{kept}`"));
    } else {
        cx.note(
            Action::Adjusted,
            src,
            Some(target),
            format!(
                "`{value}` → `{kept}`: {} needs the Kubernetes API",
                removed.join(", ")
            ),
        );
    }
    kept
}

/// The config's `environment` values: they win over the manifest's.
fn config_vars(cx: &mut Ctx<'_>, target: &str, env: &mut Env) -> Result<(), TranslateError> {
    let s = cx.s;
    let ag = cx.ag;
    for (name, value) in &s.environment {
        let from_manifest = ag.env.iter().any(|e| &e.name.value == name);
        let (action, src) = if from_manifest {
            (Action::Adjusted, cx.src(&format!("env[{name}]")))
        } else {
            (Action::Added, format!("(config) environment.{name}"))
        };
        let key = format!("environment.{name}");
        cx.gate(
            &s.at(&key),
            &format!("(config) {key}"),
            &format!("{target}[{name}].value"),
            value,
            limits::env_value,
        )?;
        cx.note(
            action,
            &src,
            Some(target),
            format!("`{value}` from the config"),
        );
        env.vars.insert(name.clone(), value.clone());
    }
    Ok(())
}
