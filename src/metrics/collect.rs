//! The registry's view of the accounting cache: metric families built at scrape time from
//! the figures the accounting thread published (no filesystem access). A container that is
//! gone is not in the figures, so its series are gone too.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::accounting::Cache;
use super::family::Family;
use super::network::NetworkFamilies;

const C: &[&str] = &["namespace", "pod", "container", "image", "container_id"];
const C_STATE: &[&str] = &[
    "namespace",
    "pod",
    "container",
    "image",
    "container_id",
    "state",
];
const C_PATH: &[&str] = &[
    "namespace",
    "pod",
    "container",
    "image",
    "container_id",
    "path",
];
const RESTARTS: &[&str] = &["namespace", "pod", "container"];
/// cAdvisor's labels, as kubelet's /metrics/cadvisor has them.
const CADVISOR_FS: &[&str] = &[
    "container",
    "device",
    "id",
    "image",
    "name",
    "namespace",
    "pod",
];
const CADVISOR: &[&str] = &["container", "id", "image", "name", "namespace", "pod"];
const CADVISOR_CPU: &[&str] = &[
    "container",
    "cpu",
    "id",
    "image",
    "name",
    "namespace",
    "pod",
];
const LAYER: &[&str] = &["layer", "chain_id"];
const IMAGE: &[&str] = &["image", "digest"];

pub struct CacheCollector {
    cache: Arc<Cache>,
    f: Families,
    network: NetworkFamilies,
}

struct Families {
    cow_bytes: Family,
    cow_inodes: Family,
    whiteouts: Family,
    log_bytes: Family,
    memory: Family,
    cpu: Family,
    start_time: Family,
    state: Family,
    restarts: Family,
    unmounted: Family,
    fs_usage: Family,
    c_memory: Family,
    c_cpu: Family,
    layer_bytes: Family,
    layer_images: Family,
    layer_containers: Family,
    image_bytes: Family,
    image_shared: Family,
    image_unique: Family,
    image_containers: Family,
    store_bytes: Family,
    store_objects: Family,
    store_object_bytes: Family,
    file_saved: Family,
    logical: Family,
    physical: Family,
    saved: Family,
    walks: Family,
    walk_seconds: Family,
    age: Family,
}

