//! Hostile input and secrets, through the binary as a user meets it: each case the
//! mutation runs of issue 14 found is refused with exit 2, a place (file:line:col),
//! the field, what was found and what is allowed; and a canary token pasted into any
//! field of a config or a manifest never appears in stdout, stderr (logs at trace, text
//! and JSON), a document, `/status`, `/metrics` or `status --json`, a SIGHUP reload of
//! an invalid config included.

mod simkit;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use simkit::cli::*;

/// The canary: a Dynatrace token of the documented shape (dt0c01 + 24 + 64 characters).
const CANARY: &str = "dt0c01.ABCDEFGHIJKLMNOPQRSTUVWX.ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789AB";
/// Any part of the canary past its public prefix is a leak.
const CANARY_PARTS: [&str; 2] = ["ABCDEFGHIJKLMNOPQRSTUVWX", "QRSTUVWXYZ0123456789AB"];

fn leaks(text: &str) -> bool {
    CANARY_PARTS.iter().any(|p| text.contains(p))
}

fn hostile(name: &str) -> String {
    path_str(&fixture(&format!("hostile/{name}"))).to_owned()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write test file");
    path_str(&path).to_owned()
}

/// Runs the binary, expects exit 2 with nothing on stdout; returns the error line(s).
fn refused(args: &[&str]) -> String {
    let o = run_env(args, &[("RUST_LOG", "trace")]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}: printed {}", stdout(&o));
    assert!(!err.contains("panicked"), "{err}");
    assert!(!leaks(&err), "the error repeats the canary: {err}");
    err
}

