//! The daemon and its status server: `run`, `status` (asks a running daemon) and
//! `healthcheck` (the container's health check).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use activegate_lifecycle::config::Config;
use activegate_lifecycle::model::ids::TaskDefinitionArn;
use activegate_lifecycle::{daemon, status};

use super::{Failure, print_stdout};

#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// The config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Do not reconcile every target at start (an interrupted rollout then waits for the first run).
    #[arg(long)]
    no_initial_run: bool,
    /// Run scheduled rollouts even while a target's error budget is spent.
    #[arg(long)]
    force: bool,
    /// This replica's id in the lease table, with `[daemon.lease]` (default
    /// `<hostname>-<pid>-<4 random hex>`), and the app name in every AWS call's user agent.
    #[arg(long, env = "ACTIVEGATE_LIFECYCLE_REPLICA_ID")]
    replica_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(super) struct StatusArgs {
    /// The daemon's status server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct HealthcheckArgs {
    /// The daemon's status server (`daemon.status_listen`; 0.0.0.0 is asked on loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
}

pub(super) fn run_daemon(args: &RunArgs) -> Result<ExitCode, Failure> {
    let config = Config::load(&args.config).map_err(Failure::bad_input)?;
    // On ECS, the task's stopTimeout (at most 120 s on Fargate) ends the wait after SIGTERM.
    let deadline = config.daemon.shutdown_deadline_seconds.0;
    if std::env::var_os("ECS_CONTAINER_METADATA_URI_V4").is_some() && deadline > 110.0 {
        tracing::warn!(
            shutdown_deadline_seconds = deadline,
            "running on ECS, which kills the container at most 120 s after SIGTERM: \
             set daemon.shutdown_deadline_seconds below the task's stopTimeout"
        );
    }
    // One thread: the daemon waits on timers and the network, and one thread
    // (with one allocator arena) keeps it small at rest.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::runtime)?;
    runtime.block_on(async {
        let signals = daemon::os_signals()
            .context("cannot install signal handlers")
            .map_err(Failure::runtime)?;
        let board = std::sync::Arc::new(daemon::board::Board::default());
        let token = std::env::var(&config.daemon.trigger_token_env).ok().filter(|t| !t.is_empty());
        if token.is_none() {
            tracing::info!(variable = %config.daemon.trigger_token_env, "POST /trigger is off: the token variable is not set");
        }
        let server = status::serve(config.daemon.status_listen, status_sources(&board, token))
            .await
            .with_context(|| format!("cannot serve status on {}", config.daemon.status_listen))
            .map_err(Failure::runtime)?;
        print_stdout(&format!("status: http://{}\n", server.addr))?;
        let options = daemon::Options {
            no_initial_run: args.no_initial_run,
            force: args.force,
            replica_id: args.replica_id.clone(),
            ..daemon::Options::default()
        };
        daemon::run(args.config.clone(), config, board, options, signals)
            .await
            .map_err(Failure::bad_input)?;
        server.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The status server's answers, from the daemon's board.
pub fn status_sources(
    board: &std::sync::Arc<daemon::board::Board>,
    token: Option<String>,
) -> status::Sources {
    let (b1, b2, b3) = (board.clone(), board.clone(), board.clone());
    status::Sources {
        status_json: std::sync::Arc::new(move || {
            serde_json::to_string_pretty(&b1.snapshot())
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        }),
        metrics: std::sync::Arc::new(move |format| match format {
            status::MetricsFormat::Prometheus => b2.metrics(),
            status::MetricsFormat::OpenMetrics => b2.openmetrics(),
        }),
        trigger: std::sync::Arc::new(move |t: &str| {
            if b3.trigger(t, daemon::board::Trigger::Manual) {
                status::Triggered::Yes
            } else {
                status::Triggered::UnknownTarget
            }
        }),
        trigger_token: token,
    }
}

pub(super) fn status_command(args: &StatusArgs) -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .map_err(Failure::runtime)?;
    let url = format!("{}/status", args.url.trim_end_matches('/'));
    let body = runtime
        .block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .send()
                .await?
                .error_for_status()?;
            r.text().await
        })
        .with_context(|| format!("cannot read {url}; is the daemon running?"))
        .map_err(Failure::runtime)?;
    if args.json {
        print_stdout(&format!("{body}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("{url} did not answer JSON"))
        .map_err(Failure::runtime)?;
    print_stdout(&status_table(&v))?;
    Ok(ExitCode::SUCCESS)
}

/// The `status` table of a daemon's `/status` answer. With `[daemon.lease]` (a `lease`
/// section), a HOLDER column: each target's lease as the asked replica saw it at its last
/// round — `<id> (this replica)` when the asked one holds it; another replica's id when the
/// lease is assigned to the asked one but that replica still holds it; else the replica the
/// assignment gives it to, `<id> (assigned)` (a replica reads only the leases assigned to it;
/// every replica computes the same assignment from the live replicas, and takes exactly its
/// own); `-` when there is none.
fn status_table(v: &serde_json::Value) -> String {
    let lease = v["lease"].as_object();
    let assigned = lease.map(assignment).unwrap_or_default();
    let mut out = match lease {
        Some(_) => format!(
            "{:<20} {:<12} {:<14} {:<26} {:<40} {}\n",
            "TARGET", "STATE", "LAST OUTCOME", "NEXT RUN", "HOLDER", "REVISION"
        ),
        None => format!(
            "{:<20} {:<12} {:<14} {:<26} {}\n",
            "TARGET", "STATE", "LAST OUTCOME", "NEXT RUN", "REVISION"
        ),
    };
    for (name, t) in v["targets"].as_object().into_iter().flatten() {
        let state = if t["running"].as_bool() == Some(true) {
            "rolling"
        } else if t["last_error"].is_string() {
            "error"
        } else {
            "idle"
        };
        let revision = t["revision"]
            .as_str()
            .map_or_else(|| "-".to_owned(), TaskDefinitionArn::shorten);
        let holder = lease.map(|l| holder(&l["replica"], &l["targets"][name], &assigned));
        out.push_str(&format!(
            "{:<20} {:<12} {:<14} {:<26} ",
            name,
            state,
            t["last_outcome"].as_str().unwrap_or("-"),
            t["next_run"].as_str().unwrap_or("-"),
        ));
        if let Some(h) = holder {
            out.push_str(&format!("{h:<40} "));
        }
        out.push_str(&format!("{revision}\n"));
        if let Some(e) = t["last_error"].as_str() {
            out.push_str(&format!("  error: {e}\n"));
        }
    }
    out
}

/// A target's lease holder as the asked replica (`me`) last saw it.
fn holder(
    me: &serde_json::Value,
    lease: &serde_json::Value,
    assigned: &std::collections::BTreeMap<String, String>,
) -> String {
    let me = me.as_str().unwrap_or("?");
    if lease["held"].as_bool() == Some(true) {
        return format!("{me} (this replica)");
    }
    if let Some(other) = lease["holder"].as_str() {
        return other.to_owned();
    }
    match lease["key"].as_str().and_then(|k| assigned.get(k)) {
        Some(r) if r != me => format!("{r} (assigned)"),
        _ => "-".to_owned(),
    }
}

/// The replicas' assignment of the leases (key → replica), from the keys and the live
/// replicas `/status` shows: the daemon's own function, so the same answer as theirs.
fn assignment(
    lease: &serde_json::Map<String, serde_json::Value>,
) -> std::collections::BTreeMap<String, String> {
    let keys: Vec<String> = lease["targets"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, t)| t["key"].as_str().map(str::to_owned))
        .collect();
    let replicas: Vec<String> = lease["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    daemon::lease::assign(&keys, &replicas)
}

/// One plain HTTP/1.1 request over a std socket: no runtime, no TLS, a few hundred
/// microseconds, so a health check every 30 s costs the daemon's task nothing.
pub(super) fn healthcheck(args: &HealthcheckArgs) -> Result<ExitCode, Failure> {
    use std::io::Read;
    let mut addr = args.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let status_line = (|| -> io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = Vec::new();
        stream.take(256).read_to_end(&mut head)?;
        let text = String::from_utf8_lossy(&head);
        Ok(text.lines().next().unwrap_or_default().to_owned())
    })()
    .with_context(|| format!("no answer from the status server on {addr}"))
    .map_err(Failure::runtime)?;
    let healthy = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200");
    if healthy {
        print_stdout(&format!("healthy: http://{addr}/healthz\n"))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::runtime(anyhow::anyhow!(
            "http://{addr}/healthz answered `{}`",
            status_line.escape_debug()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::status_table;

    fn target(outcome: &str) -> serde_json::Value {
        serde_json::json!({
            "running": false,
            "last_outcome": outcome,
            "next_run": null,
            "revision": "arn:aws:ecs:us-east-1:123456789012:task-definition/activegate:3",
        })
    }

    #[test]
    fn without_leases_the_table_has_no_holder_column() {
        let v = serde_json::json!({ "targets": { "prod": target("verified") } });
        let table = status_table(&v);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(!lines[0].contains("HOLDER"), "{table}");
        assert!(
            lines[1].starts_with("prod ") && lines[1].ends_with(" activegate:3"),
            "{table}"
        );
    }

    #[test]
    fn with_leases_each_target_shows_its_holder() {
        use activegate_lifecycle::daemon::lease::assign;
        let names = ["t0", "t1", "t2", "t3", "t4", "t5"];
        let key = |n: &str| format!("lease/us-east-1/observability/{n}");
        let keys: Vec<String> = names.iter().map(|n| key(n)).collect();
        let replicas = ["replica-0", "replica-1", "replica-2"].map(String::from);
        let assigned = assign(&keys, &replicas);
        // As replica-0 sees it: it holds what is assigned to it, but one of those (the
        // first) is still held by the replica it was assigned to before.
        let mine: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| assigned[&key(n)] == "replica-0")
            .collect();
        assert!(!mine.is_empty() && mine.len() < names.len(), "{assigned:?}");
        let waiting = mine[0];
        let mut targets = serde_json::Map::new();
        let mut leases = serde_json::Map::new();
        for n in names {
            targets.insert(n.into(), target("verified"));
            let held = mine.contains(&n) && n != waiting;
            let holder = (n == waiting).then_some("replica-2");
            leases.insert(
                n.into(),
                serde_json::json!({ "key": key(n), "held": held, "holder": holder }),
            );
        }
        let v = serde_json::json!({
            "targets": targets,
            "lease": { "replica": "replica-0", "replicas": replicas, "targets": leases },
        });
        let table = status_table(&v);
        let row = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no row {name}: {table}"))
                .to_owned()
        };
        assert!(
            table.lines().next().is_some_and(|h| h.contains(" HOLDER ")),
            "{table}"
        );
        for n in names {
            let expected = if n == waiting {
                " replica-2 ".to_owned()
            } else if mine.contains(&n) {
                " replica-0 (this replica) ".to_owned()
            } else {
                format!(" {} (assigned) ", assigned[&key(n)])
            };
            assert!(row(n).contains(&expected), "{n}: {expected}\n{table}");
            // The revision still comes last.
            assert!(row(n).ends_with(" activegate:3"), "{table}");
        }
        assert!(!row(waiting).contains("this replica"), "{table}");

        // No live replica known yet (before the first round): no assignment, a dash.
        let v = serde_json::json!({
            "targets": { "t0": target("verified") },
            "lease": {
                "replica": "replica-0",
                "replicas": [],
                "targets": { "t0": { "key": key("t0"), "held": false, "holder": null } },
            },
        });
        let table = status_table(&v);
        let cells: Vec<&str> = table
            .lines()
            .nth(1)
            .expect("a row")
            .split_whitespace()
            .collect();
        assert_eq!(
            cells,
            ["t0", "idle", "verified", "-", "-", "activegate:3"],
            "{table}"
        );
    }
}
