//! `activegate-lifecycle demo`: the whole cycle in well under a minute, with no AWS account.
//! The embedded simulator plays ECS and a registry; the real daemon code creates a blue/green
//! service (ECS task sets), rolls out a new version beside the last good one (green beside
//! blue) and promotes it once it baked, deletes a green that never answers healthy and one
//! that turns bad during its bake while blue keeps serving, quarantines both, and finds
//! nothing to do on a manual trigger.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use activegate_lifecycle::config::{Config, ConfigError};
use activegate_lifecycle::daemon::{self, Signal, board::Board, board::TargetStatus};
use activegate_lifecycle::model::ids::{ImageRef, TaskDefinitionArn};
use activegate_lifecycle::sim::{Behaviour, Mode, Sim, SimError, SimHandle, SimOptions};
use activegate_lifecycle::status;

use crate::cli::DemoArgs;
use story::{Act, Chapter, Rollout, Story, chapters, story, summary, tell};

mod chart;
mod story;

const MANIFEST: &str = include_str!("../../tests/fixtures/activegate-k8s.yaml");
const NAME: &str = "dynatrace/dynatrace-activegate";
const REPO: &str = "public.ecr.aws/dynatrace/dynatrace-activegate";
const V1: &str = "1.301.70.20241127-162512";
const V2: &str = "1.303.10.20250115-101010";
/// Never answers healthy.
const BROKEN: &str = "1.305.0.20250301-000000";
/// Healthy after its start, then 503 from [`TURNS_BAD_AFTER`] after RUNNING.
const LATE: &str = "1.307.2.20250410-080000";
const SPEED: f64 = 60.0;
/// Simulated seconds an ActiveGate takes to start.
const START: f64 = 45.0;
/// Simulated seconds after RUNNING at which [`LATE`] starts answering 503 (2.5 minutes).
const TURNS_BAD_AFTER: f64 = 150.0;
/// The bake, in real seconds (× [`SPEED`]: 4 minutes of ActiveGate time), long enough that
/// [`LATE`] turns bad, and is caught, before its green task set is promoted.
const BAKE: f64 = 4.0;

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
strategy = "blue-green"
bake_seconds = {BAKE}
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

