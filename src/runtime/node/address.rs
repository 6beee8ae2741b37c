//! The node's own address, chosen as kubelet chooses it: `--node-ip` when given (it must be
//! an address of this host), else an address of the interface that carries the default
//! route, else an address the host name resolves to. Only when none of those exists (an
//! offline machine) is it loopback. The API server sends `kubectl logs/exec/port-forward`
//! to this address, and pods see it as `status.hostIP`.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

#[derive(Debug, thiserror::Error)]
pub enum NodeAddressError {
    #[error("--node-ip {ip}: not an address of any interface of this host (have: {have}); pass one of them, or leave --node-ip out to use the default route's interface")]
    NotOnThisHost { ip: IpAddr, have: String },
}

/// Where the chosen address came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressOrigin {
    Flag,
    DefaultRoute { interface: String },
    HostName,
    Loopback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    pub ip: IpAddr,
    pub origin: AddressOrigin,
}

/// What the choice is made from, read from the host by [`HostAddresses::read`].
#[derive(Debug, Clone, Default)]
pub struct HostAddresses {
    /// Every (interface, address) of this network namespace.
    pub interfaces: Vec<(String, IpAddr)>,
    /// The interface of the IPv4 default route with the lowest metric.
    pub default_route_interface: Option<String>,
    /// What the host name resolves to; asked only when nothing above gave an address
    /// (resolving may query DNS).
    pub host_name: Option<Vec<IpAddr>>,
}

/// An address another machine could reach: not loopback, link-local, unspecified or
/// multicast.
fn routable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_multicast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Pure: the node's address from the flag and what the host has. IPv4 first, as kubelet
/// prefers for a single-stack choice. `resolve_host_name` is called only when neither the
/// flag nor the default route gives one.
pub fn choose(
    flag: Option<IpAddr>,
    host: &HostAddresses,
    resolve_host_name: impl FnOnce() -> Vec<IpAddr>,
) -> Result<NodeAddress, NodeAddressError> {
    if let Some(ip) = flag {
        if !host.interfaces.iter().any(|(_, have)| *have == ip) {
            let have: Vec<String> = host.interfaces.iter().map(|(_, a)| a.to_string()).collect();
            return Err(NodeAddressError::NotOnThisHost {
                ip,
                have: have.join(", "),
            });
        }
        return Ok(NodeAddress {
            ip,
            origin: AddressOrigin::Flag,
        });
    }
    let prefer_v4 = |mut ips: Vec<IpAddr>| {
        ips.sort_by_key(|ip| ip.is_ipv6());
        ips.into_iter().next()
    };
    if let Some(interface) = &host.default_route_interface {
        let on_route = host
            .interfaces
            .iter()
            .filter(|(name, ip)| name == interface && routable(ip))
            .map(|(_, ip)| *ip)
            .collect();
        if let Some(ip) = prefer_v4(on_route) {
            return Ok(NodeAddress {
                ip,
                origin: AddressOrigin::DefaultRoute {
                    interface: interface.clone(),
                },
            });
        }
    }
    let host_name = host.host_name.clone().unwrap_or_else(resolve_host_name);
    if let Some(ip) = prefer_v4(host_name.into_iter().filter(routable).collect()) {
        return Ok(NodeAddress {
            ip,
            origin: AddressOrigin::HostName,
        });
    }
    Ok(NodeAddress {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        origin: AddressOrigin::Loopback,
    })
}

