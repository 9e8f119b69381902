//! A fleet on one daemon process (#16): 1,000 targets over 10 clusters, 3 regions and 2
//! accounts, 2 tasks each, probe interval 15 s (the product's default), against six
//! simulators in this process — one per region of each account. Account 123456789012 is
//! reached with the daemon's own credentials, account 210987654321 only through a per-target
//! `role_arn` assumed at that simulator's STS (it refuses keys it did not issue). Every
//! simulator throttles ECS with ECS's token buckets and refuses a signature of another
//! region; every target names its simulator (`endpoint_url`), trusts its CA and discovers
//! versions in its registry. The services are created beforehand through the ECS API and
//! the daemon runs with `--no-initial-run`.
//!
//! Three parts, each a markdown table on stdout, all of it in `target/bench/fleet.json`:
//! 1. steady state: AWS calls per second over the window, in total, per simulator and by
//!    operation; throttled calls; RSS, peak RSS, KiB per target;
//! 2. the fleet-wide update: a new version published in every registry, then SIGHUP (every
//!    target reconciled now, `max_parallel` 100, the most the config allows): the time until
//!    every target runs it, RegisterTaskDefinition calls, throttled calls, the lower bound
//!    the RegisterTaskDefinition bucket (burst 20, 1 a second per account and region)
//!    imposes, and the one `max_parallel` imposes (targets × the median reconcile ÷ 100; with
//!    reconciles of about a minute at a 15 s probe interval, that one is the larger); the
//!    downtime and failed probes the availability monitors counted meanwhile;
//! 3. takeover: two replicas with `[daemon.lease]` on a DynamoDB table in moto
//!    (`MOTO_ENDPOINT`, or `.venv/bin/moto_server` started here; skipped, saying why,
//!    without either); once they share the targets, the ECS calls of both over a window (each
//!    watches every target); then one is SIGKILLed and the time until the survivor holds
//!    every target's lease is measured, next to the lease's duration and renewal interval.
//!
//! Run: `cargo bench --bench fleet` (at 1,000 targets on 2 cores: 20 minutes, measured 2
//! December 2026 — 30 s set-up, a 240 s window, 7 minutes of update, two replicas' 240 s window
//! and the takeover — plus about 4 minutes of
//! release build). Shape:
//! `FLEET_TARGETS`, `FLEET_CLUSTERS` (default 1000, 10), `FLEET_WINDOW_SECONDS` (steady-state
//! window, of one daemon and of the two replicas, 240: the observers read the services every
//! 4th poll of 60 s), `FLEET_SETTLE_SECONDS` (after every target is watched, 60: one observer
//! period), `FLEET_LEASE_SECONDS` / `FLEET_RENEW_SECONDS` / `FLEET_MARGIN_SECONDS` (30, 5, 5:
//! the product's defaults). The daemons' logs land in `target/bench/fleet-*.log`.

#[path = "../tests/simkit/mod.rs"]
mod simkit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use activegate_lifecycle::sim::SimOptions;
use serde_json::{Value, json};
use simkit::fleet::*;
use simkit::procfs;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What each simulator enforces: ECS's buckets, its own region's signatures, and in the
/// role's account only keys its STS issued.
fn rules(account: &str, region: &str) -> SimOptions {
    SimOptions {
        ecs_rate_limits: true,
        require_assumed_role: account == ROLE_ACCOUNT,
        check_region: true,
        ..site_options(account, region)
    }
}

/// Whether the targets of `account` assume `ROLE` (the simulators serve STS).
fn assumes_role(account: &str) -> bool {
    account == ROLE_ACCOUNT
}

/// Throttled calls so far, by operation.
fn throttled(site: &Site) -> BTreeMap<String, u64> {
    site.sim.throttled()
}

/// Calls of the whole run signed with the base key, and with keys the simulator's STS issued
/// to the daemon (not to this benchmark's own session).
fn signers(site: &Site) -> (u64, u64) {
    let issued = site.sim.issued_keys();
    let (mut base, mut daemon) = (0, 0);
    for (key, n) in site.sim.calls_by_key() {
        match issued.get(&key) {
            Some(k) if k.session_name != BENCH_SESSION => daemon += n,
            Some(_) => {}
            None => base += n,
        }
    }
    (base, daemon)
}

