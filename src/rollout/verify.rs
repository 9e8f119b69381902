//! Proving a revision healthy from the outside: every RUNNING task of it
//! answers its HTTPS probe `healthy_after` times in a row, ECS calls the
//! deployment COMPLETED, and then nothing fails for the bake time.
//!
//! Judged against a baseline: the tasks of the revision being replaced are probed in the
//! same rounds, with the same settings. A round in which the new tasks' failures cannot be
//! told from the daemon's own trouble — the old tasks failed too, every probe failed to
//! connect, the round started late, the event loop runs late — is inconclusive: it counts
//! toward the deadline, never toward a roll-back, so a busy or cut-off daemon never blames
//! a good version.
//!
//! With `[target.verify.dynatrace]`, a new task also needs the Dynatrace environment to list
//! its ActiveGate online as rolled out ([`super::dynatrace`]): one request per round for the
//! whole target, in parallel with the probes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::dynatrace::{Asker, Connected, EnvironmentCheck, Listing, OnApiError, judge};
use crate::ecs::{Aws, EcsError, TaskState};
use crate::health::environment::{Filter, Listed};
use crate::health::{ProbeFailure, Prober, load};

/// How a revision is verified.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    pub interval: Duration,
    pub grace: Duration,
    pub healthy_after: u32,
    pub unhealthy_after: u32,
    pub bake: Duration,
    pub deadline: Duration,
}

/// Where verification stands, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub revision: String,
    pub elapsed: Duration,
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
    pub baking: bool,
    pub probes_ok: u64,
    pub probes_failed: u64,
    /// New tasks the Dynatrace environment lists as rolled out; `None` without the check.
    pub listed: Option<u32>,
}

/// A revision proven healthy, and what the proof leaves to say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verified {
    /// What the verdict could not check (the Dynatrace environment out of reach with
    /// `on_api_error = "probe-only"`, an image tag that names no version).
    pub warnings: Vec<String>,
    /// What the new ActiveGates reported in the environment's last answer.
    pub connected: Option<Connected>,
}

/// Why a revision was not verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reasons: Vec<String>,
    /// Tasks whose logs tell more.
    pub tasks: Vec<String>,
}

#[derive(Debug)]
pub enum VerifyError {
    Failed(Failure),
    /// The deadline passed with only inconclusive evidence against the revision: nothing
    /// says it is bad, nothing proved it good.
    Inconclusive(Failure),
    Aws(EcsError),
}

/// Event-loop lateness above which the daemon's own probes are not to be trusted.
pub const LATE_EVENT_LOOP: Duration = Duration::from_secs(1);

/// What one probe round saw, for [`inconclusive`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    pub interval: Duration,
    /// How much later than planned the round started.
    pub started_late: Duration,
    /// The event loop's recent lateness.
    pub event_loop_late: Duration,
    pub new_probes: usize,
    pub new_failed: usize,
    pub old_probes: usize,
    pub old_failed: usize,
    /// Failures (old and new) that were connection errors: refused, unreachable, no DNS.
    pub connect_failed: usize,
}

/// Why the new tasks' failures in this round prove nothing, if they do not. A round
/// without new failures is never inconclusive: success is evidence whatever the load.
pub fn inconclusive(r: &Round) -> Option<String> {
    if r.new_failed == 0 {
        return None;
    }
    if r.started_late > r.interval.max(Duration::from_millis(250)) {
        return Some(format!(
            "the probe round started {:.1} s late: the daemon is overloaded",
            r.started_late.as_secs_f64()
        ));
    }
    if r.event_loop_late > LATE_EVENT_LOOP {
        return Some(format!(
            "the daemon's event loop runs {:.1} s late: the daemon is overloaded",
            r.event_loop_late.as_secs_f64()
        ));
    }
    if r.old_probes > 0 && r.old_failed == r.old_probes {
        return Some(
            "probes of old and new tasks failed together: the daemon cannot reach the tasks or is overloaded"
                .into(),
        );
    }
    let all = r.new_probes + r.old_probes;
    if all > 1 && r.connect_failed == all {
        return Some("every probe failed to connect: the daemon cannot reach the tasks".into());
    }
    None
}

