//! `check-config` refuses what `run` refuses: for each refusal `run` makes of a target
//! (reported in `/status` as the target's last error), the binary's `check-config` exits 2
//! with the same message. Both are the real binary; no AWS call is needed for either (the
//! configured endpoint is never reached: every refusal comes before any call).

mod simkit;

use std::path::Path;
use std::time::Duration;

use simkit::cli::{code, fixture, path_str, run_env, stderr, stdout};
use simkit::procfs::{daemon_command, spawn, stop};
use simkit::rig::config_text;
use simkit::{install_crypto, until};

/// A config whose target `run` must refuse, beside the seed manifest.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// The rig's config for target `prod`, with `edit` applied, on a status port of its own.
    fn new(trust: &str, edit: impl FnOnce(String) -> String) -> Case {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(
            fixture("activegate-k8s.yaml"),
            dir.path().join("activegate.yaml"),
        )
        .expect("the seed manifest");
        std::fs::write(dir.path().join("ca.pem"), "not used").expect("ca");
        let text = config_text("http://127.0.0.1:9", "activegate.yaml", "ca.pem", trust);
        let text = format!(
            "[daemon]\nstatus_listen = \"127.0.0.1:0\"\n\n{}",
            edit(text)
        );
        std::fs::write(dir.path().join("ag.toml"), text).expect("config");
        Case { dir }
    }

    fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("ag.toml")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("write");
    }
}

/// What `run` says about target `prod`: its last error in `/status`, once there is one.
async fn run_refusal(config: &Path) -> String {
    install_crypto();
    let (child, url) = spawn(daemon_command(config.as_os_str(), &[])).await;
    let http = reqwest::Client::new();
    let error = until(Duration::from_secs(30), || async {
        let status: serde_json::Value = http
            .get(format!("{url}/status"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        status["targets"]["prod"]["last_error"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    stop(child);
    error
}

/// `check-config` of the same file: exit 2, and its message.
fn check_refusal(config: &Path) -> String {
    let o = run_env(
        &["check-config", "--config", path_str(config)],
        &[("RUST_LOG", "off")],
    );
    assert_eq!(code(&o), 2, "check-config accepted it: {}", stdout(&o));
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    stderr(&o)
}

/// `run` refuses the target with `expected` in its message, and `check-config` refuses the
/// file with the message `run` gives (the CLI prints the same chain, one cause a line).
async fn both_refuse(case: &Case, expected: &str) {
    let from_run = run_refusal(&case.config()).await;
    assert!(from_run.contains(expected), "run: {from_run}");
    let from_check = check_refusal(&case.config());
    // `run` joins the chain with ": ", the CLI with a "caused by:" line per cause.
    let printed: Vec<&str> = from_check
        .lines()
        .map(|l| {
            l.trim_start_matches("activegate-lifecycle: error: ")
                .trim_start_matches("activegate-lifecycle:   caused by: ")
        })
        .collect();
    assert_eq!(
        printed.join(": "),
        from_run,
        "check-config and run differ:\ncheck-config: {from_check}\nrun: {from_run}"
    );
}

#[tokio::test]
async fn no_trust_set_for_the_probes() {
    let case = Case::new("# no trust", |t| t);
    both_refuse(
        &case,
        "set probe.ca_bundle, probe.pin_sha256 or probe.insecure = true",
    )
    .await;
}

#[tokio::test]
async fn an_unreadable_manifest() {
    let case = Case::new("insecure = true", |t| {
        t.replace(
            "manifest = \"activegate.yaml\"",
            "manifest = \"missing.yaml\"",
        )
    });
    both_refuse(&case, "missing.yaml: cannot read the manifest").await;
}

#[tokio::test]
async fn a_manifest_that_does_not_translate() {
    let case = Case::new("insecure = true", |t| t);
    // A manifest without the StatefulSet the task definition is rendered from.
    case.write(
        "activegate.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: not-an-activegate\n",
    );
    both_refuse(
        &case,
        "activegate.yaml: no StatefulSet or Deployment in the file",
    )
    .await;
}

#[tokio::test]
async fn a_bad_version_repository() {
    let case = Case::new("insecure = true", |t| {
        format!("{t}\n[target.versions]\nsource = \"registry\"\nrepository = \"activegate\"\n")
    });
    both_refuse(
        &case,
        "version discovery: `activegate` is not an image repository",
    )
    .await;
}

#[test]
fn a_variable_only_the_daemons_environment_provides_is_noted_not_refused() {
    // check-config may run where the daemon's secrets are not (CI): a token's variable that
    // is not set is a warning on stderr, and the file is valid.
    let case = Case::new("insecure = true", |t| {
        format!(
            "{t}\n[target.verify.dynatrace]\nenvironment_url = \"https://abc12345.live.dynatrace.com\"\ntoken_env = \"AGL_CHECK_CONFIG_TOKEN_NOT_SET\"\n"
        )
    });
    let o = run_env(
        &["check-config", "--config", path_str(&case.config())],
        &[("RUST_LOG", "warn")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("valid, 1 target: prod"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("`AGL_CHECK_CONFIG_TOKEN_NOT_SET` (token_env) is not set"),
        "{}",
        stderr(&o)
    );
}
