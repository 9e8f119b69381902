//! A fleet of daemon replicas sharing targets through leases (#16): ECS from the simulator,
//! the lease table from moto's DynamoDB. Three `run` processes and thirty targets: every
//! target gets exactly one holder; SIGKILL one replica in the middle of a rollout and the
//! others take its targets over once its leases expired, the rollout it left finishing
//! under its new holder; the simulator's record of ECS writes (by user agent: the product
//! names each replica's clients after its `--replica-id`, the SDK's app name) shows no
//! service written by two replicas but in turns the fences count. The engine's write guard is tested without moto.
//!
//! The fleet test needs moto: `scripts/moto_conformance.sh` starts `moto_server` and sets
//! MOTO_ENDPOINT; by hand: `MOTO_ENDPOINT=http://127.0.0.1:5000 cargo test --test fleet --
//! --ignored`.

mod simkit;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use activegate_lifecycle::ecs::leases::{LeaseRecord, LeaseTable};
use activegate_lifecycle::ecs::{Aws, ClientSettings};
use activegate_lifecycle::model::marks::ROLLOUT_TO;
use activegate_lifecycle::rollout::{Outcome, RolloutError};
use simkit::rig::*;
use simkit::*;

type Replica = simkit::fleet::Daemon;

#[tokio::test]
async fn the_engine_stops_before_a_step_once_its_guard_fails_and_a_later_reconcile_resumes() {
    let mut rig = Rig::new().await;
    rig.started().await;
    rig.edit_config(&[(&format!("image = \"{V1}\""), &format!("image = \"{V2}\""))]);
    let engine = rig.engine().await;
    let before = rig.w.sim.write_calls().len();

    // No lease at all: not one write.
    let never: Arc<dyn Fn() -> bool + Send + Sync> = Arc::new(|| false);
    match engine.reconcile_guarded(None, Some(never)).await {
        Err(e @ RolloutError::LeaseLost(_)) => {
            assert!(e.is_retriable(), "the next holder (or this one) retries");
            assert_eq!(e.metric_label(), "lease-lost");
        }
        other => panic!("expected lease lost, got {other:?}"),
    }
    assert_eq!(rig.w.sim.write_calls().len(), before, "no ECS write");

    // The lease lasts for one step: the rollout stops after it...
    let asked = Arc::new(AtomicU32::new(0));
    let a = asked.clone();
    let once: Arc<dyn Fn() -> bool + Send + Sync> =
        Arc::new(move || a.fetch_add(1, Ordering::SeqCst) == 0);
    let r = engine.reconcile_guarded(None, Some(once)).await;
    assert!(matches!(r, Err(RolloutError::LeaseLost(_))), "{r:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 2, "asked before each step");
    let wrote = rig.w.sim.write_calls().len() - before;
    assert!(wrote > 0, "the first step wrote");
    // ...and the next reconcile (the lease's next holder) resumes it from ECS and its tags.
    match engine.reconcile(None).await.expect("resumed") {
        Outcome::Verified { .. } => {}
        other => panic!("expected the rollout to finish verified, got {other:?}"),
    }
    let service = rig.w.until_completed(SERVICE).await;
    let td = service
        .task_definition()
        .expect("task definition")
        .to_owned();
    assert_eq!(rig.w.image_of(&td).await.as_deref(), Some(V2));
    rig.w.sim.shutdown().await;
}

const REPLICAS: usize = 3;
const TARGETS: usize = 30;
/// The fleet's lease timing: a dead replica's targets move after about 8 s. (With 6 s and
/// 1 s, three debug-build daemons on a loaded host sometimes renewed too late and gave
/// leases up mid-rollout: safe, but it made the test slow.)
const DURATION: f64 = 8.0;
const RENEW: f64 = 2.0;

fn target_name(i: usize) -> String {
    format!("t{i:02}")
}

fn service_name(i: usize) -> String {
    format!("ag-{i:02}")
}

/// Thirty targets, one service (and task definition family) each, one task per service.
fn fleet_config(w: &World, ca: &str, moto: &str, table: &str) -> String {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activegate-k8s.yaml"
    );
    let mut text = format!(
        r#"[daemon]
status_listen = "127.0.0.1:0"
shutdown_deadline_seconds = 20
max_parallel = 10

[daemon.lease]
table = "{table}"
region = "us-east-1"
endpoint_url = "{moto}"
duration_seconds = {DURATION}
renew_seconds = {RENEW}
margin_seconds = 2

[aws]
endpoint_url = "{endpoint}"
max_attempts = 10

# Thirty services created at once: ECS's own buckets (the default budgets) would make
# the test wait for RegisterTaskDefinition tokens; the simulator does not throttle.
{UNTHROTTLED}"#,
        endpoint = w.sim.endpoint()
    );
    for i in 0..TARGETS {
        text.push_str(&target_toml(
            &target_name(i),
            CLUSTER,
            &service_name(i),
            1,
            0.5,
            manifest,
            ca,
        ));
    }
    text
}

