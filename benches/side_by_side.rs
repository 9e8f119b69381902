//! This daemon side by side with ECS's own protection, measured in one run on the simulator:
//!
//! - a bad version, a version that fails after it was healthy (during the bake), a crash after
//!   RUNNING and a good version, each handled by this daemon with blue/green task sets (the
//!   default for services it creates) and with its rolling strategy (both at its defaults), by
//!   ECS's circuit breaker alone, and by a deploy script with a 300 s timeout, at
//!   ActiveGate-realistic timings run `SPEED` times faster (every time printed is simulated,
//!   i.e. real-world, seconds);
//! - scale: 1, 100 and 1,000 targets on one daemon process;
//! - idle: one target, probe interval 15 s.
//!
//! Prints Markdown tables and writes them as JSON to `target/bench/side_by_side.json`.
//! Run: `cargo bench --bench side_by_side` (about 9 minutes on 2 cores).
//! Set `SIDE_BY_SIDE_SCALE=1,100` to choose the scale points (`SIDE_BY_SIDE_SCALE=1` skips the
//! slow ones).

#[path = "../tests/simkit/mod.rs"]
mod simkit;

use std::time::{Duration, Instant};

use serde_json::json;
use simkit::compare::*;
use simkit::procfs;
use simkit::rig::*;

/// Simulated seconds per real second for the side-by-side cases.
const SPEED: f64 = 50.0;
/// Simulated seconds watched after each rollout (a good version's blue/green rollout is
/// promoted after the bake, about 730 s with the 600 s default; the window is extended to the
/// end of the daemon's reconcile when that is later).
const WINDOW: f64 = 900.0;

fn secs(v: Option<f64>) -> String {
    v.map_or("never".into(), |s| format!("{s:.0} s"))
}

async fn cases() -> Vec<Measured> {
    let mut all = Vec::new();
    for case in Case::ALL {
        for strategy in Strategy::ALL {
            let m = measure(strategy, case, SPEED, WINDOW).await;
            eprintln!("measured: {} / {}", m.case, m.strategy);
            all.push(m);
        }
    }
    all
}

fn outcome(m: &Measured) -> String {
    match m.via {
        Some(via) => format!("{} ({via})", m.outcome),
        None => m.outcome.clone(),
    }
}

fn print_cases(all: &[Measured]) {
    let d = defaults();
    println!(
        "\n### Failures and good versions (simulated seconds; speed {SPEED}×; ActiveGate healthy {START:.0} s after start; desired {DESIRED}; the daemon's defaults: probe every {:.0} s, grace {:.0} s, {} failures, bake {:.0} s)\n",
        d.probe_interval_s, d.grace_s, d.unhealthy_after, d.bake_s
    );
    println!(
        "| case | who | outcome | time to detect | detection → only good tasks left (last bad task stopped) | back on the good revision | time with no healthy task | failed service probes (every 15 s) | extra task-seconds | AWS calls |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for m in all.iter().filter(|m| m.case != Case::Good.label()) {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} s of {:.0} s | {} | {:.0} | {} |",
            m.case,
            m.strategy,
            outcome(m),
            secs(m.detect_s),
            secs(m.only_good_s),
            secs(m.back_s),
            m.none_healthy_s,
            m.observed_s,
            m.failed_service_probes,
            m.extra_task_s,
            m.calls
        );
    }
    println!(
        "\n| good version | outcome | declared good (verified / COMPLETED / stable) | old tasks all stopped | time with no healthy task | failed service probes | extra task-seconds | AWS calls |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for m in all.iter().filter(|m| m.case == Case::Good.label()) {
        println!(
            "| {} | {} | {} | {} | {:.0} s | {} | {:.0} | {} |",
            m.strategy,
            outcome(m),
            secs(m.done_s),
            secs(m.old_gone_s),
            m.none_healthy_s,
            m.failed_service_probes,
            m.extra_task_s,
            m.calls
        );
    }
}

#[derive(Debug, serde::Serialize)]
struct Scale {
    targets: usize,
    rolled_out_in_s: f64,
    verified: usize,
    /// First rollouts that did not verify (e.g. probes timing out on a saturated machine).
    failed: usize,
    /// Targets whose image ended up quarantined (a good image: a false failure).
    quarantined: usize,
    /// The highest event-loop lateness /metrics showed while the targets rolled out.
    peak_event_loop_lateness_s: f64,
    calls_per_rollout: f64,
    calls_per_poll_cycle: f64,
    peak_rss_mib: f64,
    cpu_s: f64,
}

