//! The seed manifest (the ActiveGate StatefulSet + Service users run on
//! Kubernetes) translated by the real binary, compared byte for byte with
//! checked-in documents and reports.

mod simkit;

use simkit::cli::*;

fn translate(extra: &[&str]) -> std::process::Output {
    let manifest = fixture("activegate-k8s.yaml");
    let mut args = vec!["translate", path_str(&manifest)];
    args.extend_from_slice(extra);
    run(&args)
}

fn with_config(extra: &[&str]) -> std::process::Output {
    let config = example_config();
    let mut args = vec!["--config", path_str(&config)];
    args.extend_from_slice(extra);
    // The paths in the report must not depend on where the repository lives.
    translate(&args)
}

/// Report text with the absolute fixture path made relative.
fn report(o: &std::process::Output) -> String {
    stderr(o).replace(path_str(&root()), ".")
}

#[test]
fn seed_with_the_example_config() {
    let o = with_config(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_golden("activegate.task-definition.json", &stdout(&o));
    assert_golden("activegate.report.txt", &report(&o));
    let td: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let names: Vec<&str> = td["containerDefinitions"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["activegate", "token-writer"]);
    assert!(report(&o).contains("0 needs-setting"));
}

#[test]
fn seed_service_document() {
    let o = with_config(&["--output", "service"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_golden("activegate.service.json", &stdout(&o));
}

#[test]
fn seed_without_a_config() {
    let o = translate(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_golden("activegate.no-config.task-definition.json", &stdout(&o));
    assert_golden("activegate.no-config.report.txt", &report(&o));
    // Nothing Kubernetes-only leaks through as a literal.
    assert!(
        !stdout(&o).contains("$("),
        "an unresolved $(VAR) was copied"
    );
    assert!(!stdout(&o).contains("kubernetes_monitoring"));
    // --strict turns missing settings into a failure.
    let o = translate(&["--strict"]);
    assert_eq!(code(&o), 2);
    let o = translate(&["--output", "service"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("the service document needs `cluster` from the config"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn output_is_byte_for_byte_deterministic() {
    let a = with_config(&[]);
    let b = with_config(&[]);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stderr, b.stderr);
}

#[test]
fn the_json_report_matches_the_text_report() {
    let text = with_config(&[]);
    let json = with_config(&["--report", "json"]);
    assert_eq!(
        text.stdout, json.stdout,
        "the report format must not change the document"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&json.stderr).expect("the JSON report parses");
    let entries = doc["entries"].as_array().expect("entries");
    let text_lines = stderr(&text)
        .lines()
        .filter(|l| !l.starts_with("summary:"))
        .count();
    assert_eq!(entries.len(), text_lines);
    let mapped = doc["summary"]["mapped"].as_u64().expect("count");
    assert!(stderr(&text).contains(&format!("summary: {mapped} mapped")));
    for e in entries {
        assert!(
            e["action"].is_string() && e["source"].is_string() && e["detail"].is_string(),
            "{e}"
        );
    }
}

/// `mesh` for the example config: the ActiveGate's stable name as the destination.
fn mesh(extra: &[&str]) -> std::process::Output {
    let config = example_config();
    let mut args = vec!["mesh", "--config", path_str(&config)];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn mesh_entries_as_consul_k8s_resources() {
    let o = mesh(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_golden("mesh.crd.yaml", &stdout(&o));
    // Every document is YAML a Kubernetes client reads.
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(&stdout(&o)).expect("YAML documents");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ServiceDefaults", "TerminatingGateway", "ServiceIntentions"]
    );
}

#[test]
fn mesh_entries_for_consul_config_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = mesh(&["--format", "consul", "--out-dir", path_str(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut all = String::new();
    for name in [
        "service-defaults.json",
        "terminating-gateway.json",
        "service-intentions.json",
    ] {
        let text = std::fs::read_to_string(dir.path().join(name)).expect(name);
        let v: serde_json::Value = serde_json::from_str(&text).expect("one JSON entry per file");
        assert!(v["Kind"].is_string(), "{name}");
        all.push_str(&text);
    }
    assert_golden("mesh.consul.json", &all);
    assert_eq!(
        stdout(&o).lines().count(),
        3,
        "the files written are listed"
    );
}

#[test]
fn mesh_exclusions_state_their_drawback() {
    let o = mesh(&["--exclusions"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_golden("mesh.exclusions.yaml", &stdout(&o));
    let o = mesh(&["--exclusions", "--format", "consul"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_golden("mesh.exclusions.consul-ecs.json", &stdout(&o));
}

#[test]
fn mesh_without_a_mesh_section_is_bad_input() {
    let o = run(&[
        "mesh",
        "--config",
        path_str(&root().join("deploy/activegate-lifecycle.toml")),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("has no [target.mesh]"),
        "{}",
        stderr(&o)
    );
}
