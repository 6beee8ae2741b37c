//! The node's conditions from real figures, with kubelet's default hard-eviction thresholds
//! (memory.available < 100Mi, nodefs.available < 10%, nodefs.inodesFree < 5%) and the pid
//! limit: pure over [`NodeFigures`], which [`NodeFigures::read`] takes from the host.

use std::path::Path;

/// What the conditions are decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeFigures {
    /// MemAvailable of /proc/meminfo, bytes.
    pub memory_available: Option<u64>,
    /// The data root's filesystem: bytes available / total, inodes free / total.
    pub disk_available: Option<(u64, u64)>,
    pub inodes_free: Option<(u64, u64)>,
    /// Processes and threads on the node, and the kernel's limit.
    pub pids: Option<(u64, u64)>,
}

pub const MEMORY_AVAILABLE_MIN: u64 = 100 << 20;
pub const DISK_AVAILABLE_MIN_PERCENT: u64 = 10;
pub const INODES_FREE_MIN_PERCENT: u64 = 5;
/// kubelet sets no default for pids; a node with under 5% of its pids left cannot start
/// much, which is what the condition warns the scheduler of.
pub const PIDS_AVAILABLE_MIN_PERCENT: u64 = 5;

/// One condition as the node posts it: type, whether it holds, reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub kind: &'static str,
    pub holds: bool,
    pub reason: &'static str,
    pub message: &'static str,
}

fn below_percent(pair: Option<(u64, u64)>, percent: u64) -> bool {
    pair.is_some_and(|(left, total)| total > 0 && left * 100 < total * percent)
}

/// Pure: the four conditions kubelet posts, in its order. Ready holds while the agent runs
/// (it posts nothing when it does not), whatever the pressures say, as kubelet's does.
pub fn verdicts(figures: &NodeFigures) -> Vec<Verdict> {
    let memory = figures
        .memory_available
        .is_some_and(|m| m < MEMORY_AVAILABLE_MIN);
    let disk = below_percent(figures.disk_available, DISK_AVAILABLE_MIN_PERCENT)
        || below_percent(figures.inodes_free, INODES_FREE_MIN_PERCENT);
    let pids = below_percent(
        figures
            .pids
            .map(|(used, max)| (max.saturating_sub(used), max)),
        PIDS_AVAILABLE_MIN_PERCENT,
    );
    vec![
        Verdict {
            kind: "MemoryPressure",
            holds: memory,
            reason: if memory {
                "KubeletHasInsufficientMemory"
            } else {
                "KubeletHasSufficientMemory"
            },
            message: if memory {
                "node has memory pressure"
            } else {
                "node has sufficient memory available"
            },
        },
        Verdict {
            kind: "DiskPressure",
            holds: disk,
            reason: if disk {
                "KubeletHasDiskPressure"
            } else {
                "KubeletHasNoDiskPressure"
            },
            message: if disk {
                "node has disk pressure"
            } else {
                "node has no disk pressure"
            },
        },
        Verdict {
            kind: "PIDPressure",
            holds: pids,
            reason: if pids {
                "KubeletHasInsufficientPID"
            } else {
                "KubeletHasSufficientPID"
            },
            message: if pids {
                "node has PID pressure"
            } else {
                "node has sufficient PID available"
            },
        },
        Verdict {
            kind: "Ready",
            holds: true,
            reason: "KubeletReady",
            message: "layerlet is posting ready status",
        },
    ]
}

/// `MemAvailable` of a /proc/meminfo text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Threads on the node: the `running/total` field of /proc/loadavg.
fn threads(loadavg: &str) -> Option<u64> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

impl NodeFigures {
    pub fn read(data_root: &Path) -> NodeFigures {
        let fs = nix::sys::statvfs::statvfs(data_root).ok();
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|t| t.trim().parse().ok());
        let used = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| threads(&t));
        NodeFigures {
            memory_available: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|t| mem_available(&t)),
            disk_available: fs.as_ref().map(|s| {
                (
                    s.blocks_available() * s.fragment_size(),
                    s.blocks() * s.fragment_size(),
                )
            }),
            inodes_free: fs.as_ref().map(|s| (s.files_available(), s.files())),
            pids: used.zip(pid_max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> NodeFigures {
        NodeFigures {
            memory_available: Some(2 << 30),
            disk_available: Some((50, 100)),
            inodes_free: Some((50, 100)),
            pids: Some((500, 4_194_304)),
        }
    }

    fn holding(figures: &NodeFigures) -> Vec<&'static str> {
        verdicts(figures)
            .into_iter()
            .filter(|v| v.holds)
            .map(|v| v.kind)
            .collect()
    }

    #[test]
    fn a_healthy_node_is_ready_without_pressure() {
        assert_eq!(holding(&healthy()), vec!["Ready"]);
        let kinds: Vec<_> = verdicts(&healthy()).iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
    }

    #[test]
    fn each_pressure_follows_kubelets_thresholds() {
        let mut f = healthy();
        f.memory_available = Some(MEMORY_AVAILABLE_MIN - 1);
        assert_eq!(holding(&f), vec!["MemoryPressure", "Ready"]);
        let mut f = healthy();
        f.disk_available = Some((9, 100));
        assert_eq!(holding(&f), vec!["DiskPressure", "Ready"]);
        f.disk_available = Some((10, 100));
        assert_eq!(holding(&f), vec!["Ready"]);
        f.inodes_free = Some((4, 100));
        assert_eq!(holding(&f), vec!["DiskPressure", "Ready"]);
        let mut f = healthy();
        f.pids = Some((97, 100));
        assert_eq!(holding(&f), vec!["PIDPressure", "Ready"]);
        assert_eq!(holding(&NodeFigures::default()), vec!["Ready"]);
    }

    #[test]
    fn figures_are_read_from_proc_texts() {
        assert_eq!(
            mem_available("MemTotal: 9 kB\nMemAvailable:   2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(threads("0.10 0.20 0.30 2/731 12345\n"), Some(731));
        let here = NodeFigures::read(Path::new("/"));
        assert!(here.memory_available.is_some() && here.disk_available.is_some());
        assert!(here.pids.is_some_and(|(used, max)| used > 0 && max > used));
    }
}
