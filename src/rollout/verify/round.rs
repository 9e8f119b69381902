//! One round of a verification, and what the rounds carry between them: what ECS shows of the
//! subject, the tasks to probe, the probes (and the environment's answer beside them), whether
//! the round proves anything, and each task's count.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    Asker, Progress, Round, Scope, Subject, Verified, VerifyError, VerifyPolicy, fail, inconclusive,
};
use crate::ecs::{Aws, DeploymentState, ServiceState, TaskSetState, TaskState};
use crate::health::environment::Listed;
use crate::health::{Probe, ProbeFailure, Prober};
use crate::rollout::dynatrace::Listing;

/// One probe's result; `Some(arn)` for a task of the new revision, `None` for the baseline's.
pub(super) type Probed = (Option<String>, Probe);

/// What ECS shows of the subject at the start of a round.
pub(super) struct Shown {
    pub(super) svc: ServiceState,
    /// The service's deployment of the revision (rolling).
    pub(super) deployment: Option<DeploymentState>,
    /// The task set being verified (blue/green).
    pub(super) task_set: Option<TaskSetState>,
}

/// The tasks a round probes.
pub(super) struct Tasks {
    /// The RUNNING tasks of the revision.
    pub(super) running: Vec<TaskState>,
    /// Their ARNs and addresses (a task without an address is not probed yet).
    pub(super) new_ips: Vec<(String, String)>,
    /// The addresses of the baseline's RUNNING tasks.
    pub(super) old_ips: Vec<String>,
}

/// What a verification carries from one round to the next.
pub(super) struct Verification<'a> {
    pub(super) aws: &'a Aws,
    pub(super) prober: &'a Prober,
    pub(super) policy: &'a VerifyPolicy,
    pub(super) progress: &'a (dyn Fn(&Progress) + Send + Sync),
    pub(super) cluster: &'a str,
    pub(super) service: &'a str,
    pub(super) revision: &'a str,
    pub(super) scope: Scope<'a>,
    /// The revision being replaced, when it is another one.
    pub(super) baseline: Option<&'a str>,
    /// The Dynatrace-side check, when it is on.
    pub(super) asker: Option<Asker<'a>>,
    pub(super) warnings: Vec<String>,
    /// The environment's last answer, for the connected hosts at the end.
    pub(super) last_answer: Option<Vec<Listed>>,
    pub(super) started: Instant,
    /// Tasks of the revision that had stopped before the verification began.
    pub(super) stopped_before: BTreeSet<String>,
    pub(super) seen: BTreeMap<String, Seen>,
    pub(super) bake_until: Option<Instant>,
    pub(super) probes_ok: u64,
    pub(super) probes_failed: u64,
    pub(super) rounds: u32,
    pub(super) unsure_rounds: u32,
    pub(super) unsure_why: Option<String>,
    /// When this round should start: the previous one's end plus the interval.
    pub(super) planned: Instant,
}

impl<'a> Verification<'a> {
    pub(super) async fn start(
        aws: &'a Aws,
        prober: &'a Prober,
        subject: Subject<'a>,
        policy: &'a VerifyPolicy,
        progress: &'a (dyn Fn(&Progress) + Send + Sync),
    ) -> Result<Verification<'a>, VerifyError> {
        let Subject {
            cluster,
            service,
            revision,
            scope,
            baseline,
            environment,
        } = subject;
        let mut warnings = Vec::new();
        let asker = match environment {
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
        Ok(Verification {
            aws,
            prober,
            policy,
            progress,
            cluster,
            service,
            revision,
            scope,
            baseline: baseline.filter(|b| *b != revision),
            asker,
            warnings,
            last_answer: None,
            started,
            stopped_before,
            seen: BTreeMap::new(),
            bake_until: None,
            probes_ok: 0,
            probes_failed: 0,
            rounds: 0,
            unsure_rounds: 0,
            unsure_why: None,
            planned: Instant::now(),
        })
    }

