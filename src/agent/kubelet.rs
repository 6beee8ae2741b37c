//! Starts the kubelet API beside the agent when `--kubelet-listen` is given: the node view
//! over the agent's runtime and published pods, reviews through the agent's kube client.

use std::sync::Arc;

use super::context::Context;
use super::error::AgentError;
use crate::kubelet::auth::review::{KubeReviewer, Reviewer};
use crate::kubelet::backend::LocalNode;
use crate::kubelet::server::tls::subject_alt_names;
use crate::kubelet::{start, Kubelet, KubeletOptions};

/// The node's names and addresses for a self-signed serving certificate: the node and host
/// names, the node's address (what the Node publishes as InternalIP, where the API server
/// connects) and a specific `--kubelet-listen` address.
fn names(node: &str, host_ip: &str, listen: &str) -> Vec<String> {
    let host_name = nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().into_owned());
    let mut addresses: Vec<std::net::IpAddr> = host_ip.parse().into_iter().collect();
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        addresses.push(addr.ip());
    }
    subject_alt_names(node, host_name.as_deref(), &addresses)
}

pub(super) async fn start_kubelet(
    ctx: &Context,
    opts: &KubeletOptions,
) -> Result<Kubelet, AgentError> {
    let shared = ctx.shared.clone();
    let pods = Arc::new(move || {
        shared
            .pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    });
    let node = LocalNode::new(
        ctx.exec.rt.clone(),
        ctx.exec.store.clone(),
        pods,
        Arc::new(Vec::new),
        ctx.shared.metrics.cache.clone(),
    );
    let reviewer = ctx.api.as_ref().map(|api| {
        Arc::new(KubeReviewer {
            client: api.client(),
        }) as Arc<dyn Reviewer>
    });
    Ok(start(
        opts,
        &ctx.exec.rt.node_name,
        names(
            &ctx.exec.rt.node_name,
            &ctx.config.node.host_ip,
            &opts.listen,
        ),
        ctx.exec.rt.layout.pki_dir(),
        Arc::new(node),
        reviewer,
    )
    .await?)
}
