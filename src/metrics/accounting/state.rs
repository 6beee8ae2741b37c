//! The accounting thread's loop: the container list and small stats on one timer, then
//! inotify's news, walks of the layers that changed (big ones handed to the worker),
//! evictions, and the figures published for scrapes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::figures::{Cache, ContainerFigures, Figures};
use super::watches::Watches;
use super::worker::{Job, JobResult, Worker};
use crate::image::digest::Digest;
use crate::image::objects::usage::FileSharing;
use crate::image::report::StoreSnapshot;
use crate::image::store::Store;
use crate::layout::NodeLayout;
use crate::meta::Db;
use crate::metrics::eviction::{self, ContainerStorage, Eviction};
use crate::metrics::network::{read_pod_interfaces, PodNetwork};
use crate::metrics::sharing::{sharing, ContainerUse};
use crate::metrics::tree::{DirNews, LayerTree};
use crate::metrics::walk::{files_bytes, walk, LayerUsage, Walked};
use crate::pod::spec::{PodSpec, StorageMedium, VolumeSource};
use crate::runtime::container::Runtime;
use crate::runtime::isolation::cgroup::Cgroup;
use crate::runtime::pods::pod_spec;
use crate::runtime::storage::volumes::unmounted_image_volumes;

#[derive(Debug, Clone)]
pub struct AccountingOptions {
    /// How often inotify's news is acted on (staleness is about one tick).
    pub tick: Duration,
    /// How often the container list, cgroups, states, logs and store records are read.
    pub stats_every: Duration,
    /// Safety net: every container is re-walked this often even without news.
    pub full_rewalk: Duration,
    /// Re-walk period of a container whose directories could not all be watched.
    pub unwatched_rewalk: Duration,
    /// Entries a walk on the main thread may visit before the container is left to the
    /// big-walk worker.
    pub walk_budget: u64,
}

impl Default for AccountingOptions {
    fn default() -> Self {
        AccountingOptions {
            tick: Duration::from_secs(1),
            stats_every: Duration::from_secs(2),
            full_rewalk: Duration::from_secs(300),
            unwatched_rewalk: Duration::from_secs(3),
            walk_budget: 20_000,
        }
    }
}

/// What the main thread knows of one container.
struct Tracked {
    figures: ContainerFigures,
    upper: PathBuf,
    data: PathBuf,
    run: PathBuf,
    cgroup: Option<Cgroup>,
    image: Digest,
    limit: Option<u64>,
    /// The last full read (the safety net re-reads on a timer).
    walked: Option<Instant>,
    dirty: bool,
    /// Per-directory figures; None before the first read and while the worker has it.
    tree: Option<LayerTree>,
    /// News since the last update, by directory (relative to the upperdir).
    changed: HashMap<PathBuf, DirNews>,
    /// The next update must be a full read (never read, overflow, safety net, a failure).
    needs_full: bool,
    /// Why, for the debug log.
    full_reason: &'static str,
    big: bool,
    /// Seconds the last walk on the big-walk worker took.
    big_walk_seconds: f64,
    /// When the worker last finished with it (the throttle's start).
    worked: Option<Instant>,
    in_flight: bool,
    watched: bool,
}

/// The filesystem source of the mount holding `path` (`/dev/vda1`), from mountinfo.
fn device_of(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return String::new();
    };
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut best: Option<(usize, String)> = None;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4) else {
            continue;
        };
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let source = fields.get(sep + 2).copied().unwrap_or_default();
        if path.starts_with(mount_point)
            && best
                .as_ref()
                .is_none_or(|(len, _)| mount_point.len() >= *len)
        {
            best = Some((mount_point.len(), source.to_string()));
        }
    }
    best.map(|(_, s)| s).unwrap_or_default()
}

/// A pod as the accounting needs it.
struct PodInfo {
    namespace: String,
    name: String,
    spec: Option<PodSpec>,
    json: String,
}

