//! One observer per (identity, region, endpoint, cluster) and config version: it reads the
//! cluster's tasks (one paginated ListTasks, DescribeTasks in batches of 100) and, every
//! [`SERVICES_EVERY`] polls or when a monitor needs them sooner, the services of its targets
//! (DescribeServices with their tags, in batches of 10), and hands every
//! target's availability monitor its own service's tasks and description from those reads, so
//! that the steady state's AWS calls grow with the clusters, not with the targets. Every
//! target of a config version subscribes before its observer starts, so the first poll covers
//! them all: 1,000 monitors start on ~100 DescribeServices, not 1,000. The rollout engine
//! still reads fresh state itself during a reconcile, right after its own writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::board::Board;
use super::context::{TargetContext, chain};
use super::monitor::REFRESH_EVERY;
use super::shutdown::{Shutdown, Stop};
use super::tasks::Tasks;
use crate::config::Target;
use crate::ecs::{
    Aws, ClientSettings, Clients, ServiceSummary, ServicesByName, TaskState, TasksByService,
};

/// One successful read of a cluster.
#[derive(Debug)]
pub struct Read {
    /// Counts the reads of this observer (from 1): a monitor takes each one once.
    seq: u64,
    /// When the read was asked for: the mesh orders destinations by it.
    asked_at: Instant,
    tasks: TasksByService,
}

/// One successful read of the cluster's watched services.
#[derive(Debug)]
pub struct ServicesRead {
    /// Counts these reads (from 1), apart from the tasks' reads: either can fail alone.
    seq: u64,
    /// When the first DescribeServices was sent: a tag written before then is in the read.
    asked_at: Instant,
    services: ServicesByName,
}

/// One service as a read of the observer saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSeen {
    /// When the read was asked for (see [`ServicesRead`]).
    pub asked_at: Instant,
    /// `None`: ECS has no such service (MISSING, or INACTIVE).
    pub service: Option<ServiceSummary>,
}

/// What an observer has seen so far.
#[derive(Debug, Default, Clone)]
struct Snapshot {
    /// Polls that ended, failed ones too: a monitor waiting for a fresh read waits for this.
    polls: u64,
    /// The newest successful read (a failed poll keeps the one before, as the monitor kept
    /// its addresses when its own read failed).
    read: Option<Arc<Read>>,
    /// The newest successful read of the services (likewise).
    services: Option<Arc<ServicesRead>>,
}

/// Whose calls an observer makes, and of which cluster: targets with the same key share it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    identity: String,
    region: String,
    endpoint_url: Option<String>,
    cluster: String,
}

impl Key {
    fn of(settings: &ClientSettings, cluster: &str) -> Key {
        // The same identity as the client cache's rate budgets: the role, the static key id
        // (never the secret), or the default chain.
        let identity = match (&settings.role, &settings.static_credentials) {
            (Some(role), _) => format!("role:{}", role.arn),
            (None, Some((id, _))) => format!("key:{id}"),
            (None, None) => "default".to_owned(),
        };
        Key {
            identity,
            region: settings.region.clone(),
            endpoint_url: settings.endpoint_url.clone(),
            cluster: cluster.to_owned(),
        }
    }
}

/// A monitor's subscription to its cluster's observer.
pub struct Feed {
    rx: watch::Receiver<Snapshot>,
    nudge: Arc<Notify>,
    /// The `seq` of the read taken last (0: none yet).
    taken: u64,
    /// The `seq` of the services' read taken last (0: none yet).
    services_taken: u64,
}

impl Feed {
    /// Whether the observer has ended a poll since this feed was made (or taken a read).
    pub fn has_polled(&self) -> bool {
        self.rx.borrow().polls > 0
    }

    /// Asks the observer for an early read (it polls at most once per shortest probe interval
    /// of its targets) and waits, at most `within`, until its next poll ended; at once when
    /// the observer has ended.
    pub async fn fresh(&mut self, within: Duration) {
        let before = self.rx.borrow().polls;
        self.nudge.notify_one();
        let _ = tokio::time::timeout(within, self.rx.wait_for(|s| s.polls > before)).await;
    }

