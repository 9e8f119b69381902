//! The lease table against moto's DynamoDB (an implementation we did not write): taking,
//! renewing, expiring, taking over with a higher fence, releasing, heartbeats, and replicas
//! that share targets with nobody holding a target twice. The test script starts
//! `moto_server` and sets MOTO_ENDPOINT; by hand: `MOTO_ENDPOINT=http://127.0.0.1:5000
//! cargo test --test leases -- --ignored`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use activegate_lifecycle::daemon::lease::{Keeper, LeaseError, Timing};
use activegate_lifecycle::ecs::leases::{LeaseTable, Taken};
use activegate_lifecycle::ecs::{Aws, ClientSettings};

async fn table() -> LeaseTable {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let endpoint = std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT names a running moto_server (the test script starts one)");
    let mut settings = ClientSettings::new("eu-central-1");
    settings.endpoint_url = Some(endpoint);
    settings.static_credentials = Some(("testing".into(), "testing".into()));
    settings.max_attempts = 2;
    let aws = Aws::connect(settings).await;
    // One table per test: tests run in parallel against one moto.
    let name = format!("leases-{}", fastrand::u64(..));
    let t = LeaseTable::new(aws, name);
    t.create().await.expect("CreateTable");
    t
}

const SEC: i64 = 1000;

#[tokio::test]
#[ignore = "needs moto_server; run by scripts/test.sh"]
async fn a_lease_excludes_others_until_it_expires_and_the_next_holder_has_a_higher_fence() {
    let t = table().await;
    let key = LeaseTable::key_of("eu-central-1", "observability", "activegate");
    let d = Duration::from_secs(30);
    let now = 1_800_000_000_000;

    let Taken::Acquired { fence: first } = t.acquire(&key, "a", d, now).await.unwrap() else {
        panic!("a free lease is taken");
    };
    assert_eq!(first, 1);
    // Someone else, before expiry: refused, told who and until when.
    match t.acquire(&key, "b", d, now + 10 * SEC).await.unwrap() {
        Taken::Held(rec) => {
            assert_eq!(rec.holder, "a");
            assert_eq!(rec.expires_at_ms, now + 30 * SEC);
            assert_eq!(rec.fence, 1);
        }
        other => panic!("held lease taken: {other:?}"),
    }
    // The holder renews (fence kept).
    assert!(t.renew(&key, "a", first, d, now + 20 * SEC).await.unwrap());
    assert!(matches!(
        t.acquire(&key, "b", d, now + 45 * SEC).await.unwrap(),
        Taken::Held(_)
    ));
    // After expiry, b takes it with a higher fence; a's renewal now fails.
    let Taken::Acquired { fence: second } = t.acquire(&key, "b", d, now + 51 * SEC).await.unwrap()
    else {
        panic!("an expired lease is taken over");
    };
    assert_eq!(second, 2);
    assert!(!t.renew(&key, "a", first, d, now + 52 * SEC).await.unwrap());
    // A stale release by a does nothing; b's release frees it and keeps the fence.
    t.release(&key, "a", first).await.unwrap();
    assert_eq!(t.get(&key).await.unwrap().unwrap().holder, "b");
    t.release(&key, "b", second).await.unwrap();
    let rec = t.get(&key).await.unwrap().unwrap();
    assert_eq!((rec.expires_at_ms, rec.fence), (0, 2));
    let Taken::Acquired { fence: third } = t.acquire(&key, "a", d, now + 53 * SEC).await.unwrap()
    else {
        panic!("a released lease is free at once");
    };
    assert_eq!(third, 3, "fences only grow");
}

#[tokio::test]
#[ignore = "needs moto_server; run by scripts/test.sh"]
async fn heartbeats_name_the_live_replicas() {
    let t = table().await;
    let now = 1_800_000_000_000;
    t.heartbeat("r1", Duration::from_secs(30), now)
        .await
        .unwrap();
    t.heartbeat("r2", Duration::from_secs(5), now)
        .await
        .unwrap();
    assert_eq!(t.live_replicas(now + SEC).await.unwrap(), ["r1", "r2"]);
    assert_eq!(t.live_replicas(now + 6 * SEC).await.unwrap(), ["r1"]);
    assert!(
        t.leases().await.unwrap().is_empty(),
        "heartbeats are no leases"
    );
}