pub(super) struct State {
    rt: Runtime,
    store: Arc<Store>,
    db: Db,
    cache: Arc<Cache>,
    options: AccountingOptions,
    watches: Arc<Watches>,
    worker: Worker,
    tracked: BTreeMap<String, Tracked>,
    pods: BTreeMap<String, PodInfo>,
    snapshot: StoreSnapshot,
    evictions: BTreeMap<String, Eviction>,
    /// Each networked pod's interfaces, by uid, read on the stats timer.
    networks: BTreeMap<String, PodNetwork>,
    db_version: Option<i64>,
    device: String,
    walks: u64,
    walk_seconds: f64,
}

impl State {
    pub(super) fn new(
        rt: Runtime,
        store: Arc<Store>,
        db: Db,
        cache: Arc<Cache>,
        options: AccountingOptions,
        watches: Arc<Watches>,
        worker: Worker,
    ) -> State {
        State {
            device: device_of(rt.layout.root()),
            rt,
            store,
            db,
            cache,
            options,
            watches,
            worker,
            tracked: BTreeMap::new(),
            pods: BTreeMap::new(),
            snapshot: StoreSnapshot::default(),
            evictions: BTreeMap::new(),
            networks: BTreeMap::new(),
            db_version: None,
            walks: 0,
            walk_seconds: 0.0,
        }
    }

