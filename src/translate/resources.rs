//! requests/limits → container reservations and the Fargate task size.

use serde_saphyr::Spanned;

use super::TranslateError;
use super::context::Ctx;
use super::manifest::Where;
use super::quantity::Quantity;
use super::report::Action;
use crate::model::fargate::{self, FargateSize};
use crate::model::limits::{self, Violation};
use crate::model::secret;
use crate::model::task_definition::ContainerDefinition;

/// Memory Dynatrace recommends for the smallest routing ActiveGate.
const RECOMMENDED_MEMORY_MIB: u32 = 2048;

/// The container's requests and limits, with the places of those a refusal
/// may point at.
struct Asked<'q> {
    cpu_req: Option<&'q Quantity>,
    cpu_req_at: Option<Where>,
    cpu_lim: Option<&'q Quantity>,
    mem_req: Option<&'q Quantity>,
    mem_req_at: Option<Where>,
    mem_lim: Option<&'q Quantity>,
    mem_lim_at: Option<Where>,
}

/// What the task must have: CPU units and MiB.
#[derive(Clone, Copy)]
struct Need {
    cpu: u128,
    memory_mib: u128,
}

/// Maps requests/limits to container reservations and the task size; returns
/// the task's (CPU units, MiB).
pub(super) fn map_resources(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
) -> Result<(u32, u32), TranslateError> {
    let asked = asked(cx);
    let need = need(cx, &asked);
    let size = match (u32::try_from(need.cpu), u32::try_from(need.memory_mib)) {
        (Ok(cpu), Ok(mem)) => {
            fargate::smallest_fitting(cpu, mem).ok_or_else(|| too_big(cx, need))?
        }
        _ => return Err(too_big(cx, need)),
    };
    map_cpu(cx, c, &asked, need)?;
    let mib_of = |q: Option<&Quantity>| -> Result<Option<u32>, TranslateError> {
        q.map(|q| u32::try_from(q.mebibytes()).map_err(|_| too_big(cx, need)))
            .transpose()
    };
    let (reservation, hard) = (mib_of(asked.mem_req)?, mib_of(asked.mem_lim)?);
    check_memory(cx, &asked, reservation, hard, size.memory_mib)?;
    map_memory(cx, c, &asked, reservation, hard);
    if let Some(q) = asked.cpu_lim {
        cx.note(
            Action::Mapped,
            &cx.src("resources.limits.cpu"),
            Some("cpu"),
            format!("{q}: Fargate limits CPU for the whole task, not per container"),
        );
    }
    note_size(cx, need, size);
    Ok((size.cpu, size.memory_mib))
}

fn asked<'q>(cx: &Ctx<'q>) -> Asked<'q> {
    let res = cx.ag.resources.as_ref();
    let req = res.and_then(|r| r.requests.as_ref());
    let lim = res.and_then(|r| r.limits.as_ref());
    let source = &cx.m.source;
    fn spanned<'q>(
        source: &str,
        q: Option<&'q Spanned<Quantity>>,
    ) -> Option<(&'q Quantity, Where)> {
        q.map(|q| (&q.value, Where::of(source, q)))
    }
    let (cpu_req, cpu_req_at) = spanned(source, req.and_then(|r| r.cpu.as_ref())).unzip();
    let (cpu_lim, _) = spanned(source, lim.and_then(|r| r.cpu.as_ref())).unzip();
    let (mem_req, mem_req_at) = spanned(source, req.and_then(|r| r.memory.as_ref())).unzip();
    let (mem_lim, mem_lim_at) = spanned(source, lim.and_then(|r| r.memory.as_ref())).unzip();
    Asked {
        cpu_req,
        cpu_req_at,
        cpu_lim,
        mem_req,
        mem_req_at,
        mem_lim,
        mem_lim_at,
    }
}

/// The task must cover the larger of request and limit; what is missing is
/// Dynatrace's small size.
fn need(cx: &mut Ctx<'_>, asked: &Asked<'_>) -> Need {
    let cpu_need = asked
        .cpu_req
        .iter()
        .chain(asked.cpu_lim.iter())
        .map(|q| q.cpu_units())
        .max();
    let mem_need = asked
        .mem_req
        .iter()
        .chain(asked.mem_lim.iter())
        .map(|q| q.mebibytes())
        .max();
    let (cpu, memory_mib) = match (cpu_need, mem_need) {
        (Some(c), Some(m)) => (c, m),
        (c, m) => {
            cx.note(Action::Added, &cx.src("resources"), Some("cpu, memory"),
                "missing requests/limits: Dynatrace's small routing ActiveGate size (250m CPU, 2 GiB)");
            (
                c.unwrap_or(256),
                m.unwrap_or(u128::from(RECOMMENDED_MEMORY_MIB)),
            )
        }
    };
    Need { cpu, memory_mib }
}

fn too_big(cx: &Ctx<'_>, need: Need) -> TranslateError {
    TranslateError::TooLargeForFargate {
        at: cx.at(&cx.ag.name),
        what: format!("container {}", secret::shown(cx.ag_name())),
        cpu: need.cpu,
        memory_mib: need.memory_mib,
    }
}

