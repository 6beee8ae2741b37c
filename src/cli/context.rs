//! What every command gets from the global options, and what most of them open with it.

use std::path::PathBuf;

use layerlet::image::store::{Store, StoreOptions};
use layerlet::layout::NodeLayout;
use layerlet::runtime::container::Runtime;

use super::output::Output;

/// What every command gets from the global options.
pub struct Context {
    pub layout: NodeLayout,
    pub output: Output,
    pub pids_limit: Option<u64>,
    pub networking: std::sync::Arc<layerlet::runtime::network::PodNetworking>,
}

/// A small runtime for commands that talk to the network.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn node_runtime(ctx: &Context) -> anyhow::Result<Runtime> {
    Ok(Runtime {
        layout: ctx.layout.clone(),
        exe: layerlet::sys::exe::sealed_exe()?,
        monitor: layerlet::sys::exe::sealed_monitor()?,
        node_name: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into()),
        cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        pids_limit: ctx.pids_limit,
        networking: ctx.networking.clone(),
        mount_base: None,
    })
}

pub fn open_store(ctx: &Context) -> anyhow::Result<Store> {
    Ok(Store::open(&ctx.layout, StoreOptions::default())?)
}
