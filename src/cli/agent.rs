//! `layerlet agent`: the node agent on the manifest directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use layerlet::agent::plan::Backoff;
use layerlet::agent::{run, AgentConfig, ImageGcConfig, Shared};
use layerlet::image::pull::PullOptions;
use layerlet::image::registry::RegistryOptions;
use layerlet::image::store::{Store, StoreOptions};
use layerlet::pod::Limits;
use layerlet::source::kube::KubeAccess;

use super::context::{node_runtime, Context};
use super::image::ImageGcArgs;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Static pod manifest directory (kubelet's staticPodPath).
    #[arg(long, default_value = "/etc/layerlet/manifests")]
    pub manifests: PathBuf,
    /// Address of /metrics, /healthz, /readyz and /api/v1/pods.
    #[arg(long, default_value = "127.0.0.1:10265")]
    pub listen: String,
    /// Full rescan of the manifest directory every this many seconds (inotify sees changes
    /// at once; this catches anything missed).
    #[arg(long, default_value_t = 20)]
    pub rescan_seconds: u64,
    /// On SIGTERM, stop the agent's pods gracefully (default: leave them running, as kubelet).
    #[arg(long)]
    pub shutdown_pods: bool,
    /// First CrashLoopBackOff delay in seconds (doubles up to --backoff-max-seconds).
    #[arg(long, default_value_t = 10)]
    pub backoff_seconds: u64,
    #[arg(long, default_value_t = 300)]
    pub backoff_max_seconds: u64,
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    #[arg(long, value_name = "PATH")]
    pub auth_file: Option<PathBuf>,
    #[command(flatten)]
    pub image_gc: ImageGcArgs,
    /// How often to check the disk for image garbage collection (kubelet: 5 minutes).
    #[arg(long, default_value_t = 300)]
    pub image_gc_period_seconds: u64,
    /// Also run the Pods bound to this node (spec.nodeName) through the Kubernetes API server
    /// this kubeconfig names, and report their status there.
    #[arg(long, value_name = "PATH", conflicts_with = "in_cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// As --kubeconfig, with the service account of the pod the agent runs in (DaemonSet).
    #[arg(long)]
    pub in_cluster: bool,
    /// With --kubeconfig or --in-cluster: register this node with the API server (a Node
    /// tainted `layerlet.io/agent=true:NoSchedule`, its Ready status, a lease renewed every
    /// 10 s), so the node controller keeps the pods bound to it. Use a node name of its own
    /// when a kubelet runs on the same host.
    #[arg(long)]
    pub register_node: bool,
    /// This node's name: spec.nodeName of the API pods it runs, and the downward API's
    /// spec.nodeName (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// This node's address: the Node's InternalIP, pods' status.hostIP and the downward
    /// API's. Default: an address of the interface of the default route, else one the host
    /// name resolves to (as kubelet's --node-ip).
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<std::net::IpAddr>,
    /// The most pods this node takes: the pods capacity it publishes (kubelet's --max-pods).
    #[arg(long, default_value_t = 110, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pods: u32,
    #[command(flatten)]
    pub kubelet: super::kubelet::KubeletArgs,
}

pub fn agent(ctx: &Context, args: AgentArgs) -> anyhow::Result<ExitCode> {
    let mut rt = node_runtime(ctx)?;
    if let Some(name) = args.node_name {
        let problems = layerlet::pod::validate::validate_object_meta("default", &name);
        if let Some(p) = problems.first() {
            anyhow::bail!("--node-name {name:?}: {}", p.reason);
        }
        rt.node_name = name;
    }
    let kube = match (args.kubeconfig, args.in_cluster) {
        (Some(path), _) => Some(KubeAccess::Kubeconfig(path)),
        (None, true) => Some(KubeAccess::InCluster),
        (None, false) => None,
    };
    if args.register_node && kube.is_none() {
        anyhow::bail!(
            "--register-node needs an API server: pass --kubeconfig PATH or --in-cluster"
        );
    }
    // Kube mode: the API server sends `kubectl logs/exec` here, so the kubelet API is on.
    let kubelet = args.kubelet.options(kube.is_some());
    let store = Arc::new(Store::open(&ctx.layout, StoreOptions::default())?);
    let cfg = AgentConfig {
        manifests: args.manifests,
        listen: args.listen,
        rescan: Duration::from_secs(args.rescan_seconds.max(1)),
        shutdown_pods: args.shutdown_pods,
        backoff: Backoff {
            initial_ms: args.backoff_seconds * 1000,
            max_ms: args.backoff_max_seconds * 1000,
            ..Backoff::default()
        },
        pull: PullOptions {
            registry: RegistryOptions {
                insecure: args.insecure_registries,
                auth_file: args.auth_file,
            },
            platform: None,
        },
        limits: Limits::default(),
        image_gc: ImageGcConfig {
            marks: args.image_gc.watermarks()?,
            period: Duration::from_secs(args.image_gc_period_seconds.max(1)),
        },
        register_node: args.register_node,
        kube,
        kubelet,
        node_ip: args.node_ip,
        max_pods: args.max_pods,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; }, None => std::future::pending::<()>().await } } => {},
            }
        };
        run(rt, store, cfg, Arc::new(Shared::default()), shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}
