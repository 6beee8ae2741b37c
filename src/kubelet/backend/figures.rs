//! The figures of the stats endpoints, collected when asked: writable-layer and log bytes
//! from the accounting cache (the same numbers as layerlet's CoW metrics), CPU and memory
//! read live from each running container's cgroup, the node's from /proc, each pod's network
//! counters as the accounting read them from its network namespace.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::LocalNode;
use crate::kubelet::stats::{
    ContainerFigures, Cpu, FsFigures, Interface, Memory, NodeFigures, PodFigures,
};
use crate::runtime::isolation::cgroup::Layout;

/// Billionths of a core used since the previous sample of `key`.
fn nano_cores(samples: &mut HashMap<String, (Instant, u64)>, key: &str, nanos: u64) -> Option<u64> {
    let now = Instant::now();
    let previous = samples.insert(key.to_string(), (now, nanos));
    let (then, before) = previous?;
    let elapsed = now.duration_since(then).as_nanos() as f64;
    if elapsed < 1e6 || nanos < before {
        return None;
    }
    Some(((nanos - before) as f64 / elapsed * 1e9) as u64)
}

fn read_kv(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once([' ', ':'])?;
        (k == key).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

/// Interfaces of /proc/.../net/dev.
pub fn net_dev(text: &str) -> Vec<Interface> {
    crate::runtime::network::counters::parse_net_dev(text)
}

fn fs_of(path: &Path) -> FsFigures {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let frag = s.fragment_size();
            let capacity = s.blocks() * frag;
            let free = s.blocks_free() * frag;
            let inodes = s.files();
            let inodes_free = s.files_free();
            FsFigures {
                capacity,
                available: s.blocks_available() * frag,
                used: capacity.saturating_sub(free),
                inodes,
                inodes_free,
                inodes_used: inodes.saturating_sub(inodes_free),
            }
        }
        Err(_) => FsFigures::default(),
    }
}

/// The container's memory use and working set (use less inactive file pages, as cAdvisor).
fn memory_of(root: &Path, layout: &Layout, path: &str) -> Option<Memory> {
    let (dir, usage_file, inactive_key) = match layout {
        Layout::V1 { .. } => (
            root.join("memory").join(path),
            "memory.usage_in_bytes",
            "total_inactive_file",
        ),
        Layout::V2 { .. } => (root.join(path), "memory.current", "inactive_file"),
    };
    let usage: u64 = std::fs::read_to_string(dir.join(usage_file))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let inactive = read_kv(&stat, inactive_key).unwrap_or(0);
    let rss = read_kv(&stat, "total_rss").or_else(|| read_kv(&stat, "anon"));
    Some(Memory {
        usage,
        working_set: usage.saturating_sub(inactive),
        rss,
        available: None,
    })
}

fn node_cpu_nanos() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are use.
    let busy: u64 = f
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    busy * (1_000_000_000 / hz)
}

fn boot_time() -> SystemTime {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let secs = read_kv(&stat, "btime").unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn collect(node: &LocalNode, samples: &mut HashMap<String, (Instant, u64)>) -> NodeFigures {
    let figures = node.cache.get();
    let layout = crate::runtime::isolation::cgroup::detect(&node.rt.cgroup_root).ok();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |k: &str| read_kv(&meminfo, k).map(|v| v * 1024);
    let total = kib("MemTotal").unwrap_or(0);
    let node_nanos = node_cpu_nanos();
    let mut pods: BTreeMap<String, PodFigures> = BTreeMap::new();
    for c in figures
        .containers
        .iter()
        .filter(|c| c.state == "running" && c.latest)
    {
        let cgroup_path = c.cgroup.trim_start_matches('/');
        let cpu = layout.as_ref().and_then(|l| {
            let usage =
                crate::runtime::isolation::cgroup::Cgroup::new(l.clone(), cgroup_path).usage();
            usage.cpu_nanos.map(|n| Cpu {
                usage_nanos: n,
                nano_cores: nano_cores(samples, &c.id, n),
            })
        });
        let memory = layout
            .as_ref()
            .and_then(|l| memory_of(&node.rt.cgroup_root, l, cgroup_path));
        let pod = pods.entry(c.pod_uid.clone()).or_insert_with(|| PodFigures {
            namespace: c.namespace.clone(),
            name: c.pod.clone(),
            uid: c.pod_uid.clone(),
            cgroup: format!("/{}", node.rt.pod_cgroup_path(&c.pod_uid)),
            start_time: None,
            containers: Vec::new(),
            network: figures
                .networks
                .iter()
                .find(|n| n.uid == c.pod_uid)
                .map(|n| n.interfaces.clone())
                .unwrap_or_default(),
            volumes: Vec::new(),
        });
        let started = c
            .started_unix
            .map(|s| UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0)));
        pod.start_time = match (pod.start_time, started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        pod.containers.push(ContainerFigures {
            name: c.container.clone(),
            id: c.id.clone(),
            image: c.image.clone(),
            cgroup: c.cgroup.clone(),
            start_time: started,
            cpu,
            memory,
            rootfs_bytes: c.usage.bytes,
            rootfs_inodes: c.usage.inodes,
            log_bytes: c.log_bytes,
        });
    }
    let live: std::collections::HashSet<&str> =
        figures.containers.iter().map(|c| c.id.as_str()).collect();
    samples.retain(|k, _| k.is_empty() || live.contains(k.as_str()));
    NodeFigures {
        node_name: node.rt.node_name.clone(),
        time: SystemTime::now(),
        start_time: boot_time(),
        cpu: Cpu {
            usage_nanos: node_nanos,
            nano_cores: nano_cores(samples, "", node_nanos),
        },
        memory: Memory {
            usage: total.saturating_sub(kib("MemFree").unwrap_or(0)),
            working_set: total.saturating_sub(kib("MemAvailable").unwrap_or(0)),
            rss: None,
            available: kib("MemAvailable"),
        },
        fs: fs_of(node.rt.layout.root()),
        network: net_dev(&std::fs::read_to_string("/proc/net/dev").unwrap_or_default()),
        device: figures.device.clone(),
        machine_cores: std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1),
        machine_memory: total,
        pods: pods.into_values().collect(),
        probes: (node.probes)(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_lines_give_each_interfaces_counters() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    2000      20    3    0    0     0          0         0     4000      40    5    0    0     0       0          0\n";
        let i = net_dev(text);
        assert_eq!(i.len(), 2);
        assert_eq!(
            (
                i[1].name.as_str(),
                i[1].rx_bytes,
                i[1].rx_errors,
                i[1].tx_bytes,
                i[1].tx_errors
            ),
            ("eth0", 2000, 3, 4000, 5)
        );
    }

    #[test]
    fn cpu_rates_come_from_two_samples() {
        let mut samples = HashMap::new();
        assert_eq!(nano_cores(&mut samples, "a", 1000), None);
        std::thread::sleep(Duration::from_millis(5));
        assert!(nano_cores(&mut samples, "a", 1_000_000_000).is_some());
    }
}
