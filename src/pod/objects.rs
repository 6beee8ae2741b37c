//! The ConfigMaps and Secrets a node has (from the manifest directory), looked up by
//! namespace and name, and the errors kubelet reports when a pod needs one that is missing.

use std::collections::BTreeMap;

use super::{ConfigMapObject, SecretObject};

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