/// Three keepers on one injected wall clock share 30 targets: every target has exactly one
/// holder, nobody more than 10; when one stops renewing, the others take its targets once
/// its leases have expired, never before.
#[tokio::test]
#[ignore = "needs moto_server; run by scripts/test.sh"]
async fn replicas_share_targets_and_take_over_a_dead_ones_after_expiry() {
    let t = table().await;
    let wall = Arc::new(AtomicI64::new(1_800_000_000_000));
    let clock = {
        let wall = wall.clone();
        Arc::new(move || wall.load(Ordering::SeqCst))
    };
    let timing = Timing::default();
    let keepers: Vec<Keeper> = ["r1", "r2", "r3"]
        .into_iter()
        .map(|id| Keeper::with_clock(t.clone(), id, timing, clock.clone()))
        .collect();
    let keys: Vec<String> = (0..30)
        .map(|i| LeaseTable::key_of("eu-central-1", "c", &format!("ag-{i}")))
        .collect();
    let idle = |_: &str| false;
    // Two rounds: in the first, early replicas do not yet see later ones.
    for _ in 0..3 {
        for k in &keepers {
            k.round(&keys, &idle).await.unwrap();
        }
        wall.fetch_add(SEC, Ordering::SeqCst);
    }
    let holders = |keepers: &[&Keeper]| {
        let mut per_key = std::collections::BTreeMap::<String, Vec<String>>::new();
        for k in keepers {
            for key in k.holding() {
                per_key.entry(key).or_default().push(k.me().to_owned());
            }
        }
        per_key
    };
    let all: Vec<&Keeper> = keepers.iter().collect();
    let per_key = holders(&all);
    assert_eq!(per_key.len(), 30, "every target held");
    assert!(per_key.values().all(|h| h.len() == 1), "{per_key:?}");
    for k in &keepers {
        assert!(
            k.holding().len() <= 10,
            "{} holds {}",
            k.me(),
            k.holding().len()
        );
    }
    let table_view = t.leases().await.unwrap();
    assert_eq!(table_view.len(), 30);

    // r2 dies (stops renewing). Before its leases expire, nobody else takes them.
    let dead: Vec<String> = keepers[1].holding();
    assert!(!dead.is_empty());
    let survivors = [&keepers[0], &keepers[2]];
    wall.fetch_add(10 * SEC, Ordering::SeqCst);
    for k in survivors {
        let round = k.round(&keys, &idle).await.unwrap();
        assert!(
            round.acquired.iter().all(|key| !dead.contains(key)),
            "{round:?}"
        );
    }
    // After expiry (30 s) plus one interval, all of them are taken, each once.
    wall.fetch_add(25 * SEC, Ordering::SeqCst);
    for _ in 0..2 {
        for k in survivors {
            k.round(&keys, &idle).await.unwrap();
        }
        wall.fetch_add(SEC, Ordering::SeqCst);
    }
    let per_key = holders(&survivors);
    assert_eq!(per_key.len(), 30, "{per_key:?}");
    assert!(per_key.values().all(|h| h.len() == 1));
    for key in &dead {
        assert!(
            t.get(key).await.unwrap().unwrap().fence >= 2,
            "taken over with a new fence"
        );
    }
}

#[tokio::test]
#[ignore = "needs moto_server; run by scripts/test.sh"]
async fn a_command_is_refused_naming_the_holder_and_a_holder_stops_writing_at_its_deadline() {
    let t = table().await;
    let key = LeaseTable::key_of("eu-central-1", "c", "s");
    let timing = Timing::default();
    let daemon = Keeper::new(t.clone(), "replica-1", timing);
    daemon.take_for_command(&key, false).await.unwrap();
    assert!(daemon.may_write(&key));

    let person = Keeper::new(t.clone(), "cli:laptop:4242", timing);
    let err = person.take_for_command(&key, false).await.unwrap_err();
    let LeaseError::Held { holder, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(holder, "replica-1");
    let text = err.to_string();
    assert!(
        text.contains("replica-1") && text.contains("--wait"),
        "{text}"
    );

    // Without renewals, the holder's own deadline (duration − margin) ends its writes.
    // (Time is paused only now: paused time would fire the SDK's timeouts while moto answers.)
    tokio::time::pause();
    tokio::time::advance(timing.duration - timing.margin).await;
    assert!(!daemon.may_write(&key));
}

/// The example config pointed at moto's lease table and at an ECS endpoint that answers
/// nothing (the refusal comes before any ECS call).
fn command_config(dir: &std::path::Path, table: &str) -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/config/activegate-lifecycle.toml"))
        .expect("example config");
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT");
    let text = example
        .replace(
            "manifest = \"activegate.yaml\"",
            &format!("manifest = \"{root}/config/activegate.yaml\""),
        )
        .replace(
            "# endpoint_url = \"http://127.0.0.1:4566\"",
            "endpoint_url = \"http://127.0.0.1:9\"",
        );
    assert_ne!(
        text, example,
        "the example config still has the lines this test edits"
    );
    let text = format!(
        "{text}\n[daemon.lease]\ntable = \"{table}\"\nregion = \"eu-central-1\"\nendpoint_url = \"{endpoint}\"\n"
    );
    let path = dir.join("ag.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn run_command(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_activegate-lifecycle"))
        .args(args)
        .env("RUST_LOG", "off")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("DT_API_TOKEN", "not-a-real-token")
        .output()
        .expect("run the binary")
}

#[tokio::test]
#[ignore = "needs moto_server; run by scripts/test.sh"]
async fn a_rollout_racing_a_daemon_is_refused_naming_the_holder_and_takes_a_free_lease() {
    use activegate_lifecycle::config::Config;
    use activegate_lifecycle::daemon::lease::{key_of, system_ms};
    let t = table().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = command_config(dir.path(), t.table());
    let config = Config::load(&path).expect("the test config is valid");
    let key = key_of(&config.targets[0]);
    let config_arg = path.to_str().expect("utf-8 path");

    // A daemon replica holds the target.
    let Taken::Acquired { fence } = t
        .acquire(&key, "replica-7", Duration::from_secs(120), system_ms())
        .await
        .unwrap()
    else {
        panic!("a free lease is taken")
    };
    let out = run_command(&["rollout", "--config", config_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`replica-7`") && stderr.contains("--wait") && stderr.contains(&key),
        "{stderr}"
    );
    let rec = t.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (rec.holder.as_str(), rec.fence),
        ("replica-7", fence),
        "untouched"
    );

    // Free: the command takes the lease (its ECS calls then fail: nothing answers there) and
    // gives it back when it ends.
    t.release(&key, "replica-7", fence).await.unwrap();
    let out = run_command(&["rollback", "--config", config_arg]);
    assert_ne!(out.status.code(), Some(0));
    let rec = t.get(&key).await.unwrap().unwrap();
    assert!(rec.holder.starts_with("cli:"), "{rec:?}");
    assert_eq!(rec.fence, fence + 1, "a new holder, a higher fence");
    assert_eq!(rec.expires_at_ms, 0, "released when the command ended");
}
