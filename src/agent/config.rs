//! ConfigMaps, Secrets and the downward API for the agent's pods: each container's env is
//! resolved before it is created, the pod's configMap/secret/downwardAPI volumes are written
//! before each container starts and again whenever the objects change (running containers
//! see the new files; their env stays as it was until they restart, as in Kubernetes). A
//! container whose objects are missing is not created: its status waits with kubelet's
//! `CreateContainerConfigError` until they appear.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::PodStatus;

use super::shared::Shared;
use crate::pod::downward::NodeInfo;
use crate::pod::env::resolve_env;
use crate::pod::objects::ConfigObjects;
use crate::pod::spec::{ContainerSpec, PodSpec};
use crate::runtime::container::Runtime;
use crate::runtime::pods::{open_pod, pod_spec};
use crate::runtime::storage::projected::{sync_pod, volume_payload, ProjectedError};
use crate::runtime::storage::volumes::PodVolumes;
use crate::source::manifests::Desired;

pub struct ConfigState {
    objects: Mutex<Arc<ConfigObjects>>,
    pub node: NodeInfo,
    /// (pod uid, container) -> why it cannot be created.
    errors: Mutex<BTreeMap<(String, String), String>>,
    /// One writer at a time: a container start and an object change may both write a pod's
    /// volumes.
    writing: Mutex<()>,
}

impl ConfigState {
    pub fn new(node: NodeInfo) -> ConfigState {
        ConfigState {
            objects: Mutex::new(Arc::new(ConfigObjects::default())),
            node,
            errors: Mutex::new(BTreeMap::new()),
            writing: Mutex::new(()),
        }
    }

    pub fn objects(&self) -> Arc<ConfigObjects> {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Takes the objects of a scan; true when they differ from the previous ones.
    pub fn update(&self, desired: &Desired) -> bool {
        let next = ConfigObjects {
            config_maps: desired.config_maps.clone(),
            secrets: desired.secrets.clone(),
        };
        let mut current = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        if **current == next {
            return false;
        }
        *current = Arc::new(next);
        true
    }

    /// Records a container that cannot be created; an event when the reason is new.
    fn fail(&self, shared: &Shared, spec: &PodSpec, container: &str, message: String) {
        let key = (spec.uid.clone(), container.to_string());
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.get(&key) != Some(&message) {
            shared.event(
                "Warning",
                &spec.namespace,
                &spec.name,
                Some(container),
                "Failed",
                format!("Error: {message}"),
            );
            errors.insert(key, message);
        }
    }

    fn clear(&self, uid: &str, container: &str) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(uid.to_string(), container.to_string()));
    }

    /// The container's env, or None (recorded as CreateContainerConfigError) when an object
    /// or key it needs is missing. envFrom keys that are not variable names are reported.
    pub fn container_env(
        &self,
        shared: &Shared,
        spec: &PodSpec,
        container: &ContainerSpec,
        pod_ips: &[std::net::IpAddr],
    ) -> Option<Vec<(String, String)>> {
        match resolve_env(spec, container, &self.objects(), &self.node, pod_ips) {
            Ok(env) => {
                for message in env.skipped {
                    shared.event(
                        "Warning",
                        &spec.namespace,
                        &spec.name,
                        Some(&container.name),
                        "InvalidEnvironmentVariableNames",
                        message,
                    );
                }
                Some(env.vars)
            }
            Err(e) => {
                self.fail(shared, spec, &container.name, e.to_string());
                None
            }
        }
    }

    /// Whether the pod's volumes can be made from the objects (pure: nothing is written),
    /// so that a container whose objects are missing waits before its image is pulled.
    /// A failure is recorded as for env.
    pub fn volumes_ready(&self, shared: &Shared, spec: &PodSpec, container: &str) -> bool {
        let objects = self.objects();
        for volume in &spec.volumes {
            if let Err(e) = volume_payload(spec, volume, &objects, &self.node) {
                self.fail(shared, spec, container, e.to_string());
                return false;
            }
        }
        true
    }

    /// Writes the pod's volumes before `container` is created. Ok(false): an object is
    /// missing (recorded as CreateContainerConfigError); the container must wait.
    pub fn write_volumes(
        &self,
        shared: &Shared,
        spec: &PodSpec,
        container: &str,
        volumes: &PodVolumes,
    ) -> Result<bool, ProjectedError> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        match sync_pod(spec, &volumes.sources, &self.objects(), &self.node) {
            Ok(_) => {
                self.clear(&spec.uid, container);
                Ok(true)
            }
            Err(e) => match e.config_error() {
                Some(c) => {
                    self.fail(shared, spec, container, c.to_string());
                    Ok(false)
                }
                None => Err(e),
            },
        }
    }

    /// Brings the volumes of every pod the agent runs (and still wants: `wanted` uids) up
    /// to date with the objects. A pod whose object went missing keeps its last files, as
    /// kubelet leaves them.
    pub fn sync_running(
        &self,
        rt: &Runtime,
        store: &crate::image::store::Store,
        wanted: &BTreeSet<String>,
    ) {
        let records = match store.db().pods() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "volume update: cannot list pods");
                return;
            }
        };
        let mut live = BTreeSet::new();
        for record in records.iter().filter(|r| r.owner == "agent") {
            live.insert(record.uid.clone());
            if !wanted.contains(&record.uid) {
                continue; // on its way out
            }
            let Ok(spec) = pod_spec(record) else { continue };
            if !spec
                .volumes
                .iter()
                .any(|v| crate::runtime::storage::projected::is_projected(&v.source))
            {
                continue;
            }
            let Ok((_, volumes)) = open_pod(rt, &spec) else {
                continue;
            };
            let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
            // The objects as they are now, under the lock: a sync that started earlier
            // cannot write older data over a later one's.
            match sync_pod(&spec, &volumes.sources, &self.objects(), &self.node) {
                Ok(changed) if !changed.is_empty() => {
                    tracing::info!(pod = %spec.key(), volumes = ?changed, "volumes updated");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(pod = %spec.key(), error = %e, "volume update failed; the pod keeps its last files")
                }
            }
        }
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(uid, _), _| live.contains(uid));
    }

    /// Shows recorded errors in a pod's status, as kubelet does: the container waits with
    /// reason CreateContainerConfigError and the message.
    pub fn patch_status(&self, uid: &str, status: &mut PodStatus) {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        let lists = [
            status.init_container_statuses.as_mut(),
            status.container_statuses.as_mut(),
        ];
        for c in lists.into_iter().flatten().flatten() {
            let Some(message) = errors.get(&(uid.to_string(), c.name.clone())) else {
                continue;
            };
            if let Some(waiting) = c.state.as_mut().and_then(|s| s.waiting.as_mut()) {
                waiting.reason = Some("CreateContainerConfigError".to_string());
                waiting.message = Some(message.clone());
            }
        }
    }
}