/// The lease table on moto, created for this test.
async fn lease_table(moto: &str) -> LeaseTable {
    install_crypto();
    let mut settings = ClientSettings::new("us-east-1");
    settings.endpoint_url = Some(moto.to_owned());
    settings.static_credentials = Some(("testing".into(), "testing".into()));
    settings.max_attempts = 2;
    let t = LeaseTable::new(
        Aws::connect(settings).await,
        format!("fleet-{}", fastrand::u64(..)),
    );
    t.create().await.expect("CreateTable");
    t
}

/// A daemon replica: `--replica-id id`, and no `AWS_SDK_UA_APP_ID`, since the user agent's
/// `app/<id>` must come from the product.
async fn replica(config: &std::path::Path, id: &str, log: &std::path::Path) -> Replica {
    let mut cmd = simkit::procfs::daemon_command(config.as_os_str(), &["--replica-id", id]);
    cmd.env_remove("AWS_SDK_UA_APP_ID")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info,activegate_lifecycle::daemon::lease=debug")
        .stderr(std::fs::File::create(log).expect("log file"));
    Replica::spawn(id, cmd).await
}

/// The live leases, by key (read from the table).
async fn live_leases(t: &LeaseTable) -> BTreeMap<String, LeaseRecord> {
    let now = activegate_lifecycle::daemon::lease::system_ms();
    t.leases()
        .await
        .expect("Scan")
        .into_iter()
        .filter(|r| r.is_live(now))
        .map(|r| (r.key.clone(), r))
        .collect()
}

fn key_of(i: usize) -> String {
    LeaseTable::key_of("us-east-1", CLUSTER, &service_name(i))
}

/// The holders of the thirty targets' leases, when every one is held by one of `among`.
async fn holders(t: &LeaseTable, among: &[&str]) -> Option<BTreeMap<usize, String>> {
    let live = live_leases(t).await;
    (0..TARGETS)
        .map(|i| {
            let r = live.get(&key_of(i))?;
            among
                .contains(&r.holder.as_str())
                .then(|| (i, r.holder.clone()))
        })
        .collect()
}

/// Whether `r`'s /status shows target `i` held and reconciled with `outcome` (any when None).
fn reconciled(s: &serde_json::Value, i: usize, outcome: Option<&str>) -> bool {
    let name = target_name(i);
    let held = s["lease"]["targets"][&name]["held"].as_bool() == Some(true);
    let last = s["targets"][&name]["last_outcome"].as_str();
    held && last.is_some() && outcome.is_none_or(|o| last == Some(o))
}

