//! The command line as a user meets it: exit codes, error lines, logs.
//! Every bad input exits 2 with one clear error naming the place, never a panic.

mod simkit;

use std::io::Write;

use simkit::cli::*;

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("write test file");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// Runs `translate FILE`, expects exit 2, returns the error lines.
fn bad_manifest(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, name, bytes);
    let o = run(&["translate", &path]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{name}: {err}");
    assert!(
        o.stdout.is_empty(),
        "{name}: nothing may be printed on stdout"
    );
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(
        err.starts_with(&format!("activegate-lifecycle: error: {path}")),
        "{name}: {err}"
    );
    err.replace(&path, name)
}

const POD: &str = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: ag}\nspec:\n  template:\n    spec:\n      containers:\n";

#[test]
fn malformed_yaml() {
    let err = bad_manifest("m.yaml", b"kind: StatefulSet\nspec: {template: [\n");
    assert!(
        err.starts_with("activegate-lifecycle: error: m.yaml:2:"),
        "{err}"
    );
}

#[test]
fn a_wrong_type() {
    let yaml = format!(
        "{POD}        - name: ag\n          image: r/ag:1\n          ports: {{containerPort: 9999}}\n"
    );
    let err = bad_manifest("t.yaml", yaml.as_bytes());
    assert!(
        err.starts_with("activegate-lifecycle: error: t.yaml:10:"),
        "{err}"
    );
}

#[test]
fn a_missing_container() {
    let yaml = POD.replace("      containers:\n", "      containers: []\n");
    let err = bad_manifest("c.yaml", yaml.as_bytes());
    assert!(
        err.contains("c.yaml:2:7: StatefulSet/ag has no containers"),
        "{err}"
    );
}

#[test]
fn an_unparseable_quantity() {
    let yaml = format!(
        "{POD}        - name: ag\n          image: r/ag:1\n          resources: {{requests: {{cpu: 250x}}}}\n"
    );
    let err = bad_manifest("q.yaml", yaml.as_bytes());
    assert!(err.contains("q.yaml:10:"), "{err}");
    assert!(err.contains("`250x` is not a Kubernetes quantity"), "{err}");
}

#[test]
fn a_non_utf8_file() {
    let err = bad_manifest("u.yaml", b"kind: Service\nmetadata:\n  name: \xc3\x28\n");
    assert!(
        err.contains("u.yaml:3:9: the file is not UTF-8 text"),
        "{err}"
    );
}

#[test]
fn an_empty_file() {
    let err = bad_manifest("e.yaml", b"");
    assert!(
        err.contains("e.yaml: the file holds no YAML document"),
        "{err}"
    );
}