impl CacheCollector {
    pub fn new(cache: Arc<Cache>) -> Self {
        let g = Family::gauge;
        let c = Family::counter;
        let f = Families {
            cow_bytes: g("layerlet_container_cow_bytes", "Apparent bytes of the container's writable (copy-on-write) layer, as du -sb counts them.", C),
            cow_inodes: g("layerlet_container_cow_inodes", "Inodes in the container's writable layer (whiteouts included).", C),
            whiteouts: g("layerlet_container_cow_whiteouts", "Whiteouts (image files the container deleted) in its writable layer.", C),
            log_bytes: g("layerlet_container_log_bytes", "Bytes of the container's log files.", C),
            memory: g("layerlet_container_memory_usage_bytes", "Memory usage of the container's cgroup.", C),
            cpu: c("layerlet_container_cpu_usage_seconds_total", "CPU time used by the container's cgroup.", C),
            start_time: g("layerlet_container_start_time_seconds", "When the container's process started, seconds since the epoch.", C),
            state: g("layerlet_container_state", "1 for the container's state (created, running, exited).", C_STATE),
            restarts: c("layerlet_container_restarts_total", "Restarts of the pod's container (its newest instance's attempt).", RESTARTS),
            unmounted: g("layerlet_container_unmounted_volume_bytes", "Bytes the container wrote under an image VOLUME path with no mount: lost when the container is deleted.", C_PATH),
            fs_usage: g("container_fs_usage_bytes", "Bytes the container's writable layer uses (cAdvisor-compatible).", CADVISOR_FS),
            c_memory: g("container_memory_usage_bytes", "Memory usage of the container (cAdvisor-compatible).", CADVISOR),
            c_cpu: c("container_cpu_usage_seconds_total", "CPU time of the container (cAdvisor-compatible).", CADVISOR_CPU),
            layer_bytes: g("layerlet_layer_bytes", "Unpacked bytes of a layer in the store.", LAYER),
            layer_images: g("layerlet_layer_images", "Images whose stack contains the layer.", LAYER),
            layer_containers: g("layerlet_layer_containers", "Containers whose image contains the layer.", LAYER),
            image_bytes: g("layerlet_image_bytes", "Unpacked bytes of an image (all its layers).", IMAGE),
            image_shared: g("layerlet_image_shared_bytes", "Bytes of the image's layers that another image uses too.", IMAGE),
            image_unique: g("layerlet_image_unique_bytes", "Bytes of the image's layers no other image uses.", IMAGE),
            image_containers: g("layerlet_image_containers", "Containers of the image.", IMAGE),
            store_bytes: g("layerlet_store_bytes", "Unpacked layer store on disk: every layer once.", &[]),
            store_objects: g("layerlet_store_objects", "Objects of file-level sharing: regular files kept once and hard-linked into layers.", &[]),
            store_object_bytes: g("layerlet_store_object_bytes", "Bytes of the objects of file-level sharing, each once.", &[]),
            file_saved: g("layerlet_file_sharing_saved_bytes", "Bytes file-level sharing saves across the store's layers: their sizes summed minus their size with each file once.", &[]),
            logical: g("layerlet_sharing_logical_bytes", "What the containers would take without sharing: each its image's size plus its writes.", &[]),
            physical: g("layerlet_sharing_physical_bytes", "What the containers take: each layer in use once, plus each container's writes.", &[]),
            saved: g("layerlet_sharing_saved_bytes", "Bytes layer sharing saves: logical minus physical.", &[]),
            walks: c("layerlet_accounting_walks_total", "Walks of writable layers by the accounting.", &[]),
            walk_seconds: c("layerlet_accounting_walk_seconds_total", "Seconds spent walking writable layers.", &[]),
            age: g("layerlet_accounting_age_seconds", "Seconds since the accounting figures were last refreshed.", &[]),
        };
        CacheCollector {
            cache,
            f,
            network: NetworkFamilies::default(),
        }
    }
}

