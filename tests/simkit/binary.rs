//! The real binary run against a rig: to the end (exit code and output), or spawned and
//! killed with SIGKILL.

use std::process::{Child, Command, Stdio};

use super::rig::Rig;

/// The one definition of the binary's path: every test and benchmark that runs the binary
/// takes it from here.
pub const BIN: &str = env!("CARGO_BIN_EXE_activegate-lifecycle");

pub fn command(rig: &Rig, args: &[&str]) -> Command {
    let config = rig.dir.path().join("ag.toml");
    let mut c = Command::new(BIN);
    c.args(args)
        .arg("--config")
        .arg(config)
        .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs the binary to the end; returns (exit code, stdout, stderr).
pub async fn run(rig: &Rig, args: &[&str]) -> (i32, String, String) {
    let mut c = command(rig, args);
    let out = tokio::task::spawn_blocking(move || c.output().expect("the binary runs"))
        .await
        .expect("join");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn spawn(rig: &Rig, args: &[&str]) -> Child {
    command(rig, args).spawn().expect("the binary starts")
}

pub async fn kill(mut child: Child) {
    child.kill().expect("SIGKILL");
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("reaped");
}
