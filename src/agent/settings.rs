//! How the agent was asked to run: where its manifests are, where it listens, its backoff,
//! pull and garbage collection settings and its link to an API server.

use std::path::PathBuf;
use std::time::Duration;

use super::plan::Backoff;
use crate::image::gc_policy::Watermarks;
use crate::image::pull::PullOptions;
use crate::pod::Limits;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub manifests: PathBuf,
    pub listen: String,
    pub rescan: Duration,
    pub shutdown_pods: bool,
    pub backoff: Backoff,
    pub pull: PullOptions,
    pub limits: Limits,
    pub image_gc: ImageGcConfig,
    /// Also run the pods bound to this node through the Kubernetes API server.
    pub kube: Option<crate::source::kube::KubeAccess>,
    /// With `kube`: register this node (Node object, Ready status, lease heartbeat).
    pub register_node: bool,
    /// The kubelet API (`--kubelet-listen`), off when None.
    pub kubelet: Option<crate::kubelet::KubeletOptions>,
    /// `--node-ip`: the node's address; detected from the default route when None.
    pub node_ip: Option<std::net::IpAddr>,
    /// `--max-pods`: the pods capacity the node publishes.
    pub max_pods: u32,
}

/// kubelet's image garbage collection: watermarks and how often the disk is checked.
#[derive(Debug, Clone, Copy)]
pub struct ImageGcConfig {
    pub marks: Watermarks,
    pub period: Duration,
}

impl Default for ImageGcConfig {
    fn default() -> Self {
        ImageGcConfig {
            marks: Watermarks::default(),
            period: Duration::from_secs(300),
        }
    }
}
