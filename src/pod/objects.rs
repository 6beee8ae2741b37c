//! The ConfigMaps and Secrets a node has (from the manifest directory), looked up by
//! namespace and name; the ones a pod reads; and the errors kubelet reports when a pod needs
//! one that is missing.

use std::collections::{BTreeMap, BTreeSet};

use super::manifest::{ConfigMapObject, SecretObject};
use super::spec::{EnvFromKind, EnvSource, PodSpec, ProjectedSource, VolumeSource};

/// Why a pod's env or volumes cannot be made from the objects the node has. The texts are
/// kubelet's, so that `CreateContainerConfigError` messages read as in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configmap {name:?} not found (namespace {namespace}); add it to the manifest directory or mark the reference optional")]
    MissingConfigMap { namespace: String, name: String },
    #[error("secret {name:?} not found (namespace {namespace}); add it to the manifest directory or mark the reference optional")]
    MissingSecret { namespace: String, name: String },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    MissingConfigMapKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    MissingSecretKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("container {container}: env {name}: {reason}")]
    Env {
        container: String,
        name: String,
        reason: String,
    },
    #[error("volume {volume}: {reason}")]
    Volume { volume: String, reason: String },
}

/// ConfigMaps and Secrets by `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigObjects {
    pub config_maps: BTreeMap<String, ConfigMapObject>,
    pub secrets: BTreeMap<String, SecretObject>,
}

impl ConfigObjects {
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMapObject> {
        self.config_maps.get(&format!("{namespace}/{name}"))
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&SecretObject> {
        self.secrets.get(&format!("{namespace}/{name}"))
    }

    /// The ConfigMap, or kubelet's error for a missing one.
    pub fn need_config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<&ConfigMapObject, ConfigError> {
        self.config_map(namespace, name)
            .ok_or_else(|| ConfigError::MissingConfigMap {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
    }

    pub fn need_secret(&self, namespace: &str, name: &str) -> Result<&SecretObject, ConfigError> {
        self.secret(namespace, name)
            .ok_or_else(|| ConfigError::MissingSecret {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
    }
}

impl ConfigMapObject {
    /// `data` and `binaryData` together, as files of a volume see them.
    pub fn entries(&self) -> BTreeMap<&str, &[u8]> {
        self.data
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .chain(
                self.binary_data
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice())),
            )
            .collect()
    }
}

/// Names of ConfigMaps and Secrets a pod reads (volumes, env, envFrom, image pull secrets),
/// so that a source knows which objects to watch.
pub fn referenced_objects(spec: &PodSpec) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets: BTreeSet<String> = spec.image_pull_secrets.iter().cloned().collect();
    for volume in &spec.volumes {
        match &volume.source {
            VolumeSource::ConfigMap { name, .. } => {
                config_maps.insert(name.clone());
            }
            VolumeSource::Secret { secret_name, .. } => {
                secrets.insert(secret_name.clone());
            }
            VolumeSource::Projected { sources, .. } => {
                for source in sources {
                    match source {
                        ProjectedSource::ConfigMap { name, .. } => {
                            config_maps.insert(name.clone());
                        }
                        ProjectedSource::Secret { name, .. } => {
                            secrets.insert(name.clone());
                        }
                        ProjectedSource::DownwardApi { .. }
                        | ProjectedSource::ServiceAccountToken { .. } => {}
                    }
                }
            }
            _ => {}
        }
    }
    for container in spec.all_containers() {
        for env in &container.env {
            match &env.source {
                EnvSource::ConfigMapKey { name, .. } => {
                    config_maps.insert(name.clone());
                }
                EnvSource::SecretKey { name, .. } => {
                    secrets.insert(name.clone());
                }
                _ => {}
            }
        }
        for from in &container.env_from {
            match &from.source {
                EnvFromKind::ConfigMap { name, .. } => {
                    config_maps.insert(name.clone());
                }
                EnvFromKind::Secret { name, .. } => {
                    secrets.insert(name.clone());
                }
            }
        }
    }
    (config_maps, secrets)
}
