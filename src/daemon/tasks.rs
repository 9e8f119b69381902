//! Every task the daemon spawns, tracked: so that the exit can await them (a monitor's last
//! downtime write must land before the process ends) and a replacement can wait for its
//! predecessor.

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// The daemon's spawned tasks.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<()>,
}

/// Resolves when one tracked task has ended (finished, panicked or aborted).
#[derive(Debug, Clone)]
pub struct Done(watch::Receiver<()>);

impl Done {
    pub async fn wait(mut self) {
        // The sender lives inside the task's future: it is dropped when the future is,
        // however the task ended, and `changed` then fails: the signal we wait for.
        while self.0.changed().await.is_ok() {}
    }
}

impl Tasks {
    /// Spawns `task` and tracks it.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) -> Done {
        let (alive, done) = watch::channel(());
        // On the heap and awaited from there: an async block that awaits a captured future
        // keeps it twice (the capture and the awaited state), which for a target's loop was
        // 6 KiB more per target.
        let task = Box::pin(task);
        self.set.spawn(async move {
            let _alive = alive;
            task.await;
        });
        Done(done)
    }

    /// Forgets the tasks that already ended (a reload replaces every loop; the set must not
    /// grow with each one).
    pub fn reap(&mut self) {
        while let Some(ended) = self.set.try_join_next() {
            if let Err(e) = ended
                && e.is_panic()
            {
                tracing::error!(error = %e, "a daemon task panicked");
            }
        }
    }

    /// How many tasks are tracked and not yet reaped.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Waits until every task has ended.
    pub async fn join_all(&mut self) {
        while let Some(ended) = self.set.join_next().await {
            if let Err(e) = ended
                && e.is_panic()
            {
                tracing::error!(error = %e, "a daemon task panicked");
            }
        }
    }

    /// Ends the tasks still running (the shutdown deadline passed) and waits until they are gone.
    pub async fn abort_all(&mut self) {
        self.set.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn done_resolves_when_the_task_ends_and_join_all_waits_for_every_task() {
        let mut tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tasks.spawn(async move {
            let _ = rx.await;
        });
        let other = tasks.spawn(async {});
        other.wait().await;
        tasks.reap();
        assert_eq!(tasks.len(), 1);
        let _ = tx.send(());
        done.wait().await;
        tasks.join_all().await;
        assert!(tasks.is_empty());
    }

    #[tokio::test]
    async fn an_aborted_task_is_done_too() {
        let mut tasks = Tasks::default();
        let done = tasks.spawn(std::future::pending());
        tasks.abort_all().await;
        done.wait().await;
    }
}
