//! The agent's life: take the data root's lock, connect to the API server if asked, clean
//! up after a crash, serve HTTP, then loop. A manifest change, a tick (for exits and
//! backoff timers), an API change or a finished pod task wakes the loop for a reconcile
//! round; at the end the agent's pods are left running (or stopped, if asked).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::agent_host::AgentHost;
use super::api::ApiLink;
use super::config::{spawn_sync, ConfigState};
use super::context::Context;
use super::endpoints::handle;
use super::error::AgentError;
use super::executor::{Executor, Images, PullRuntime};
use super::image_gc::collect_images;
use super::metrics::AgentCollector;
use super::observe::{observe, SpecCache};
use super::prober::Prober;
use super::reconcile::Reconciler;
use super::scan_report::report_scan;
use super::settings::AgentConfig;
use super::shared::Shared;
use crate::http::serve;
use crate::image::store::Store;
use crate::runtime::container::Runtime;
use crate::runtime::pods::{clean_orphans, pod_containers, stop_pod, PodError};
use crate::runtime::process::mount_base::MountBase;
use crate::runtime::state::Status;
use crate::source::manifests::{scan, watch, Desired, ManifestState};
use crate::source::node::NodeSettings;
use crate::sys::lock::{FileLock, LockError, LockMode};

/// The agent's containers are cloned from a mount base (see
/// [`crate::runtime::process::mount_base`]); without one they copy the host's mount table, which
/// is slower at many pods but works the same.
fn with_mount_base(mut rt: Runtime) -> Runtime {
    let roots = [rt.layout.root(), rt.layout.run_root()];
    match MountBase::create(&rt.exe, &roots) {
        Ok(base) => rt.mount_base = Some(Arc::new(base)),
        Err(e) => tracing::warn!(
            error = %e,
            "no mount base: each container start copies the host's mount table"
        ),
    }
    rt
}