    /// Asks the observer for an early read without waiting for it.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Waits, at most `within`, until the observer has a read of the services asked for at
    /// or after `not_before` (any read when `None`), asking for an early one when the newest
    /// is older; at once when the observer has ended.
    pub async fn services_since(&mut self, not_before: Option<Instant>, within: Duration) {
        let fresh = |s: &Snapshot| {
            s.services
                .as_ref()
                .is_some_and(|r| not_before.is_none_or(|t| r.asked_at >= t))
        };
        if fresh(&self.rx.borrow()) {
            return;
        }
        self.nudge.notify_one();
        let _ = tokio::time::timeout(within, self.rx.wait_for(fresh)).await;
    }

    /// How the newest read of the services saw `service`, when that read is newer than the
    /// one taken last; `None` also when the read said nothing of it.
    pub fn take_service(&mut self, service: &str) -> Option<ServiceSeen> {
        let snapshot = self.rx.borrow();
        let read = snapshot
            .services
            .as_ref()
            .filter(|r| r.seq > self.services_taken)?;
        self.services_taken = read.seq;
        let service = read.services.get(service)?.clone();
        Some(ServiceSeen {
            asked_at: read.asked_at,
            service,
        })
    }

    /// `service`'s tasks from the newest read when it is newer than the one taken last, and
    /// when it was asked for. A service with no RUNNING-desired task has none.
    pub fn take_new(&mut self, service: &str) -> Option<(Instant, Vec<TaskState>)> {
        let snapshot = self.rx.borrow();
        let read = snapshot.read.as_ref().filter(|r| r.seq > self.taken)?;
        self.taken = read.seq;
        let tasks = read.tasks.get(service).cloned().unwrap_or_default();
        Some((read.asked_at, tasks))
    }
}

/// One cluster's observer before it starts.
struct Pending {
    aws: Aws,
    cluster: String,
    /// The shortest probe interval of its targets.
    interval: Duration,
    /// The services of its targets.
    services: BTreeSet<String>,
    tx: watch::Sender<Snapshot>,
    nudge: Arc<Notify>,
}

/// The observers of one config version: made while the targets' monitors subscribe, then
/// started together, tracked by the supervisor and stopped with that version.
pub struct Observers {
    clients: Clients,
    pending: BTreeMap<Key, Pending>,
    stop: Stop,
}

impl Observers {
    pub fn new(clients: Clients) -> Observers {
        Observers {
            clients,
            pending: BTreeMap::new(),
            stop: Stop::new(),
        }
    }

    /// Subscribes `target`'s monitor to its cluster's observer (made on the first target of
    /// it); `None` when the monitor is off.
    pub async fn feed(&mut self, context: &TargetContext, target: &Target) -> Option<Feed> {
        let (aws, _) = context.monitor()?;
        let cluster = target.cluster.to_string();
        let interval = target.probe.interval_seconds.duration();
        let key = Key::of(aws.settings(), &cluster);
        if !self.pending.contains_key(&key) {
            // Its own `Aws`, so that its call counts are its own (added to the board when it
            // ends); it shares the SDK configuration and rate budgets of the identity.
            let aws = self.clients.aws(aws.settings().clone()).await;
            let (tx, _) = watch::channel(Snapshot::default());
            let pending = Pending {
                aws,
                cluster,
                interval,
                services: BTreeSet::new(),
                tx,
                nudge: Arc::new(Notify::new()),
            };
            self.pending.insert(key.clone(), pending);
        }
        let p = self
            .pending
            .get_mut(&key)
            .expect("inserted above when it was missing");
        p.interval = p.interval.min(interval);
        p.services.insert(target.service.to_string());
        Some(Feed {
            rx: p.tx.subscribe(),
            nudge: p.nudge.clone(),
            taken: 0,
            services_taken: 0,
        })
    }

