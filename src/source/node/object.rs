//! Pure: the Node object and the status this node posts, built from k8s-openapi types so
//! that every time field serializes in the API's own format.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::conditions::Verdict;
use super::identity::HostIdentity;
use crate::pod::downward::NodeInfo;

/// Pods must tolerate this taint to be scheduled here.
pub const TAINT_KEY: &str = "layerlet.io/agent";

/// Kubernetes' name for the machine's architecture (`GOARCH`), as the node label and
/// `nodeInfo.architecture` both say it.
pub fn kubernetes_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// The Node object this node registers.
pub fn node_object(node: &NodeInfo) -> Node {
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), node.node_name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            kubernetes_arch().to_string(),
        ),
        (
            "node.kubernetes.io/instance-type".to_string(),
            "layerlet".to_string(),
        ),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(node.node_name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(vec![Taint {
                key: TAINT_KEY.to_string(),
                value: Some("true".to_string()),
                effect: "NoSchedule".to_string(),
                time_added: None,
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// A condition as posted: its verdict, and since when it has held its current status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedCondition {
    pub verdict: Verdict,
    pub since: Timestamp,
}

/// What a status is made of besides the node's figures.
pub struct StatusInput<'a> {
    pub node: &'a NodeInfo,
    pub identity: &'a HostIdentity,
    pub max_pods: u32,
    /// Where the kubelet API listens, when it does.
    pub kubelet_port: Option<u16>,
    pub conditions: &'a [PostedCondition],
    pub heartbeat: Timestamp,
}

/// The node's status: capacity, conditions, addresses, daemon endpoints and system info.
pub fn node_status(input: &StatusInput<'_>) -> NodeStatus {
    let node = input.node;
    let capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity(format!("{}m", node.cpu_millis))),
        ("memory".to_string(), Quantity(node.memory.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(node.ephemeral_storage.to_string()),
        ),
        ("pods".to_string(), Quantity(input.max_pods.to_string())),
    ]);
    let conditions = input
        .conditions
        .iter()
        .map(|c| NodeCondition {
            type_: c.verdict.kind.to_string(),
            status: if c.verdict.holds { "True" } else { "False" }.to_string(),
            reason: Some(c.verdict.reason.to_string()),
            message: Some(c.verdict.message.to_string()),
            last_heartbeat_time: Some(Time(input.heartbeat)),
            last_transition_time: Some(Time(c.since)),
        })
        .collect();
    let identity = input.identity;
    NodeStatus {
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_string(),
                address: node.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".to_string(),
                address: node.node_name.clone(),
            },
        ]),
        daemon_endpoints: input.kubelet_port.map(|port| NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: port.into() }),
        }),
        node_info: Some(NodeSystemInfo {
            kubelet_version: concat!("layerlet-", env!("CARGO_PKG_VERSION")).to_string(),
            container_runtime_version: concat!("layerlet://", env!("CARGO_PKG_VERSION"))
                .to_string(),
            operating_system: "linux".to_string(),
            architecture: kubernetes_arch().to_string(),
            kernel_version: identity.kernel_version.clone(),
            os_image: identity.os_image.clone(),
            machine_id: identity.machine_id.clone(),
            system_uuid: identity.system_uuid.clone(),
            boot_id: identity.boot_id.clone(),
            kube_proxy_version: String::new(),
            swap: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::node::conditions::{verdicts, NodeFigures};

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
    fn the_node_object_and_status_are_what_kubelet_posts() {
        let node = node_object(&info());
        assert_eq!(node.metadata.name.as_deref(), Some("layerlet-n1"));
        let taint = &node.spec.unwrap().taints.unwrap()[0];
        assert_eq!(
            (taint.key.as_str(), taint.effect.as_str()),
            (TAINT_KEY, "NoSchedule")
        );
        let since: Timestamp = "2026-12-05T10:00:00.123456789Z".parse().unwrap();
        let heartbeat: Timestamp = "2026-12-05T10:05:00.987654321Z".parse().unwrap();
        let conditions: Vec<_> = verdicts(&NodeFigures::default())
            .into_iter()
            .map(|verdict| PostedCondition { verdict, since })
            .collect();
        let status = node_status(&StatusInput {
            node: &info(),
            identity: &HostIdentity::default(),
            max_pods: 42,
            kubelet_port: Some(10250),
            conditions: &conditions,
            heartbeat,
        });
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["capacity"]["pods"], "42");
        assert_eq!(json["capacity"]["cpu"], "2000m");
        assert_eq!(
            json["addresses"][0],
            serde_json::json!({"type": "InternalIP", "address": "10.0.0.5"})
        );
        assert_eq!(json["addresses"][1]["type"], "Hostname");
        assert_eq!(json["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(json["nodeInfo"]["architecture"], "amd64");
        }
        let ready = &json["conditions"][3];
        assert_eq!(
            (ready["type"].as_str(), ready["status"].as_str()),
            (Some("Ready"), Some("True"))
        );
        // Time is RFC 3339 in whole seconds.
        assert_eq!(ready["lastTransitionTime"], "2026-12-05T10:00:00Z");
        assert_eq!(ready["lastHeartbeatTime"], "2026-12-05T10:05:00Z");
    }
}