/// Runs the agent until `shutdown` completes. Holds the data root's agent lock throughout.
pub async fn run(
    rt: Runtime,
    store: Arc<Store>,
    cfg: AgentConfig,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let lock_path = rt.layout.agent_lock();
    let _lock = take_agent_lock(&lock_path, rt.layout.root()).await?;
    // A bad kubeconfig is refused before anything on the node is touched.
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let address = crate::runtime::node::address::node_address(cfg.node_ip)?;
    tracing::info!(address = %address.ip, origin = ?address.origin, "the node's address");
    let node = crate::runtime::node::node_info(&rt.node_name, address.ip, rt.layout.root());
    let api = match &cfg.kube {
        Some(access) => {
            if cfg.register_node {
                rt.networking.await_node_pod_cidrs();
            }
            let register = cfg.register_node.then(|| NodeSettings {
                max_pods: cfg.max_pods,
                kubelet_port: cfg.kubelet.as_ref().and_then(|k| k.port()),
                data_root: rt.layout.root().to_path_buf(),
                pod_network: rt.networking.clone(),
            });
            Some(ApiLink::start(access, &node, register, &shared, wake_tx.clone()).await?)
        }
        None => None,
    };
    clean_up_after_a_crash(&rt, &store).await?;
    let rt = with_mount_base(rt);
    // Already there when `run` is called again with the same Shared: that is fine.
    let _ = shared
        .metrics
        .registry
        .register(Box::new(AgentCollector::new(Arc::downgrade(&shared))));
    let _accounting = crate::metrics::Accounting::start(
        rt.clone(),
        store.clone(),
        shared.metrics.cache.clone(),
        crate::metrics::AccountingOptions::default(),
    )
    .map_err(|e| tracing::warn!(error = %e, "no CoW accounting: its metrics stay empty"))
    .ok();
    let prober = Arc::new(Prober::new(rt.clone(), shared.clone(), wake_tx.clone()));
    let config = Arc::new(ConfigState::new(node));
    let host = AgentHost {
        shared: shared.clone(),
        config: config.clone(),
        prober: prober.clone(),
    };
    let images = Images::new(
        cfg.pull.clone(),
        PullRuntime::Handle(tokio::runtime::Handle::current()),
    );
    let exec = Arc::new(Executor {
        rt,
        store,
        owner: "agent",
        images,
        host: Arc::new(host),
    });
    let ctx = Context {
        exec,
        cfg: cfg.clone(),
        shared: shared.clone(),
        config,
        prober,
        api,
    };
    let http_shared = shared.clone();
    let handler = Arc::new(move |path: &str| handle(&http_shared, path));
    let (addr, server) = serve(&cfg.listen, handler).await?;
    tracing::info!(%addr, manifests = %cfg.manifests.display(), "layerlet agent started");
    let server = tokio::spawn(server);
    let kubelet = match &cfg.kubelet {
        Some(opts) => Some(super::kubelet::start_kubelet(&ctx, opts).await?),
        None => None,
    };

    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut reconciler = Reconciler::new(done_tx);
    let mut changes = watch(&cfg.manifests)?;
    let mut manifests = ManifestState::default();
    let mut seen_errors = HashSet::new();
    let mut files = manifests.update(scan(&cfg.manifests, &cfg.limits));
    let mut desired = with_api(&ctx, &files);
    report_scan(&shared, &desired, &mut seen_errors);
    ctx.config.update(&desired);
    // Objects may have changed while no agent ran: adopted pods get them now.
    spawn_sync(&ctx.exec.rt, &ctx.exec.store, &ctx.config, &desired);
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
            Some(done) = done_rx.recv() => reconciler.absorb(&shared, done),
            _ = tick.tick() => {},
            _ = image_gc.tick() => {
                if !image_gc_running.swap(true, Ordering::AcqRel) {
                    tokio::spawn(collect_images(
                        ctx.exec.store.clone(),
                        shared.clone(),
                        cfg.image_gc.marks,
                        desired.clone(),
                        image_gc_running.clone(),
                    ));
                }
            },
        }
        // Reports that came together wake one round.
        while let Ok(done) = done_rx.try_recv() {
            reconciler.absorb(&shared, done);
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
                spawn_sync(&ctx.exec.rt, &ctx.exec.store, &ctx.config, &desired);
            }
        }
        if last_cleanup.elapsed() >= Duration::from_secs(30) {
            last_cleanup = std::time::Instant::now();
            // Debris of a crash (a half-created container) that the start-up pass found too
            // young to be sure of; not while a pod's steps may be making some.
            if reconciler.idle() {
                clean_leftovers(&ctx.exec.rt, &ctx.exec.store).await;
            }
        }
        if let Err(e) = reconciler.round(&ctx, &desired).await {
            shared.reconcile_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "reconcile failed");
        }
    }
    server.abort();
    if let Some(k) = kubelet {
        k.task.abort();
    }
    if cfg.shutdown_pods {
        let exec = ctx.exec.clone();
        tokio::task::spawn_blocking(move || stop_all(&exec)).await??;
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

/// At start: leftovers of a crash, and copies of older layerlet versions that no monitor
/// runs from any more.
async fn clean_up_after_a_crash(rt: &Runtime, store: &Arc<Store>) -> Result<(), AgentError> {
    let (rt2, store2) = (rt.clone(), store.clone());
    let report = tokio::task::spawn_blocking(move || clean_orphans(&rt2, &store2, 30)).await??;
    if !report.containers.is_empty() || !report.pods.is_empty() {
        tracing::warn!(containers = ?report.containers, pods = ?report.pods, "removed leftovers of a crash");
    }
    let (rt2, store2) = (rt.clone(), store.clone());
    tokio::task::spawn_blocking(move || sweep_pod_network(&rt2, &store2)).await?;
    match tokio::task::spawn_blocking(crate::sys::exe::prune_sealed_copies).await {
        Ok(Ok(removed)) if !removed.is_empty() => {
            tracing::info!(removed = ?removed, "removed sealed copies of older layerlet binaries")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "pruning sealed copies of older binaries failed"),
        _ => {}
    }
    Ok(())
}

/// Detaches every CNI attachment whose pod is gone (a crash between ADD and the pod's
/// record, or a removal cut short), so host-local holds exactly the live pods' addresses.
/// A pod counts as live while its record or its sandbox exists.
fn sweep_pod_network(rt: &Runtime, store: &Store) {
    let mut live: std::collections::BTreeSet<String> = match store.db().pods() {
        Ok(pods) => pods.into_iter().map(|p| p.uid).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "no pod network sweep: the pod records do not read");
            return;
        }
    };
    if let Ok(entries) = std::fs::read_dir(rt.layout.sandboxes_dir()) {
        live.extend(
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok()),
        );
    }
    match rt.networking.sweep(live.iter().map(String::as_str)) {
        Ok(report) => {
            if !report.removed.is_empty() {
                let removed: Vec<String> = report.removed.iter().map(|id| id.to_string()).collect();
                tracing::warn!(attachments = ?removed, "detached the network of pods that are gone");
            }
            for (id, error) in report.failed {
                let id = id.map(|i| i.to_string()).unwrap_or_default();
                tracing::warn!(attachment = %id, error = %error, "detaching a gone pod's network failed; retried at the next start");
            }
        }
        Err(e) => tracing::warn!(error = %e, "the pod network sweep failed"),
    }
}

