//! Per-pod network counters as cAdvisor exports them: `container_network_*_total`, one series
//! per interface of the pod's network namespace, at pod level (`container=""`, `id` the pod's
//! cgroup), as kubelet's cAdvisor shows CRI pods. The accounting thread reads them; layerlet's
//! /metrics and the kubelet API's /metrics/cadvisor and Summary all show those same figures.

use std::path::Path;

use prometheus::proto::MetricFamily;

use super::family::Family;
use crate::runtime::network::netns::is_namespace_file;
use crate::runtime::network::{interface_counters, InterfaceCounters, NetworkError};

/// One pod's interfaces, as the accounting last read them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodNetwork {
    pub uid: String,
    pub namespace: String,
    pub pod: String,
    /// `/` + the pod's cgroup path (cAdvisor's `id` of pod-level series).
    pub cgroup: String,
    pub interfaces: Vec<InterfaceCounters>,
}

/// Interfaces cAdvisor leaves out of a container's network figures (its
/// `ignoredDevicePrefixes`, matched case-insensitively).
const IGNORED_PREFIXES: &[&str] = &["lo", "veth", "docker", "nerdctl"];

fn counted(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !IGNORED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// The counted interfaces of the network namespace pinned at `netns`; None when no namespace
/// is pinned there (a hostNetwork pod, whose traffic is the node's, or a pod being set up or
/// torn down). The namespace is joined by a thread of its own, never the caller's.
pub fn read_pod_interfaces(netns: &Path) -> Option<Result<Vec<InterfaceCounters>, NetworkError>> {
    if !is_namespace_file(netns) {
        return None;
    }
    Some(
        interface_counters(netns).map(|all| all.into_iter().filter(|i| counted(&i.name)).collect()),
    )
}

/// cAdvisor's labels of network series, as kubelet's /metrics/cadvisor has them.
const LABELS: &[&str] = &[
    "container",
    "id",
    "image",
    "interface",
    "name",
    "namespace",
    "pod",
];

/// The eight `container_network_*_total` families.
pub struct NetworkFamilies {
    families: [Family; 8],
}

impl Default for NetworkFamilies {
    fn default() -> Self {
        let c = |name: &str, help: &str| Family::counter(name, help, LABELS);
        NetworkFamilies {
            families: [
                c(
                    "container_network_receive_bytes_total",
                    "Cumulative count of bytes received",
                ),
                c(
                    "container_network_receive_packets_total",
                    "Cumulative count of packets received",
                ),
                c(
                    "container_network_receive_errors_total",
                    "Cumulative count of errors encountered while receiving",
                ),
                c(
                    "container_network_receive_packets_dropped_total",
                    "Cumulative count of packets dropped while receiving",
                ),
                c(
                    "container_network_transmit_bytes_total",
                    "Cumulative count of bytes transmitted",
                ),
                c(
                    "container_network_transmit_packets_total",
                    "Cumulative count of packets transmitted",
                ),
                c(
                    "container_network_transmit_errors_total",
                    "Cumulative count of errors encountered while transmitting",
                ),
                c(
                    "container_network_transmit_packets_dropped_total",
                    "Cumulative count of packets dropped while transmitting",
                ),
            ],
        }
    }
}

impl NetworkFamilies {
    pub fn descs(&self) -> impl Iterator<Item = &prometheus::core::Desc> {
        self.families.iter().map(|f| &f.desc)
    }

    /// The families, empty, in the order [`Self::add_pod`] fills them.
    pub fn start(&self) -> Vec<MetricFamily> {
        self.families.iter().map(Family::start).collect()
    }

    /// One pod's series, into `out` from [`Self::start`]; `cgroup` is cAdvisor's `id`.
    pub fn add_pod(
        &self,
        out: &mut [MetricFamily],
        cgroup: &str,
        namespace: &str,
        pod: &str,
        interfaces: &[InterfaceCounters],
    ) {
        for i in interfaces {
            let labels = ["", cgroup, "", &i.name, "", namespace, pod];
            let values = [
                i.rx_bytes,
                i.rx_packets,
                i.rx_errors,
                i.rx_dropped,
                i.tx_bytes,
                i.tx_packets,
                i.tx_errors,
                i.tx_dropped,
            ];
            for ((family, mf), value) in self.families.iter().zip(out.iter_mut()).zip(values) {
                family.add(mf, &labels, value as f64);
            }
        }
    }

    /// The series of the accounting's pods.
    pub fn collect(&self, pods: &[PodNetwork]) -> Vec<MetricFamily> {
        let mut out = self.start();
        for p in pods {
            self.add_pod(&mut out, &p.cgroup, &p.namespace, &p.pod, &p.interfaces);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodNetwork {
        PodNetwork {
            uid: "u-1".into(),
            namespace: "default".into(),
            pod: "web".into(),
            cgroup: "/layerlet/abc/u-1".into(),
            interfaces: vec![InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 10,
                rx_packets: 2,
                rx_errors: 3,
                rx_dropped: 4,
                tx_bytes: 50,
                tx_packets: 6,
                tx_errors: 7,
                tx_dropped: 8,
            }],
        }
    }

    #[test]
    fn each_counter_is_a_pod_level_series_with_cadvisors_labels() {
        let families = NetworkFamilies::default().collect(&[pod()]);
        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let labels = r#"{container="",id="/layerlet/abc/u-1",image="",interface="eth0",name="",namespace="default",pod="web"}"#;
        for (name, value) in [
            ("receive_bytes", 10),
            ("receive_packets", 2),
            ("receive_errors", 3),
            ("receive_packets_dropped", 4),
            ("transmit_bytes", 50),
            ("transmit_packets", 6),
            ("transmit_errors", 7),
            ("transmit_packets_dropped", 8),
        ] {
            let line = format!("container_network_{name}_total{labels} {value}\n");
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn loopback_and_host_side_interfaces_are_not_counted_as_cadvisor_does() {
        assert!(counted("eth0"));
        assert!(counted("net1"));
        for name in ["lo", "veth1234", "docker0", "Docker1", "nerdctl0"] {
            assert!(!counted(name), "{name}");
        }
    }

    #[test]
    fn only_a_pinned_namespace_is_read() {
        assert!(read_pod_interfaces(Path::new("/nonexistent/ns/net")).is_none());
        // This process's own namespace: loopback is there, and left out.
        let own = read_pod_interfaces(Path::new("/proc/self/ns/net"))
            .unwrap()
            .unwrap();
        assert!(own.iter().all(|i| i.name != "lo"), "{own:?}");
    }
}