/// Operations that are not AWS's (the simulated registry and Dynatrace).
fn is_aws(op: &str) -> bool {
    op != "Registry" && op != activegate_lifecycle::sim::dynatrace::OPERATION
}

/// The most targets the daemon rolls at once (`[daemon] max_parallel` allows 1 to 100).
const MAX_PARALLEL: usize = 100;

struct Shape {
    targets: usize,
    clusters: usize,
    window: Duration,
    settle: Duration,
}

fn cluster_name(c: usize) -> String {
    format!("fleet-{c:02}")
}

/// Cluster `c` lives in site `c % sites`; target `i` in cluster `i % clusters`.
fn site_of_target(i: usize, shape: &Shape, sites: usize) -> usize {
    (i % shape.clusters) % sites
}

fn label(site: &Site) -> String {
    format!("{} / {}", site.account, site.region)
}

fn between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn aws_total(calls: &BTreeMap<String, u64>) -> u64 {
    calls
        .iter()
        .filter(|(op, _)| is_aws(op))
        .map(|(_, n)| n)
        .sum()
}

/// The AWS operations' counts, `Op n, …`.
fn by_operation(calls: &BTreeMap<String, u64>) -> String {
    let s = calls
        .iter()
        .filter(|(op, _)| is_aws(op))
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if s.is_empty() { "–".into() } else { s }
}

/// Every site's counters at one moment: calls and throttled calls by operation.
struct Counts {
    calls: Vec<BTreeMap<String, u64>>,
    throttled: Vec<BTreeMap<String, u64>>,
}

impl Counts {
    fn now(sites: &[Site]) -> Counts {
        Counts {
            calls: sites.iter().map(|s| s.sim.calls()).collect(),
            throttled: sites.iter().map(throttled).collect(),
        }
    }

    /// What happened since `self`, per site.
    fn since(&self, sites: &[Site]) -> Counts {
        let later = Counts::now(sites);
        Counts {
            calls: (self.calls.iter().zip(&later.calls))
                .map(|(a, b)| between(a, b))
                .collect(),
            throttled: (self.throttled.iter().zip(&later.throttled))
                .map(|(a, b)| between(a, b))
                .collect(),
        }
    }

    fn calls_total(&self) -> BTreeMap<String, u64> {
        sum(&self.calls)
    }

    fn throttled_total(&self) -> u64 {
        self.throttled.iter().flat_map(|t| t.values()).sum()
    }
}

fn sum(maps: &[BTreeMap<String, u64>]) -> BTreeMap<String, u64> {
    let mut total = BTreeMap::new();
    for m in maps {
        for (op, n) in m {
            *total.entry(op.clone()).or_default() += n;
        }
    }
    total
}

/// The six simulators, started at once, each with its clusters, the seed task definition
/// and its services (created one after another within a site, ECS's CreateService bucket
/// pacing them; the sites in parallel).
async fn start_sites(shape: &Shape) -> Vec<Site> {
    let layout = sites();
    let n = layout.len();
    let mut jobs = tokio::task::JoinSet::new();
    for (k, (account, region)) in layout.into_iter().enumerate() {
        let clusters: Vec<usize> = (0..shape.clusters).filter(|c| c % n == k).collect();
        let services: Vec<(usize, usize)> = (0..shape.targets)
            .map(|i| (i, i % shape.clusters))
            .filter(|(_, c)| c % n == k)
            .collect();
        jobs.spawn(async move {
            let site = Site::start(rules(account, region), assumes_role(account)).await;
            for c in clusters {
                site.sim.create_cluster(&cluster_name(c));
            }
            let seed = site.register_seed().await;
            for (i, c) in services {
                site.create_service(&cluster_name(c), &format!("ag-{i}"), &seed, 2)
                    .await;
            }
            (k, site)
        });
    }
    let mut started: Vec<(usize, Site)> = jobs.join_all().await;
    started.sort_by_key(|(k, _)| *k);
    started.into_iter().map(|(_, s)| s).collect()
}

