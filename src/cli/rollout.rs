//! One target, now: `rollout`, `rollback` and `plan`, with live verification progress.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use activegate_lifecycle::config::Config;
use activegate_lifecycle::ecs::ClientSettings;
use activegate_lifecycle::model::ids::TaskDefinitionArn;
use activegate_lifecycle::{daemon, rollout};

use super::{Failure, print_stdout};

#[derive(Debug, clap::Args)]
pub(super) struct TargetArgs {
    /// The config file (TOML).
    #[arg(long, short)]
    pub(super) config: PathBuf,
    /// The target in the config (needed when it has more than one).
    #[arg(long, short)]
    pub(super) target: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(super) struct RolloutArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Roll out this image instead of the configured one.
    #[arg(long, conflicts_with = "migrate")]
    image: Option<String>,
    /// Move a rolling service to blue/green: a new EXTERNAL service beside it (named by
    /// `rollout.migrate_to`) with the running image, verified, then the old one scaled to 0.
    #[arg(long)]
    migrate: bool,
    #[command(flatten)]
    lease: LeaseArgs,
}

#[derive(Debug, clap::Args)]
pub(super) struct RollbackArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    lease: LeaseArgs,
}

/// With `[daemon.lease]`, a command writes a target only while it holds the target's lease.
#[derive(Debug, clap::Args)]
pub(super) struct LeaseArgs {
    /// Wait for the target's lease while another writer (a daemon replica, another person's
    /// command) holds it; without it the command exits 1 naming the holder and the lease's
    /// expiry. Only with `[daemon.lease]` in the config.
    #[arg(long)]
    wait: bool,
}

/// The SDK's app name of each command, in every call's user agent (a daemon's is its replica
/// id): CloudTrail and the simulator tell a person's command from the fleet's replicas.
const ROLLOUT: &str = "activegate-lifecycle-rollout";
const ROLLBACK: &str = "activegate-lifecycle-rollback";
const PLAN: &str = "activegate-lifecycle-plan";

/// Rolls the target out (or, with `--migrate`, moves it to blue/green).
pub(super) fn rollout(args: RolloutArgs) -> Result<ExitCode, Failure> {
    with_engine(
        &args.target,
        Some(&args.lease),
        ROLLOUT,
        |engine, name| async move {
            let outcome = if args.migrate {
                engine.migrate().await
            } else {
                engine.reconcile(args.image.as_deref()).await
            };
            report_outcome(&name, outcome)
        },
    )
}

/// Puts the last known good revision back.
pub(super) fn rollback(args: &RollbackArgs) -> Result<ExitCode, Failure> {
    with_engine(
        &args.target,
        Some(&args.lease),
        ROLLBACK,
        |engine, name| async move {
            let outcome = engine.rollback().await;
            report_outcome(&name, outcome)
        },
    )
}

/// Prints the next step; changes nothing.
pub(super) fn plan(args: &TargetArgs) -> Result<ExitCode, Failure> {
    with_engine(args, None, PLAN, |engine, name| async move {
        let plan = engine.plan(None).await.map_err(Failure::runtime)?;
        print_plan(&name, &plan)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Loads the config and the target's manifest, connects to AWS, and runs `f` with the engine;
/// with `lease` (a command that writes) and `[daemon.lease]`, only while holding the target's
/// lease, renewed until `f` ends and released then. `app` names the clients (user agent).
fn with_engine<F, Fut>(
    args: &TargetArgs,
    lease: Option<&LeaseArgs>,
    app: &'static str,
    f: F,
) -> Result<ExitCode, Failure>
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
        let named = |c: &mut ClientSettings| c.app_name = Some(app.into());
        let engine = daemon::wiring::engine_with(&config, &target, named)
            .await
            .map_err(Failure::bad_input)?;
        let held = match lease {
            Some(l) => take_lease(&config, &target, l.wait, app).await?,
            None => None,
        };
        let result = f(
            engine.with_progress(progress_display()),
            target.name.to_string(),
        )
        .await;
        if let Some((keeper, renewing)) = held {
            renewing.abort();
            if let Err(e) = keeper.release_all().await {
                tracing::warn!(error = %e, "cannot release the lease; it expires by itself");
            }
        }
        result
    })
}

/// Takes the target's lease for this command (None without `[daemon.lease]`) and keeps it
/// renewed in the background; refused (exit 1) while another writer holds it, unless `wait`.
async fn take_lease(
    config: &Config,
    target: &activegate_lifecycle::config::Target,
    wait: bool,
    app: &'static str,
) -> Result<
    Option<(
        std::sync::Arc<daemon::lease::Keeper>,
        tokio::task::JoinHandle<()>,
    )>,
    Failure,
> {
    let clients = activegate_lifecycle::ecs::Clients::new();
    let holder = daemon::lease::command_holder();
    let named = |c: &mut ClientSettings| c.app_name = Some(app.into());
    let Some(keeper) = daemon::lease::keeper_for(config, &clients, holder, &named).await else {
        return Ok(None);
    };
    let key = daemon::lease::key_of(target);
    keeper
        .take_for_command(&key, wait)
        .await
        .map_err(Failure::runtime)?;
    let keeper = std::sync::Arc::new(keeper);
    let renewing = tokio::spawn(keeper.clone().keep_renewing());
    Ok(Some((keeper, renewing)))
}

/// Verification progress: a live line on a terminal, log lines otherwise.
fn progress_display() -> std::sync::Arc<dyn Fn(&rollout::Progress) + Send + Sync> {
    use std::io::IsTerminal;
    let live = io::stderr().is_terminal();
    let last = std::sync::Mutex::new(None::<(u32, u32, bool)>);
    std::sync::Arc::new(move |p: &rollout::Progress| {
        let revision = TaskDefinitionArn::shorten(&p.revision);
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
