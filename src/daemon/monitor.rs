//! The availability monitor: probes every running task of a target on the
//! probe interval — between rollouts and during them — and counts the time in
//! which none answered healthy.
//!
//! It reads its service's tasks, ARN and tags from its cluster's observer (no call of its
//! own); without one it makes its own calls. With leases only the holder's monitor writes the
//! downtime tag; one that takes the lease over continues from the tag (`count`).

mod count;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Options;
use super::availability::{SINCE_TAG, TAG};
use super::board::Board;
use super::context::TargetContext;
use super::lease::Fleet;
use super::mesh::{Cause, MeshSync};
use super::observer::{Feed, ServiceSeen};
use super::shutdown::Shutdown;
use super::tasks::Done;
use crate::config::Target;
use crate::ecs::Aws;
use crate::health::Prober;
use count::Count;

/// Task IPs are refreshed from ECS every this many probe rounds (the cluster's observer reads
/// every this many probe intervals).
pub(super) const REFRESH_EVERY: u32 = 4;

/// What one probe of every known task found.
#[derive(Debug, Default)]
struct Probed {
    ok: u64,
    failed: u64,
    /// Failures that were timeouts.
    timed_out: u64,
    /// Of every probe, in seconds.
    latencies: Vec<f64>,
}

/// Downtime is written to the service tag at most this often (and at shutdown).
const PERSIST_EVERY: Duration = Duration::from_secs(60);

/// Watches `target` with the context's clients and prober until `stop`; writes the downtime
/// it counted before it returns. Starts once `before` (the previous config version's monitor)
/// has ended, so that it reads what that one wrote last. With `lease`, it writes (tags, the
/// mesh) only while this replica holds the target's lease.
#[allow(clippy::too_many_arguments)] // what one target's monitor is started with, each once
pub fn watch(
    context: Arc<TargetContext>,
    target: Target,
    board: Arc<Board>,
    options: Options,
    mesh: Option<Arc<MeshSync>>,
    stop: Shutdown,
    before: Option<Done>,
    lease: Option<Arc<Fleet>>,
    feed: Option<Feed>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    // Built now, on the heap, and not in the future: what the future holds (it lives as long
    // as the daemon, one per target) is a pointer, not the target's settings (an async fn
    // would keep its `target` argument for its whole life) and the monitor.
    let monitor = context.monitor().map(|(aws, prober)| {
        let writes = match lease {
            Some(fleet) => Writes::Lease {
                key: super::lease::key_of(&target),
                fleet,
            },
            None => Writes::Always,
        };
        Box::new(Monitor::new(
            aws, prober, target, board, options, mesh, writes, feed,
        ))
    });
    run(monitor, stop, before)
}