    /// One round: observe, probe new and baseline tasks (and ask the environment), classify
    /// the round, count, decide. `Ok(None)`: nothing is decided yet.
    pub(super) async fn round(&mut self) -> Result<Option<Verified>, VerifyError> {
        let shown = self.observe().await?;
        let started_late = Instant::now().saturating_duration_since(self.planned);
        let tasks = self.tasks().await?;
        let now = Instant::now();
        let (results, answer) = self.probe(&tasks, now).await;
        let unsure = self.classify(&results, started_late);
        self.count(results, unsure.is_some());
        self.hear(answer, &tasks.new_ips).await;
        if let Some(failed) = self
            .listed_wrong(&tasks.running, now)
            .or_else(|| self.unhealthy(&tasks.running, now))
        {
            return Err(failed);
        }
        let tally = self.tally(&shown, &tasks.running);
        if tally.ready && self.bake_until.is_none() {
            self.bake_until = Some(now + self.policy.bake);
        }
        self.report(&tally, tasks.running.len(), now);
        if let Some(until) = self.bake_until
            && now >= until
            && tally.ready
        {
            return Ok(Some(self.verified(&tasks, tally.listed)));
        }
        if now.duration_since(self.started) >= self.policy.deadline {
            return Err(self.past_deadline(&shown, &tasks, &tally, now));
        }
        Ok(None)
    }