/// The `status` command's table, asked of the daemon at `url`.
async fn status_table(url: &str) -> String {
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(simkit::binary::BIN)
            .args(["status", "--url", &url])
            .output()
            .expect("status runs")
    })
    .await
    .expect("join");
    assert!(out.status.success(), "status: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The replica id in a write call's user agent (`app/<id>`).
fn writer(user_agent: &str) -> Option<String> {
    user_agent
        .split_whitespace()
        .find_map(|p| p.strip_prefix("app/"))
        .map(str::to_owned)
}

/// The target a write call is about: `ag-NN` in its resource (service name or ARN, task
/// definition family or ARN).
fn service_of(resource: &str) -> Option<usize> {
    let at = resource.find("ag-")?;
    resource.get(at + 3..at + 5)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto_server; run by scripts/moto_conformance.sh"]
async fn three_replicas_share_thirty_targets_and_take_over_a_killed_ones_rollout() {
    let moto = std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT names a running moto_server (the test script starts one)");
    let started = Instant::now();
    let table = lease_table(&moto).await;
    let w = World::new().await;
    for image in [V1, V2] {
        w.image(image, activegate_lifecycle::sim::Mode::Healthy);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, w.sim.ca_pem()).expect("write CA");
    let config = dir.path().join("ag.toml");
    let text = fleet_config(&w, ca.to_str().expect("UTF-8"), &moto, table.table());
    std::fs::write(&config, &text).expect("write config");

    let ids: Vec<String> = (0..REPLICAS).map(|i| format!("replica-{i}")).collect();
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut replicas = Vec::new();
    for id in &ids {
        let log = dir.path().join(format!("{id}.log"));
        replicas.push(replica(&config, id, &log).await);
    }

    // Every target gets exactly one holder, a fair share each, and is reconciled by it.
    let share = TARGETS.div_ceil(REPLICAS);
    let first = until(Duration::from_secs(30), || async {
        let h = holders(&table, &all).await?;
        let fair = all
            .iter()
            .all(|r| h.values().filter(|v| v == r).count() == share);
        if !fair {
            return None;
        }
        for (i, r) in &h {
            let replica = replicas.iter().find(|x| x.name == *r)?;
            if !reconciled(&replica.status().await?, *i, None) {
                return None;
            }
        }
        Some(h)
    })
    .await;
    for r in &replicas {
        let s = r.status().await.expect("status");
        assert_eq!(s["lease"]["replica"], r.name.as_str());
        let live: BTreeSet<&str> = s["lease"]["replicas"]
            .as_array()
            .expect("replicas")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            live,
            all.iter().copied().collect(),
            "{} sees every replica",
            r.name
        );
        assert_eq!(s["lease"]["held"].as_u64(), Some(share as u64));
        let metrics = r
            .http
            .get(format!("{}/metrics", r.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            metrics.contains(&format!("activegate_lifecycle_leases_held {share}")),
            "{metrics}"
        );
        assert!(metrics.contains("activegate_lifecycle_lease_round_errors_total"));
    }
    // `status` asked of each replica: every target's row names its holder, "this replica" on
    // the holder itself only.
    for r in &replicas {
        let (url, me) = (r.url.clone(), r.name.clone());
        until(Duration::from_secs(20), || async {
            let table = status_table(&url).await;
            let header = table.lines().next().is_some_and(|h| h.contains(" HOLDER "));
            let rows_agree = (0..TARGETS).all(|i| {
                let name = format!("{} ", target_name(i));
                table
                    .lines()
                    .find(|l| l.starts_with(&name))
                    .is_some_and(|row| {
                        let here = row.contains(&format!(" {me} (this replica) "));
                        here == (first[&i] == me) && row.contains(&format!(" {} ", first[&i]))
                    })
            });
            (header && rows_agree).then_some(())
        })
        .await;
    }
    println!("fleet settled in {:?}", started.elapsed());

    // A rollout of t00 that takes a while (a 4 s bake), started on its holder by SIGHUP.
    let victim_id = first[&0].clone();
    let text = text
        .replacen(
            &format!("image = \"{V1}\""),
            &format!("image = \"{V2}\""),
            1,
        )
        .replacen("bake_seconds = 0.3", "bake_seconds = 4", 1);
    std::fs::write(&config, &text).expect("rewrite config");
    for r in &replicas {
        r.signal("HUP");
    }
    let victim = replicas
        .iter()
        .position(|r| r.name == victim_id)
        .expect("the holder is one of ours");
    until(Duration::from_secs(20), || async {
        let s = replicas[victim].status().await?;
        let t = &s["targets"][&target_name(0)];
        let tags = rig_tags(&w, &service_name(0)).await;
        (t["running"].as_bool() == Some(true) && tags.contains_key(ROLLOUT_TO)).then_some(())
    })
    .await;
    let theirs: Vec<usize> = first
        .iter()
        .filter(|(_, h)| **h == victim_id)
        .map(|(i, _)| *i)
        .collect();
    let fences: BTreeMap<String, u64> = live_leases(&table)
        .await
        .into_iter()
        .map(|(k, r)| (k, r.fence))
        .collect();
    replicas[victim].sigkill().await;
    let killed = Instant::now();
    println!(
        "killed {victim_id} mid-rollout of t00 at {:?}",
        started.elapsed()
    );

    // Its targets move to the survivors once its leases expired, each with a higher fence.
    let survivors: Vec<&str> = all.iter().copied().filter(|r| *r != victim_id).collect();
    let after = until(Duration::from_secs(20), || async {
        holders(&table, &survivors).await
    })
    .await;
    let took = killed.elapsed();
    println!("taken over in {took:?}");
    assert!(
        took <= Duration::from_secs_f64(DURATION + RENEW + 1.0),
        "{victim_id}'s targets were taken over {took:?} after SIGKILL (lease {DURATION} s, renewal {RENEW} s)"
    );
    let live = live_leases(&table).await;
    for i in &theirs {
        let k = key_of(*i);
        assert!(
            live[&k].fence > fences[&k],
            "{k}: a new holder, a higher fence"
        );
    }
    for r in &survivors {
        let n = after.values().filter(|v| v == r).count();
        assert_eq!(n, TARGETS / survivors.len(), "{r} holds its share");
    }

    // The rollout it left finishes under the new holder: V2, verified, one deployment.
    let heir_id = after[&0].clone();
    let heir = replicas
        .iter()
        .find(|r| r.name == heir_id)
        .expect("a survivor");
    // Its status shows t00 verified at a revision of V2 (not the V1 it may have created).
    until(Duration::from_secs(30), || async {
        let s = heir.status().await?;
        let revision = s["targets"][&target_name(0)]["revision"]
            .as_str()?
            .to_owned();
        (reconciled(&s, 0, Some("verified")) && w.image_of(&revision).await.as_deref() == Some(V2))
            .then_some(())
    })
    .await;
    let service = w.until_completed(&service_name(0)).await;
    let td = service
        .task_definition()
        .expect("task definition")
        .to_owned();
    assert_eq!(w.image_of(&td).await.as_deref(), Some(V2));
    let tags = rig_tags(&w, &service_name(0)).await;
    assert!(
        !tags.contains_key(ROLLOUT_TO),
        "the rollout's marks are cleared: {tags:?}"
    );
    println!(
        "t00's rollout finished by {heir_id} at {:?}",
        started.elapsed()
    );

    // ECS writes: each from one replica (its user agent), and per service no more turns of
    // writers than the lease changed hands (its fence): never two writers at once.
    let live = live_leases(&table).await;
    let mut turns: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut unattributed = 0;
    for call in w.sim.write_calls() {
        let Some(i) = service_of(&call.resource) else {
            continue;
        };
        let Some(who) = writer(&call.user_agent) else {
            unattributed += 1;
            continue;
        };
        assert!(all.contains(&who.as_str()), "{who}: {call:?}");
        let t = turns.entry(i).or_default();
        if t.last() != Some(&who) {
            t.push(who);
        }
    }
    assert_eq!(
        unattributed, 0,
        "every ECS write of a target names its replica"
    );
    assert_eq!(turns.len(), TARGETS, "every service was written");
    for (i, t) in &turns {
        let fence = live.get(&key_of(*i)).map_or(0, |r| r.fence);
        assert!(
            t.len() as u64 <= fence,
            "{}: writers {t:?} in more turns than the {fence} holders of its lease",
            service_name(*i)
        );
    }

    for r in &mut replicas {
        r.terminate().await;
    }
    // SIGTERM released the survivors' leases at once.
    let live = live_leases(&table).await;
    assert!(live.is_empty(), "released at exit: {live:?}");
    println!("fleet test took {:?}", started.elapsed());
    w.sim.shutdown().await;
}

/// A service's tags (empty while it does not exist).
async fn rig_tags(w: &World, service: &str) -> BTreeMap<String, String> {
    let out = w
        .ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(service)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe");
    out.services()
        .first()
        .map(|s| {
            s.tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or("").to_owned(),
                        t.value().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The app names in the user agents of `w`'s ECS writes since the `from`-th.
fn writers_since(w: &World, from: usize) -> BTreeSet<Option<String>> {
    w.sim.write_calls()[from..]
        .iter()
        .map(|c| writer(&c.user_agent))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_names_its_clients_after_its_replica_id_made_to_fit_the_sdk() {
    use activegate_lifecycle::daemon::{self, Options, board::Board};
    let rig = Rig::new().await;
    // The test's own writes (the cluster) came before.
    let before = rig.w.sim.write_calls().len();
    let path = rig.dir.path().join("ag.toml");
    let config = activegate_lifecycle::config::Config::load(&path).expect("config");
    let board = Arc::new(Board::default());
    let (signals, rx) = tokio::sync::mpsc::channel(4);
    // Spaces, `/` and non-ASCII are not allowed in the SDK's app name: each becomes `-`.
    let options = Options {
        replica_id: Some("eu 1/α".into()),
        adjust_client: Arc::new(|c: &mut ClientSettings| {
            c.static_credentials = Some(("AKIDSIMULATOR".into(), "not-a-secret".into()));
        }),
        ..Options::default()
    };
    let b = board.clone();
    let task = tokio::spawn(daemon::run(path, config, b, options, rx));
    until(Duration::from_secs(40), || async {
        let s = board.snapshot();
        let t = s.targets.get("prod")?;
        (t.outcomes.get("verified").copied() == Some(1)).then_some(())
    })
    .await;
    signals.send(daemon::Signal::Terminate).await.expect("send");
    task.await.expect("join").expect("the daemon runs");
    assert!(rig.w.sim.write_calls().len() > before, "the daemon wrote");
    assert_eq!(
        writers_since(&rig.w, before),
        BTreeSet::from([Some("eu-1--".to_owned())]),
        "every ECS write names the replica"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_command_names_itself_in_every_write() {
    let rig = Rig::new().await;
    let before = rig.w.sim.write_calls().len();
    let (code, out, err) = simkit::binary::run(&rig, &["rollout"]).await;
    assert_eq!(code, 0, "rollout: {out}{err}");
    assert!(rig.w.sim.write_calls().len() > before, "the rollout wrote");
    assert_eq!(
        writers_since(&rig.w, before),
        BTreeSet::from([Some("activegate-lifecycle-rollout".to_owned())]),
        "every ECS write of `rollout` names it"
    );
    rig.w.sim.shutdown().await;
}

/// Everything the daemon logs in-process (one thread: the test's own subscriber sees it).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A SIGHUP does not apply `[daemon.lease]` (the keeper is built at start): the reload says
/// so, once, and the run goes on without leases.
#[tokio::test]
async fn a_reload_that_adds_leases_warns_they_take_effect_at_restart() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut rig = Rig::new().await;
    let d = rig.daemon();
    d.until(|t| t.outcomes.get("verified").copied() == Some(1))
        .await;
    // The table is never reached: the reload does not build a keeper.
    rig.edit_config(&[(
        "[aws]",
        "[daemon.lease]\ntable = \"ag-leases\"\nregion = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:9\"\n\n[aws]",
    )]);
    d.signals
        .send(activegate_lifecycle::daemon::Signal::Reload)
        .await
        .expect("send");
    until(Duration::from_secs(20), || async {
        (d.board.snapshot().reloads == 1).then_some(())
    })
    .await;
    let log = captured.text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("[daemon.lease] changed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("take effect at restart"), "{log}");
    assert!(
        d.board.snapshot().lease.is_none(),
        "no leases before a restart"
    );
    d.stop().await;
    rig.w.sim.shutdown().await;
}
