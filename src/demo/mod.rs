//! `activegate-lifecycle demo`: the whole cycle in about a minute, with no AWS
//! account. The embedded simulator plays ECS and a registry; the real daemon
//! code rolls out a new version on its schedule, rolls a broken one back and
//! quarantines it, and finds nothing to do on a manual trigger.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use activegate_lifecycle::config::Config;
use activegate_lifecycle::daemon::{self, Signal, board::Board, board::TargetStatus};
use activegate_lifecycle::sim::{Behaviour, Mode, Sim, SimHandle, SimOptions};
use activegate_lifecycle::status;

use crate::cli::{DemoArgs, print_stdout_text as say};

mod chart;

const MANIFEST: &str = include_str!("../../tests/fixtures/activegate-k8s.yaml");
const NAME: &str = "dynatrace/dynatrace-activegate";
const REPO: &str = "public.ecr.aws/dynatrace/dynatrace-activegate";
const V1: &str = "1.301.70.20241127-162512";
const V2: &str = "1.303.10.20250115-101010";
const BROKEN: &str = "1.305.0.20250301-000000";
const SPEED: f64 = 60.0;

fn config(endpoint: &str, dir: &std::path::Path) -> String {
    format!(
        r#"[daemon]
status_listen = "127.0.0.1:0"
shutdown_deadline_seconds = 60

[aws]
endpoint_url = "{endpoint}"

[[target]]
name = "demo"
region = "us-east-1"
cluster = "demo"
service = "dynatrace-activegate"
execution_role_arn = "arn:aws:iam::123456789012:role/activegate-execution"
desired_count = 2
manifest = "{manifest}"
schedule = "*/4 * * * * *"

[target.network]
subnets = ["subnet-0123456789abcdef0"]

[target.logs]
group = "/ecs/dynatrace-activegate"
retention_days = 7

[target.secrets]
tenant_token = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dynatrace/tenant-token-AbCdEf"

[target.environment]
DT_TENANT = "abc12345"
DT_SERVER = "https://abc12345.live.dynatrace.com:443/communication"

[target.rollout]
bake_seconds = 1.5
deadline_seconds = 60

[target.probe]
interval_seconds = 0.25
timeout_seconds = 1
grace_seconds = 2
healthy_after = 2
unhealthy_after = 3
ca_bundle = "{ca}"

[target.versions]
source = "registry"
repository = "{REPO}"
registry_url = "{endpoint}"
"#,
        manifest = dir.join("activegate.yaml").display(),
        ca = dir.join("ca.pem").display(),
    )
}

struct Story {
    version: &'static str,
    outcome: String,
    seconds: f64,
    lowest_healthy: usize,
    /// Samples (every 100 ms) in which no task was healthy, once the service had one.
    none_healthy: usize,
    /// Simulated seconds from the rollout to the roll-back call, and from it to the good
    /// revision running alone again (from the simulator's timeline).
    detect: Option<f64>,
    roll_back: Option<f64>,
}

/// What the demo saw, sample by sample, for the timeline chart.
struct Recorder {
    start: Instant,
    timeline: chart::Timeline,
    probes: (u64, u64),
    ever_healthy: bool,
}

impl Recorder {
    fn sample(&mut self, sim: &SimHandle, t: &TargetStatus) -> chart::Sample {
        let mut revisions = Vec::new();
        for (rev, image, running, healthy) in sim.tasks_by_revision("dynatrace-activegate") {
            let without_digest = image.split('@').next().unwrap_or(&image);
            let version = without_digest
                .rsplit(':')
                .next()
                .unwrap_or(without_digest)
                .split('.')
                .take(3)
                .collect::<Vec<_>>()
                .join(".");
            self.timeline.names.entry(rev).or_insert(version);
            revisions.push((rev, running, healthy));
        }
        let s = chart::Sample {
            t: self.start.elapsed().as_secs_f64(),
            revisions,
            probes_ok: t.probes_ok.saturating_sub(self.probes.0),
            probes_failed: t.probes_failed.saturating_sub(self.probes.1),
        };
        self.probes = (t.probes_ok, t.probes_failed);
        self.timeline.samples.push(s.clone());
        s
    }

    fn mark(&mut self, label: &str) {
        self.timeline
            .markers
            .push((self.start.elapsed().as_secs_f64(), label.to_owned()));
    }
}

/// The demo's one target as the board shows it now.
fn demo_target(board: &Board) -> TargetStatus {
    board
        .snapshot()
        .targets
        .get("demo")
        .cloned()
        .unwrap_or_default()
}

fn outcomes(t: &TargetStatus) -> u64 {
    t.outcomes.values().sum::<u64>() + t.errors.values().sum::<u64>()
}

