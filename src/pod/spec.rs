//! layerlet's own pod model: owned, fully defaulted, free of Kubernetes types.
//!
//! Everything after `pod::convert` reads these types only. Defaults are Kubernetes' (applied
//! during conversion), so two specs compare equal exactly when they would run the same way;
//! the agent compares them to decide whether a container must be replaced.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::reference::ImageRef;

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// Kubernetes' default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Kubernetes' default file mode of configMap, secret and downwardAPI volume files.
pub const DEFAULT_VOLUME_FILE_MODE: u32 = 0o644;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    /// `metadata.uid`, or for a manifest without one a uid derived from namespace and name,
    /// so that a static pod keeps its uid across agent restarts.
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub restart_policy: RestartPolicy,
    pub termination_grace_period: Duration,
    pub active_deadline: Option<Duration>,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    /// `spec.hostname`, else the pod name cut to 63 characters (as kubelet does).
    pub hostname: String,
    pub subdomain: Option<String>,
    pub node_name: Option<String>,
    pub dns_policy: DnsPolicy,
    pub dns_config: Option<DnsConfig>,
    pub host_aliases: Vec<HostAlias>,
    /// Names of Secrets (of type kubernetes.io/dockerconfigjson) holding registry credentials.
    pub image_pull_secrets: Vec<String>,
    pub security_context: PodSecurity,
    pub volumes: Vec<Volume>,
    pub init_containers: Vec<ContainerSpec>,
    pub containers: Vec<ContainerSpec>,
}