/// The monitor's life: after `before` has ended, its start, then a round every interval
/// until `stop`, then its last write.
async fn run(monitor: Option<Box<Monitor>>, mut stop: Shutdown, before: Option<Done>) {
    // A read of the tags from before the previous monitor's last write would undo it.
    let mut not_before = None;
    if let Some(b) = before {
        b.wait().await;
        not_before = Some(Instant::now());
    }
    // The context said why when it was built.
    let Some(mut m) = monitor else {
        return;
    };
    // Each step boxed: inline, the largest (a round's probes, reads and writes) would set
    // the size of this future, which lives as long as the daemon, for each target.
    Box::pin(m.start(not_before)).await;
    // The first wait is a random part of the interval: targets' rounds spread over it
    // rather than all starting together.
    let mut wait = m.interval.mul_f64(fastrand::f64());
    loop {
        tokio::select! {
            _ = stop.recv() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = m.interval;
        Box::pin(m.round()).await;
    }
    Box::pin(m.finish()).await;
}

/// Whether the monitor may write the target's tags and mesh destination: always without
/// leases; with them, only while this replica holds the target's lease (its holder writes).
enum Writes {
    Always,
    Lease {
        fleet: Arc<Fleet>,
        key: String,
    },
    /// A test's switch for a lease.
    #[cfg(test)]
    Switch(Arc<std::sync::atomic::AtomicBool>),
}

impl Writes {
    fn allowed(&self) -> bool {
        match self {
            Writes::Always => true,
            Writes::Lease { fleet, key } => fleet.may_write(key),
            #[cfg(test)]
            Writes::Switch(on) => on.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// The lease just became this monitor's: its first write waits for a read of the tags asked
/// for after `at` (the previous holder's last write is in it), until `until` at most.
#[derive(Debug, Clone, Copy)]
struct Takeover {
    at: Instant,
    until: Instant,
}

impl Takeover {
    /// From now until a little more than one observer period (it polls every
    /// [`REFRESH_EVERY`] probe intervals, one interval after a nudge).
    fn from_now(interval: Duration) -> Takeover {
        let at = Instant::now();
        Takeover {
            at,
            until: at + interval * (REFRESH_EVERY + 1),
        }
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
    /// Known while ECS has the service (and its tags were read).
    service_arn: Option<String>,
    count: Count,
    /// A read of the tags asked for before this is not taken as the first (`watch`).
    not_before: Option<Instant>,
    ips: Vec<String>,
    /// For the mesh: when ECS last listed the tasks, and which of them ever answered healthy (a
    /// single failed probe does not take a task out of the destination; leaving ECS does).
    listed_at: tokio::time::Instant,
    answered: BTreeSet<String>,
    /// Until one task has answered healthy, the service is being created, not down.
    ever_healthy: bool,
    round: u32,
    last: chrono::DateTime<chrono::Utc>,
    persisted_at: tokio::time::Instant,
    /// The cluster's observer, which reads the tasks for every target of the cluster (`None`:
    /// the monitor reads its own service's tasks).
    feed: Option<Feed>,
    /// Mesh updates in flight, awaited before the monitor ends.
    syncs: JoinSet<()>,
    writes: Writes,
    /// Whether `writes` allowed writing at the last look.
    writing: bool,
    takeover: Option<Takeover>,
    /// When observation started, while no replica had written it (no lease at start).
    since_unwritten: Option<String>,
}

impl Monitor {
    #[allow(clippy::too_many_arguments)] // as `watch`
    fn new(
        aws: Aws,
        prober: Prober,
        target: Target,
        board: Arc<Board>,
        options: Options,
        mesh: Option<Arc<MeshSync>>,
        writes: Writes,
        feed: Option<Feed>,
    ) -> Monitor {
        let now = options.clock.now();
        let writing = writes.allowed();
        let interval = target.probe.interval_seconds.duration();
        // A lease held already may have been taken over just now: the first write waits for
        // a read of the tags asked for from here on, as after any takeover.
        let takeover = (writing && matches!(writes, Writes::Lease { .. }))
            .then(|| Takeover::from_now(interval));
        Monitor {
            aws,
            prober,
            name: target.name.to_string(),
            cluster: target.cluster.to_string(),
            service: target.service.to_string(),
            board,
            mesh,
            interval,
            service_arn: None,
            count: Count::new(target.slo_percent.0 / 100.0, now),
            not_before: None,
            ips: Vec::new(),
            listed_at: Instant::now(),
            answered: BTreeSet::new(),
            ever_healthy: false,
            round: 0,
            last: now,
            persisted_at: Instant::now(),
            feed,
            syncs: JoinSet::new(),
            options,
            writes,
            writing,
            takeover,
            since_unwritten: None,
        }
    }

    /// Picks up what earlier runs of the daemon counted: the service's tags from the
    /// observer's first read asked for at or after `not_before` (waited for at most one of
    /// its periods; a later read is taken when it comes), else from the monitor's own call.
    async fn start(&mut self, not_before: Option<Instant>) {
        self.not_before = not_before;
        if let Some(feed) = &mut self.feed {
            feed.services_since(not_before, self.interval * REFRESH_EVERY)
                .await;
            self.follow_feed();
        } else {
            self.read_service().await;
        }
        if self.writing {
            self.write_since().await;
        }
    }

    /// The monitor's own DescribeServices (no observer, or none of its reads yet).
    async fn read_service(&mut self) {
        let asked_at = Instant::now();
        if let Ok(found) = self
            .aws
            .describe_service(&self.cluster, &self.service)
            .await
        {
            self.seen(ServiceSeen {
                asked_at,
                service: found.map(Into::into),
            });
        }
    }

    /// `at` on the wall clock the downtime is counted on.
    fn wall(&self, at: Instant) -> chrono::DateTime<chrono::Utc> {
        let ago = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
        self.options.clock.now() - ago
    }

    /// Takes a read of the service: its ARN, when observation started and the downtime tag
    /// (the count is based on them at the first read, and follows the tag while another
    /// replica writes it).
    fn seen(&mut self, seen: ServiceSeen) {
        let Some(svc) = seen.service else {
            // Not created yet, or deleted: nothing to count or tag.
            self.service_arn = None;
            self.takeover = None;
            return;
        };
        let read_at = self.wall(seen.asked_at);
        let since = svc
            .tags
            .get(SINCE_TAG)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&chrono::Utc));
        let downtime = svc.tags.get(TAG).map_or("", String::as_str);
        if self.service_arn.is_none() {
            if self.not_before.is_some_and(|t| seen.asked_at < t) {
                return;
            }
            let now = self.options.clock.now();
            if since.is_none() {
                // Written at once, or by the first persist under the lease.
                self.since_unwritten = Some(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            self.count.adopt(since.unwrap_or(now), downtime, read_at);
            self.ever_healthy |= self.count.report(now).downtime_seconds > 0.0;
            self.service_arn = Some(svc.arn);
            if self.takeover.is_some_and(|t| seen.asked_at >= t.at) {
                self.takeover = None;
            }
            return;
        }
        if let Some(since) = since.filter(|_| self.since_unwritten.is_some()) {
            // Another replica wrote it first.
            self.since_unwritten = None;
            self.count.set_since(since);
        }
        self.count.saw(downtime, read_at);
        if !self.writing {
            self.count.rebase();
        } else if self.takeover.is_some_and(|t| seen.asked_at >= t.at) {
            self.count.rebase();
            self.takeover = None;
        }
    }

    /// One probe round: refresh the tasks now and then, probe each, count, show, persist.
    async fn round(&mut self) {
        // A read of the observer costs no call: each new one is taken at once.
        if self.feed.is_some() || self.round.is_multiple_of(REFRESH_EVERY) || self.ips.is_empty() {
            self.refresh().await;
        }
        self.round = self.round.wrapping_add(1);
        let mut probed = self.probe_all().await;
        if probed.ok == 0 && self.ever_healthy {
            // The tasks may have been replaced since they were last read (a rollout stops the
            // old ones): before counting downtime, read them again and probe what runs now.
            // Probes of addresses that no longer run are not failures of the service.
            let before = self.ips.clone();
            self.reread().await;
            if self.ips != before {
                probed = self.probe_all().await;
            }
        }
        let Probed {
            ok,
            failed,
            timed_out,
            latencies,
        } = probed;
        self.follow_mesh();
        let now = self.options.clock.now();
        let from = std::mem::replace(&mut self.last, now);
        self.ever_healthy |= ok > 0;
        // A service that has answered before and now has no healthy task is down, unless
        // every probe timed out while this daemon's event loop ran late: then the daemon was
        // too busy to tell (a reload of a large config, say), which is not the ActiveGates'
        // downtime, as it is no verdict on a version.
        let late = self.prober.load().event_loop_lateness();
        if ok == 0 && self.ever_healthy && self.service_arn.is_some() {
            if failed > 0 && timed_out == failed && late > crate::health::load::LATE_EVENT_LOOP {
                tracing::warn!(target = %self.name, tasks = self.ips.len(), late_s = late.as_secs_f64(), "no ActiveGate task answered in time while the daemon's event loop ran late; not counted as downtime");
            } else {
                self.count.add_downtime(from, now);
                tracing::warn!(target = %self.name, tasks = self.ips.len(), "no ActiveGate task answered healthy");
            }
        }
        let report = self.count.report(now);
        self.board.target(&self.name, |t| {
            t.availability = Some(report.availability);
            t.downtime_seconds = report.downtime_seconds;
            t.error_budget_remaining_seconds = Some(report.budget_remaining_seconds);
            t.probes_ok += ok;
            t.probes_failed += failed;
            t.probe_latency_seconds_sum += latencies.iter().sum::<f64>();
        });
        self.board.probe_latencies(&self.name, &latencies);
        self.follow_lease();
        if self.persisted_at.elapsed() >= PERSIST_EVERY.min(self.interval * 4) {
            self.persist().await;
        }
        // Mesh updates that ended are not kept.
        while self.syncs.try_join_next().is_some() {}
    }

    /// The running tasks' addresses from ECS, and the service's tags from each new read of
    /// the observer (without one, the service until it is known).
    async fn refresh(&mut self) {
        if let Some((asked_at, tasks)) = self.tasks().await {
            self.took(asked_at, tasks);
        }
        if self.feed.is_some() {
            self.follow_feed();
        } else if self.service_arn.is_none() {
            self.read_service().await;
        }
    }

    /// Takes the observer's newest read of the service, when it has a new one.
    fn follow_feed(&mut self) {
        let service = &self.service;
        if let Some(seen) = self.feed.as_mut().and_then(|f| f.take_service(service)) {
            self.seen(seen);
        }
    }

    /// Notices the lease becoming this replica's: until then another replica's monitor
    /// wrote the downtime tag, and the first write here must continue from its last value
    /// (read after the takeover), not overwrite it with this monitor's own count.
    fn follow_lease(&mut self) {
        let allowed = self.writes.allowed();
        if allowed && !self.writing {
            self.takeover = Some(Takeover::from_now(self.interval));
            if let Some(feed) = &self.feed {
                feed.nudge();
            }
        } else if !allowed {
            self.takeover = None;
        }
        self.writing = allowed;
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

    /// Reads the tasks again before a round without a healthy answer counts: a fresh read of
    /// the observer (asked for now, waited for at most one probe interval), or when none came
    /// in that time (the observer is behind, its calls waiting for the rate budget) or there
    /// is no observer, the monitor's own ListTasks and DescribeTasks.
    async fn reread(&mut self) {
        let fresh = match &mut self.feed {
            Some(feed) => {
                feed.fresh(self.interval).await;
                feed.take_new(&self.service)
            }
            None => None,
        };
        let read = match fresh {
            Some(read) => Some(read),
            None => {
                let asked_at = tokio::time::Instant::now();
                let tasks = self.aws.tasks(&self.cluster, &self.service, false).await;
                tasks.ok().map(|t| (asked_at, t))
            }
        };
        if let Some((asked_at, tasks)) = read {
            self.took(asked_at, tasks);
        }
        if self.feed.is_some() {
            self.follow_feed();
        }
    }

    /// Takes a read of the service's tasks: their addresses, and when they were asked for.
    fn took(&mut self, asked_at: tokio::time::Instant, tasks: Vec<crate::ecs::TaskState>) {
        self.ips = crate::ecs::running_ips(tasks, None);
        self.listed_at = asked_at;
        let ips = &self.ips;
        self.answered.retain(|a| ips.contains(a));
    }

    /// Probes every known task at once.
    async fn probe_all(&mut self) -> Probed {
        let mut probes = JoinSet::new();
        for ip in &self.ips {
            let (prober, ip) = (self.prober.clone(), ip.clone());
            probes.spawn(async move {
                let _slot = prober.slot().await;
                (prober.probe(&ip).await, ip)
            });
        }
        let mut probed = Probed {
            latencies: Vec::with_capacity(self.ips.len()),
            ..Probed::default()
        };
        while let Some(Ok((p, ip))) = probes.join_next().await {
            probed.latencies.push(p.latency.as_secs_f64());
            match p.result {
                Ok(()) => {
                    probed.ok += 1;
                    self.answered.insert(ip);
                }
                Err(e) => {
                    probed.failed += 1;
                    if e == crate::health::ProbeFailure::Timeout {
                        probed.timed_out += 1;
                    }
                }
            }
        }
        probed
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

    /// Writes the downtime to the service tag when it changed since the last write (or the
    /// last read of another replica's write).
    async fn persist(&mut self) {
        // The lease may have ended since the round looked (at the exit, say).
        self.follow_lease();
        if !self.writing || !self.took_over().await {
            return;
        }
        self.write_since().await;
        let encoded = self.count.encode();
        if encoded == self.count.tag_value() {
            return;
        }
        if let Some(arn) = &self.service_arn
            && self
                .aws
                .tag(arn, &[(TAG.into(), encoded.clone())])
                .await
                .is_ok()
        {
            let now = self.options.clock.now();
            self.count.wrote(encoded, now);
            self.persisted_at = Instant::now();
        }
    }

    /// Whether a takeover's read of the tags is behind the monitor (none pending): the
    /// observer's, else the monitor's own; without a fresh read in time, the newest one the
    /// count follows (its tag was read at most one observer period before the takeover).
    async fn took_over(&mut self) -> bool {
        let Some(t) = self.takeover else {
            return true;
        };
        if self.feed.is_none() {
            self.read_service().await;
        } else if Instant::now() >= t.until {
            self.count.rebase();
            self.takeover = None;
        }
        self.takeover.is_none()
    }

    /// When observation started, while no replica has written it.
    async fn write_since(&mut self) {
        if let (Some(arn), Some(since)) = (&self.service_arn, &self.since_unwritten)
            && self
                .aws
                .tag(arn, &[(SINCE_TAG.into(), since.clone())])
                .await
                .is_ok()
        {
            self.since_unwritten = None;
        }
    }

    /// The last write, before the daemon exits or the next config's monitor starts.
    async fn finish(mut self) {
        if self.feed.is_some() && self.takeover.take().is_some() {
            // No time to wait for a read: the count follows the newest one.
            self.count.rebase();
        }
        self.persist().await;
        while self.syncs.join_next().await.is_some() {}
        self.board.add_aws_counts(self.aws.counts());
    }
}

#[cfg(test)]
mod tests;
