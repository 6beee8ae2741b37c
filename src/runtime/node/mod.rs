//! What the downward API tells a pod about the node: its name, its address (see
//! [`address`]) and its capacity (CPUs as `nproc` counts them, MemTotal of /proc/meminfo,
//! the size of the data root's filesystem), read once when asked.

pub mod address;

use std::net::IpAddr;
use std::path::Path;

use crate::pod::downward::NodeInfo;

/// `MemTotal` of a /proc/meminfo text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn filesystem_bytes(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0)
}

pub fn node_info(node_name: &str, address: IpAddr, root: &Path) -> NodeInfo {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    NodeInfo {
        node_name: node_name.to_string(),
        host_ip: address.to_string(),
        cpu_millis: cpus * 1000,
        memory: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| mem_total(&t))
            .unwrap_or(0),
        ephemeral_storage: filesystem_bytes(root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let text = "MemTotal:        8024372 kB\nMemFree:          123 kB\n";
        assert_eq!(mem_total(text), Some(8024372 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn this_node_has_capacity() {
        let info = node_info("n", IpAddr::from([127, 0, 0, 1]), Path::new("/"));
        assert!(info.cpu_millis >= 1000 && info.memory > 0 && info.ephemeral_storage > 0);
    }
}