/// Rewrites the volumes of the pods the agent runs, in the background.
pub fn spawn_sync(
    rt: &Runtime,
    store: &Arc<crate::image::store::Store>,
    config: &Arc<ConfigState>,
    desired: &Desired,
) {
    let (rt, store, config) = (rt.clone(), store.clone(), config.clone());
    let wanted = desired.pods.values().map(|p| p.uid.clone()).collect();
    tokio::task::spawn_blocking(move || config.sync_running(&rt, &store, &wanted));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn node() -> NodeInfo {
        NodeInfo {
            node_name: "n".into(),
            host_ip: "127.0.0.1".into(),
            cpu_millis: 1000,
            memory: 1 << 30,
            ephemeral_storage: 1 << 30,
        }
    }

    #[test]
    fn a_config_error_shows_as_create_container_config_error_only_while_waiting() {
        let state = ConfigState::new(node());
        let shared = Shared::default();
        let spec = crate::pod::pod_from_yaml_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: x:1\n    env: [{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: k}}}]\n  - {name: b, image: x:1}\n",
        )
        .unwrap();
        assert!(state
            .container_env(&shared, &spec, &spec.containers[0], &[])
            .is_none());
        assert!(state
            .container_env(&shared, &spec, &spec.containers[0], &[])
            .is_none());
        assert_eq!(
            shared.events.lock().unwrap().len(),
            1,
            "one event while the reason stays the same"
        );
        let status = |containers: Value| -> PodStatus {
            serde_json::from_value(serde_json::json!({ "containerStatuses": containers })).unwrap()
        };
        let typed = status(serde_json::json!([
            {"name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}},
            {"name": "b", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
             "state": {"running": {}}},
        ]));
        let mut patched = typed.clone();
        state.patch_status(&spec.uid, &mut patched);
        let pod = serde_json::json!({ "status": patched });
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["waiting"],
            serde_json::json!({
                "reason": "CreateContainerConfigError",
                "message": "configmap \"cfg\" not found (namespace default); add it to the manifest directory or mark the reference optional",
            })
        );
        assert_eq!(
            pod["status"]["containerStatuses"][1]["state"],
            serde_json::json!({"running": {}})
        );
        let mut other = typed.clone();
        state.patch_status("another-uid", &mut other);
        assert_eq!(other, typed, "errors belong to one pod uid");
    }
}
