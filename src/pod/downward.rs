//! The downward API: pod fields and container resources as strings, the way kubelet renders
//! them for env (`fieldRef`, `resourceFieldRef`) and for downwardAPI volume files.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use super::spec::{ContainerSpec, PodSpec, ResourceFieldRef};

/// What the node knows that a pod may ask for. Capacity stands in for allocatable (this
/// node reserves nothing), which kubelet uses for a limit the container does not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub node_name: String,
    pub host_ip: String,
    pub cpu_millis: u64,
    /// Bytes.
    pub memory: u64,
    /// Bytes.
    pub ephemeral_storage: u64,
}

/// The pod's IPs: the node's with hostNetwork; else what CNI gave it, or, without a pod
/// network (loopback only), the 127.0.1.1 its /etc/hosts names it by.
pub fn pod_ips(pod: &PodSpec, node: &NodeInfo, attached: &[IpAddr]) -> Vec<String> {
    if pod.host_network {
        vec![node.host_ip.clone()]
    } else if attached.is_empty() {
        vec!["127.0.1.1".to_string()]
    } else {
        attached.iter().map(IpAddr::to_string).collect()
    }
}

fn subscript<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    path.strip_prefix(base)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// A `fieldRef` for env. A label or annotation the pod does not have is an empty value, as
/// in Kubernetes.
pub fn env_field(
    pod: &PodSpec,
    path: &str,
    node: &NodeInfo,
    attached: &[IpAddr],
) -> Result<String, String> {
    let value = match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "metadata.uid" => pod.uid.clone(),
        "spec.nodeName" => pod.node_name.clone().unwrap_or(node.node_name.clone()),
        "spec.serviceAccountName" => "default".into(),
        "status.hostIP" | "status.hostIPs" => node.host_ip.clone(),
        "status.podIP" => pod_ips(pod, node, attached).swap_remove(0),
        // The downward API joins the list with commas.
        "status.podIPs" => pod_ips(pod, node, attached).join(","),
        _ => {
            if let Some(key) = subscript(path, "metadata.labels") {
                pod.labels.get(key).cloned().unwrap_or_default()
            } else if let Some(key) = subscript(path, "metadata.annotations") {
                pod.annotations.get(key).cloned().unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath {path:?}"));
            }
        }
    };
    Ok(value)
}

/// A `fieldRef` of a downwardAPI volume file: whole label and annotation maps are allowed,
/// written as kubelet writes them.
pub fn volume_field(pod: &PodSpec, path: &str, node: &NodeInfo) -> Result<String, String> {
    match path {
        "metadata.labels" => Ok(format_map(&pod.labels)),
        "metadata.annotations" => Ok(format_map(&pod.annotations)),
        // Volume files may name metadata only: no pod IP is asked for here.
        _ => env_field(pod, path, node, &[]),
    }
}

/// Kubelet's rendering of a map: one `key="value"` line per entry, keys sorted, values
/// quoted as Go's `%q` does, no newline after the last line.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`: printable characters as they are, the rest escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `ceil(value / divisor)`, as Kubernetes rounds resource values up.
fn ceil_div(value: u64, divisor: u64) -> u64 {
    value.div_ceil(divisor.max(1))
}

/// A `resourceFieldRef` of `container`: a limit the container does not set is the node's
/// capacity; a request it does not set is 0. Rounded up to whole divisors.
pub fn resource_value(
    container: &ContainerSpec,
    r: &ResourceFieldRef,
    node: &NodeInfo,
) -> Result<String, String> {
    let limits = &container.resources.limits;
    let requests = &container.resources.requests;
    let value = match r.resource.as_str() {
        "limits.cpu" => limits.cpu_millis.unwrap_or(node.cpu_millis),
        "limits.memory" => limits.memory.unwrap_or(node.memory),
        "limits.ephemeral-storage" => limits.ephemeral_storage.unwrap_or(node.ephemeral_storage),
        "requests.cpu" => requests.cpu_millis.unwrap_or(0),
        "requests.memory" => requests.memory.unwrap_or(0),
        "requests.ephemeral-storage" => requests.ephemeral_storage.unwrap_or(0),
        other => return Err(format!("unsupported resource {other:?}")),
    };
    Ok(ceil_div(value, r.divisor).to_string())
}

