//! A fleet on one daemon process (#16): 1,000 targets over 10 clusters, 2 tasks each, probe
//! interval 15 s (the product's default), against the simulator. The services are created
//! beforehand through the ECS API, and the daemon runs with `--no-initial-run`, so that what
//! is counted is the steady state: the availability monitors and the per-cluster observers
//! that feed them. Reports the AWS calls per second the simulator saw over the window, by
//! operation, and the daemon's RSS (from `/proc`).
//!
//! Run: `cargo bench --bench fleet` (about 5 minutes). `FLEET_TARGETS`, `FLEET_CLUSTERS` and
//! `FLEET_WINDOW_SECONDS` (default 1000, 10, 180) change the shape and the window.

#[path = "../tests/simkit/mod.rs"]
mod simkit;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use simkit::compare::replace_once;
use simkit::procfs;
use simkit::rig::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cluster_name(c: usize) -> String {
    format!("fleet-{c:02}")
}

/// Every target's section: the rig's, at the product's probe interval, in its own cluster
/// and service.
fn config(rig: &Rig, targets: usize, clusters: usize) -> String {
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let (head, block) = text.split_once("[[target]]").expect("a target");
    let mut block = block.to_owned();
    for (from, to) in [
        ("interval_seconds = 0.02", "interval_seconds = 15"),
        ("grace_seconds = 0.3", "grace_seconds = 3"),
        ("timeout_seconds = 0.5", "timeout_seconds = 2"),
    ] {
        block = replace_once(&block, from, to);
    }
    let mut config = format!(
        "[daemon]\nstatus_listen = \"127.0.0.1:0\"\nmax_parallel = 100\nshutdown_deadline_seconds = 30\n\n{head}"
    );
    for i in 0..targets {
        config.push_str("[[target]]");
        config.push_str(
            &[
                ("name = \"prod\"".to_owned(), format!("name = \"t{i}\"")),
                (
                    format!("cluster = \"{}\"", simkit::CLUSTER),
                    format!("cluster = \"{}\"", cluster_name(i % clusters)),
                ),
                (
                    format!("service = \"{SERVICE}\""),
                    format!("service = \"ag-{i}\""),
                ),
            ]
            .iter()
            .fold(block.clone(), |b, (from, to)| replace_once(&b, from, to)),
        );
    }
    config
}

/// The services, 2 tasks each, created through the ECS API as an earlier rollout left them.
async fn create_services(rig: &Rig, targets: usize, clusters: usize) {
    for c in 0..clusters {
        rig.w.sim.create_cluster(&cluster_name(c));
    }
    let td = rig.w.register(V1, false).await;
    for i in 0..targets {
        rig.w
            .ecs
            .create_service()
            .cluster(cluster_name(i % clusters))
            .service_name(format!("ag-{i}"))
            .task_definition(&td)
            .desired_count(2)
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .network_configuration(simkit::network())
            .deployment_configuration(simkit::deployment(true))
            .send()
            .await
            .expect("create service");
    }
}

/// Targets whose monitor has seen both of its tasks answer healthy.
async fn watched(http: &reqwest::Client, url: &str) -> usize {
    let Ok(r) = http.get(format!("{url}/status")).send().await else {
        return 0;
    };
    let Ok(s) = r.json::<serde_json::Value>().await else {
        return 0;
    };
    s["targets"].as_object().map_or(0, |t| {
        t.values()
            .filter(|t| t["probes_ok"].as_u64() >= Some(2))
            .count()
    })
}

fn between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let targets = env_or("FLEET_TARGETS", 1000) as usize;
    let clusters = env_or("FLEET_CLUSTERS", 10) as usize;
    let window = Duration::from_secs(env_or("FLEET_WINDOW_SECONDS", 180));
    let rig = Rig::new().await;
    create_services(&rig, targets, clusters).await;
    let path = rig.dir.path().join("ag.toml");
    std::fs::write(&path, config(&rig, targets, clusters)).expect("write config");

    let started = Instant::now();
    let (child, url) = procfs::spawn_daemon(&path, &["--no-initial-run"]).await;
    let pid = child.id();
    let http = reqwest::Client::new();
    // Every monitor has started (its start-up DescribeServices is behind it) and probes.
    let deadline = Instant::now() + Duration::from_secs(600);
    while watched(&http, &url).await < targets {
        assert!(
            Instant::now() < deadline,
            "not every target watched within 600 s"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let warm = started.elapsed();
    // A full observer period (4 probe intervals) after the last monitor started.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let before = rig.w.sim.calls();
    let cpu_before = procfs::cpu_seconds(pid);
    tokio::time::sleep(window).await;
    let calls = between(&before, &rig.w.sim.calls());
    let cpu = procfs::cpu_seconds(pid) - cpu_before;
    let rss = procfs::status_kib(pid, "VmRSS:") as f64 / 1024.0;
    let peak = procfs::status_kib(pid, "VmHWM:") as f64 / 1024.0;
    procfs::stop(child);
    rig.w.sim.shutdown().await;

    let total: u64 = calls.values().sum();
    let per_second = total as f64 / window.as_secs_f64();
    println!(
        "\n| targets | clusters | tasks | probe interval | window | AWS calls per second (steady state) | by operation | RSS | peak RSS | per target (peak) | CPU in the window |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {targets} | {clusters} | {} | 15 s | {} s | {per_second:.2} | {} | {rss:.1} MiB | {peak:.1} MiB | {:.0} KiB | {cpu:.1} s |",
        targets * 2,
        window.as_secs(),
        calls
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        peak * 1024.0 / targets as f64,
    );
    println!(
        "(every target watched {:.1} s after the daemon started)",
        warm.as_secs_f64()
    );
    let out = json!({
        "targets": targets,
        "clusters": clusters,
        "window_seconds": window.as_secs(),
        "calls": calls,
        "calls_per_second": per_second,
        "rss_mib": rss,
        "peak_rss_mib": peak,
        "cpu_seconds_in_window": cpu,
        "watched_after_seconds": warm.as_secs_f64(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    std::fs::write(dir.join("fleet.json"), out.to_string()).expect("write JSON");
}
