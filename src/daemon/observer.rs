//! One observer per (identity, region, endpoint, cluster) and config version: it reads the
//! cluster's tasks (one paginated ListTasks, DescribeTasks in batches of 100) and hands every
//! target's availability monitor its own service's tasks from that one read, so that the
//! steady state's AWS calls grow with the clusters, not with the targets. The rollout engine
//! still reads fresh state itself during a reconcile, right after its own writes.

use std::collections::BTreeMap;
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
use crate::ecs::{Aws, ClientSettings, Clients, TaskState, TasksByService};

/// One successful read of a cluster.
#[derive(Debug)]
pub struct Read {
    /// Counts the reads of this observer (from 1): a monitor takes each one once.
    seq: u64,
    /// When the read was asked for: the mesh orders destinations by it.
    asked_at: Instant,
    tasks: TasksByService,
}

/// What an observer has seen so far.
#[derive(Debug, Default, Clone)]
struct Snapshot {
    /// Polls that ended, failed ones too: a monitor waiting for a fresh read waits for this.
    polls: u64,
    /// The newest successful read (a failed poll keeps the one before, as the monitor kept
    /// its addresses when its own read failed).
    read: Option<Arc<Read>>,
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
        Some(Feed {
            rx: p.tx.subscribe(),
            nudge: p.nudge.clone(),
            taken: 0,
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
    tx: watch::Sender<Snapshot>,
    nudge: Arc<Notify>,
    board: Arc<Board>,
}

impl Observer {
    /// Polls at once, then every [`REFRESH_EVERY`] probe intervals (the period at which a
    /// monitor used to list its own tasks), or one probe interval after the last poll began
    /// when a monitor asks for an early read (it has no task to probe).
    async fn run(self, mut stop: Shutdown) {
        let period = self.interval * REFRESH_EVERY;
        let mut seq = 0u64;
        loop {
            let began = Instant::now();
            tokio::select! {
                _ = stop.recv() => break,
                _ = self.tx.closed() => break,
                _ = self.poll(&mut seq, began) => {}
            }
            tokio::select! {
                _ = stop.recv() => break,
                _ = self.tx.closed() => break,
                _ = tokio::time::sleep_until(began + period) => {}
                _ = async {
                    self.nudge.notified().await;
                    tokio::time::sleep_until(began + self.interval).await;
                } => {}
            }
        }
        self.board.add_aws_counts(self.aws.counts());
    }

    /// One read of the cluster, handed to every subscriber; a failed one is logged and
    /// retried on the next period, the last good read staying what the monitors see.
    async fn poll(&self, seq: &mut u64, asked_at: Instant) {
        let result = self.aws.cluster_tasks(&self.cluster).await;
        let read = match result {
            Ok(tasks) => {
                *seq += 1;
                Some(Arc::new(Read {
                    seq: *seq,
                    asked_at,
                    tasks,
                }))
            }
            Err(e) => {
                tracing::warn!(cluster = %self.cluster, error = %chain(&e), "cannot read the cluster's tasks; the monitors keep the last read");
                None
            }
        };
        self.tx.send_modify(|s| {
            s.polls += 1;
            if read.is_some() {
                s.read = read;
            }
        });
    }
}
