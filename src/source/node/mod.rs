//! Registers this node with the API server and keeps it alive, as kubelet does: a Node object
//! (created if missing, tainted so that the scheduler sends it only pods that tolerate
//! layerlet), a Lease in `kube-node-lease` renewed every [`LEASE_PERIOD`] (a quarter of its
//! duration), and the node's status posted when it changes and at least every
//! [`heartbeat::STATUS_MAX_AGE`]. Without them the node controller marks the node
//! unreachable and the pods bound to it are evicted and garbage collected.

pub mod conditions;
pub mod heartbeat;
pub mod identity;
pub mod object;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use tokio::sync::mpsc;

use crate::pod::downward::NodeInfo;
use crate::runtime::network::pod::PodNetworking;
use crate::source::kube_events::{ApiEvent, Involved};
use conditions::NodeFigures;
use heartbeat::{status_due, ConditionBook};
use identity::HostIdentity;
pub use object::{node_object, node_status, StatusInput, TAINT_KEY};

pub const LEASE_PERIOD: Duration = Duration::from_secs(10);
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// What the node publishes besides its figures.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// `--max-pods`.
    pub max_pods: u32,
    /// The kubelet API's port, published as `daemonEndpoints.kubeletEndpoint`.
    pub kubelet_port: Option<u16>,
    /// Where the disk-pressure figures are read.
    pub data_root: PathBuf,
    /// Takes the Node's `spec.podCIDRs` for the default pod network.
    pub pod_network: Arc<PodNetworking>,
}

