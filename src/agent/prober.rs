//! Runs probes and lifecycle hooks: one tokio task per running container that has probes,
//! driving the pure [`ContainerProbes`] with real time and the handlers of
//! `runtime::probe`. Results go to a health table that the status reads and the planner
//! turns into steps (a container marked for killing is stopped by a planned step).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::plan::ObservedPod;
use super::probe::{ContainerProbes, ProbeKind, Verdict};
use super::shared::Shared;
use crate::pod::spec::{ContainerSpec, Handler, PodSpec, ProbeHandler};
use crate::runtime::container::{ContainerError, Runtime};
use crate::runtime::process::probe::{self, Outcome, Target};
use crate::runtime::sandbox::sandbox_dir;
use crate::runtime::state::Status;
use crate::time::unix_ms_now;

/// Kubelet gives a container at least this long after its preStop hook.
const MIN_GRACE_AFTER_PRE_STOP: Duration = Duration::from_secs(2);
/// postStart has no timeout in Kubernetes; here a hung hook must not hold its pod forever.
pub const POST_START_LIMIT: Duration = Duration::from_secs(120);

/// What the status and the planner know of a running container beyond its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub started: bool,
    pub ready: bool,
    /// A liveness or startup probe failed: the planner stops the container.
    pub kill: bool,
    /// Its postStart hook still runs: not Running yet as far as the status goes.
    pub post_start: bool,
    /// The killing probe's own terminationGracePeriodSeconds, which overrides the pod's.
    pub kill_grace: Option<Duration>,
}

pub struct Prober {
    rt: Runtime,
    shared: Arc<Shared>,
    wake: mpsc::Sender<()>,
    health: Mutex<BTreeMap<String, Health>>,
    /// Containers whose postStart hook runs; only the hook's end removes them.
    hooks: Mutex<std::collections::BTreeSet<String>>,
    workers: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
}

/// Where a pod's container's handlers run.
pub fn target(rt: &Runtime, pod: &PodSpec, id: &str) -> Target {
    Target {
        exe: rt.exe.clone(),
        root: rt.layout.root().to_path_buf(),
        run_root: rt.layout.run_root().to_path_buf(),
        container_id: id.to_string(),
        netns: if pod.host_network {
            None
        } else {
            // A pod without a valid sandbox path gets an empty path, which fails to open:
            // never the host's namespace by mistake.
            Some(
                sandbox_dir(&rt.layout, pod)
                    .map(|d| d.join("ns").join("net"))
                    .unwrap_or_default(),
            )
        },
    }
}

/// Runs one probe handler (blocking).
pub fn run_probe(
    target: &Target,
    container: &ContainerSpec,
    handler: &ProbeHandler,
    timeout: Duration,
) -> Outcome {
    let netns = target.netns.as_deref();
    let port = |p| {
        probe::resolve_port(p, &container.ports)
            .ok_or_else(|| format!("port {p:?} is not one of the container's named ports"))
    };
    match handler {
        ProbeHandler::Exec { command } => probe::exec(target, command, timeout),
        ProbeHandler::HttpGet(get) => match port(&get.port) {
            Ok(n) => probe::http_get(netns, get, n, timeout),
            Err(e) => Outcome {
                ok: false,
                message: e,
            },
        },
        ProbeHandler::TcpSocket { port: p, host } => match port(p) {
            Ok(n) => probe::tcp(netns, host.as_deref(), n, timeout),
            Err(e) => Outcome {
                ok: false,
                message: e,
            },
        },
    }
}

/// Runs a lifecycle hook (blocking) within `limit`; Err is kubelet's failure message.
pub fn run_hook(
    target: &Target,
    pod: &PodSpec,
    container: &ContainerSpec,
    hook: &Handler,
    limit: Duration,
) -> Result<(), String> {
    let (kind, what, outcome) = match hook {
        Handler::Exec { command } => (
            "Exec",
            format!("[{}]", command.join(" ")),
            probe::exec(target, command, limit),
        ),
        Handler::HttpGet(get) => {
            let outcome = match probe::resolve_port(&get.port, &container.ports) {
                Some(n) => probe::http_get(target.netns.as_deref(), get, n, limit),
                None => Outcome {
                    ok: false,
                    message: format!("port {:?} is not one of the container's ports", get.port),
                },
            };
            ("HTTP", get.path.clone(), outcome)
        }
        Handler::Sleep(d) => {
            std::thread::sleep((*d).min(limit));
            return Ok(());
        }
    };
    if outcome.ok {
        return Ok(());
    }
    Err(format!(
        "{kind} lifecycle hook ({what}) for Container {:?} in Pod {:?} failed - error: {}",
        container.name,
        pod.key(),
        outcome.message
    ))
}

