//! The availability monitor: probes every running task of a target on the
//! probe interval — between rollouts and during them — and counts the time in
//! which none answered healthy.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::availability::{Availability, SINCE_TAG, TAG};
use super::board::Board;
use super::{Options, wiring};
use crate::config::{Config, Target};

/// Task IPs are refreshed from ECS every this many probe rounds.
const REFRESH_EVERY: u32 = 4;
/// Downtime is written to the service tag at most this often (and at shutdown).
const PERSIST_EVERY: Duration = Duration::from_secs(60);

pub async fn watch(
    config: Arc<Config>,
    target: Target,
    board: Arc<Board>,
    options: Options,
    mesh: Option<Arc<super::mesh::MeshSync>>,
    mut stop: watch::Receiver<bool>,
) {
    let name = target.name.to_string();
    let adjust = options.adjust_client.clone();
    let parts = match wiring::parts(&config, &target, |c| adjust(c)).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(target = %name, error = %e, "availability monitor off: cannot build its prober");
            return;
        }
    };
    let (aws, prober) = (parts.aws, parts.prober);
    let (cluster, service) = (target.cluster.to_string(), target.service.to_string());
    let slo = target.slo_percent.0 / 100.0;
    let clock = options.clock.clone();
    let interval = target.probe.interval_seconds.duration();

    // Pick up what earlier runs of the daemon counted.
    let mut service_arn = None;
    let mut availability = Availability::new(slo, clock.now());
    if let Ok(Some(svc)) = aws.describe_service(&cluster, &service).await {
        let since = svc
            .tags
            .get(SINCE_TAG)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&chrono::Utc));
        if since.is_none() {
            let _ = aws
                .tag(
                    &svc.arn,
                    &[(
                        SINCE_TAG.into(),
                        clock
                            .now()
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    )],
                )
                .await;
        }
        availability = Availability::decode(
            slo,
            since.unwrap_or_else(|| clock.now()),
            svc.tags.get(TAG).map_or("", String::as_str),
        );
        service_arn = Some(svc.arn);
    }

    let mut ips: Vec<String> = Vec::new();
    // For the mesh: when ECS last listed the tasks, and which of them ever answered healthy (a
    // single failed probe does not take a task out of the destination; leaving ECS does).
    let mut listed_at = tokio::time::Instant::now();
    let mut answered: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // Until one task has answered healthy, the service is being created, not down.
    let mut ever_healthy = availability.report(clock.now()).downtime_seconds > 0.0;
    let mut round = 0u32;
    let mut last = clock.now();
    let mut persisted = availability.encode();
    let mut persisted_at = tokio::time::Instant::now();
    // The first wait is a random part of the interval: targets' rounds spread over it
    // rather than all starting together.
    let mut wait = interval.mul_f64(fastrand::f64());
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = interval;
        if round.is_multiple_of(REFRESH_EVERY) || ips.is_empty() {
            let asked_at = tokio::time::Instant::now();
            if let Ok(tasks) = aws.tasks(&cluster, &service, false).await {
                ips = crate::ecs::running_ips(tasks, None);
                listed_at = asked_at;
                answered.retain(|a| ips.contains(a));
            }
            if service_arn.is_none() {
                service_arn = aws
                    .describe_service(&cluster, &service)
                    .await
                    .ok()
                    .flatten()
                    .map(|s| s.arn);
            }
        }
        round = round.wrapping_add(1);
        let mut probes = JoinSet::new();
        for ip in &ips {
            let (prober, ip) = (prober.clone(), ip.clone());
            probes.spawn(async move {
                let _slot = crate::health::load::probe_slot().await;
                (prober.probe(&ip).await, ip)
            });
        }
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut latencies = Vec::with_capacity(ips.len());
        while let Some(Ok((p, ip))) = probes.join_next().await {
            latencies.push(p.latency.as_secs_f64());
            if p.result.is_ok() {
                ok += 1;
                answered.insert(ip);
            } else {
                failed += 1
            }
        }
        // A task replaced by ECS, or one started by a rollout, changes the mesh destination:
        // the running tasks that have answered healthy.
        let serving: Vec<String> = ips
            .iter()
            .filter(|ip| answered.contains(*ip))
            .cloned()
            .collect();
        if let Some(m) = mesh
            .as_ref()
            .filter(|m| m.follows_tasks() && !serving.is_empty())
        {
            let (m, board) = (m.clone(), board.clone());
            tokio::spawn(async move {
                m.sync(
                    &serving,
                    listed_at,
                    &board,
                    super::mesh::Cause::TasksChanged,
                )
                .await
            });
        }
        let now = clock.now();
        let elapsed = ((now - last).num_milliseconds() as f64 / 1000.0).max(0.0);
        last = now;
        ever_healthy |= ok > 0;
        // A service that has answered before and now has no healthy task is down.
        if ok == 0 && ever_healthy && service_arn.is_some() {
            availability.add_downtime(now, elapsed);
            tracing::warn!(target = %name, tasks = ips.len(), "no ActiveGate task answered healthy");
        }
        let report = availability.report(now);
        board.target(&name, |t| {
            t.availability = Some(report.availability);
            t.downtime_seconds = report.downtime_seconds;
            t.error_budget_remaining_seconds = Some(report.budget_remaining_seconds);
            t.probes_ok += ok;
            t.probes_failed += failed;
            t.probe_latency_seconds_sum += latencies.iter().sum::<f64>();
        });
        board.probe_latencies(&name, &latencies);
        let encoded = availability.encode();
        if encoded != persisted
            && persisted_at.elapsed() >= PERSIST_EVERY.min(interval * 4)
            && let Some(arn) = &service_arn
            && aws.tag(arn, &[(TAG.into(), encoded.clone())]).await.is_ok()
        {
            persisted = encoded;
            persisted_at = tokio::time::Instant::now();
        }
    }
    let encoded = availability.encode();
    if encoded != persisted
        && let Some(arn) = &service_arn
    {
        let _ = aws.tag(arn, &[(TAG.into(), encoded)]).await;
    }
    board.add_aws_counts(aws.counts());
}