impl Collector for CacheCollector {
    fn desc(&self) -> Vec<&Desc> {
        let f = &self.f;
        [
            &f.cow_bytes,
            &f.cow_inodes,
            &f.whiteouts,
            &f.log_bytes,
            &f.memory,
            &f.cpu,
            &f.start_time,
            &f.state,
            &f.restarts,
            &f.unmounted,
            &f.fs_usage,
            &f.c_memory,
            &f.c_cpu,
            &f.layer_bytes,
            &f.layer_images,
            &f.layer_containers,
            &f.image_bytes,
            &f.image_shared,
            &f.image_unique,
            &f.image_containers,
            &f.store_bytes,
            &f.logical,
            &f.physical,
            &f.saved,
            &f.walks,
            &f.walk_seconds,
            &f.age,
        ]
        .into_iter()
        .map(|f| &f.desc)
        .chain(self.network.descs())
        .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let figures = self.cache.get();
        let f = &self.f;
        let mut cow_bytes = f.cow_bytes.start();
        let mut cow_inodes = f.cow_inodes.start();
        let mut whiteouts = f.whiteouts.start();
        let mut log_bytes = f.log_bytes.start();
        let mut memory = f.memory.start();
        let mut cpu = f.cpu.start();
        let mut start_time = f.start_time.start();
        let mut state = f.state.start();
        let mut restarts = f.restarts.start();
        let mut unmounted = f.unmounted.start();
        let mut fs_usage = f.fs_usage.start();
        let mut c_memory = f.c_memory.start();
        let mut c_cpu = f.c_cpu.start();
        for c in &figures.containers {
            let labels = [c.namespace.as_str(), &c.pod, &c.container, &c.image, &c.id];
            let bytes = c.usage.bytes as f64;
            f.cow_bytes.add(&mut cow_bytes, &labels, bytes);
            f.cow_inodes
                .add(&mut cow_inodes, &labels, c.usage.inodes as f64);
            f.whiteouts
                .add(&mut whiteouts, &labels, c.usage.whiteouts as f64);
            f.log_bytes.add(&mut log_bytes, &labels, c.log_bytes as f64);
            let cadvisor = [
                c.container.as_str(),
                &c.cgroup,
                &c.image,
                &c.id,
                &c.namespace,
                &c.pod,
            ];
            f.fs_usage.add(
                &mut fs_usage,
                &[
                    &c.container,
                    &figures.device,
                    &c.cgroup,
                    &c.image,
                    &c.id,
                    &c.namespace,
                    &c.pod,
                ],
                bytes,
            );
            if let Some(m) = c.memory_bytes {
                f.memory.add(&mut memory, &labels, m as f64);
                f.c_memory.add(&mut c_memory, &cadvisor, m as f64);
            }
            if let Some(s) = c.cpu_seconds {
                f.cpu.add(&mut cpu, &labels, s);
                f.c_cpu.add(
                    &mut c_cpu,
                    &[
                        &c.container,
                        "total",
                        &c.cgroup,
                        &c.image,
                        &c.id,
                        &c.namespace,
                        &c.pod,
                    ],
                    s,
                );
            }
            if let Some(t) = c.started_unix {
                f.start_time.add(&mut start_time, &labels, t);
            }
            for s in ["created", "running", "exited"] {
                let mut l = labels.to_vec();
                l.push(s);
                f.state
                    .add(&mut state, &l, if s == c.state { 1.0 } else { 0.0 });
            }
            if c.latest {
                f.restarts.add(
                    &mut restarts,
                    &[&c.namespace, &c.pod, &c.container],
                    c.restarts as f64,
                );
            }
            for (path, b) in c.unmounted_volumes.iter().zip(&c.usage.volume_bytes) {
                let mut l = labels.to_vec();
                l.push(path);
                f.unmounted.add(&mut unmounted, &l, *b as f64);
            }
        }
        let s = &figures.sharing;
        let mut layer_bytes = f.layer_bytes.start();
        let mut layer_images = f.layer_images.start();
        let mut layer_containers = f.layer_containers.start();
        for l in &s.layers {
            let labels = [l.diff_id.as_str(), &l.chain_id];
            f.layer_bytes.add(&mut layer_bytes, &labels, l.bytes as f64);
            f.layer_images
                .add(&mut layer_images, &labels, l.images as f64);
            f.layer_containers
                .add(&mut layer_containers, &labels, l.containers as f64);
        }
        let mut image_bytes = f.image_bytes.start();
        let mut image_shared = f.image_shared.start();
        let mut image_unique = f.image_unique.start();
        let mut image_containers = f.image_containers.start();
        for i in &s.images {
            let labels = [i.name.as_str(), &i.digest];
            f.image_bytes.add(&mut image_bytes, &labels, i.bytes as f64);
            f.image_shared
                .add(&mut image_shared, &labels, i.shared_bytes as f64);
            f.image_unique
                .add(&mut image_unique, &labels, i.unique_bytes as f64);
            f.image_containers
                .add(&mut image_containers, &labels, i.containers as f64);
        }
        let single = |family: &Family, value: f64| {
            let mut mf = family.start();
            family.add(&mut mf, &[], value);
            mf
        };
        let age = figures
            .updated
            .map(|u| u.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let mut families = vec![
            cow_bytes,
            cow_inodes,
            whiteouts,
            log_bytes,
            memory,
            cpu,
            start_time,
            state,
            restarts,
            unmounted,
            fs_usage,
            c_memory,
            c_cpu,
            layer_bytes,
            layer_images,
            layer_containers,
            image_bytes,
            image_shared,
            image_unique,
            image_containers,
            single(&f.store_bytes, s.store_bytes as f64),
            single(&f.store_objects, s.objects as f64),
            single(&f.store_object_bytes, s.object_bytes as f64),
            single(&f.file_saved, s.file_saved_bytes as f64),
            single(&f.logical, s.logical_bytes as f64),
            single(&f.physical, s.physical_bytes as f64),
            single(&f.saved, s.saved_bytes as f64),
            single(&f.walks, figures.walks as f64),
            single(&f.walk_seconds, figures.walk_seconds),
            single(&f.age, age),
        ];
        families.extend(self.network.collect(&figures.networks));
        families
    }
}
