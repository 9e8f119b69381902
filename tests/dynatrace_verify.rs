//! Verified from Dynatrace's side (`[target.verify.dynatrace]`): a new ActiveGate counts only
//! once the environment lists it connected, with the version rolled out (and the network zone
//! and group, when set). Against the simulator, whose `/api/v2/activeGates` lists its tasks'
//! fake ActiveGates, with per-image registrations (never, another version, another zone) and
//! API faults (401, 429, 500, slow, down).

mod simkit;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use activegate_lifecycle::config::Config;
use activegate_lifecycle::rollout::{Connected, Outcome, Progress, RollbackVia, tags};
use activegate_lifecycle::sim::{ApiFault, Mode, Registration};
use simkit::rig::*;
use simkit::side::SideProber;

/// The variable the rig's token comes from (every test sets the same value).
const TOKEN_ENV: &str = "AGL_TEST_DYNATRACE_TOKEN";
const TOKEN: &str = "sim-api-token-for-tests";
const ZONE: &str = "aws.eu-central-1";

fn set_token() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY of the test: set once, before this test starts anything, to the same value.
    ONCE.call_once(|| unsafe { std::env::set_var(TOKEN_ENV, TOKEN) });
}

/// Turns the check on for the rig's target: `extra` lines go into its section.
fn check_on(rig: &mut Rig, extra: &str) {
    let path = rig.dir.path().join("ag.toml");
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(&format!(
        "\n[target.verify.dynatrace]\nenvironment_url = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\n{extra}\n",
        rig.w.sim.endpoint()
    ));
    std::fs::write(&path, text).expect("write config");
    rig.config = Config::load(&path).expect("a valid config");
}

/// The ActiveGates run in network zone `ZONE`, group `ecs`, and the check expects both.
fn in_zone(rig: &mut Rig) {
    rig.edit_config(&[(
        "DT_SERVER = \"https://abc12345.live.dynatrace.com/communication\"",
        "DT_SERVER = \"https://abc12345.live.dynatrace.com/communication\"\nDT_NETWORK_ZONE = \"aws.eu-central-1\"\nDT_GROUP = \"ecs\"",
    )]);
    check_on(rig, &format!("network_zone = \"{ZONE}\"\ngroup = \"ecs\""));
}

/// A blue/green rig with the check on (`extra` in its section), its service created at V1.
async fn started(extra: &str, deadline: u32) -> (Rig, String) {
    set_token();
    let mut rig = Rig::blue_green().await;
    rig.edit_config(&[(
        "deadline_seconds = 30",
        &format!("deadline_seconds = {deadline}"),
    )]);
    check_on(&mut rig, extra);
    let first = rig.started().await;
    (rig, first)
}

/// Probe rounds in which the new revision ran tasks, and what the engine reported connected.
#[derive(Default)]
struct Seen {
    rounds: AtomicU64,
    connected: Mutex<Vec<Connected>>,
}

async fn roll(rig: &Rig, image: &str) -> (Outcome, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let (s1, s2) = (seen.clone(), seen.clone());
    let engine = rig
        .engine()
        .await
        .with_progress(Arc::new(move |p: &Progress| {
            if p.running > 0 {
                s1.rounds.fetch_add(1, Ordering::Relaxed);
            }
        }))
        .with_connected(Arc::new(move |c: &Connected| {
            s2.connected.lock().expect("lock").push(c.clone());
        }));
    let outcome = engine.reconcile(Some(image)).await.expect("rollout");
    (outcome, seen)
}