/// N targets (one task each) on one daemon: it creates and verifies every service, then idles.
async fn scale(n: usize) -> Scale {
    let rig = Rig::new().await;
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let (head, block) = text.split_once("[[target]]").expect("a target");
    let mut block = block.to_owned();
    for (from, to) in [
        ("interval_seconds = 0.02", "interval_seconds = 1"),
        ("grace_seconds = 0.3", "grace_seconds = 3"),
        ("timeout_seconds = 0.5", "timeout_seconds = 2"),
        ("desired_count = 2", "desired_count = 1"),
    ] {
        block = replace_once(&block, from, to);
    }
    let mut config = format!(
        "[daemon]\nstatus_listen = \"127.0.0.1:0\"\nmax_parallel = 100\nshutdown_deadline_seconds = 30\n\n{head}\n# The simulator does not throttle here: what is measured is the daemon's own cost, not\n# ECS's buckets (the fleet benchmark runs with them).\n{UNTHROTTLED}\n"
    );
    for i in 0..n {
        config.push_str("[[target]]");
        config.push_str(
            &[
                ("name = \"prod\"".to_owned(), format!("name = \"t{i}\"")),
                (
                    format!("service = \"{SERVICE}\""),
                    format!("service = \"ag-{i}\""),
                ),
                (
                    "family = \"activegate\"".to_owned(),
                    format!("family = \"ag-{i}\""),
                ),
            ]
            .iter()
            .fold(block.clone(), |b, (from, to)| replace_once(&b, from, to)),
        );
    }
    std::fs::write(&path, config).expect("write");
    let started = Instant::now();
    let (child, url) = procfs::spawn_daemon(&path, &[]).await;
    let pid = child.id();
    let http = reqwest::Client::new();
    // (verified, failed): targets whose first reconcile ended either way.
    let settled = |s: &serde_json::Value| {
        let targets = s["targets"].as_object();
        let count = |f: &dyn Fn(&serde_json::Value) -> bool| {
            targets.map_or(0, |t| t.values().filter(|t| f(t)).count())
        };
        (
            count(&|t| t["outcomes"]["verified"].as_u64() >= Some(1)),
            count(&|t| t["running"] != true && t["last_error"].is_string()),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    let (mut done, mut failed) = (0, 0);
    let mut peak_lateness = 0.0f64;
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{url}/metrics")).send().await
            && let Ok(text) = r.text().await
        {
            let v = text
                .lines()
                .find(|l| l.starts_with("activegate_lifecycle_event_loop_lateness_seconds "))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
            peak_lateness = peak_lateness.max(v.unwrap_or(0.0));
        }
        if let Ok(r) = http.get(format!("{url}/status")).send().await
            && let Ok(s) = r.json::<serde_json::Value>().await
        {
            (done, failed) = settled(&s);
            if done + failed >= n {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rolled_out_in_s = started.elapsed().as_secs_f64();
    let mut quarantined = 0;
    for i in 0..n {
        let out = rig
            .w
            .ecs
            .describe_services()
            .cluster(simkit::CLUSTER)
            .services(format!("ag-{i}"))
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send()
            .await;
        if let Ok(o) = out {
            quarantined += o
                .services()
                .iter()
                .flat_map(|s| s.tags())
                .filter(|t| {
                    t.key().is_some_and(|k| {
                        k.starts_with(activegate_lifecycle::rollout::tags::QUARANTINE_PREFIX)
                    })
                })
                .count()
                .min(1);
        }
    }
    let total = |calls: std::collections::BTreeMap<String, u64>| calls.values().sum::<u64>();
    let after_rollouts = total(rig.w.sim.calls());
    // Idle: 20 probe cycles of 1 s.
    let idle = Duration::from_secs(20);
    tokio::time::sleep(idle).await;
    let idle_calls = total(rig.w.sim.calls()) - after_rollouts;
    let s = Scale {
        targets: n,
        rolled_out_in_s,
        verified: done,
        failed,
        quarantined,
        peak_event_loop_lateness_s: peak_lateness,
        calls_per_rollout: after_rollouts as f64 / n as f64,
        calls_per_poll_cycle: idle_calls as f64 / idle.as_secs_f64(),
        peak_rss_mib: procfs::status_kib(pid, "VmHWM:") as f64 / 1024.0,
        cpu_s: procfs::cpu_seconds(pid),
    };
    procfs::stop(child);
    rig.w.sim.shutdown().await;
    eprintln!("measured: scale {n}");
    s
}

#[derive(Debug, serde::Serialize)]
struct Idle {
    rss_mib: f64,
    heap_mib: f64,
    code_mib: f64,
    peak_rss_mib: f64,
    cpu_s_per_hour: f64,
    measured_s: f64,
}

/// One target at the production probe interval, after it settled.
async fn idle() -> Idle {
    let rig = Rig::new().await;
    rig.started().await;
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = replace_once(&text, "interval_seconds = 0.02", "interval_seconds = 15");
    let text = replace_once(&text, "grace_seconds = 0.3", "grace_seconds = 120");
    std::fs::write(
        &path,
        format!("[daemon]\nstatus_listen = \"127.0.0.1:0\"\n\n{text}"),
    )
    .expect("write");
    let (child, _) = procfs::spawn_daemon(&path, &["--no-initial-run"]).await;
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (cpu0, t0) = (procfs::cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (cpu, elapsed) = (procfs::cpu_seconds(pid) - cpu0, t0.elapsed().as_secs_f64());
    let kib = |f| procfs::status_kib(pid, f) as f64 / 1024.0;
    let i = Idle {
        rss_mib: kib("VmRSS:"),
        heap_mib: kib("RssAnon:"),
        code_mib: kib("RssFile:"),
        peak_rss_mib: kib("VmHWM:"),
        cpu_s_per_hour: cpu * 3600.0 / elapsed,
        measured_s: elapsed,
    };
    procfs::stop(child);
    rig.w.sim.shutdown().await;
    i
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let all = cases().await;
    let points: Vec<usize> = std::env::var("SIDE_BY_SIDE_SCALE")
        .ok()
        .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 100, 1000]);
    let mut scales = Vec::new();
    for n in points {
        scales.push(scale(n).await);
    }
    let idle = idle().await;

    print_cases(&all);
    println!(
        "\n### Scale: one daemon process (max_parallel 100, probe interval 1 s, timeout 2 s, 1 task per target, simulator at {}× in the benchmark's process on the same 2 cores)\n",
        simkit::SPEED
    );
    println!(
        "| targets | all created and verified in (real) | failed / quarantined | peak event-loop lateness | AWS calls per rollout (monitors' calls meanwhile included) | AWS calls per poll cycle (1 s) | peak RSS | CPU time (whole run) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for s in &scales {
        println!(
            "| {}{} | {:.1} s | {} / {} | {:.2} s | {:.1} | {:.1} | {:.1} MiB | {:.1} s |",
            s.targets,
            if s.verified < s.targets {
                format!(" ({} verified, {} failed)", s.verified, s.failed)
            } else {
                String::new()
            },
            s.rolled_out_in_s,
            s.failed,
            s.quarantined,
            s.peak_event_loop_lateness_s,
            s.calls_per_rollout,
            s.calls_per_poll_cycle,
            s.peak_rss_mib,
            s.cpu_s
        );
    }
    println!("\n### Idle: one target, probe interval 15 s\n");
    println!("| RSS (heap + mapped code) | peak RSS | CPU per hour |");
    println!("|---|---|---|");
    println!(
        "| {:.1} MiB ({:.1} + {:.1}) | {:.1} MiB | {:.1} s (measured over {:.0} s) |",
        idle.rss_mib,
        idle.heap_mib,
        idle.code_mib,
        idle.peak_rss_mib,
        idle.cpu_s_per_hour,
        idle.measured_s
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let file = out.join("side_by_side.json");
    let doc = json!({
        "speed": SPEED,
        "timings": {
            "activegate_start_s": START, "crash_after_running_s": CRASH_AFTER,
            "fails_after_running_s": FAIL_AFTER, "desired_count": DESIRED,
            "script_timeout_s": SCRIPT_TIMEOUT, "service_probe_s": SERVICE_PROBE,
            "window_s": WINDOW,
        },
        "daemon_defaults": defaults(),
        "cases": all,
        "scale": scales,
        "idle": idle,
    });
    match std::fs::write(
        &file,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    ) {
        Ok(()) => println!("\nJSON: {}", file.display()),
        Err(e) => eprintln!("cannot write {}: {e}", file.display()),
    }
}