fn daemon_config(sites: &[Site], shape: &Shape, lease: Option<&str>) -> String {
    let mut text = format!(
        "[daemon]\nstatus_listen = \"127.0.0.1:0\"\nmax_parallel = {}\nshutdown_deadline_seconds = 30\n\n{}[aws]\nmax_attempts = 10\n",
        shape.targets.min(MAX_PARALLEL),
        lease.unwrap_or("")
    );
    for i in 0..shape.targets {
        let site = &sites[site_of_target(i, shape, sites.len())];
        text.push_str(&target_toml(
            site,
            &format!("t{i}"),
            &cluster_name(i % shape.clusters),
            &format!("ag-{i}"),
        ));
    }
    // The daemon refuses a larger file; say so here rather than through its log.
    assert!(
        text.len() <= 1 << 20,
        "the config is {} bytes, more than the 1 MiB a config may have",
        text.len()
    );
    text
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    dir
}

/// `/status`'s targets, or none while it does not answer.
async fn targets_of(d: &Daemon) -> serde_json::Map<String, Value> {
    d.status()
        .await
        .and_then(|s| s["targets"].as_object().cloned())
        .unwrap_or_default()
}

/// Polls `check` every `every` until it is true (true) or `limit` passed (false).
async fn wait_for<F, Fut>(limit: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
    true
}

/// Part 1: the steady state. Returns the JSON of it.
async fn steady_state(sites: &[Site], shape: &Shape, daemon: &Daemon) -> Value {
    let started = Instant::now();
    // Every monitor has started and seen both of its tasks answer.
    let watched = wait_for(Duration::from_secs(900), Duration::from_secs(1), || async {
        targets_of(daemon)
            .await
            .values()
            .filter(|t| t["probes_ok"].as_u64() >= Some(2))
            .count()
            >= shape.targets
    })
    .await;
    assert!(watched, "not every target watched within 900 s");
    let warm = started.elapsed();
    tokio::time::sleep(shape.settle).await;
    let before = Counts::now(sites);
    let cpu_before = procfs::cpu_seconds(daemon.pid);
    tokio::time::sleep(shape.window).await;
    let d = before.since(sites);
    let cpu = procfs::cpu_seconds(daemon.pid) - cpu_before;
    let (rss, peak) = (daemon.rss_mib(), daemon.peak_mib());
    let secs = shape.window.as_secs_f64();
    let calls = d.calls_total();
    let per_second = aws_total(&calls) as f64 / secs;
    let throttled = d.throttled_total();

    println!("\n### Steady state\n");
    println!(
        "| targets | clusters | simulators (regions × accounts) | tasks | probe interval | window | AWS calls per second (goal ≤ 3) | throttled (goal 0) | by operation | RSS | peak RSS (goal ≤ 100 MiB) | per target (peak) | CPU in the window |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | 15 s | {} s | {per_second:.2} | {throttled} | {} | {rss:.1} MiB | {peak:.1} MiB | {:.0} KiB | {cpu:.1} s |",
        shape.targets,
        shape.clusters,
        sites.len(),
        shape.targets * 2,
        shape.window.as_secs(),
        by_operation(&calls),
        peak * 1024.0 / shape.targets as f64,
    );
    println!(
        "\n| simulator (account / region) | clusters | targets | AWS calls per second | by operation | throttled |"
    );
    println!("|---|---|---|---|---|---|");
    let mut per_site = Vec::new();
    for (k, site) in sites.iter().enumerate() {
        let clusters = (0..shape.clusters).filter(|c| c % sites.len() == k).count();
        let targets = (0..shape.targets)
            .filter(|i| site_of_target(*i, shape, sites.len()) == k)
            .count();
        let rate = aws_total(&d.calls[k]) as f64 / secs;
        let t: u64 = d.throttled[k].values().sum();
        println!(
            "| {} | {clusters} | {targets} | {rate:.2} | {} | {t} |",
            label(site),
            by_operation(&d.calls[k])
        );
        per_site.push(
            json!({"site": label(site), "clusters": clusters, "targets": targets,
            "calls": d.calls[k], "calls_per_second": rate, "throttled": d.throttled[k]}),
        );
    }
    println!(
        "\n(every target watched {:.1} s after the daemon started; window from {:.0} s after that)",
        warm.as_secs_f64(),
        shape.settle.as_secs_f64()
    );
    json!({
        "window_seconds": shape.window.as_secs(),
        "calls": calls,
        "calls_per_second": per_second,
        "throttled": throttled,
        "per_simulator": per_site,
        "rss_mib": rss,
        "peak_rss_mib": peak,
        "kib_per_target_peak": peak * 1024.0 / shape.targets as f64,
        "cpu_seconds_in_window": cpu,
        "watched_after_seconds": warm.as_secs_f64(),
    })
}