fn quarantined(tags: &std::collections::BTreeMap<String, String>) -> bool {
    tags.keys().any(|k| k.starts_with(tags::QUARANTINE_PREFIX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_is_verified_with_the_check_on_one_call_per_round() {
    set_token();
    let mut rig = Rig::blue_green().await;
    in_zone(&mut rig);
    rig.w.sim.set_registration(
        V2,
        Registration {
            connected_hosts: Some(7),
            ..Registration::default()
        },
    );
    let first = rig.started().await;
    let plan = rig.engine().await.plan(Some(V2)).await.expect("plan");
    let shown = plan.dynatrace.expect("plan says the check is on");
    assert!(
        shown.contains("/api/v2/activeGates") && shown.contains(ZONE) && shown.contains("fail"),
        "{shown}"
    );
    let calls = rig.w.sim.dynatrace_calls();
    let side = SideProber::start(&rig.w);
    let (outcome, seen) = roll(&rig, V2).await;
    let (rounds_seen, empty) = side.finish().await;
    let Outcome::Verified { from, warnings, .. } = &outcome else {
        panic!("expected verified, got {outcome:?}")
    };
    assert_eq!(from.as_deref(), Some(first.as_str()));
    assert!(warnings.is_empty(), "{warnings:?}");
    // One request per round for the whole target, old and new tasks alike.
    let rounds = seen.rounds.load(Ordering::Relaxed);
    let asked = rig.w.sim.dynatrace_calls() - calls;
    assert!(rounds > 3, "{rounds} rounds");
    assert_eq!(asked, rounds, "{asked} API calls in {rounds} rounds");
    // Before blue went: what the new ActiveGates report.
    let connected = seen.connected.lock().expect("lock").clone();
    assert_eq!(connected.len(), 1, "{connected:?}");
    assert_eq!(
        (connected[0].activegates, connected[0].hosts),
        (2, 14),
        "{connected:?}"
    );
    assert!(connected[0].old_hosts.is_some(), "{connected:?}");
    assert!(rounds_seen > 3);
    assert_eq!(empty, 0, "{empty} moments without a healthy ActiveGate");
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activegates_that_never_register_are_rolled_back_and_blue_never_stops() {
    let (rig, first) = started("", 4).await;
    rig.w.image(BAD, Mode::Healthy);
    rig.w.sim.set_registration(BAD, Registration::never());
    let side = SideProber::start(&rig.w);
    let (outcome, _) = roll(&rig, BAD).await;
    let (rounds, empty) = side.finish().await;
    let Outcome::RolledBack {
        restored,
        reasons,
        via,
        ..
    } = &outcome
    else {
        panic!("expected a roll-back, got {outcome:?}")
    };
    assert_eq!(outcome.exit_code(), 3);
    assert_eq!(*via, RollbackVia::GreenDeleted);
    assert_eq!(restored, &first);
    assert!(
        reasons.iter().any(
            |r| r.starts_with("task 127.") && r.contains("not listed by the environment after")
        ),
        "{reasons:?}"
    );
    // Their probes passed: the probe is not what failed.
    assert!(
        !reasons.iter().any(|r| r.contains("HTTP 503")),
        "{reasons:?}"
    );
    assert!(quarantined(&rig.service_tags().await));
    assert!(rounds > 10, "the side prober ran {rounds} rounds");
    assert_eq!(
        empty, 0,
        "{empty} of {rounds} moments without a healthy ActiveGate"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_version_is_rolled_back_naming_the_difference() {
    let (rig, _) = started("", 30).await;
    rig.w.image(BAD, Mode::Healthy);
    rig.w.sim.set_registration(
        BAD,
        Registration {
            version: Some("1.301.70.20241127-162512".into()),
            ..Registration::default()
        },
    );
    let (outcome, _) = roll(&rig, BAD).await;
    let Outcome::RolledBack { reasons, .. } = &outcome else {
        panic!("expected a roll-back, got {outcome:?}")
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.ends_with("listed with version 1.301.70, expected 1.305.0")),
        "{reasons:?}"
    );
    assert!(quarantined(&rig.service_tags().await));
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_network_zone_is_rolled_back_naming_the_difference() {
    set_token();
    let mut rig = Rig::blue_green().await;
    in_zone(&mut rig);
    let first = rig.started().await;
    rig.w.image(BAD, Mode::Healthy);
    // A typo: the filtered answer does not list them; a lookup by address finds them.
    rig.w.sim.set_registration(
        BAD,
        Registration {
            network_zone: Some("aws.eu-centrl-1".into()),
            ..Registration::default()
        },
    );
    let side = SideProber::start(&rig.w);
    let (outcome, _) = roll(&rig, BAD).await;
    let (_, empty) = side.finish().await;
    let Outcome::RolledBack {
        restored, reasons, ..
    } = &outcome
    else {
        panic!("expected a roll-back, got {outcome:?}")
    };
    assert_eq!(restored, &first);
    assert!(
        reasons
            .iter()
            .any(|r| r.ends_with("network zone `aws.eu-centrl-1`, expected `aws.eu-central-1`")),
        "{reasons:?}"
    );
    assert_eq!(empty, 0);
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_reported_as_a_configuration_error_and_nothing_is_quarantined() {
    let (rig, first) = started("", 3).await;
    // Only once the new version's tasks run: blue was verified with the same token.
    rig.w.sim.set_dynatrace_fault(Some(ApiFault {
        status: Some(401),
        image: Some(V2.into()),
        ..ApiFault::default()
    }));
    let (outcome, _) = roll(&rig, V2).await;
    let Outcome::Inconclusive {
        serving, reasons, ..
    } = &outcome
    else {
        panic!("expected the new revision removed as unproven, got {outcome:?}")
    };
    assert_eq!(outcome.exit_code(), 1);
    assert_eq!(serving, &first);
    assert!(
        reasons.iter().any(|r| r.starts_with("configuration error:")
            && r.contains("HTTP 401")
            && r.contains("`activeGates.read` scope")
            && r.contains(TOKEN_ENV)),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.contains(TOKEN)),
        "the token is shown: {reasons:?}"
    );
    let tags = rig.service_tags().await;
    assert!(!quarantined(&tags), "not the version's fault: {tags:?}");
    assert_eq!(tags.get(tags::LAST_GOOD), Some(&first));
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_as_retry_after_asks() {
    let (rig, _) = started("", 30).await;
    rig.w.sim.set_dynatrace_fault(Some(ApiFault {
        status: Some(429),
        retry_after: Some(1),
        image: Some(V2.into()),
        times: Some(2),
        ..ApiFault::default()
    }));
    let from = rig.w.sim.timeline().len();
    let (outcome, seen) = roll(&rig, V2).await;
    assert!(
        matches!(outcome, Outcome::Verified { ref warnings, .. } if warnings.is_empty()),
        "{outcome:?}"
    );
    let calls: Vec<(f64, String)> = rig.w.sim.timeline()[from..]
        .iter()
        .filter(|e| e.kind == "dynatrace-activegates")
        .map(|e| (e.time, e.detail.clone()))
        .collect();
    assert!(
        calls[0].1.starts_with("429") && calls[1].1.starts_with("429"),
        "{calls:?}"
    );
    assert!(
        calls[2..].iter().all(|c| c.1.starts_with("200")),
        "{calls:?}"
    );
    // No request until Retry-After (1 s, i.e. ~SPEED simulated seconds) had passed.
    for w in calls[..3].windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(
            gap >= 0.9 * simkit::SPEED,
            "asked again after {gap} simulated s: {calls:?}"
        );
    }
    assert!(
        (calls.len() as u64) < seen.rounds.load(Ordering::Relaxed),
        "rounds during the wait do not ask"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probe_only_the_api_down_verifies_on_the_probes_with_a_warning() {
    set_token();
    let mut rig = Rig::blue_green().await;
    // Nothing listens on the discard port: the environment is out of reach.
    let path = rig.dir.path().join("ag.toml");
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(&format!(
        "\n[target.verify.dynatrace]\nenvironment_url = \"http://127.0.0.1:9\"\ntoken_env = \"{TOKEN_ENV}\"\non_api_error = \"probe-only\"\n"
    ));
    std::fs::write(&path, text).expect("write config");
    rig.config = Config::load(&path).expect("a valid config");
    rig.w.image(V2, Mode::Healthy);
    let first = rig.started().await;
    let (outcome, _) = roll(&rig, V2).await;
    let Outcome::Verified { from, warnings, .. } = &outcome else {
        panic!("expected verified, got {outcome:?}")
    };
    assert_eq!(from.as_deref(), Some(first.as_str()));
    assert!(
        warnings.iter().any(|w| w
            .contains("2 of 2 new ActiveGates verified by their HTTPS probe alone")
            && w.contains("could not be asked")
            && w.contains("probe-only")),
        "{warnings:?}"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probe_only_a_slow_or_failing_api_warns_and_the_check_still_counts_when_it_answers() {
    let (rig, _) = started("on_api_error = \"probe-only\"", 30).await;
    // Slower than the probes' timeout (0.5 s).
    rig.w.sim.set_dynatrace_fault(Some(ApiFault {
        latency_ms: 1500,
        image: Some(V2.into()),
        ..ApiFault::default()
    }));
    let (outcome, _) = roll(&rig, V2).await;
    let Outcome::Verified { warnings, .. } = &outcome else {
        panic!("expected verified, got {outcome:?}")
    };
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("no answer within 0.5 s")),
        "{warnings:?}"
    );
    // probe-only never waives what Dynatrace does say: a wrong version still fails.
    rig.w.sim.set_dynatrace_fault(None);
    rig.w.image(BAD, Mode::Healthy);
    rig.w.sim.set_registration(
        BAD,
        Registration {
            version: Some("1.303.10.20250115-101010".into()),
            ..Registration::default()
        },
    );
    let (outcome, _) = roll(&rig, BAD).await;
    assert!(
        matches!(&outcome, Outcome::RolledBack { reasons, .. } if reasons.iter().any(|r| r.contains("listed with version 1.303.10, expected 1.305.0"))),
        "{outcome:?}"
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_with_fail_waits_for_the_deadline_and_blames_nobody() {
    let (rig, first) = started("", 3).await;
    rig.w.sim.set_dynatrace_fault(Some(ApiFault {
        status: Some(500),
        image: Some(V2.into()),
        ..ApiFault::default()
    }));
    let (outcome, _) = roll(&rig, V2).await;
    let Outcome::Inconclusive {
        serving, reasons, ..
    } = &outcome
    else {
        panic!("expected inconclusive, got {outcome:?}")
    };
    assert_eq!(serving, &first);
    assert!(
        reasons.iter().any(
            |r| r.starts_with("the Dynatrace environment could not be asked")
                && r.contains("HTTP 500")
        ),
        "{reasons:?}"
    );
    assert!(!quarantined(&rig.service_tags().await));
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_deployment_reports_its_connected_oneagents_at_completion() {
    set_token();
    let mut rig = Rig::new().await;
    check_on(&mut rig, "");
    rig.w.sim.set_registration(
        V2,
        Registration {
            connected_hosts: Some(3),
            ..Registration::default()
        },
    );
    rig.started().await;
    let (outcome, seen) = roll(&rig, V2).await;
    assert!(matches!(outcome, Outcome::Verified { .. }), "{outcome:?}");
    let connected = seen.connected.lock().expect("lock").clone();
    assert_eq!(connected.len(), 1, "{connected:?}");
    assert_eq!((connected[0].activegates, connected[0].hosts), (2, 6));
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_oneagents_the_new_activegates_report() {
    set_token();
    let mut rig = Rig::blue_green().await;
    check_on(&mut rig, "");
    rig.w.sim.set_registration(
        V1,
        Registration {
            connected_hosts: Some(5),
            ..Registration::default()
        },
    );
    let daemon = rig.daemon();
    let t = daemon
        .until(|t| t.last_outcome.as_deref() == Some("verified"))
        .await;
    let c = t
        .connected_hosts
        .clone()
        .expect("connected hosts on the board");
    assert_eq!((c.activegates, c.hosts), (2, 10), "{c:?}");
    let status = serde_json::to_value(daemon.board.snapshot()).expect("JSON");
    assert_eq!(
        status["targets"]["prod"]["connected_hosts"]["hosts"],
        serde_json::json!(10),
        "{status}"
    );
    daemon.stop().await;
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_appears_in_any_output() {
    use simkit::binary;
    // A canary that looks like nothing: no pattern could scrub it, only never printing it.
    const CANARY: &str = "canary-4f1d9e-never-print-me";
    let mut rig = Rig::blue_green().await;
    rig.edit_config(&[("deadline_seconds = 30", "deadline_seconds = 3")]);
    check_on(&mut rig, "");
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace(TOKEN_ENV, "DT_API_TOKEN")).expect("write");
    let with_token = |args: &[&str], token: Option<&str>| {
        let mut c = binary::command(&rig, args);
        // The most the binary ever logs.
        c.env("RUST_LOG", "trace");
        match token {
            Some(t) => c.env("DT_API_TOKEN", t),
            None => c.env_remove("DT_API_TOKEN"),
        };
        c
    };
    let run = |mut c: std::process::Command| async move {
        let out = tokio::task::spawn_blocking(move || c.output().expect("runs"))
            .await
            .expect("join");
        (
            out.status.code().expect("exited"),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // A first rollout (verified), plan, then the environment refusing the token.
    let (code, out) = run(with_token(&["rollout"], Some(CANARY))).await;
    assert_eq!(code, 0, "{out}");
    let (code, plan) = run(with_token(&["plan"], Some(CANARY))).await;
    assert_eq!(code, 0, "{plan}");
    assert!(plan.contains("dynatrace:     on:"), "{plan}");
    rig.w.sim.set_dynatrace_fault(Some(ApiFault {
        status: Some(401),
        image: Some(V2.into()),
        ..ApiFault::default()
    }));
    let (code, refused) = run(with_token(&["rollout", "--image", V2], Some(CANARY))).await;
    assert_eq!(code, 1, "{refused}");
    assert!(
        refused.contains("configuration error") && refused.contains("DT_API_TOKEN"),
        "{refused}"
    );
    // Without the variable: bad input that names the variable, not a value.
    let (code, missing) = run(with_token(&["rollout"], None)).await;
    assert_eq!(code, 2, "{missing}");
    assert!(missing.contains("`DT_API_TOKEN`"), "{missing}");
    for (what, output) in [("rollout", &out), ("plan", &plan), ("401", &refused)] {
        assert!(
            !output.contains(CANARY),
            "{what} printed the token:\n{output}"
        );
        assert!(
            !output.contains("4f1d9e"),
            "{what} printed part of the token:\n{output}"
        );
    }
    // The simulator never records it either.
    let timeline = serde_json::to_string(&rig.w.sim.timeline()).expect("JSON");
    assert!(!timeline.contains(CANARY));
    rig.w.sim.shutdown().await;
}

#[test]
fn the_section_is_checked_where_it_is_read() {
    let base = config_text(
        "http://127.0.0.1:4566",
        "/tmp/m.yaml",
        "/tmp/ca.pem",
        "insecure = true",
    );
    let parse = |extra: &str| {
        Config::parse(
            "ag.toml",
            &format!("{base}\n[target.verify.dynatrace]\n{extra}\n"),
        )
    };
    let ok = parse("environment_url = \"https://abc12345.live.dynatrace.com\"").expect("valid");
    let d = ok.targets[0]
        .verify
        .as_ref()
        .and_then(|v| v.dynatrace.as_ref())
        .expect("the section");
    assert_eq!(d.token_env.0, "DT_API_TOKEN", "the default variable");
    for (extra, field, says) in [
        (
            "environment_url = \"https://x.live.dynatrace.com\"\non_api_error = \"ignore\"",
            "target[0].verify.dynatrace.on_api_error",
            "probe-only",
        ),
        (
            "environment_url = \"https://x.live.dynatrace.com\"\nnetwork_zone = \"aws..eu\"",
            "target[0].verify.dynatrace.network_zone",
            "network zone",
        ),
        (
            "environment_url = \"https://x.live.dynatrace.com\"\ntoken_env = \"dt0c01.ABCDEFGHIJKLMNOPQRSTUVWX.ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ012345\"",
            "target[0].verify.dynatrace.token_env",
            "looks like a Dynatrace token",
        ),
        (
            "environment_url = \"https://x.live.dynatrace.com\"\nnetwrok_zone = \"a\"",
            "target[0].verify.dynatrace",
            "did you mean `network_zone`",
        ),
        (
            "token_env = \"DT_API_TOKEN\"",
            "target[0].verify.dynatrace",
            "environment_url",
        ),
    ] {
        let e = parse(extra).expect_err(extra).to_string();
        assert!(e.starts_with("ag.toml:"), "{e}");
        assert!(e.contains(field), "{extra}: {e}");
        assert!(e.contains(says), "{extra}: {e}");
        assert!(!e.contains("ABCDEFGHIJKLMNOP"), "the token is echoed: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_lists_its_tasks_activegates_as_dynatrace_does() {
    use simkit::*;
    let w = World::new().await;
    w.image(V2, Mode::Healthy);
    let td = w.register(V2, false).await;
    w.create_service("ag", &td, 2).await;
    let http = reqwest::Client::new();
    let base = w.sim.endpoint().to_owned();
    let list = |query: &'static str, token: bool| {
        let mut r = http.get(format!("{base}/api/v2/activeGates{query}"));
        if token {
            r = r.header("authorization", "Api-Token sim");
        }
        async move {
            let resp = r.send().await.expect("answer");
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = resp.json().await.expect("JSON");
            (status, retry, body)
        }
    };
    let ips: Vec<String> = until(w.sim.real(600.0), || async {
        let (_, _, body) = list("", true).await;
        let gates = body["activeGates"].as_array()?.clone();
        (gates.len() == 2).then(|| {
            gates
                .iter()
                .map(|g| g["networkAddresses"][0].as_str().unwrap_or("").to_owned())
                .collect()
        })
    })
    .await;
    let running: Vec<String> = w.tasks("ag", false).await.iter().map(task_ip).collect();
    for ip in &ips {
        assert!(
            running.contains(ip),
            "{ip} is a task's address: {running:?}"
        );
    }
    let (status, _, body) = list("?networkAddress=127.", true).await;
    assert_eq!(status, 200);
    let g = &body["activeGates"][0];
    assert_eq!(g["version"], "1.303.10.20250115-101010");
    assert_eq!(g["networkZone"], "default");
    assert!(
        g["offlineSince"].is_null() && g["connectedHosts"]["number"].is_u64(),
        "{g}"
    );
    assert_eq!(
        list("?networkZone=aws.eu-central-1", true).await.2["activeGates"],
        serde_json::json!([])
    );
    assert_eq!(list("", false).await.0, 401, "an Api-Token is wanted");

    // Per image, through the control API: another zone; the API answering 429 twice.
    let post = |path: &'static str, body: serde_json::Value| {
        let r = http.post(format!("{base}{path}")).json(&body);
        async move { r.send().await.expect("answer").status().as_u16() }
    };
    assert_eq!(
        post(
            "/sim/v1/dynatrace/activegates",
            serde_json::json!({"image": V2, "network_zone": "aws.eu-central-1"})
        )
        .await,
        200
    );
    assert_eq!(
        list("?networkZone=AWS.EU-CENTRAL-1", true).await.2["activeGates"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        post(
            "/sim/v1/dynatrace/fault",
            serde_json::json!({"status": 429, "retry_after": 7, "times": 2})
        )
        .await,
        200
    );
    for _ in 0..2 {
        let (status, retry, _) = list("", true).await;
        assert_eq!((status, retry.as_deref()), (429, Some("7")));
    }
    assert_eq!(
        list("", true).await.0,
        200,
        "the fault is gone after `times` calls"
    );
    for bad in [
        serde_json::json!({"status": 200}),
        serde_json::json!({"times": 0}),
        serde_json::json!({"latency": 5}),
    ] {
        assert_eq!(
            post("/sim/v1/dynatrace/fault", bad.clone()).await,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        post(
            "/sim/v1/dynatrace/activegates",
            serde_json::json!({"image": V2, "version": "latest"})
        )
        .await,
        400
    );
    assert!(w.sim.dynatrace_calls() >= 8);
    assert_eq!(
        w.sim.calls().get("DynatraceActiveGates").copied(),
        Some(w.sim.dynatrace_calls())
    );
    // A stopped task's ActiveGate is listed offline.
    w.ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ag")
        .desired_count(0)
        .send()
        .await
        .expect("scale in");
    until(w.sim.real(600.0), || async {
        let (_, _, body) = list("", true).await;
        body["activeGates"]
            .as_array()?
            .iter()
            .all(|g| g["offlineSince"].is_i64() && g["connectedHosts"]["number"] == 0)
            .then_some(())
    })
    .await;
    w.sim.shutdown().await;
}