#[test]
fn a_50_mb_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.yaml");
    let f = std::fs::File::create(&path).expect("create");
    f.set_len(50 * 1024 * 1024).expect("sparse 50 MB");
    let o = run(&["translate", path_str(&path)]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("a manifest may be at most 4194304 bytes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_literal_token_is_refused_without_repeating_it() {
    let yaml = format!(
        "{POD}        - name: ag\n          image: r/ag:1\n          env:\n            - {{name: DT_TENANT_TOKEN, value: hunter2-token}}\n"
    );
    let err = bad_manifest("s.yaml", yaml.as_bytes());
    assert!(err.contains("s.yaml:11:"), "{err}");
    assert!(err.contains("holds a literal secret"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn no_workload() {
    let err = bad_manifest(
        "n.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    assert!(
        err.contains("no StatefulSet or Deployment in the file (found ConfigMap/x)"),
        "{err}"
    );
}

#[test]
fn a_missing_file_names_the_cause() {
    let o = run(&["translate", "/nonexistent/ag.yaml"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        "activegate-lifecycle: error: /nonexistent/ag.yaml: cannot read the manifest"
    );
    assert!(
        lines[1].starts_with("activegate-lifecycle:   caused by: No such file"),
        "{err}"
    );
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    let o = run(&["translate"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).starts_with("activegate-lifecycle: error: "),
        "{}",
        stderr(&o)
    );
    let o = run(&["translate", "x.yaml", "--output", "pdf"]);
    assert_eq!(code(&o), 2);
    let o = run(&["translate", "x.yaml", "--target", "a"]);
    assert_eq!(code(&o), 2, "--target needs --config");
    let o = run(&["--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    for cmd in [
        "translate",
        "check-config",
        "run",
        "rollout",
        "rollback",
        "plan",
        "status",
        "sim",
        "mesh",
        "healthcheck",
        "demo",
    ] {
        // A command's own line: two spaces, its name, then its description.
        assert!(
            help.lines().any(|l| l
                .strip_prefix("  ")
                .and_then(|l| l.strip_prefix(cmd))
                .is_some_and(|rest| rest.starts_with(' '))),
            "--help lists {cmd}: {help}"
        );
    }
}

#[test]
fn check_config_accepts_the_example_and_points_at_errors() {
    let config = example_config();
    let o = run(&["check-config", "--config", path_str(&config)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("valid, 1 target: prod-eu"));

    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(&config)
        .expect("read example")
        .replace("retention_days = 30", "retention_days = 31");
    let path = write(&dir, "ag.toml", text.as_bytes());
    let o = run(&["check-config", "--config", &path]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(err.contains("ag.toml:"), "{err}");
    assert!(
        err.contains(": target[0].logs.retention_days: 31 days is not a CloudWatch Logs retention"),
        "{err}"
    );

    let path = write(&dir, "bad.toml", b"[[target]\n");
    assert_eq!(code(&run(&["check-config", "--config", &path])), 2);
    let path = write(&dir, "bin.toml", b"\xff\xfe");
    let o = run(&["check-config", "--config", &path]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not UTF-8"), "{}", stderr(&o));
}

#[test]
fn translate_with_a_config_of_several_targets_needs_a_name() {
    let config = std::fs::read_to_string(example_config()).expect("read example");
    // The second target: the example's [[target]] part only (one [aws] table per file).
    let target_part = &config[config.find("\n[[target]]").expect("a target")..];
    let second = target_part
        .replace("name = \"prod-eu\"", "name = \"prod-us\"")
        .replace("service = \"dynatrace-activegate\"", "service = \"ag-us\"");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(&dir, "two.toml", format!("{config}\n{second}").as_bytes());
    let manifest = fixture("activegate-k8s.yaml");
    let o = run(&["translate", path_str(&manifest), "--config", &path]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("2 targets; choose one with --target (prod-eu, prod-us)"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "translate",
        path_str(&manifest),
        "--config",
        &path,
        "--target",
        "prod-us",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let manifest = fixture("activegate-k8s.yaml");
    let o = run_env(
        &[
            "--log-format",
            "json",
            "translate",
            path_str(&manifest),
            "--report",
            "json",
        ],
        &[("RUST_LOG", "warn")],
    );
    assert_eq!(code(&o), 0);
    // stderr: the JSON report (pretty, several lines), then the log lines.
    let err = stderr(&o);
    let log_lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("{\"timestamp\""))
        .collect();
    assert_eq!(log_lines.len(), 1, "{err}");
    let log: serde_json::Value = serde_json::from_str(log_lines[0]).expect("a log line is JSON");
    assert_eq!(log["level"], "WARN");
    assert_eq!(log["needs_setting"], 8);
}

#[test]
fn an_invalid_log_filter_is_bad_input() {
    let o = run_env(&["check-config", "--config", "x"], &[("RUST_LOG", "=[")]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("RUST_LOG"), "{}", stderr(&o));
}

#[test]
fn the_demo_tells_its_stories_blue_green() {
    let dir = tempfile::tempdir().expect("temp dir");
    let chart = dir.path().join("timeline.svg");
    let o = run_env(&["demo", "--svg", path_str(&chart)], &[]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    // The summary: one row per story, `| story | version | outcome | reconcile | detect |
    // until only good tasks serve | fewest healthy | moments with no healthy task |`.
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(" | 1.30"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let stories: Vec<(&str, &str, &str)> = rows.iter().map(|c| (c[1], c[2], c[3])).collect();
    assert_eq!(
        stories,
        vec![
            (
                "0",
                "1.301.70.20241127-162512",
                "verified (service created)"
            ),
            ("1", "1.303.10.20250115-101010", "verified (green promoted)"),
            (
                "2",
                "1.305.0.20250301-000000",
                "rolled-back (green deleted)"
            ),
            ("3", "1.303.10.20250115-101010", "unchanged"),
            (
                "4",
                "1.307.2.20250410-080000",
                "rolled-back (green deleted)"
            ),
        ],
        "{out}"
    );
    for cells in &rows {
        // No moment without a healthy task in any story, the service's creation included.
        assert_eq!(
            cells[8], "0",
            "moments with no healthy task: {cells:?}\n{out}"
        );
        // After creation, blue kept both tasks healthy throughout every story.
        if cells[1] != "0" {
            assert_eq!(cells[7], "2/2", "fewest healthy: {cells:?}\n{out}");
        }
    }
    // The two failed versions: detection and the time until only good tasks serve come from
    // the simulator's timeline.
    for cells in rows.iter().filter(|c| c[3].starts_with("rolled-back")) {
        assert!(
            cells[5].ends_with(" s") && cells[6].ends_with(" s"),
            "{cells:?}"
        );
    }
    // The version that turns bad 150 s after RUNNING: healthy first, caught during the bake
    // (detected well within the bake's 240 s of it turning bad), green deleted, blue never
    // stopped, quarantined.
    let detect: f64 = rows[4][5]
        .trim_end_matches(" s")
        .parse()
        .expect("a detection time");
    assert!(detect > 0.0 && detect < 240.0, "{detect}");
    let fourth = out
        .split("\n4. ")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("the fourth story");
    for text in [
        "green (rev 4) was healthy",
        "turned bad 150 s after RUNNING",
        "inside its 240 s bake",
        "Its task set was deleted; blue (rev 2) kept serving: none of its tasks stopped, never fewer than 2 healthy",
        "1.307.2.20250410-080000 is quarantined.",
    ] {
        assert!(fourth.contains(text), "{text:?} is missing from:\n{fourth}");
    }
    // Green ran beside blue: four tasks, two of each revision, in stories 1 and 4.
    for pair in [
        "[blue rev 1: 2/2, green rev 2: 2/2]",
        "[blue rev 2: 2/2, green rev 4: 2/2]",
    ] {
        assert!(out.contains(pair), "{pair} is missing:\n{out}");
    }
    // The chart: written where asked, and its path printed.
    assert!(
        out.contains(&format!("timeline chart: {}", chart.display())),
        "{out}"
    );
    let svg = std::fs::read_to_string(&chart).expect("the chart");
    assert!(svg.starts_with("<svg"), "{svg}");
    for text in [
        "rev 1 1.301.70",
        "rev 2 1.303.10",
        "rev 3 1.305.0",
        "rev 4 1.307.2",
        "2. broken version",
        "4. turns bad in the bake",
        ">blue · rev 1<",
        ">green · rev 2<",
        "blue: last good set, serving",
    ] {
        assert!(svg.contains(text), "{text} is missing from the chart");
    }
}

/// `env:NAME` reads a variable instead of a file (the daemon's Fargate task gets its config from
/// SSM that way); a variable that is not set is bad input naming the variable.
#[test]
fn config_and_manifest_from_environment_variables() {
    let config = std::fs::read_to_string(root().join("deploy/activegate-lifecycle.toml"))
        .expect("the container config");
    let o = run_env(
        &["check-config", "--config", "env:AGL_CONFIG"],
        &[("RUST_LOG", "off"), ("AGL_CONFIG", &config)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "env:AGL_CONFIG: valid, 1 target: prod-eu\n");

    let o = run(&["check-config", "--config", "env:AGL_CONFIG_NOT_SET"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("the environment variable AGL_CONFIG_NOT_SET is not set"),
        "{}",
        stderr(&o)
    );

    let manifest = std::fs::read_to_string(fixture("activegate-k8s.yaml")).expect("fixture");
    let from_env = run_env(
        &["translate", "env:AGL_MANIFEST"],
        &[("RUST_LOG", "off"), ("AGL_MANIFEST", &manifest)],
    );
    let from_file = run(&["translate", path_str(&fixture("activegate-k8s.yaml"))]);
    assert_eq!(code(&from_env), 0, "{}", stderr(&from_env));
    assert_eq!(stdout(&from_env), stdout(&from_file));
}
