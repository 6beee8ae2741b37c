//! The runtime side of a plugin's config (`runtimeConfig`): port mappings, bandwidth and DNS
//! of one pod, built from plain values, and given to each plugin only for the capabilities
//! it declares, as libcni does.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::NetworkError;
use crate::pod::quantity::parse_bytes;

pub const INGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
pub const EGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// Everything a pod asks of the network at attach time; each field is one CNI capability.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    #[serde(
        rename = "portMappings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// The `portMappings` capability, as the portmap plugin reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// The `bandwidth` capability: rates in bits per second, bursts in bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bandwidth {
    #[serde(rename = "ingressRate", default, skip_serializing_if = "is_zero")]
    pub ingress_rate: u64,
    #[serde(rename = "ingressBurst", default, skip_serializing_if = "is_zero")]
    pub ingress_burst: u64,
    #[serde(rename = "egressRate", default, skip_serializing_if = "is_zero")]
    pub egress_rate: u64,
    #[serde(rename = "egressBurst", default, skip_serializing_if = "is_zero")]
    pub egress_burst: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The `dns` capability.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl RuntimeConfig {
    /// The `runtimeConfig` object for a plugin declaring `capabilities`: only what it
    /// declared and the pod asks for; None when that is nothing.
    pub fn for_capabilities(&self, capabilities: &BTreeSet<String>) -> Option<Map<String, Value>> {
        let Ok(Value::Object(all)) = serde_json::to_value(self) else {
            return None;
        };
        let picked: Map<String, Value> = all
            .into_iter()
            .filter(|(k, _)| capabilities.contains(k))
            .collect();
        (!picked.is_empty()).then_some(picked)
    }
}

/// One container port of a pod with a host port, as the pod spec says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortInput<'a> {
    pub container_port: u16,
    /// 0 (no host port) is skipped, as kubelet does.
    pub host_port: u16,
    /// `TCP`, `UDP` or `SCTP`; empty means TCP.
    pub protocol: &'a str,
    pub host_ip: Option<&'a str>,
}

