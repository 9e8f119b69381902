//! The daemon's footprint at rest: the real binary with one target (probe
//! interval 15 s, as in production), measured over an idle minute after it
//! settled: resident memory and CPU time.
//!
//! Run: `cargo bench --bench daemon_idle`

#[path = "../tests/simkit/mod.rs"]
mod simkit;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use simkit::rig::*;

const BIN: &str = env!("CARGO_BIN_EXE_activegate-lifecycle");
const IDLE: Duration = Duration::from_secs(60);

fn proc_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rig = Rig::new().await;
    rig.started().await;
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("interval_seconds = 0.02", "interval_seconds = 15")
        .replace("grace_seconds = 0.3", "grace_seconds = 120");
    std::fs::write(
        &path,
        format!("[daemon]\nstatus_listen = \"127.0.0.1:0\"\n\n{text}"),
    )
    .expect("write");
    let mut child = Command::new(BIN)
        .args(["run", "--no-initial-run", "--config"])
        .arg(&path)
        .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the daemon starts");
    let stdout = child.stdout.take().expect("stdout");
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the status line");
    })
    .await
    .expect("join");
    let pid = child.id();
    // Let the monitor take its first rounds.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (ticks0, t0) = (cpu_ticks(pid), std::time::Instant::now());
    tokio::time::sleep(IDLE).await;
    let (ticks1, elapsed) = (cpu_ticks(pid), t0.elapsed());
    let rss = proc_field(pid, "VmRSS:");
    let anon = proc_field(pid, "RssAnon:");
    let file = proc_field(pid, "RssFile:");
    let peak = proc_field(pid, "VmHWM:");
    let hz = 100.0; // USER_HZ on Linux
    let cpu_s = (ticks1 - ticks0) as f64 / hz;
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "| daemon, 1 target, idle | RSS (heap + mapped code) | peak RSS | CPU over {} s | CPU per hour |",
        elapsed.as_secs()
    );
    println!("|---|---|---|---|---|");
    println!(
        "| probe interval 15 s | {:.1} MiB ({:.1} + {:.1}) | {:.1} MiB | {:.2} s ({:.2} %) | {:.0} s |",
        rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0,
        peak as f64 / 1024.0,
        cpu_s,
        100.0 * cpu_s / elapsed.as_secs_f64(),
        cpu_s * 3600.0 / elapsed.as_secs_f64()
    );
    rig.w.sim.shutdown().await;
}