    /// What ECS shows of the subject; a failure when the service, the task set or the
    /// deployment is gone or failed, or a task of the revision stopped.
    pub(super) async fn observe(&self) -> Result<Shown, VerifyError> {
        let (service, revision) = (self.service, self.revision);
        let Some(svc) = self.aws.describe_service(self.cluster, service).await? else {
            return Err(fail(
                vec![format!("service {service} no longer exists")],
                vec![],
            ));
        };
        let deployment = svc
            .deployments
            .iter()
            .find(|d| d.task_definition == revision)
            .cloned();
        let task_set = match self.scope {
            Scope::Deployment => None,
            Scope::TaskSet(id) => match svc.task_sets.iter().find(|t| t.id == id) {
                Some(t) if t.status != "DRAINING" => Some(t.clone()),
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
        if let Some(d) = deployment.as_ref().filter(|d| d.rollout_state == "FAILED") {
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
        self.none_stopped().await?;
        Ok(Shown {
            svc,
            deployment,
            task_set,
        })
    }

    /// A failure when a task of the revision stopped since the verification began (unless
    /// ECS replaced it).
    pub(super) async fn none_stopped(&self) -> Result<(), VerifyError> {
        let mut stopped = self.stopped_since_start().await?;
        if stopped.is_empty() {
            return Ok(());
        }
        // The verdict is already failed; what remains is to say why. ECS (and the simulator)
        // give a container's exit code only once its task is STOPPED, a moment after the task
        // is marked to stop: wait a little for that (five reads, ~3 s in all), so that the
        // reasons name the ActiveGate's exit, not only the init container's.
        let mut wait = std::time::Duration::from_millis(100);
        for _ in 0..5 {
            if stopped.iter().all(|t| t.last_status == "STOPPED") {
                break;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
            let again = self.stopped_since_start().await?;
            if !again.is_empty() {
                stopped = again;
            }
        }
        Err(fail(
            stopped.iter().map(describe_stop).collect(),
            stopped.iter().map(|t| t.id().to_owned()).collect(),
        ))
    }

    /// The revision's tasks that stopped (or are stopping) since the verification began,
    /// except those ECS replaced.
    async fn stopped_since_start(&self) -> Result<Vec<TaskState>, VerifyError> {
        Ok(self
            .aws
            .tasks(self.cluster, self.service, true)
            .await?
            .into_iter()
            .filter(|t| {
                t.task_definition == self.revision
                    && !self.stopped_before.contains(&t.arn)
                    && !replaced_by_ecs(t)
            })
            .collect())
    }

    /// The RUNNING tasks of the revision, and the addresses of the baseline's.
    pub(super) async fn tasks(&self) -> Result<Tasks, VerifyError> {
        let all_running = self.aws.tasks(self.cluster, self.service, false).await?;
        let running: Vec<TaskState> = all_running
            .iter()
            .filter(|t| t.task_definition == self.revision && t.last_status == "RUNNING")
            .cloned()
            .collect();
        let old_ips = all_running
            .iter()
            .filter(|t| {
                self.baseline == Some(t.task_definition.as_str()) && t.last_status == "RUNNING"
            })
            .filter_map(|t| t.ip.clone())
            .collect();
        let new_ips = running
            .iter()
            .filter_map(|t| Some((t.arn.clone(), t.ip.clone()?)))
            .collect();
        Ok(Tasks {
            running,
            new_ips,
            old_ips,
        })
    }

    /// Probes every new and every baseline task at once and, beside the probes, asks the
    /// environment: one request for the whole target, none while there is nothing to look
    /// up or a 429's Retry-After runs.
    pub(super) async fn probe(
        &mut self,
        tasks: &Tasks,
        now: Instant,
    ) -> (Vec<Probed>, Option<Vec<Listed>>) {
        let mut probes = JoinSet::new();
        for t in &tasks.running {
            let Some(ip) = t.ip.clone() else { continue };
            self.seen
                .entry(t.arn.clone())
                .or_insert_with(|| Seen::new(now));
            let prober = self.prober.clone();
            let arn = Some(t.arn.clone());
            probes.spawn(async move {
                let _slot = prober.slot().await;
                (arn, prober.probe(&ip).await)
            });
        }
        for ip in &tasks.old_ips {
            let (prober, ip) = (self.prober.clone(), ip.clone());
            probes.spawn(async move {
                let _slot = prober.slot().await;
                (None, prober.probe(&ip).await)
            });
        }
        let ask = self
            .asker
            .as_ref()
            .is_some_and(|a| !tasks.new_ips.is_empty() && a.due(now));
        let filter = self.asker.as_ref().map(Asker::filter).unwrap_or_default();
        let (revision, asker) = (self.revision, self.asker.as_mut());
        tokio::join!(
            async {
                let mut results = Vec::new();
                while let Some(joined) = probes.join_next().await {
                    if let Ok(r) = joined {
                        results.push(r);
                    }
                }
                results
            },
            async move {
                match asker {
                    Some(a) if ask => a.ask(&filter, revision).await,
                    _ => None,
                }
            }
        )
    }

    /// Why this round proves nothing, if it does not ([`inconclusive`]); counted, and logged
    /// when the reason is new.
    pub(super) fn classify(
        &mut self,
        results: &[Probed],
        started_late: Duration,
    ) -> Option<String> {
        let failed = |r: &&Probed| r.1.result.is_err();
        let round = Round {
            interval: self.policy.interval,
            started_late,
            event_loop_late: self.prober.load().event_loop_lateness(),
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
        self.rounds += 1;
        let unsure = inconclusive(&round);
        if let Some(why) = &unsure {
            self.unsure_rounds += 1;
            if self.unsure_why.as_ref() != Some(why) {
                tracing::warn!(revision = %self.revision, why = %why, "inconclusive probe round: the new tasks' failures are not counted");
            }
            self.unsure_why = Some(why.clone());
        }
        unsure
    }

    /// Counts the new tasks' probes: successes always, failures only in a round that proves
    /// something.
    pub(super) fn count(&mut self, results: Vec<Probed>, unsure: bool) {
        for (arn, probe) in results {
            let Some(s) = arn.and_then(|a| self.seen.get_mut(&a)) else {
                continue;
            };
            match probe.result {
                Ok(()) => {
                    self.probes_ok += 1;
                    s.ok += 1;
                    s.failed = 0;
                }
                // Not counted against the task: the round proves nothing.
                Err(_) if unsure => {}
                Err(e) => {
                    self.probes_failed += 1;
                    s.failed += 1;
                    s.ok = 0;
                    s.last_error = Some(e.to_string());
                }
            }
        }
    }
}

#[derive(Debug)]
pub(super) struct Seen {
    pub(super) first: Instant,
    pub(super) ok: u32,
    pub(super) failed: u32,
    pub(super) last_error: Option<String>,
    /// What the Dynatrace environment's last answer said of it.
    pub(super) listing: Listing,
    /// Answers in a row that did not list it (or listed it offline).
    pub(super) absent: u32,
    /// Answers in a row that listed it as something else than rolled out.
    pub(super) wrong: u32,
    /// Looked up by its address alone (once: the filter may hide it).
    pub(super) diagnosed: bool,
}

impl Seen {
    pub(super) fn new(first: Instant) -> Seen {
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
