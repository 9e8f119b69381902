//! The availability monitor: probes every running task of a target on the
//! probe interval — between rollouts and during them — and counts the time in
//! which none answered healthy.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::Options;
use super::availability::{Availability, SINCE_TAG, TAG};
use super::board::Board;
use super::context::TargetContext;
use super::lease::Fleet;
use super::mesh::{Cause, MeshSync};
use super::observer::Feed;
use super::shutdown::Shutdown;
use super::tasks::Done;
use crate::config::Target;
use crate::ecs::Aws;
use crate::health::Prober;

/// Task IPs are refreshed from ECS every this many probe rounds (the cluster's observer reads
/// every this many probe intervals).
pub(super) const REFRESH_EVERY: u32 = 4;
/// Downtime is written to the service tag at most this often (and at shutdown).
const PERSIST_EVERY: Duration = Duration::from_secs(60);

/// Watches `target` with the context's clients and prober until `stop`; writes the downtime
/// it counted before it returns. Starts once `before` (the previous config version's monitor)
/// has ended, so that it reads what that one wrote last. With `lease`, it writes (tags, the
/// mesh) only while this replica holds the target's lease.
#[allow(clippy::too_many_arguments)] // what one target's monitor is started with, each once
pub async fn watch(
    context: Arc<TargetContext>,
    target: Target,
    board: Arc<Board>,
    options: Options,
    mesh: Option<Arc<MeshSync>>,
    mut stop: Shutdown,
    before: Option<Done>,
    lease: Option<Arc<Fleet>>,
    feed: Option<Feed>,
) {
    if let Some(b) = before {
        b.wait().await;
    }
    let Some((aws, prober)) = context.monitor() else {
        // The context said why when it was built.
        return;
    };
    let writes = Writes {
        lease,
        key: super::lease::key_of(&target),
    };
    let mut m = Monitor::start(aws, prober, target, board, options, mesh, writes).await;
    m.feed = feed;
    // The first wait is a random part of the interval: targets' rounds spread over it
    // rather than all starting together.
    let mut wait = m.interval.mul_f64(fastrand::f64());
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = m.interval;
        m.round().await;
    }
    m.finish().await;
}

/// Whether the monitor may write the target's tags and mesh destination: always without
/// leases; with them, only while this replica holds the target's lease (its holder writes).
struct Writes {
    lease: Option<Arc<Fleet>>,
    key: String,
}

impl Writes {
    fn allowed(&self) -> bool {
        self.lease.as_ref().is_none_or(|f| f.may_write(&self.key))
    }
}

/// One target's monitor between its start and its stop.
struct Monitor {
    aws: Aws,
    prober: Prober,
    name: String,
    cluster: String,
    service: String,
    board: Arc<Board>,
    options: Options,
    mesh: Option<Arc<MeshSync>>,
    interval: Duration,
    service_arn: Option<String>,
    availability: Availability,
    ips: Vec<String>,
    /// For the mesh: when ECS last listed the tasks, and which of them ever answered healthy (a
    /// single failed probe does not take a task out of the destination; leaving ECS does).
    listed_at: tokio::time::Instant,
    answered: BTreeSet<String>,
    /// Until one task has answered healthy, the service is being created, not down.
    ever_healthy: bool,
    round: u32,
    last: chrono::DateTime<chrono::Utc>,
    persisted: String,
    persisted_at: tokio::time::Instant,
    /// The cluster's observer, which reads the tasks for every target of the cluster (`None`:
    /// the monitor reads its own service's tasks).
    feed: Option<Feed>,
    /// Mesh updates in flight, awaited before the monitor ends.
    syncs: JoinSet<()>,
    writes: Writes,
    /// When observation started, while no replica had written it (no lease at start).
    since_unwritten: Option<String>,
}