async fn clean_leftovers(rt: &Runtime, store: &Arc<Store>) {
    let (rt, store) = (rt.clone(), store.clone());
    match tokio::task::spawn_blocking(move || clean_orphans(&rt, &store, 30)).await {
        Ok(Ok(report)) if !report.containers.is_empty() || !report.pods.is_empty() => {
            tracing::warn!(containers = ?report.containers, pods = ?report.pods, "removed leftovers of a crash");
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cleanup of leftovers failed"),
        _ => {}
    }
}

/// `--shutdown-pods`: every pod of the agent stopped gracefully (preStop hooks first).
fn stop_all(exec: &Executor) -> Result<(), PodError> {
    let observation = observe(&exec.rt, &exec.store, "agent", &mut SpecCache::default())?;
    // Bound first: the database guard must not live across stop_pod, which takes it.
    let records = exec.store.db().pods()?;
    for pod in observation.pods.values() {
        let Some(record) = records.iter().find(|r| r.uid == pod.uid) else {
            continue;
        };
        let running: Vec<(String, String)> = pod_containers(&exec.store.db(), &pod.uid)?
            .into_iter()
            .filter(|c| exec.rt.status(&c.id).is_ok_and(|s| s == Status::Running))
            .map(|c| (c.name, c.id))
            .collect();
        let grace = pod.spec.termination_grace_period;
        let grace = exec.host.pre_stop_pod(&exec.rt, &pod.spec, &running, grace);
        stop_pod(&exec.rt, &exec.store, record, grace)?;
    }
    Ok(())
}

/// How long a starting agent waits for the data root's lock. A killed agent's lock can outlive
/// it by a moment: a child it was forking when it died shares the lock until its `exec`.
const AGENT_LOCK_WAIT: Duration = Duration::from_secs(5);

async fn take_agent_lock(lock_path: &Path, root: &Path) -> Result<FileLock, AgentError> {
    let deadline = tokio::time::Instant::now() + AGENT_LOCK_WAIT;
    let mut said = false;
    loop {
        match FileLock::try_acquire(lock_path, LockMode::Exclusive) {
            Ok(lock) => return Ok(lock),
            Err(LockError::WouldBlock { .. }) if tokio::time::Instant::now() < deadline => {
                if !said {
                    tracing::info!(lock = %lock_path.display(), "the data root's agent lock is held; waiting for it to be released");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(LockError::WouldBlock { .. }) => {
                return Err(AgentError::AlreadyRunning {
                    root: root.to_path_buf(),
                    lock: lock_path.to_path_buf(),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
}
