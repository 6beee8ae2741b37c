//! Command-line surface: one file per command group.

mod agent;
mod container;
mod context;
mod exec;
mod follow;
pub mod helpers;
mod image;
mod kubelet;
mod network;
mod output;
mod run;
mod validate;
mod volume;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use context::Context;
use layerlet::layout::{NodeLayout, DEFAULT_ROOT, DEFAULT_RUN_ROOT};

pub use output::Output;

#[derive(Debug, Parser)]
#[command(
    name = "layerlet",
    version,
    about = "A Kubernetes-style node agent on a shared overlayfs layer store"
)]
pub struct Cli {
    /// Data root: layer store, container layers, volumes, metadata.
    #[arg(long, global = true, value_name = "DIR", env = "LAYERLET_ROOT", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Runtime state cleared by a reboot: monitors, pinned namespaces.
    #[arg(long, global = true, value_name = "DIR", env = "LAYERLET_RUN_ROOT", default_value = DEFAULT_RUN_ROOT)]
    pub run_root: PathBuf,
    /// Output format of listings.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Node default for each container's pids.max; 0 for no limit.
    #[arg(long, global = true, value_name = "N", default_value_t = 4096)]
    pub pids_limit: u64,
    /// Log level (error, warn, info, debug, trace); LAYERLET_LOG overrides.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    #[command(flatten)]
    pub network: network::NetworkArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent: reconcile the pods of a manifest directory.
    Agent(Box<agent::AgentArgs>),
    /// Check manifest files as the agent would, offline; exit 1 on an error.
    Validate(validate::ValidateArgs),
    /// Pull an image from a registry into the shared layer store.
    Pull(image::PullArgs),
    /// List images with their sizes, shared and unique bytes.
    Images,
    /// Show the layers of an image and what made them.
    History(image::HistoryArgs),
    /// Show disk usage of the store and what layer sharing saves.
    Df,
    /// Remove image names (and images left without a name).
    Rmi(image::RmiArgs),
    /// Remove layers and blobs no image references; with --free-space also least recently
    /// used images no container uses, while the disk is above the high threshold.
    Gc(image::GcArgs),
    /// Image operations.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Run a pod from YAML, like `podman kube play`.
    Run(run::RunArgs),
    /// List pods' containers: state, image, copy-on-write bytes, restarts, age.
    Ps(container::PsArgs),
    /// Show a container as JSON: image layers, overlay dirs, state, mounts, namespaces.
    Inspect(container::NameArg),
    /// Show what a container changed in its writable layer (A added, C changed, D deleted).
    Diff(container::NameArg),
    /// Print a container's logs.
    Logs(container::LogsArgs),
    /// Named volumes (persistentVolumeClaim) that outlive pods.
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Run a command in a running container (all its namespaces, its user).
    Exec(exec::ExecArgs),
    /// Stop pods: stop signal, grace period, then SIGKILL.
    Stop(container::StopArgs),
    /// Stop and remove pods and everything they left.
    Rm(container::StopArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Absolute: paths under the roots reach CNI plugins and monitors that run elsewhere (a
    // relative netns path or IPAM dir would be read from `/`).
    // Resolved where they exist: mountinfo names mounts by the real path, and unmounting
    // what is under a root compares with it.
    let absolute = |flag: &str, path: &Path| {
        std::path::absolute(path)
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .with_context(|| format!("{flag} {}: cannot make the path absolute", path.display()))
    };
    let layout = NodeLayout::new(
        absolute("--root", &cli.root)?,
        absolute("--run-root", &cli.run_root)?,
    );
    let ctx = Context {
        networking: cli.network.networking(&layout)?,
        layout,
        output: cli.output,
        pids_limit: (cli.pids_limit > 0).then_some(cli.pids_limit),
    };
    match cli.command {
        Command::Agent(args) => agent::agent(&ctx, *args),
        Command::Validate(args) => validate::validate(&ctx, args),
        Command::Pull(args) => image::pull(&ctx, args),
        Command::Images => image::images(&ctx),
        Command::History(args) => image::history(&ctx, args),
        Command::Df => image::df(&ctx),
        Command::Rmi(args) => image::rmi(&ctx, args),
        Command::Gc(args) => image::gc(&ctx, args),
        Command::Image(cmd) => image::image_command(&ctx, cmd),
        Command::Run(args) => run::run(&ctx, args),
        Command::Ps(args) => container::ps(&ctx, args),
        Command::Inspect(args) => container::inspect(&ctx, args),
        Command::Diff(args) => container::diff_cmd(&ctx, args),
        Command::Logs(args) => container::logs(&ctx, args),
        Command::Exec(args) => exec::exec(&ctx, args),
        Command::Volume(cmd) => volume::volume(&ctx, cmd),
        Command::Stop(args) => container::stop(&ctx, args),
        Command::Rm(args) => container::rm(&ctx, args),
    }
}
