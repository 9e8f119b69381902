//! The command line: parse into validated values, run one command, and turn
//! its outcome into an exit code. Exit codes: 0 success, 1 runtime failure,
//! 2 bad input (a file, the config or the arguments).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use activegate_lifecycle::config::Config;
use activegate_lifecycle::translate::{self, Action, TranslateError, manifest::MAX_MANIFEST_BYTES};
use activegate_lifecycle::{ReadError, read_limited};
use activegate_lifecycle::{daemon, rollout, sim, status};

use crate::telemetry::{self, LogFormat};

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
    Translate(TranslateArgs),
    /// Validate a config file.
    CheckConfig {
        /// The config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the daemon: reconcile every target on its schedule, at start, on SIGHUP and on
    /// POST /trigger; serve /healthz, /status and /metrics.
    Run(RunArgs),
    /// Reconcile one target now: register, roll, verify over HTTPS, or roll back.
    /// Exit 0: verified or nothing to do; 3: failed and rolled back; 1: could not finish.
    Rollout(RolloutArgs),
    /// Put the last known good revision back and verify it.
    Rollback(TargetArgs),
    /// Show what a rollout would change; changes nothing.
    Plan(TargetArgs),
    /// Show the state of every target, from a running daemon's status server.
    Status(StatusArgs),
    /// Run the embedded ECS simulator: an AWS endpoint (ECS, CloudWatch Logs) whose
    /// tasks are real HTTPS ActiveGate stand-ins.
    Sim(SimArgs),
    /// Print the Consul service-mesh config entries that let meshed applications reach the
    /// target's ActiveGates through a terminating gateway (or, with --exclusions, the weaker
    /// transparent-proxy exclusions).
    Mesh(MeshArgs),
    /// Exit 0 when the daemon's status server answers `GET /healthz` with 200, else 1: the
    /// container health check (the image has no curl or shell).
    Healthcheck(HealthcheckArgs),
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

#[derive(Debug, clap::Args)]
struct MeshArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// `crd`: consul-k8s custom resources (YAML, for kubectl apply); `consul`: Consul config
    /// entries (JSON, for `consul config write`).
    #[arg(long, value_enum, default_value_t = MeshFormat::Crd)]
    format: MeshFormat,
    /// Print transparent-proxy exclusions instead: simpler, but the traffic then bypasses the
    /// mesh (no mTLS, no intentions).
    #[arg(long)]
    exclusions: bool,
    /// Write one file per entry into this directory instead of printing them.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MeshFormat {
    Crd,
    Consul,
}

#[derive(Debug, clap::Args)]
struct HealthcheckArgs {
    /// The daemon's status server (`daemon.status_listen`; 0.0.0.0 is asked on loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Do not reconcile every target at start (an interrupted rollout then waits for the first run).
    #[arg(long)]
    no_initial_run: bool,
    /// Run scheduled rollouts even while a target's error budget is spent.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The daemon's status server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// The config file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// The target in the config (needed when it has more than one).
    #[arg(long, short)]
    target: Option<String>,
}

#[derive(Debug, clap::Args)]
struct RolloutArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Roll out this image instead of the configured one.
    #[arg(long, conflicts_with = "migrate")]
    image: Option<String>,
    /// Move a rolling service to blue/green: a new EXTERNAL service beside it (named by
    /// `rollout.migrate_to`) with the running image, verified, then the old one scaled to 0.
    #[arg(long)]
    migrate: bool,
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Address of the AWS endpoint and the control API.
    #[arg(long, default_value = "127.0.0.1:4566")]
    listen: std::net::SocketAddr,
    /// Simulated seconds per real second (10 makes a 90 s ActiveGate start take 9 s).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Folder for the CA certificate (default: a new temporary folder).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Region used in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Simulated seconds a healthy ActiveGate takes to start when its image sets no time.
    #[arg(long, default_value_t = 90.0)]
    activegate_start: f64,
}

