//! What a container may do, planned from its securityContext with runc's and containerd's
//! defaults: the default capability set, masked and read-only /proc paths, `no_new_privs`,
//! a seccomp profile, and the `runAsNonRoot` refusal. Pure: applied by `init`.

use serde::{Deserialize, Serialize};

use crate::pod::spec::{ContainerSpec, PodSpec, ProcMount, SeccompProfile};

/// Docker's and containerd's default capabilities.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// containerd's (and runc's) masked paths: unreadable in a container.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Read-only in a container.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("pod {pod} container {container}: runAsNonRoot is set but the container would run as root (uid 0{origin}); set runAsUser to a non-zero uid or use an image whose User is not root")]
    RunsAsRoot {
        pod: String,
        container: String,
        origin: String,
    },
    #[error("pod {pod} container {container}: unknown capability {name:?} in securityContext.capabilities")]
    UnknownCapability {
        pod: String,
        container: String,
        name: String,
    },
    #[error("pod {pod} container {container}: procMount: Unmasked needs a user namespace (hostUsers: false), which layerlet does not support; without one it would let the container write the host's sysctls")]
    UnmaskedProc { pod: String, container: String },
    #[error("pod {pod} container {container}: allowPrivilegeEscalation: false cannot be combined with privileged: true or CAP_SYS_ADMIN")]
    EscalationConflict { pod: String, container: String },
}

pub use crate::runtime::isolation::seccomp::SeccompPolicy as Seccomp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityPlan {
    pub privileged: bool,
    /// Effective, permitted and bounding set (names like CAP_NET_RAW). A non-root user keeps
    /// none, as Kubernetes does.
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub seccomp: Seccomp,
    /// Where Localhost profiles are read from (`ROOT/seccomp`).
    #[serde(default)]
    pub seccomp_dir: std::path::PathBuf,
}

/// Every capability this node can grant: the bounding set of the planning process (a
/// kind or minikube node may lack some), as containerd's privileged containers get.
pub fn all_capabilities() -> Vec<String> {
    let mut names: Vec<String> = match caps::read(None, caps::CapSet::Bounding) {
        Ok(set) => set.iter().map(|c| c.to_string()).collect(),
        Err(_) => caps::all().iter().map(|c| c.to_string()).collect(),
    };
    names.sort();
    names
}

fn known_capability(name: &str) -> bool {
    caps::all().iter().any(|c| c.to_string() == name)
}

