//! Pods on the node: sandbox + containers + records, created and removed as a unit, and the
//! names people use for them (`[NAMESPACE/]POD[/CONTAINER]` or an ID prefix).

use std::time::Duration;

use super::container::{ContainerError, Runtime};
use super::records::{new_pod_record, ContainerRecord, PodRecord};
use super::sandbox::{Sandbox, SandboxError};
use super::volumes::{self, PodVolumes, VolumeError};
use crate::image::db::{Db, DbError};
use crate::image::store::Store;
use crate::pod::spec::PodSpec;

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
    Container(#[from] ContainerError),
    #[error(transparent)]
    Db(#[from] DbError),
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
    let sandbox = Sandbox::create(&rt.exe, &rt.run_root, pod)?;
    let undo = |sandbox: &Sandbox| {
        let _ = Sandbox::destroy_dir(&sandbox.dir);
        let _ = volumes::teardown(&rt.root, &pod.uid);
    };
    let prepared = match volumes::prepare(&rt.root, pod) {
        Ok(v) => v,
        Err(e) => {
            undo(&sandbox);
            return Err(e.into());
        }
    };
    if let Err(e) = store.db().insert_pod(&new_pod_record(pod, owner)) {
        undo(&sandbox);
        return Err(e.into());
    }
    Ok((sandbox, prepared))
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
    stop_pod(rt, store, pod, grace)?;
    // Bound first: the database guard must not live across `delete`, which takes it again.
    let containers = pod_containers(&store.db(), &pod.uid)?;
    for c in containers {
        rt.delete(store, &c.id)?;
    }
    Sandbox::destroy_dir(&rt.run_root.join("pods").join(&pod.uid))?;
    volumes::teardown(&rt.root, &pod.uid)?;
    if let Ok(layout) = super::cgroup::detect(&rt.cgroup_root) {
        super::cgroup::Cgroup::new(layout, &format!("layerlet/{}", pod.uid))
            .remove()
            .map_err(ContainerError::from)?;
    }
    store.db().remove_pod(&pod.uid)?;
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
