//! Starts the kubelet API beside the agent when `--kubelet-listen` is given: the node view
//! over the agent's runtime and published pods, reviews through the agent's kube client.

use std::sync::Arc;

use super::context::Context;
use super::error::AgentError;
use crate::kubelet::auth::review::{KubeReviewer, Reviewer};
use crate::kubelet::backend::LocalNode;
use crate::kubelet::{start, Kubelet, KubeletOptions};

/// The node's names and addresses for a self-signed serving certificate.
fn names(node: &str, listen: &str) -> Vec<String> {
    let mut names = vec![node.to_string(), "localhost".into(), "127.0.0.1".into()];
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        if !addr.ip().is_unspecified() && !names.contains(&addr.ip().to_string()) {
            names.push(addr.ip().to_string());
        }
    }
    names
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
        names(&ctx.exec.rt.node_name, &opts.listen),
        ctx.exec.rt.layout.pki_dir(),
        Arc::new(node),
        reviewer,
    )
    .await?)
}
