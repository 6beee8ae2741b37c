//! Objects from the Kubernetes API server, checked as a manifest's are. They have no file
//! and no document number, so an error names only the field.

use k8s_openapi::api::core::v1 as k8s;

use super::error::{PodError, Warning};
use super::manifest::{self, ConfigMapObject, SecretObject};
use super::spec::PodSpec;
use super::{convert, validate};

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
    // The API server mounts the token itself (a projected volume layerlet fills): these
    // fields are not ignored here.
    let warnings = converted
        .warnings
        .into_iter()
        .filter(|w| {
            !matches!(
                w.field.as_str(),
                "spec.serviceAccountName"
                    | "spec.serviceAccount"
                    | "spec.automountServiceAccountToken"
            )
        })
        .collect();
    Ok((spec, warnings))
}

/// The key of an issued token in its node-local secret.
pub const TOKEN_KEY: &str = "token";

/// The name of the node-local secret that holds a service account token issued for one pod.
/// The colons make it a name no Secret of the API server can have.
pub fn token_secret_name(
    pod_uid: &str,
    service_account: &str,
    audience: Option<&str>,
    expiration_seconds: u32,
) -> String {
    format!(
        "serviceaccount-token:{service_account}:{}:{expiration_seconds}:{pod_uid}",
        audience.unwrap_or("")
    )
}

/// Whether a pod spec came from the API server.
pub fn is_from_api(spec: &PodSpec) -> bool {
    spec.annotations
        .get(CONFIG_SOURCE)
        .is_some_and(|s| s == "api")
}

pub fn config_map(cm: k8s::ConfigMap) -> Result<ConfigMapObject, PodError> {
    manifest::config_map(0, cm).map_err(PodError::without_document)
}

pub fn secret(secret: k8s::Secret) -> Result<SecretObject, PodError> {
    manifest::secret_object(0, secret).map_err(PodError::without_document)
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

    /// The volume the API server adds to every pod that mounts its service account token.
    fn kube_api_access() -> serde_json::Value {
        serde_json::json!({"name": "kube-api-access-x1y2z", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}})
    }

    #[test]
    fn the_service_account_token_volume_runs_from_the_api_and_not_from_a_file() {
        let pod_json = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {"serviceAccountName": "builder", "volumes": [kube_api_access()],
                     "containers": [{"name": "app", "image": "x:1"}]},
        });
        let (spec, _) = pod(&api_pod(pod_json.clone())).unwrap();
        let crate::pod::spec::VolumeSource::Projected { sources, .. } = &spec.volumes[0].source
        else {
            panic!("projected volume expected: {:?}", spec.volumes[0]);
        };
        assert_eq!(
            sources[0],
            crate::pod::spec::ProjectedSource::ServiceAccountToken {
                service_account: "builder".into(),
                audience: None,
                expiration_seconds: 3607,
                path: "token".into(),
            }
        );
        let err = crate::pod::pod_from_yaml_str(&pod_json.to_string()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: spec.volumes[0].projected.sources[0].serviceAccountToken: not supported by layerlet: there is no API server to issue service account tokens"
        );
    }

    #[test]
    fn a_token_shorter_than_ten_minutes_is_refused() {
        let mut volume = kube_api_access();
        volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] = 599.into();
        let err = pod(&api_pod(serde_json::json!({
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {"volumes": [volume], "containers": [{"name": "app", "image": "x:1"}]},
        })))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: may not specify a duration less than 10 minutes"
        );
    }
}