impl From<EcsError> for VerifyError {
    fn from(e: EcsError) -> Self {
        Self::Aws(e)
    }
}

#[derive(Debug)]
struct Seen {
    first: Instant,
    ok: u32,
    failed: u32,
    last_error: Option<String>,
    /// What the Dynatrace environment's last answer said of it.
    listing: Listing,
    /// Answers in a row that did not list it (or listed it offline).
    absent: u32,
    /// Answers in a row that listed it as something else than rolled out.
    wrong: u32,
    /// Looked up by its address alone (once: the filter may hide it).
    diagnosed: bool,
}

impl Seen {
    fn new(first: Instant) -> Seen {
        Seen {
            first,
            ok: 0,
            failed: 0,
            last_error: None,
            listing: Listing::Unknown,
            absent: 0,
            wrong: 0,
            diagnosed: false,
        }
    }
}

fn fail(reasons: Vec<String>, tasks: Vec<String>) -> VerifyError {
    VerifyError::Failed(Failure { reasons, tasks })
}

fn describe_stop(t: &TaskState) -> String {
    let codes: Vec<String> = t
        .exit_codes
        .iter()
        .map(|(c, code)| format!("{c} exited {code}"))
        .collect();
    format!(
        "task {} stopped ({}): {}{}",
        t.id(),
        if t.started_at.is_some() {
            "after RUNNING"
        } else {
            "before RUNNING"
        },
        t.stopped_reason.as_deref().unwrap_or("no reason given"),
        if codes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", codes.join(", "))
        }
    )
}

/// ECS replacing a task for a newer deployment or a scale-in is no failure of
/// the task (it happens to older tasks of the same revision during a roll-back).
fn replaced_by_ecs(t: &TaskState) -> bool {
    t.stopped_reason
        .as_deref()
        .is_some_and(|r| r.starts_with("Scaling activity initiated by"))
}

/// What is being verified: the service's current ECS deployment of a revision (rolling), or
/// one task set of an EXTERNAL service (blue/green), which may serve beside another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Deployment,
    TaskSet(&'a str),
}

/// The revision of a service being verified, and in which scope.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub revision: &'a str,
    pub scope: Scope<'a>,
    /// The revision being replaced, whose running tasks are probed alongside as a baseline.
    pub baseline: Option<&'a str>,
    /// The Dynatrace-side check, and what an API error does to this verification.
    pub environment: Option<(&'a EnvironmentCheck, OnApiError)>,
}

/// Looks up, by address alone, tasks the filtered answer did not list although their probes
/// pass (at most once each): their ActiveGate may be listed in another zone or group.
async fn diagnose(
    asker: &mut Asker<'_>,
    seen: &mut BTreeMap<String, Seen>,
    running: &[(String, String)],
    policy: &VerifyPolicy,
    revision: &str,
) {
    for (arn, ip) in running {
        let Some(s) = seen.get_mut(arn) else { continue };
        let hidden = matches!(s.listing, Listing::Absent | Listing::Offline(_));
        if !hidden
            || s.diagnosed
            || s.ok < policy.healthy_after
            || s.absent < policy.unhealthy_after
        {
            continue;
        }
        s.diagnosed = true;
        let filter = Filter {
            network_address: Some(ip.clone()),
            ..Filter::default()
        };
        let Some(gates) = asker.ask(&filter, revision).await else {
            return;
        };
        let zone = asker.check.network_zone.as_deref();
        let group = asker.check.group.as_deref();
        if let l @ (Listing::Wrong(_) | Listing::Confirmed { .. }) =
            judge(&gates, ip, asker.expected.as_ref(), zone, group)
        {
            match l {
                // Dynatrace sees it, and not as rolled out: as good as that many answers.
                Listing::Wrong(_) => s.wrong = policy.unhealthy_after,
                _ => asker.distrust_filter(revision),
            }
            s.listing = l;
        }
    }
}