/// The container's CPU: its request, else its limit.
fn map_cpu(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
    asked: &Asked<'_>,
    need: Need,
) -> Result<(), TranslateError> {
    let Some(q) = asked.cpu_req.or(asked.cpu_lim) else {
        return Ok(());
    };
    let units = u32::try_from(q.cpu_units()).map_err(|_| too_big(cx, need))?;
    if let Some(at) = asked.cpu_req_at.as_ref() {
        cx.origin(&cx.dst("cpu"), at, &cx.src("resources.requests.cpu"));
    }
    c.cpu = Some(units);
    let which = if asked.cpu_req.is_some() {
        "requests"
    } else {
        "limits"
    };
    cx.note(
        Action::Adjusted,
        &cx.src(&format!("resources.{which}.cpu")),
        Some(&cx.dst("cpu")),
        format!("{q} → {units} CPU units (1024 per vCPU)"),
    );
    Ok(())
}

/// Memory against ECS's rules, refused with the place of the quantity that
/// breaks them: the limit when it is below the request or Docker's minimum,
/// else the request.
fn check_memory(
    cx: &Ctx<'_>,
    asked: &Asked<'_>,
    reservation: Option<u32>,
    hard: Option<u32>,
    task_mib: u32,
) -> Result<(), TranslateError> {
    let tpath = &cx.tpath;
    let limit_error = limits::container_memory(tpath, hard, None, task_mib)
        .err()
        .map(|v| (v, asked.mem_lim_at.clone(), "limits"))
        .or_else(|| {
            limits::container_memory(tpath, None, reservation, task_mib)
                .err()
                .map(|v| (v, asked.mem_req_at.clone(), "requests"))
        })
        .or_else(|| match (hard, reservation) {
            (Some(h), Some(r)) if h < r => Some((
                Violation {
                    field: format!("{tpath}.memory"),
                    found: format!("{h} MiB with memoryReservation {r} MiB"),
                    allowed: "a memory limit at least the request (ECS wants memory above memoryReservation; Kubernetes refuses limits below requests too)".into(),
                    source: limits::source::CONTAINER_DEFINITION,
                },
                asked.mem_lim_at.clone(),
                "limits",
            )),
            _ => None,
        });
    match limit_error {
        Some((violation, at, which)) => Err(TranslateError::Limit {
            at: at.unwrap_or_else(|| cx.at(&cx.ag.name)),
            source_field: cx.src(&format!("resources.{which}.memory")),
            violation: Box::new(violation),
        }),
        None => Ok(()),
    }
}

/// requests.memory → memoryReservation (unless equal to the limit), limits.memory → memory.
fn map_memory(
    cx: &mut Ctx<'_>,
    c: &mut ContainerDefinition,
    asked: &Asked<'_>,
    reservation: Option<u32>,
    hard: Option<u32>,
) {
    if let (Some(q), Some(mib)) = (asked.mem_req, reservation) {
        if hard == Some(mib) {
            cx.note(
                Action::Adjusted,
                &cx.src("resources.requests.memory"),
                Some(&cx.dst("memoryReservation")),
                format!("{q} → not set: equal to the limit, and ECS wants a reservation below the hard limit (without one, the hard limit is what is reserved)"),
            );
        } else {
            c.memory_reservation = Some(mib);
            cx.note(
                Action::Adjusted,
                &cx.src("resources.requests.memory"),
                Some(&cx.dst("memoryReservation")),
                format!("{q} → {mib} MiB (soft reservation)"),
            );
        }
        if let Some(at) = asked.mem_req_at.as_ref() {
            cx.origin(
                &cx.dst("memoryReservation"),
                at,
                &cx.src("resources.requests.memory"),
            );
        }
    }
    if let (Some(q), Some(mib)) = (asked.mem_lim, hard) {
        if let Some(at) = asked.mem_lim_at.as_ref() {
            cx.origin(&cx.dst("memory"), at, &cx.src("resources.limits.memory"));
        }
        c.memory = Some(mib);
        cx.note(
            Action::Adjusted,
            &cx.src("resources.limits.memory"),
            Some(&cx.dst("memory")),
            format!("{q} → {mib} MiB (hard limit)"),
        );
    }
}

/// The task size chosen, and a warning below Dynatrace's sizing guidance.
fn note_size(cx: &mut Ctx<'_>, need: Need, size: FargateSize) {
    let (cpu_need, mem_need) = (need.cpu, need.memory_mib);
    let exact = u128::from(size.cpu) == cpu_need && u128::from(size.memory_mib) == mem_need;
    cx.note(
        if exact {
            Action::Mapped
        } else {
            Action::Adjusted
        },
        &cx.src("resources"),
        Some("cpu, memory"),
        format!(
            "needs {cpu_need} CPU units / {mem_need} MiB → Fargate size {size}{}",
            if exact {
                ""
            } else {
                " (rounded up to the smallest valid size)"
            }
        ),
    );
    if size.memory_mib < RECOMMENDED_MEMORY_MIB {
        cx.note(Action::Warning, &cx.src("resources"), Some("memory"), format!(
            "{} MiB is below Dynatrace's sizing guidance for a routing ActiveGate (small: 250m CPU / 2 GiB)", size.memory_mib));
    }
}
