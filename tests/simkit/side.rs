//! A prober beside the service, like OneAgents: it probes every RUNNING task of the service
//! over HTTPS in rounds and counts the rounds in which none answered healthy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::rig::SERVICE;
use super::*;

/// Counts moments with no healthy task, probing every task like OneAgents would.
pub struct SideProber {
    stop: Arc<AtomicBool>,
    empty: Arc<AtomicU64>,
    rounds: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<()>,
}

impl SideProber {
    /// Probes the tasks of the rig's service.
    pub fn start(w: &World) -> SideProber {
        Self::start_for(w, Some(SERVICE))
    }

    /// Probes every task of the cluster, whichever service runs it.
    pub fn start_in_cluster(w: &World) -> SideProber {
        Self::start_for(w, None)
    }

    fn start_for(w: &World, service: Option<&'static str>) -> SideProber {
        let stop = Arc::new(AtomicBool::new(false));
        let empty = Arc::new(AtomicU64::new(0));
        let rounds = Arc::new(AtomicU64::new(0));
        let ecs = w.ecs.clone();
        let client = https_client(w.sim.ca_pem(), Duration::from_millis(500));
        let (s, e, r) = (stop.clone(), empty.clone(), rounds.clone());
        let handle = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let arns = match ecs
                    .list_tasks()
                    .cluster(CLUSTER)
                    .set_service_name(service.map(str::to_owned))
                    .send()
                    .await
                {
                    Ok(o) => o.task_arns().to_vec(),
                    Err(_) => continue,
                };
                let ips: Vec<String> = if arns.is_empty() {
                    Vec::new()
                } else {
                    match ecs
                        .describe_tasks()
                        .cluster(CLUSTER)
                        .set_tasks(Some(arns))
                        .send()
                        .await
                    {
                        Ok(o) => o
                            .tasks()
                            .iter()
                            .filter(|t| t.last_status() == Some("RUNNING"))
                            .map(task_ip)
                            .collect(),
                        Err(_) => continue,
                    }
                };
                let mut healthy = 0;
                for ip in &ips {
                    if let Ok(resp) = client
                        .get(format!("https://{ip}:9999/rest/health"))
                        .send()
                        .await
                    {
                        healthy += usize::from(resp.status() == 200);
                    }
                }
                r.fetch_add(1, Ordering::Relaxed);
                if healthy == 0 {
                    e.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        SideProber {
            stop,
            empty,
            rounds,
            handle,
        }
    }

    /// (rounds, rounds with no healthy task)
    pub async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.await;
        (
            self.rounds.load(Ordering::Relaxed),
            self.empty.load(Ordering::Relaxed),
        )
    }
}