/// `PATH:LINE:COL: ` at the start of the error line.
fn assert_place(err: &str, path: &str) {
    let line = err
        .lines()
        .find(|l| l.starts_with("activegate-lifecycle: error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    let rest = line
        .strip_prefix(&format!("activegate-lifecycle: error: {path}:"))
        .unwrap_or_else(|| panic!("the error names no place in {path}: {err}"));
    let mut parts = rest.splitn(3, ':');
    let (l, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    assert!(
        l.parse::<u32>().is_ok_and(|n| n > 0) && c.parse::<u32>().is_ok_and(|n| n > 0),
        "no line and column: {err}"
    );
}

fn example() -> String {
    std::fs::read_to_string(example_config()).expect("read the example config")
}

// ---- the cases of the issue ------------------------------------------------------------

#[test]
fn an_expansion_bomb_is_refused_within_its_budget() {
    // Before: 40 doublings grew to 1.3 GB and aborted (exit 134).
    let path = hostile("expansion-bomb.yaml");
    let started = Instant::now();
    let err = refused(&["translate", &path]);
    assert_place(&err, &path);
    assert!(err.contains("env `R"), "{err}");
    assert!(err.contains("expand to more than 32768 bytes"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // `rollout` (and `run`) translate the same manifest: refused the same way, before
    // any AWS call (the endpoint is a closed loopback port).
    let dir = tempfile::tempdir().expect("temp dir");
    let text = replace_value(&example(), "manifest", &path)
        .replace("[aws]\n", "[aws]\nendpoint_url = \"http://127.0.0.1:9\"\n");
    let config = write(&dir, "ag.toml", &text);
    let o = run_env(
        &["rollout", "--config", &config],
        &[
            ("RUST_LOG", "off"),
            ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
        ],
    );
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("expand to more than 32768 bytes"), "{err}");
}

#[test]
fn a_memory_limit_below_the_reservation_is_refused() {
    // Before: `memoryReservation 512 > memory 1` (or 0) was printed.
    for limit in ["0x10", "512m", "0m", "17"] {
        let path = hostile(&format!("memory-limit-{limit}.yaml"));
        let err = refused(&["translate", &path]);
        assert_place(&err, &path);
        assert!(
            err.contains("resources.limits.memory → containerDefinitions[activegate].memory"),
            "{limit}: {err}"
        );
        assert!(err.contains("allowed: at least 6 MiB"), "{limit}: {err}");
        assert!(
            err.contains("ECS API reference, ContainerDefinition"),
            "{err}"
        );
    }
}

#[test]
fn port_zero_and_a_port_mapped_twice_are_refused() {
    let path = hostile("port-zero.yaml");
    let err = refused(&["translate", &path]);
    assert_place(&err, &path);
    assert!(
        err.contains("containerPort: found 0; allowed: a port from 1 to 65535"),
        "{err}"
    );
    let path = hostile("duplicate-port.yaml");
    let err = refused(&["translate", &path]);
    assert_place(&err, &path);
    assert!(err.contains("each container port once"), "{err}");
}

#[test]
fn names_and_images_of_a_megabyte_are_refused_in_a_short_error() {
    // Before: both were copied into the task definition (ECS allows 255 characters).
    let dir = tempfile::tempdir().expect("temp dir");
    let big = "a".repeat(1 << 20);
    let seed = std::fs::read_to_string(fixture("activegate-k8s.yaml")).expect("seed");
    for (what, manifest) in [
        (
            "name",
            seed.replace("- name: activegate\n", &format!("- name: {big}\n")),
        ),
        (
            "image",
            seed.replace(
                "image: <YOUR_ENVIRONMENT_URL>/linux/activegate\n          imagePullPolicy",
                &format!("image: r/{big}:1\n          imagePullPolicy"),
            ),
        ),
    ] {
        let path = write(&dir, &format!("{what}.yaml"), &manifest);
        let err = refused(&["translate", &path]);
        assert_place(&err, &path);
        assert!(err.len() < 1024, "{what}: {} bytes of error", err.len());
        assert!(err.contains(&format!(".{what}: found ")), "{what}: {err}");
        assert!(err.contains("255"), "{what}: {err}");
    }
}

#[test]
fn more_subnets_or_security_groups_than_awsvpc_allows_are_refused() {
    // Before: 10,000 of each were accepted and printed into the service document.
    let dir = tempfile::tempdir().expect("temp dir");
    let subnets: Vec<String> = (0..10_000).map(|i| format!("\"subnet-{i:08x}\"")).collect();
    let groups: Vec<String> = (0..10_000).map(|i| format!("\"sg-{i:08x}\"")).collect();
    let base = example();
    for (what, text, allowed) in [
        (
            "subnets",
            base.replace(
                "subnets = [\"subnet-0123456789abcdef0\", \"subnet-0fedcba9876543210\"]",
                &format!("subnets = [{}]", subnets.join(", ")),
            ),
            "allowed: 1 to 16 subnets",
        ),
        (
            "security_groups",
            base.replace(
                "security_groups = [\"sg-0123456789abcdef0\"]",
                &format!("security_groups = [{}]", groups.join(", ")),
            ),
            "allowed: at most 5 security groups",
        ),
    ] {
        assert_ne!(text, base, "the example's {what} line changed");
        let path = write(&dir, &format!("{what}.toml"), &text);
        let err = refused(&["check-config", "--config", &path]);
        assert_place(&err, &path);
        assert!(err.contains(&format!("target[0].network.{what}:")), "{err}");
        assert!(err.contains(allowed), "{err}");
        assert!(
            err.contains("ECS API reference, AwsVpcConfiguration"),
            "{err}"
        );
        let manifest = path_str(&fixture("activegate-k8s.yaml")).to_owned();
        refused(&[
            "translate",
            &manifest,
            "--config",
            &path,
            "--output",
            "service",
        ]);
    }
}

#[test]
fn a_nul_inside_an_environment_value_is_refused() {
    let path = hostile("nul-in-env.yaml");
    let err = refused(&["translate", &path]);
    assert_place(&err, &path);
    assert!(
        err.contains("environment[DT_GROUP].value: found the control character \\u{0}"),
        "{err}"
    );
}

#[test]
fn a_cross_field_check_names_the_place_of_its_field() {
    // Before: `rollout.maximum_percent must be at least 100 …` named no line.
    let dir = tempfile::tempdir().expect("temp dir");
    let text = example().replace("maximum_percent = 200", "maximum_percent = 50");
    let path = write(&dir, "ag.toml", &text);
    let err = refused(&["check-config", "--config", &path]);
    assert_place(&err, &path);
    let line = text
        .lines()
        .position(|l| l.starts_with("maximum_percent = 50"))
        .expect("the line")
        + 1;
    assert!(
        err.contains(&format!(
            "{path}:{line}:1: target[0].rollout.maximum_percent: "
        )),
        "{err}"
    );
}

#[test]
fn a_token_in_dt_tenant_or_a_secret_field_is_refused_without_being_repeated() {
    // Before: check-config said "found `dt0c01.…`" with the whole token.
    let dir = tempfile::tempdir().expect("temp dir");
    let base = example();
    for (field, text) in [
        (
            "target[0].environment.DT_TENANT",
            base.replace(
                "DT_TENANT = \"abc12345\"",
                &format!("DT_TENANT = \"{CANARY}\""),
            ),
        ),
        (
            "target[0].secrets.tenant_token",
            replace_value(&base, "tenant_token", CANARY),
        ),
        (
            "target[0].secrets.auth_token",
            replace_value(&base, "auth_token", &format!("arn:aws:ssm:x:{CANARY}")),
        ),
    ] {
        let path = write(&dir, "ag.toml", &text);
        let err = refused(&["check-config", "--config", &path]);
        assert_place(&err, &path);
        assert!(err.contains(field), "{err}");
        assert!(
            err.contains("looks like a Dynatrace token (dt0c01.…, "),
            "{err}"
        );
    }
    // A DT_* value that is no token is not repeated either: only its shape.
    let text = base.replace(
        "DT_TENANT = \"abc12345\"",
        "DT_TENANT = \"hunter2!hunter2\"",
    );
    let path = write(&dir, "ag.toml", &text);
    let err = refused(&["check-config", "--config", &path]);
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.contains("a value of 15 chars with `!` at position 8"),
        "{err}"
    );
}

/// The config text with `key = "…"`'s value replaced.
fn replace_value(text: &str, key: &str, value: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with(&format!("{key} = ")) {
                format!("{key} = \"{value}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn token_looking_values_are_refused_where_they_would_be_copied() {
    // Before: accepted and copied into the task definition.
    let dir = tempfile::tempdir().expect("temp dir");
    let base = example();
    for (key, value) in [
        ("DT_NETWORK_ZONE", format!("aws.{CANARY}")),
        (
            "DT_SERVER",
            format!("https://{CANARY}.live.dynatrace.com/communication"),
        ),
        (
            "entry_point",
            format!("https://{CANARY}:9999/communication"),
        ),
        ("image", format!("public.ecr.aws/dynatrace/{CANARY}:1")),
    ] {
        let text = replace_value(&base, key, &value);
        assert_ne!(text, base, "{key}");
        let path = write(&dir, "ag.toml", &text);
        let err = refused(&["check-config", "--config", &path]);
        assert_place(&err, &path);
        assert!(
            err.contains(&format!(".{key}: this value looks like")),
            "{err}"
        );
        let manifest = path_str(&fixture("activegate-k8s.yaml")).to_owned();
        refused(&["translate", &manifest, "--config", &path]);
    }
    for name in ["token-in-probe-path.yaml", "token-in-working-dir.yaml"] {
        let path = hostile(name);
        let err = refused(&["translate", &path]);
        assert_place(&err, &path);
        assert!(err.contains("looks like a Dynatrace token"), "{err}");
    }
    let path = hostile("shell-in-probe-path.yaml");
    let err = refused(&["translate", &path]);
    assert_place(&err, &path);
    assert!(err.contains("livenessProbe.httpGet.path"), "{err}");
}

// ---- the canary in every field ---------------------------------------------------------

/// Every leaf of a TOML table, as a path of keys and indexes.
fn toml_leaves(v: &toml::Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let mut p = path.clone();
                p.push(k.clone());
                toml_leaves(x, p, out);
            }
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = path.clone();
                p.push(i.to_string());
                toml_leaves(x, p, out);
            }
        }
        _ => out.push(path),
    }
}

fn toml_set(v: &mut toml::Value, path: &[String], to: toml::Value) {
    let mut here = v;
    for seg in path {
        here = match here {
            toml::Value::Table(t) => t.get_mut(seg).expect("a key of the walk"),
            toml::Value::Array(a) => &mut a[seg.parse::<usize>().expect("an index")],
            _ => unreachable!("a leaf has no children"),
        };
    }
    *here = to;
}

fn json_leaves(v: &serde_json::Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let mut p = path.clone();
                p.push(k.clone());
                json_leaves(x, p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = path.clone();
                p.push(i.to_string());
                json_leaves(x, p, out);
            }
        }
        _ => out.push(path),
    }
}