#[derive(Debug, clap::Args)]
struct TranslateArgs {
    /// The Kubernetes manifest: multi-document YAML with the ActiveGate StatefulSet (or
    /// Deployment) and its Service.
    manifest: PathBuf,
    /// The config file that supplies what a manifest cannot (roles, secrets' ARNs, logs, network).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The target in the config (needed when it has more than one).
    #[arg(long, short, requires = "config")]
    target: Option<String>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Output::TaskDefinition)]
    output: Output,
    /// The format of the translation report on stderr.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    report: ReportFormat,
    /// Exit 2 when a field still needs a setting from the config.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// `aws ecs register-task-definition --cli-input-json` input.
    TaskDefinition,
    /// `aws ecs create-service --cli-input-json` input (needs --config).
    Service,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
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
    if let Err(message) = telemetry::init(cli.log_format, default_level) {
        eprintln!("{PROGRAM}: error: {message}");
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
        Command::Translate(args) => translate_command(&args),
        Command::CheckConfig { config } => check_config(&config),
        Command::Run(args) => run_daemon(&args),
        Command::Rollout(args) => with_engine(&args.target, |engine, name| async move {
            let outcome = if args.migrate {
                engine.migrate().await
            } else {
                engine.reconcile(args.image.as_deref()).await
            };
            report_outcome(&name, outcome)
        }),
        Command::Rollback(args) => with_engine(&args, |engine, name| async move {
            let outcome = engine.rollback().await;
            report_outcome(&name, outcome)
        }),
        Command::Plan(args) => with_engine(&args, |engine, name| async move {
            let plan = engine.plan(None).await.map_err(Failure::runtime)?;
            print_plan(&name, &plan)?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Status(args) => status_command(&args),
        Command::Sim(args) => sim_command(args),
        Command::Healthcheck(args) => healthcheck(&args),
        Command::Mesh(args) => mesh_command(&args),
        Command::Completions { shell } => {
            print_stdout(&completions(shell))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man_pages(dir.as_deref()),
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

/// The completion script for `shell`.
fn completions(shell: clap_complete::Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), PROGRAM, &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    if shell != clap_complete::Shell::Bash {
        return script;
    }
    // clap_complete 4.6 spells a hyphenated program name two ways in its bash script: the loop
    // that finds the command writes `activegate__lifecycle__subcmd__run`, the arms that complete
    // it `activegate__subcmd__lifecycle__subcmd__run`, so nothing after a command would complete
    // (clap-rs/clap#6421). The arms are given the loop's spelling.
    let arms = format!("{}__subcmd__", PROGRAM.replace('-', "__subcmd__"));
    let state = format!("{}__subcmd__", PROGRAM.replace('-', "__"));
    script.replace(&arms, &state)
}

/// The man page on stdout, or every page (the program's and one per command) into `dir`.
fn man_pages(dir: Option<&std::path::Path>) -> Result<ExitCode, Failure> {
    let command = Cli::command();
    match dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("cannot render the man page")
                .map_err(Failure::runtime)?;
            print_stdout(&String::from_utf8_lossy(&page))?;
        }
        Some(dir) => {
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))
                .map_err(Failure::runtime)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_daemon(args: &RunArgs) -> Result<ExitCode, Failure> {
    let config = Config::load(&args.config).map_err(Failure::bad_input)?;
    // On ECS, the task's stopTimeout (at most 120 s on Fargate) ends the wait after SIGTERM.
    let deadline = config.daemon.shutdown_deadline_seconds.0;
    if std::env::var_os("ECS_CONTAINER_METADATA_URI_V4").is_some() && deadline > 110.0 {
        tracing::warn!(
            shutdown_deadline_seconds = deadline,
            "running on ECS, which kills the container at most 120 s after SIGTERM: \
             set daemon.shutdown_deadline_seconds below the task's stopTimeout"
        );
    }
    // One thread: the daemon waits on timers and the network, and one thread
    // (with one allocator arena) keeps it small at rest.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::runtime)?;
    runtime.block_on(async {
        let signals = daemon::os_signals()
            .context("cannot install signal handlers")
            .map_err(Failure::runtime)?;
        let board = std::sync::Arc::new(daemon::board::Board::default());
        let token = std::env::var(&config.daemon.trigger_token_env).ok().filter(|t| !t.is_empty());
        if token.is_none() {
            tracing::info!(variable = %config.daemon.trigger_token_env, "POST /trigger is off: the token variable is not set");
        }
        let server = status::serve(config.daemon.status_listen, status_sources(&board, token))
            .await
            .with_context(|| format!("cannot serve status on {}", config.daemon.status_listen))
            .map_err(Failure::runtime)?;
        print_stdout(&format!("status: http://{}\n", server.addr))?;
        let options = daemon::Options {
            no_initial_run: args.no_initial_run,
            force: args.force,
            ..daemon::Options::default()
        };
        daemon::run(args.config.clone(), config, board, options, signals)
            .await
            .map_err(Failure::bad_input)?;
        server.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The status server's answers, from the daemon's board.
pub fn status_sources(
    board: &std::sync::Arc<daemon::board::Board>,
    token: Option<String>,
) -> status::Sources {
    let (b1, b2, b3) = (board.clone(), board.clone(), board.clone());
    status::Sources {
        status_json: std::sync::Arc::new(move || {
            serde_json::to_string_pretty(&b1.snapshot())
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        }),
        metrics: std::sync::Arc::new(move |format| match format {
            status::MetricsFormat::Prometheus => b2.metrics(),
            status::MetricsFormat::OpenMetrics => b2.openmetrics(),
        }),
        trigger: std::sync::Arc::new(move |t: &str| {
            if b3.trigger(t, daemon::board::Trigger::Manual) {
                status::Triggered::Yes
            } else {
                status::Triggered::UnknownTarget
            }
        }),
        trigger_token: token,
    }
}

fn status_command(args: &StatusArgs) -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .map_err(Failure::runtime)?;
    let url = format!("{}/status", args.url.trim_end_matches('/'));
    let body = runtime
        .block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .send()
                .await?
                .error_for_status()?;
            r.text().await
        })
        .with_context(|| format!("cannot read {url}; is the daemon running?"))
        .map_err(Failure::runtime)?;
    if args.json {
        print_stdout(&format!("{body}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("{url} did not answer JSON"))
        .map_err(Failure::runtime)?;
    let mut out = format!(
        "{:<20} {:<12} {:<14} {:<26} {}\n",
        "TARGET", "STATE", "LAST OUTCOME", "NEXT RUN", "REVISION"
    );
    for (name, t) in v["targets"].as_object().into_iter().flatten() {
        let state = if t["running"].as_bool() == Some(true) {
            "rolling"
        } else if t["last_error"].is_string() {
            "error"
        } else {
            "idle"
        };
        let revision = t["revision"]
            .as_str()
            .map(|r| r.rsplit('/').next().unwrap_or(r))
            .unwrap_or("-");
        out.push_str(&format!(
            "{:<20} {:<12} {:<14} {:<26} {}\n",
            name,
            state,
            t["last_outcome"].as_str().unwrap_or("-"),
            t["next_run"].as_str().unwrap_or("-"),
            revision
        ));
        if let Some(e) = t["last_error"].as_str() {
            out.push_str(&format!("  error: {e}\n"));
        }
    }
    print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Loads the config and the target's manifest, connects to AWS, and runs `f` with the engine.
fn with_engine<F, Fut>(args: &TargetArgs, f: F) -> Result<ExitCode, Failure>
where
    F: FnOnce(rollout::Engine, String) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, Failure>>,
{
    let config = Config::load(&args.config).map_err(Failure::bad_input)?;
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let target = config
        .target(args.target.as_deref())
        .map_err(Failure::bad_input)?
        .clone();
    let runtime = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .map_err(Failure::runtime)?;
    runtime.block_on(async move {
        let engine = daemon::wiring::engine(&config, &target)
            .await
            .map_err(Failure::bad_input)?;
        f(
            engine.with_progress(progress_display()),
            target.name.to_string(),
        )
        .await
    })
}

/// Verification progress: a live line on a terminal, log lines otherwise.
fn progress_display() -> std::sync::Arc<dyn Fn(&rollout::Progress) + Send + Sync> {
    use std::io::IsTerminal;
    let live = io::stderr().is_terminal();
    let last = std::sync::Mutex::new(None::<(u32, u32, bool)>);
    std::sync::Arc::new(move |p: &rollout::Progress| {
        let revision = p.revision.rsplit('/').next().unwrap_or(&p.revision);
        if live {
            eprint!(
                "\r\x1b[2K{revision}: {}/{} running, {} healthy{}{}, {} probes ok, {} failed, {:.0} s",
                p.running,
                p.desired,
                p.healthy,
                p.listed
                    .map(|l| format!(", {l} listed by Dynatrace"))
                    .unwrap_or_default(),
                if p.baking { ", baking" } else { "" },
                p.probes_ok,
                p.probes_failed,
                p.elapsed.as_secs_f64()
            );
            return;
        }
        let now = (p.running, p.healthy, p.baking);
        let mut last = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *last != Some(now) {
            *last = Some(now);
            tracing::info!(
                revision,
                running = p.running,
                desired = p.desired,
                healthy = p.healthy,
                baking = p.baking,
                elapsed_s = p.elapsed.as_secs(),
                "verifying"
            );
        }
    })
}

fn report_outcome(
    target: &str,
    outcome: Result<rollout::Outcome, rollout::RolloutError>,
) -> Result<ExitCode, Failure> {
    use std::io::IsTerminal;
    if io::stderr().is_terminal() {
        eprintln!();
    }
    let outcome = outcome
        .context(format!("target `{target}`: the rollout could not finish; the service keeps its ECS tags, and the next run resumes from them"))
        .map_err(Failure::runtime)?;
    let text = match &outcome {
        rollout::Outcome::Unchanged { revision } => {
            format!("{target}: unchanged, running {revision}\n")
        }
        rollout::Outcome::Adopted { revision } => {
            format!("{target}: adopted {revision} as last good\n")
        }
        rollout::Outcome::Verified { from, to, warnings } => {
            let mut t = format!(
                "{target}: verified {to}{}\n",
                from.as_ref()
                    .map(|f| format!(" (was {f})"))
                    .unwrap_or_default()
            );
            for w in warnings {
                t.push_str(&format!("  warning: {w}\n"));
            }
            t
        }
        rollout::Outcome::Migrated {
            from_service,
            to_service,
            revision,
        } => format!(
            "{target}: migrated to blue/green: service {to_service} runs {revision}, verified; {from_service} is scaled to 0 (set `service = \"{to_service}\"` in the config, then delete {from_service})\n"
        ),
        rollout::Outcome::Inconclusive {
            revision,
            serving,
            reasons,
        } => {
            let mut t = format!(
                "{target}: inconclusive: {revision} could not be judged and was removed, not quarantined; {serving} serves (the next run tries again)\n"
            );
            for r in reasons {
                t.push_str(&format!("  reason: {r}\n"));
            }
            t
        }
        rollout::Outcome::Quarantined { image } => {
            format!("{target}: {image} is quarantined after an earlier failure; nothing done\n")
        }
        rollout::Outcome::RolledBack {
            failed,
            restored,
            reasons,
            logs,
            via,
        } => {
            let mut t = format!(
                "{target}: rolled back: {failed} failed, {restored} serves ({})\n",
                via.as_str()
            );
            for r in reasons {
                t.push_str(&format!("  reason: {r}\n"));
            }
            for l in logs {
                t.push_str(&format!("  log: {l}\n"));
            }
            t
        }
    };
    print_stdout(&text)?;
    Ok(ExitCode::from(outcome.exit_code()))
}

fn print_plan(target: &str, plan: &rollout::Plan) -> Result<(), Failure> {
    let none = || "(none)".to_owned();
    let mut t = format!("target {target}\n");
    t.push_str(&format!(
        "  running:       {}\n",
        plan.running.clone().unwrap_or_else(none)
    ));
    t.push_str(&format!(
        "  last good:     {}\n",
        plan.last_good.clone().unwrap_or_else(none)
    ));
    if let Some(f) = &plan.in_flight {
        t.push_str(&format!(
            "  in flight:     {f} (an interrupted rollout; the next run resumes it)\n"
        ));
    }
    t.push_str(&format!("  desired image: {}\n", plan.desired_image));
    for v in &plan.versions {
        t.push_str(&format!("  version:       {v}\n"));
    }
    t.push_str(&format!("  content hash:  {}\n", plan.desired_hash));
    t.push_str(&format!("  strategy:      {}\n", plan.strategy.as_str()));
    t.push_str(&format!("  next step:     {}\n", plan.next_step));
    t.push_str(&format!(
        "  dynatrace:     {}\n",
        plan.dynatrace.as_deref().unwrap_or(
            "off: the HTTPS probes alone verify (set [target.verify.dynatrace] to have the environment confirm the new ActiveGates)"
        )
    ));
    if let Some(m) = &plan.migration {
        t.push_str(&format!("  blue/green:    {m}\n"));
    }
    if plan.quarantined {
        t.push_str("  the desired image is quarantined: a rollout would do nothing\n");
    }
    if plan.changes.is_empty() {
        t.push_str("  no changes\n");
    } else {
        t.push_str("  changes:\n");
        for c in &plan.changes {
            t.push_str(&format!("    - {c}\n"));
        }
    }
    print_stdout(&t)
}

fn sim_command(args: SimArgs) -> Result<ExitCode, Failure> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--speed must be a positive number, not {}",
            args.speed
        )));
    }
    if !(args.activegate_start.is_finite() && args.activegate_start >= 0.0) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--activegate-start must be a number of seconds, not {}",
            args.activegate_start
        )));
    }
    let runtime = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .map_err(Failure::runtime)?;
    runtime.block_on(async {
        let options = sim::SimOptions {
            listen: args.listen,
            speed: args.speed,
            state_dir: args.state_dir,
            region: args.region,
            delays: sim::Delays {
                activegate_start: args.activegate_start,
                ..sim::Delays::default()
            },
            ..sim::SimOptions::default()
        };
        let handle = sim::Sim::start(options)
            .await
            .context("cannot start the simulator")
            .map_err(Failure::runtime)?;
        print_stdout(&format!(
            "endpoint: {}\nca: {}\n",
            handle.endpoint(),
            handle.ca_path().display()
        ))?;
        tracing::info!(
            endpoint = handle.endpoint(),
            speed = args.speed,
            "simulator running; stop with Ctrl-C or SIGTERM"
        );
        let signal = wait_for_stop().await;
        tracing::info!(signal, "stopping the simulator");
        handle.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Waits for SIGTERM or SIGINT; returns which.
async fn wait_for_stop() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, Ctrl-C still ends the process.
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub fn print_stdout_text(text: &str) -> anyhow::Result<()> {
    print_stdout(text).map_err(|f| f.error)
}

fn print_stdout(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::runtime(
            anyhow::Error::new(e).context("cannot write to stdout"),
        )),
        _ => Ok(()),
    }
}