/// The container a `resourceFieldRef` names (None: `own`).
pub fn resource_container<'a>(
    pod: &'a PodSpec,
    own: Option<&'a ContainerSpec>,
    r: &ResourceFieldRef,
) -> Result<&'a ContainerSpec, String> {
    match &r.container {
        None => own.ok_or_else(|| "containerName is required".to_string()),
        Some(name) => pod
            .all_containers()
            .find(|c| &c.name == name)
            .ok_or_else(|| format!("container {name:?} is not in this pod")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::pod_from_yaml_str;

    fn node() -> NodeInfo {
        NodeInfo {
            node_name: "node1".into(),
            host_ip: "10.0.0.1".into(),
            cpu_millis: 2000,
            memory: 8 << 30,
            ephemeral_storage: 100 << 30,
        }
    }

    fn pod(resources: &str) -> PodSpec {
        pod_from_yaml_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {{app: shop, tier: front}}\n  annotations: {{note: \"a\\nb\", q: 'say \"hi\"'}}\nspec:\n  containers:\n  - name: app\n    image: busybox\n{resources}"
        ))
        .unwrap()
    }

    fn r(resource: &str, divisor: u64) -> ResourceFieldRef {
        ResourceFieldRef {
            container: None,
            resource: resource.into(),
            divisor,
        }
    }

    #[test]
    fn resource_values_round_up_to_whole_divisors() {
        let spec = pod("    resources: {limits: {cpu: 250m, memory: 100Mi}, requests: {cpu: 100m, memory: 1001}}\n");
        let c = &spec.containers[0];
        let n = node();
        let value = |res: &str, div: u64| resource_value(c, &r(res, div), &n).unwrap();
        assert_eq!(
            value("limits.cpu", 1000),
            "1",
            "250m in whole cores rounds up"
        );
        assert_eq!(value("limits.cpu", 1), "250");
        assert_eq!(value("requests.cpu", 1), "100");
        assert_eq!(value("limits.memory", 1), "104857600");
        assert_eq!(value("limits.memory", 1 << 20), "100");
        assert_eq!(
            value("limits.memory", 1_000_000),
            "105",
            "104.8576 M rounds up"
        );
        assert_eq!(
            value("requests.memory", 1000),
            "2",
            "1001 bytes in k rounds up"
        );
    }

    #[test]
    fn unset_limits_are_the_node_capacity_and_unset_requests_zero() {
        let spec = pod("");
        let c = &spec.containers[0];
        let n = node();
        let value = |res: &str, div: u64| resource_value(c, &r(res, div), &n).unwrap();
        assert_eq!(value("limits.cpu", 1000), "2");
        assert_eq!(value("limits.memory", 1 << 30), "8");
        assert_eq!(value("limits.ephemeral-storage", 1 << 30), "100");
        assert_eq!(value("requests.cpu", 1), "0");
        assert_eq!(value("requests.memory", 1), "0");
    }

    #[test]
    fn fields_resolve_like_the_downward_api() {
        let spec = pod("");
        let n = node();
        assert_eq!(env_field(&spec, "metadata.name", &n, &[]).unwrap(), "web");
        assert_eq!(
            env_field(&spec, "metadata.namespace", &n, &[]).unwrap(),
            "default"
        );
        assert_eq!(env_field(&spec, "metadata.uid", &n, &[]).unwrap(), spec.uid);
        assert_eq!(env_field(&spec, "spec.nodeName", &n, &[]).unwrap(), "node1");
        assert_eq!(
            env_field(&spec, "status.hostIP", &n, &[]).unwrap(),
            "10.0.0.1"
        );
        assert_eq!(
            env_field(&spec, "status.podIP", &n, &[]).unwrap(),
            "127.0.1.1"
        );
        let attached: Vec<IpAddr> =
            vec!["10.89.0.4".parse().unwrap(), "fd00:89::4".parse().unwrap()];
        assert_eq!(
            env_field(&spec, "status.podIP", &n, &attached).unwrap(),
            "10.89.0.4"
        );
        assert_eq!(
            env_field(&spec, "status.podIPs", &n, &attached).unwrap(),
            "10.89.0.4,fd00:89::4"
        );
        assert_eq!(
            env_field(&spec, "metadata.labels['app']", &n, &[]).unwrap(),
            "shop"
        );
        assert_eq!(
            env_field(&spec, "metadata.labels['nope']", &n, &[]).unwrap(),
            ""
        );
        assert!(env_field(&spec, "spec.volumes", &n, &[]).is_err());
    }

    #[test]
    fn label_and_annotation_files_use_kubelets_quoted_format() {
        let spec = pod("");
        let n = node();
        assert_eq!(
            volume_field(&spec, "metadata.labels", &n).unwrap(),
            "app=\"shop\"\ntier=\"front\""
        );
        assert_eq!(
            volume_field(&spec, "metadata.annotations", &n).unwrap(),
            "note=\"a\\nb\"\nq=\"say \\\"hi\\\"\""
        );
        assert_eq!(go_quote("é\u{1}\t"), "\"é\\x01\\t\"");
    }
}
