//! A target's own `endpoint_url` (#16): one daemon (the real binary) over two simulators —
//! a fleet over two regions reaches each region's VPC endpoint, the fleet benchmark one
//! simulator per account and region. Target `a` takes `[aws] endpoint_url`, target `b` its
//! own; both have the same region, cluster name and credentials, so only the endpoint keeps
//! their clients, rate budgets and cluster observers apart. And `check-config` and `run`
//! refuse a bad target endpoint as they refuse a bad global one.

mod simkit;

use std::time::Duration;

use activegate_lifecycle::sim::Mode;
use simkit::cli::{code, path_str, run_env, stderr, stdout};
use simkit::procfs::{spawn_daemon, stop};
use simkit::rig::{V1, target_toml};
use simkit::{CLUSTER, World, until};

const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/activegate-k8s.yaml"
);

/// Target `name` of `desired` tasks, service `ag-<name>` in the simulators' common cluster,
/// with the CA at `ca` and, when given, its own endpoint.
fn target(name: &str, desired: u64, ca: &str, endpoint: Option<&str>) -> String {
    let service = format!("ag-{name}");
    let text = target_toml(name, CLUSTER, &service, desired, 0.05, MANIFEST, ca);
    match endpoint {
        None => text,
        Some(url) => text.replacen(
            "execution_role_arn =",
            &format!("endpoint_url = \"{url}\"\nexecution_role_arn ="),
            1,
        ),
    }
}

fn config(global: &str, a: &str, b: &str) -> String {
    format!(
        "[daemon]\nstatus_listen = \"127.0.0.1:0\"\n\n[aws]\nendpoint_url = \"{global}\"\nmax_attempts = 10\n{a}{b}"
    )
}

/// Which of the two targets' services `w`'s simulator has, with their desired counts.
async fn services_in(w: &World) -> Vec<(String, i32)> {
    let described = w
        .ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("ag-a")
        .services("ag-b")
        .send()
        .await
        .expect("describe services");
    described
        .services()
        .iter()
        .map(|s| {
            (
                s.service_name().unwrap_or_default().to_owned(),
                s.desired_count(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_targets_at_two_simulators_each_reconcile_against_their_own() {
    let (wa, wb) = (World::new().await, World::new().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cas = Vec::new();
    for (w, file) in [(&wa, "a-ca.pem"), (&wb, "b-ca.pem")] {
        w.image(V1, Mode::Healthy);
        let path = dir.path().join(file);
        std::fs::write(&path, w.sim.ca_pem()).expect("write CA");
        cas.push(path_str(&path).to_owned());
    }
    // One task for `a`, two for `b`: each simulator's service shows whose it is.
    let text = config(
        wa.sim.endpoint(),
        &target("a", 1, &cas[0], None),
        &target("b", 2, &cas[1], Some(wb.sim.endpoint())),
    );
    let path = dir.path().join("ag.toml");
    std::fs::write(&path, text).expect("write config");

    let (child, url) = spawn_daemon(&path, &[]).await;
    let http = reqwest::Client::new();
    // Both verified, and both monitors probing: with one observer for the two (the same
    // identity, region and cluster name), one simulator's cluster would be read for both,
    // and one target's monitor would find none of its service's tasks there.
    let status = until(Duration::from_secs(90), || async {
        let s: serde_json::Value = http
            .get(format!("{url}/status"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let ready = ["a", "b"].iter().all(|t| {
            let t = &s["targets"][t];
            t["outcomes"]["verified"].as_u64() == Some(1)
                && t["running"].as_bool() == Some(false)
                && t["probes_ok"].as_u64().unwrap_or(0) > 0
        });
        ready.then_some(s)
    })
    .await;
    let (calls_a, calls_b) = (wa.sim.calls(), wb.sim.calls());
    stop(child);

    assert_eq!(
        services_in(&wa).await,
        [("ag-a".to_owned(), 1)],
        "simulator a"
    );
    assert_eq!(
        services_in(&wb).await,
        [("ag-b".to_owned(), 2)],
        "simulator b"
    );
    for (name, calls) in [("a", &calls_a), ("b", &calls_b)] {
        assert_eq!(
            calls.get("CreateService").copied(),
            Some(1),
            "simulator {name}: one CreateService, its target's: {calls:?}"
        );
        for op in ["RegisterTaskDefinition", "ListTasks", "DescribeTasks"] {
            assert!(
                calls.get(op).copied().unwrap_or(0) > 0,
                "simulator {name} saw no {op}: {calls:?}"
            );
        }
        let t = &status["targets"][name];
        assert!(t["last_error"].is_null(), "target {name}: {t}");
    }
}

#[test]
fn check_config_and_run_refuse_a_bad_target_endpoint_as_a_bad_global_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = "no CA";
    // No simulator here, so no CA to trust: the probes trust anything (a warning only).
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        let text = text.replace(&format!("ca_bundle = \"{ca}\""), "insecure = true");
        std::fs::write(&path, text).expect("write config");
        path_str(&path).to_owned()
    };
    let good = write(
        "good.toml",
        config(
            "http://127.0.0.1:9",
            &target("a", 1, ca, None),
            &target("b", 1, ca, Some("https://ecs.eu-west-1.amazonaws.com")),
        ),
    );
    let o = run_env(&["check-config", "--config", &good], &[("RUST_LOG", "off")]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));

    let bad_target = write(
        "bad-target.toml",
        config(
            "http://127.0.0.1:9",
            &target("a", 1, ca, None),
            &target("b", 1, ca, Some("ecs.eu-west-1.amazonaws.com")),
        ),
    );
    let bad_global = write(
        "bad-global.toml",
        config(
            "ecs.eu-west-1.amazonaws.com",
            &target("a", 1, ca, None),
            &target("b", 1, ca, None),
        ),
    );
    for (file, field) in [
        (&bad_target, "target[1].endpoint_url"),
        (&bad_global, "aws.endpoint_url"),
    ] {
        for command in ["check-config", "run"] {
            let o = run_env(&[command, "--config", file], &[("RUST_LOG", "off")]);
            let err = stderr(&o);
            assert_eq!(code(&o), 2, "{command} {file}: {err}");
            assert!(err.contains(field), "{command} {file}: {err}");
            assert!(
                err.contains("expected an http(s) URL"),
                "{command} {file}: {err}"
            );
        }
    }
}