    /// How many observers this config version has (one per key and cluster).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Starts every observer on `tasks`; they poll until the returned [`Stop`] fires (the next
    /// config version, or the exit) or until no monitor listens any more.
    pub fn start(self, tasks: &mut Tasks, board: &Arc<Board>) -> Stop {
        for p in self.pending.into_values() {
            let observer = Observer {
                aws: p.aws,
                cluster: p.cluster,
                interval: p.interval,
                services: p.services.into_iter().collect(),
                tx: p.tx,
                nudge: p.nudge,
                board: board.clone(),
            };
            tasks.spawn(observer.run(self.stop.subscribe()));
        }
        self.stop
    }
}

/// One cluster's observer while it runs.
struct Observer {
    aws: Aws,
    cluster: String,
    interval: Duration,
    services: Vec<String>,
    tx: watch::Sender<Snapshot>,
    nudge: Arc<Notify>,
    board: Arc<Board>,
}

impl Observer {
    /// Polls at once, then every [`REFRESH_EVERY`] probe intervals (the period at which a
    /// monitor used to list its own tasks), or one probe interval after the last poll began
    /// when a monitor asks for an early read (it has no task to probe, or took a lease over).
    async fn run(self, mut stop: Shutdown) {
        let period = self.interval * REFRESH_EVERY;
        let mut seq = Seqs::default();
        let mut nudged = false;
        loop {
            let began = Instant::now();
            tokio::select! {
                _ = stop.recv() => break,
                _ = self.tx.closed() => break,
                _ = self.poll(&mut seq, began, nudged) => {}
            }
            nudged = tokio::select! {
                _ = stop.recv() => break,
                _ = self.tx.closed() => break,
                _ = tokio::time::sleep_until(began + period) => false,
                _ = async {
                    self.nudge.notified().await;
                    tokio::time::sleep_until(began + self.interval).await;
                } => true,
            };
        }
        self.board.add_aws_counts(self.aws.counts());
    }

    /// One read of the cluster's tasks and, when [`Seqs::services_due`], one of its
    /// services, handed to every subscriber; a failed one is logged and retried on the next
    /// period, the last good read staying what the monitors see.
    async fn poll(&self, seq: &mut Seqs, asked_at: Instant, nudged: bool) {
        let read = match self.aws.cluster_tasks(&self.cluster).await {
            Ok(tasks) => {
                seq.tasks += 1;
                Some(Arc::new(Read {
                    seq: seq.tasks,
                    asked_at,
                    tasks,
                }))
            }
            Err(e) => {
                tracing::warn!(cluster = %self.cluster, error = %chain(&e), "cannot read the cluster's tasks; the monitors keep the last read");
                None
            }
        };
        let tasks = read.as_ref().map(|r| &r.tasks);
        let services = if seq.services_due(nudged, tasks, &self.services) {
            seq.skipped = 0;
            self.read_services(seq).await
        } else {
            seq.skipped += 1;
            None
        };
        self.tx.send_modify(|s| {
            s.polls += 1;
            if read.is_some() {
                s.read = read;
            }
            if services.is_some() {
                s.services = services;
            }
        });
    }

    /// One read of the watched services; `None` when it failed (logged).
    async fn read_services(&self, seq: &mut Seqs) -> Option<Arc<ServicesRead>> {
        let asked_at = Instant::now();
        match self
            .aws
            .cluster_services(&self.cluster, &self.services)
            .await
        {
            Ok(services) => {
                seq.services += 1;
                seq.incomplete = self
                    .services
                    .iter()
                    .any(|s| !matches!(services.get(s), Some(Some(_))));
                Some(Arc::new(ServicesRead {
                    seq: seq.services,
                    asked_at,
                    services,
                }))
            }
            Err(e) => {
                seq.incomplete = true;
                tracing::warn!(cluster = %self.cluster, error = %chain(&e), "cannot read the cluster's services; the monitors keep the last read");
                None
            }
        }
    }
}

/// A poll reads the services (their tags: the downtime another replica's monitor wrote)
/// at least every this many polls; more often only when a monitor needs it (see
/// [`Seqs::services_due`]). ARNs do not change and a holder's monitor keeps its own count,
/// so between those reads the services' calls would tell nothing new.
pub(super) const SERVICES_EVERY: u64 = 4;