impl PodSpec {
    /// `namespace/name`, the key pods are known by.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Init containers first, then app containers.
    pub fn all_containers(&self) -> impl Iterator<Item = &ContainerSpec> {
        self.init_containers.iter().chain(self.containers.iter())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DnsPolicy {
    /// Kubernetes' default; with no cluster DNS on the node it behaves like `Default`.
    #[default]
    ClusterFirst,
    ClusterFirstWithHostNet,
    /// The node's resolv.conf.
    Default,
    /// Only what `dns_config` says.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<DnsOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsOption {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

/// Pod-level securityContext; container settings win over these.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PodSecurity {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub run_as_non_root: Option<bool>,
    pub supplemental_groups: Vec<u32>,
    pub supplemental_groups_policy: SupplementalGroupsPolicy,
    pub fs_group: Option<u32>,
    pub fs_group_change_policy: FsGroupChangePolicy,
    pub seccomp_profile: Option<SeccompProfile>,
    pub sysctls: Vec<Sysctl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SupplementalGroupsPolicy {
    /// Groups from the image's /etc/group are added to the ones the pod names.
    #[default]
    Merge,
    /// Only the groups the pod names.
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FsGroupChangePolicy {
    #[default]
    Always,
    OnRootMismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompProfile {
    RuntimeDefault,
    Unconfined,
    /// Path relative to the node's seccomp profile directory.
    Localhost(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctl {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeSource {
    EmptyDir {
        medium: StorageMedium,
        /// Bytes.
        size_limit: Option<u64>,
    },
    HostPath {
        path: String,
        host_path_type: HostPathType,
    },
    /// A node-local named volume that outlives the pod.
    PersistentVolumeClaim { claim_name: String, read_only: bool },
    ConfigMap {
        name: String,
        items: Vec<KeyToPath>,
        default_mode: u32,
        optional: bool,
    },
    Secret {
        secret_name: String,
        items: Vec<KeyToPath>,
        default_mode: u32,
        optional: bool,
    },
    DownwardApi {
        items: Vec<DownwardApiFile>,
        default_mode: u32,
    },
    /// configMap, secret and downwardAPI sources in one directory.
    Projected {
        sources: Vec<ProjectedSource>,
        default_mode: u32,
    },
}

/// One source of a projected volume; items without a mode take the volume's defaultMode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProjectedSource {
    ConfigMap {
        name: String,
        items: Vec<KeyToPath>,
        optional: bool,
    },
    Secret {
        name: String,
        items: Vec<KeyToPath>,
        optional: bool,
    },
    DownwardApi {
        items: Vec<DownwardApiFile>,
    },
    /// A token of the pod's service account, which the API server issues for this pod
    /// (pods from the API only: a static pod has no API server to ask).
    ServiceAccountToken {
        service_account: String,
        audience: Option<String>,
        expiration_seconds: u32,
        path: String,
    },
}

impl VolumeSource {
    /// The Kubernetes field name of this source, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            VolumeSource::EmptyDir { .. } => "emptyDir",
            VolumeSource::HostPath { .. } => "hostPath",
            VolumeSource::PersistentVolumeClaim { .. } => "persistentVolumeClaim",
            VolumeSource::ConfigMap { .. } => "configMap",
            VolumeSource::Secret { .. } => "secret",
            VolumeSource::DownwardApi { .. } => "downwardAPI",
            VolumeSource::Projected { .. } => "projected",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StorageMedium {
    /// The node's disk (under the data root).
    #[default]
    Disk,
    /// tmpfs.
    Memory,
}

/// hostPath `type`: the check made before mounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HostPathType {
    /// No check.
    #[default]
    Unset,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyToPath {
    pub key: String,
    pub path: String,
    pub mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownwardApiFile {
    pub path: String,
    pub source: DownwardSource,
    pub mode: Option<u32>,
}

/// What the downward API exposes: a pod field or a container resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownwardSource {
    /// A field path such as `metadata.name` or `metadata.labels['app']`.
    Field(String),
    Resource(ResourceFieldRef),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceFieldRef {
    /// None in env means the container itself.
    pub container: Option<String>,
    /// `limits.cpu`, `requests.memory`, `limits.ephemeral-storage`, ...
    pub resource: String,
    /// In the resource's unit: millicores for CPU (1000 = "1"), bytes otherwise.
    pub divisor: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    /// Serialized as written, as records before the type did.
    pub image: ImageRef,
    pub image_pull_policy: PullPolicy,
    /// Replaces the image's Entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's Cmd when not empty.
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    pub ports: Vec<ContainerPort>,
    pub resources: Resources,
    pub volume_mounts: Vec<VolumeMount>,
    pub security_context: ContainerSecurity,
    pub liveness_probe: Option<Probe>,
    pub readiness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
    pub lifecycle: Lifecycle,
    pub termination_message_path: String,
    pub termination_message_policy: TerminationMessagePolicy,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// Kubernetes' default: `Always` for `:latest` or an untagged image without a digest,
    /// `IfNotPresent` otherwise.
    pub fn default_for_image(image: &ImageRef) -> PullPolicy {
        if image.is_latest() {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotPresent
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub source: EnvSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvSource {
    /// A literal, where `$(VAR)` still has to be expanded by the runtime.
    Value(String),
    ConfigMapKey {
        name: String,
        key: String,
        optional: bool,
    },
    SecretKey {
        name: String,
        key: String,
        optional: bool,
    },
    /// Downward API field path, e.g. `metadata.name`, `status.hostIP`.
    Field(String),
    ResourceField(ResourceFieldRef),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFromSource {
    pub prefix: String,
    pub source: EnvFromKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvFromKind {
    ConfigMap { name: String, optional: bool },
    Secret { name: String, optional: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_port: Option<u16>,
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    pub limits: ResourceList,
    /// Defaulted from `limits` for each resource that has a limit and no request, as the
    /// API server does.
    pub requests: ResourceList,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceList {
    pub cpu_millis: Option<u64>,
    /// Bytes.
    pub memory: Option<u64>,
    /// Bytes.
    pub ephemeral_storage: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub read_only: bool,
    pub sub_path: Option<String>,
    /// Like `sub_path`, with `$(VAR)` expanded from the container's environment.
    pub sub_path_expr: Option<String>,
    pub propagation: MountPropagation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MountPropagation {
    #[default]
    None,
    HostToContainer,
    Bidirectional,
}

/// Container-level securityContext. `None` means "inherit from the pod, then the image".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerSecurity {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: bool,
    pub privileged: bool,
    /// None: allowed unless the runtime's default (no_new_privs) says otherwise.
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities: Capabilities,
    pub proc_mount: ProcMount,
    pub seccomp_profile: Option<SeccompProfile>,
}

/// Capability names as written in the pod (`NET_ADMIN`, `CAP_NET_ADMIN` or `ALL`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ProcMount {
    /// Masked and read-only paths applied.
    #[default]
    Default,
    Unmasked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub handler: ProbeHandler,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// Probe-level override of the pod's grace period when this probe kills the container.
    pub termination_grace_period: Option<Duration>,
}

impl Probe {
    /// A probe with Kubernetes' defaults: no delay, every 10 s, 1 s timeout, 1 success, 3
    /// failures.
    pub fn with_handler(handler: ProbeHandler) -> Probe {
        Probe {
            handler,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
            termination_grace_period: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeHandler {
    Exec { command: Vec<String> },
    HttpGet(HttpGet),
    TcpSocket { port: PortRef, host: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpGet {
    /// Defaults to `/`.
    pub path: String,
    pub port: PortRef,
    /// None: the pod's IP (its network namespace).
    pub host: Option<String>,
    pub scheme: HttpScheme,
    pub headers: Vec<HttpHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortRef {
    Number(u16),
    /// The name of one of the container's ports.
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HttpScheme {
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Lifecycle {
    pub post_start: Option<Handler>,
    pub pre_stop: Option<Handler>,
}

/// A lifecycle hook's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handler {
    Exec { command: Vec<String> },
    HttpGet(HttpGet),
    Sleep(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TerminationMessagePolicy {
    #[default]
    File,
    FallbackToLogsOnError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults_to_always_for_latest_or_untagged_images() {
        for image in [
            "busybox",
            "busybox:latest",
            "127.0.0.1:5000/busybox",
            "registry.example:5000/team/app:latest",
        ] {
            assert_eq!(
                PullPolicy::default_for_image(&image.parse().unwrap()),
                PullPolicy::Always,
                "{image}"
            );
        }
    }

    #[test]
    fn pull_policy_defaults_to_if_not_present_for_tags_and_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for image in [
            "busybox:1.36".to_string(),
            "127.0.0.1:5000/busybox:v1".to_string(),
            format!("busybox@{digest}"),
            format!("busybox:latest@{digest}"),
        ] {
            assert_eq!(
                PullPolicy::default_for_image(&image.parse().unwrap()),
                PullPolicy::IfNotPresent,
                "{image}"
            );
        }
    }

    #[test]
    fn probes_default_like_kubernetes() {
        let p = Probe::with_handler(ProbeHandler::TcpSocket {
            port: PortRef::Number(80),
            host: None,
        });
        assert_eq!(p.period, Duration::from_secs(10));
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!((p.success_threshold, p.failure_threshold), (1, 3));
    }

    #[test]
    fn specs_serialize_with_kubernetes_enum_spellings() {
        let json =
            serde_json::to_string(&(Protocol::Sctp, HttpScheme::Https, PullPolicy::Never)).unwrap();
        assert_eq!(json, r#"["SCTP","HTTPS","Never"]"#);
    }

    /// A record as the builds before typed references stored it (image a plain string).
    const STORED_BEFORE_TYPED_REFERENCES: &str = r#"{"namespace":"default","name":"web","uid":"u1","labels":{},"annotations":{},"restart_policy":"Always","termination_grace_period":{"secs":30,"nanos":0},"active_deadline":null,"host_network":false,"host_pid":false,"host_ipc":false,"hostname":"web","subdomain":null,"node_name":null,"dns_policy":"ClusterFirst","dns_config":null,"host_aliases":[],"image_pull_secrets":[],"security_context":{"run_as_user":null,"run_as_group":null,"run_as_non_root":null,"supplemental_groups":[],"supplemental_groups_policy":"Merge","fs_group":null,"fs_group_change_policy":"Always","seccomp_profile":null,"sysctls":[]},"volumes":[],"init_containers":[],"containers":[{"name":"app","image":"busybox","image_pull_policy":"Always","command":[],"args":[],"working_dir":null,"env":[],"env_from":[],"ports":[],"resources":{"limits":{"cpu_millis":null,"memory":null,"ephemeral_storage":null},"requests":{"cpu_millis":null,"memory":null,"ephemeral_storage":null}},"volume_mounts":[],"security_context":{"run_as_user":null,"run_as_group":null,"run_as_non_root":null,"read_only_root_filesystem":false,"privileged":false,"allow_privilege_escalation":null,"capabilities":{"add":[],"drop":[]},"proc_mount":"Default","seccomp_profile":null},"liveness_probe":null,"readiness_probe":null,"startup_probe":null,"lifecycle":{"post_start":null,"pre_stop":null},"termination_message_path":"/dev/termination-log","termination_message_policy":"File","stdin":false,"stdin_once":false,"tty":false}]}"#;

    #[test]
    fn pod_records_with_a_plain_image_string_still_load_and_store_the_same_text() {
        let spec: PodSpec = serde_json::from_str(STORED_BEFORE_TYPED_REFERENCES).unwrap();
        let image = &spec.containers[0].image;
        assert_eq!(image.as_str(), "busybox");
        assert_eq!(image.normalised(), "docker.io/library/busybox:latest");
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            STORED_BEFORE_TYPED_REFERENCES
        );
    }
}
