//! The command line: parse into validated values, run one command, and turn
//! its outcome into an exit code. Exit codes: 0 success, 1 runtime failure,
//! 2 bad input (a file, the config or the arguments).
//!
//! One file per group of commands: `offline` (translate, check-config, completions, man: files
//! only), `serve` (run, status, healthcheck: the daemon and its status server), `rollout`
//! (rollout, rollback, plan: one target now), `mesh` and `sim`; `demo` has a module of its own.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::telemetry::{self, LogFormat};

mod mesh;
mod offline;
mod rollout;
mod serve;
mod sim;

pub use serve::status_sources;

const PROGRAM: &str = "activegate-lifecycle";

/// Keeps Dynatrace ActiveGate running on AWS ECS Fargate, current and healthy.
#[derive(Debug, Parser)]
#[command(name = PROGRAM, version, about, long_about = None)]
struct Cli {
    /// Log format: `text` for people, `json` (one object per line) for CloudWatch Logs.
    /// The level is set with RUST_LOG (e.g. `RUST_LOG=debug`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Translate a Kubernetes ActiveGate manifest into an ECS Fargate task definition.
    Translate(offline::TranslateArgs),
    /// Validate a config file.
    CheckConfig {
        /// The config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the daemon: reconcile every target on its schedule, at start, on SIGHUP and on
    /// POST /trigger; serve /healthz, /status and /metrics.
    Run(serve::RunArgs),
    /// Reconcile one target now: register, roll, verify over HTTPS, or roll back.
    /// Exit 0: verified or nothing to do; 3: failed and rolled back; 1: could not finish.
    Rollout(rollout::RolloutArgs),
    /// Put the last known good revision back and verify it.
    Rollback(rollout::RollbackArgs),
    /// Show what a rollout would change; changes nothing.
    Plan(rollout::TargetArgs),
    /// Show the state of every target, from a running daemon's status server.
    Status(serve::StatusArgs),
    /// Run the embedded ECS simulator: an AWS endpoint (ECS, CloudWatch Logs) whose
    /// tasks are real HTTPS ActiveGate stand-ins.
    Sim(sim::SimArgs),
    /// Print the Consul service-mesh config entries that let meshed applications reach the
    /// target's ActiveGates through a terminating gateway (or, with --exclusions, the weaker
    /// transparent-proxy exclusions).
    Mesh(mesh::MeshArgs),
    /// Exit 0 when the daemon's status server answers `GET /healthz` with 200, else 1: the
    /// container health check (the image has no curl or shell).
    Healthcheck(serve::HealthcheckArgs),
    /// See the whole cycle in a minute, with no AWS account: the simulator, the daemon, a new
    /// version verified beside the old one (blue/green) and promoted, a broken one removed, a
    /// manual trigger with nothing to do, and a version that turns bad during its bake.
    Demo(DemoArgs),
    /// Print the shell completion script for SHELL to stdout, e.g.
    /// `activegate-lifecycle completions bash > /etc/bash_completion.d/activegate-lifecycle`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g.
    /// `activegate-lifecycle man > activegate-lifecycle.1`; with --dir, write it and one page
    /// per command (activegate-lifecycle-run.1, …) into DIR.
    Man {
        /// Write the pages into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Leave the simulator and the daemon running afterwards (status server included),
    /// until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub keep_running: bool,
    /// Where to write the timeline chart (SVG).
    #[arg(long, default_value = "activegate-lifecycle-demo.svg")]
    pub svg: PathBuf,
}

/// A failed command: the error, and whether the input or the run was at fault.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 2,
            error: error.into(),
        }
    }
    fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 1,
            error: error.into(),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let rendered = e.render().to_string();
            let rendered = rendered.strip_prefix("error: ").unwrap_or(&rendered);
            eprint!("{PROGRAM}: error: {rendered}");
            return ExitCode::from(2);
        }
    };
    // One TLS stack: rustls with ring, for reqwest (the AWS clients bring their own configuration).
    activegate_lifecycle::ensure_tls_provider();
    // The demo tells its own story on stdout; its logs only when something goes wrong.
    let default_level = if matches!(cli.command, Command::Demo(_)) {
        "error"
    } else {
        // tokio-cron-scheduler says "Job creator created" at info for every job it adds.
        "info,tokio_cron_scheduler=warn"
    };
    if let Err(e) = telemetry::init(cli.log_format, default_level) {
        eprintln!("{PROGRAM}: error: {e}");
        return ExitCode::from(2);
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(f) => {
            // Errors name fields and shapes, never secrets; the scrub is the last guard.
            use activegate_lifecycle::model::secret::scrub;
            let mut chain = f.error.chain();
            if let Some(top) = chain.next() {
                eprintln!("{PROGRAM}: error: {}", scrub(&top.to_string()));
            }
            for cause in chain {
                eprintln!("{PROGRAM}:   caused by: {}", scrub(&cause.to_string()));
            }
            ExitCode::from(f.code)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Translate(args) => offline::translate_command(&args),
        Command::CheckConfig { config } => offline::check_config(&config),
        Command::Run(args) => serve::run_daemon(&args),
        Command::Rollout(args) => rollout::rollout(args),
        Command::Rollback(args) => rollout::rollback(&args),
        Command::Plan(args) => rollout::plan(&args),
        Command::Status(args) => serve::status_command(&args),
        Command::Sim(args) => sim::sim_command(args),
        Command::Healthcheck(args) => serve::healthcheck(&args),
        Command::Mesh(args) => mesh::mesh_command(&args),
        Command::Completions { shell } => {
            print_stdout(&offline::completions(shell))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => offline::man_pages(dir.as_deref()),
        Command::Demo(args) => {
            let runtime = tokio::runtime::Runtime::new()
                .context("cannot start the async runtime")
                .map_err(Failure::runtime)?;
            runtime
                .block_on(crate::demo::run(&args))
                .map_err(Failure::runtime)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error. Shared with the demo, whose
/// story goes to stdout too.
pub fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

fn print_stdout(text: &str) -> Result<(), Failure> {
    write_stdout(text)
        .map_err(|e| Failure::runtime(anyhow::Error::new(e).context("cannot write to stdout")))
}
