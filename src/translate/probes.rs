//! Probes: the liveness probe → the container health check; the readiness
//! probe → the daemon's HTTPS probe of every task.

use super::context::Ctx;
use super::manifest::{HttpGet, Probe};
use super::ports::resolve_port;
use super::report::Action;
use super::{ACTIVEGATE_PORT, Readiness, TranslateError};
use crate::model::limits::{self, Violation};
use crate::model::secret;
use crate::model::task_definition::{ContainerDefinition, HealthCheck};

/// What the Dynatrace Operator waits before the first probe of a new ActiveGate.
const TYPICAL_START_SECONDS: u32 = 90;

fn probe_port(cx: &Ctx<'_>, probe: &Probe) -> u16 {
    probe
        .http_get
        .as_ref()
        .and_then(|h| h.port.as_ref())
        .and_then(|p| resolve_port(cx.ag, p))
        .unwrap_or(ACTIVEGATE_PORT)
}

/// Clamps a probe setting into ECS's range, noting any change.
fn clamp_note(what: &str, value: u32, lo: u32, hi: u32, notes: &mut Vec<String>) -> u32 {
    let v = value.clamp(lo, hi);
    if v != value {
        notes.push(format!("{what} {value} → {v} (ECS allows {lo}–{hi})"));
    }
    v
}

/// Characters a probe path may hold: it becomes part of a shell command (the
/// container health check), so nothing the shell would read differently.
fn probe_path_limit(field: &str, path: &str) -> Result<(), Violation> {
    let ok = path.starts_with('/')
        && path.len() <= 1024
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._~%=:@+,-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Violation {
            field: field.to_owned(),
            found: secret::shown(path),
            allowed: "a path of at most 1024 letters, digits and `/._~%=:@+,-`, starting with `/` (it becomes part of the health check's shell command)".into(),
            source: limits::source::HEALTH_CHECK,
        })
    }
}

fn scheme_limit(f: &str, v: &str) -> Result<(), Violation> {
    if v.eq_ignore_ascii_case("http") || v.eq_ignore_ascii_case("https") {
        Ok(())
    } else {
        Err(Violation {
            field: f.to_owned(),
            found: secret::shown(v),
            allowed: "HTTP or HTTPS".into(),
            source: limits::source::HEALTH_CHECK,
        })
    }
}

/// The probe's path and scheme (`http` or `https`), checked.
fn probe_target(
    cx: &mut Ctx<'_>,
    h: &HttpGet,
    src: &str,
    target: &str,
    default_path: &str,
) -> Result<(String, String), TranslateError> {
    let path = match &h.path {
        Some(p) => {
            cx.gate(
                &cx.at(p),
                &format!("{src}.httpGet.path"),
                target,
                &p.value,
                probe_path_limit,
            )?;
            p.value.clone()
        }
        None => default_path.to_owned(),
    };
    let scheme = match &h.scheme {
        Some(sc) => {
            cx.gate(
                &cx.at(sc),
                &format!("{src}.httpGet.scheme"),
                target,
                &sc.value,
                scheme_limit,
            )?;
            sc.value.to_ascii_uppercase()
        }
        None => "HTTP".to_owned(),
    };
    Ok((path, scheme))
}

/// livenessProbe → healthCheck (unless the config leaves health to the daemon).
pub(super) fn map_probes(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
) -> Result<(), TranslateError> {
    let ag = cx.ag;
    if ag.startup_probe.is_some() {
        cx.note(
            Action::Dropped,
            &cx.src("startupProbe"),
            None,
            "ECS has no startup probe; the health check's startPeriod plays its part",
        );
    }
    let Some(probe) = &ag.liveness_probe else {
        cx.note(Action::Warning, &cx.src("livenessProbe"), None, "no liveness probe: ECS will not replace a hung ActiveGate (the daemon's probes still see it)");
        return Ok(());
    };
    let src = cx.src("livenessProbe");
    let target = cx.dst("healthCheck");
    if cx.s.container_health_check == Some(false) {
        cx.note(Action::Dropped, &src, None, "container_health_check = false in the config: the daemon's HTTPS probes watch the tasks instead");
        return Ok(());
    }
    let Some(command) = health_command(cx, probe, &src, &target)? else {
        return Ok(());
    };
    c.health_check = Some(health_check(cx, probe, command, &src, &target));
    Ok(())
}

