//! Registers this node with the API server and keeps it alive, as kubelet does: a Node object
//! (created if missing, tainted so that the scheduler sends it only pods that tolerate
//! layerlet), a Ready condition re-posted every [`STATUS_PERIOD`], and a Lease in
//! `kube-node-lease` renewed every [`LEASE_PERIOD`]. Without them the node controller marks
//! the node unreachable and the pods bound to it are evicted and garbage collected.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

use crate::pod::downward::NodeInfo;

pub const LEASE_PERIOD: Duration = Duration::from_secs(10);
pub const STATUS_PERIOD: Duration = Duration::from_secs(60);
const LEASE_DURATION_SECONDS: i32 = 40;
/// Pods must tolerate this taint to be scheduled here.
pub const TAINT_KEY: &str = "layerlet.io/agent";

fn now() -> String {
    crate::time::format_rfc3339_nano(std::time::SystemTime::now())
}

/// Pure: the Node object for this node.
pub fn node_object(node: &NodeInfo) -> serde_json::Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.node_name,
            "labels": {
                "kubernetes.io/hostname": node.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "node.kubernetes.io/instance-type": "layerlet",
            },
        },
        "spec": {"taints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]},
    })
}

/// Pure: the status this node posts (capacity from the machine, Ready while the agent runs).
pub fn node_status(node: &NodeInfo, heartbeat: &str) -> serde_json::Value {
    let capacity = json!({
        "cpu": format!("{}m", node.cpu_millis),
        "memory": node.memory.to_string(),
        "ephemeral-storage": node.ephemeral_storage.to_string(),
        "pods": "110",
    });
    json!({
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "layerlet is posting ready status",
                "lastHeartbeatTime": heartbeat,
            }],
            "addresses": [
                {"type": "InternalIP", "address": node.host_ip},
                {"type": "Hostname", "address": node.node_name},
            ],
            "nodeInfo": {
                "kubeletVersion": concat!("layerlet-", env!("CARGO_PKG_VERSION")),
                "containerRuntimeVersion": concat!("layerlet://", env!("CARGO_PKG_VERSION")),
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH,
                "kernelVersion": "", "osImage": "", "machineID": "", "systemUUID": "",
                "bootID": "", "kubeProxyVersion": "",
            },
        }
    })
}

/// Registers the node, then renews its lease and status for ever (until the task is
/// aborted). Failures are logged once each and retried at the next period.
pub async fn keep_registered(client: Client, node: NodeInfo) {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let mut registered = false;
    let mut last_status: Option<tokio::time::Instant> = None;
    let mut last_error = String::new();
    let mut tick = tokio::time::interval(LEASE_PERIOD);
    loop {
        tick.tick().await;
        let result: Result<(), kube::Error> = async {
            if !registered {
                if nodes.get_opt(&node.node_name).await?.is_none() {
                    let object: Node = serde_json::from_value(node_object(&node))
                        .map_err(kube::Error::SerdeError)?;
                    nodes.create(&PostParams::default(), &object).await?;
                    tracing::info!(node = %node.node_name, "registered the node with the API server");
                }
                registered = true;
            }
            if last_status.is_none_or(|t| t.elapsed() >= STATUS_PERIOD) {
                nodes
                    .patch_status(
                        &node.node_name,
                        &PatchParams::default(),
                        &Patch::Merge(&node_status(&node, &now())),
                    )
                    .await?;
                last_status = Some(tokio::time::Instant::now());
            }
            renew_lease(&leases, &node.node_name).await
        }
        .await;
        match result {
            Ok(()) => last_error.clear(),
            Err(e) => {
                let text = e.to_string();
                if text != last_error {
                    tracing::warn!(node = %node.node_name, error = %text, "node heartbeat failed; retrying");
                    last_error = text;
                }
            }
        }
    }
}

async fn renew_lease(leases: &Api<Lease>, name: &str) -> Result<(), kube::Error> {
    let spec = json!({
        "holderIdentity": name,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
        "renewTime": now(),
    });
    match leases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": spec,
            }))
            .map_err(kube::Error::SerdeError)?;
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> NodeInfo {
        NodeInfo {
            node_name: "layerlet-n1".into(),
            host_ip: "10.0.0.5".into(),
            cpu_millis: 2000,
            memory: 4 << 30,
            ephemeral_storage: 10 << 30,
        }
    }

    #[test]
    fn the_node_object_and_status_are_valid_kubernetes_objects() {
        let mut object = node_object(&info());
        object["status"] = node_status(&info(), "2026-11-26T00:00:00Z")["status"].take();
        let node: Node = serde_json::from_value(object).unwrap();
        assert_eq!(node.metadata.name.as_deref(), Some("layerlet-n1"));
        let taint = &node.spec.unwrap().taints.unwrap()[0];
        assert_eq!(
            (taint.key.as_str(), taint.effect.as_str()),
            (TAINT_KEY, "NoSchedule")
        );
        let status = node.status.unwrap();
        let ready = &status.conditions.unwrap()[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "True")
        );
        assert_eq!(status.capacity.unwrap()["cpu"].0, "2000m");
        assert_eq!(status.addresses.unwrap()[0].address, "10.0.0.5");
    }
}