fn mesh_command(args: &MeshArgs) -> Result<ExitCode, Failure> {
    use activegate_lifecycle::mesh::{self, AddressSource, Format};
    let config = Config::load(&args.target.config).map_err(Failure::bad_input)?;
    let target = config
        .target(args.target.target.as_deref())
        .map_err(Failure::bad_input)?
        .clone();
    let Some(spec) = daemon::settings::mesh(&config, &target) else {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "{}: target `{}` has no [target.mesh]: name at least the services allowed to reach the ActiveGate (mesh.sources)",
            config.path,
            target.name
        )));
    };
    let format = match args.format {
        MeshFormat::Crd => Format::Crd,
        MeshFormat::Consul => Format::Consul,
    };
    // The tasks' addresses, when the destination follows them or exclusions need them.
    let needs_tasks = spec.addresses == AddressSource::Tasks
        || (args.exclusions && spec.exclude_cidrs.is_empty());
    let mut tasks: Vec<String> = if needs_tasks {
        let runtime = tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .map_err(Failure::runtime)?;
        let listed = runtime
            .block_on(async {
                let aws = daemon::wiring::aws(&config, &target, |_| {}).await;
                aws.tasks(target.cluster.as_str(), target.service.as_str(), false)
                    .await
            })
            .with_context(|| {
                format!(
                    "cannot list the tasks of {}/{}",
                    target.cluster, target.service
                )
            })
            .map_err(Failure::runtime)?;
        activegate_lifecycle::ecs::running_ips(listed, None)
    } else {
        Vec::new()
    };
    tasks.sort();
    if spec.addresses == AddressSource::Tasks && tasks.is_empty() && !args.exclusions {
        return Err(Failure::runtime(anyhow::anyhow!(
            "{}/{} has no running task with an address, and target `{}` has no stable name (mesh.address or an entry_point host): the destination would be empty",
            target.cluster,
            target.service,
            target.name
        )));
    }
    let (documents, warnings): (Vec<mesh::Document>, Vec<String>) = if args.exclusions {
        let (text, warnings) = spec.exclusions(&tasks, format);
        let file = match format {
            Format::Crd => "transparent-proxy-exclusions.yaml",
            Format::Consul => "consul-ecs-transparent-proxy.json",
        };
        (
            vec![mesh::Document {
                file: file.into(),
                text,
            }],
            warnings,
        )
    } else {
        let (addresses, mut warnings) = match &spec.addresses {
            AddressSource::Stable(a) => (vec![a.clone()], Vec::new()),
            AddressSource::Tasks => (
                tasks.clone(),
                vec![format!(
                    "the destination names the tasks' current addresses ({}), which change at every rollout: set [target.mesh] consul_address so that the daemon keeps them current, or give the ActiveGates a stable name (mesh.address: a Cloud Map or load balancer name)",
                    tasks.join(", ")
                )],
            ),
        };
        if spec.sources.is_empty() {
            warnings.push("mesh.sources is empty: no service-intentions entry; with default-deny intentions no application can reach the ActiveGate".into());
        }
        (spec.render(&addresses, format), warnings)
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))
                .map_err(Failure::runtime)?;
            let mut listing = String::new();
            for d in &documents {
                let path = dir.join(&d.file);
                std::fs::write(&path, &d.text)
                    .with_context(|| format!("cannot write {}", path.display()))
                    .map_err(Failure::runtime)?;
                listing.push_str(&format!("{}\n", path.display()));
            }
            print_stdout(&listing)?;
        }
        None if args.exclusions => print_stdout(&documents[0].text)?,
        None => {
            let header = format!(
                "Consul config entries for target `{}`: the ActiveGate `{}` as a destination of the terminating gateway `{}`. The terminating-gateway entry lists every service the gateway links: merge it into an existing entry rather than replacing it.",
                target.name, spec.service, spec.gateway
            );
            print_stdout(&mesh::join(&documents, format, &header))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One plain HTTP/1.1 request over a std socket: no runtime, no TLS, a few hundred
/// microseconds, so a health check every 30 s costs the daemon's task nothing.
fn healthcheck(args: &HealthcheckArgs) -> Result<ExitCode, Failure> {
    use std::io::Read;
    let mut addr = args.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let status_line = (|| -> io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = Vec::new();
        stream.take(256).read_to_end(&mut head)?;
        let text = String::from_utf8_lossy(&head);
        Ok(text.lines().next().unwrap_or_default().to_owned())
    })()
    .with_context(|| format!("no answer from the status server on {addr}"))
    .map_err(Failure::runtime)?;
    let healthy = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code == "200");
    if healthy {
        print_stdout(&format!("healthy: http://{addr}/healthz\n"))?;
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::runtime(anyhow::anyhow!(
            "http://{addr}/healthz answered `{}`",
            status_line.escape_debug()
        )))
    }
}