    pub(super) fn run(mut self, stop: &AtomicBool) {
        let mut last_stats: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let mut changed = false;
            if last_stats.is_none_or(|t| t.elapsed() >= self.options.stats_every) {
                last_stats = Some(Instant::now());
                self.refresh_list();
                self.refresh_stats();
                changed = true;
            }
            changed |= self.take_news();
            changed |= self.walk_dirty();
            if changed {
                self.check_evictions();
                self.publish();
            }
            std::thread::sleep(self.options.tick);
        }
    }

    /// The node's containers and pods from the database: new ones tracked, gone ones
    /// forgotten (their series go with them).
    fn refresh_list(&mut self) {
        // SQLite's data_version moves when another connection commits: while it stands
        // still, nothing (containers, pods, images) has changed and nothing is re-read.
        let version: Option<i64> = self.db.data_version().ok();
        if version.is_some() && version == self.db_version {
            return;
        }
        let (Ok(containers), Ok(pods)) = (self.db.containers(), self.db.pods()) else {
            return;
        };
        self.db_version = version;
        let mut known = std::mem::take(&mut self.pods);
        self.pods = pods
            .iter()
            .map(|p| {
                // Parsed again only when its recorded JSON changed.
                let info = match known.remove(&p.uid) {
                    Some(info) if info.json == p.spec => info,
                    _ => PodInfo {
                        namespace: p.namespace.clone(),
                        name: p.name.clone(),
                        spec: pod_spec(p).ok(),
                        json: p.spec.clone(),
                    },
                };
                (p.uid.clone(), info)
            })
            .collect();
        let mut latest: HashMap<(&str, &str), u32> = HashMap::new();
        for c in &containers {
            let e = latest.entry((&c.pod_uid, &c.name)).or_insert(c.attempt);
            *e = (*e).max(c.attempt);
        }
        let present: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        let gone: Vec<String> = self
            .tracked
            .keys()
            .filter(|id| !present.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.watches.forget(&id);
            self.tracked.remove(&id);
        }
        for c in &containers {
            let is_latest = latest.get(&(c.pod_uid.as_str(), c.name.as_str())) == Some(&c.attempt);
            if let Some(t) = self.tracked.get_mut(&c.id) {
                t.figures.latest = is_latest;
                continue;
            }
            let Ok(dirs) = self.rt.dirs(&c.id) else {
                continue;
            };
            let plan = self.rt.plan(&c.id).ok().flatten();
            let image_volumes: Vec<String> = self
                .store
                .image_config(&c.image)
                .ok()
                .and_then(|cfg| cfg.config)
                .and_then(|cfg| cfg.volumes)
                .map(|v| v.keys().cloned().collect())
                .unwrap_or_default();
            let unmounted = plan
                .as_ref()
                .map(|p| unmounted_image_volumes(&image_volumes, &p.mounts))
                .unwrap_or_default();
            let pod = self.pods.get(&c.pod_uid);
            let limit = pod
                .and_then(|p| p.spec.as_ref())
                .and_then(|s| s.all_containers().find(|x| x.name == c.name))
                .and_then(|x| x.resources.limits.ephemeral_storage);
            let cgroup = plan.and_then(|p| p.cgroup);
            let figures = ContainerFigures {
                id: c.id.clone(),
                namespace: pod.map(|p| p.namespace.clone()).unwrap_or_default(),
                pod: pod.map(|p| p.name.clone()).unwrap_or_default(),
                pod_uid: c.pod_uid.clone(),
                container: c.name.clone(),
                image: c.image_ref.clone(),
                cgroup: cgroup
                    .as_ref()
                    .map(|cg| format!("/{}", cg.path))
                    .unwrap_or_default(),
                usage: LayerUsage {
                    volume_bytes: vec![0; unmounted.len()],
                    ..LayerUsage::default()
                },
                unmounted_volumes: unmounted,
                restarts: c.attempt,
                latest: is_latest,
                state: "created",
                ..ContainerFigures::default()
            };
            let layer = dirs.layer();
            self.tracked.insert(
                c.id.clone(),
                Tracked {
                    figures,
                    upper: layer.upper,
                    data: dirs.data.clone(),
                    run: dirs.run.clone(),
                    cgroup,
                    image: c.image.clone(),
                    limit,
                    walked: None,
                    dirty: true,
                    tree: None,
                    changed: HashMap::new(),
                    needs_full: true,
                    full_reason: "first read",
                    big: false,
                    big_walk_seconds: 0.0,
                    worked: None,
                    in_flight: false,
                    watched: true,
                },
            );
        }
        if let Ok(mut snapshot) = StoreSnapshot::load(&self.db) {
            // File sharing needs a walk of every layer: redone only when the layers change.
            let same_layers = snapshot.layers.keys().eq(self.snapshot.layers.keys());
            snapshot.files = if same_layers {
                std::mem::take(&mut self.snapshot.files)
            } else {
                FileSharing::scan_layout(&self.rt.layout, snapshot.layers.keys()).unwrap_or_else(
                    |e| {
                        tracing::warn!(error = %e, "cannot measure file sharing");
                        FileSharing::default()
                    },
                )
            };
            self.snapshot = snapshot;
        }
    }

    /// States, cgroups and logs: a few small reads per container.
    fn refresh_stats(&mut self) {
        for t in self.tracked.values_mut() {
            let state = crate::runtime::state::StateFiles::new(&t.run);
            let started = state.started().ok().flatten();
            let exited = state.exited().ok().flatten();
            t.figures.state = match (&started, &exited) {
                (_, Some(_)) => "exited",
                (Some(_), None) => "running",
                _ => "created",
            };
            t.figures.started_unix = started
                .filter(|s| s.started_unix_ms > 0)
                .map(|s| s.started_unix_ms as f64 / 1000.0);
            if let (Some(cg), None) = (&t.cgroup, &exited) {
                let usage = cg.usage();
                t.figures.memory_bytes = usage.memory_bytes;
                t.figures.cpu_seconds = usage.cpu_nanos.map(|n| n as f64 / 1e9);
            }
            t.figures.log_bytes = files_bytes(&t.data, "container.log");
        }
        self.refresh_networks();
    }

    /// Interface counters of each pod's pinned network namespace: one short-lived thread per
    /// pod joins it (this thread never changes namespace). A pod without one has no series.
    fn refresh_networks(&mut self) {
        let mut networks = BTreeMap::new();
        for (uid, pod) in &self.pods {
            if pod.spec.as_ref().is_some_and(|s| s.host_network) {
                continue;
            }
            let Ok(dir) = self.rt.layout.sandbox_dir(uid) else {
                continue;
            };
            let interfaces = match read_pod_interfaces(&dir.join("ns").join("net")) {
                None => continue,
                Some(Ok(interfaces)) => interfaces,
                Some(Err(e)) => {
                    tracing::debug!(pod = %uid, "network counters not read: {e}");
                    continue;
                }
            };
            networks.insert(
                uid.clone(),
                PodNetwork {
                    uid: uid.clone(),
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    cgroup: format!("/{}", self.rt.pod_cgroup_path(uid)),
                    interfaces,
                },
            );
        }
        self.networks = networks;
    }

    /// inotify's news, results of big walks, and the timers of the safety nets.
    fn take_news(&mut self) -> bool {
        let mut changed = false;
        match self.watches.drain() {
            Some(dirty) => {
                for (id, dirs) in dirty {
                    if let Some(t) = self.tracked.get_mut(&id) {
                        t.dirty = true;
                        for (dir, news) in dirs {
                            let Ok(rel) = dir.strip_prefix(&t.upper) else {
                                continue;
                            };
                            let known = t.changed.entry(rel.to_path_buf()).or_default();
                            known.whole |= news.whole;
                            known.entries.extend(news.entries);
                        }
                    }
                }
            }
            None => {
                for t in self.tracked.values_mut() {
                    t.dirty = true;
                    t.needs_full = true;
                    t.full_reason = "inotify queue overflow";
                }
            }
        }
        let done: Vec<JobResult> = std::mem::take(
            &mut *self
                .worker
                .results
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for r in done {
            self.walks += 1;
            self.walk_seconds += r.seconds;
            if let Some(t) = self.tracked.get_mut(&r.id) {
                t.in_flight = false;
                t.big_walk_seconds = r.seconds;
                t.worked = Some(Instant::now());
                if r.full {
                    t.watched = r.watched;
                    t.walked = Some(Instant::now());
                } else {
                    t.watched &= r.watched;
                }
                match r.tree {
                    Some(tree) => {
                        let usage = tree.usage();
                        // Under half the budget again: back to the main thread.
                        t.big = usage.inodes > self.options.walk_budget / 2;
                        t.tree = Some(tree);
                        if r.full {
                            t.needs_full = false;
                        }
                        if t.figures.usage != usage {
                            t.figures.usage = usage;
                            changed = true;
                        }
                    }
                    None => {
                        t.needs_full = true;
                        t.full_reason = "worker update failed";
                        t.walked = Some(Instant::now());
                    }
                }
            }
        }
        for t in self.tracked.values_mut() {
            let period = if t.watched {
                self.options.full_rewalk
            } else {
                self.options.unwatched_rewalk
            };
            if t.walked.is_none_or(|w| w.elapsed() >= period) {
                t.dirty = true;
                t.needs_full = true;
                t.full_reason = "safety net";
            }
        }
        changed
    }

    /// Re-walks the containers with news: small ones here, big ones on the worker.
    fn walk_dirty(&mut self) -> bool {
        let mut changed = false;
        let budget = self.options.walk_budget;
        for (id, t) in self.tracked.iter_mut() {
            if !t.dirty || t.in_flight {
                continue;
            }
            // A big layer that keeps changing is walked at most half of the time: its
            // figure then lags by about three walks, and the worker does not spin.
            if t.big
                && t.worked
                    .is_some_and(|w| w.elapsed().as_secs_f64() < 2.0 * t.big_walk_seconds)
            {
                continue;
            }
            t.dirty = false;
            // Being deleted (the layer goes before the record): keep the last figure until
            // the record goes too, rather than show a layer of zero bytes for a moment.
            if !t.upper.exists() {
                continue;
            }
            let started = Instant::now();
            let mut watched = true;
            let watches = &self.watches;
            let mut on_dir = |dir: &Path| watched &= watches.add(id, dir);
            let changed_dirs: Vec<(PathBuf, DirNews)> = t.changed.drain().collect();
            if t.needs_full || t.tree.is_none() {
                tracing::debug!(container = %id, reason = t.full_reason, big = t.big, watched = t.watched, "full read of a writable layer");
            }
            if !t.big {
                // Only the directories that changed, when the tree is trusted; else a full
                // read, abandoned past the budget (the worker takes it).
                let outcome = match (t.tree.as_mut(), t.needs_full) {
                    (Some(tree), false) => {
                        tree.apply(changed_dirs.clone(), &mut on_dir).map(|()| true)
                    }
                    _ => LayerTree::read(
                        &t.upper,
                        &t.figures.unmounted_volumes,
                        Some(budget),
                        &mut on_dir,
                    )
                    .map(|tree| match tree {
                        Some(tree) => {
                            t.tree = Some(tree);
                            t.needs_full = false;
                            t.walked = Some(Instant::now());
                            t.watched = true;
                            true
                        }
                        None => false,
                    }),
                };
                self.walks += 1;
                self.walk_seconds += started.elapsed().as_secs_f64();
                t.watched &= watched;
                match outcome {
                    Ok(true) => {
                        let usage = t.tree.as_ref().map(LayerTree::usage).unwrap_or_default();
                        t.big = usage.inodes > budget;
                        if t.figures.usage != usage {
                            t.figures.usage = usage;
                            changed = true;
                        }
                        continue;
                    }
                    Ok(false) => {
                        t.big = true;
                        t.tree = None;
                    }
                    Err(e) => {
                        tracing::debug!(container = %id, error = %e, "walk of a writable layer failed");
                        t.needs_full = true;
                        t.full_reason = "walk failed";
                        t.walked = Some(Instant::now());
                        continue;
                    }
                }
            }
            let job = Job {
                id: id.clone(),
                upper: t.upper.clone(),
                volumes: t.figures.unmounted_volumes.clone(),
                tree: if t.needs_full { None } else { t.tree.take() },
                changed: changed_dirs,
            };
            match self.worker.jobs.send(job) {
                Ok(()) => t.in_flight = true,
                Err(mpsc::SendError(job)) => {
                    t.tree = job.tree;
                    t.needs_full = true;
                    t.full_reason = "worker gone";
                }
            }
        }
        changed
    }

    /// Pods over their ephemeral-storage limits. An eviction stays until its pod is gone.
    fn check_evictions(&mut self) {
        self.evictions.retain(|uid, _| self.pods.contains_key(uid));
        let mut by_pod: BTreeMap<&str, Vec<ContainerStorage>> = BTreeMap::new();
        for t in self.tracked.values().filter(|t| t.figures.latest) {
            by_pod
                .entry(t.figures.pod_uid.as_str())
                .or_default()
                .push(ContainerStorage {
                    name: t.figures.container.clone(),
                    limit: t.limit,
                    cow_bytes: t.figures.usage.bytes,
                    log_bytes: t.figures.log_bytes,
                });
        }
        for (uid, containers) in by_pod {
            if self.evictions.contains_key(uid) || containers.iter().all(|c| c.limit.is_none()) {
                continue;
            }
            let Some(pod) = self.pods.get(uid) else {
                continue;
            };
            let empty_dirs = pod
                .spec
                .as_ref()
                .map(|s| empty_dir_bytes(&self.rt.layout, s))
                .unwrap_or(0);
            let key = format!("{}/{}", pod.namespace, pod.name);
            if let Some(e) = eviction::check(uid, &key, &containers, empty_dirs) {
                self.evictions.insert(uid.to_string(), e);
            }
        }
    }

    fn publish(&mut self) {
        let uses: Vec<ContainerUse> = self
            .tracked
            .values()
            .map(|t| ContainerUse {
                image: t.image.clone(),
                cow_bytes: t.figures.usage.bytes,
            })
            .collect();
        let figures = Figures {
            containers: self.tracked.values().map(|t| t.figures.clone()).collect(),
            sharing: sharing(&self.snapshot, &uses),
            evictions: self.evictions.values().cloned().collect(),
            networks: self.networks.values().cloned().collect(),
            device: self.device.clone(),
            walks: self.walks,
            walk_seconds: self.walk_seconds,
            updated: Some(Instant::now()),
        };
        self.cache.set(figures);
    }
}

/// Apparent bytes of the pod's disk-backed emptyDirs (a tmpfs one is memory, not disk).
/// Walked only for pods with a limit, on the stats timer; bounded by the walk itself.
fn empty_dir_bytes(layout: &NodeLayout, pod: &PodSpec) -> u64 {
    pod.volumes
        .iter()
        .filter(|v| {
            matches!(&v.source, VolumeSource::EmptyDir { medium, .. } if *medium != StorageMedium::Memory)
        })
        .filter_map(|v| {
            let dir = layout.pod_volume_dir(&pod.uid, &v.name).ok()?;
            match walk(&dir, &[], None, &mut |_| {}) {
                // The directory itself is the volume, not its contents: as kubelet's du.
                Ok(Walked::Done(u)) => Some(u.bytes),
                _ => None,
            }
        })
        .sum()
}
