//! The Prometheus texts kubelet serves besides its own metrics: `/metrics/resource` (what
//! metrics-server reads for `kubectl top`), `/metrics/cadvisor` (cAdvisor's container
//! series, as kube-prometheus scrapes them) and `/metrics/probes` (prober results).

use std::time::UNIX_EPOCH;

use prometheus::proto::MetricFamily;
use prometheus::{Encoder, TextEncoder};

use super::NodeFigures;
use crate::metrics::family::Family;
use crate::metrics::network::NetworkFamilies;

fn render(families: Vec<MetricFamily>) -> Vec<u8> {
    let families: Vec<MetricFamily> = families
        .into_iter()
        .filter(|f| !f.get_metric().is_empty())
        .collect();
    let mut out = Vec::new();
    // Encoding into memory fails only on an invalid family, which these are not.
    let _ = TextEncoder::new().encode(&families, &mut out);
    out
}

fn secs(t: std::time::SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const CPN: &[&str] = &["container", "namespace", "pod"];
const PN: &[&str] = &["namespace", "pod"];

/// `/metrics/resource`.
pub fn resource(n: &NodeFigures) -> Vec<u8> {
    let node_cpu = Family::counter(
        "node_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the node in core-seconds",
        &[],
    );
    let node_mem = Family::gauge(
        "node_memory_working_set_bytes",
        "Current working set of the node in bytes",
        &[],
    );
    let c_cpu = Family::counter(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        CPN,
    );
    let c_mem = Family::gauge(
        "container_memory_working_set_bytes",
        "Current working set of the container in bytes",
        CPN,
    );
    let c_start = Family::gauge(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds",
        CPN,
    );
    let p_cpu = Family::counter(
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        PN,
    );
    let p_mem = Family::gauge(
        "pod_memory_working_set_bytes",
        "Current working set of the pod in bytes",
        PN,
    );
    let scrape = Family::gauge(
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        &[],
    );
    let mut f = [
        node_cpu.start(),
        node_mem.start(),
        c_cpu.start(),
        c_mem.start(),
        c_start.start(),
        p_cpu.start(),
        p_mem.start(),
        scrape.start(),
    ];
    node_cpu.add(&mut f[0], &[], n.cpu.usage_nanos as f64 / 1e9);
    node_mem.add(&mut f[1], &[], n.memory.working_set as f64);
    for p in &n.pods {
        let (mut cpu, mut mem, mut any) = (0u64, 0u64, false);
        for c in &p.containers {
            let labels = [c.name.as_str(), p.namespace.as_str(), p.name.as_str()];
            if let Some(x) = &c.cpu {
                c_cpu.add(&mut f[2], &labels, x.usage_nanos as f64 / 1e9);
                cpu += x.usage_nanos;
                any = true;
            }
            if let Some(m) = &c.memory {
                c_mem.add(&mut f[3], &labels, m.working_set as f64);
                mem += m.working_set;
            }
            if let Some(t) = c.start_time {
                c_start.add(&mut f[4], &labels, secs(t));
            }
        }
        if any {
            p_cpu.add(&mut f[5], &[&p.namespace, &p.name], cpu as f64 / 1e9);
            p_mem.add(&mut f[6], &[&p.namespace, &p.name], mem as f64);
        }
    }
    scrape.add(&mut f[7], &[], 0.0);
    // kubelet stamps its usage samples with when they were read: metrics-server takes the
    // CPU rate over those times, not over when its scrapes happened to arrive.
    if let Ok(read_at) = n.time.duration_since(UNIX_EPOCH) {
        // The usage families: CPU and working set of node, containers and pods.
        let usage = [&node_cpu, &node_mem, &c_cpu, &c_mem, &p_cpu, &p_mem];
        for family in f.iter_mut() {
            if usage.iter().any(|u| u.desc.fq_name == family.name()) {
                for metric in family.mut_metric().iter_mut() {
                    metric.set_timestamp_ms(read_at.as_millis() as i64);
                }
            }
        }
    }
    render(f.into())
}

const CADVISOR: &[&str] = &["container", "id", "image", "name", "namespace", "pod"];
const CADVISOR_FS: &[&str] = &[
    "container",
    "device",
    "id",
    "image",
    "name",
    "namespace",
    "pod",
];

/// `/metrics/cadvisor`.
pub fn cadvisor(n: &NodeFigures) -> Vec<u8> {
    let device = n.device.as_str();
    let cpu = Family::counter(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        CADVISOR,
    );
    let mem = Family::gauge(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        CADVISOR,
    );
    let ws = Family::gauge(
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        CADVISOR,
    );
    let fs_usage = Family::gauge(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        CADVISOR_FS,
    );
    let fs_limit = Family::gauge(
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        CADVISOR_FS,
    );
    // cAdvisor's container_fs_inodes_total is a gauge with a counter's suffix, which
    // promtool refuses: left out.
    let start = Family::gauge(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        CADVISOR,
    );
    let seen = Family::gauge(
        "container_last_seen",
        "Last time a container was seen by the exporter",
        CADVISOR,
    );
    let network = NetworkFamilies::default();
    let mut network_families = network.start();
    let cores = Family::gauge("machine_cpu_cores", "Number of logical CPU cores.", &[]);
    let memory = Family::gauge(
        "machine_memory_bytes",
        "Amount of memory installed on the machine.",
        &[],
    );
    let mut f = [
        cpu.start(),
        mem.start(),
        ws.start(),
        fs_usage.start(),
        fs_limit.start(),
        start.start(),
        seen.start(),
        cores.start(),
        memory.start(),
    ];
    let now = secs(n.time);
    for p in &n.pods {
        network.add_pod(
            &mut network_families,
            &p.cgroup,
            &p.namespace,
            &p.name,
            &p.network,
        );
        for c in &p.containers {
            let l = [
                c.name.as_str(),
                c.cgroup.as_str(),
                c.image.as_str(),
                c.id.as_str(),
                p.namespace.as_str(),
                p.name.as_str(),
            ];
            let lfs = [
                c.name.as_str(),
                device,
                c.cgroup.as_str(),
                c.image.as_str(),
                c.id.as_str(),
                p.namespace.as_str(),
                p.name.as_str(),
            ];
            if let Some(x) = &c.cpu {
                cpu.add(&mut f[0], &l, x.usage_nanos as f64 / 1e9);
            }
            if let Some(m) = &c.memory {
                mem.add(&mut f[1], &l, m.usage as f64);
                ws.add(&mut f[2], &l, m.working_set as f64);
            }
            fs_usage.add(&mut f[3], &lfs, c.rootfs_bytes as f64);
            fs_limit.add(&mut f[4], &lfs, n.fs.capacity as f64);
            if let Some(t) = c.start_time {
                start.add(&mut f[5], &l, secs(t));
            }
            seen.add(&mut f[6], &l, now);
        }
    }
    cores.add(&mut f[7], &[], n.machine_cores as f64);
    memory.add(&mut f[8], &[], n.machine_memory as f64);
    let mut families: Vec<MetricFamily> = f.into();
    families.extend(network_families);
    render(families)
}

/// `/metrics/probes`: kubelet's `prober_probe_total`.
pub fn probes(n: &NodeFigures) -> Vec<u8> {
    let total = Family::counter(
        "prober_probe_total",
        "Cumulative number of a liveness, readiness or startup probe for a container by result.",
        &[
            "container",
            "namespace",
            "pod",
            "pod_uid",
            "probe_type",
            "result",
        ],
    );
    let mut f = total.start();
    for p in &n.probes {
        total.add(
            &mut f,
            &[
                &p.container,
                &p.namespace,
                &p.pod,
                &p.pod_uid,
                &p.probe_type,
                &p.result,
            ],
            p.count as f64,
        );
    }
    render(vec![f])
}

#[cfg(test)]
mod tests {
    use super::super::summary::tests::figures;
    use super::*;

    #[test]
    fn resource_metrics_carry_the_containers_cpu_and_working_set() {
        let text = String::from_utf8(resource(&figures())).unwrap();
        let ms = figures()
            .time
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(text.contains(&format!("container_cpu_usage_seconds_total{{container=\"app\",namespace=\"default\",pod=\"web\"}} 1.5 {ms}")), "{text}");
        assert!(
            text.contains(&format!("node_cpu_usage_seconds_total 5 {ms}")),
            "{text}"
        );
        assert!(text.contains("container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"web\"} 2048"), "{text}");
        assert!(text.contains("resource_scrape_error 0"), "{text}");
    }

    #[test]
    fn cadvisor_metrics_show_the_writable_layer_as_the_containers_fs_usage() {
        let text = String::from_utf8(cadvisor(&figures())).unwrap();
        assert!(text.contains("container_fs_usage_bytes{container=\"app\",device=\"/dev/sda1\",id=\"/layerlet/x/u-1/abc\",image=\"busybox:1\",name=\"abc\",namespace=\"default\",pod=\"web\"} 7340032"), "{text}");
        assert!(text.contains("machine_cpu_cores 2"), "{text}");
    }

    #[test]
    fn cadvisor_metrics_show_the_pods_interfaces_at_pod_level() {
        let text = String::from_utf8(cadvisor(&figures())).unwrap();
        let labels = r#"{container="",id="/layerlet/x/u-1",image="",interface="eth0",name="",namespace="default",pod="web"}"#;
        for (family, value) in [
            ("container_network_receive_bytes_total", 3000),
            ("container_network_receive_packets_total", 30),
            ("container_network_transmit_bytes_total", 7000),
            ("container_network_transmit_packets_total", 70),
            ("container_network_transmit_packets_dropped_total", 3),
        ] {
            let line = format!("{family}{labels} {value}\n");
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
    }
}