fn check_config(path: &std::path::Path) -> Result<ExitCode, Failure> {
    let config = Config::load(path).map_err(Failure::bad_input)?;
    let names: Vec<String> = config.targets.iter().map(|t| t.name.to_string()).collect();
    print_stdout(&format!(
        "{}: valid, {} target{}: {}\n",
        config.path,
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn translate_command(args: &TranslateArgs) -> Result<ExitCode, Failure> {
    let shown = args.manifest.display().to_string();
    let bytes = read_limited(&args.manifest, MAX_MANIFEST_BYTES).map_err(|e| match e {
        ReadError::TooLarge(size) => Failure::bad_input(TranslateError::TooLarge {
            at: translate::Where::file(&shown),
            size,
            limit: MAX_MANIFEST_BYTES,
        }),
        ReadError::Io(e) => Failure::bad_input(
            anyhow::Error::new(e).context(format!("{shown}: cannot read the manifest")),
        ),
    })?;
    let manifest = translate::parse(&shown, &bytes).map_err(Failure::bad_input)?;
    let settings = match &args.config {
        Some(path) => {
            let config = Config::load(path).map_err(Failure::bad_input)?;
            daemon::settings::translate(
                config
                    .target(args.target.as_deref())
                    .map_err(Failure::bad_input)?,
            )
        }
        None => translate::Settings::default(),
    };
    let translation = translate::translate(&manifest, &settings).map_err(Failure::bad_input)?;
    let document = match args.output {
        Output::TaskDefinition => serde_json::to_string_pretty(&translation.task_definition),
        Output::Service => {
            let service =
                translate::service_document(&translation, &settings).map_err(Failure::bad_input)?;
            serde_json::to_string_pretty(&service)
        }
    }
    .context("cannot serialise the document")
    .map_err(Failure::runtime)?;
    let report = match args.report {
        ReportFormat::Text => translation.report.to_string(),
        ReportFormat::Json => translation.report.to_json(),
    };
    eprint!("{report}");
    print_stdout(&format!("{document}\n"))?;
    let missing = translation.report.count(Action::NeedsSetting);
    if missing > 0 {
        tracing::warn!(
            needs_setting = missing,
            "the task definition is incomplete: {missing} field(s) need a setting from the config"
        );
        if args.strict {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}