fn json_set(v: &mut serde_json::Value, path: &[String], to: serde_json::Value) {
    let mut here = v;
    for seg in path {
        here = match here {
            serde_json::Value::Object(o) => o.get_mut(seg).expect("a key of the walk"),
            serde_json::Value::Array(a) => &mut a[seg.parse::<usize>().expect("an index")],
            _ => unreachable!("a leaf has no children"),
        };
    }
    *here = to;
}

/// Runs with logs at trace, text and JSON; nothing printed may hold the canary.
fn assert_no_leak(args: &[&str], what: &str) {
    for format in ["text", "json"] {
        let mut all = vec!["--log-format", format];
        all.extend_from_slice(args);
        let o = run_env(&all, &[("RUST_LOG", "trace")]);
        let out = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!leaks(&out), "{what} ({format}): the canary leaked:\n{out}");
        assert!(!out.contains("panicked"), "{what}: {out}");
    }
}

#[test]
fn a_canary_in_any_config_field_is_never_printed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = path_str(&fixture("activegate-k8s.yaml")).to_owned();
    let base: toml::Value = toml::from_str(&example()).expect("the example parses");
    let mut leaves = Vec::new();
    toml_leaves(&base, Vec::new(), &mut leaves);
    assert!(leaves.len() > 60, "{} fields", leaves.len());
    for (i, leaf) in leaves.iter().enumerate() {
        // The canary alone, and inside other text.
        let canary = if i % 2 == 0 {
            CANARY.to_owned()
        } else {
            format!("x-{CANARY}-y")
        };
        {
            let mut v = base.clone();
            toml_set(&mut v, leaf, toml::Value::String(canary));
            let path = write(&dir, "ag.toml", &toml::to_string(&v).expect("serialises"));
            let what = leaf.join(".");
            assert_no_leak(&["check-config", "--config", &path], &what);
            assert_no_leak(
                &[
                    "translate",
                    &manifest,
                    "--config",
                    &path,
                    "--output",
                    "service",
                ],
                &what,
            );
        }
    }
}

