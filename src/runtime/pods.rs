//! Pods on the node: sandbox + containers + records, created and removed as a unit, and the
//! names people use for them (`[NAMESPACE/]POD[/CONTAINER]` or an ID prefix).

use std::path::PathBuf;
use std::time::Duration;

use crate::image::store::Store;
use crate::layout::LayoutError;
use crate::meta::{Db, MetaError};
use crate::phases::timed;
use crate::pod::spec::PodSpec;
use crate::runtime::container::{ContainerError, Runtime};
use crate::runtime::records::{new_pod_record, ContainerRecord, PodRecord};
use crate::runtime::sandbox::{Sandbox, SandboxError};
use crate::runtime::storage::volumes::{self, PodVolumes, VolumeError};
use crate::sys::fs::{replace_file, FsError};

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("pod {0} already exists; remove it first with `layerlet rm {0}`")]
    Exists(String),
    #[error("no pod named {0:?}; `layerlet ps -a` lists them")]
    UnknownPod(String),
    #[error("no container named {0:?}; `layerlet ps -a` lists them")]
    UnknownContainer(String),
    #[error("{name:?} is ambiguous: {candidates}; name the container as POD/CONTAINER")]
    Ambiguous { name: String, candidates: String },
    #[error("pod {pod}: stored spec is unreadable: {source}")]
    BadRecord {
        pod: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Projected(#[from] crate::runtime::storage::projected::ProjectedError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Db(#[from] MetaError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// Records a new pod and creates its sandbox and volumes.
pub fn create_pod(
    rt: &Runtime,
    store: &Store,
    pod: &PodSpec,
    owner: &str,
) -> Result<(Sandbox, PodVolumes), PodError> {
    if store.db().pod_by_name(&pod.namespace, &pod.name)?.is_some() {
        return Err(PodError::Exists(pod.key()));
    }
    rt.networking
        .ready_for(pod)
        .map_err(|source| SandboxError::Network {
            pod: pod.key(),
            source: Box::new(source),
        })?;
    let sandbox = Sandbox::create(rt.helper_program(), &rt.layout, pod, &rt.networking)?;
    let undo = |sandbox: &Sandbox| {
        let _ = rt.networking.detach(&pod.uid);
        let _ = Sandbox::destroy_dir(&sandbox.dir);
        let _ = volumes::teardown(&rt.layout, &pod.uid);
    };
    let prepared = match volumes::prepare(&rt.layout, pod) {
        Ok(v) => v,
        Err(e) => {
            undo(&sandbox);
            return Err(e.into());
        }
    };
    let saved = serde_json::to_vec(&prepared)
        .map_err(|e| {
            FsError::io(
                "encode",
                sandbox.dir.join(VOLUMES_FILE),
                std::io::Error::other(e),
            )
        })
        .and_then(|bytes| replace_file(&sandbox.dir.join(VOLUMES_FILE), &bytes));
    if let Err(e) = saved {
        undo(&sandbox);
        return Err(SandboxError::from(e).into());
    }
    if let Err(e) = store.db().insert_pod(&new_pod_record(pod, owner)) {
        undo(&sandbox);
        return Err(e.into());
    }
    Ok((sandbox, prepared))
}

const VOLUMES_FILE: &str = "volumes.json";

/// The sandbox and volumes of a pod created earlier (by this process or before a restart).
pub fn open_pod(rt: &Runtime, pod: &PodSpec) -> Result<(Sandbox, PodVolumes), PodError> {
    let sandbox = Sandbox::open(&rt.layout, pod)?;
    let path = sandbox.dir.join(VOLUMES_FILE);
    let bytes =
        std::fs::read(&path).map_err(|e| SandboxError::from(FsError::io("read", &path, e)))?;
    let volumes = serde_json::from_slice(&bytes).map_err(|source| PodError::BadRecord {
        pod: pod.key(),
        source,
    })?;
    Ok((sandbox, volumes))
}

pub fn pod_spec(record: &PodRecord) -> Result<PodSpec, PodError> {
    serde_json::from_str(&record.spec).map_err(|source| PodError::BadRecord {
        pod: format!("{}/{}", record.namespace, record.name),
        source,
    })
}

/// The pod's containers, each name's attempts oldest first.
pub fn pod_containers(db: &Db, pod_uid: &str) -> Result<Vec<ContainerRecord>, PodError> {
    Ok(db
        .containers()?
        .into_iter()
        .filter(|c| c.pod_uid == pod_uid)
        .collect())
}

/// Stops every running container of the pod within `grace`. Idempotent.
pub fn stop_pod(
    rt: &Runtime,
    store: &Store,
    pod: &PodRecord,
    grace: Duration,
) -> Result<(), PodError> {
    let containers = pod_containers(&store.db(), &pod.uid)?;
    // Containers stop in parallel, as kubelet does, so the pod takes one grace period.
    let results: Vec<Result<(), ContainerError>> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .map(|c| s.spawn(move || rt.stop(&c.id, grace).map(|_| ())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(())))
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(())
}

/// Stops and deletes everything of the pod: containers, writable layers, sandbox, records.
pub fn remove_pod(rt: &Runtime, store: &Store, pod: &PodRecord) -> Result<(), PodError> {
    let grace = pod_spec(pod)
        .map(|s| s.termination_grace_period)
        .unwrap_or(Duration::from_secs(30));
    remove_pod_within(rt, store, pod, grace)
}

/// [`remove_pod`] with the stop signal given `grace` (what preStop hooks left of it).
pub fn remove_pod_within(
    rt: &Runtime,
    store: &Store,
    pod: &PodRecord,
    grace: Duration,
) -> Result<(), PodError> {
    timed("stop_containers", || stop_pod(rt, store, pod, grace))?;
    // Bound first: the database guard must not live across `delete`, which takes it again.
    let containers = pod_containers(&store.db(), &pod.uid)?;
    for c in containers {
        timed("delete_container", || rt.delete(store, &c.id))?;
    }
    // While the pod's namespace is still pinned, so plugins clean inside it too.
    timed("pod_network_detach", || rt.networking.detach(&pod.uid)).map_err(|source| {
        SandboxError::Network {
            pod: format!("{}/{}", pod.namespace, pod.name),
            source: Box::new(source),
        }
    })?;
    let sandbox_dir = rt.layout.sandbox_dir(&pod.uid)?;
    timed("destroy_sandbox", || Sandbox::destroy_dir(&sandbox_dir))?;
    volumes::teardown(&rt.layout, &pod.uid)?;
    timed("remove_pod_cgroup", || remove_pod_cgroups(rt, pod))?;
    timed("remove_pod_record", || store.db().remove_pod(&pod.uid))?;
    Ok(())
}

/// The pod's cgroup, with what its containers left, and the data root's level after its last
/// pod.
fn remove_pod_cgroups(rt: &Runtime, pod: &PodRecord) -> Result<(), PodError> {
    if let Ok(layout) = crate::runtime::isolation::cgroup::detect(&rt.cgroup_root) {
        let leftovers = crate::runtime::isolation::cgroup::Cgroup::new(
            layout.clone(),
            &rt.pod_cgroup_path(&pod.uid),
        )
        .remove_with_leftovers()
        .map_err(ContainerError::from)?;
        for leftover in leftovers {
            tracing::warn!(
                pod = %pod.name,
                cgroup = %leftover.display(),
                "removed a leftover container cgroup that no record owned"
            );
        }
        // The data root's own level goes with its last pod (busy while others remain).
        if let Some(parent) = std::path::Path::new(&rt.pod_cgroup_path(&pod.uid)).parent() {
            let _ =
                crate::runtime::isolation::cgroup::Cgroup::new(layout, &parent.to_string_lossy())
                    .remove();
        }
    }
    Ok(())
}

/// `[NAMESPACE/]POD`.
pub fn find_pod(db: &Db, name: &str) -> Result<PodRecord, PodError> {
    let (namespace, pod) = name.split_once('/').unwrap_or(("default", name));
    db.pod_by_name(namespace, pod)?
        .ok_or_else(|| PodError::UnknownPod(name.to_string()))
}

/// `[NAMESPACE/]POD/CONTAINER`, `[NAMESPACE/]POD` for a one-container pod, or an unambiguous
/// ID prefix; names win over ID prefixes. The latest attempt of that container.
pub fn find_container(db: &Db, name: &str) -> Result<(PodRecord, ContainerRecord), PodError> {
    let pods = db.pods()?;
    let containers = db.containers()?;
    let latest =
        |pod: &PodRecord, cname: Option<&str>| -> Result<Option<ContainerRecord>, PodError> {
            let mine: Vec<&ContainerRecord> = containers
                .iter()
                .filter(|c| c.pod_uid == pod.uid && cname.is_none_or(|n| c.name == n))
                .collect();
            let mut names: Vec<&str> = mine.iter().map(|c| c.name.as_str()).collect();
            names.sort();
            names.dedup();
            if names.len() > 1 {
                return Err(PodError::Ambiguous {
                    name: name.to_string(),
                    candidates: names.join(", "),
                });
            }
            Ok(mine.into_iter().max_by_key(|c| c.attempt).cloned())
        };
    let parts: Vec<&str> = name.split('/').collect();
    let candidates: Vec<(&str, &str, Option<&str>)> = match parts.as_slice() {
        [pod] => vec![("default", pod, None)],
        [a, b] => vec![("default", a, Some(*b)), (a, b, None)],
        [ns, pod, c] => vec![(ns, pod, Some(*c))],
        _ => vec![],
    };
    for (ns, pod_name, cname) in candidates {
        if let Some(pod) = pods
            .iter()
            .find(|p| p.namespace == ns && p.name == pod_name)
        {
            if let Some(c) = latest(pod, cname)? {
                return Ok((pod.clone(), c));
            }
        }
    }
    if name.len() >= 3 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        let matches: Vec<&ContainerRecord> = containers
            .iter()
            .filter(|c| c.id.starts_with(name))
            .collect();
        if matches.len() > 1 {
            return Err(PodError::Ambiguous {
                name: name.to_string(),
                candidates: matches
                    .iter()
                    .map(|c| c.id[..12].to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if let Some(c) = matches.first() {
            if let Some(pod) = pods.iter().find(|p| p.uid == c.pod_uid) {
                return Ok((pod.clone(), (*c).clone()));
            }
        }
    }
    Err(PodError::UnknownContainer(name.to_string()))
}

/// What a restart found left over by a crash and removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Cleanup {
    pub containers: Vec<String>,
    pub pods: Vec<String>,
}

fn older_than(path: &std::path::Path, secs: u64) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() >= secs)
}

/// Removes what no record owns: container directories (with their mounts and cgroups),
/// pod sandboxes and volumes, and containers recorded but never started (a crash between
/// create and start). Entries younger than `min_age_secs` are left alone: a concurrent
/// `layerlet run` may be creating them.
pub fn clean_orphans(rt: &Runtime, store: &Store, min_age_secs: u64) -> Result<Cleanup, PodError> {
    let mut report = Cleanup::default();
    let pods = store.db().pods()?;
    let containers = store.db().containers()?;
    let known_containers: std::collections::HashSet<&str> =
        containers.iter().map(|c| c.id.as_str()).collect();
    let known_pods: std::collections::HashSet<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
    let list = |dir: PathBuf| -> Vec<(String, PathBuf)> {
        std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .collect()
            })
            .unwrap_or_default()
    };
    for base in [rt.layout.containers_dir(), rt.layout.run_containers_dir()] {
        for (id, path) in list(base) {
            if known_containers.contains(id.as_str()) || !older_than(&path, min_age_secs) {
                continue;
            }
            if let Ok(Some(plan)) = rt.plan(&id) {
                if let Some(cg) = plan.cgroup {
                    for pid in cg.pids() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    let _ = cg.remove();
                }
            }
            crate::sys::mount::unmount_under(&path).map_err(ContainerError::from_mount)?;
            crate::sys::fs::remove_tree(&path).map_err(|e| PodError::Sandbox(e.into()))?;
            if !report.containers.contains(&id) {
                report.containers.push(id);
            }
        }
    }
    // Recorded, never started, and no monitor: half-created.
    for c in &containers {
        let dirs = rt.dirs(&c.id)?;
        if dirs.state().started().ok().flatten().is_none()
            && dirs.state().exited().ok().flatten().is_none()
            && older_than(&dirs.run, min_age_secs)
        {
            rt.delete(store, &c.id)?;
            report.containers.push(c.id.clone());
        }
    }
    for base in [rt.layout.sandboxes_dir(), rt.layout.pods_dir()] {
        let sandboxes = base == rt.layout.sandboxes_dir();
        for (uid, path) in list(base) {
            if known_pods.contains(uid.as_str()) || !older_than(&path, min_age_secs) {
                continue;
            }
            if sandboxes {
                // While its namespace is pinned; a failure leaves the record for the sweep.
                if let Err(e) = rt.networking.detach(&uid) {
                    tracing::warn!(pod_uid = %uid, error = %e, "detaching a leftover pod's network failed");
                }
            }
            crate::sys::mount::unmount_under(&path).map_err(ContainerError::from_mount)?;
            crate::sys::fs::remove_tree(&path).map_err(|e| PodError::Sandbox(e.into()))?;
            if let Ok(layout) = crate::runtime::isolation::cgroup::detect(&rt.cgroup_root) {
                let _ = crate::runtime::isolation::cgroup::Cgroup::new(
                    layout,
                    &rt.pod_cgroup_path(&uid),
                )
                .remove_with_leftovers();
            }
            if !report.pods.contains(&uid) {
                report.pods.push(uid);
            }
        }
    }
    Ok(report)
}
