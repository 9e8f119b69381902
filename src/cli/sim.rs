//! `sim`: the embedded ECS simulator as a process of its own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use activegate_lifecycle::{daemon, sim};

use super::{Failure, print_stdout};

#[derive(Debug, clap::Args)]
pub(super) struct SimArgs {
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
    /// Account used in ARNs; STS AssumeRole at this endpoint assumes roles of this account only.
    #[arg(long, default_value = "123456789012")]
    account: String,
    /// Throttle ECS calls with ECS's token buckets (refilled in real time, whatever --speed).
    #[arg(long)]
    ecs_rate_limits: bool,
    /// Refuse ECS and Logs calls signed with keys this simulator's STS did not issue.
    #[arg(long)]
    require_assumed_role: bool,
    /// Refuse calls whose signature is scoped to another region than --region.
    #[arg(long)]
    check_region: bool,
}

pub(super) fn sim_command(args: SimArgs) -> Result<ExitCode, Failure> {
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
    if !(args.account.len() == 12 && args.account.bytes().all(|b| b.is_ascii_digit())) {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "--account must be an AWS account id of 12 digits, not {:?}",
            args.account
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
            account: args.account,
            ecs_rate_limits: args.ecs_rate_limits,
            require_assumed_role: args.require_assumed_role,
            check_region: args.check_region,
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
    daemon::signals::wait_for_terminate().await
}