/// Pure: the interface of the IPv4 default route with the lowest metric, from the text of
/// /proc/net/route (hex columns; destination and mask 0 and the UP flag make a default).
pub fn default_route_interface(route_table: &str) -> Option<String> {
    const RTF_UP: u32 = 0x1;
    route_table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, metric, mask) = (
                cols.first()?,
                cols.get(1)?,
                cols.get(3)?,
                cols.get(6)?,
                cols.get(7)?,
            );
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let default = *dest == "00000000" && *mask == "00000000" && flags & RTF_UP != 0;
            default.then(|| (metric.parse::<u32>().unwrap_or(u32::MAX), iface.to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

impl HostAddresses {
    /// Reads the calling thread's network namespace (thread-self, so a thread that joined
    /// another namespace sees that one).
    pub fn read() -> HostAddresses {
        let interfaces = nix::ifaddrs::getifaddrs()
            .map(|all| {
                all.filter_map(|ifa| {
                    let address = ifa.address?;
                    let ip = if let Some(v4) = address.as_sockaddr_in() {
                        IpAddr::V4(v4.ip())
                    } else {
                        IpAddr::V6(address.as_sockaddr_in6()?.ip())
                    };
                    Some((ifa.interface_name, ip))
                })
                .collect()
            })
            .unwrap_or_default();
        let default_route_interface = std::fs::read_to_string("/proc/thread-self/net/route")
            .ok()
            .and_then(|t| default_route_interface(&t));
        HostAddresses {
            interfaces,
            default_route_interface,
            host_name: None,
        }
    }
}

/// What this host's name resolves to.
fn resolve_host_name() -> Vec<IpAddr> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| (h.to_string_lossy().into_owned(), 0).to_socket_addrs().ok())
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

/// The node's address on this host.
pub fn node_address(flag: Option<IpAddr>) -> Result<NodeAddress, NodeAddressError> {
    choose(flag, &HostAddresses::read(), resolve_host_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
        eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        tun0\t00000000\t00000000\t0000\t0\t0\t1\t00000000\t0\t0\t0\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host() -> HostAddresses {
        HostAddresses {
            interfaces: vec![
                ("lo".into(), ip("127.0.0.1")),
                ("eth0".into(), ip("fe80::1")),
                ("eth0".into(), ip("2001:db8::5")),
                ("eth0".into(), ip("192.0.2.2")),
                ("wlan0".into(), ip("192.168.1.7")),
            ],
            default_route_interface: Some("eth0".into()),
            host_name: Some(vec![ip("127.0.1.1"), ip("198.51.100.9")]),
        }
    }

    #[test]
    fn the_default_route_with_the_lowest_metric_that_is_up_wins() {
        assert_eq!(default_route_interface(ROUTES).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
    }

    #[test]
    fn the_flag_wins_when_it_is_an_address_of_this_host() {
        let chosen = choose(Some(ip("192.168.1.7")), &host(), Vec::new).unwrap();
        assert_eq!(
            (chosen.ip, chosen.origin),
            (ip("192.168.1.7"), AddressOrigin::Flag)
        );
        let err = choose(Some(ip("10.9.9.9")), &host(), Vec::new)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--node-ip 10.9.9.9") && err.contains("192.0.2.2"),
            "{err}"
        );
    }

    #[test]
    fn the_default_route_interface_gives_its_ipv4_address() {
        let chosen = choose(None, &host(), || panic!("the route gave one: no lookup")).unwrap();
        assert_eq!(chosen.ip, ip("192.0.2.2"));
        assert_eq!(
            chosen.origin,
            AddressOrigin::DefaultRoute {
                interface: "eth0".into()
            }
        );
    }

    #[test]
    fn without_a_default_route_the_host_names_routable_address_is_used_then_loopback() {
        let mut h = host();
        h.default_route_interface = None;
        let chosen = choose(None, &h, Vec::new).unwrap();
        assert_eq!(
            (chosen.ip, chosen.origin),
            (ip("198.51.100.9"), AddressOrigin::HostName)
        );
        h.host_name = None;
        let looked_up = choose(None, &h, || vec![ip("198.51.100.10")]).unwrap();
        assert_eq!(looked_up.ip, ip("198.51.100.10"));
        h.host_name = Some(vec![ip("127.0.1.1")]);
        let chosen = choose(None, &h, Vec::new).unwrap();
        assert_eq!(
            (chosen.ip, chosen.origin),
            (ip("127.0.0.1"), AddressOrigin::Loopback)
        );
    }
}
