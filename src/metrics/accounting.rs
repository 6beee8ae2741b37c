//! The accounting thread: keeps every container's figures (writable-layer bytes and inodes,
//! unmounted-VOLUME bytes, logs, memory, CPU, state) and the sharing figures in a cache that
//! scrapes read. Scrapes never walk a filesystem.
//!
//! Cheap by construction:
//! - inotify watches every directory of every upperdir (writes through overlay land there
//!   and are seen), so a tick re-walks only the containers that changed; a slow periodic
//!   full re-walk catches what inotify cannot see (writes through a shared mmap);
//! - a walk has a budget of entries: a container over it (a million files) goes to a
//!   worker of its own, so its walk delays no other container's figures and no scrape;
//! - a container whose directories could not all be watched (the kernel's watch limit) is
//!   re-walked on a timer instead, within the staleness bound.
//!
//! Both are plain OS threads: a walk is blocking I/O that must not sit on the tokio pool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::eviction::{self, ContainerStorage, Eviction};
use super::sharing::{sharing, ContainerUse, Sharing};
use super::tree::{DirNews, EntryChange, LayerTree};
use super::walk::{files_bytes, walk, LayerUsage, Walked};
use super::MetricsError;
use crate::image::digest::Digest;
use crate::image::report::StoreSnapshot;
use crate::image::store::Store;
use crate::layout::NodeLayout;
use crate::meta::Db;
use crate::pod::spec::{PodSpec, StorageMedium, VolumeSource};
use crate::runtime::container::Runtime;
use crate::runtime::isolation::cgroup::Cgroup;
use crate::runtime::pods::pod_spec;
use crate::runtime::storage::volumes::unmounted_image_volumes;

/// One container's figures as scrapes see them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerFigures {
    pub id: String,
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    /// The image reference as the pod names it.
    pub image: String,
    /// `/` + the cgroup path (cAdvisor's `id`).
    pub cgroup: String,
    pub usage: LayerUsage,
    /// Image VOLUME paths without a mount, in the order of `usage.volume_bytes`.
    pub unmounted_volumes: Vec<String>,
    pub log_bytes: u64,
    pub memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    /// `created`, `running` or `exited`.
    pub state: &'static str,
    pub started_unix: Option<f64>,
    pub restarts: u32,
    /// Whether this is the newest instance of its pod's container (restarts are its).
    pub latest: bool,
}

/// Everything a scrape shows of the accounting, refreshed by the thread.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub containers: Vec<ContainerFigures>,
    pub sharing: Sharing,
    pub evictions: Vec<Eviction>,
    /// The filesystem of the data root (cAdvisor's `device`).
    pub device: String,
    pub walks: u64,
    pub walk_seconds: f64,
    /// When the figures were last published.
    pub updated: Option<Instant>,
}

/// The figures, swapped whole by the thread; a scrape takes a reference and lets go.
#[derive(Debug, Default)]
pub struct Cache {
    figures: Mutex<Arc<Figures>>,
}

impl Cache {
    pub fn get(&self) -> Arc<Figures> {
        self.figures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, figures: Figures) {
        *self.figures.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(figures);
    }

    /// Pods to evict for their ephemeral storage.
    pub fn evictions(&self) -> Vec<Eviction> {
        self.get().evictions.clone()
    }
}

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

/// The running accounting; stops its threads when dropped (a big walk in progress ends at
/// its next directory).
pub struct Accounting {
    stop: Arc<AtomicBool>,
}

impl Drop for Accounting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// IN_ATTRIB: a new or removed hard link changes the link count of a file in another
/// directory, which counts it once per layer.
const WATCH_MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);

/// The inotify instance and which container each watch belongs to; shared by both threads.
/// Without an instance (the kernel's per-user limit of instances reached) every container
/// counts as unwatched and is re-walked on the timer instead.
struct Watches {
    inotify: Option<Inotify>,
    /// Each watch's container and directory.
    owners: Mutex<HashMap<WatchDescriptor, (String, PathBuf)>>,
}

impl Watches {
    /// Watches `dir` for container `id`; false when the kernel refused (watch limit).
    fn add(&self, id: &str, dir: &Path) -> bool {
        let Some(inotify) = &self.inotify else {
            return false;
        };
        match inotify.add_watch(dir, WATCH_MASK) {
            Ok(wd) => {
                // A directory moved within the layer keeps its watch: the path is renewed.
                self.owners
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(wd, (id.to_string(), dir.to_path_buf()));
                true
            }
            // A directory removed under the walk is no failure to watch.
            Err(nix::Error::ENOENT) | Err(nix::Error::ENOTDIR) => true,
            Err(_) => false,
        }
    }

    fn forget(&self, id: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        let mine: Vec<WatchDescriptor> = owners
            .iter()
            .filter(|(_, (o, _))| o.as_str() == id)
            .map(|(wd, _)| *wd)
            .collect();
        for wd in mine {
            owners.remove(&wd);
            if let Some(inotify) = &self.inotify {
                let _ = inotify.rm_watch(wd);
            }
        }
    }

