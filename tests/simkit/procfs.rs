//! The daemon as a child process, and what Linux says about it (`/proc`): for the benchmarks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::binary::BIN;

/// USER_HZ on Linux.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// A field of `/proc/PID/status` in KiB (`VmRSS:`, `VmHWM:`, `RssAnon:`, `RssFile:`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ticks as f64 / TICKS_PER_SECOND
}

/// `run` with the simulator's fixed credentials, quiet logs and `extra` arguments; callers
/// add what they need (environment, where stderr goes) before [`spawn`].
///
/// `SIMKIT_DAEMON_WRAP` (words split at spaces) runs the daemon under another program, e.g.
/// `SIMKIT_DAEMON_WRAP="heaptrack -o /tmp/daemon"` to see where a benchmark's memory goes;
/// `SIMKIT_DAEMON_BIN` runs another build of it (one with symbols).
pub fn daemon_command(config: &std::ffi::OsStr, extra: &[&str]) -> Command {
    let bin = std::env::var("SIMKIT_DAEMON_BIN").unwrap_or_else(|_| BIN.to_owned());
    let wrap = std::env::var("SIMKIT_DAEMON_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.arg("run")
        .args(extra)
        .arg("--config")
        .arg(config)
        .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    cmd
}

/// Starts `run` with the simulator's fixed credentials; returns the child and its status URL.
pub async fn spawn_daemon(config: &Path, extra: &[&str]) -> (Child, String) {
    spawn(daemon_command(config.as_os_str(), extra)).await
}

/// Spawns the daemon command; returns the child and the status URL it prints first.
pub async fn spawn(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("the daemon starts");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the status line");
        line
    })
    .await
    .expect("join");
    let url = line
        .trim()
        .strip_prefix("status: ")
        .expect("the status address comes first")
        .to_owned();
    (child, url)
}

/// SIGTERM, then wait.
pub fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