#[test]
fn a_canary_in_any_manifest_field_is_never_printed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(fixture("activegate-k8s.yaml")).expect("seed");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).expect("the seed manifest parses");
    let config = path_str(&example_config()).to_owned();
    let mut runs = 0;
    for (d, doc) in docs.iter().enumerate() {
        let mut leaves = Vec::new();
        json_leaves(doc, Vec::new(), &mut leaves);
        for leaf in &leaves {
            let mut docs = docs.clone();
            json_set(
                &mut docs[d],
                leaf,
                serde_json::Value::String(format!("/{CANARY}")),
            );
            // JSON is YAML: one document per line block.
            let body: Vec<String> = docs.iter().map(|x| x.to_string()).collect();
            let path = write(&dir, "m.yaml", &body.join("\n---\n"));
            let what = leaf.join(".");
            assert_no_leak(&["translate", &path, "--report", "json"], &what);
            assert_no_leak(
                &[
                    "translate",
                    &path,
                    "--config",
                    &config,
                    "--output",
                    "service",
                ],
                &what,
            );
            runs += 1;
        }
    }
    assert!(runs > 50, "{runs} fields");
}

// ---- the daemon: a SIGHUP reload of a config holding the canary -------------------------

struct Daemon {
    child: Child,
    addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig}");
}

