//! [`NodeView`] of this node: pods as the agent publishes them, containers from the node's
//! records and state files, exec by re-executing `layerlet exec` (which joins the
//! container's namespaces in a single-threaded process of its own), port-forward from a
//! thread inside the pod's pinned network namespace, figures from the accounting cache
//! and the cgroups.

mod attach;
mod dial;
mod exec;
mod figures;
mod pty;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;

use super::node::{ContainerRef, NodeError, NodeView, Session, StreamOptions};
use super::stats::{NodeFigures, ProbeFigures};
use crate::image::store::Store;
use crate::runtime::container::Runtime;
use crate::runtime::pods::pod_spec;
use crate::runtime::records::PodRecord;
use crate::runtime::state::Status;

/// The agent's published pod list (`PodList` JSON), read when `/pods` is asked.
pub type PodsSource = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;
/// Prober results by container, read when `/metrics/probes` is asked.
pub type ProbesSource = Arc<dyn Fn() -> Vec<ProbeFigures> + Send + Sync>;

pub struct LocalNode {
    pub rt: Runtime,
    pub store: Arc<Store>,
    pub pods: PodsSource,
    pub probes: ProbesSource,
    pub cache: Arc<crate::metrics::Cache>,
    /// The previous CPU sample per container ID ("" for the node), for usageNanoCores.
    samples: Mutex<HashMap<String, (Instant, u64)>>,
}

impl LocalNode {
    pub fn new(
        rt: Runtime,
        store: Arc<Store>,
        pods: PodsSource,
        probes: ProbesSource,
        cache: Arc<crate::metrics::Cache>,
    ) -> LocalNode {
        LocalNode {
            rt,
            store,
            pods,
            probes,
            cache,
            samples: Mutex::new(HashMap::new()),
        }
    }

    fn db_err(e: impl std::fmt::Display) -> NodeError {
        NodeError::Failed(format!("node records: {e}"))
    }

    fn pod_record(
        &self,
        namespace: &str,
        pod: &str,
        uid: Option<&str>,
    ) -> Result<PodRecord, NodeError> {
        let record = self
            .store
            .db()
            .pod_by_name(namespace, pod)
            .map_err(Self::db_err)?
            .filter(|r| uid.is_none_or(|u| u == r.uid));
        record.ok_or_else(|| NodeError::PodNotFound {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
        })
    }
}

impl NodeView for LocalNode {
    fn pods(&self) -> Vec<Pod> {
        let list = (self.pods)();
        list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|p| serde_json::from_value::<Pod>(p.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn container(
        &self,
        namespace: &str,
        pod: &str,
        uid: Option<&str>,
        container: &str,
    ) -> Result<ContainerRef, NodeError> {
        let record = self.pod_record(namespace, pod, uid)?;
        let not_found = || NodeError::ContainerNotFound {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            container: container.to_string(),
        };
        let spec = pod_spec(&record).map_err(|e| NodeError::Failed(e.to_string()))?;
        let cspec = spec
            .all_containers()
            .find(|c| c.name == container)
            .ok_or_else(not_found)?;
        let mut instances: Vec<_> = self
            .store
            .db()
            .containers()
            .map_err(Self::db_err)?
            .into_iter()
            .filter(|c| c.pod_uid == record.uid && c.name == container)
            .collect();
        instances.sort_by_key(|c| c.attempt);
        let newest = instances.pop().ok_or_else(not_found)?;
        let running = self.is_running(&newest.id);
        Ok(ContainerRef {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            pod_uid: record.uid.clone(),
            container: container.to_string(),
            log: log_of(&self.rt, &newest.id)?,
            previous_log: instances
                .pop()
                .map(|p| log_of(&self.rt, &p.id))
                .transpose()?,
            id: newest.id,
            running,
            stdin: cspec.stdin,
            tty: cspec.tty,
        })
    }

    fn exec(
        &self,
        target: &ContainerRef,
        argv: &[String],
        opts: &StreamOptions,
    ) -> Result<Session, NodeError> {
        exec::exec(&self.rt, &target.id, argv, opts)
    }

    fn attach(&self, target: &ContainerRef, opts: &StreamOptions) -> Result<Session, NodeError> {
        attach::attach(&self.rt, target, opts)
    }

    fn pod_uid(&self, namespace: &str, pod: &str, uid: Option<&str>) -> Result<String, NodeError> {
        self.pod_record(namespace, pod, uid).map(|r| r.uid)
    }

    fn dial(&self, pod_uid: &str, port: u16) -> Result<std::net::TcpStream, NodeError> {
        let record = self
            .store
            .db()
            .pods()
            .map_err(Self::db_err)?
            .into_iter()
            .find(|r| r.uid == pod_uid)
            .ok_or_else(|| NodeError::Failed(format!("pod {pod_uid} is gone")))?;
        let spec = pod_spec(&record).map_err(|e| NodeError::Failed(e.to_string()))?;
        dial::dial(&self.rt, &spec, port)
    }

    fn is_running(&self, id: &str) -> bool {
        self.rt.status(id).is_ok_and(|s| s == Status::Running)
    }

    fn figures(&self) -> NodeFigures {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        figures::collect(self, &mut samples)
    }
}

/// A container's current log file.
fn log_of(rt: &Runtime, id: &str) -> Result<std::path::PathBuf, NodeError> {
    rt.dirs(id)
        .map(|d| d.log())
        .map_err(|e| NodeError::Failed(e.to_string()))
}