/// The reads an observer has made, of each kind, and what decides the next services read.
#[derive(Debug, Default)]
struct Seqs {
    tasks: u64,
    services: u64,
    /// Polls since the last services read (or its attempt).
    skipped: u64,
    /// The last services read failed, or did not find every watched service.
    incomplete: bool,
}

impl Seqs {
    /// Whether this poll reads the services too: the first poll; one a monitor asked for
    /// (it starts, or took a lease over, and waits for the tags); while the last read failed
    /// or a service was missing (it may be created any moment); when a watched service has
    /// no running task in this poll's read of the tasks (scaled in, being replaced, or
    /// deleted: its monitor must learn which); and at least every [`SERVICES_EVERY`] polls.
    fn services_due(
        &self,
        nudged: bool,
        tasks: Option<&TasksByService>,
        watched: &[String],
    ) -> bool {
        self.services == 0
            || nudged
            || self.incomplete
            || self.skipped + 1 >= SERVICES_EVERY
            || tasks.is_some_and(|t| watched.iter().any(|s| t.get(s).is_none_or(Vec::is_empty)))
    }
}

/// A feed without an observer, for the monitor's tests: the test publishes the reads.
#[cfg(test)]
pub(super) mod testing {
    use super::*;

    pub struct Publisher {
        tx: watch::Sender<Snapshot>,
        seq: u64,
        nudge: Arc<Notify>,
    }

    pub fn feed() -> (Feed, Publisher) {
        let (tx, rx) = watch::channel(Snapshot::default());
        let nudge = Arc::new(Notify::new());
        let feed = Feed {
            rx,
            nudge: nudge.clone(),
            taken: 0,
            services_taken: 0,
        };
        (feed, Publisher { tx, seq: 0, nudge })
    }

    impl Publisher {
        /// Waits until a monitor asks for an early read.
        pub async fn nudged(&self) {
            self.nudge.notified().await;
        }

        /// A read of the tasks asked for at `asked_at`.
        pub fn tasks(&mut self, asked_at: Instant, tasks: TasksByService) {
            self.seq += 1;
            let read = Arc::new(Read {
                seq: self.seq,
                asked_at,
                tasks,
            });
            self.tx.send_modify(|s| {
                s.polls += 1;
                s.read = Some(read);
            });
        }

        /// A read of the services asked for at `asked_at`.
        pub fn services(&mut self, asked_at: Instant, services: ServicesByName) {
            self.seq += 1;
            let read = Arc::new(ServicesRead {
                seq: self.seq,
                asked_at,
                services,
            });
            self.tx.send_modify(|s| {
                s.polls += 1;
                s.services = Some(read);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched() -> Vec<String> {
        vec!["ag-a".to_owned(), "ag-b".to_owned()]
    }

    /// Both watched services with a running task each.
    fn running() -> TasksByService {
        watched()
            .into_iter()
            .map(|s| (s, vec![crate::ecs::TaskState::running_at("t1", "10.0.0.1")]))
            .collect()
    }

    #[test]
    fn the_services_are_read_first_then_every_few_polls_or_when_a_monitor_needs_them() {
        let w = watched();
        let all = running();
        let mut s = Seqs::default();
        assert!(s.services_due(false, Some(&all), &w), "the first poll");
        s.services = 1;
        for skipped in 0..SERVICES_EVERY - 1 {
            s.skipped = skipped;
            assert_eq!(
                s.services_due(false, Some(&all), &w),
                skipped + 1 == SERVICES_EVERY,
                "{skipped} polls since the last read"
            );
        }
        s.skipped = 0;
        assert!(!s.services_due(false, Some(&all), &w));
        assert!(
            !s.services_due(false, None, &w),
            "a failed read of the tasks alone"
        );
        assert!(s.services_due(true, Some(&all), &w), "a monitor asked");
        let mut gone = all.clone();
        gone.remove("ag-b");
        assert!(
            s.services_due(false, Some(&gone), &w),
            "a service without tasks"
        );
        gone.insert("ag-b".into(), Vec::new());
        assert!(
            s.services_due(false, Some(&gone), &w),
            "an empty entry alike"
        );
        s.incomplete = true;
        assert!(
            s.services_due(false, Some(&all), &w),
            "a service missing last time"
        );
    }
}