/// Waits for the next finished reconcile; prints the timeline meanwhile.
async fn next_outcome(
    board: &Board,
    sim: &SimHandle,
    rec: &mut Recorder,
    seen: &mut u64,
) -> anyhow::Result<(TargetStatus, usize, usize)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_line = String::new();
    let mut lowest = usize::MAX;
    let mut none_healthy = 0;
    let mut started = false;
    loop {
        let t = demo_target(board);
        let sample = rec.sample(sim, &t);
        let healthy = sample.healthy();
        let total: usize = sample.revisions.iter().map(|r| r.1).sum();
        rec.ever_healthy |= healthy > 0;
        if t.running {
            started = true;
        }
        if started {
            lowest = lowest.min(healthy);
        }
        if rec.ever_healthy && healthy == 0 {
            none_healthy += 1;
        }
        let per_revision: Vec<String> = sample
            .revisions
            .iter()
            .map(|(rev, running, healthy)| format!("rev {rev}: {healthy}/{running}"))
            .collect();
        let line = format!(
            "{:>6.1} s  {:<8} healthy {healthy}/{total}  [{}]  serving {}",
            sample.t,
            if t.running { "rolling" } else { "idle" },
            per_revision.join(", "),
            t.revision
                .as_deref()
                .and_then(|r| r.rsplit('/').next())
                .unwrap_or("-"),
        );
        if line[9..] != last_line.get(9..).unwrap_or_default()[..] {
            say(&format!("  {line}\n"))?;
            last_line = line;
        }
        if outcomes(&t) > *seen && !t.running {
            *seen = outcomes(&t);
            return Ok((
                t,
                if lowest == usize::MAX {
                    healthy
                } else {
                    lowest
                },
                none_healthy,
            ));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the demo's target did not settle within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let sim = Sim::start(SimOptions {
        listen: "127.0.0.1:0".parse()?,
        speed: SPEED,
        ..SimOptions::default()
    })
    .await
    .context("cannot start the simulator")?;
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("ca.pem"), sim.ca_pem())?;
    std::fs::write(dir.join("activegate.yaml"), MANIFEST)?;
    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, config(sim.endpoint(), &dir))?;
    let config = Config::load(&config_path).context("the demo's config")?;
    sim.create_cluster("demo");
    for (v, mode) in [
        (V1, Mode::Healthy),
        (V2, Mode::Healthy),
        (BROKEN, Mode::NeverHealthy),
    ] {
        sim.set_image(
            &format!("{REPO}:{v}"),
            Behaviour {
                start_seconds: Some(45.0),
                ..Behaviour::of(mode)
            },
        );
    }
    sim.publish_tag(NAME, V1);

    say(&format!(
        "activegate-lifecycle demo\n  simulator (ECS, CloudWatch Logs, registry) at {}, time × {SPEED}: a 45 s ActiveGate start takes {:.2} s\n  target: service dynatrace-activegate, 2 tasks, from the example Kubernetes manifest; schedule every 4 s\n\n",
        sim.endpoint(),
        45.0 / SPEED
    ))?;
    let board = Arc::new(Board::default());
    let server = status::serve(
        config.daemon.status_listen,
        crate::cli::status_sources(&board, None),
    )
    .await?;
    let (signals, rx) = mpsc::channel(4);
    let options = daemon::Options {
        adjust_client: Arc::new(|c| {
            c.static_credentials = Some(("AKIDDEMO".into(), "demo".into()))
        }),
        ..daemon::Options::default()
    };
    let daemon = tokio::spawn(daemon::run(
        config_path.clone(),
        config,
        board.clone(),
        options,
        rx,
    ));

    let mut stories = Vec::new();
    let mut seen = 0;
    let mut rec = Recorder {
        start,
        timeline: chart::Timeline::default(),
        probes: (0, 0),
        ever_healthy: false,
    };
    enum Act {
        Start,
        Publish(&'static str),
        Trigger,
    }
    let plan = [
        (
            format!("0. at start: the service is created with ActiveGate {V1}, the only version published\n"),
            "0. created",
            Act::Start,
            None,
            V1,
        ),
        (
            format!("\n1. ActiveGate {V2} is published; the next scheduled run rolls it out and verifies it\n"),
            "1. new version",
            Act::Publish(V2),
            Some("verified"),
            V2,
        ),
        (
            format!("\n2. a broken {BROKEN} is published: it never answers healthy; it is rolled back and quarantined\n"),
            "2. broken version",
            Act::Publish(BROKEN),
            Some("rolled-back"),
            BROKEN,
        ),
        (
            "\n3. a manual trigger (what SIGHUP does): the broken version stays quarantined, nothing to do\n".to_owned(),
            "3. manual trigger",
            Act::Trigger,
            None,
            V2,
        ),
    ];
    for (headline, marker, act, until, version) in plan {
        say(&headline)?;
        rec.mark(marker);
        let from = sim.now();
        match act {
            Act::Start => {}
            Act::Publish(v) => {
                sim.publish_tag(NAME, v);
            }
            Act::Trigger => {
                signals.send(Signal::Reload).await.ok();
            }
        }
        let (t, low, none) = match until {
            Some(outcome) => next_until(&board, &sim, &mut rec, &mut seen, outcome).await?,
            None => next_outcome(&board, &sim, &mut rec, &mut seen).await?,
        };
        let mut s = story(version, &t, low, none, &sim, from);
        if matches!(act, Act::Start) {
            s.outcome = format!("{} (service created)", s.outcome);
        }
        stories.push(s);
    }
    // A last look, so that the chart shows the end state.
    rec.sample(&sim, &demo_target(&board));

    say(&format!(
        "\nDetection and roll-back in ActiveGate time (the simulator runs {SPEED:.0}× faster); a moment is a 100 ms sample.\n\n| version | outcome | reconcile (real) | time to detect | time to roll back | fewest healthy | moments with no healthy task |\n|---|---|---|---|---|---|---|\n"
    ))?;
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.0} s"));
    for s in &stories {
        say(&format!(
            "| {} | {} | {:.1} s | {} | {} | {}/2 | {} |\n",
            s.version,
            s.outcome,
            s.seconds,
            secs(s.detect),
            secs(s.roll_back),
            s.lowest_healthy,
            s.none_healthy
        ))?;
    }
    let svg = chart::render(
        &rec.timeline,
        "activegate-lifecycle demo: tasks per revision, healthy tasks, probe results",
    );
    std::fs::write(&args.svg, svg)
        .with_context(|| format!("cannot write the chart to {}", args.svg.display()))?;
    say(&format!(
        "\ntimeline chart: {}\ndone in {:.0} s\n",
        args.svg.display(),
        start.elapsed().as_secs_f64()
    ))?;

    if args.keep_running {
        say(&format!(
            "\nstill running: status at http://{0}/status and /metrics; simulator control at {1}/sim/v1/; Ctrl-C to stop\n",
            server.addr,
            sim.endpoint()
        ))?;
        let _ = tokio::signal::ctrl_c().await;
    }
    signals.send(Signal::Terminate).await.ok();
    let _ = daemon.await;
    server.stop().await;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Waits until a reconcile ends with `outcome` (scheduled runs in between print as they go).
