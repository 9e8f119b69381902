//! `mesh`: the Consul config entries that let meshed applications reach the ActiveGates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

use activegate_lifecycle::config::{Config, Target};
use activegate_lifecycle::daemon;
use activegate_lifecycle::mesh::{self, AddressSource, Document, Format, Spec};

use super::rollout::TargetArgs;
use super::{Failure, print_stdout};

#[derive(Debug, clap::Args)]
pub(super) struct MeshArgs {
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

pub(super) fn mesh_command(args: &MeshArgs) -> Result<ExitCode, Failure> {
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
    let tasks = task_addresses(args, &config, &target, &spec)?;
    let (documents, warnings) = if args.exclusions {
        exclusions(&spec, &tasks, format)
    } else {
        entries(&spec, &tasks, format)
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    write_documents(args, &documents, &target, &spec, format)?;
    Ok(ExitCode::SUCCESS)
}

/// The tasks' addresses, sorted, when the destination follows them or exclusions need them
/// (else none, and no AWS call).
fn task_addresses(
    args: &MeshArgs,
    config: &Config,
    target: &Target,
    spec: &Spec,
) -> Result<Vec<String>, Failure> {
    let needs_tasks = spec.addresses == AddressSource::Tasks
        || (args.exclusions && spec.exclude_cidrs.is_empty());
    let mut tasks: Vec<String> = if needs_tasks {
        let runtime = tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")
            .map_err(Failure::runtime)?;
        let listed = runtime
            .block_on(async {
                let aws = daemon::wiring::aws(config, target, |_| {}).await;
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
    Ok(tasks)
}

/// `--exclusions`: one document with the transparent-proxy exclusions.
fn exclusions(spec: &Spec, tasks: &[String], format: Format) -> (Vec<Document>, Vec<String>) {
    let (text, warnings) = spec.exclusions(tasks, format);
    let file = match format {
        Format::Crd => "transparent-proxy-exclusions.yaml",
        Format::Consul => "consul-ecs-transparent-proxy.json",
    };
    (
        vec![Document {
            file: file.into(),
            text,
        }],
        warnings,
    )
}

/// The config entries for the terminating gateway, with what is weak about them.
fn entries(spec: &Spec, tasks: &[String], format: Format) -> (Vec<Document>, Vec<String>) {
    let (addresses, mut warnings) = match &spec.addresses {
        AddressSource::Stable(a) => (vec![a.clone()], Vec::new()),
        AddressSource::Tasks => (
            tasks.to_vec(),
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
}

/// The documents: one file each into `--out-dir` (their paths on stdout), or on stdout.
fn write_documents(
    args: &MeshArgs,
    documents: &[Document],
    target: &Target,
    spec: &Spec,
    format: Format,
) -> Result<(), Failure> {
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))
                .map_err(Failure::runtime)?;
            let mut listing = String::new();
            for d in documents {
                let path = dir.join(&d.file);
                std::fs::write(&path, &d.text)
                    .with_context(|| format!("cannot write {}", path.display()))
                    .map_err(Failure::runtime)?;
                listing.push_str(&format!("{}\n", path.display()));
            }
            print_stdout(&listing)
        }
        None if args.exclusions => print_stdout(&documents[0].text),
        None => {
            let header = format!(
                "Consul config entries for target `{}`: the ActiveGate `{}` as a destination of the terminating gateway `{}`. The terminating-gateway entry lists every service the gateway links: merge it into an existing entry rather than replacing it.",
                target.name, spec.service, spec.gateway
            );
            print_stdout(&mesh::join(documents, format, &header))
        }
    }
}
