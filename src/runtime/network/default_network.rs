//! A network out of the box for a standalone node: a `bridge` on `layerlet0` with
//! `host-local` addresses from the pod CIDR (kept under layerlet's data root, so they are
//! layerlet's and visible), traffic that leaves the node masqueraded (one node-wide rule per
//! subnet, see `masquerade`), plus `portmap` for
//! host ports. The pod's loopback is brought up by the sandbox itself. A config in the conf
//! dir always wins over this one.

use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

use super::config::{find_config_file, load_config_file, parse_config, NetworkConfig};
use super::error::NetworkError;
use crate::sys::fs::{atomic_write, FsError};

/// Not podman's 10.88.0.0/16, so the two can share a machine.
pub const DEFAULT_POD_CIDR: &str = "10.89.0.0/16";
pub const DEFAULT_BRIDGE: &str = "layerlet0";
pub const DEFAULT_NETWORK_NAME: &str = "layerlet";
pub const DEFAULT_CNI_VERSION: &str = "1.0.0";

/// A pod subnet: a network address and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl PodCidr {
    /// Parses `10.89.0.0/16` or `fd00:89::/64`; host bits must be zero and the subnet must
    /// hold at least a gateway and one pod.
    pub fn parse(text: &str) -> Result<PodCidr, NetworkError> {
        let invalid = |reason: &str| NetworkError::InvalidInput {
            field: "pod CIDR".into(),
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| invalid("expected an address/prefix such as 10.89.0.0/16"))?;
        let network: IpAddr = addr.parse().map_err(|_| invalid("not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("the prefix is not a number"))?;
        let (bits, largest) = match network {
            IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 30),
            IpAddr::V6(a) => (u128::from(a), 126),
        };
        if prefix > largest {
            return Err(invalid(&format!(
                "too small for pods: use a prefix of at most /{largest}"
            )));
        }
        // An IPv4 address sits in the top 32 bits, so one mask works for both families.
        let host_mask = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
        if bits & host_mask != 0 {
            return Err(invalid("host bits are set: give the network address"));
        }
        Ok(PodCidr { network, prefix })
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[derive(Serialize)]
struct ConfList<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    name: &'a str,
    plugins: (BridgePlugin<'a>, PortmapPlugin<'a>),
}

#[derive(Serialize)]
struct BridgePlugin<'a> {
    #[serde(rename = "type")]
    plugin_type: &'a str,
    bridge: &'a str,
    #[serde(rename = "isGateway")]
    is_gateway: bool,
    #[serde(rename = "ipMasq")]
    ip_masq: bool,
    #[serde(rename = "hairpinMode")]
    hairpin_mode: bool,
    /// A new subnet (the Node's pod CIDR) moves the gateway instead of failing on the old
    /// one; subnets change only while no pod is attached (see `subnets`).
    #[serde(rename = "forceAddress")]
    force_address: bool,
    ipam: HostLocal<'a>,
}

#[derive(Serialize)]
struct HostLocal<'a> {
    #[serde(rename = "type")]
    plugin_type: &'a str,
    ranges: Vec<[Range; 1]>,
    routes: Vec<IpamRoute>,
    #[serde(rename = "dataDir")]
    data_dir: &'a Path,
}

#[derive(Serialize)]
struct Range {
    subnet: String,
}

#[derive(Serialize)]
struct IpamRoute {
    dst: &'static str,
}

#[derive(Serialize)]
struct PortmapPlugin<'a> {
    #[serde(rename = "type")]
    plugin_type: &'a str,
    capabilities: PortmapCapabilities,
    snat: bool,
}

#[derive(Serialize)]
struct PortmapCapabilities {
    #[serde(rename = "portMappings")]
    port_mappings: bool,
}