async fn next_until(
    board: &Board,
    sim: &SimHandle,
    rec: &mut Recorder,
    seen: &mut u64,
    outcome: &str,
) -> anyhow::Result<(TargetStatus, usize, usize)> {
    let mut none_healthy = 0;
    loop {
        let (t, low, none) = next_outcome(board, sim, rec, seen).await?;
        none_healthy += none;
        if t.last_outcome.as_deref() == Some(outcome) {
            return Ok((t, low, none_healthy));
        }
    }
}

fn story(
    version: &'static str,
    t: &TargetStatus,
    lowest_healthy: usize,
    none_healthy: usize,
    sim: &SimHandle,
    from: f64,
) -> Story {
    let seconds = match (t.last_started, t.last_finished) {
        (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    let (detect, roll_back) = if t.last_outcome.as_deref() == Some("rolled-back") {
        rollback_times(&sim.timeline(), from)
    } else {
        (None, None)
    };
    Story {
        version,
        outcome: t
            .last_outcome
            .clone()
            .or_else(|| t.last_error.clone())
            .unwrap_or_default(),
        seconds,
        lowest_healthy,
        none_healthy,
        detect,
        roll_back,
    }
}

/// From the simulator's timeline after `from`: the rollout's UpdateService, the roll-back's
/// UpdateService, and the restored revision's deployment completing.
fn rollback_times(
    timeline: &[activegate_lifecycle::sim::TimelineEvent],
    from: f64,
) -> (Option<f64>, Option<f64>) {
    let updates: Vec<&activegate_lifecycle::sim::TimelineEvent> = timeline
        .iter()
        .filter(|e| e.time >= from && e.kind == "service-updated")
        .collect();
    let (Some(rollout), Some(back)) = (updates.first(), updates.get(1)) else {
        return (None, None);
    };
    let restored = back
        .detail
        .strip_prefix("task definition ")
        .and_then(|d| d.split(',').next())
        .unwrap_or_default();
    let completed = timeline
        .iter()
        .find(|e| e.time >= back.time && e.kind == "deployment-completed" && e.detail == restored);
    (
        Some(back.time - rollout.time),
        completed.map(|c| c.time - back.time),
    )
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("activegate-lifecycle-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