/// Why the demo stopped. `cli` prints it with its causes and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the simulator")]
    Simulator(#[source] SimError),
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    #[error("the demo's config")]
    Config(#[source] ConfigError),
    #[error("cannot serve status on {listen}")]
    Status {
        listen: SocketAddr,
        #[source]
        error: io::Error,
    },
    #[error("cannot write to stdout")]
    Stdout(#[source] io::Error),
    #[error("the demo's target did not settle within {seconds} s")]
    NotSettled { seconds: u64 },
    #[error("cannot write the chart to {}", path.display())]
    Chart {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
}

/// Tells the story on stdout (a closed pipe is not an error: `cli::write_stdout`).
fn say(text: &str) -> Result<(), DemoError> {
    crate::cli::write_stdout(text).map_err(DemoError::Stdout)
}

/// Writes one of the files the daemon reads.
fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), DemoError> {
    std::fs::write(path, contents).map_err(|error| DemoError::Write {
        path: path.to_owned(),
        error,
    })
}

/// What the demo saw, sample by sample, for the timeline chart.
struct Recorder {
    start: Instant,
    timeline: chart::Timeline,
    probes: (u64, u64),
    ever_healthy: bool,
}

/// `…/task-definition/family:3` → 3.
fn revision_number(arn: &str) -> Option<u32> {
    TaskDefinitionArn::parse(arn).ok().map(|a| a.revision())
}

/// `repo:1.303.10.20250115-101010@sha256:…` → `1.303.10`.
fn short_version(image: &str) -> String {
    let parsed = ImageRef::parse(image).ok();
    parsed
        .as_ref()
        .and_then(ImageRef::tag)
        .unwrap_or(image)
        .split('.')
        .take(3)
        .collect::<Vec<_>>()
        .join(".")
}

impl Recorder {
    fn sample(&mut self, sim: &SimHandle, t: &TargetStatus) -> chart::Sample {
        let mut revisions = Vec::new();
        for (rev, image, running, healthy) in sim.tasks_by_revision("dynatrace-activegate") {
            self.timeline
                .names
                .entry(rev)
                .or_insert_with(|| short_version(&image));
            revisions.push((rev, running, healthy));
        }
        let s = chart::Sample {
            t: self.start.elapsed().as_secs_f64(),
            revisions,
            serving: t.revision.as_deref().and_then(revision_number),
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
) -> Result<(TargetStatus, usize, usize), DemoError> {
    const SETTLE_SECONDS: u64 = 60;
    let deadline = Instant::now() + Duration::from_secs(SETTLE_SECONDS);
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
            .map(|(rev, running, healthy)| {
                let role = sample.role(*rev).map_or(String::new(), |r| format!("{r} "));
                format!("{role}rev {rev}: {healthy}/{running}")
            })
            .collect();
        let line = format!(
            "{:>6.1} s  {:<8} healthy {healthy}/{total}  [{}]  serving {}",
            sample.t,
            if t.running { "rolling" } else { "idle" },
            per_revision.join(", "),
            t.revision
                .as_deref()
                .map_or_else(|| "-".to_owned(), TaskDefinitionArn::shorten),
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
        if Instant::now() >= deadline {
            return Err(DemoError::NotSettled {
                seconds: SETTLE_SECONDS,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: &DemoArgs) -> Result<(), DemoError> {
    let start = Instant::now();
    let (world, config) = World::start().await?;
    say(&format!(
        "activegate-lifecycle demo\n  simulator (ECS, CloudWatch Logs, registry) at {}, time × {SPEED}: a {START:.0} s ActiveGate start takes {:.2} s\n  target: service dynatrace-activegate, 2 tasks, from the example Kubernetes manifest; schedule every 4 s\n  blue/green: blue is the last good task set, serving; a new version runs as a green task set beside it until it baked\n\n",
        world.sim.endpoint(),
        START / SPEED
    ))?;
    let running = Running::start(&world, config).await?;

    let mut stories = Vec::new();
    let mut seen = 0;
    let mut rec = Recorder {
        start,
        timeline: chart::Timeline::default(),
        probes: (0, 0),
        ever_healthy: false,
    };
    for (number, chapter) in chapters().into_iter().enumerate() {
        stories.push(play(number, &chapter, &world.sim, &running, &mut rec, &mut seen).await?);
    }
    // A last look, so that the chart shows the end state.
    rec.sample(&world.sim, &demo_target(&running.board));

    say(&summary(&stories))?;
    let svg = chart::render(
        &rec.timeline,
        "activegate-lifecycle demo: blue/green task sets, tasks per revision, healthy tasks, probes",
    );
    std::fs::write(&args.svg, svg).map_err(|error| DemoError::Chart {
        path: args.svg.clone(),
        error,
    })?;
    say(&format!(
        "\ntimeline chart: {}\ndone in {:.0} s\n",
        args.svg.display(),
        start.elapsed().as_secs_f64()
    ))?;

    if args.keep_running {
        say(&format!(
            "\nstill running: status at http://{0}/status and /metrics; simulator control at {1}/sim/v1/; Ctrl-C to stop\n",
            running.server.addr,
            world.sim.endpoint()
        ))?;
        let signal = daemon::signals::wait_for_terminate().await;
        tracing::info!(signal, "stopping the demo");
    }
    running.stop().await;
    world.stop().await;
    Ok(())
}

/// What the demo plays against: the simulator and the folder with the files the daemon reads.
struct World {
    sim: SimHandle,
    dir: PathBuf,
    config_path: PathBuf,
}

impl World {
    /// Starts the simulator, writes the config, the manifest and the simulator's CA, and sets
    /// how each version behaves; only V1 is published.
    async fn start() -> Result<(World, Config), DemoError> {
        let sim = Sim::start(SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            speed: SPEED,
            ..SimOptions::default()
        })
        .await
        .map_err(DemoError::Simulator)?;
        let dir = tempfile_dir()?;
        write(&dir.join("ca.pem"), sim.ca_pem())?;
        write(&dir.join("activegate.yaml"), MANIFEST)?;
        let config_path = dir.join("demo.toml");
        write(&config_path, config(sim.endpoint(), &dir))?;
        let config = Config::load(&config_path).map_err(DemoError::Config)?;
        sim.create_cluster("demo");
        for (v, mode, after) in [
            (V1, Mode::Healthy, None),
            (V2, Mode::Healthy, None),
            (BROKEN, Mode::NeverHealthy, None),
            (LATE, Mode::FailsAfter, Some(TURNS_BAD_AFTER)),
        ] {
            sim.set_image(
                &format!("{REPO}:{v}"),
                Behaviour {
                    start_seconds: Some(START),
                    after_seconds: after,
                    ..Behaviour::of(mode)
                },
            );
        }
        sim.publish_tag(NAME, V1);
        Ok((
            World {
                sim,
                dir,
                config_path,
            },
            config,
        ))
    }

    async fn stop(self) {
        self.sim.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The daemon being shown: its board, its status server, and the channel that stands in for
/// its signals (a manual trigger is a `Reload`, the end a `Terminate`).
struct Running {
    board: Arc<Board>,
    server: status::Server,
    signals: mpsc::Sender<Signal>,
    daemon: JoinHandle<Result<(), ConfigError>>,
}

impl Running {
    async fn start(world: &World, config: Config) -> Result<Running, DemoError> {
        let board = Arc::new(Board::default());
        let listen = config.daemon.status_listen;
        let server = status::serve(listen, crate::cli::status_sources(&board, None))
            .await
            .map_err(|error| DemoError::Status { listen, error })?;
        let (signals, rx) = mpsc::channel(4);
        let options = daemon::Options {
            adjust_client: Arc::new(|c| {
                c.static_credentials = Some(("AKIDDEMO".into(), "demo".into()))
            }),
            ..daemon::Options::default()
        };
        let daemon = tokio::spawn(daemon::run(
            world.config_path.clone(),
            config,
            board.clone(),
            options,
            rx,
        ));
        Ok(Running {
            board,
            server,
            signals,
            daemon,
        })
    }

    async fn stop(self) {
        self.signals.send(Signal::Terminate).await.ok();
        let _ = self.daemon.await;
        self.server.stop().await;
    }
}

/// One story: print its headline, act, wait for the reconcile that ends it (and for a deleted
/// green's tasks to stop), and tell what happened.
async fn play(
    number: usize,
    chapter: &Chapter,
    sim: &SimHandle,
    running: &Running,
    rec: &mut Recorder,
    seen: &mut u64,
) -> Result<Story, DemoError> {
    let board = &running.board;
    say(&chapter.headline)?;
    rec.mark(chapter.marker);
    let from = sim.now();
    let blue = demo_target(board)
        .revision
        .as_deref()
        .and_then(revision_number);
    match chapter.act {
        Act::Start => {}
        Act::Publish(v) => {
            sim.publish_tag(NAME, v);
        }
        Act::Trigger => {
            running.signals.send(Signal::Reload).await.ok();
        }
    }
    let (t, low, none) = match chapter.until {
        Some(outcome) => next_until(board, sim, rec, seen, outcome).await?,
        None => next_outcome(board, sim, rec, seen).await?,
    };
    // A deleted green's tasks still stop after the reconcile ended: the row measures
    // until they did, and the chart shows it.
    let (mut low, mut none) = (low, none);
    let mut rollout = Rollout::read(&sim.timeline(), from, chapter.version);
    let settle = Instant::now() + Duration::from_secs(10);
    while rollout.deleted.is_some() && rollout.gone.is_none() && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let healthy = rec.sample(sim, &demo_target(board)).healthy();
        low = low.min(healthy);
        none += usize::from(healthy == 0);
        rollout = Rollout::read(&sim.timeline(), from, chapter.version);
    }
    let s = story(number, chapter, &t, low, none, &rollout);
    say(&format!("  → {}\n", tell(chapter, &t, &rollout, blue, &s)))?;
    Ok(s)
}

/// Waits until a reconcile ends with `outcome` (scheduled runs in between print as they go).
async fn next_until(
    board: &Board,
    sim: &SimHandle,
    rec: &mut Recorder,
    seen: &mut u64,
    outcome: &str,
) -> Result<(TargetStatus, usize, usize), DemoError> {
    let mut none_healthy = 0;
    let mut lowest = usize::MAX;
    loop {
        let (t, low, none) = next_outcome(board, sim, rec, seen).await?;
        none_healthy += none;
        lowest = lowest.min(low);
        if t.last_outcome.as_deref() == Some(outcome) {
            return Ok((t, lowest, none_healthy));
        }
    }
}

fn tempfile_dir() -> Result<PathBuf, DemoError> {
    let path =
        std::env::temp_dir().join(format!("activegate-lifecycle-demo-{}", std::process::id()));
    std::fs::create_dir_all(&path).map_err(|error| DemoError::CreateDir {
        path: path.clone(),
        error,
    })?;
    Ok(path)
}
