//! How fast a bad revision is caught: the time from the first failing probe of
//! a new revision to the roll-back call (UpdateService back to the last good
//! revision), in probe intervals, against the simulator. The container health
//! check is off, so that only the daemon's HTTPS probes can catch the failure.
//!
//! Run: `cargo bench --bench rollback_time`

#[path = "../tests/simkit/mod.rs"]
mod simkit;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use activegate_lifecycle::config::Config;
use activegate_lifecycle::rollout::{Outcome, Progress};
use activegate_lifecycle::sim::{Behaviour, Mode};
use simkit::rig::*;

const INTERVAL: f64 = 0.05;
const GRACE: f64 = 0.4;

async fn measure(name: &str, behaviour: Behaviour) -> String {
    let mut rig = Rig::new().await;
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(
            "interval_seconds = 0.02",
            &format!("interval_seconds = {INTERVAL}"),
        )
        .replace("grace_seconds = 0.3", &format!("grace_seconds = {GRACE}"))
        .replace("manifest = ", "container_health_check = false\nmanifest = ");
    std::fs::write(&path, text).expect("write");
    rig.config = Config::load(&path).expect("config");
    let first = rig.started().await;
    rig.w.sim.set_image(BAD, behaviour);

    let first_failure: Arc<Mutex<Option<Instant>>> = Arc::default();
    let seen = first_failure.clone();
    let good = first.clone();
    let engine = rig
        .engine()
        .await
        .with_progress(Arc::new(move |p: &Progress| {
            if p.revision != good && p.probes_failed > 0 {
                seen.lock().expect("lock").get_or_insert_with(Instant::now);
            }
        }));
    let updates_before = rig.w.sim.calls().get("UpdateService").copied().unwrap_or(0);
    let crashed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let sim_calls = {
        let rig_calls = Arc::new(Mutex::new(None::<Instant>));
        let out = rig_calls.clone();
        let crashed = crashed_at.clone();
        let endpoint = rig.w.sim.endpoint().to_owned();
        let handle = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                if crashed.lock().expect("lock").is_none() {
                    let timeline: serde_json::Value =
                        match http.get(format!("{endpoint}/sim/v1/timeline")).send().await {
                            Ok(r) => r.json().await.unwrap_or_default(),
                            Err(_) => return,
                        };
                    let crash = timeline.as_array().is_some_and(|t| {
                        t.iter().any(|e| {
                            e["kind"] == "task-stopping"
                                && e["detail"] == "Essential container in task exited"
                        })
                    });
                    if crash {
                        *crashed.lock().expect("lock") = Some(Instant::now());
                    }
                }
                let calls: serde_json::Value =
                    match http.get(format!("{endpoint}/sim/v1/calls")).send().await {
                        Ok(r) => r.json().await.unwrap_or_default(),
                        Err(_) => return,
                    };
                if calls["UpdateService"].as_u64().unwrap_or(0) >= updates_before + 2 {
                    *out.lock().expect("lock") = Some(Instant::now());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        (rig_calls, handle)
    };
    let outcome = engine.reconcile(Some(BAD)).await.expect("rollout");
    let _ = sim_calls.1.await;
    assert!(
        matches!(outcome, Outcome::RolledBack { .. }),
        "{name}: {outcome:?}"
    );
    // The first sign of failure: a failing probe, or a task that exited.
    let failed_at = [
        *first_failure.lock().expect("lock"),
        *crashed_at.lock().expect("lock"),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or_else(|| panic!("{name}: no failure seen: {outcome:?}"));
    let rolled_back_at = sim_calls.0.lock().expect("lock").expect("a roll-back call");
    let secs = rolled_back_at.duration_since(failed_at).as_secs_f64();
    rig.w.sim.shutdown().await;
    format!(
        "| {name} | {:.1} | {:.0} ms |",
        secs / INTERVAL,
        secs * 1000.0
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rows = [
        measure(
            "never healthy (HTTP 503)",
            Behaviour::of(Mode::NeverHealthy),
        )
        .await,
        measure("hangs (probe timeouts)", Behaviour::of(Mode::Hangs)).await,
        measure(
            "crashes 30 s after RUNNING",
            Behaviour {
                mode: Mode::CrashesAfter,
                start_seconds: Some(0.0),
                after_seconds: Some(30.0),
                exit_code: Some(1),
            },
        )
        .await,
    ];
    println!(
        "probe interval {INTERVAL} s, grace {GRACE} s (= {} intervals), unhealthy after 3 failures",
        GRACE / INTERVAL
    );
    println!(
        "| bad revision | first sign of failure → roll-back call, in probe intervals | in time |"
    );
    println!("|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