/// The pod CIDRs the control plane allocated to the node (`spec.podCIDRs`, or the older
/// single `spec.podCIDR`); empty until it has.
pub fn allocated_pod_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = &node.spec else {
        return Vec::new();
    };
    match (&spec.pod_cidrs, &spec.pod_cidr) {
        (Some(list), _) if !list.is_empty() => list.clone(),
        (_, Some(one)) if !one.is_empty() => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// Hands the node's allocated pod CIDRs to the pod network; true once they were seen (a
/// node's podCIDRs never change once set, so they are read until then only).
fn take_pod_cidrs(settings: &NodeSettings, node: &Node) -> bool {
    let cidrs = allocated_pod_cidrs(node);
    if cidrs.is_empty() {
        return false;
    }
    match settings.pod_network.use_node_pod_cidrs(&cidrs) {
        Ok(true) => {
            tracing::info!(pod_cidrs = %cidrs.join(","), "the default pod network uses the node's spec.podCIDRs")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(pod_cidrs = %cidrs.join(","), error = %e, "the node's spec.podCIDRs cannot be used; the default pod network keeps --pod-cidr")
        }
    }
    true
}

/// The Lease this node holds, renewed now. `MicroTime` serializes with exactly six
/// fractional digits, the only form the API server parses.
pub fn lease_object(node_name: &str, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node_name.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

fn node_event(node: &NodeInfo, kind: &str, reason: &str, message: String) -> ApiEvent {
    ApiEvent {
        involved: Involved::Node {
            name: node.node_name.clone(),
        },
        kind: kind.to_string(),
        reason: reason.to_string(),
        message,
        time: crate::time::format_rfc3339_nano(std::time::SystemTime::now()),
    }
}

/// Registers the node, then renews its lease and posts its status for ever (until the task
/// is aborted). While the API server is away: one warning, then one line when it is back.
pub async fn keep_registered(
    client: Client,
    node: NodeInfo,
    settings: NodeSettings,
    events: mpsc::Sender<ApiEvent>,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let identity = HostIdentity::read();
    let mut registered = false;
    let mut book = ConditionBook::default();
    let mut last_post: Option<tokio::time::Instant> = None;
    let mut told_ready = false;
    let mut failing = false;
    let mut cidrs_seen = false;
    let mut tick = tokio::time::interval(LEASE_PERIOD);
    loop {
        tick.tick().await;
        let now = Timestamp::now();
        let changed = book.update(
            conditions::verdicts(&NodeFigures::read(&settings.data_root)),
            now,
        );
        let result: Result<(), kube::Error> = async {
            if !registered {
                let object = match nodes.get_opt(&node.node_name).await? {
                    Some(existing) => existing,
                    None => {
                        let made = nodes.create(&PostParams::default(), &node_object(&node)).await?;
                        tracing::info!(node = %node.node_name, "registered the node with the API server");
                        made
                    }
                };
                cidrs_seen = take_pod_cidrs(&settings, &object);
                // A Node made moments ago (by this start, or by one whose answer was lost)
                // gets its CIDRs from the control plane just after: without them, pods wait
                // for the next read rather than take the flag's subnet for life.
                if cidrs_seen {
                    settings.pod_network.node_read();
                }
                registered = true;
                let _ = events.try_send(node_event(
                    &node,
                    "Normal",
                    "Starting",
                    "Starting layerlet.".to_string(),
                ));
            }
            else if !cidrs_seen {
                // The control plane allocates pod CIDRs just after the node registers.
                if let Some(object) = nodes.get_opt(&node.node_name).await? {
                    cidrs_seen = take_pod_cidrs(&settings, &object);
                }
                settings.pod_network.node_read();
            }
            if status_due(changed, last_post.map(|t| t.elapsed())) {
                let status = node_status(&StatusInput {
                    node: &node,
                    identity: &identity,
                    max_pods: settings.max_pods,
                    kubelet_port: settings.kubelet_port,
                    conditions: book.conditions(),
                    heartbeat: now,
                });
                let body = Node {
                    status: Some(status),
                    ..Default::default()
                };
                nodes
                    .patch_status(&node.node_name, &PatchParams::default(), &Patch::Merge(&body))
                    .await?;
                last_post = Some(tokio::time::Instant::now());
                if !told_ready {
                    told_ready = true;
                    let _ = events.try_send(node_event(
                        &node,
                        "Normal",
                        "NodeReady",
                        format!("Node {} status is now: NodeReady", node.node_name),
                    ));
                }
            }
            renew_lease(&leases, &node.node_name, now).await
        }
        .await;
        match result {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(node = %node.node_name, "node heartbeat reaches the API server again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(node = %node.node_name, error = %e, "node heartbeat failed; retrying every {}s", LEASE_PERIOD.as_secs());
            }
            Err(e) => {
                tracing::debug!(node = %node.node_name, error = %e, "node heartbeat still failing")
            }
        }
    }
}

async fn renew_lease(leases: &Api<Lease>, name: &str, now: Timestamp) -> Result<(), kube::Error> {
    let lease = lease_object(name, now);
    let renewal = Lease {
        metadata: ObjectMeta::default(),
        spec: lease.spec.clone(),
    };
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&renewal))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => leases
            .create(&PostParams::default(), &lease)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_pod_cidrs_come_from_pod_cidrs_or_the_older_single_field() {
        let node = |spec: serde_json::Value| -> Node {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n1"}, "spec": spec}))
                .unwrap()
        };
        assert!(allocated_pod_cidrs(&node(serde_json::json!({}))).is_empty());
        assert_eq!(
            allocated_pod_cidrs(&node(serde_json::json!({"podCIDR": "10.244.1.0/24"}))),
            ["10.244.1.0/24"]
        );
        assert_eq!(
            allocated_pod_cidrs(&node(serde_json::json!({
                "podCIDR": "10.244.1.0/24",
                "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"],
            }))),
            ["10.244.1.0/24", "fd00:10:244:1::/64"]
        );
    }

    #[test]
    fn a_lease_renewal_carries_renew_time_with_exactly_six_fractional_digits() {
        let now: Timestamp = "2026-12-04T17:17:22.668661377Z".parse().unwrap();
        let json = serde_json::to_value(lease_object("n1", now)).unwrap();
        assert_eq!(json["spec"]["renewTime"], "2026-12-04T17:17:22.668661Z");
        assert_eq!(json["spec"]["leaseDurationSeconds"], LEASE_DURATION_SECONDS);
        assert_eq!(json["spec"]["holderIdentity"], "n1");
        assert_eq!(json["metadata"]["namespace"], LEASE_NAMESPACE);
    }
}
