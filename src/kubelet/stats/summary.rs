//! kubelet's Summary API (`stats/v1alpha1`): the JSON shapes of `/stats/summary`. A
//! container's `rootfs` is its writable layer, so `usedBytes` is the exact copy-on-write
//! figure of layerlet's metrics; `ephemeral-storage` is writable layers + logs + emptyDir
//! volumes, as kubelet counts it for eviction.

use serde::Serialize;

use super::{ContainerFigures, FsFigures, Interface, NodeFigures, PodFigures};
use crate::time::format_rfc3339_nano;

fn rfc3339(t: std::time::SystemTime) -> String {
    // Seconds only, as metav1.Time serializes.
    let s = format_rfc3339_nano(t);
    match s.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => s,
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub start_time: String,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub network: NetworkStats,
    pub fs: FsStats,
    pub runtime: RuntimeStats,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    pub image_fs: FsStats,
    pub container_fs: FsStats,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    pub usage_core_nano_seconds: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStats {
    pub time: String,
    /// The default interface's figures, inline as kubelet has them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub default: Option<InterfaceStats>,
    pub interfaces: Vec<InterfaceStats>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    pub used_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    pub rootfs: FsStats,
    pub logs: FsStats,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStats {
    pub time: String,
    pub used_bytes: u64,
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    pub volume: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage")]
    pub ephemeral_storage: FsStats,
}

fn interface(i: &Interface) -> InterfaceStats {
    InterfaceStats {
        name: i.name.clone(),
        rx_bytes: i.rx_bytes,
        rx_errors: i.rx_errors,
        tx_bytes: i.tx_bytes,
        tx_errors: i.tx_errors,
    }
}

fn network(time: &str, ifaces: &[Interface]) -> NetworkStats {
    let default = ifaces
        .iter()
        .find(|i| i.name == "eth0")
        .or_else(|| ifaces.iter().find(|i| i.name != "lo"))
        .map(interface);
    NetworkStats {
        time: time.to_string(),
        default,
        interfaces: ifaces.iter().map(interface).collect(),
    }
}

/// A figure on the node's filesystem: its capacity and free space, this use.
fn on_node_fs(time: &str, fs: &FsFigures, used: u64, inodes_used: Option<u64>) -> FsStats {
    FsStats {
        time: time.to_string(),
        available_bytes: Some(fs.available),
        capacity_bytes: Some(fs.capacity),
        used_bytes: used,
        inodes_free: Some(fs.inodes_free),
        inodes: Some(fs.inodes),
        inodes_used,
    }
}

fn container(time: &str, fs: &FsFigures, c: &ContainerFigures) -> ContainerStats {
    ContainerStats {
        name: c.name.clone(),
        start_time: c.start_time.map(rfc3339),
        cpu: c.cpu.as_ref().map(|cpu| CpuStats {
            time: time.to_string(),
            usage_nano_cores: cpu.nano_cores,
            usage_core_nano_seconds: cpu.usage_nanos,
        }),
        memory: c.memory.as_ref().map(|m| MemoryStats {
            time: time.to_string(),
            available_bytes: m.available,
            usage_bytes: m.usage,
            working_set_bytes: m.working_set,
            rss_bytes: m.rss,
        }),
        rootfs: on_node_fs(time, fs, c.rootfs_bytes, Some(c.rootfs_inodes)),
        logs: on_node_fs(time, fs, c.log_bytes, None),
    }
}

fn pod(time: &str, fs: &FsFigures, p: &PodFigures) -> PodStats {
    let containers: Vec<ContainerStats> = p
        .containers
        .iter()
        .map(|c| container(time, fs, c))
        .collect();
    let cpus: Vec<&super::Cpu> = p.containers.iter().filter_map(|c| c.cpu.as_ref()).collect();
    let cpu = (!cpus.is_empty()).then(|| CpuStats {
        time: time.to_string(),
        usage_nano_cores: cpus.iter().map(|c| c.nano_cores).sum(),
        usage_core_nano_seconds: cpus.iter().map(|c| c.usage_nanos).sum(),
    });
    let mems: Vec<&super::Memory> = p
        .containers
        .iter()
        .filter_map(|c| c.memory.as_ref())
        .collect();
    let memory = (!mems.is_empty()).then(|| MemoryStats {
        time: time.to_string(),
        available_bytes: None,
        usage_bytes: mems.iter().map(|m| m.usage).sum(),
        working_set_bytes: mems.iter().map(|m| m.working_set).sum(),
        rss_bytes: None,
    });
    let volume_bytes: u64 = p.volumes.iter().map(|v| v.used_bytes).sum();
    let layers: u64 = p
        .containers
        .iter()
        .map(|c| c.rootfs_bytes + c.log_bytes)
        .sum();
    let inodes: u64 = p.containers.iter().map(|c| c.rootfs_inodes).sum();
    PodStats {
        pod_ref: PodReference {
            name: p.name.clone(),
            namespace: p.namespace.clone(),
            uid: p.uid.clone(),
        },
        start_time: p.start_time.map(rfc3339),
        containers,
        cpu,
        memory,
        network: (!p.network.is_empty()).then(|| network(time, &p.network)),
        volume: p
            .volumes
            .iter()
            .map(|v| VolumeStats {
                time: time.to_string(),
                used_bytes: v.used_bytes,
                name: v.name.clone(),
            })
            .collect(),
        ephemeral_storage: on_node_fs(time, fs, layers + volume_bytes, Some(inodes)),
    }
}

pub fn summary(n: &NodeFigures) -> Summary {
    let time = rfc3339(n.time);
    let fs = on_node_fs(&time, &n.fs, n.fs.used, Some(n.fs.inodes_used));
    let image_fs = on_node_fs(&time, &n.fs, n.fs.used, Some(n.fs.inodes_used));
    let container_fs = on_node_fs(&time, &n.fs, n.fs.used, Some(n.fs.inodes_used));
    Summary {
        node: NodeStats {
            node_name: n.node_name.clone(),
            start_time: rfc3339(n.start_time),
            cpu: CpuStats {
                time: time.clone(),
                usage_nano_cores: n.cpu.nano_cores,
                usage_core_nano_seconds: n.cpu.usage_nanos,
            },
            memory: MemoryStats {
                time: time.clone(),
                available_bytes: n.memory.available,
                usage_bytes: n.memory.usage,
                working_set_bytes: n.memory.working_set,
                rss_bytes: n.memory.rss,
            },
            network: network(&time, &n.network),
            fs,
            runtime: RuntimeStats {
                image_fs,
                container_fs,
            },
        },
        pods: n.pods.iter().map(|p| pod(&time, &n.fs, p)).collect(),
    }
}

#[cfg(test)]
pub mod tests {
    use super::super::*;
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    pub fn figures() -> NodeFigures {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        NodeFigures {
            node_name: "node-1".into(),
            time: t,
            start_time: t - Duration::from_secs(3600),
            cpu: Cpu {
                usage_nanos: 5_000_000_000,
                nano_cores: Some(250_000_000),
            },
            memory: Memory {
                usage: 1000,
                working_set: 800,
                rss: Some(500),
                available: Some(9000),
            },
            fs: FsFigures {
                capacity: 100_000,
                available: 40_000,
                used: 60_000,
                inodes: 1000,
                inodes_free: 400,
                inodes_used: 600,
            },
            network: vec![Interface {
                name: "eth0".into(),
                rx_bytes: 10,
                tx_bytes: 20,
                ..Default::default()
            }],
            device: "/dev/sda1".into(),
            machine_cores: 2,
            machine_memory: 24 << 30,
            pods: vec![PodFigures {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u-1".into(),
                cgroup: "/layerlet/x/u-1".into(),
                start_time: Some(t),
                containers: vec![ContainerFigures {
                    name: "app".into(),
                    id: "abc".into(),
                    image: "busybox:1".into(),
                    cgroup: "/layerlet/x/u-1/abc".into(),
                    start_time: Some(t),
                    cpu: Some(Cpu {
                        usage_nanos: 1_500_000_000,
                        nano_cores: Some(1000),
                    }),
                    memory: Some(Memory {
                        usage: 4096,
                        working_set: 2048,
                        rss: None,
                        available: None,
                    }),
                    rootfs_bytes: 7_340_032,
                    rootfs_inodes: 3,
                    log_bytes: 100,
                }],
                network: vec![Interface {
                    name: "eth0".into(),
                    rx_bytes: 3000,
                    rx_packets: 30,
                    rx_errors: 1,
                    tx_bytes: 7000,
                    tx_packets: 70,
                    tx_errors: 2,
                    tx_dropped: 3,
                    ..Default::default()
                }],
                volumes: vec![VolumeFigures {
                    name: "scratch".into(),
                    used_bytes: 50,
                }],
            }],
            probes: vec![],
        }
    }

    #[test]
    fn the_summary_has_kubelets_shape_with_the_cow_bytes_as_rootfs() {
        let json = serde_json::to_value(summary(&figures())).unwrap();
        assert_eq!(json["node"]["nodeName"], "node-1");
        assert_eq!(json["node"]["cpu"]["usageNanoCores"], 250_000_000);
        assert_eq!(json["node"]["network"]["name"], "eth0");
        assert_eq!(json["node"]["network"]["rxBytes"], 10);
        assert_eq!(json["node"]["fs"]["capacityBytes"], 100_000);
        let pod = &json["pods"][0];
        assert_eq!(pod["podRef"]["uid"], "u-1");
        let c = &pod["containers"][0];
        assert_eq!(c["rootfs"]["usedBytes"], 7_340_032);
        assert_eq!(c["rootfs"]["inodesUsed"], 3);
        assert_eq!(c["logs"]["usedBytes"], 100);
        assert_eq!(c["cpu"]["usageCoreNanoSeconds"], 1_500_000_000u64);
        assert_eq!(c["memory"]["workingSetBytes"], 2048);
        assert_eq!(pod["ephemeral-storage"]["usedBytes"], 7_340_032 + 100 + 50);
        assert_eq!(pod["volume"][0]["name"], "scratch");
        // The pod's own interface, inline and in the list, as kubelet has it.
        assert_eq!(pod["network"]["name"], "eth0");
        assert_eq!(pod["network"]["rxBytes"], 3000);
        assert_eq!(pod["network"]["txBytes"], 7000);
        assert_eq!(pod["network"]["txErrors"], 2);
        assert_eq!(pod["network"]["interfaces"][0]["rxErrors"], 1);
        assert_eq!(json["node"]["startTime"], "2023-11-14T21:13:20Z");
    }
}
