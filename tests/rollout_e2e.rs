//! The real binary against an in-process simulator: exit codes, and a process
//! killed with SIGKILL in the middle of a rollout or of a roll-back that, started
//! again, carries on from the tags it left on the service.

mod simkit;

use activegate_lifecycle::rollout::tags;
use activegate_lifecycle::sim::Mode;
use std::process::Command;

use simkit::binary::{BIN, kill, run, spawn};
use simkit::rig::*;
use simkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_verified_unchanged_and_rolled_back() {
    let rig = Rig::new().await;
    let (code, out, err) = run(&rig, &["rollout"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(
            "prod: verified arn:aws:ecs:us-east-1:123456789012:task-definition/activegate:1"
        ),
        "{out}"
    );
    let (code, out, _) = run(&rig, &["rollout"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("prod: unchanged"), "{out}");
    let (code, out, _) = run(&rig, &["plan"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("no changes"), "{out}");

    rig.w.image(BAD, Mode::NeverHealthy);
    let (code, out, err) = run(&rig, &["rollout", "--image", BAD]).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("rolled back"), "{out}");
    assert!(out.contains("reason: "), "{out}");
    assert!(!out.contains("not-a-secret") && !err.contains("not-a-secret"));
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_verification_the_next_run_finishes_the_rollout() {
    let rig = Rig::new().await;
    let first = rig.started().await;
    let child = spawn(&rig, &["rollout", "--image", V2]);
    // Wait until the new revision's tasks run: the process is verifying them.
    let to = until(rig.w.sim.real(1200.0), || async {
        let tags = rig.service_tags().await;
        let to = tags.get(tags::ROLLOUT_TO)?.clone();
        let running = rig.w.tasks(SERVICE, false).await;
        running
            .iter()
            .any(|t| {
                t.task_definition_arn() == Some(to.as_str()) && t.last_status() == Some("RUNNING")
            })
            .then_some(to)
    })
    .await;
    kill(child).await;
    assert_eq!(
        rig.service_tags().await.get(tags::ROLLOUT_TO),
        Some(&to),
        "the mark survives the kill"
    );

    let (code, out, err) = run(&rig, &["rollout", "--image", V2]).await;
    assert_eq!(code, 0, "{out}{err}");
    let tags = rig.service_tags().await;
    assert_eq!(tags.get(tags::LAST_GOOD), Some(&to));
    assert!(!tags.contains_key(tags::ROLLOUT_TO));
    assert_eq!(
        rig.w.service(SERVICE).await.task_definition(),
        Some(to.as_str())
    );
    assert_ne!(to, first);
    // Only one revision was registered for V2: the second run did not start a second rollout.
    let registered = rig
        .w
        .sim
        .timeline()
        .iter()
        .filter(|e| e.kind == "task-definition-registered")
        .count();
    assert_eq!(registered, 2);
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_the_roll_back_the_next_run_finishes_it() {
    let rig = Rig::new().await;
    let first = rig.started().await;
    rig.w.image(BAD, Mode::NeverHealthy);
    let child = spawn(&rig, &["rollout", "--image", BAD]);
    // The roll-back has begun when the service points at the first revision again
    // while the in-flight mark is still there.
    until(rig.w.sim.real(3000.0), || async {
        let tags = rig.service_tags().await;
        let svc = rig.w.service(SERVICE).await;
        (tags.contains_key(tags::ROLLOUT_TO) && svc.task_definition() == Some(first.as_str()))
            .then_some(())
    })
    .await;
    kill(child).await;

    let (code, out, err) = run(&rig, &["rollout", "--image", BAD]).await;
    assert_eq!(code, 3, "the resumed run reports the roll-back: {out}{err}");
    let tags = rig.service_tags().await;
    assert_eq!(tags.get(tags::LAST_GOOD), Some(&first));
    assert!(!tags.contains_key(tags::ROLLOUT_TO));
    assert!(tags.values().any(|v| v == BAD), "quarantined: {tags:?}");
    assert_eq!(
        rig.w.service(SERVICE).await.task_definition(),
        Some(first.as_str())
    );
    // And the run after that leaves the quarantined image alone.
    let (code, out, _) = run(&rig, &["rollout", "--image", BAD]).await;
    assert_eq!(code, 0);
    assert!(out.contains("quarantined"), "{out}");
    rig.w.sim.shutdown().await;
}

#[tokio::test]
async fn a_target_without_a_manifest_or_trust_is_bad_input() {
    let rig = Rig::new().await;
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let no_trust: String = text
        .lines()
        .filter(|l| !l.starts_with("ca_bundle"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, no_trust).expect("write");
    let (code, _, err) = run(&rig, &["rollout"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("set probe.ca_bundle, probe.pin_sha256 or probe.insecure"),
        "{err}"
    );
    let no_manifest: String = text
        .lines()
        .filter(|l| !l.starts_with("manifest"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, no_manifest).expect("write");
    let (code, _, err) = run(&rig, &["plan"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no `manifest`"), "{err}");
    rig.w.sim.shutdown().await;
}

#[tokio::test]
async fn aws_out_of_reach_exits_1_and_says_what_state_the_service_is_in() {
    let rig = Rig::new().await;
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    // Nothing listens on port 9 of loopback.
    let unreachable = text
        .replace(rig.w.sim.endpoint(), "http://127.0.0.1:9")
        .replace("max_attempts = 10", "max_attempts = 2");
    std::fs::write(&path, unreachable).expect("write");
    let (code, out, err) = run(&rig, &["rollout"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("the rollout could not finish"), "{err}");
    assert!(err.contains("the next run resumes from them"), "{err}");
    assert!(err.contains("AWS did not answer"), "{err}");
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_progress_is_one_live_line() {
    // util-linux `script` gives the binary a pseudo-terminal.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: `script` (util-linux) is not installed, so no terminal can be simulated"
        );
        return;
    }
    let rig = Rig::new().await;
    rig.started().await;
    let config = rig.dir.path().join("ag.toml");
    let cmd = format!("{BIN} rollout --config {} --image {V2}", config.display());
    let mut c = Command::new("script");
    c.args(["-qefc", &cmd, "/dev/null"])
        .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        .env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || c.output().expect("script runs"))
        .await
        .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("\r\x1b[2K"),
        "the line is redrawn in place: {text:?}"
    );
    assert!(text.contains("2/2 running, 2 healthy"), "{text:?}");
    assert!(text.contains("prod: verified"), "{text:?}");
    rig.w.sim.shutdown().await;
}