/// GET over plain HTTP/1.1 from the status server; the body.
fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("the status server answers");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// A config for `run` that reaches nothing outside this machine: AWS at a closed
/// loopback port, no events, no mesh, no version discovery, no schedule.
fn daemon_config(dir: &tempfile::TempDir, tenant: &str) -> String {
    std::fs::copy(
        fixture("activegate-k8s.yaml"),
        dir.path().join("activegate.yaml"),
    )
    .expect("copy the manifest");
    let text = format!(
        r#"[daemon]
status_listen = "127.0.0.1:0"
[aws]
endpoint_url = "http://127.0.0.1:9"
max_attempts = 1
[[target]]
name = "prod-eu"
region = "eu-central-1"
cluster = "observability"
service = "dynatrace-activegate"
image = "public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512"
execution_role_arn = "arn:aws:iam::123456789012:role/activegate-execution"
manifest = "activegate.yaml"
[target.network]
subnets = ["subnet-0123456789abcdef0"]
[target.logs]
group = "/ecs/dynatrace-activegate"
[target.secrets]
tenant_token = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:dt/tenant-AbCdEf"
[target.environment]
DT_TENANT = "{tenant}"
[target.probe]
insecure = true
"#
    );
    write(dir, "ag.toml", &text)
}

fn start_daemon(config: &str, log_format: &str, log: &std::path::Path) -> Daemon {
    let mut child = Command::new(BIN)
        .args([
            "--log-format",
            log_format,
            "run",
            "--no-initial-run",
            "--config",
            config,
        ])
        .env("RUST_LOG", "trace")
        .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("the daemon starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the status line");
    let addr = line
        .trim()
        .strip_prefix("status: http://")
        .unwrap_or_else(|| panic!("no status line: {line}"))
        .to_owned();
    Daemon { child, addr }
}

#[test]
fn a_sighup_reload_of_a_config_with_the_canary_never_repeats_it() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = daemon_config(&dir, "abc12345");
        let log = dir.path().join("daemon.log");
        let d = start_daemon(&config, format, &log);
        // The canary where people paste it, then SIGHUP: refused, the old config kept.
        daemon_config(&dir, CANARY);
        signal(&d.child, "HUP");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            let body = get(&d.addr, "/status");
            if body.contains("\"reload_failures\": 1") {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "the reload was not refused: {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.contains("last_reload_error"), "{status}");
        assert!(status.contains("looks like a Dynatrace token"), "{status}");
        assert!(!leaks(&status), "/status repeats the canary: {status}");
        let metrics = get(&d.addr, "/metrics");
        assert!(!leaks(&metrics), "/metrics repeats the canary");
        let url = format!("http://{}", d.addr);
        for args in [
            vec!["status", "--json", "--url", &url],
            vec!["status", "--url", &url],
        ] {
            let o = run_env(&args, &[("RUST_LOG", "trace")]);
            assert_eq!(code(&o), 0, "{}", stderr(&o));
            let out = format!("{}{}", stdout(&o), stderr(&o));
            assert!(!leaks(&out), "{args:?} repeats the canary: {out}");
        }
        signal(&d.child, "TERM");
        drop(d);
        let logs = std::fs::read_to_string(&log).expect("the daemon's log");
        assert!(logs.contains("SIGHUP"), "{logs}");
        assert!(!leaks(&logs), "the log ({format}) repeats the canary");
    }
}