    /// The news since the last call, by container and directory; None when the queue
    /// overflowed (all are suspect).
    fn drain(&self) -> Option<HashMap<String, HashMap<PathBuf, DirNews>>> {
        let mut dirty: HashMap<String, HashMap<PathBuf, DirNews>> = HashMap::new();
        let Some(inotify) = &self.inotify else {
            return Some(dirty);
        };
        loop {
            let events = match inotify.read_events() {
                Ok(e) if !e.is_empty() => e,
                _ => return Some(dirty),
            };
            let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    return None;
                }
                if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                    if let Some((id, dir)) = owners.remove(&event.wd) {
                        dirty.entry(id).or_default().entry(dir).or_default().whole = true;
                    }
                    continue;
                }
                if let Some((id, dir)) = owners.get(&event.wd) {
                    let news = dirty
                        .entry(id.clone())
                        .or_default()
                        .entry(dir.clone())
                        .or_default();
                    match (entry_change(event.mask), event.name) {
                        (Some(change), Some(name)) => news.entries.push((name, change)),
                        _ => news.whole = true,
                    }
                }
            }
        }
    }
}

/// What an event says of a non-directory entry; None for a directory's own events and for
/// subdirectories (their directory is read again).
fn entry_change(mask: AddWatchFlags) -> Option<EntryChange> {
    if mask.contains(AddWatchFlags::IN_ISDIR) {
        return None;
    }
    if mask.contains(AddWatchFlags::IN_CREATE) {
        Some(EntryChange::Created)
    } else if mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
        Some(EntryChange::Removed)
    } else if mask.contains(AddWatchFlags::IN_MOVED_TO) {
        Some(EntryChange::MovedIn)
    } else if mask.intersects(AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_ATTRIB) {
        Some(EntryChange::Changed)
    } else {
        None
    }
}

/// Work for the big-walk worker: the layer's tree to update with the directories that
/// changed, or (no tree) a full read.
struct Job {
    id: String,
    upper: PathBuf,
    volumes: Vec<String>,
    tree: Option<LayerTree>,
    changed: Vec<(PathBuf, DirNews)>,
}

struct JobResult {
    id: String,
    tree: Option<LayerTree>,
    /// A full read (it restarts the safety net's timer).
    full: bool,
    watched: bool,
    seconds: f64,
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

impl Accounting {
    /// Starts the accounting of the containers of `rt`'s data root into `cache`.
    pub fn start(
        rt: Runtime,
        store: Arc<Store>,
        cache: Arc<Cache>,
        options: AccountingOptions,
    ) -> Result<Accounting, MetricsError> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| {
                tracing::warn!(error = %MetricsError::Inotify(e), "writable layers are re-walked on a timer instead");
            })
            .ok();
        let watches = Arc::new(Watches {
            inotify,
            owners: Mutex::new(HashMap::new()),
        });
        // Its own connection: the agent's is not held while walking; WAL lets both read.
        let db = Db::open(store.layout())?;
        let stop = Arc::new(AtomicBool::new(false));
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let results = Arc::new(Mutex::new(Vec::<JobResult>::new()));
        {
            let (watches, results, stop) = (watches.clone(), results.clone(), stop.clone());
            std::thread::Builder::new()
                .name("layerlet-big-walks".into())
                .spawn(move || big_walks(jobs_rx, &watches, &results, &stop))
                .map_err(MetricsError::Thread)?;
        }
        let state = State {
            device: device_of(rt.layout.root()),
            rt,
            store,
            db,
            cache,
            options,
            watches,
            jobs: jobs_tx,
            results,
            tracked: BTreeMap::new(),
            pods: BTreeMap::new(),
            snapshot: StoreSnapshot::default(),
            evictions: BTreeMap::new(),
            db_version: None,
            walks: 0,
            walk_seconds: 0.0,
        };
        let stop2 = stop.clone();
        std::thread::Builder::new()
            .name("layerlet-accounting".into())
            .spawn(move || state.run(&stop2))
            .map_err(MetricsError::Thread)?;
        Ok(Accounting { stop })
    }
}

fn big_walks(
    jobs: mpsc::Receiver<Job>,
    watches: &Watches,
    results: &Mutex<Vec<JobResult>>,
    stop: &AtomicBool,
) {
    while let Ok(job) = jobs.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let started = Instant::now();
        let mut watched = true;
        let mut on_dir = |dir: &Path| watched &= watches.add(&job.id, dir);
        let (tree, full) = match job.tree {
            Some(mut tree) => match tree.apply(job.changed, &mut on_dir) {
                Ok(()) => (Some(tree), false),
                Err(_) => (None, false),
            },
            None => (
                LayerTree::read(&job.upper, &job.volumes, None, &mut on_dir)
                    .ok()
                    .flatten(),
                true,
            ),
        };
        results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(JobResult {
                id: job.id,
                tree,
                full,
                watched,
                seconds: started.elapsed().as_secs_f64(),
            });
    }
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

struct State {
    rt: Runtime,
    store: Arc<Store>,
    db: Db,
    cache: Arc<Cache>,
    options: AccountingOptions,
    watches: Arc<Watches>,
    jobs: mpsc::Sender<Job>,
    results: Arc<Mutex<Vec<JobResult>>>,
    tracked: BTreeMap<String, Tracked>,
    pods: BTreeMap<String, PodInfo>,
    snapshot: StoreSnapshot,
    evictions: BTreeMap<String, Eviction>,
    db_version: Option<i64>,
    device: String,
    walks: u64,
    walk_seconds: f64,
}

impl State {
    fn run(mut self, stop: &AtomicBool) {
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
        if let Ok(snapshot) = StoreSnapshot::load(&self.db) {
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
        let done: Vec<JobResult> =
            std::mem::take(&mut *self.results.lock().unwrap_or_else(|p| p.into_inner()));
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
            match self.jobs.send(job) {
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
