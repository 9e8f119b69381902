//! `activegate-lifecycle demo`: the whole cycle in well under a minute, with no AWS account.
//! The embedded simulator plays ECS and a registry; the real daemon code creates a blue/green
//! service (ECS task sets), rolls out a new version beside the last good one (green beside
//! blue) and promotes it once it baked, deletes a green that never answers healthy and one
//! that turns bad during its bake while blue keeps serving, quarantines both, and finds
//! nothing to do on a manual trigger.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use activegate_lifecycle::config::Config;
use activegate_lifecycle::daemon::{self, Signal, board::Board, board::TargetStatus};
use activegate_lifecycle::rollout::tags;
use activegate_lifecycle::sim::{Behaviour, Mode, Sim, SimHandle, SimOptions, TimelineEvent};
use activegate_lifecycle::status;

use crate::cli::{DemoArgs, print_stdout_text as say};

mod chart;

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

/// One row of the summary.
struct Story {
    number: usize,
    version: &'static str,
    outcome: String,
    seconds: f64,
    lowest_healthy: usize,
    /// Samples (every 100 ms) in which no task was healthy, once the service had one.
    none_healthy: usize,
    /// Simulated seconds from the moment the version was bad (its rollout, or the moment it
    /// turned bad) to the roll-back call (DeleteTaskSet on green).
    detect: Option<f64>,
    /// Simulated seconds from the roll-back call until only good tasks ran (green's task set
    /// gone, its tasks stopped).
    roll_back: Option<f64>,
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
    arn.rsplit(':').next()?.parse().ok()
}

