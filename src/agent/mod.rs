//! The node agent: watches pod YAML, reconciles it with what runs, reports status.
//!
//! One loop: a manifest change, a tick (for exits and backoff timers) or a finished step
//! wakes it; it reads the desired state (manifests) and the observed state (records and the
//! monitors' files), asks the pure planner for steps, and hands each pod's steps to a task of
//! its own, so a pod stopping for its grace period holds up no other pod.

pub mod api;
pub mod config;
mod kubelet;
pub mod metrics;
pub mod plan;
pub mod probe;
pub mod prober;
pub mod status;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::http::{serve, HttpError, Response};
use crate::image::digest::Digest;
use crate::image::gc_policy::Watermarks;
use crate::image::pull::{pull, PullOptions};
use crate::image::store::Store;
use crate::pod::spec::{PodSpec, PullPolicy};
use crate::pod::Limits;
use crate::runtime::container::Runtime;
use crate::runtime::pods::{self, clean_orphans, open_pod, pod_spec, PodError};
use crate::runtime::state::Status;
use crate::source::manifests::{scan, watch, Desired, ManifestState, SourceError};
use crate::sys::lock::{FileLock, LockError, LockMode};
use crate::time::format_rfc3339_nano;
use crate::time::unix_ms_now;
use plan::{plan, Backoff, ObservedContainer, ObservedPod, PullFailure, Step};
use prober::Prober;
use status::ExitInfo;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("another layerlet agent runs on data root {root} (it holds {lock}); one agent per data root")]
    AlreadyRunning { root: PathBuf, lock: PathBuf },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Kube(#[from] crate::source::kube::KubeError),
    #[error(transparent)]
    Kubelet(#[from] crate::kubelet::KubeletError),
    #[error("background task failed: {0}")]
    Task(String),
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub manifests: PathBuf,
    pub listen: String,
    pub rescan: Duration,
    pub shutdown_pods: bool,
    pub backoff: Backoff,
    pub pull: PullOptions,
    pub limits: Limits,
    pub image_gc: ImageGcConfig,
    /// Also run the pods bound to this node through the Kubernetes API server.
    pub kube: Option<crate::source::kube::KubeAccess>,
    /// With `kube`: register this node (Node object, Ready status, lease heartbeat).
    pub register_node: bool,
    /// The kubelet API (`--kubelet-listen`), off when None.
    pub kubelet: Option<crate::kubelet::KubeletOptions>,
}

/// kubelet's image garbage collection: watermarks and how often the disk is checked.
#[derive(Debug, Clone, Copy)]
pub struct ImageGcConfig {
    pub marks: Watermarks,
    pub period: Duration,
}

impl Default for ImageGcConfig {
    fn default() -> Self {
        ImageGcConfig {
            marks: Watermarks::default(),
            period: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "lastTimestamp")]
    pub time: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub reason: String,
    pub message: String,
    #[serde(rename = "involvedObject")]
    pub object: EventObject,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventObject {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    #[serde(rename = "fieldPath", skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// What the HTTP side reads and the loop and tasks write.
#[derive(Default)]
pub struct Shared {
    pub pods: Mutex<serde_json::Value>,
    pub events: Mutex<VecDeque<Event>>,
    pub ready: AtomicBool,
    pub manifest_errors: AtomicU64,
    pub reconcile_errors: AtomicU64,
    pub reconciles: AtomicU64,
    /// The registry /metrics serves, and what the agent feeds into it.
    pub metrics: crate::metrics::Metrics,
    /// Pods evicted for their ephemeral storage, by uid: the message their status shows.
    pub evicted: Mutex<BTreeMap<String, String>>,
    /// In kube mode, where events also go (to be posted to the API server).
    pub event_tap: Mutex<Option<mpsc::Sender<Event>>>,
}

const MAX_EVENTS: usize = 1000;

impl Shared {
    /// An event about the node rather than a pod (disk pressure, image GC).
    pub fn node_event(&self, kind: &'static str, reason: &str, message: String) {
        if kind == "Warning" {
            tracing::warn!(reason, "{message}");
        } else {
            tracing::info!(reason, "{message}");
        }
        self.push_event(Event {
            time: format_rfc3339_nano(std::time::SystemTime::now()),
            kind,
            reason: reason.to_string(),
            message,
            object: EventObject {
                kind: "Node",
                namespace: String::new(),
                name: String::new(),
                field_path: None,
            },
        });
    }

    fn push_event(&self, event: Event) {
        if let Some(tap) = self
            .event_tap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            // Full: the API server is slow or away; events there are best effort.
            let _ = tap.try_send(event.clone());
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() >= MAX_EVENTS {
            events.pop_front();
        }
        events.push_back(event);
    }

    pub fn event(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        container: Option<&str>,
        reason: &str,
        message: String,
    ) {
        if kind == "Warning" {
            tracing::warn!(pod = %format!("{namespace}/{name}"), container, reason, "{message}");
        } else {
            tracing::info!(pod = %format!("{namespace}/{name}"), container, reason, "{message}");
        }
        self.push_event(Event {
            time: format_rfc3339_nano(std::time::SystemTime::now()),
            kind,
            reason: reason.to_string(),
            message,
            object: EventObject {
                kind: "Pod",
                namespace: namespace.to_string(),
                name: name.to_string(),
                field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            },
        });
    }
}

struct Context {
    rt: Runtime,
    store: Arc<Store>,
    cfg: AgentConfig,
    shared: Arc<Shared>,
    pulls: Mutex<BTreeMap<(String, String), PullFailure>>,
    busy: Mutex<HashSet<String>>,
    /// Pods whose last steps failed: (failures, when), so a pod that cannot be created is
    /// retried with backoff instead of every round.
    failing: Mutex<BTreeMap<String, (u32, u64)>>,
    wake: mpsc::Sender<()>,
    config: Arc<config::ConfigState>,
    prober: Arc<Prober>,
    api: Option<api::ApiLink>,
    /// Pod uid -> its startTime (ms), fixed when first published.
    start_times: Mutex<BTreeMap<String, u64>>,
}

/// Records, containers and monitors' files of the pods the agent owns.
/// The agent's pods as the node has them, exit reasons by container ID, and when each pod
/// record was created.
struct Observation {
    pods: BTreeMap<String, ObservedPod>,
    reasons: BTreeMap<String, ExitInfo>,
    created: BTreeMap<String, i64>,
    /// Pod key -> container name -> the image digest its newest instance runs.
    image_ids: BTreeMap<String, BTreeMap<String, String>>,
}

fn observe(rt: &Runtime, store: &Store) -> Result<Observation, PodError> {
    let records = store.db().pods()?;
    let containers = store.db().containers()?;
    let mut out = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    let mut created = BTreeMap::new();
    let mut image_ids: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.owner == "agent") {
        let spec = pod_spec(record)?;
        let mut observed = Vec::new();
        for c in containers.iter().filter(|c| c.pod_uid == record.uid) {
            rt.settle_lost(&c.id)?;
            let state = rt.dirs(&c.id).state();
            let started = state.started().ok().flatten();
            let exited = state.exited().ok().flatten();
            let status = if exited.is_some() {
                Status::Exited
            } else if started.is_some() {
                Status::Running
            } else {
                Status::Created
            };
            if let Some(e) = &exited {
                reasons.insert(
                    c.id.clone(),
                    ExitInfo {
                        reason: e.reason.clone(),
                        message: e.message.clone(),
                    },
                );
            }
            observed.push(ObservedContainer {
                id: c.id.clone(),
                name: c.name.clone(),
                attempt: c.attempt,
                status,
                exit_code: exited.as_ref().map(|e| e.exit_code),
                started_ms: started
                    .as_ref()
                    .map(|s| s.started_unix_ms)
                    .or(exited.as_ref().map(|e| e.finished_unix_ms)),
                finished_ms: exited.as_ref().map(|e| e.finished_unix_ms),
                unhealthy: false,
            });
        }
        let mut newest: BTreeMap<&str, (u32, String)> = BTreeMap::new();
        for c in containers.iter().filter(|c| c.pod_uid == record.uid) {
            if newest
                .get(c.name.as_str())
                .is_none_or(|(a, _)| c.attempt >= *a)
            {
                newest.insert(&c.name, (c.attempt, c.image.to_string()));
            }
        }
        image_ids.insert(
            spec.key(),
            newest
                .into_iter()
                .map(|(n, (_, d))| (n.to_string(), d))
                .collect(),
        );
        created.insert(spec.key(), record.created_at);
        out.insert(
            spec.key(),
            ObservedPod {
                uid: record.uid.clone(),
                spec,
                containers: observed,
                created_ms: (record.created_at.max(0) as u64) * 1000,
            },
        );
    }
    Ok(Observation {
        pods: out,
        reasons,
        created,
        image_ids,
    })
}

async fn ensure_image(
    ctx: &Context,
    spec: &PodSpec,
    container: &crate::pod::spec::ContainerSpec,
) -> Result<Digest, String> {
    let present = ctx.store.resolve(&container.image).ok();
    match (container.image_pull_policy, present) {
        (PullPolicy::IfNotPresent | PullPolicy::Never, Some(d)) => Ok(d),
        (PullPolicy::Never, None) => Err(format!(
            "image {} is not present with pull policy Never",
            container.image
        )),
        _ => {
            ctx.shared.event(
                "Normal",
                &spec.namespace,
                &spec.name,
                Some(&container.name),
                "Pulling",
                format!("Pulling image {:?}", container.image),
            );
            let started = std::time::Instant::now();
            ctx.shared.metrics.start.pulled(&spec.uid);
            let result = pull(&ctx.store, &container.image, &ctx.cfg.pull).await;
            let outcome = if result.is_ok() { "success" } else { "failure" };
            let m = &ctx.shared.metrics;
            m.pulls.with_label_values(&[outcome]).inc();
            m.pull_seconds
                .with_label_values(&[outcome])
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(image) => {
                    m.pull_bytes.inc_by(image.fetched_bytes);
                    ctx.shared.event(
                        "Normal",
                        &spec.namespace,
                        &spec.name,
                        Some(&container.name),
                        "Pulled",
                        format!(
                            "Successfully pulled image {:?} in {:.3}s",
                            container.image,
                            started.elapsed().as_secs_f64()
                        ),
                    );
                    Ok(image.digest)
                }
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PodError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs one pod's steps in order.
async fn apply_pod(ctx: Arc<Context>, key: String, steps: Vec<Step>, spec: Option<PodSpec>) {
    let mut failed = false;
    for step in steps {
        let result = apply_step(&ctx, &step, spec.as_ref()).await;
        if let Err(message) = result {
            ctx.shared.reconcile_errors.fetch_add(1, Ordering::Relaxed);
            ctx.shared
                .metrics
                .reconcile_step_errors
                .with_label_values(&[metrics::step_name(&step)])
                .inc();
            let (ns, name) = key.split_once('/').unwrap_or(("default", key.as_str()));
            ctx.shared
                .event("Warning", ns, name, None, "FailedSync", message);
            failed = true;
            break;
        }
    }
    {
        let mut failing = ctx.failing.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            let entry = failing.entry(key.clone()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = unix_ms_now();
        } else {
            failing.remove(&key);
        }
    }
    ctx.busy
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&key);
    let _ = ctx.wake.try_send(());
}

async fn apply_step(ctx: &Arc<Context>, step: &Step, spec: Option<&PodSpec>) -> Result<(), String> {
    let rt = ctx.rt.clone();
    let store = ctx.store.clone();
    match step {
        Step::CreatePod { .. } => {
            let spec = spec.cloned().ok_or("no spec")?;
            blocking(move || pods::create_pod(&rt, &store, &spec, "agent").map(|_| ())).await
        }
        Step::RemovePod { key, uid } => {
            let (ns, name) = key.split_once('/').unwrap_or(("default", key));
            ctx.shared.event(
                "Normal",
                ns,
                name,
                None,
                "Killing",
                format!("Stopping pod {key}"),
            );
            let deletion = ctx.api.as_ref().and_then(|a| a.deletion(uid));
            let uid = uid.clone();
            let shared = ctx.shared.clone();
            blocking(move || {
                let record = store.db().pods()?.into_iter().find(|p| p.uid == uid);
                match record {
                    Some(r) => {
                        let mut grace = pod_spec(&r)
                            .map(|s| s.termination_grace_period)
                            .unwrap_or(Duration::from_secs(30));
                        // A graceful delete through the API sets it (kubelet uses
                        // deletionGracePeriodSeconds as given).
                        if let Some(Some(given)) = deletion {
                            grace = given;
                        }
                        // Bound first: the database guard must not live across status().
                        let containers = pods::pod_containers(&store.db(), &r.uid)?;
                        let running = containers
                            .iter()
                            .any(|c| rt.status(&c.id).is_ok_and(|s| s == Status::Running));
                        if !running {
                            return pods::remove_pod_within(&rt, &store, &r, grace);
                        }
                        let grace = prober::pre_stop_pod(&rt, &store, &shared, &r, grace)?;
                        if deletion.is_some() {
                            // Stopped only: the API server is to see the containers
                            // terminated before the pod goes (see ApiLink::hold_back).
                            return pods::stop_pod(&rt, &store, &r, grace);
                        }
                        pods::remove_pod_within(&rt, &store, &r, grace)
                    }
                    None => Ok(()),
                }
            })
            .await
        }
        Step::StartContainer { name, attempt, .. } => {
            let spec = spec.cloned().ok_or("no spec")?;
            let container = spec
                .all_containers()
                .find(|c| &c.name == name)
                .cloned()
                .ok_or_else(|| format!("no container {name}"))?;
            let Some(pod_env) = ctx.config.container_env(&ctx.shared, &spec, &container) else {
                return Ok(()); // CreateContainerConfigError until the objects appear
            };
            if !ctx
                .config
                .volumes_ready(&ctx.shared, &spec, &container.name)
            {
                return Ok(());
            }
            let image = match ensure_image(ctx, &spec, &container).await {
                Ok(d) => {
                    ctx.pulls
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&(spec.uid.clone(), name.clone()));
                    d
                }
                Err(message) => {
                    let mut pulls = ctx.pulls.lock().unwrap_or_else(|p| p.into_inner());
                    let entry =
                        pulls
                            .entry((spec.uid.clone(), name.clone()))
                            .or_insert(PullFailure {
                                failures: 0,
                                last_ms: 0,
                                message: String::new(),
                            });
                    entry.failures += 1;
                    entry.last_ms = unix_ms_now();
                    entry.message = message.clone();
                    let reason = if entry.failures > 1 {
                        "BackOff"
                    } else {
                        "Failed"
                    };
                    drop(pulls);
                    ctx.shared.event(
                        "Warning",
                        &spec.namespace,
                        &spec.name,
                        Some(name),
                        reason,
                        format!("Failed to pull image {:?}: {message}", container.image),
                    );
                    return Ok(());
                }
            };
            let attempt = *attempt;
            let shared = ctx.shared.clone();
            let config = ctx.config.clone();
            let prober = ctx.prober.clone();
            blocking(move || {
                let (sandbox, volumes) = open_pod(&rt, &spec)?;
                if !config
                    .write_volumes(&shared, &spec, &container.name, &volumes)
                    .map_err(PodError::from)?
                {
                    return Ok(());
                }
                let created = rt.create(
                    &store, &spec, &sandbox, &volumes, &container, &image, attempt, &pod_env,
                )?;
                for w in &created.warnings {
                    shared.event(
                        "Warning",
                        &spec.namespace,
                        &spec.name,
                        Some(&container.name),
                        "VolumeWithoutMount",
                        w.clone(),
                    );
                }
                shared.event(
                    "Normal",
                    &spec.namespace,
                    &spec.name,
                    Some(&container.name),
                    "Created",
                    format!("Created container {}", container.name),
                );
                match prober.start(&rt, &store, &spec, &container, &created.record.id) {
                    Ok(_) => shared.event(
                        "Normal",
                        &spec.namespace,
                        &spec.name,
                        Some(&container.name),
                        "Started",
                        format!("Started container {}", container.name),
                    ),
                    Err(e) => shared.event(
                        "Warning",
                        &spec.namespace,
                        &spec.name,
                        Some(&container.name),
                        "Failed",
                        e.to_string(),
                    ),
                }
                Ok(())
            })
            .await
        }
        Step::StopContainer { key, id } => {
            let grace = ctx.prober.kill_grace(id).unwrap_or_else(|| {
                spec.map(|s| s.termination_grace_period)
                    .unwrap_or(Duration::from_secs(30))
            });
            let (ns, name) = key.split_once('/').unwrap_or(("default", key));
            ctx.shared.event(
                "Normal",
                ns,
                name,
                None,
                "Killing",
                format!("Stopping container {}", &id[..12.min(id.len())]),
            );
            let id = id.clone();
            let shared = ctx.shared.clone();
            blocking(move || prober::stop_container(&rt, &store, &shared, &id, grace)).await
        }
        Step::DeleteContainer { id, .. } => {
            let id = id.clone();
            blocking(move || rt.delete(&store, &id).map_err(PodError::from)).await
        }
        Step::UpdateSpec { .. } => {
            let spec = spec.cloned().ok_or("no spec")?;
            let config = ctx.config.clone();
            blocking(move || {
                let json = serde_json::to_string(&spec).unwrap_or_default();
                store.db().update_pod_spec(&spec.uid, &json)?;
                // New labels or annotations reach the pod's downwardAPI volumes.
                config.sync_running(&rt, &store, &BTreeSet::from([spec.uid.clone()]));
                Ok(())
            })
            .await
        }
    }
}

fn report_scan(shared: &Shared, desired: &Desired, seen: &mut HashSet<String>) {
    for (file, message) in &desired.errors {
        if seen.insert(message.clone()) {
            shared.manifest_errors.fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .manifest_validation_errors
                .with_label_values(&[metrics::manifest_error_reason(message)])
                .inc();
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            shared.event(
                "Warning",
                "",
                &name,
                None,
                "FailedValidation",
                message.clone(),
            );
        }
    }
    for (pod, warning) in &desired.warnings {
        let text = format!("{pod}: {}: {}", warning.field, warning.message);
        if seen.insert(text.clone()) {
            let (ns, name) = pod.split_once('/').unwrap_or(("default", pod));
            shared.event(
                "Normal",
                ns,
                name,
                None,
                "IgnoredField",
                format!("{}: {}", warning.field, warning.message),
            );
        }
    }
}

/// Runs the agent until `shutdown` completes. Holds the data root's agent lock throughout.
pub async fn run(
    rt: Runtime,
    store: Arc<Store>,
    cfg: AgentConfig,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let lock_path = rt.root.join("agent.lock");
    let _lock = match FileLock::try_acquire(&lock_path, LockMode::Exclusive) {
        Ok(l) => l,
        Err(LockError::WouldBlock { .. }) => {
            return Err(AgentError::AlreadyRunning {
                root: rt.root.clone(),
                lock: lock_path,
            })
        }
        Err(e) => return Err(e.into()),
    };
    // A bad kubeconfig is refused before anything on the node is touched.
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let node = crate::runtime::node::node_info(&rt.node_name, &rt.root);
    let api = match &cfg.kube {
        Some(access) => Some(
            api::ApiLink::start(access, &node, cfg.register_node, &shared, wake_tx.clone()).await?,
        ),
        None => None,
    };
    {
        let (rt2, store2) = (rt.clone(), store.clone());
        let report = tokio::task::spawn_blocking(move || clean_orphans(&rt2, &store2, 30))
            .await
            .map_err(|e| AgentError::Task(e.to_string()))??;
        if !report.containers.is_empty() || !report.pods.is_empty() {
            tracing::warn!(containers = ?report.containers, pods = ?report.pods, "removed leftovers of a crash");
        }
    }
    // Copies of older layerlet versions that no monitor runs from any more.
    match tokio::task::spawn_blocking(crate::sys::exe::prune_sealed_copies).await {
        Ok(Ok(removed)) if !removed.is_empty() => {
            tracing::info!(removed = ?removed, "removed sealed copies of older layerlet binaries")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "pruning sealed copies of older binaries failed"),
        _ => {}
    }
    // Already there when `run` is called again with the same Shared: that is fine.
    let _ = shared
        .metrics
        .registry
        .register(Box::new(metrics::AgentCollector::new(Arc::downgrade(
            &shared,
        ))));
    let _accounting = crate::metrics::Accounting::start(
        rt.clone(),
        store.clone(),
        shared.metrics.cache.clone(),
        crate::metrics::AccountingOptions::default(),
    )
    .map_err(|e| tracing::warn!(error = %e, "no CoW accounting: its metrics stay empty"))
    .ok();
    let prober = Arc::new(Prober::new(rt.clone(), shared.clone(), wake_tx.clone()));
    let ctx = Arc::new(Context {
        prober,
        rt,
        store,
        cfg: cfg.clone(),
        shared: shared.clone(),
        pulls: Mutex::new(BTreeMap::new()),
        busy: Mutex::new(HashSet::new()),
        failing: Mutex::new(BTreeMap::new()),
        wake: wake_tx,
        config: Arc::new(config::ConfigState::new(node)),
        api,
        start_times: Mutex::new(BTreeMap::new()),
    });
    let http_shared = shared.clone();
    let handler = Arc::new(move |path: &str| handle(&http_shared, path));
    let (addr, server) = serve(&cfg.listen, handler).await?;
    tracing::info!(%addr, manifests = %cfg.manifests.display(), "layerlet agent started");
    let server = tokio::spawn(server);
    let kubelet = match &cfg.kubelet {
        Some(opts) => Some(kubelet::start_kubelet(&ctx, opts).await?),
        None => None,
    };

    let mut changes = watch(&cfg.manifests)?;
    let mut manifests = ManifestState::default();
    let mut seen_errors = HashSet::new();
    let mut files = manifests.update(scan(&cfg.manifests, &cfg.limits));
    let mut desired = with_api(&ctx, &files);
    report_scan(&shared, &desired, &mut seen_errors);
    ctx.config.update(&desired);
    // Objects may have changed while no agent ran: adopted pods get them now.
    config::spawn_sync(&ctx, &desired);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut last_cleanup = std::time::Instant::now();
    let mut rescan = tokio::time::interval(cfg.rescan);
    // The first pass one period after start, as kubelet's, not while pods are being adopted.
    let mut image_gc = tokio::time::interval_at(
        tokio::time::Instant::now() + cfg.image_gc.period,
        cfg.image_gc.period,
    );
    let image_gc_running = Arc::new(AtomicBool::new(false));
    tokio::pin!(shutdown);
    loop {
        let mut rescan_now = false;
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = changes.recv() => rescan_now = true,
            _ = rescan.tick() => rescan_now = true,
            Some(()) = wake_rx.recv() => {},
            _ = tick.tick() => {},
            _ = image_gc.tick() => {
                if !image_gc_running.swap(true, Ordering::AcqRel) {
                    tokio::spawn(collect_images(ctx.clone(), desired.clone(), image_gc_running.clone()));
                }
            },
        }
        if rescan_now {
            files = manifests.update(scan(&cfg.manifests, &cfg.limits));
        }
        // The API server's pods and objects change without a rescan.
        if rescan_now || ctx.api.as_ref().is_some_and(|a| a.moved()) {
            desired = with_api(&ctx, &files);
            report_scan(&shared, &desired, &mut seen_errors);
            if ctx.config.update(&desired) {
                // Running pods see changed ConfigMaps and Secrets in their volumes.
                config::spawn_sync(&ctx, &desired);
            }
        }
        if last_cleanup.elapsed() >= Duration::from_secs(30) {
            last_cleanup = std::time::Instant::now();
            // Debris of a crash (a half-created container) that the start-up pass found too
            // young to be sure of.
            let (rt, store) = (ctx.rt.clone(), ctx.store.clone());
            let busy = ctx
                .busy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            if busy {
                match tokio::task::spawn_blocking(move || clean_orphans(&rt, &store, 30)).await {
                    Ok(Ok(report)) if !report.containers.is_empty() || !report.pods.is_empty() => {
                        tracing::warn!(containers = ?report.containers, pods = ?report.pods, "removed leftovers of a crash");
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cleanup of leftovers failed"),
                    _ => {}
                }
            }
        }
        if let Err(e) = reconcile(&ctx, &desired).await {
            shared.reconcile_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "reconcile failed");
        }
    }
    server.abort();
    if let Some(k) = kubelet {
        k.task.abort();
    }
    if cfg.shutdown_pods {
        let (rt, store, shared) = (ctx.rt.clone(), ctx.store.clone(), ctx.shared.clone());
        tokio::task::spawn_blocking(move || -> Result<(), PodError> {
            // Bound first: the database guard must not live across stop_pod, which takes it.
            let records = store.db().pods()?;
            for record in records.into_iter().filter(|p| p.owner == "agent") {
                let grace = pod_spec(&record)
                    .map(|s| s.termination_grace_period)
                    .unwrap_or(Duration::from_secs(30));
                let grace = prober::pre_stop_pod(&rt, &store, &shared, &record, grace)?;
                pods::stop_pod(&rt, &store, &record, grace)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| AgentError::Task(e.to_string()))??;
    }
    Ok(())
}

/// The manifests' desired state, with the API server's merged in when the agent has one.
fn with_api(ctx: &Context, files: &Desired) -> Desired {
    match &ctx.api {
        Some(api) => api.merge(files),
        None => files.clone(),
    }
}

/// One image garbage collection pass: images the desired pods name are kept even while none
/// of their containers exists (between restarts, before the first start).
async fn collect_images(ctx: Arc<Context>, desired: Desired, running: Arc<AtomicBool>) {
    let store = ctx.store.clone();
    let marks = ctx.cfg.image_gc.marks;
    let result = tokio::task::spawn_blocking(move || {
        let keep: BTreeSet<Digest> = desired
            .pods
            .values()
            .flat_map(|p| p.all_containers())
            .filter_map(|c| store.resolve(&c.image).ok())
            .collect();
        store.free_space(marks, &keep)
    })
    .await;
    running.store(false, Ordering::Release);
    let shared = &ctx.shared;
    match result {
        Ok(Ok(report)) => {
            if report.wanted_bytes == 0 {
                return;
            }
            shared.metrics.gc_runs.inc();
            shared
                .metrics
                .gc_images_removed
                .inc_by(report.images_removed.len() as u64);
            shared
                .metrics
                .gc_freed_bytes
                .inc_by(report.collected.bytes_freed);
            tracing::info!(
                before = format!("{:.1}%", report.usage_percent_before),
                after = format!("{:.1}%", report.usage_percent_after),
                images = ?report.images_removed,
                freed = report.collected.bytes_freed,
                "image garbage collection"
            );
            if report.short_of_target() {
                shared.node_event(
                    "Warning",
                    "FreeDiskSpaceFailed",
                    format!(
                        "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
                        report.wanted_bytes, report.collected.bytes_freed
                    ),
                );
            }
        }
        Ok(Err(e)) => shared.node_event("Warning", "ImageGCFailed", e.to_string()),
        Err(e) => shared.node_event("Warning", "ImageGCFailed", e.to_string()),
    }
}

async fn reconcile(ctx: &Arc<Context>, desired: &Desired) -> Result<(), AgentError> {
    let (rt, store) = (ctx.rt.clone(), ctx.store.clone());
    let Observation {
        pods: mut observed,
        image_ids,
        reasons,
        created,
    } = tokio::task::spawn_blocking(move || observe(&rt, &store))
        .await
        .map_err(|e| AgentError::Task(e.to_string()))??;
    let kept;
    let desired = match &ctx.api {
        Some(api) => {
            let mut d = desired.clone();
            api.keep_unseen(&mut d, &observed);
            kept = d;
            &kept
        }
        None => desired,
    };
    ctx.prober.sync(&observed, &desired.pods);
    let health = ctx.prober.health();
    for c in observed.values_mut().flat_map(|p| p.containers.iter_mut()) {
        c.unhealthy = health.get(&c.id).is_some_and(|h| h.kill);
    }
    let now = unix_ms_now();
    let pulls = ctx.pulls.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut steps = plan(&desired.pods, &observed, &pulls, &ctx.cfg.backoff, now);
    if let Some(api) = &ctx.api {
        api.hold_back(&mut steps, &observed);
    }
    ctx.shared.reconciles.fetch_add(1, Ordering::Relaxed);
    let uids: HashSet<&str> = desired.pods.values().map(|p| p.uid.as_str()).collect();
    for uid in &uids {
        ctx.shared.metrics.start.seen(uid);
    }
    ctx.shared.metrics.start.retain(&|uid| uids.contains(uid));
    let evicted = evict(ctx, &observed);
    // An evicted pod is not restarted (kubelet leaves it Failed).
    steps.retain(|s| {
        !matches!(s, Step::StartContainer { .. })
            || !desired
                .pods
                .get(s.pod_key())
                .is_some_and(|p| evicted.contains(&p.uid))
    });
    let mut by_pod: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    for step in steps {
        by_pod
            .entry(step.pod_key().to_string())
            .or_default()
            .push(step);
    }
    let failing = ctx
        .failing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for (key, steps) in by_pod {
        if let Some((failures, last)) = failing.get(&key) {
            // 1 s doubling to the backoff maximum between retries of a pod whose steps fail.
            let delay = Backoff {
                initial_ms: 1_000,
                ..ctx.cfg.backoff
            }
            .delay_ms(failures.saturating_sub(1));
            if now < last + delay {
                continue;
            }
        }
        if !ctx
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
        {
            continue; // still working on this pod; the next round sees the result
        }
        tokio::spawn(apply_pod(
            ctx.clone(),
            key.clone(),
            steps,
            desired.pods.get(&key).cloned(),
        ));
    }
    publish(
        ctx, desired, &observed, &pulls, &reasons, &health, &created, &image_ids, now,
    );
    if let Some(api) = &ctx.api {
        let pods = ctx.shared.pods.lock().unwrap_or_else(|p| p.into_inner());
        api.report(&pods, &observed);
    }
    Ok(())
}

/// Acts on the accounting's ephemeral-storage evictions of the agent's pods: an event, and
/// every container of the pod stopped at once. Returns the uids of evicted pods.
fn evict(ctx: &Arc<Context>, observed: &BTreeMap<String, ObservedPod>) -> HashSet<String> {
    let mut evicted = ctx.shared.evicted.lock().unwrap_or_else(|p| p.into_inner());
    evicted.retain(|uid, _| observed.values().any(|p| &p.uid == uid));
    for e in ctx.shared.metrics.cache.evictions() {
        let Some(pod) = observed.values().find(|p| p.uid == e.pod_uid) else {
            continue;
        };
        if evicted.contains_key(&e.pod_uid) {
            continue;
        }
        evicted.insert(e.pod_uid.clone(), e.message.clone());
        ctx.shared.metrics.evictions.inc();
        ctx.shared.event(
            "Warning",
            &pod.spec.namespace,
            &pod.spec.name,
            None,
            "Evicted",
            e.message.clone(),
        );
        let ids: Vec<String> = pod
            .containers
            .iter()
            .filter(|c| c.status == Status::Running)
            .map(|c| c.id.clone())
            .collect();
        let rt = ctx.rt.clone();
        tokio::task::spawn_blocking(move || {
            for id in ids {
                if let Err(e) = rt.stop(&id, Duration::ZERO) {
                    tracing::warn!(container = %id, error = %e, "stopping an evicted container failed");
                }
            }
        });
    }
    evicted.keys().cloned().collect()
}

#[allow(clippy::too_many_arguments)]
fn publish(
    ctx: &Context,
    desired: &Desired,
    observed: &BTreeMap<String, ObservedPod>,
    pulls: &BTreeMap<(String, String), PullFailure>,
    reasons: &BTreeMap<String, ExitInfo>,
    health: &BTreeMap<String, prober::Health>,
    created: &BTreeMap<String, i64>,
    image_ids: &BTreeMap<String, BTreeMap<String, String>>,
    now: u64,
) {
    let mut items = Vec::new();
    let mut starts = ctx.start_times.lock().unwrap_or_else(|p| p.into_inner());
    let mut live = HashSet::new();
    let mut keys: Vec<&String> = desired.pods.keys().collect();
    for k in observed.keys() {
        if !desired.pods.contains_key(k) {
            keys.push(k);
        }
    }
    for key in keys {
        let spec = desired.pods.get(key).or(observed.get(key).map(|o| &o.spec));
        let Some(spec) = spec else { continue };
        // What the node has under this name, if it is this pod: a pod deleted and created
        // again under its name must not show its predecessor's containers.
        let same = observed.get(key).filter(|o| o.uid == spec.uid);
        // startTime: set once, when the pod is first seen (its record's time after a restart).
        let created_ms = *starts.entry(spec.uid.clone()).or_insert_with(|| {
            same.and(created.get(key))
                .map(|s| (*s as u64) * 1000)
                .unwrap_or(now)
        });
        live.insert(spec.uid.clone());
        let no_images = BTreeMap::new();
        let mut item = status::pod_json(
            spec,
            same,
            pulls,
            reasons,
            health,
            same.and(image_ids.get(key)).unwrap_or(&no_images),
            &ctx.rt.node_name,
            created_ms,
            now,
        );
        ctx.config.patch_status(&spec.uid, &mut item);
        items.push(item);
    }
    starts.retain(|uid, _| live.contains(uid));
    drop(starts);
    let evicted = ctx
        .shared
        .evicted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for item in items.iter_mut() {
        let uid = item["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = format!(
            "{}/{}",
            item["metadata"]["namespace"].as_str().unwrap_or("default"),
            item["metadata"]["name"].as_str().unwrap_or_default()
        );
        if let Some(message) = evicted.get(&uid) {
            item["status"]["phase"] = "Failed".into();
            item["status"]["reason"] = "Evicted".into();
            item["status"]["message"] = message.clone().into();
            status::stopped_for_good(&mut item["status"]);
        } else if !desired.pods.contains_key(&key) {
            // On its way out (removed, or deleted through the API): no restart follows, and
            // once nothing runs the phase is final, as kubelet reports a deleted pod.
            status::stopped_for_good(&mut item["status"]);
            if let Some(phase) = status::final_phase(&item["status"]) {
                item["status"]["phase"] = phase.into();
            }
        } else if item["status"]["phase"] == "Running" {
            if let Some((secs, pulled)) = ctx.shared.metrics.start.running(&uid) {
                ctx.shared
                    .metrics
                    .pod_start_seconds
                    .with_label_values(&[if pulled { "true" } else { "false" }])
                    .observe(secs);
            }
        }
    }
    *ctx.shared.pods.lock().unwrap_or_else(|p| p.into_inner()) = serde_json::json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "items": items,
    });
    ctx.shared.ready.store(true, Ordering::Relaxed);
}

fn handle(shared: &Shared, path: &str) -> Response {
    match path {
        "/healthz" => Response::ok("text/plain; charset=utf-8", "ok\n"),
        "/readyz" => {
            if shared.ready.load(Ordering::Relaxed) {
                Response::ok("text/plain; charset=utf-8", "ok\n")
            } else {
                Response {
                    status: 503,
                    content_type: "text/plain; charset=utf-8",
                    body: b"starting\n".to_vec(),
                }
            }
        }
        "/api/v1/pods" => {
            let pods = shared
                .pods
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            Response::ok(
                "application/json",
                serde_json::to_vec_pretty(&pods).unwrap_or_default(),
            )
        }
        "/api/v1/events" => {
            let events: Vec<Event> = shared
                .events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            let list =
                serde_json::json!({"apiVersion": "v1", "kind": "EventList", "items": events});
            Response::ok(
                "application/json",
                serde_json::to_vec_pretty(&list).unwrap_or_default(),
            )
        }
        "/metrics" => match shared.metrics.render() {
            Ok(body) => Response::ok("text/plain; version=0.0.4; charset=utf-8", body),
            Err(e) => Response {
                status: 500,
                content_type: "text/plain; charset=utf-8",
                body: format!("{e}\n").into_bytes(),
            },
        },
        _ => Response::not_found(),
    }
}
