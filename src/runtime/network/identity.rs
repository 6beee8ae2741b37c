//! Who an attachment is for: the container (sandbox) id and interface name that key it, the
//! pod it belongs to, and the `CNI_ARGS` that tell Kubernetes-aware plugins about the pod.

use serde::{Deserialize, Serialize};

use super::error::NetworkError;

/// The interface name a pod's network gets, as kubelet asks for it.
pub const POD_IFNAME: &str = "eth0";

/// One attachment of a sandbox to the network: CNI's (container id, ifname) pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttachmentId {
    pub container_id: String,
    pub ifname: String,
}

impl AttachmentId {
    /// Checks both parts with libcni's rules; they also become a file name of the cache.
    pub fn new(container_id: &str, ifname: &str) -> Result<AttachmentId, NetworkError> {
        check_container_id(container_id)?;
        check_ifname(ifname)?;
        Ok(AttachmentId {
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        })
    }

    /// A pod's attachment on `eth0`.
    pub fn pod(container_id: &str) -> Result<AttachmentId, NetworkError> {
        AttachmentId::new(container_id, POD_IFNAME)
    }

    /// The cache file name; unique because neither part may contain '/'.
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.container_id, self.ifname)
    }
}

impl std::fmt::Display for AttachmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
    }
}

fn check_container_id(id: &str) -> Result<(), NetworkError> {
    let invalid = |reason| NetworkError::InvalidId {
        field: "CNI container id",
        value: id.to_string(),
        reason,
    };
    let mut bytes = id.bytes();
    if !bytes.next().is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid("must start with a letter or digit"));
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err(invalid(
            "may contain only letters, digits, '_', '.' and '-'",
        ));
    }
    if id.len() > 200 {
        return Err(invalid("is longer than 200 characters"));
    }
    Ok(())
}

fn check_ifname(name: &str) -> Result<(), NetworkError> {
    let invalid = |reason| NetworkError::InvalidId {
        field: "interface name",
        value: name.to_string(),
        reason,
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(invalid("must be a name"));
    }
    // IFNAMSIZ is 16 with the terminating NUL.
    if name.len() > 15 {
        return Err(invalid("is longer than 15 bytes"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid("may not contain '/', ':' or whitespace"));
    }
    Ok(())
}

/// The pod an attachment belongs to, as `CNI_ARGS` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// `CNI_ARGS` as kubelet passes them; `IgnoreUnknown` lets plugins that know none of the
/// keys accept them. Values may not contain the separators.
pub fn cni_args(pod: &PodRef, infra_container_id: &str) -> Result<String, NetworkError> {
    let pairs = [
        ("K8S_POD_NAMESPACE", pod.namespace.as_str()),
        ("K8S_POD_NAME", pod.name.as_str()),
        ("K8S_POD_INFRA_CONTAINER_ID", infra_container_id),
        ("K8S_POD_UID", pod.uid.as_str()),
    ];
    let mut out = String::from("IgnoreUnknown=1");
    for (key, value) in pairs {
        if value.contains([';', '=']) || value.chars().any(char::is_control) {
            return Err(NetworkError::InvalidInput {
                field: format!("CNI_ARGS {key}"),
                value: value.to_string(),
                reason: "may not contain ';', '=' or control characters".into(),
            });
        }
        out.push_str(&format!(";{key}={value}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_carry_the_pod_as_kubelet_passes_it() {
        let pod = PodRef {
            namespace: "default".into(),
            name: "web-0".into(),
            uid: "8f3e-11".into(),
        };
        assert_eq!(
            cni_args(&pod, "sandbox1").unwrap(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=sandbox1;K8S_POD_UID=8f3e-11"
        );
    }

    #[test]
    fn cni_args_refuse_values_that_would_add_keys() {
        let pod = PodRef {
            namespace: "default".into(),
            name: "x;K8S_POD_NAMESPACE=kube-system".into(),
            uid: "u".into(),
        };
        let err = cni_args(&pod, "s").unwrap_err().to_string();
        assert!(err.starts_with("CNI_ARGS K8S_POD_NAME \"x;K8S"), "{err}");
    }

    #[test]
    fn attachment_ids_follow_libcni_rules_and_stay_file_names() {
        let id = AttachmentId::pod("0a1b-c2.d_e").unwrap();
        assert_eq!(id.file_name(), "0a1b-c2.d_e-eth0.json");
        for bad in ["", "-a", "../x", "a/b", "a b", "ä"] {
            assert!(AttachmentId::pod(bad).is_err(), "{bad:?}");
        }
        for bad in ["", ".", "..", "a/b", "eth:0", "eth 0", "sixteen-bytes-xx"] {
            assert!(AttachmentId::new("c", bad).is_err(), "{bad:?}");
        }
        assert!(AttachmentId::new("c", "fifteen-bytes-x").is_ok());
    }
}
