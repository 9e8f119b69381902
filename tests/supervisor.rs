//! The daemon's supervisor through the real binary against the simulator: SIGTERM lets the
//! availability monitor write its downtime before the process exits; an idle daemon makes no
//! AWS call but the monitor's and does not read its manifest again; SIGHUP rebuilds the
//! context of a target only when its inputs changed.

mod simkit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use simkit::rig::*;
use simkit::*;

const TOKEN: &str = "trigger-secret-for-supervisor-tests";
const DOWNTIME_TAG: &str = "activegate-lifecycle:downtime";

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success(), "kill -{sig}");
}

struct Daemon {
    child: Child,
    url: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Daemon {
    async fn start(rig: &Rig, extra: &[&str]) -> Daemon {
        let log = rig.dir.path().join("daemon.log");
        let mut cmd = procfs::daemon_command(rig.dir.path().join("ag.toml").as_os_str(), extra);
        cmd.env("ACTIVEGATE_LIFECYCLE_TRIGGER_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).expect("log file"));
        let (child, url) = procfs::spawn(cmd).await;
        Daemon {
            child,
            url,
            log,
            http: reqwest::Client::new(),
        }
    }

    async fn status(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/status", self.url))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("JSON")
    }

    async fn until_status(&self, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        until(Duration::from_secs(40), || async {
            let s = self.status().await;
            f(&s).then_some(s)
        })
        .await
    }

    async fn trigger(&self, target: &str) {
        let r = self
            .http
            .post(format!("{}/trigger?target={target}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("trigger");
        assert_eq!(r.status(), 202);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How often the log says a context was built for `target`.
    fn builds(&self, target: &str) -> usize {
        let needle = format!("target={target} ");
        self.log()
            .lines()
            .filter(|l| l.contains("target context built") && l.contains(&needle))
            .count()
    }

    async fn terminate(mut self) -> i32 {
        signal(&self.child, "TERM");
        tokio::task::spawn_blocking(move || self.child.wait().expect("wait"))
            .await
            .expect("join")
            .code()
            .expect("exited")
    }
}

fn outcomes(s: &serde_json::Value, target: &str) -> u64 {
    s["targets"][target]["outcomes"]
        .as_object()
        .map_or(0, |o| o.values().filter_map(|v| v.as_u64()).sum())
}

fn count(s: &serde_json::Value, target: &str, outcome: &str) -> u64 {
    s["targets"][target]["outcomes"][outcome]
        .as_u64()
        .unwrap_or(0)
}

/// The seconds of downtime a tag value holds (`YYYYMMDD=seconds ...`).
fn tagged_downtime(value: &str) -> f64 {
    value
        .split_whitespace()
        .filter_map(|p| p.split_once('=')?.1.parse::<f64>().ok())
        .sum()
}

/// The rig with a status server on a free port.
fn with_status_server(rig: &mut Rig) {
    rig.edit_config(&[(
        "[aws]",
        "[daemon]\nstatus_listen = \"127.0.0.1:0\"\nshutdown_deadline_seconds = 30\n\n[aws]",
    )]);
}

fn calls_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_monitor_write_its_downtime_before_the_process_exits() {
    let mut rig = Rig::new().await;
    // The service runs, verified, before the daemon starts.
    rig.started().await;
    // Probe rounds every 3 s: the monitor's periodic write comes 12 s after it started (4
    // rounds), later than this test sends SIGTERM; what the tag holds at the end is only
    // there if the monitor's last write landed before the process exited.
    with_status_server(&mut rig);
    rig.edit_config(&[("interval_seconds = 0.02", "interval_seconds = 3")]);
    let d = Daemon::start(&rig, &["--no-initial-run"]).await;
    d.until_status(|s| s["targets"]["prod"]["probes_ok"].as_u64() > Some(0))
        .await;
    // No task answers any more; ECS still sees them running.
    rig.w.sim.set_unreachable(true);
    let s = d
        .until_status(|s| s["targets"]["prod"]["downtime_seconds"].as_f64() > Some(0.0))
        .await;
    let counted = s["targets"]["prod"]["downtime_seconds"]
        .as_f64()
        .expect("downtime");
    assert!(
        !rig.service_tags().await.contains_key(DOWNTIME_TAG),
        "no periodic write yet: the test would not show the last one"
    );
    assert_eq!(d.terminate().await, 0);
    let tags = rig.service_tags().await;
    let written = tags.get(DOWNTIME_TAG).map_or(0.0, |v| tagged_downtime(v));
    // The tag keeps one decimal.
    assert!(
        written >= counted - 0.05,
        "the monitor counted {counted} s of downtime; the tag holds {written} s: {tags:?}"
    );
    rig.w.sim.set_unreachable(false);
    rig.w.sim.shutdown().await;
}

/// Overwrites `path` in place with as many bytes that are no manifest, keeping its size,
/// modification time and inode: only a daemon that reads the file again can notice.
fn spoil_in_place(path: &Path) {
    let meta = std::fs::metadata(path).expect("manifest");
    let modified = meta.modified().expect("mtime");
    let junk = vec![b'#'; usize::try_from(meta.len()).expect("size")];
    std::fs::write(path, junk).expect("overwrite");
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(modified)
        .expect("set mtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_daemon_makes_only_the_monitors_calls_and_reads_its_manifest_once() {
    let mut rig = Rig::new().await;
    with_status_server(&mut rig);
    let manifest = rig.dir.path().join("activegate.yaml");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/activegate-k8s.yaml"
        ),
        &manifest,
    )
    .expect("copy the manifest");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/activegate-k8s.yaml"
    );
    let ours = manifest.display().to_string();
    rig.edit_config(&[(fixture, ours.as_str())]);
    let d = Daemon::start(&rig, &[]).await;
    d.until_status(|s| count(s, "prod", "verified") == 1).await;

    // A quiet window: no reconcile runs, the monitor probes on (every 0.02 s, tasks listed
    // every 4 rounds).
    let before = rig.w.sim.calls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet = calls_between(&before, &rig.w.sim.calls());
    eprintln!("calls in a quiet window of 3 s: {quiet:?}");
    // The observer's reads: the cluster's tasks and the watched services (their tags).
    let monitor = ["ListTasks", "DescribeTasks", "DescribeServices"];
    assert!(
        quiet.keys().all(|op| monitor.contains(&op.as_str())),
        "between reconciles only the monitor's calls: {quiet:?}"
    );
    assert!(
        quiet.get("ListTasks").is_some_and(|n| *n > 0),
        "the monitor polls (the count can see calls): {quiet:?}"
    );

    // The manifest is no manifest any more, but looks the same from outside: a reconcile that
    // read it again would fail; one that uses the context's translation finds nothing to do.
    let original = std::fs::read(&manifest).expect("manifest");
    spoil_in_place(&manifest);
    let s = d.status().await;
    let (done, unchanged) = (outcomes(&s, "prod"), count(&s, "prod", "unchanged"));
    d.trigger("prod").await;
    let s = d.until_status(|s| outcomes(s, "prod") > done).await;
    assert_eq!(
        count(&s, "prod", "unchanged"),
        unchanged + 1,
        "the manifest was read again: {}",
        s["targets"]["prod"]
    );
    assert!(s["targets"]["prod"]["last_error"].is_null(), "{s}");
    assert_eq!(d.builds("prod"), 1, "{}", d.log());

    // The same bytes written again (a new modification time): read, found the same, not
    // rebuilt.
    std::fs::write(&manifest, &original).expect("restore");
    let done = outcomes(&s, "prod");
    d.trigger("prod").await;
    let s = d.until_status(|s| outcomes(s, "prod") > done).await;
    assert_eq!(count(&s, "prod", "unchanged"), unchanged + 2, "{s}");
    assert_eq!(d.builds("prod"), 1, "{}", d.log());
    assert_eq!(d.terminate().await, 0);
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rebuilds_the_context_of_the_target_whose_section_changed_only() {
    let mut rig = Rig::new().await;
    with_status_server(&mut rig);
    // A second target on a service of its own: the same section, named `other`.
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let block = &text[text.find("[[target]]").expect("a target")..];
    let other = block
        .replace("name = \"prod\"", "name = \"other\"")
        .replace(
            &format!("service = \"{SERVICE}\""),
            "service = \"activegate-other\"",
        );
    std::fs::write(&path, format!("{text}\n{other}")).expect("write config");
    let d = Daemon::start(&rig, &[]).await;
    d.until_status(|s| count(s, "prod", "verified") == 1 && count(s, "other", "verified") == 1)
        .await;
    assert_eq!((d.builds("prod"), d.builds("other")), (1, 1), "{}", d.log());

    // The same config again: every target reconciles, nothing is rebuilt.
    let s = d.status().await;
    let (p, o) = (outcomes(&s, "prod"), outcomes(&s, "other"));
    signal(&d.child, "HUP");
    d.until_status(|s| s["reloads"] == 1 && outcomes(s, "prod") > p && outcomes(s, "other") > o)
        .await;
    assert_eq!((d.builds("prod"), d.builds("other")), (1, 1), "{}", d.log());

    // `other`'s section changes (its bake, the second one in the file): only it is rebuilt.
    let text = std::fs::read_to_string(&path).expect("config");
    let second = text.rfind("bake_seconds = 0.3").expect("other's bake");
    let text = format!(
        "{}bake_seconds = 0.4{}",
        &text[..second],
        &text[second + "bake_seconds = 0.3".len()..]
    );
    std::fs::write(&path, text).expect("write config");
    let s = d.status().await;
    let (p, o) = (outcomes(&s, "prod"), outcomes(&s, "other"));
    signal(&d.child, "HUP");
    d.until_status(|s| s["reloads"] == 2 && outcomes(s, "prod") > p && outcomes(s, "other") > o)
        .await;
    assert_eq!((d.builds("prod"), d.builds("other")), (1, 2), "{}", d.log());
    assert_eq!(d.terminate().await, 0);
    rig.w.sim.shutdown().await;
}
