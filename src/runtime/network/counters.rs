//! Per-interface traffic counters of a network namespace, for metrics. Read from
//! `/proc/thread-self/net/dev` on a thread that joined the namespace: /proc/.../net follows
//! the reading thread's namespace, whereas /sys/class/net would still show the mount
//! namespace's (the host's) interfaces.

use std::path::Path;

use super::error::NetworkError;
use super::netns::in_netns;

/// The counters of one interface since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Every interface of the namespace at `netns`, loopback included, in the kernel's order.
pub fn interface_counters(netns: &Path) -> Result<Vec<InterfaceCounters>, NetworkError> {
    let text = in_netns(netns, || {
        std::fs::read_to_string("/proc/thread-self/net/dev")
    })?
    .map_err(|source| NetworkError::Netns {
        path: netns.to_path_buf(),
        source,
    })?;
    Ok(parse_net_dev(&text))
}

/// Parses `/proc/net/dev`: two header lines, then `name: ` and 16 numbers (8 receive, 8
/// transmit). A malformed line is skipped.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceCounters> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, numbers) = line.split_once(':')?;
            let n: Vec<u64> = numbers
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            (n.len() == 16).then(|| InterfaceCounters {
                name: name.trim().to_string(),
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0: 1234567    890    1    2    0     0          0         3   765432    456    4    5    0     0       0          0
broken: 1 2 3
";

    #[test]
    fn proc_net_dev_gives_bytes_packets_errors_and_drops_per_interface() {
        let counters = parse_net_dev(NET_DEV);
        assert_eq!(counters.len(), 2);
        assert_eq!(counters[0].name, "lo");
        assert_eq!(
            counters[1],
            InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 1_234_567,
                rx_packets: 890,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 765_432,
                tx_packets: 456,
                tx_errors: 4,
                tx_dropped: 5,
            }
        );
    }

    #[test]
    fn counters_of_this_namespace_include_loopback() {
        let counters = interface_counters(Path::new("/proc/self/ns/net")).unwrap();
        assert!(counters.iter().any(|c| c.name == "lo"), "{counters:?}");
    }
}