/// Verifies that `revision` runs healthy on the service.
pub async fn verify(
    aws: &Aws,
    prober: &Prober,
    subject: Subject<'_>,
    policy: &VerifyPolicy,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<Verified, VerifyError> {
    let Subject {
        cluster,
        service,
        revision,
        scope,
        baseline,
        environment,
    } = subject;
    let baseline = baseline.filter(|b| *b != revision);
    let mut warnings = Vec::new();
    let mut asker = match environment {
        None => None,
        Some((check, on_api_error)) => {
            let image = aws.describe_task_definition(revision).await?.image;
            let asker = Asker::new(check, on_api_error, &image);
            if asker.expected.is_none() {
                warnings.push(format!(
                    "the image {} names no ActiveGate version in its tag: the version the environment lists was not compared",
                    crate::model::secret::shown(&image)
                ));
            }
            Some(asker)
        }
    };
    // The environment's last answer, for the connected hosts at the end.
    let mut last_answer: Option<Vec<Listed>> = None;
    // Rounds of many targets spread over the interval instead of all starting at once.
    tokio::time::sleep(policy.interval.mul_f64(fastrand::f64())).await;
    let started = Instant::now();
    let stopped_before: BTreeSet<String> = aws
        .tasks(cluster, service, true)
        .await?
        .into_iter()
        .filter(|t| t.task_definition == revision)
        .map(|t| t.arn)
        .collect();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut bake_until: Option<Instant> = None;
    let (mut probes_ok, mut probes_failed) = (0u64, 0u64);
    let (mut rounds, mut unsure_rounds, mut unsure_why) = (0u32, 0u32, None::<String>);
    // When this round should start: the previous one's end plus the interval.
    let mut planned = Instant::now();
    loop {
        let Some(svc) = aws.describe_service(cluster, service).await? else {
            return Err(fail(
                vec![format!("service {service} no longer exists")],
                vec![],
            ));
        };
        let deployment = svc
            .deployments
            .iter()
            .find(|d| d.task_definition == revision);
        let task_set = match scope {
            Scope::Deployment => None,
            Scope::TaskSet(id) => match svc.task_sets.iter().find(|t| t.id == id) {
                Some(t) if t.status != "DRAINING" => Some(t),
                _ => {
                    return Err(fail(
                        vec![format!(
                            "task set {id} of {revision} was deleted while it was verified"
                        )],
                        vec![],
                    ));
                }
            },
        };
        if let Some(d) = deployment.filter(|d| d.rollout_state == "FAILED") {
            return Err(fail(
                vec![format!(
                    "ECS marked deployment {} FAILED: {}",
                    d.id, d.rollout_state_reason
                )],
                vec![],
            ));
        }
        if task_set.is_none() && svc.task_definition != revision {
            return Err(fail(
                vec![format!(
                    "the service now runs {} instead (ECS's circuit breaker rolled it back, or someone changed it)",
                    svc.task_definition
                )],
                vec![],
            ));
        }
        let stopped: Vec<TaskState> = aws
            .tasks(cluster, service, true)
            .await?
            .into_iter()
            .filter(|t| {
                t.task_definition == revision
                    && !stopped_before.contains(&t.arn)
                    && !replaced_by_ecs(t)
            })
            .collect();
        if !stopped.is_empty() {
            return Err(fail(
                stopped.iter().map(describe_stop).collect(),
                stopped.iter().map(|t| t.id().to_owned()).collect(),
            ));
        }
        let started_late = Instant::now().saturating_duration_since(planned);
        let all_running = aws.tasks(cluster, service, false).await?;
        let running: Vec<TaskState> = all_running
            .iter()
            .filter(|t| t.task_definition == revision)
            .cloned()
            .collect();
        let old: Vec<String> = all_running
            .iter()
            .filter(|t| baseline == Some(t.task_definition.as_str()) && t.last_status == "RUNNING")
            .filter_map(|t| t.ip.clone())
            .collect();
        let now = Instant::now();
        let new_ips: Vec<(String, String)> = running
            .iter()
            .filter(|t| t.last_status == "RUNNING")
            .filter_map(|t| Some((t.arn.clone(), t.ip.clone()?)))
            .collect();
        let mut probes = JoinSet::new();
        for t in running.iter().filter(|t| t.last_status == "RUNNING") {
            let Some(ip) = t.ip.clone() else { continue };
            seen.entry(t.arn.clone()).or_insert_with(|| Seen::new(now));
            let prober = prober.clone();
            let arn = Some(t.arn.clone());
            probes.spawn(async move {
                let _slot = load::probe_slot().await;
                (arn, prober.probe(&ip).await)
            });
        }
        for ip in &old {
            let (prober, ip) = (prober.clone(), ip.clone());
            probes.spawn(async move {
                let _slot = load::probe_slot().await;
                (None, prober.probe(&ip).await)
            });
        }
        // One request for the whole target, beside the probes; none while there is nothing
        // to look up or a 429's Retry-After runs.
        let ask = asker
            .as_ref()
            .is_some_and(|a| !new_ips.is_empty() && a.due(now));
        let filter = asker.as_ref().map(Asker::filter).unwrap_or_default();
        let (results, answer) = tokio::join!(
            async {
                let mut results = Vec::new();
                while let Some(joined) = probes.join_next().await {
                    if let Ok(r) = joined {
                        results.push(r);
                    }
                }
                results
            },
            async {
                match asker.as_mut() {
                    Some(a) if ask => a.ask(&filter, revision).await,
                    _ => None,
                }
            }
        );
        let failed = |r: &&(Option<String>, crate::health::Probe)| r.1.result.is_err();
        let round = Round {
            interval: policy.interval,
            started_late,
            event_loop_late: load::event_loop_lateness(),
            new_probes: results.iter().filter(|r| r.0.is_some()).count(),
            new_failed: results
                .iter()
                .filter(|r| r.0.is_some())
                .filter(failed)
                .count(),
            old_probes: results.iter().filter(|r| r.0.is_none()).count(),
            old_failed: results
                .iter()
                .filter(|r| r.0.is_none())
                .filter(failed)
                .count(),
            connect_failed: results
                .iter()
                .filter(|r| matches!(r.1.result, Err(ProbeFailure::Connect(_))))
                .count(),
        };
        rounds += 1;
        let unsure = inconclusive(&round);
        if let Some(why) = &unsure {
            unsure_rounds += 1;
            if unsure_why.as_ref() != Some(why) {
                tracing::warn!(revision = %revision, why = %why, "inconclusive probe round: the new tasks' failures are not counted");
            }
            unsure_why = Some(why.clone());
        }
        for (arn, probe) in results {
            let Some(s) = arn.and_then(|a| seen.get_mut(&a)) else {
                continue;
            };
            match probe.result {
                Ok(()) => {
                    probes_ok += 1;
                    s.ok += 1;
                    s.failed = 0;
                }
                // Not counted against the task: the round proves nothing.
                Err(_) if unsure.is_some() => {}
                Err(e) => {
                    probes_failed += 1;
                    s.failed += 1;
                    s.ok = 0;
                    s.last_error = Some(e.to_string());
                }
            }
        }
        if let (Some(a), Some(gates)) = (asker.as_mut(), answer) {
            let (zone, group) = (a.check.network_zone.clone(), a.check.group.clone());
            for (arn, ip) in &new_ips {
                let Some(s) = seen.get_mut(arn) else { continue };
                s.listing = judge(
                    &gates,
                    ip,
                    a.expected.as_ref(),
                    zone.as_deref(),
                    group.as_deref(),
                );
                match s.listing {
                    Listing::Wrong(_) => {
                        s.wrong += 1;
                        s.absent = 0;
                    }
                    Listing::Absent | Listing::Offline(_) => {
                        s.absent += 1;
                        s.wrong = 0;
                    }
                    _ => {
                        s.absent = 0;
                        s.wrong = 0;
                    }
                }
            }
            if a.filtered() {
                diagnose(a, &mut seen, &new_ips, policy, revision).await;
            }
            last_answer = Some(gates);
        }
        let running_now: Vec<&TaskState> = running
            .iter()
            .filter(|t| t.last_status == "RUNNING")
            .collect();
        let ip_of = |t: &TaskState| t.ip.clone().unwrap_or_else(|| t.id().to_owned());
        // Listed as something else than rolled out, answer after answer: Dynatrace's proof.
        let wrong: Vec<&&TaskState> = running_now
            .iter()
            .filter(|t| {
                seen.get(&t.arn).is_some_and(|s| {
                    s.wrong >= policy.unhealthy_after && matches!(s.listing, Listing::Wrong(_))
                })
            })
            .collect();
        if let (Some(a), false) = (asker.as_ref(), wrong.is_empty()) {
            let reasons = wrong
                .iter()
                .filter_map(|t| {
                    let s = seen.get(&t.arn)?;
                    a.task_reason(&ip_of(t), &s.listing, now.duration_since(s.first))
                })
                .collect();
            return Err(fail(
                reasons,
                wrong.iter().map(|t| t.id().to_owned()).collect(),
            ));
        }
        // What the environment says counts, unless it cannot be asked and `probe-only` is set.
        let degraded = asker.as_ref().is_some_and(Asker::degraded);
        let dt_ok = |s: &Seen| match &asker {
            None => true,
            Some(_) => {
                matches!(s.listing, Listing::Confirmed { .. })
                    || (degraded && !matches!(s.listing, Listing::Wrong(_)))
            }
        };
        let unhealthy: Vec<String> = running_now
            .iter()
            .filter_map(|t| {
                let s = seen.get(&t.arn)?;
                (s.failed >= policy.unhealthy_after && now.duration_since(s.first) >= policy.grace)
                    .then(|| {
                        format!(
                            "task {} failed {} probes in a row: {}",
                            t.id(),
                            s.failed,
                            s.last_error.as_deref().unwrap_or("?")
                        )
                    })
            })
            .collect();
        if !unhealthy.is_empty() {
            let ids = running_now
                .iter()
                .filter(|t| {
                    seen.get(&t.arn)
                        .is_some_and(|s| s.failed >= policy.unhealthy_after)
                })
                .map(|t| t.id().to_owned())
                .collect();
            return Err(fail(unhealthy, ids));
        }
        let probed_ok = |t: &&&TaskState| {
            seen.get(&t.arn)
                .is_some_and(|s| s.ok >= policy.healthy_after)
        };
        let healthy = running_now
            .iter()
            .filter(|t| probed_ok(t) && seen.get(&t.arn).is_some_and(dt_ok))
            .count() as u32;
        let listed = asker.as_ref().map(|_| {
            running_now
                .iter()
                .filter(|t| {
                    seen.get(&t.arn)
                        .is_some_and(|s| matches!(s.listing, Listing::Confirmed { .. }))
                })
                .count() as u32
        });
        let (ready, desired) = match task_set {
            // A task set is ready when it runs its share of the service, all of it healthy;
            // other task sets (blue) may serve beside it.
            Some(t) => (
                t.running_count >= t.computed_desired_count
                    && healthy >= t.computed_desired_count
                    && healthy as usize == running_now.len(),
                t.computed_desired_count,
            ),
            None => (
                deployment.is_some_and(|d| d.rollout_state == "COMPLETED")
                    && svc.deployments.len() == 1
                    && healthy >= svc.desired_count
                    && healthy as usize == running_now.len(),
                svc.desired_count,
            ),
        };
        if ready && bake_until.is_none() {
            bake_until = Some(now + policy.bake);
        }
        progress(&Progress {
            revision: revision.to_owned(),
            elapsed: now.duration_since(started),
            desired,
            running: running_now.len() as u32,
            healthy,
            baking: bake_until.is_some(),
            probes_ok,
            probes_failed,
            listed,
        });
        if let Some(until) = bake_until
            && now >= until
            && ready
        {
            let mut connected = None;
            if let Some(a) = &asker {
                let unconfirmed = running_now.len() as u32 - listed.unwrap_or(0);
                if unconfirmed > 0 {
                    warnings.push(format!(
                        "{unconfirmed} of {} new ActiveGates verified by their HTTPS probe alone: {} (verify.dynatrace.on_api_error = \"probe-only\")",
                        running_now.len(),
                        a.error_reason()
                            .unwrap_or_else(|| "the Dynatrace environment could not be asked".into())
                    ));
                }
                connected = last_answer.as_ref().map(|gates| {
                    let hosts = |ip: &str| {
                        gates
                            .iter()
                            .filter(|g| g.online() && g.has_address(ip))
                            .map(|g| g.connected_hosts.unwrap_or(0))
                            .max()
                    };
                    let new: Vec<u64> = new_ips.iter().filter_map(|(_, ip)| hosts(ip)).collect();
                    let old_hosts: Vec<u64> = old.iter().filter_map(|ip| hosts(ip)).collect();
                    Connected {
                        revision: revision.to_owned(),
                        activegates: new.len() as u32,
                        hosts: new.iter().sum(),
                        old_hosts: (!old_hosts.is_empty()).then(|| old_hosts.iter().sum()),
                    }
                });
            }
            return Ok(Verified {
                warnings,
                connected,
            });
        }
        if now.duration_since(started) >= policy.deadline {
            let mut reasons = vec![format!(
                "not verified within {} s: {healthy} of {desired} tasks healthy{}, {}",
                policy.deadline.as_secs(),
                match listed {
                    Some(l) => format!(
                        " ({} pass their probes, {l} listed by the Dynatrace environment)",
                        running_now.iter().filter(|t| probed_ok(t)).count()
                    ),
                    None => String::new(),
                },
                match task_set {
                    Some(t) => format!("task set {} {}", t.id, t.stability_status),
                    None => format!(
                        "deployment {}",
                        deployment.map_or("missing", |d| d.rollout_state.as_str())
                    ),
                }
            )];
            // The last probe error of the tasks whose probes do not pass now (a task that
            // answered 503 while it started and has passed since is no probe failure).
            reasons.extend(
                running_now
                    .iter()
                    .filter(|t| !probed_ok(t))
                    .filter_map(|t| {
                        Some(format!(
                            "task {}: {}",
                            t.id(),
                            seen.get(&t.arn)?.last_error.as_deref()?
                        ))
                    }),
            );
            let tasks = running_now.iter().map(|t| t.id().to_owned()).collect();
            if let Some(a) = &asker {
                // What Dynatrace saw of the tasks it did not confirm.
                let missing: Vec<(&&TaskState, &Seen)> = running_now
                    .iter()
                    .filter_map(|t| Some((t, seen.get(&t.arn)?)))
                    .filter(|(_, s)| !matches!(s.listing, Listing::Confirmed { .. }))
                    .collect();
                reasons.extend(missing.iter().filter_map(|(t, s)| {
                    a.task_reason(&ip_of(t), &s.listing, now.duration_since(s.first))
                }));
                reasons.extend(a.error_reason());
                let probes_all_ok = running_now.iter().all(|t| probed_ok(&t));
                let only_dynatrace = unsure_why.is_none() && probes_all_ok && !missing.is_empty();
                // The environment never answered for them: nothing says the version is bad.
                let unasked = missing.iter().all(|(_, s)| s.listing == Listing::Unknown);
                // Nor when the ActiveGates being replaced are not listed either.
                let old_listed = last_answer.as_ref().is_some_and(|gates| {
                    old.iter()
                        .any(|ip| gates.iter().any(|g| g.online() && g.has_address(ip)))
                });
                let baseline_missing = !old.is_empty() && !old_listed;
                if only_dynatrace && (unasked || baseline_missing) {
                    if baseline_missing && !unasked {
                        reasons.push("the ActiveGates being replaced are not listed online by the environment either: the environment, not the new version, may be at fault; the revision is not blamed".into());
                    } else {
                        reasons.push("the environment could not confirm the new ActiveGates; the revision is not blamed".into());
                    }
                    return Err(VerifyError::Inconclusive(Failure { reasons, tasks }));
                }
            }
            if let Some(why) = unsure_why {
                reasons.push(format!(
                    "{unsure_rounds} of {rounds} probe rounds were inconclusive ({why}); the revision is not blamed"
                ));
                return Err(VerifyError::Inconclusive(Failure { reasons, tasks }));
            }
            return Err(fail(reasons, tasks));
        }
        tokio::time::sleep(policy.interval).await;
        planned = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round() -> Round {
        Round {
            interval: Duration::from_secs(15),
            started_late: Duration::ZERO,
            event_loop_late: Duration::ZERO,
            new_probes: 2,
            new_failed: 2,
            old_probes: 2,
            old_failed: 0,
            connect_failed: 0,
        }
    }

    #[test]
    fn new_tasks_failing_while_old_ones_answer_is_evidence() {
        assert_eq!(inconclusive(&round()), None);
        // One old task failing too is not "all of them".
        assert_eq!(
            inconclusive(&Round {
                old_failed: 1,
                ..round()
            }),
            None
        );
        // Without a baseline, failures count unless a self-check says otherwise.
        assert_eq!(
            inconclusive(&Round {
                old_probes: 0,
                old_failed: 0,
                ..round()
            }),
            None
        );
    }

    #[test]
    fn old_and_new_failing_together_proves_nothing() {
        let why = inconclusive(&Round {
            old_failed: 2,
            ..round()
        })
        .expect("inconclusive");
        assert!(why.contains("old and new tasks failed together"), "{why}");
    }

    #[test]
    fn a_round_that_started_late_proves_nothing() {
        // The injected clock: this round began 20 s after it was planned, with a 15 s interval.
        let late = Round {
            started_late: Duration::from_secs(20),
            ..round()
        };
        let why = inconclusive(&late).expect("inconclusive");
        assert!(why.contains("started 20.0 s late"), "{why}");
        // Within the interval it is not.
        assert_eq!(
            inconclusive(&Round {
                started_late: Duration::from_secs(10),
                ..round()
            }),
            None
        );
    }

    #[test]
    fn a_late_event_loop_or_no_connection_at_all_proves_nothing() {
        let busy = Round {
            event_loop_late: Duration::from_millis(1500),
            ..round()
        };
        assert!(inconclusive(&busy).is_some_and(|w| w.contains("event loop")));
        let cut = Round {
            old_probes: 0,
            old_failed: 0,
            connect_failed: 2,
            ..round()
        };
        assert!(inconclusive(&cut).is_some_and(|w| w.contains("connect")));
    }

    #[test]
    fn success_is_evidence_whatever_the_load() {
        let ok = Round {
            new_failed: 0,
            started_late: Duration::from_secs(60),
            event_loop_late: Duration::from_secs(5),
            old_failed: 2,
            ..round()
        };
        assert_eq!(inconclusive(&ok), None);
    }
}
