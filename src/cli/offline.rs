//! The commands that read files only (no AWS, no daemon): `translate`, `check-config`,
//! `completions` and `man`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, ValueEnum};

use activegate_lifecycle::config::Config;
use activegate_lifecycle::daemon;
use activegate_lifecycle::translate::{self, Action, TranslateError, manifest::MAX_MANIFEST_BYTES};
use activegate_lifecycle::{ReadError, read_limited};

use super::{Cli, Failure, PROGRAM, print_stdout};

#[derive(Debug, clap::Args)]
pub(super) struct TranslateArgs {
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

pub(super) fn translate_command(args: &TranslateArgs) -> Result<ExitCode, Failure> {
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

pub(super) fn check_config(path: &std::path::Path) -> Result<ExitCode, Failure> {
    let config = Config::load(path).map_err(Failure::bad_input)?;
    // Every refusal `run` makes, target by target, without the network; what only the
    // daemon's environment provides (a token's variable) is noted, not refused.
    for target in &config.targets {
        let unset = daemon::wiring::preflight(&config, target).map_err(Failure::bad_input)?;
        for e in unset {
            let why = activegate_lifecycle::error_chain(&e);
            tracing::warn!(target = %target.name, "{why}: `run` refuses this target until it is set");
        }
    }
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

/// The completion script for `shell`.
pub(super) fn completions(shell: clap_complete::Shell) -> String {
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
pub(super) fn man_pages(dir: Option<&std::path::Path>) -> Result<ExitCode, Failure> {
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