/// The health check's command: curl for an httpGet probe, the command of an
/// exec probe; `None` (reported) for probes ECS cannot run.
fn health_command(
    cx: &mut Ctx<'_>,
    probe: &Probe,
    src: &str,
    target: &str,
) -> Result<Option<Vec<String>>, TranslateError> {
    if let Some(h) = &probe.http_get {
        let port = probe_port(cx, probe);
        let (path, scheme) = probe_target(cx, h, src, &format!("{target}.command"), "/")?;
        let scheme = scheme.to_ascii_lowercase();
        let timeout = probe.timeout_seconds.unwrap_or(1).max(1);
        let mut cmd = format!(
            "curl -fs{} --max-time {timeout} {scheme}://127.0.0.1:{port}{path}",
            if scheme == "https" { "k" } else { "" }
        );
        if path == "/rest/state" {
            cmd.push_str(" | grep -q RUNNING");
        }
        cmd.push_str(" || exit 1");
        Ok(Some(vec!["CMD-SHELL".to_owned(), cmd]))
    } else if let Some(exec) = &probe.exec {
        let at = cx.at(exec);
        let args: Vec<String> = exec
            .value
            .get("command")
            .and_then(|c| c.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if args.is_empty() {
            cx.note(Action::Dropped, src, None, "exec probe without a command");
            return Ok(None);
        }
        for (i, a) in args.iter().enumerate() {
            cx.gate(
                &at,
                &format!("{src}.exec.command[{i}]"),
                &format!("{target}.command[{}]", i + 1),
                a,
                |f, v| limits::text(f, v, limits::VALUE_MAX_BYTES, true, limits::source::BUDGET),
            )?;
        }
        Ok(Some(
            std::iter::once("CMD".to_owned()).chain(args).collect(),
        ))
    } else {
        cx.note(
            Action::Dropped,
            src,
            None,
            "ECS health checks run a command; tcpSocket and grpc probes have no equivalent",
        );
        Ok(None)
    }
}

/// The health check with the probe's timings clamped into ECS's ranges, reported.
fn health_check(
    cx: &mut Ctx<'_>,
    probe: &Probe,
    command: Vec<String>,
    src: &str,
    target: &str,
) -> HealthCheck {
    let mut notes = Vec::new();
    let interval = clamp_note(
        "periodSeconds",
        probe.period_seconds.unwrap_or(10),
        5,
        300,
        &mut notes,
    );
    let timeout = clamp_note(
        "timeoutSeconds",
        probe.timeout_seconds.unwrap_or(1),
        2,
        60,
        &mut notes,
    );
    let retries = clamp_note(
        "failureThreshold",
        probe.failure_threshold.unwrap_or(3),
        1,
        10,
        &mut notes,
    );
    let start_period = clamp_note(
        "initialDelaySeconds",
        probe.initial_delay_seconds.unwrap_or(0),
        0,
        300,
        &mut notes,
    );
    let uses_curl = command[0] == "CMD-SHELL";
    let mut detail = format!(
        "`{}` every {interval} s, timeout {timeout} s, {retries} retries, startPeriod {start_period} s",
        command[1..].join(" ")
    );
    if uses_curl {
        detail.push_str("; ECS runs it inside the container, so the image must have curl (set container_health_check = false otherwise)");
    }
    if !notes.is_empty() {
        detail.push_str(&format!("; {}", notes.join(", ")));
    }
    cx.note(Action::Adjusted, src, Some(target), detail);
    if start_period < TYPICAL_START_SECONDS {
        cx.note(Action::Warning, &format!("{src}.initialDelaySeconds"), Some(&format!("{target}.startPeriod")), format!(
            "{start_period} s: ActiveGate usually needs about {TYPICAL_START_SECONDS} s to start (the Dynatrace Operator waits {TYPICAL_START_SECONDS} s); a slow start may be killed"));
    }
    HealthCheck {
        command,
        interval,
        timeout,
        retries,
        start_period,
    }
}

/// readinessProbe → what the daemon probes on every task; Dynatrace's
/// readiness probe when the manifest has none it can use.
pub(super) fn readiness(cx: &mut Ctx<'_>) -> Result<Readiness, TranslateError> {
    let ag = cx.ag;
    let src = cx.src("readinessProbe");
    let default = Readiness {
        port: ACTIVEGATE_PORT,
        path: "/rest/health".into(),
        period_seconds: 15,
        failure_threshold: 3,
        timeout_seconds: 2,
        initial_delay_seconds: TYPICAL_START_SECONDS,
    };
    let Some(probe) = &ag.readiness_probe else {
        cx.note(
            Action::Added,
            &src,
            Some("daemon HTTPS probe"),
            format!(
                "GET https://<task IP>:{}{} every {} s (the Dynatrace Operator's readiness probe)",
                default.port, default.path, default.period_seconds
            ),
        );
        return Ok(default);
    };
    let Some(h) = &probe.http_get else {
        cx.note(
            Action::Adjusted,
            &src,
            Some("daemon HTTPS probe"),
            format!(
                "not an httpGet probe; the daemon probes GET https://<task IP>:{}{} instead",
                default.port, default.path
            ),
        );
        return Ok(default);
    };
    let (path, scheme) = probe_target(cx, h, &src, "daemon HTTPS probe.path", &default.path)?;
    let r = Readiness {
        port: probe_port(cx, probe),
        path,
        period_seconds: probe.period_seconds.unwrap_or(10).max(1),
        failure_threshold: probe.failure_threshold.unwrap_or(3).max(1),
        timeout_seconds: probe.timeout_seconds.unwrap_or(1).max(1),
        initial_delay_seconds: probe.initial_delay_seconds.unwrap_or(0),
    };
    cx.note(Action::Mapped, &src, Some("daemon HTTPS probe"), format!(
        "kept for the daemon: GET https://<task IP>:{}{} every {} s, {} failures, timeout {} s{}",
        r.port, r.path, r.period_seconds, r.failure_threshold, r.timeout_seconds,
        if scheme.eq_ignore_ascii_case("https") { String::new() } else { format!(" (scheme {scheme} → HTTPS: ActiveGate serves HTTPS on {})", r.port) }));
    Ok(r)
}