/// The default conflist for `cidrs` (one per IP family), with host-local's store in
/// `ipam_dir` (allocations land in `ipam_dir/layerlet/`).
pub fn default_conflist(cidrs: &[PodCidr], ipam_dir: &Path) -> Vec<u8> {
    let routes = cidrs
        .iter()
        .map(|c| IpamRoute {
            dst: if c.network.is_ipv4() {
                "0.0.0.0/0"
            } else {
                "::/0"
            },
        })
        .collect();
    let list = ConfList {
        cni_version: DEFAULT_CNI_VERSION,
        name: DEFAULT_NETWORK_NAME,
        plugins: (
            BridgePlugin {
                plugin_type: "bridge",
                bridge: DEFAULT_BRIDGE,
                is_gateway: true,
                // One rule per subnet for the node instead (see `masquerade`).
                ip_masq: false,
                hairpin_mode: true,
                force_address: true,
                ipam: HostLocal {
                    plugin_type: "host-local",
                    ranges: cidrs
                        .iter()
                        .map(|c| {
                            [Range {
                                subnet: c.to_string(),
                            }]
                        })
                        .collect(),
                    routes,
                    data_dir: ipam_dir,
                },
            },
            PortmapPlugin {
                plugin_type: "portmap",
                capabilities: PortmapCapabilities {
                    port_mappings: true,
                },
                snat: true,
            },
        ),
    };
    // Plain structs of strings and bools always serialize.
    let mut bytes = serde_json::to_vec_pretty(&list).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The node's network: the conf dir's own config when it has one; otherwise the default,
/// written (atomically) to `default_file` so people and `inspect` can read what is used.
pub fn choose_network(
    conf_dir: &Path,
    default_file: &Path,
    cidrs: &[PodCidr],
    ipam_dir: &Path,
) -> Result<NetworkConfig, NetworkError> {
    if let Some(file) = find_config_file(conf_dir)? {
        return load_config_file(&file);
    }
    let bytes = default_conflist(cidrs, ipam_dir);
    if let Some(dir) = default_file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| FsError::io("create", dir, e))?;
    }
    if std::fs::read(default_file).ok().as_deref() != Some(&bytes[..]) {
        atomic_write(default_file, &bytes)?;
    }
    parse_config(default_file, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn pod_cidrs_must_be_network_addresses_with_room_for_pods() {
        assert_eq!(
            PodCidr::parse("10.89.0.0/16").unwrap().to_string(),
            "10.89.0.0/16"
        );
        assert_eq!(
            PodCidr::parse("fd00:89::/64").unwrap().to_string(),
            "fd00:89::/64"
        );
        assert!(PodCidr::parse("10.0.0.0/30").is_ok());
        let cases: &[(&str, &str)] = &[
            (
                "10.89.0.0",
                "expected an address/prefix such as 10.89.0.0/16",
            ),
            ("10.89.0/16", "not an IP address"),
            ("10.89.0.0/x", "the prefix is not a number"),
            (
                "10.89.0.1/16",
                "host bits are set: give the network address",
            ),
            (
                "10.89.0.0/31",
                "too small for pods: use a prefix of at most /30",
            ),
            ("fd00::1/64", "host bits are set: give the network address"),
            (
                "fd00::/127",
                "too small for pods: use a prefix of at most /126",
            ),
        ];
        for (text, reason) in cases {
            let err = PodCidr::parse(text).unwrap_err().to_string();
            assert_eq!(err, format!("pod CIDR {text:?}: {reason}"));
        }
        assert!(PodCidr::parse("0.0.0.0/0").is_ok());
    }

    #[test]
    fn the_default_network_is_a_bridge_with_host_local_and_portmap() {
        let cidr = PodCidr::parse(DEFAULT_POD_CIDR).unwrap();
        let bytes = default_conflist(&[cidr], Path::new("/var/lib/layerlet/cni/ipam"));
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!({
                "cniVersion": "1.0.0",
                "name": "layerlet",
                "plugins": [
                    {
                        "type": "bridge", "bridge": "layerlet0",
                        "isGateway": true, "ipMasq": false, "hairpinMode": true, "forceAddress": true,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": "10.89.0.0/16"}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": "/var/lib/layerlet/cni/ipam"
                        }
                    },
                    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
                ]
            })
        );
        let net = parse_config(Path::new("/d/layerlet.conflist"), &bytes).unwrap();
        assert_eq!(net.plugins[1].capabilities.len(), 1);
    }

    #[test]
    fn a_dual_stack_default_has_a_range_and_route_per_family() {
        let cidrs = [
            PodCidr::parse("10.89.0.0/16").unwrap(),
            PodCidr::parse("fd00:89::/64").unwrap(),
        ];
        let value: Value =
            serde_json::from_slice(&default_conflist(&cidrs, Path::new("/i"))).unwrap();
        let ipam = &value["plugins"][0]["ipam"];
        assert_eq!(
            ipam["ranges"],
            json!([[{"subnet": "10.89.0.0/16"}], [{"subnet": "fd00:89::/64"}]])
        );
        assert_eq!(
            ipam["routes"],
            json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
        );
    }

    #[test]
    fn a_config_in_the_conf_dir_wins_over_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let conf_dir = dir.path().join("net.d");
        let default_file = dir.path().join("root/cni/layerlet.conflist");
        let cidrs = [PodCidr::parse(DEFAULT_POD_CIDR).unwrap()];
        let ipam = dir.path().join("root/cni/ipam");

        let net = choose_network(&conf_dir, &default_file, &cidrs, &ipam).unwrap();
        assert_eq!(net.name, DEFAULT_NETWORK_NAME);
        assert_eq!(net.file, default_file);
        assert_eq!(
            std::fs::read(&default_file).unwrap(),
            default_conflist(&cidrs, &ipam)
        );

        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::write(
            conf_dir.join("10-kindnet.conflist"),
            r#"{"cniVersion":"0.4.0","name":"kindnet","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        let net = choose_network(&conf_dir, &default_file, &cidrs, &ipam).unwrap();
        assert_eq!(net.name, "kindnet");
        assert_eq!(net.file, conf_dir.join("10-kindnet.conflist"));
    }
}