fn normalise(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

pub fn plan_security(
    pod: &PodSpec,
    container: &ContainerSpec,
    uid: u32,
    user_origin: &str,
) -> Result<SecurityPlan, SecurityError> {
    let sc = &container.security_context;
    let known = all_capabilities();
    let run_as_non_root = sc
        .run_as_non_root
        .or(pod.security_context.run_as_non_root)
        .unwrap_or(false);
    if run_as_non_root && uid == 0 {
        return Err(SecurityError::RunsAsRoot {
            pod: pod.key(),
            container: container.name.clone(),
            origin: user_origin.to_string(),
        });
    }
    let mut capabilities: Vec<String> = if sc.privileged {
        known.clone()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    };
    for name in &sc.capabilities.drop {
        let name = normalise(name);
        if name == "ALL" {
            capabilities.clear();
        } else if !known_capability(&name) {
            return Err(SecurityError::UnknownCapability {
                pod: pod.key(),
                container: container.name.clone(),
                name,
            });
        } else {
            capabilities.retain(|c| c != &name);
        }
    }
    for name in &sc.capabilities.add {
        let name = normalise(name);
        if name == "ALL" {
            capabilities = known.clone();
        } else if !known_capability(&name) {
            return Err(SecurityError::UnknownCapability {
                pod: pod.key(),
                container: container.name.clone(),
                name,
            });
        } else if !capabilities.contains(&name) && known.contains(&name) {
            // A capability the node itself lacks cannot be granted: left out, as containerd.
            capabilities.push(name);
        }
    }
    capabilities.sort();
    let escalation = match sc.allow_privilege_escalation {
        Some(false) if sc.privileged || capabilities.iter().any(|c| c == "CAP_SYS_ADMIN") => {
            return Err(SecurityError::EscalationConflict {
                pod: pod.key(),
                container: container.name.clone(),
            })
        }
        Some(allowed) => allowed,
        // The runtime's default, per this project's standard: no_new_privs on.
        None => sc.privileged,
    };
    if sc.proc_mount == ProcMount::Unmasked && !sc.privileged {
        return Err(SecurityError::UnmaskedProc {
            pod: pod.key(),
            container: container.name.clone(),
        });
    }
    let unmasked = sc.privileged;
    let seccomp = match sc
        .seccomp_profile
        .as_ref()
        .or(pod.security_context.seccomp_profile.as_ref())
    {
        _ if sc.privileged => Seccomp::Unconfined,
        Some(SeccompProfile::Unconfined) => Seccomp::Unconfined,
        Some(SeccompProfile::Localhost(path)) => Seccomp::Localhost(path.into()),
        // Kubernetes' SeccompDefault: RuntimeDefault when the pod says nothing.
        Some(SeccompProfile::RuntimeDefault) | None => Seccomp::RuntimeDefault,
    };
    Ok(SecurityPlan {
        privileged: sc.privileged,
        capabilities,
        no_new_privileges: !escalation,
        masked_paths: if unmasked {
            vec![]
        } else {
            MASKED_PATHS.iter().map(|s| s.to_string()).collect()
        },
        readonly_paths: if unmasked {
            vec![]
        } else {
            READONLY_PATHS.iter().map(|s| s.to_string()).collect()
        },
        seccomp,
        seccomp_dir: std::path::PathBuf::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::pod_from_yaml_str;

    fn pod(security: &str) -> PodSpec {
        pod_from_yaml_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: x:1\n    securityContext: {security}\n"
        ))
        .unwrap()
    }

    #[test]
    fn defaults_are_docker_capabilities_masked_paths_no_new_privs_and_runtime_default_seccomp() {
        let p = pod("{}");
        let plan = plan_security(&p, &p.containers[0], 0, "").unwrap();
        assert_eq!(plan.capabilities.len(), DEFAULT_CAPABILITIES.len());
        assert!(!plan.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(plan.no_new_privileges);
        assert!(plan.masked_paths.contains(&"/proc/kcore".to_string()));
        assert!(plan.readonly_paths.contains(&"/proc/sys".to_string()));
        assert_eq!(plan.seccomp, Seccomp::RuntimeDefault);
    }

    #[test]
    fn capabilities_are_added_and_dropped_by_name_with_or_without_prefix() {
        let p = pod("{capabilities: {add: [NET_ADMIN], drop: [CAP_NET_RAW, kill]}}");
        let plan = plan_security(&p, &p.containers[0], 0, "").unwrap();
        assert!(plan.capabilities.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!plan.capabilities.contains(&"CAP_NET_RAW".to_string()));
        assert!(!plan.capabilities.contains(&"CAP_KILL".to_string()));
        let p = pod("{capabilities: {drop: [ALL]}}");
        assert!(plan_security(&p, &p.containers[0], 0, "")
            .unwrap()
            .capabilities
            .is_empty());
        let p = pod("{capabilities: {add: [BOGUS]}}");
        let err = plan_security(&p, &p.containers[0], 0, "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CAP_BOGUS"), "{err}");
    }

    #[test]
    fn privileged_gets_everything_and_no_masks() {
        let p = pod("{privileged: true}");
        let plan = plan_security(&p, &p.containers[0], 0, "").unwrap();
        assert!(plan.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(plan.masked_paths.is_empty() && !plan.no_new_privileges);
        assert_eq!(plan.seccomp, Seccomp::Unconfined);
    }

    #[test]
    fn run_as_non_root_refuses_uid_zero_naming_pod_and_container() {
        let p = pod("{runAsNonRoot: true}");
        let err = plan_security(&p, &p.containers[0], 0, ", from the image's User \"root\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pod default/p container c") && err.contains("image's User"),
            "{err}"
        );
        assert!(plan_security(&p, &p.containers[0], 1000, "").is_ok());
    }

    #[test]
    fn unmasked_proc_without_a_user_namespace_is_refused_and_unconfined_seccomp_is_honoured() {
        let p = pod("{procMount: Unmasked}");
        let err = plan_security(&p, &p.containers[0], 0, "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("user namespace"), "{err}");
        let p = pod("{seccompProfile: {type: Unconfined}, allowPrivilegeEscalation: true}");
        let plan = plan_security(&p, &p.containers[0], 0, "").unwrap();
        assert_eq!(plan.seccomp, Seccomp::Unconfined);
        assert!(!plan.no_new_privileges);
    }
}