impl Monitor {
    /// Picks up what earlier runs of the daemon counted.
    async fn start(
        aws: Aws,
        prober: Prober,
        target: Target,
        board: Arc<Board>,
        options: Options,
        mesh: Option<Arc<MeshSync>>,
        writes: Writes,
    ) -> Monitor {
        let (cluster, service) = (target.cluster.to_string(), target.service.to_string());
        let slo = target.slo_percent.0 / 100.0;
        let clock = options.clock.clone();
        let mut service_arn = None;
        let mut since_unwritten = None;
        let mut availability = Availability::new(slo, clock.now());
        if let Ok(Some(svc)) = aws.describe_service(&cluster, &service).await {
            let since = svc
                .tags
                .get(SINCE_TAG)
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&chrono::Utc));
            if since.is_none() {
                let now = clock
                    .now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                if writes.allowed() {
                    let _ = aws.tag(&svc.arn, &[(SINCE_TAG.into(), now)]).await;
                } else {
                    // Written by the first persist under the lease.
                    since_unwritten = Some(now);
                }
            }
            availability = Availability::decode(
                slo,
                since.unwrap_or_else(|| clock.now()),
                svc.tags.get(TAG).map_or("", String::as_str),
            );
            service_arn = Some(svc.arn);
        }
        let ever_healthy = availability.report(clock.now()).downtime_seconds > 0.0;
        let persisted = availability.encode();
        Monitor {
            aws,
            prober,
            name: target.name.to_string(),
            cluster,
            service,
            board,
            mesh,
            interval: target.probe.interval_seconds.duration(),
            service_arn,
            availability,
            ips: Vec::new(),
            listed_at: tokio::time::Instant::now(),
            answered: BTreeSet::new(),
            ever_healthy,
            round: 0,
            last: clock.now(),
            persisted,
            persisted_at: tokio::time::Instant::now(),
            feed: None,
            syncs: JoinSet::new(),
            options,
            writes,
            since_unwritten,
        }
    }

    /// One probe round: refresh the tasks now and then, probe each, count, show, persist.
    async fn round(&mut self) {
        // A read of the observer costs no call: each new one is taken at once.
        if self.feed.is_some() || self.round.is_multiple_of(REFRESH_EVERY) || self.ips.is_empty() {
            self.refresh().await;
        }
        self.round = self.round.wrapping_add(1);
        let (ok, failed, latencies) = self.probe_all().await;
        self.follow_mesh();
        let now = self.options.clock.now();
        let elapsed = ((now - self.last).num_milliseconds() as f64 / 1000.0).max(0.0);
        self.last = now;
        self.ever_healthy |= ok > 0;
        // A service that has answered before and now has no healthy task is down.
        if ok == 0 && self.ever_healthy && self.service_arn.is_some() {
            self.availability.add_downtime(now, elapsed);
            tracing::warn!(target = %self.name, tasks = self.ips.len(), "no ActiveGate task answered healthy");
        }
        let report = self.availability.report(now);
        self.board.target(&self.name, |t| {
            t.availability = Some(report.availability);
            t.downtime_seconds = report.downtime_seconds;
            t.error_budget_remaining_seconds = Some(report.budget_remaining_seconds);
            t.probes_ok += ok;
            t.probes_failed += failed;
            t.probe_latency_seconds_sum += latencies.iter().sum::<f64>();
        });
        self.board.probe_latencies(&self.name, &latencies);
        if self.persisted_at.elapsed() >= PERSIST_EVERY.min(self.interval * 4) {
            self.persist().await;
        }
        // Mesh updates that ended are not kept.
        while self.syncs.try_join_next().is_some() {}
    }

    /// The running tasks' addresses from ECS (and the service's ARN until it is known).
    async fn refresh(&mut self) {
        if let Some((asked_at, tasks)) = self.tasks().await {
            self.ips = crate::ecs::running_ips(tasks, None);
            self.listed_at = asked_at;
            let ips = &self.ips;
            self.answered.retain(|a| ips.contains(a));
        }
        if self.service_arn.is_none() {
            self.service_arn = self
                .aws
                .describe_service(&self.cluster, &self.service)
                .await
                .ok()
                .flatten()
                .map(|s| s.arn);
        }
    }

    /// The service's tasks and when they were asked for: a new read of the cluster's observer
    /// (the first one, or a fresh one while no task is known, waited for at most one probe
    /// interval), else ECS's answer to the monitor's own ListTasks and DescribeTasks.
    async fn tasks(&mut self) -> Option<(tokio::time::Instant, Vec<crate::ecs::TaskState>)> {
        let Some(feed) = &mut self.feed else {
            let asked_at = tokio::time::Instant::now();
            let tasks = self.aws.tasks(&self.cluster, &self.service, false).await;
            return tasks.ok().map(|t| (asked_at, t));
        };
        if self.ips.is_empty() || !feed.has_polled() {
            feed.fresh(self.interval).await;
        }
        feed.take_new(&self.service)
    }

    /// Probes every known task at once; returns (healthy, failed, latencies in seconds).
    async fn probe_all(&mut self) -> (u64, u64, Vec<f64>) {
        let mut probes = JoinSet::new();
        for ip in &self.ips {
            let (prober, ip) = (self.prober.clone(), ip.clone());
            probes.spawn(async move {
                let _slot = prober.slot().await;
                (prober.probe(&ip).await, ip)
            });
        }
        let (mut ok, mut failed) = (0u64, 0u64);
        let mut latencies = Vec::with_capacity(self.ips.len());
        while let Some(Ok((p, ip))) = probes.join_next().await {
            latencies.push(p.latency.as_secs_f64());
            if p.result.is_ok() {
                ok += 1;
                self.answered.insert(ip);
            } else {
                failed += 1
            }
        }
        (ok, failed, latencies)
    }

    /// A task replaced by ECS, or one started by a rollout, changes the mesh destination: the
    /// running tasks that have answered healthy.
    fn follow_mesh(&mut self) {
        let serving: Vec<String> = self
            .ips
            .iter()
            .filter(|ip| self.answered.contains(*ip))
            .cloned()
            .collect();
        let Some(m) = self
            .mesh
            .as_ref()
            .filter(|m| m.follows_tasks() && !serving.is_empty() && self.writes.allowed())
        else {
            return;
        };
        let (m, board, listed_at) = (m.clone(), self.board.clone(), self.listed_at);
        self.syncs.spawn(async move {
            m.sync(&serving, listed_at, &board, Cause::TasksChanged)
                .await
        });
    }

    /// Writes the downtime to the service tag when it changed since the last write.
    async fn persist(&mut self) {
        if !self.writes.allowed() {
            return;
        }
        if let (Some(arn), Some(since)) = (&self.service_arn, &self.since_unwritten)
            && self
                .aws
                .tag(arn, &[(SINCE_TAG.into(), since.clone())])
                .await
                .is_ok()
        {
            self.since_unwritten = None;
        }
        let encoded = self.availability.encode();
        if encoded == self.persisted {
            return;
        }
        if let Some(arn) = &self.service_arn
            && self
                .aws
                .tag(arn, &[(TAG.into(), encoded.clone())])
                .await
                .is_ok()
        {
            self.persisted = encoded;
            self.persisted_at = tokio::time::Instant::now();
        }
    }

    /// The last write, before the daemon exits or the next config's monitor starts.
    async fn finish(mut self) {
        self.persist().await;
        while self.syncs.join_next().await.is_some() {}
        self.board.add_aws_counts(self.aws.counts());
    }
}