/// The portmap plugin's `portMappings` from the pod's ports that ask for a host port.
pub fn port_mappings(ports: &[HostPortInput<'_>]) -> Result<Vec<PortMapping>, NetworkError> {
    let mut out = Vec::new();
    for port in ports.iter().filter(|p| p.host_port != 0) {
        let protocol = match port.protocol {
            "" | "TCP" => "tcp",
            "UDP" => "udp",
            "SCTP" => "sctp",
            other => {
                return Err(NetworkError::InvalidInput {
                    field: format!("hostPort {} protocol", port.host_port),
                    value: other.to_string(),
                    reason: "expected TCP, UDP or SCTP".into(),
                })
            }
        };
        let host_ip = match port.host_ip.filter(|ip| !ip.is_empty()) {
            None => None,
            Some(ip) => {
                ip.parse::<IpAddr>()
                    .map_err(|_| NetworkError::InvalidInput {
                        field: format!("hostPort {} hostIP", port.host_port),
                        value: ip.to_string(),
                        reason: "not an IP address".into(),
                    })?;
                Some(ip.to_string())
            }
        };
        out.push(PortMapping {
            host_port: port.host_port,
            container_port: port.container_port,
            protocol: protocol.to_string(),
            host_ip,
        });
    }
    Ok(out)
}

/// Kubernetes' bounds on a bandwidth annotation: 1 kbit/s to 1 Pbit/s.
const MIN_BANDWIDTH: u64 = 1_000;
const MAX_BANDWIDTH: u64 = 1_000_000_000_000_000;
/// No burst limit, as containerd and CRI-O give the plugin.
const UNLIMITED_BURST: u64 = u32::MAX as u64;

/// The bandwidth plugin's rates from the pod's `kubernetes.io/ingress-bandwidth` and
/// `kubernetes.io/egress-bandwidth` annotations: quantities of bits per second (`10M`).
pub fn bandwidth(
    ingress: Option<&str>,
    egress: Option<&str>,
) -> Result<Option<Bandwidth>, NetworkError> {
    let ingress_rate = ingress
        .map(|v| bits_per_second(INGRESS_BANDWIDTH_ANNOTATION, v))
        .transpose()?;
    let egress_rate = egress
        .map(|v| bits_per_second(EGRESS_BANDWIDTH_ANNOTATION, v))
        .transpose()?;
    if ingress_rate.is_none() && egress_rate.is_none() {
        return Ok(None);
    }
    let burst = |rate: Option<u64>| rate.map_or(0, |_| UNLIMITED_BURST);
    Ok(Some(Bandwidth {
        ingress_rate: ingress_rate.unwrap_or(0),
        ingress_burst: burst(ingress_rate),
        egress_rate: egress_rate.unwrap_or(0),
        egress_burst: burst(egress_rate),
    }))
}

fn bits_per_second(annotation: &str, value: &str) -> Result<u64, NetworkError> {
    let invalid = |reason: String| NetworkError::InvalidInput {
        field: format!("annotation {annotation}"),
        value: value.to_string(),
        reason,
    };
    let bits = parse_bytes(value).map_err(|e| {
        invalid(format!(
            "{}; expected bits per second as a quantity, e.g. 10M or 1G",
            e.reason
        ))
    })?;
    if bits < MIN_BANDWIDTH {
        return Err(invalid(
            "below 1k (1 kbit/s), the smallest rate Kubernetes allows".into(),
        ));
    }
    if bits > MAX_BANDWIDTH {
        return Err(invalid(
            "above 1P (1 Pbit/s), the largest rate Kubernetes allows".into(),
        ));
    }
    Ok(bits)
}

/// The `dns` capability from the pod's resolver settings; None when all are empty.
pub fn dns(servers: &[String], searches: &[String], options: &[String]) -> Option<Dns> {
    let dns = Dns {
        servers: servers.to_vec(),
        searches: searches.to_vec(),
        options: options.to_vec(),
    };
    (dns != Dns::default()).then_some(dns)
}

/// A pod with one TCP host port, for tests.
#[cfg(test)]
pub(crate) fn one_tcp_host_port(container_port: u16, host_port: u16) -> RuntimeConfig {
    let ports = [HostPortInput {
        container_port,
        host_port,
        protocol: "TCP",
        host_ip: None,
    }];
    RuntimeConfig {
        port_mappings: port_mappings(&ports).unwrap_or_default(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_ports_become_port_mappings_and_ports_without_one_are_skipped() {
        let ports = [
            HostPortInput {
                container_port: 80,
                host_port: 8080,
                protocol: "TCP",
                host_ip: None,
            },
            HostPortInput {
                container_port: 53,
                host_port: 5353,
                protocol: "UDP",
                host_ip: Some("10.0.0.1"),
            },
            HostPortInput {
                container_port: 9090,
                host_port: 0,
                protocol: "",
                host_ip: None,
            },
        ];
        let mappings = port_mappings(&ports).unwrap();
        assert_eq!(
            serde_json::to_value(&mappings).unwrap(),
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "10.0.0.1"}
            ])
        );
    }

    #[test]
    fn port_mappings_refuse_unknown_protocols_and_bad_host_ips() {
        let mut port = HostPortInput {
            container_port: 80,
            host_port: 8080,
            protocol: "ICMP",
            host_ip: None,
        };
        let err = port_mappings(&[port.clone()]).unwrap_err().to_string();
        assert_eq!(
            err,
            "hostPort 8080 protocol \"ICMP\": expected TCP, UDP or SCTP"
        );
        port.protocol = "TCP";
        port.host_ip = Some("node-1");
        let err = port_mappings(&[port]).unwrap_err().to_string();
        assert_eq!(err, "hostPort 8080 hostIP \"node-1\": not an IP address");
    }

    #[test]
    fn bandwidth_annotations_are_bits_per_second_with_an_unlimited_burst() {
        assert_eq!(bandwidth(None, None).unwrap(), None);
        let bw = bandwidth(Some("10M"), Some("1.5k")).unwrap().unwrap();
        assert_eq!(
            bw,
            Bandwidth {
                ingress_rate: 10_000_000,
                ingress_burst: 4_294_967_295,
                egress_rate: 1_500,
                egress_burst: 4_294_967_295,
            }
        );
        let only_egress = bandwidth(None, Some("1Gi")).unwrap().unwrap();
        assert_eq!(
            serde_json::to_value(only_egress).unwrap(),
            json!({"egressRate": 1_073_741_824u64, "egressBurst": 4_294_967_295u64})
        );
    }

    #[test]
    fn bandwidth_out_of_kubernetes_bounds_or_malformed_is_refused() {
        let err = bandwidth(Some("999"), None).unwrap_err().to_string();
        assert_eq!(
            err,
            "annotation kubernetes.io/ingress-bandwidth \"999\": below 1k (1 kbit/s), the \
             smallest rate Kubernetes allows"
        );
        let err = bandwidth(None, Some("2P")).unwrap_err().to_string();
        assert!(err.contains("above 1P"), "{err}");
        let err = bandwidth(None, Some("10Mbit")).unwrap_err().to_string();
        assert_eq!(
            err,
            "annotation kubernetes.io/egress-bandwidth \"10Mbit\": unknown suffix \"Mbit\"; \
             expected bits per second as a quantity, e.g. 10M or 1G"
        );
    }

    #[test]
    fn a_plugin_gets_only_the_capabilities_it_declares() {
        let rc = RuntimeConfig {
            dns: dns(&["10.96.0.10".into()], &["svc.cluster.local".into()], &[]),
            ..one_tcp_host_port(80, 8080)
        };
        assert_eq!(rc.for_capabilities(&caps(&[])), None);
        assert_eq!(rc.for_capabilities(&caps(&["bandwidth"])), None);
        assert_eq!(
            Value::Object(
                rc.for_capabilities(&caps(&["portMappings", "bandwidth"]))
                    .unwrap()
            ),
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
        );
        assert_eq!(
            Value::Object(rc.for_capabilities(&caps(&["dns", "ips"])).unwrap()),
            json!({"dns": {"servers": ["10.96.0.10"], "searches": ["svc.cluster.local"]}})
        );
    }

    #[test]
    fn empty_dns_settings_ask_nothing() {
        assert_eq!(dns(&[], &[], &[]), None);
        assert_eq!(
            dns(&[], &[], &["ndots:5".into()]).unwrap().options,
            ["ndots:5"]
        );
    }
}
