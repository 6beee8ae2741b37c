//! Objects from the Kubernetes API server, checked as a manifest's are. They have no file
//! and no document number, so an error names only the field.

use k8s_openapi::api::core::v1 as k8s;

use super::spec::PodSpec;
use super::{convert, validate, ConfigMapObject, PodError, SecretObject, Warning};

/// The annotation kubelet puts on every pod to say where it came from: `api` here; a pod
/// without it came from a file.
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";

/// A Pod bound to this node through the API server, converted and validated, and marked
/// with its source.
pub fn pod(pod: &k8s::Pod) -> Result<(PodSpec, Vec<Warning>), PodError> {
    let converted = convert::convert_pod(pod).map_err(|e| PodError::invalid(None, e))?;
    if let Some(e) = PodError::from_field_errors(0, validate::validate_pod(&converted.spec)) {
        return Err(e.without_document());
    }
    let mut spec = converted.spec;
    spec.annotations
        .insert(CONFIG_SOURCE.to_string(), "api".to_string());
    Ok((spec, converted.warnings))
}

/// Whether a pod spec came from the API server.
pub fn is_from_api(spec: &PodSpec) -> bool {
    spec.annotations.get(CONFIG_SOURCE).is_some_and(|s| s == "api")
}

pub fn config_map(cm: k8s::ConfigMap) -> Result<ConfigMapObject, PodError> {
    super::config_map(0, cm).map_err(PodError::without_document)
}

pub fn secret(secret: k8s::Secret) -> Result<SecretObject, PodError> {
    super::secret_object(0, secret).map_err(PodError::without_document)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_pod(json: serde_json::Value) -> k8s::Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn an_api_pod_is_marked_and_keeps_its_uid() {
        let (spec, _) = pod(&api_pod(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "1234-abcd"},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x:1"}]},
        })))
        .unwrap();
        assert_eq!(spec.key(), "shop/web");
        assert_eq!(spec.uid, "1234-abcd");
        assert!(is_from_api(&spec));
    }

    #[test]
    fn an_invalid_api_pod_names_the_field_without_a_document() {
        let err = pod(&api_pod(serde_json::json!({
            "metadata": {"name": "web", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": ""}]},
        })))
        .unwrap_err();
        assert_eq!(err.to_string(), "spec.containers[0].image: required");
    }
}