/// Runs the container's preStop hook (if any) within `grace`, then reports the grace left
/// for the stop signal: what the hook did not use, and at least two seconds, as kubelet.
pub fn pre_stop(
    rt: &Runtime,
    shared: &Shared,
    pod: &PodSpec,
    container: &ContainerSpec,
    id: &str,
    grace: Duration,
) -> Duration {
    let Some(hook) = &container.lifecycle.pre_stop else {
        return grace;
    };
    if !matches!(rt.status(id), Ok(Status::Running)) {
        return grace;
    }
    let started = Instant::now();
    if let Err(message) = run_hook(&target(rt, pod, id), pod, container, hook, grace) {
        shared.event(
            "Warning",
            &pod.namespace,
            &pod.name,
            Some(&container.name),
            "FailedPreStopHook",
            message,
        );
    }
    grace
        .saturating_sub(started.elapsed())
        .max(MIN_GRACE_AFTER_PRE_STOP)
}

/// Runs the preStop hooks of a pod's running containers, given as (name, id), in parallel;
/// returns the grace left for the stop signal (the least any container has left).
pub fn pre_stop_pod(
    rt: &Runtime,
    shared: &Shared,
    pod: &PodSpec,
    running: &[(String, String)],
    grace: Duration,
) -> Duration {
    std::thread::scope(|s| {
        let handles: Vec<_> = running
            .iter()
            .filter_map(|(name, id)| {
                let spec = pod.all_containers().find(|s| &s.name == name)?;
                spec.lifecycle.pre_stop.as_ref()?;
                Some(s.spawn(move || pre_stop(rt, shared, pod, spec, id, grace)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(grace))
            .min()
            .unwrap_or(grace)
    })
}

impl Prober {
    pub fn new(rt: Runtime, shared: Arc<Shared>, wake: mpsc::Sender<()>) -> Prober {
        Prober {
            rt,
            shared,
            wake,
            health: Mutex::new(BTreeMap::new()),
            hooks: Mutex::new(Default::default()),
            workers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Health by container ID; a container without an entry has no probes.
    /// The grace period a probe set for killing container `id`, if a probe kills it.
    pub fn kill_grace(&self, id: &str) -> Option<Duration> {
        let table = self.health.lock().unwrap_or_else(|p| p.into_inner());
        table.get(id).filter(|h| h.kill).and_then(|h| h.kill_grace)
    }

    pub fn health(&self) -> BTreeMap<String, Health> {
        let mut table = self
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for id in self.hooks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            table.insert(
                id.clone(),
                Health {
                    started: false,
                    ready: false,
                    kill: false,
                    post_start: true,
                    kill_grace: None,
                },
            );
        }
        table
    }

    fn set(&self, id: &str, health: Option<Health>) {
        let mut table = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match health {
            Some(h) => table.insert(id.to_string(), h),
            None => table.remove(id),
        };
    }

    /// A postStart hook runs: the container is neither started nor probed until it ends.
    pub fn hook_running(&self, id: &str, running: bool) {
        let mut hooks = self.hooks.lock().unwrap_or_else(|p| p.into_inner());
        if running {
            hooks.insert(id.to_string());
        } else {
            hooks.remove(id);
        }
        drop(hooks);
        let _ = self.wake.try_send(());
    }

    /// Starts a created container and runs its postStart hook; until the hook ends the
    /// container counts as neither running nor started. A failed hook is reported
    /// (`FailedPostStartHook`), the container stopped (it restarts per restartPolicy) and the
    /// start fails with kubelet's PostStartHookError.
    pub fn start(
        &self,
        rt: &Runtime,
        pod: &PodSpec,
        container: &ContainerSpec,
        id: &str,
    ) -> Result<i32, ContainerError> {
        let Some(hook) = &container.lifecycle.post_start else {
            return rt.start(id);
        };
        self.hook_running(id, true);
        let result = rt.start(id).and_then(|pid| {
            let target = target(rt, pod, id);
            match run_hook(&target, pod, container, hook, POST_START_LIMIT) {
                Ok(()) => Ok(pid),
                Err(message) => {
                    self.shared.event(
                        "Warning",
                        &pod.namespace,
                        &pod.name,
                        Some(&container.name),
                        "FailedPostStartHook",
                        message.clone(),
                    );
                    let grace = pre_stop(
                        rt,
                        &self.shared,
                        pod,
                        container,
                        id,
                        pod.termination_grace_period,
                    );
                    if let Err(e) = rt.stop(id, grace) {
                        tracing::warn!(container = id, error = %e, "stop after a failed postStart hook");
                    }
                    Err(ContainerError::StartFailed {
                        container: format!("pod {} container {}", pod.key(), container.name),
                        reason: format!("PostStartHookError: {message}"),
                    })
                }
            }
        });
        self.hook_running(id, false);
        result
    }

    /// Starts workers for running containers that have probes and none yet, and ends those
    /// of containers that no longer run. A new container takes its probes from the desired
    /// spec: the recorded one is updated only after its replacement containers started.
    pub fn sync(
        self: &Arc<Self>,
        observed: &BTreeMap<String, ObservedPod>,
        desired: &BTreeMap<String, PodSpec>,
    ) {
        let mut running = BTreeMap::new();
        for pod in observed.values() {
            for c in pod
                .containers
                .iter()
                .filter(|c| c.status == Status::Running)
            {
                running.insert(c.id.clone(), (pod, c));
            }
        }
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers.retain(|id, task| {
            let keep = running.contains_key(id);
            if !keep {
                task.abort();
            }
            keep
        });
        {
            let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
            health.retain(|id, _| running.contains_key(id));
        }
        let hooks = self.hooks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (id, (pod, c)) in running {
            if workers.contains_key(&id) || hooks.contains(&id) {
                continue;
            }
            let pod_spec = desired
                .get(&pod.spec.key())
                .filter(|d| d.uid == pod.uid)
                .unwrap_or(&pod.spec);
            let Some(spec) = pod_spec.containers.iter().find(|s| s.name == c.name) else {
                continue;
            };
            if spec.liveness_probe.is_none()
                && spec.readiness_probe.is_none()
                && spec.startup_probe.is_none()
            {
                continue;
            }
            let task = tokio::spawn(self.clone().worker(
                pod_spec.clone(),
                spec.clone(),
                id.clone(),
                c.started_ms.unwrap_or_else(unix_ms_now),
            ));
            workers.insert(id, task);
        }
    }

    async fn worker(self: Arc<Self>, pod: PodSpec, spec: ContainerSpec, id: String, started: u64) {
        let mut probes = ContainerProbes::new(&spec, started);
        let target = Arc::new(target(&self.rt, &pod, &id));
        let publish = |probes: &ContainerProbes, kill_grace: Option<Duration>| {
            self.set(
                &id,
                Some(Health {
                    started: probes.started(),
                    ready: probes.ready(),
                    kill: probes.killed(),
                    post_start: false,
                    kill_grace,
                }),
            )
        };
        publish(&probes, None);
        loop {
            let now = unix_ms_now();
            for kind in probes.due(now) {
                let probe = match kind {
                    ProbeKind::Startup => &spec.startup_probe,
                    ProbeKind::Liveness => &spec.liveness_probe,
                    ProbeKind::Readiness => &spec.readiness_probe,
                };
                let Some(probe) = probe.clone() else { continue };
                let (t, s) = (target.clone(), spec.clone());
                let outcome = tokio::task::spawn_blocking(move || {
                    run_probe(&t, &s, &probe.handler, probe.timeout)
                })
                .await
                .unwrap_or_else(|e| Outcome {
                    ok: false,
                    message: e.to_string(),
                });
                let event = |kind: &'static str, reason: &str, message: String| {
                    self.shared.event(
                        kind,
                        &pod.namespace,
                        &pod.name,
                        Some(&spec.name),
                        reason,
                        message,
                    )
                };
                if !outcome.ok {
                    event(
                        "Warning",
                        "Unhealthy",
                        format!("{} probe failed: {}", kind.title(), outcome.message),
                    );
                }
                let verdict = probes.record(kind, outcome.ok, now);
                publish(&probes, probe.termination_grace_period);
                match verdict {
                    Verdict::Kill(kind) => {
                        event(
                            "Normal",
                            "Killing",
                            format!(
                                "Container {} failed {} probe, will be restarted",
                                spec.name,
                                kind.lower()
                            ),
                        );
                        let _ = self.wake.try_send(());
                    }
                    Verdict::Started | Verdict::Ready(_) => {
                        let _ = self.wake.try_send(());
                    }
                    Verdict::None => {}
                }
            }
            let Some(next) = probes.next_due() else {
                return;
            };
            let wait = next.saturating_sub(unix_ms_now());
            tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
        }
    }
}
