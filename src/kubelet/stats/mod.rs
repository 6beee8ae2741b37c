//! The node's figures as the stats endpoints see them: `/stats/summary` (kubelet's Summary
//! API) and the Prometheus texts of `/metrics/resource`, `/metrics/cadvisor` and
//! `/metrics/probes`. Pure: the backend collects [`NodeFigures`], these files shape them.

pub mod prometheus;
pub mod summary;

use std::time::SystemTime;

/// One network interface's counters.
pub use crate::runtime::network::InterfaceCounters as Interface;

/// A filesystem's size and use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FsFigures {
    pub capacity: u64,
    pub available: u64,
    pub used: u64,
    pub inodes: u64,
    pub inodes_free: u64,
    pub inodes_used: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cpu {
    /// Cumulative CPU time.
    pub usage_nanos: u64,
    /// Average use since the previous sample, in billionths of a core.
    pub nano_cores: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    pub usage: u64,
    pub working_set: u64,
    pub rss: Option<u64>,
    pub available: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerFigures {
    pub name: String,
    pub id: String,
    pub image: String,
    /// `/` + the cgroup path (cAdvisor's `id` label).
    pub cgroup: String,
    pub start_time: Option<SystemTime>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    /// The writable (copy-on-write) layer: apparent bytes and inodes.
    pub rootfs_bytes: u64,
    pub rootfs_inodes: u64,
    pub log_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VolumeFigures {
    pub name: String,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodFigures {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `/` + the pod's cgroup path (cAdvisor's `id` of pod-level series).
    pub cgroup: String,
    pub start_time: Option<SystemTime>,
    pub containers: Vec<ContainerFigures>,
    /// The interfaces of the pod's network namespace, as cAdvisor counts them (no loopback);
    /// none for a hostNetwork pod.
    pub network: Vec<Interface>,
    pub volumes: Vec<VolumeFigures>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeFigures {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    /// liveness, readiness or startup.
    pub probe_type: String,
    /// successful, failed or unknown.
    pub result: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeFigures {
    pub node_name: String,
    pub time: SystemTime,
    pub start_time: SystemTime,
    pub cpu: Cpu,
    pub memory: Memory,
    /// The data root's filesystem (nodefs and imagefs are one here).
    pub fs: FsFigures,
    pub network: Vec<Interface>,
    /// The data root's device (cAdvisor's `device` label).
    pub device: String,
    pub machine_cores: u64,
    pub machine_memory: u64,
    pub pods: Vec<PodFigures>,
    pub probes: Vec<ProbeFigures>,
}