/// `repo:1.303.10.20250115-101010@sha256:…` → `1.303.10`.
fn short_version(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    without_digest
        .rsplit(':')
        .next()
        .unwrap_or(without_digest)
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

/// What a story does to the world.
enum Act {
    Start,
    Publish(&'static str),
    Trigger,
}

/// One story of the demo: what it prints first, its chart marker, what it does, which
/// reconcile outcome ends it, the version its summary row names, and, for a version that
/// turns bad later, when (simulated seconds after RUNNING).
struct Chapter {
    headline: String,
    marker: &'static str,
    act: Act,
    until: Option<&'static str>,
    version: &'static str,
    turns_bad_after: Option<f64>,
}

fn chapters() -> Vec<Chapter> {
    let bake = BAKE * SPEED;
    vec![
        Chapter {
            headline: format!(
                "0. at start: the service is created for blue/green (ECS task sets) with ActiveGate {V1}, the only version published\n"
            ),
            marker: "0. created",
            act: Act::Start,
            until: None,
            version: V1,
            turns_bad_after: None,
        },
        Chapter {
            headline: format!(
                "\n1. ActiveGate {V2} is published; the next scheduled run starts it as a green task set beside blue, verifies and bakes it ({bake:.0} s), then promotes it\n"
            ),
            marker: "1. new version",
            act: Act::Publish(V2),
            until: Some("verified"),
            version: V2,
            turns_bad_after: None,
        },
        Chapter {
            headline: format!(
                "\n2. a broken {BROKEN} is published: it never answers healthy; its green task set is deleted while blue serves, and it is quarantined\n"
            ),
            marker: "2. broken version",
            act: Act::Publish(BROKEN),
            until: Some("rolled-back"),
            version: BROKEN,
            turns_bad_after: None,
        },
        Chapter {
            headline: "\n3. a manual trigger (what SIGHUP does): the broken version stays quarantined, nothing to do\n".to_owned(),
            marker: "3. manual trigger",
            act: Act::Trigger,
            until: None,
            version: V2,
            turns_bad_after: None,
        },
        Chapter {
            headline: format!(
                "\n4. {LATE} is published: healthy after its start, it answers 503 from {TURNS_BAD_AFTER:.0} s after RUNNING, inside its {bake:.0} s bake; green is deleted, blue never stops\n"
            ),
            marker: "4. turns bad in the bake",
            act: Act::Publish(LATE),
            until: Some("rolled-back"),
            version: LATE,
            turns_bad_after: Some(TURNS_BAD_AFTER),
        },
    ]
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

    say(&format!(
        "activegate-lifecycle demo\n  simulator (ECS, CloudWatch Logs, registry) at {}, time × {SPEED}: a {START:.0} s ActiveGate start takes {:.2} s\n  target: service dynatrace-activegate, 2 tasks, from the example Kubernetes manifest; schedule every 4 s\n  blue/green: blue is the last good task set, serving; a new version runs as a green task set beside it until it baked\n\n",
        sim.endpoint(),
        START / SPEED
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
    for (number, chapter) in chapters().into_iter().enumerate() {
        say(&chapter.headline)?;
        rec.mark(chapter.marker);
        let from = sim.now();
        let blue = demo_target(&board)
            .revision
            .as_deref()
            .and_then(revision_number);
        match chapter.act {
            Act::Start => {}
            Act::Publish(v) => {
                sim.publish_tag(NAME, v);
            }
            Act::Trigger => {
                signals.send(Signal::Reload).await.ok();
            }
        }
        let (t, low, none) = match chapter.until {
            Some(outcome) => next_until(&board, &sim, &mut rec, &mut seen, outcome).await?,
            None => next_outcome(&board, &sim, &mut rec, &mut seen).await?,
        };
        // A deleted green's tasks still stop after the reconcile ended: the row measures
        // until they did, and the chart shows it.
        let (mut low, mut none) = (low, none);
        let mut rollout = Rollout::read(&sim.timeline(), from, chapter.version);
        let settle = Instant::now() + Duration::from_secs(10);
        while rollout.deleted.is_some() && rollout.gone.is_none() && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let healthy = rec.sample(&sim, &demo_target(&board)).healthy();
            low = low.min(healthy);
            none += usize::from(healthy == 0);
            rollout = Rollout::read(&sim.timeline(), from, chapter.version);
        }
        let s = story(number, &chapter, &t, low, none, &rollout);
        say(&format!("  → {}\n", tell(&chapter, &t, &rollout, blue, &s)))?;
        stories.push(s);
    }
    // A last look, so that the chart shows the end state.
    rec.sample(&sim, &demo_target(&board));

    say(&format!(
        "\nTimes in ActiveGate time (the simulator runs {SPEED:.0}× faster). Time to detect: from the moment\nthe version was bad (its rollout; in 4., the moment it turned bad) to the roll-back call that\ndeletes green. Until only good tasks serve: from that call until green's tasks had stopped.\nA moment is a 100 ms sample; fewest healthy counts from the story's first reconcile on.\n\n| story | version | outcome | reconcile (real) | time to detect | until only good tasks serve | fewest healthy | moments with no healthy task |\n|---|---|---|---|---|---|---|---|\n"
    ))?;
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.0} s"));
    for s in &stories {
        say(&format!(
            "| {} | {} | {} | {:.1} s | {} | {} | {}/2 | {} |\n",
            s.number,
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
        "activegate-lifecycle demo: blue/green task sets, tasks per revision, healthy tasks, probes",
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

/// What the simulator's timeline shows of a story's task sets, from `from` on: the task set
/// created in it (green, or the service's first), what became of it, and what happened to
/// the other tasks (blue's) meanwhile.
#[derive(Debug, Default)]
struct Rollout {
    /// The created task set's ARN and revision.
    set: Option<(String, u32)>,
    created: Option<f64>,
    /// The first of its tasks RUNNING, and the set at steady state (all tasks healthy).
    first_running: Option<f64>,
    steady: Option<f64>,
    promoted: Option<f64>,
    /// DeleteTaskSet on it while it was not primary: the roll-back call.
    deleted: Option<f64>,
    /// Its task set gone (every task of it stopped).
    gone: Option<f64>,
    /// Tasks of other task sets (blue's) that stopped before it was promoted or gone.
    blue_stopped: usize,
    quarantined: bool,
}

impl Rollout {
    fn read(timeline: &[TimelineEvent], from: f64, version: &str) -> Rollout {
        let mut r = Rollout::default();
        let mut ours: BTreeSet<&str> = BTreeSet::new();
        let image = format!(":{version}");
        for e in timeline.iter().filter(|e| e.time >= from) {
            let this_set = r.set.as_ref().is_some_and(|(arn, _)| *arn == e.subject);
            match e.kind.as_str() {
                "task-set-created" if r.set.is_none() => {
                    let td = e.detail.split(' ').next().unwrap_or_default();
                    r.set = Some((e.subject.clone(), revision_number(td).unwrap_or(0)));
                    r.created = Some(e.time);
                }
                "task-launched" if e.detail.contains(&image) => {
                    ours.insert(&e.subject);
                }
                "task-running" if ours.contains(e.subject.as_str()) => {
                    r.first_running.get_or_insert(e.time);
                }
                "task-set-stability" if this_set && e.detail == "STEADY_STATE" => {
                    r.steady.get_or_insert(e.time);
                }
                "task-set-primary" if this_set => {
                    r.promoted.get_or_insert(e.time);
                }
                "task-set-draining" if this_set && r.promoted.is_none() => {
                    r.deleted.get_or_insert(e.time);
                }
                "task-set-deleted" if this_set => {
                    r.gone.get_or_insert(e.time);
                }
                "task-stopping"
                    if r.created.is_some()
                        && r.promoted.is_none()
                        && r.gone.is_none()
                        && !ours.contains(e.subject.as_str()) =>
                {
                    r.blue_stopped += 1;
                }
                "tagged"
                    if e.detail.split(' ').any(|kv| {
                        kv.starts_with(tags::QUARANTINE_PREFIX) && kv.contains(&image)
                    }) =>
                {
                    r.quarantined = true;
                }
                _ => {}
            }
        }
        r
    }

    fn revision(&self) -> Option<u32> {
        self.set.as_ref().map(|s| s.1)
    }

    /// When the version was bad: when it turned bad, or from its rollout on.
    fn bad_from(&self, turns_bad_after: Option<f64>) -> Option<f64> {
        match turns_bad_after {
            Some(after) => self.first_running.map(|t| t + after),
            None => self.created,
        }
    }
}

fn story(
    number: usize,
    chapter: &Chapter,
    t: &TargetStatus,
    lowest_healthy: usize,
    none_healthy: usize,
    r: &Rollout,
) -> Story {
    let seconds = match (t.last_started, t.last_finished) {
        (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    let outcome = t
        .last_outcome
        .clone()
        .or_else(|| t.last_error.clone())
        .unwrap_or_default();
    let rolled_back = outcome == "rolled-back";
    let outcome = match (&chapter.act, r.promoted, r.deleted) {
        (Act::Start, ..) => format!("{outcome} (service created)"),
        (_, Some(_), _) if r.created.is_some() => format!("{outcome} (green promoted)"),
        (_, None, Some(_)) => format!("{outcome} (green deleted)"),
        _ => outcome,
    };
    let (detect, roll_back) = if rolled_back {
        (
            r.deleted
                .zip(r.bad_from(chapter.turns_bad_after))
                .map(|(d, b)| d - b),
            r.gone.zip(r.deleted).map(|(g, d)| g - d),
        )
    } else {
        (None, None)
    };
    Story {
        number,
        version: chapter.version,
        outcome,
        seconds,
        lowest_healthy,
        none_healthy,
        detect,
        roll_back,
    }
}

/// What happened in a story, in a sentence or two.
fn tell(chapter: &Chapter, t: &TargetStatus, r: &Rollout, blue: Option<u32>, s: &Story) -> String {
    let rev = |n: Option<u32>| n.map_or("?".to_owned(), |n| n.to_string());
    let green = rev(r.revision());
    let blue = rev(blue);
    let serving = rev(t.revision.as_deref().and_then(revision_number));
    let bake = BAKE * SPEED;
    let blue_kept = if r.blue_stopped == 0 {
        "none of its tasks stopped".to_owned()
    } else {
        format!("{} of its tasks stopped", r.blue_stopped)
    };
    let quarantined = if r.quarantined {
        format!("{} is quarantined", chapter.version)
    } else {
        format!("{} is NOT quarantined", chapter.version)
    };
    let no_gap = if s.none_healthy == 0 {
        format!("never fewer than {} healthy", s.lowest_healthy)
    } else {
        format!("{} moments with no healthy task", s.none_healthy)
    };
    match (&chapter.act, t.last_outcome.as_deref()) {
        (Act::Start, Some("verified")) => format!(
            "the service was created with the EXTERNAL deployment controller; its first task set (rev {green}) was verified and baked, and serves"
        ),
        (_, Some("verified")) if r.promoted.is_some() => format!(
            "green (rev {green}) ran beside blue (rev {blue}) with {}; after its {bake:.0} s bake it was promoted and blue was retired; {no_gap}",
            if r.steady.is_some() {
                "all 4 tasks healthy"
            } else {
                "both task sets running"
            }
        ),
        (_, Some("rolled-back")) => {
            let caught = s.detect.map_or("?".to_owned(), |d| format!("{d:.0} s"));
            let what = match (chapter.turns_bad_after, r.steady) {
                (Some(after), Some(healthy)) => format!(
                    "was healthy {:.0} s after its rollout, turned bad {after:.0} s after RUNNING and was caught {caught} later, {:.0} s after it was healthy: inside its {bake:.0} s bake",
                    healthy - r.created.unwrap_or(healthy),
                    r.deleted.unwrap_or(healthy) - healthy,
                ),
                (Some(after), None) => {
                    format!("turned bad {after:.0} s after RUNNING and was caught {caught} later")
                }
                (None, _) => {
                    format!("never answered healthy and was caught {caught} after its rollout")
                }
            };
            format!(
                "green (rev {green}) {what}.\n    Its task set was deleted; blue (rev {blue}) kept serving: {blue_kept}, {no_gap}; {quarantined}."
            )
        }
        (Act::Trigger, Some(o)) => {
            format!("{o}: {BROKEN} stays quarantined, rev {serving} keeps serving")
        }
        (_, o) => format!(
            "{}; serving rev {serving}",
            o.or(t.last_error.as_deref()).unwrap_or("no outcome")
        ),
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("activegate-lifecycle-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time: f64, kind: &str, subject: &str, detail: &str) -> TimelineEvent {
        TimelineEvent {
            time,
            kind: kind.into(),
            subject: subject.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn a_green_deleted_during_its_bake_is_read_from_the_timeline() {
        let td = "arn:aws:ecs:us-east-1:1:task-definition/dynatrace-activegate";
        let image = format!("{REPO}:{LATE}@sha256:00");
        let timeline = vec![
            ev(
                5.0,
                "task-set-created",
                "ts/blue",
                &format!("{td}:2 at 100 %"),
            ),
            ev(
                10.0,
                "task-set-created",
                "ts/green",
                &format!("{td}:4 at 100 %"),
            ),
            ev(
                10.5,
                "task-launched",
                "task/g1",
                &format!("{image} at 127.0.0.9"),
            ),
            ev(11.0, "task-running", "task/g1", "127.0.0.9"),
            ev(60.0, "task-set-stability", "ts/green", "STEADY_STATE"),
            ev(
                190.0,
                "task-stopping",
                "task/g1",
                "Task failed container health checks",
            ),
            ev(200.0, "task-set-draining", "ts/green", ""),
            ev(203.0, "task-set-deleted", "ts/green", ""),
            ev(
                204.0,
                "tagged",
                "svc",
                &format!("{}abc={image} x=y", tags::QUARANTINE_PREFIX),
            ),
        ];
        let r = Rollout::read(&timeline, 8.0, LATE);
        assert_eq!(r.revision(), Some(4));
        assert_eq!(r.first_running, Some(11.0));
        assert_eq!((r.steady, r.promoted), (Some(60.0), None));
        assert_eq!((r.deleted, r.gone), (Some(200.0), Some(203.0)));
        assert_eq!(r.blue_stopped, 0, "green's own task stopping is not blue's");
        assert!(r.quarantined);
        assert_eq!(r.bad_from(Some(150.0)), Some(161.0));
        assert_eq!(r.bad_from(None), Some(10.0));
    }

    #[test]
    fn a_promoted_green_retires_blue_without_counting_it_as_stopped_early() {
        let td = "arn:aws:ecs:us-east-1:1:task-definition/dynatrace-activegate";
        let timeline = vec![
            ev(
                1.0,
                "task-set-created",
                "ts/green",
                &format!("{td}:3 at 100 %"),
            ),
            ev(50.0, "task-set-primary", "ts/green", ""),
            ev(51.0, "task-stopping", "task/blue1", "Scaling activity"),
            ev(60.0, "task-set-draining", "ts/blue", ""),
        ];
        let r = Rollout::read(&timeline, 0.0, V2);
        assert_eq!(
            (r.promoted, r.deleted, r.blue_stopped),
            (Some(50.0), None, 0)
        );
    }
}