/// Targets that run `NEW` only, 2 tasks of it (from the simulators).
fn on_new(sites: &[Site], shape: &Shape) -> usize {
    (0..shape.targets)
        .filter(|i| {
            let images =
                sites[site_of_target(*i, shape, sites.len())].running_images(&format!("ag-{i}"));
            images.len() == 1
                && images
                    .iter()
                    .all(|(image, n)| image.contains(&format!(":{NEW}")) && *n == 2)
        })
        .count()
}

/// Each target's last reconcile, start to finish (from `/status`), seconds, sorted.
fn reconcile_seconds(targets: &serde_json::Map<String, Value>) -> Vec<f64> {
    let at = |t: &Value, field: &str| {
        t[field]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    let mut took: Vec<f64> = targets
        .values()
        .filter_map(|t| Some((at(t, "last_finished")? - at(t, "last_started")?).as_seconds_f64()))
        .collect();
    took.sort_by(f64::total_cmp);
    took
}

/// Services the simulator counted with no healthy task at some moment since `since`
/// (simulated seconds): ECS's own view, beside what the monitors probed.
fn without_healthy_task(site: &Site, since: f64) -> usize {
    let services: std::collections::BTreeSet<String> = site
        .sim
        .timeline()
        .into_iter()
        .filter(|e| e.time >= since && e.kind == "healthy-count" && e.detail == "0")
        .map(|e| e.subject)
        .collect();
    services.len()
}

/// What the monitors saw, summed over the targets: downtime seconds and failed probes.
fn seen(targets: &serde_json::Map<String, Value>) -> (f64, u64) {
    targets.values().fold((0.0, 0), |(d, f), t| {
        (
            d + t["downtime_seconds"].as_f64().unwrap_or(0.0),
            f + t["probes_failed"].as_u64().unwrap_or(0),
        )
    })
}

/// The `q` quantile of sorted values (0 when there are none).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Part 2: the fleet-wide update. Returns the JSON of it.
async fn update(sites: &[Site], shape: &Shape, daemon: &Daemon) -> Value {
    for site in sites {
        site.sim.publish_tag(REPO_NAME, NEW);
    }
    let seen_before = seen(&targets_of(daemon).await);
    let sim_started: Vec<f64> = sites.iter().map(|s| s.sim.now()).collect();
    let before = Counts::now(sites);
    let started = Instant::now();
    daemon.signal("HUP");
    // Every target reconciled once (the daemon ran none before: --no-initial-run) and idle.
    let deadline = Instant::now() + Duration::from_secs(1800);
    let (outcomes, took, seen_after) = loop {
        let t = targets_of(daemon).await;
        let done = t.len() == shape.targets
            && t.values()
                .all(|t| t["running"].as_bool() == Some(false) && t["last_outcome"].is_string());
        if done {
            let mut outcomes = BTreeMap::new();
            for t in t.values() {
                let o = t["last_outcome"].as_str().unwrap_or("?").to_owned();
                *outcomes.entry(o).or_insert(0u64) += 1;
            }
            break (outcomes, reconcile_seconds(&t), seen(&t));
        }
        assert!(
            Instant::now() < deadline,
            "not every target reconciled within 1800 s of SIGHUP"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let reconciled = started.elapsed();
    // ECS may still be stopping the old tasks: wait (a while) until only NEW runs.
    let limit = Instant::now() + Duration::from_secs(120);
    let mut new = on_new(sites, shape);
    while new < shape.targets && Instant::now() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        new = on_new(sites, shape);
    }
    let all_new = started.elapsed();
    let without_healthy: usize = sites
        .iter()
        .zip(&sim_started)
        .map(|(site, since)| without_healthy_task(site, *since))
        .sum();
    let (downtime, failed_probes) = (
        seen_after.0 - seen_before.0,
        seen_after.1.saturating_sub(seen_before.1),
    );
    let (median, slowest) = (quantile(&took, 0.5), quantile(&took, 1.0));
    // With max_parallel targets at a time, each taking the median, the daemon's own pace.
    let parallel_bound = shape.targets as f64 * median / shape.targets.min(MAX_PARALLEL) as f64;
    let d = before.since(sites);
    let calls = d.calls_total();
    let registers = calls.get("RegisterTaskDefinition").copied().unwrap_or(0);
    let throttled = d.throttled_total();
    let bounds: Vec<u64> = (0..sites.len())
        .map(|k| {
            let n = d.calls[k]
                .get("RegisterTaskDefinition")
                .copied()
                .unwrap_or(0);
            n.saturating_sub(20)
        })
        .collect();
    let bound = bounds.iter().copied().max().unwrap_or(0);
    let peak = daemon.peak_mib();

    println!("\n### The fleet-wide update (a new version in every registry, then SIGHUP)\n");
    println!(
        "| targets | max_parallel | every target reconciled | every target on the new version (ECS) | outcomes | one reconcile (median / slowest) | RegisterTaskDefinition | throttled (goal 0) | lower bound of the buckets: max over (account, region) of (n − 20) / 1 s | lower bound of max_parallel: targets × median / max_parallel | downtime the monitors counted (sum) | failed probes | services ECS saw with no healthy task | AWS calls | peak RSS so far |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} s | {new} of {} at {:.1} s | {} | {median:.1} s / {slowest:.1} s | {registers} | {throttled} | {bound} s | {parallel_bound:.0} s | {downtime:.0} s | {failed_probes} | {without_healthy} | {} | {peak:.1} MiB |",
        shape.targets,
        shape.targets.min(MAX_PARALLEL),
        reconciled.as_secs_f64(),
        shape.targets,
        all_new.as_secs_f64(),
        outcomes
            .iter()
            .map(|(o, n)| format!("{o} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        aws_total(&calls),
    );
    println!(
        "\n| simulator (account / region) | RegisterTaskDefinition (n) | (n − 20) / 1 s | throttled | AWS calls by operation |"
    );
    println!("|---|---|---|---|---|");
    let mut per_site = Vec::new();
    for (k, site) in sites.iter().enumerate() {
        let n = d.calls[k]
            .get("RegisterTaskDefinition")
            .copied()
            .unwrap_or(0);
        println!(
            "| {} | {n} | {} s | {} | {} |",
            label(site),
            bounds[k],
            by_operation(&d.throttled[k]),
            by_operation(&d.calls[k])
        );
        per_site.push(json!({"site": label(site), "register_task_definition": n,
            "bound_seconds": bounds[k], "throttled": d.throttled[k], "calls": d.calls[k]}));
    }
    json!({
        "reconciled_seconds": reconciled.as_secs_f64(),
        "on_new_version": new,
        "on_new_version_seconds": all_new.as_secs_f64(),
        "outcomes": outcomes,
        "max_parallel": shape.targets.min(MAX_PARALLEL),
        "reconcile_median_seconds": median,
        "reconcile_slowest_seconds": slowest,
        "max_parallel_bound_seconds": parallel_bound,
        "downtime_seconds_sum": downtime,
        "failed_probes": failed_probes,
        "services_without_healthy_task": without_healthy,
        "register_task_definition": registers,
        "throttled": throttled,
        "bound_seconds": bound,
        "calls": calls,
        "per_simulator": per_site,
        "peak_rss_mib": peak,
    })
}

/// How many leases a replica holds, and how many live replicas it sees.
async fn lease_view(d: &Daemon) -> Option<(u64, usize)> {
    let s = d.status().await?;
    let l = &s["lease"];
    Some((l["held"].as_u64()?, l["replicas"].as_array()?.len()))
}

/// A replica's failed lease rounds and its last lease error.
async fn lease_errors(d: &Daemon) -> Option<(u64, Option<String>)> {
    let s = d.status().await?;
    let l = &s["lease"];
    Some((
        l["round_errors"].as_u64()?,
        l["last_error"].as_str().map(str::to_owned),
    ))
}

/// Part 3: two replicas on one lease table; SIGKILL one. Returns the JSON of it.
async fn takeover(sites: &[Site], shape: &Shape, dir: &Path) -> Value {
    let moto = match Moto::find_or_start().await {
        Ok(m) => m,
        Err(why) => {
            println!("\n### Takeover\n\nskipped: {why}");
            return json!({"skipped": why});
        }
    };
    let duration = env_or("FLEET_LEASE_SECONDS", 30);
    let renew = env_or("FLEET_RENEW_SECONDS", 5);
    let margin = env_or("FLEET_MARGIN_SECONDS", 5);
    let table = lease_table(&moto.endpoint).await;
    let lease = format!(
        "[daemon.lease]\ntable = \"{table}\"\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\nduration_seconds = {duration}\nrenew_seconds = {renew}\nmargin_seconds = {margin}\n\n",
        moto.endpoint
    );
    let path = dir.join("replicas.toml");
    std::fs::write(&path, daemon_config(sites, shape, Some(&lease))).expect("write config");
    let out = out_dir();
    let mut replicas = Vec::new();
    for id in ["replica-a", "replica-b"] {
        let log = out.join(format!("fleet-{id}.log"));
        replicas
            .push(Daemon::start(id, &path, &["--no-initial-run", "--replica-id", id], &log).await);
    }
    let started = Instant::now();
    let targets = shape.targets as u64;
    let sharing = wait_for(
        Duration::from_secs(600),
        Duration::from_millis(500),
        || async {
            let (Some(a), Some(b)) = (
                lease_view(&replicas[0]).await,
                lease_view(&replicas[1]).await,
            ) else {
                return false;
            };
            a.1 == 2 && b.1 == 2 && a.0 > 0 && b.0 > 0 && a.0 + b.0 == targets
        },
    )
    .await;
    let shared = started.elapsed();
    if !sharing {
        let why = format!(
            "the two replicas did not share the {targets} leases within 600 s (held: {:?} / {:?}; lease rounds: {:?} / {:?})",
            lease_view(&replicas[0]).await,
            lease_view(&replicas[1]).await,
            lease_errors(&replicas[0]).await,
            lease_errors(&replicas[1]).await,
        );
        println!("\n### Takeover\n\nnot measured: {why}");
        return json!({"failed": why});
    }
    // Both replicas watch every target (only the holder writes): the ECS calls of the pair.
    tokio::time::sleep(shape.settle).await;
    let before = Counts::now(sites);
    tokio::time::sleep(shape.window).await;
    let pair = before.since(sites);
    let pair_calls = pair.calls_total();
    let pair_per_second = aws_total(&pair_calls) as f64 / shape.window.as_secs_f64();
    let pair_throttled = pair.throttled_total();
    let held_before: Vec<u64> = {
        let mut v = Vec::new();
        for r in &replicas {
            v.push(lease_view(r).await.map_or(0, |l| l.0));
        }
        v
    };
    let mut survivor = replicas.pop().expect("two replicas");
    let mut victim = replicas.pop().expect("two replicas");
    let victim_peak = victim.peak_mib();
    let killed = Instant::now();
    victim.sigkill().await;
    let all = wait_for(
        Duration::from_secs(600),
        Duration::from_millis(250),
        || async { lease_view(&survivor).await.is_some_and(|l| l.0 == targets) },
    )
    .await;
    let took = killed.elapsed();
    let survivor_peak = survivor.peak_mib();
    let errors = lease_errors(&survivor).await;
    if !all {
        let why = format!(
            "the survivor did not hold every lease within 600 s of the SIGKILL (held: {:?}; lease rounds: {errors:?})",
            lease_view(&survivor).await
        );
        println!("\n### Takeover\n\nnot measured: {why}");
        survivor.terminate().await;
        return json!({"failed": why});
    }
    survivor.terminate().await;

    println!("\n### Takeover (two replicas, `[daemon.lease]` on moto's DynamoDB)\n");
    println!(
        "| targets | lease duration | renew interval | margin | both replicas sharing after | ECS calls per second of both (goal ≤ 3), throttled | by operation ({} s) | held before the kill ({} / {}) | survivor holds every lease after SIGKILL | survivor's failed lease rounds (whole run) | peak RSS {} | peak RSS {} |",
        shape.window.as_secs(),
        victim.name,
        survivor.name,
        victim.name,
        survivor.name
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {duration} s | {renew} s | {margin} s | {:.1} s | {pair_per_second:.2}, {pair_throttled} | {} | {} / {} | **{:.1} s** | {} | {victim_peak:.1} MiB | {survivor_peak:.1} MiB |",
        shape.targets,
        shared.as_secs_f64(),
        by_operation(&pair_calls),
        held_before[0],
        held_before[1],
        took.as_secs_f64(),
        errors.as_ref().map_or("?".into(), |e| e.0.to_string()),
    );
    json!({
        "lease_duration_seconds": duration,
        "renew_seconds": renew,
        "margin_seconds": margin,
        "shared_after_seconds": shared.as_secs_f64(),
        "both_replicas": {"window_seconds": shape.window.as_secs(), "calls": pair_calls,
            "calls_per_second": pair_per_second, "throttled": pair_throttled},
        "held_before_kill": {victim.name.clone(): held_before[0], survivor.name.clone(): held_before[1]},
        "takeover_seconds": took.as_secs_f64(),
        "survivor_lease_round_errors": errors.as_ref().map(|e| e.0),
        "survivor_last_lease_error": errors.and_then(|e| e.1),
        "peak_rss_mib": {victim.name.clone(): victim_peak, survivor.name.clone(): survivor_peak},
    })
}

/// Who signed the calls of the whole run, per simulator (printed and returned as JSON).
fn credentials(sites: &[Site]) -> Value {
    println!("\n### Credentials (whole run, this benchmark's own calls included)\n");
    println!(
        "| simulator (account / region) | AssumeRole calls | calls signed with keys its STS issued to the daemon | calls signed with the base key |"
    );
    println!("|---|---|---|---|");
    let mut rows = Vec::new();
    for site in sites {
        let assumed = site.sim.calls().get("AssumeRole").copied().unwrap_or(0);
        let (base, daemon) = signers(site);
        println!("| {} | {assumed} | {daemon} | {base} |", label(site));
        rows.push(json!({"site": label(site), "assume_role": assumed, "daemon_issued_keys": daemon, "base_key": base}));
    }
    Value::Array(rows)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let shape = Shape {
        targets: env_or("FLEET_TARGETS", 1000) as usize,
        clusters: env_or("FLEET_CLUSTERS", 10) as usize,
        window: Duration::from_secs(env_or("FLEET_WINDOW_SECONDS", 240)),
        settle: Duration::from_secs(env_or("FLEET_SETTLE_SECONDS", 60)),
    };
    let begun = Instant::now();
    let sites = start_sites(&shape).await;
    let setup = begun.elapsed();
    // Written after each part, so that a part that fails leaves the ones before it.
    let mut out = json!({
        "targets": shape.targets,
        "clusters": shape.clusters,
        "simulators": sites.iter().map(label).collect::<Vec<_>>(),
        "setup_seconds": setup.as_secs_f64(),
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fleet.toml");
    std::fs::write(&path, daemon_config(&sites, &shape, None)).expect("write config");
    let log = out_dir().join("fleet-daemon.log");
    let mut daemon = Daemon::start("fleet", &path, &["--no-initial-run"], &log).await;
    out["steady_state"] = steady_state(&sites, &shape, &daemon).await;
    save(&out);
    out["update"] = update(&sites, &shape, &daemon).await;
    save(&out);
    daemon.terminate().await;
    out["takeover"] = takeover(&sites, &shape, dir.path()).await;
    out["credentials"] = credentials(&sites);
    out["run_seconds"] = json!(begun.elapsed().as_secs_f64());
    save(&out);
    println!(
        "\n(setup: six simulators and {} services in {:.1} s; whole run {:.1} s)",
        shape.targets,
        setup.as_secs_f64(),
        begun.elapsed().as_secs_f64()
    );
    for site in sites {
        site.sim.shutdown().await;
    }
}

fn save(out: &Value) {
    std::fs::write(out_dir().join("fleet.json"), out.to_string()).expect("write JSON");
}
