//! Host ports are the node's: two pods asking for the same one (same protocol, overlapping
//! host IP) cannot both have it. The scheduler keeps API pods apart by these rules; static
//! pods and API pods meet only here, so the node checks as the scheduler's NodePorts filter
//! does and refuses the later pod, naming the pod that holds the port.

use std::fmt;

use crate::pod::spec::{PodSpec, Protocol};

/// One port a pod takes on the node: its own hostPort, or with hostNetwork its
/// containerPort (which is then the host's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    protocol: Protocol,
    /// None: every address of the node.
    host_ip: Option<String>,
    port: u16,
}

impl HostPort {
    fn overlaps(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && match (&self.host_ip, &other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        };
        match &self.host_ip {
            Some(ip) => write!(f, "{protocol} {ip}:{}", self.port),
            None => write!(f, "{protocol} {}", self.port),
        }
    }
}

fn host_ports(pod: &PodSpec) -> Vec<HostPort> {
    pod.init_containers
        .iter()
        .chain(&pod.containers)
        .flat_map(|c| &c.ports)
        .filter_map(|p| {
            let port = match p.host_port.filter(|p| *p != 0) {
                Some(port) => port,
                None if pod.host_network => p.container_port,
                None => return None,
            };
            let host_ip = p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty() && ip != "0.0.0.0" && ip != "::");
            Some(HostPort {
                protocol: p.protocol,
                host_ip,
                port,
            })
        })
        .collect()
}

/// A pod refused because another holds one of its host ports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host port {port} is already taken by pod {holder}; pick another hostPort or remove one of the two pods")]
pub struct HostPortClash {
    pub port: String,
    pub holder: String,
}

/// The host ports pods hold, in the order they claimed them.
#[derive(Debug, Default)]
pub struct HostPortBook {
    held: Vec<(HostPort, String)>,
}

impl HostPortBook {
    /// Gives `pod` (named `key`) its host ports, all or none; a clash names the holder.
    pub fn claim(&mut self, key: &str, pod: &PodSpec) -> Result<(), HostPortClash> {
        let wanted = host_ports(pod);
        for port in &wanted {
            if let Some((_, holder)) = self
                .held
                .iter()
                .find(|(held, holder)| holder != key && held.overlaps(port))
            {
                return Err(HostPortClash {
                    port: port.to_string(),
                    holder: holder.clone(),
                });
            }
        }
        self.held
            .extend(wanted.into_iter().map(|p| (p, key.to_string())));
        Ok(())
    }

    /// Records ports a pod already running holds, even where they clash: it keeps running.
    pub fn hold(&mut self, key: &str, pod: &PodSpec) {
        self.held
            .extend(host_ports(pod).into_iter().map(|p| (p, key.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::pod_from_yaml_str;

    fn pod(name: &str, extra: &str, ports: &str) -> PodSpec {
        pod_from_yaml_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}  containers:\n  - name: app\n    image: x:1\n    ports: {ports}\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_second_pod_on_a_held_port_is_refused_naming_the_holder() {
        let mut book = HostPortBook::default();
        let first = pod("a", "", "[{containerPort: 80, hostPort: 8080}]");
        let second = pod("b", "", "[{containerPort: 81, hostPort: 8080}]");
        book.claim("default/a", &first).unwrap();
        let clash = book.claim("default/b", &second).unwrap_err();
        assert_eq!(clash.holder, "default/a");
        assert_eq!(clash.port, "TCP 8080");
        assert!(clash.to_string().contains("pod default/a"), "{clash}");
        // The same pod claiming again (an update) is no clash.
        book.claim("default/a", &first).unwrap();
    }

    #[test]
    fn protocol_and_distinct_host_ips_keep_ports_apart_but_a_wildcard_overlaps_all() {
        let mut book = HostPortBook::default();
        let tcp = pod(
            "a",
            "",
            "[{containerPort: 53, hostPort: 53, hostIP: 10.0.0.1}]",
        );
        book.claim("a", &tcp).unwrap();
        let udp = pod(
            "b",
            "",
            "[{containerPort: 53, hostPort: 53, protocol: UDP}]",
        );
        book.claim("b", &udp).unwrap();
        let other_ip = pod(
            "c",
            "",
            "[{containerPort: 53, hostPort: 53, hostIP: 10.0.0.2}]",
        );
        book.claim("c", &other_ip).unwrap();
        let wildcard = pod("d", "", "[{containerPort: 53, hostPort: 53}]");
        assert_eq!(book.claim("d", &wildcard).unwrap_err().holder, "a");
    }

    #[test]
    fn a_host_network_pod_takes_its_container_ports_and_pods_without_host_ports_take_none() {
        let mut book = HostPortBook::default();
        let host = pod("a", "  hostNetwork: true\n", "[{containerPort: 9100}]");
        book.claim("a", &host).unwrap();
        let plain = pod("b", "", "[{containerPort: 9100}]");
        book.claim("b", &plain).unwrap();
        let asks = pod("c", "", "[{containerPort: 1, hostPort: 9100}]");
        assert_eq!(book.claim("c", &asks).unwrap_err().holder, "a");
    }

    #[test]
    fn a_running_pod_keeps_its_ports_even_where_they_clash() {
        let mut book = HostPortBook::default();
        let a = pod("a", "", "[{containerPort: 80, hostPort: 8080}]");
        book.hold("a", &a);
        book.hold("b", &a);
        assert_eq!(book.claim("c", &a).unwrap_err().holder, "a");
    }
}
