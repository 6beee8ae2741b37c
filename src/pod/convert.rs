//! Kubernetes `Pod` -> layerlet [`PodSpec`]: Kubernetes' defaults applied, values typed
//! (enums, quantities, ports, modes, durations), and every field layerlet does not support
//! reported by name: an error when ignoring it would change what runs, a warning when it only
//! means something to a scheduler or a cluster.
//!
//! Checks that need more than one field (names, uniqueness, references) are in `validate`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::quantity::{self, QuantityKind};
use super::spec::*;
use super::{FieldError, Warning};
use crate::reference::ImageRef;

type Result<T> = std::result::Result<T, FieldError>;

/// A converted pod and the fields it sets that layerlet ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub spec: PodSpec,
    pub warnings: Vec<Warning>,
}

const SCHEDULING_ONLY: &str = "ignored: scheduling has no meaning on a single node";

pub fn convert_pod(pod: &k8s::Pod) -> Result<Converted> {
    let mut warnings = Vec::new();
    let (namespace, name) = object_name(&pod.metadata)?;
    let Some(spec) = &pod.spec else {
        return Err(FieldError::new("spec", "required"));
    };
    pod_level_fields(spec, &mut warnings)?;

    let uid = pod
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| static_uid(&namespace, &name));
    let hostname = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| default_hostname(&name));

    let service_account = spec
        .service_account_name
        .clone()
        .or_else(|| spec.service_account.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let mut volumes = Vec::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        volumes.push(volume(v, &format!("spec.volumes[{i}]"), &service_account)?);
    }
    let mut init_containers = Vec::new();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        init_containers.push(container(c, &path, true, &mut warnings)?);
    }
    let mut containers = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        containers.push(container(c, &path, false, &mut warnings)?);
    }

    let spec = PodSpec {
        namespace,
        name,
        uid,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        restart_policy: choice(
            "spec.restartPolicy",
            spec.restart_policy.as_deref(),
            RestartPolicy::Always,
            &[
                ("Always", RestartPolicy::Always),
                ("OnFailure", RestartPolicy::OnFailure),
                ("Never", RestartPolicy::Never),
            ],
        )?,
        termination_grace_period: match spec.termination_grace_period_seconds {
            None => DEFAULT_TERMINATION_GRACE_PERIOD,
            Some(s) => seconds("spec.terminationGracePeriodSeconds", s, 0)?,
        },
        active_deadline: spec
            .active_deadline_seconds
            .map(|s| {
                if (1..=i64::from(i32::MAX)).contains(&s) {
                    seconds("spec.activeDeadlineSeconds", s, 1)
                } else {
                    Err(FieldError::new(
                        "spec.activeDeadlineSeconds",
                        "must be between 1 and 2147483647, inclusive",
                    ))
                }
            })
            .transpose()?,
        host_network: spec.host_network.unwrap_or(false),
        host_pid: spec.host_pid.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        hostname,
        subdomain: spec.subdomain.clone().filter(|s| !s.is_empty()),
        node_name: spec.node_name.clone().filter(|s| !s.is_empty()),
        dns_policy: choice(
            "spec.dnsPolicy",
            spec.dns_policy.as_deref(),
            DnsPolicy::ClusterFirst,
            &[
                ("ClusterFirst", DnsPolicy::ClusterFirst),
                (
                    "ClusterFirstWithHostNet",
                    DnsPolicy::ClusterFirstWithHostNet,
                ),
                ("Default", DnsPolicy::Default),
                ("None", DnsPolicy::None),
            ],
        )?,
        dns_config: spec.dns_config.as_ref().map(dns_config).transpose()?,
        host_aliases: spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| HostAlias {
                ip: a.ip.clone(),
                hostnames: a.hostnames.clone().unwrap_or_default(),
            })
            .collect(),
        image_pull_secrets: spec
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .collect(),
        security_context: pod_security(spec.security_context.as_ref(), &mut warnings)?,
        volumes,
        init_containers,
        containers,
    };
    Ok(Converted { spec, warnings })
}

/// Namespace (`default` when unset) and name of any object.
pub fn object_name(meta: &ObjectMeta) -> Result<(String, String)> {
    let Some(name) = meta.name.clone().filter(|n| !n.is_empty()) else {
        let reason = if meta.generate_name.is_some() {
            "required (generateName is not supported)"
        } else {
            "required"
        };
        return Err(FieldError::new("metadata.name", reason));
    };
    let namespace = meta
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    Ok((namespace, name))
}

/// A uid derived from namespace and name only, so that a static pod keeps it when its file
/// changes or the agent restarts. FNV-1a 128 (stable across Rust versions, unlike std's
/// hasher) laid out as an RFC 9562 version 8 UUID.
pub fn static_uid(namespace: &str, name: &str) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    let input = [
        b"layerlet static pod".as_slice(),
        namespace.as_bytes(),
        name.as_bytes(),
    ];
    for part in input {
        for byte in part.iter().chain(std::iter::once(&0u8)) {
            hash ^= u128::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash = (hash & !(0xf << 76)) | (0x8 << 76);
    hash = (hash & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{hash:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// kubelet's rule: the pod name cut to 63 bytes, without trailing '-' or '.'.
pub(crate) fn default_hostname(name: &str) -> String {
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].trim_end_matches(['-', '.']).to_string()
}

fn not_supported(field: impl Into<String>, why: &str) -> FieldError {
    let reason = if why.is_empty() {
        "not supported by layerlet".to_string()
    } else {
        format!("not supported by layerlet: {why}")
    };
    FieldError::new(field, reason)
}

fn warn(warnings: &mut Vec<Warning>, field: impl Into<String>, message: &str) {
    warnings.push(Warning {
        field: field.into(),
        message: message.to_string(),
    });
}

fn non_empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn non_empty_map<K, V>(v: &Option<BTreeMap<K, V>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn set_to(v: &Option<String>, ignore: &str) -> bool {
    v.as_deref().is_some_and(|v| !v.is_empty() && v != ignore)
}

/// Pod fields outside layerlet's model: refused when they change what runs, warned otherwise.
fn pod_level_fields(spec: &k8s::PodSpec, warnings: &mut Vec<Warning>) -> Result<()> {
    if non_empty(&spec.ephemeral_containers) {
        return Err(not_supported("spec.ephemeralContainers", ""));
    }
    if non_empty(&spec.resource_claims) {
        return Err(not_supported(
            "spec.resourceClaims",
            "dynamic resource allocation",
        ));
    }
    if spec.resources.is_some() {
        return Err(not_supported(
            "spec.resources",
            "set resources on each container",
        ));
    }
    if set_to(&spec.runtime_class_name, "") {
        return Err(not_supported(
            "spec.runtimeClassName",
            "layerlet is the only runtime",
        ));
    }
    if spec.host_users == Some(false) {
        return Err(not_supported("spec.hostUsers", "user namespaces"));
    }
    if spec.set_hostname_as_fqdn == Some(true) {
        return Err(not_supported("spec.setHostnameAsFQDN", ""));
    }
    if spec.share_process_namespace == Some(true) {
        return Err(not_supported(
            "spec.shareProcessNamespace",
            "each container has its own PID namespace",
        ));
    }
    if let Some(os) = &spec.os {
        if os.name != "linux" {
            return Err(FieldError::new(
                "spec.os.name",
                format!("unsupported value {:?}; layerlet runs Linux pods", os.name),
            ));
        }
    }

    if non_empty_map(&spec.node_selector) {
        warn(warnings, "spec.nodeSelector", SCHEDULING_ONLY);
    }
    if spec.affinity.is_some() {
        warn(warnings, "spec.affinity", SCHEDULING_ONLY);
    }
    if non_empty(&spec.tolerations) {
        warn(warnings, "spec.tolerations", SCHEDULING_ONLY);
    }
    if non_empty(&spec.topology_spread_constraints) {
        warn(warnings, "spec.topologySpreadConstraints", SCHEDULING_ONLY);
    }
    if set_to(&spec.priority_class_name, "") {
        warn(warnings, "spec.priorityClassName", SCHEDULING_ONLY);
    }
    // The API server fills in these defaults; only other values are worth a warning.
    if spec.priority.is_some_and(|p| p != 0) {
        warn(warnings, "spec.priority", SCHEDULING_ONLY);
    }
    if set_to(&spec.preemption_policy, "PreemptLowerPriority") {
        warn(warnings, "spec.preemptionPolicy", SCHEDULING_ONLY);
    }
    if set_to(&spec.scheduler_name, "default-scheduler") {
        warn(warnings, "spec.schedulerName", SCHEDULING_ONLY);
    }
    if non_empty(&spec.scheduling_gates) {
        warn(warnings, "spec.schedulingGates", SCHEDULING_ONLY);
    }
    if non_empty_map(&spec.overhead) {
        warn(warnings, "spec.overhead", SCHEDULING_ONLY);
    }
    if non_empty(&spec.readiness_gates) {
        warn(
            warnings,
            "spec.readinessGates",
            "ignored: nothing on the node sets their conditions; Ready follows the containers alone",
        );
    }
    const NO_TOKEN: &str = "ignored: layerlet mounts no service account token";
    if set_to(&spec.service_account_name, "default") {
        warn(warnings, "spec.serviceAccountName", NO_TOKEN);
    } else if set_to(&spec.service_account, "default") {
        warn(warnings, "spec.serviceAccount", NO_TOKEN);
    }
    if spec.automount_service_account_token == Some(true) {
        warn(warnings, "spec.automountServiceAccountToken", NO_TOKEN);
    }
    Ok(())
}

/// An optional string field with a fixed set of values; empty means unset, as in Kubernetes.
fn choice<T: Copy>(
    field: &str,
    value: Option<&str>,
    default: T,
    options: &[(&str, T)],
) -> Result<T> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    options
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            FieldError::new(
                field,
                format!(
                    "unsupported value {value:?}; expected one of {}",
                    names.join(", ")
                ),
            )
        })
}

fn seconds(field: &str, value: i64, min: i64) -> Result<Duration> {
    u64::try_from(value)
        .ok()
        .filter(|_| value >= min)
        .map(Duration::from_secs)
        .ok_or_else(|| FieldError::new(field, format!("must be greater than or equal to {min}")))
}

fn non_negative(field: &str, value: i32) -> Result<u32> {
    u32::try_from(value).map_err(|_| FieldError::new(field, "must be greater than or equal to 0"))
}

/// uids and gids, in the range Kubernetes allows.
fn id(field: &str, value: i64) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or_else(|| FieldError::new(field, "must be between 0 and 2147483647, inclusive"))
}

fn port(field: &str, value: i32) -> Result<u16> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| FieldError::new(field, "must be between 1 and 65535, inclusive"))
}

fn mode(field: &str, value: i32) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            FieldError::new(
                field,
                "must be a number between 0 and 0777 (octal), both inclusive",
            )
        })
}

fn quantity(field: &str, value: &Quantity, kind: QuantityKind) -> Result<u64> {
    quantity::parse_quantity(&value.0, kind).map_err(|e| FieldError::new(field, e.to_string()))
}

fn pod_security(
    sc: Option<&k8s::PodSecurityContext>,
    warnings: &mut Vec<Warning>,
) -> Result<PodSecurity> {
    let Some(sc) = sc else {
        return Ok(PodSecurity::default());
    };
    let p = "spec.securityContext";
    app_armor(sc.app_armor_profile.as_ref(), p)?;
    if sc.se_linux_options.is_some() {
        warn(
            warnings,
            format!("{p}.seLinuxOptions"),
            "ignored: layerlet applies no SELinux labels",
        );
    }
    if sc.se_linux_change_policy.is_some() {
        warn(
            warnings,
            format!("{p}.seLinuxChangePolicy"),
            "ignored: layerlet applies no SELinux labels",
        );
    }
    if sc.windows_options.is_some() {
        warn(
            warnings,
            format!("{p}.windowsOptions"),
            "ignored: Windows only",
        );
    }
    let mut supplemental_groups = Vec::new();
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        supplemental_groups.push(id(&format!("{p}.supplementalGroups[{i}]"), *g)?);
    }
    Ok(PodSecurity {
        run_as_user: optional_id(sc.run_as_user, &format!("{p}.runAsUser"))?,
        run_as_group: optional_id(sc.run_as_group, &format!("{p}.runAsGroup"))?,
        run_as_non_root: sc.run_as_non_root,
        supplemental_groups,
        supplemental_groups_policy: choice(
            &format!("{p}.supplementalGroupsPolicy"),
            sc.supplemental_groups_policy.as_deref(),
            SupplementalGroupsPolicy::Merge,
            &[
                ("Merge", SupplementalGroupsPolicy::Merge),
                ("Strict", SupplementalGroupsPolicy::Strict),
            ],
        )?,
        fs_group: optional_id(sc.fs_group, &format!("{p}.fsGroup"))?,
        fs_group_change_policy: choice(
            &format!("{p}.fsGroupChangePolicy"),
            sc.fs_group_change_policy.as_deref(),
            FsGroupChangePolicy::Always,
            &[
                ("Always", FsGroupChangePolicy::Always),
                ("OnRootMismatch", FsGroupChangePolicy::OnRootMismatch),
            ],
        )?,
        seccomp_profile: seccomp(sc.seccomp_profile.as_ref(), &format!("{p}.seccompProfile"))?,
        sysctls: sc
            .sysctls
            .iter()
            .flatten()
            .map(|s| Sysctl {
                name: s.name.clone(),
                value: s.value.clone(),
            })
            .collect(),
    })
}

fn optional_id(value: Option<i64>, field: &str) -> Result<Option<u32>> {
    value.map(|v| id(field, v)).transpose()
}

/// kubelet refuses a confining AppArmor profile on a host that cannot enforce it; so does
/// layerlet, which enforces none. Unconfined is what it does anyway.
fn app_armor(profile: Option<&k8s::AppArmorProfile>, path: &str) -> Result<()> {
    match profile {
        Some(p) if p.type_ != "Unconfined" => Err(not_supported(
            format!("{path}.appArmorProfile"),
            "AppArmor profiles are not applied (only type Unconfined is accepted)",
        )),
        _ => Ok(()),
    }
}

fn seccomp(profile: Option<&k8s::SeccompProfile>, path: &str) -> Result<Option<SeccompProfile>> {
    let Some(profile) = profile else {
        return Ok(None);
    };
    let localhost = profile.localhost_profile.clone().filter(|p| !p.is_empty());
    let converted = match profile.type_.as_str() {
        "RuntimeDefault" => SeccompProfile::RuntimeDefault,
        "Unconfined" => SeccompProfile::Unconfined,
        "Localhost" => match localhost {
            Some(file) => return Ok(Some(SeccompProfile::Localhost(file))),
            None => return Err(FieldError::new(format!("{path}.localhostProfile"), "required when type is Localhost")),
        },
        "" => return Err(FieldError::new(format!("{path}.type"), "required")),
        other => {
            return Err(FieldError::new(
                format!("{path}.type"),
                format!("unsupported value {other:?}; expected one of RuntimeDefault, Unconfined, Localhost"),
            ))
        }
    };
    if localhost.is_some() {
        return Err(FieldError::new(
            format!("{path}.localhostProfile"),
            "may only be set when type is Localhost",
        ));
    }
    Ok(Some(converted))
}

fn dns_config(config: &k8s::PodDNSConfig) -> Result<DnsConfig> {
    let mut options = Vec::new();
    for (i, o) in config.options.iter().flatten().enumerate() {
        let Some(name) = o.name.clone().filter(|n| !n.is_empty()) else {
            return Err(FieldError::new(
                format!("spec.dnsConfig.options[{i}].name"),
                "required",
            ));
        };
        options.push(DnsOption {
            name,
            value: o.value.clone(),
        });
    }
    Ok(DnsConfig {
        nameservers: config.nameservers.clone().unwrap_or_default(),
        searches: config.searches.clone().unwrap_or_default(),
        options,
    })
}

/// Every volume source Kubernetes has that layerlet does not, by its field name.
fn unsupported_volume_types(v: &k8s::Volume) -> Vec<&'static str> {
    [
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| name)
    .collect()
}

fn volume(v: &k8s::Volume, path: &str, service_account: &str) -> Result<Volume> {
    let supported = [
        v.empty_dir.is_some(),
        v.host_path.is_some(),
        v.persistent_volume_claim.is_some(),
        v.config_map.is_some(),
        v.secret.is_some(),
        v.downward_api.is_some(),
        v.projected.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    let unsupported = unsupported_volume_types(v);
    if supported + unsupported.len() > 1 {
        return Err(FieldError::new(
            path,
            "may not specify more than 1 volume type",
        ));
    }
    if let Some(kind) = unsupported.first() {
        return Err(FieldError::new(
            path,
            format!("unsupported volume type {kind}"),
        ));
    }

    let source = if let Some(e) = &v.empty_dir {
        let p = format!("{path}.emptyDir");
        VolumeSource::EmptyDir {
            medium: choice(
                &format!("{p}.medium"),
                e.medium.as_deref(),
                StorageMedium::Disk,
                &[("Memory", StorageMedium::Memory)],
            )?,
            size_limit: e
                .size_limit
                .as_ref()
                .map(|q| quantity(&format!("{p}.sizeLimit"), q, QuantityKind::Bytes))
                .transpose()?,
        }
    } else if let Some(h) = &v.host_path {
        VolumeSource::HostPath {
            path: h.path.clone(),
            host_path_type: choice(
                &format!("{path}.hostPath.type"),
                h.type_.as_deref(),
                HostPathType::Unset,
                &[
                    ("DirectoryOrCreate", HostPathType::DirectoryOrCreate),
                    ("Directory", HostPathType::Directory),
                    ("FileOrCreate", HostPathType::FileOrCreate),
                    ("File", HostPathType::File),
                    ("Socket", HostPathType::Socket),
                    ("CharDevice", HostPathType::CharDevice),
                    ("BlockDevice", HostPathType::BlockDevice),
                ],
            )?,
        }
    } else if let Some(c) = &v.persistent_volume_claim {
        VolumeSource::PersistentVolumeClaim {
            claim_name: c.claim_name.clone(),
            read_only: c.read_only.unwrap_or(false),
        }
    } else if let Some(c) = &v.config_map {
        let p = format!("{path}.configMap");
        VolumeSource::ConfigMap {
            name: c.name.clone(),
            items: key_to_paths(c.items.as_deref(), &p)?,
            default_mode: default_mode(c.default_mode, &p)?,
            optional: c.optional.unwrap_or(false),
        }
    } else if let Some(s) = &v.secret {
        let p = format!("{path}.secret");
        VolumeSource::Secret {
            secret_name: s.secret_name.clone().unwrap_or_default(),
            items: key_to_paths(s.items.as_deref(), &p)?,
            default_mode: default_mode(s.default_mode, &p)?,
            optional: s.optional.unwrap_or(false),
        }
    } else if let Some(d) = &v.downward_api {
        let p = format!("{path}.downwardAPI");
        let mut items = Vec::new();
        for (i, f) in d.items.iter().flatten().enumerate() {
            items.push(downward_file(f, &format!("{p}.items[{i}]"))?);
        }
        VolumeSource::DownwardApi {
            items,
            default_mode: default_mode(d.default_mode, &p)?,
        }
    } else if let Some(pr) = &v.projected {
        let p = format!("{path}.projected");
        let mut sources = Vec::new();
        for (i, s) in pr.sources.iter().flatten().enumerate() {
            sources.push(projected_source(
                s,
                &format!("{p}.sources[{i}]"),
                service_account,
            )?);
        }
        VolumeSource::Projected {
            sources,
            default_mode: default_mode(pr.default_mode, &p)?,
        }
    } else {
        // Kubernetes defaults a volume without a source to an emptyDir.
        VolumeSource::EmptyDir {
            medium: StorageMedium::Disk,
            size_limit: None,
        }
    };
    Ok(Volume {
        name: v.name.clone(),
        source,
    })
}

/// Refuses service account tokens in a pod that comes from no API server (a file).
pub fn refuse_tokens_without_api(spec: &PodSpec) -> Result<()> {
    for (i, v) in spec.volumes.iter().enumerate() {
        let VolumeSource::Projected { sources, .. } = &v.source else {
            continue;
        };
        if let Some(j) = sources
            .iter()
            .position(|s| matches!(s, ProjectedSource::ServiceAccountToken { .. }))
        {
            return Err(not_supported(
                format!("spec.volumes[{i}].projected.sources[{j}].serviceAccountToken"),
                "there is no API server to issue service account tokens",
            ));
        }
    }
    Ok(())
}

fn projected_source(
    s: &k8s::VolumeProjection,
    path: &str,
    service_account: &str,
) -> Result<ProjectedSource> {
    if s.cluster_trust_bundle.is_some() {
        return Err(not_supported(
            format!("{path}.clusterTrustBundle"),
            "there is no API server to hold ClusterTrustBundles",
        ));
    }
    let mut found = Vec::new();
    if let Some(c) = &s.config_map {
        found.push(ProjectedSource::ConfigMap {
            name: c.name.clone(),
            items: key_to_paths(c.items.as_deref(), &format!("{path}.configMap"))?,
            optional: c.optional.unwrap_or(false),
        });
    }
    if let Some(c) = &s.secret {
        found.push(ProjectedSource::Secret {
            name: c.name.clone(),
            items: key_to_paths(c.items.as_deref(), &format!("{path}.secret"))?,
            optional: c.optional.unwrap_or(false),
        });
    }
    if let Some(d) = &s.downward_api {
        let mut items = Vec::new();
        for (i, f) in d.items.iter().flatten().enumerate() {
            items.push(downward_file(f, &format!("{path}.downwardAPI.items[{i}]"))?);
        }
        found.push(ProjectedSource::DownwardApi { items });
    }
    if let Some(t) = &s.service_account_token {
        let p = format!("{path}.serviceAccountToken");
        let expiration = t.expiration_seconds.unwrap_or(3600);
        // The API server's bounds: at least 10 minutes, at most 2^32 seconds.
        let Ok(expiration_seconds) = u32::try_from(expiration) else {
            return Err(FieldError::new(
                format!("{p}.expirationSeconds"),
                "may not specify a duration larger than 2^32 seconds",
            ));
        };
        if expiration_seconds < 600 {
            return Err(FieldError::new(
                format!("{p}.expirationSeconds"),
                "may not specify a duration less than 10 minutes",
            ));
        }
        found.push(ProjectedSource::ServiceAccountToken {
            service_account: service_account.to_string(),
            audience: t.audience.clone().filter(|a| !a.is_empty()),
            expiration_seconds,
            path: t.path.clone(),
        });
    }
    exactly_one(
        found,
        path,
        "configMap, secret, downwardAPI, serviceAccountToken",
    )
}

fn default_mode(value: Option<i32>, path: &str) -> Result<u32> {
    match value {
        None => Ok(DEFAULT_VOLUME_FILE_MODE),
        Some(m) => mode(&format!("{path}.defaultMode"), m),
    }
}

fn key_to_paths(items: Option<&[k8s::KeyToPath]>, path: &str) -> Result<Vec<KeyToPath>> {
    let mut out = Vec::new();
    for (i, item) in items.unwrap_or_default().iter().enumerate() {
        out.push(KeyToPath {
            key: item.key.clone(),
            path: item.path.clone(),
            mode: item
                .mode
                .map(|m| mode(&format!("{path}.items[{i}].mode"), m))
                .transpose()?,
        });
    }
    Ok(out)
}

fn downward_file(f: &k8s::DownwardAPIVolumeFile, path: &str) -> Result<DownwardApiFile> {
    let mut found = Vec::new();
    if let Some(field) = &f.field_ref {
        found.push(DownwardSource::Field(field_ref(
            field,
            &format!("{path}.fieldRef"),
        )?));
    }
    if let Some(r) = &f.resource_field_ref {
        found.push(DownwardSource::Resource(resource_field_ref(
            r,
            &format!("{path}.resourceFieldRef"),
        )?));
    }
    let source = exactly_one(found, path, "fieldRef or resourceFieldRef")?;
    Ok(DownwardApiFile {
        path: f.path.clone(),
        source,
        mode: f
            .mode
            .map(|m| mode(&format!("{path}.mode"), m))
            .transpose()?,
    })
}

fn field_ref(field: &k8s::ObjectFieldSelector, path: &str) -> Result<String> {
    if let Some(v) = field
        .api_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "v1")
    {
        return Err(FieldError::new(
            format!("{path}.apiVersion"),
            format!("unsupported value {v:?}; expected v1"),
        ));
    }
    Ok(field.field_path.clone())
}

const RESOURCE_FIELDS: &str = "limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage";

fn resource_field_ref(r: &k8s::ResourceFieldSelector, path: &str) -> Result<ResourceFieldRef> {
    let kind = match r.resource.as_str() {
        "limits.cpu" | "requests.cpu" => QuantityKind::Millicores,
        "limits.memory"
        | "requests.memory"
        | "limits.ephemeral-storage"
        | "requests.ephemeral-storage" => QuantityKind::Bytes,
        "" => return Err(FieldError::new(format!("{path}.resource"), "required")),
        other => {
            return Err(FieldError::new(
                format!("{path}.resource"),
                format!("unsupported value {other:?}; expected one of {RESOURCE_FIELDS}"),
            ))
        }
    };
    let divisor = match &r.divisor {
        None => match kind {
            QuantityKind::Millicores => 1000,
            QuantityKind::Bytes => 1,
        },
        Some(q) => {
            let field = format!("{path}.divisor");
            let value = quantity(&field, q, kind)?;
            // Kubernetes allows only unit divisors: 1m or 1 for CPU, 1 or one power of each
            // suffix for bytes.
            let allowed = match kind {
                QuantityKind::Millicores => value == 1 || value == 1000,
                QuantityKind::Bytes => {
                    (0..=6).any(|i| value == 1000u64.pow(i) || value == 1024u64.pow(i))
                }
            };
            if !allowed {
                let expected = match kind {
                    QuantityKind::Millicores => "1m or 1",
                    QuantityKind::Bytes => {
                        "one of 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
                    }
                };
                return Err(FieldError::new(
                    field,
                    format!("unsupported divisor {:?}; expected {expected}", q.0),
                ));
            }
            value
        }
    };
    Ok(ResourceFieldRef {
        container: r.container_name.clone().filter(|c| !c.is_empty()),
        resource: r.resource.clone(),
        divisor,
    })
}

fn container(
    c: &k8s::Container,
    path: &str,
    init: bool,
    warnings: &mut Vec<Warning>,
) -> Result<ContainerSpec> {
    if non_empty(&c.volume_devices) {
        return Err(not_supported(
            format!("{path}.volumeDevices"),
            "raw block volumes",
        ));
    }
    if let Some(policy) = c.restart_policy.as_deref().filter(|p| !p.is_empty()) {
        let field = format!("{path}.restartPolicy");
        return Err(match (init, policy) {
            (true, "Always") => not_supported(
                field,
                "sidecar containers (init containers with restartPolicy Always)",
            ),
            (true, other) => FieldError::new(
                field,
                format!("unsupported value {other:?}; expected Always"),
            ),
            (false, _) => FieldError::new(field, "may only be set on init containers"),
        });
    }
    if non_empty(&c.resize_policy) {
        // layerlet replaces a container whose resources change, which is RestartContainer;
        // a NotRequired policy therefore still restarts it.
        warn(
            warnings,
            format!("{path}.resizePolicy"),
            "ignored: a change of resources replaces the container",
        );
    }

    let image = image_reference(c.image.as_deref(), &format!("{path}.image"))?;
    let mut env = Vec::new();
    for (i, e) in c.env.iter().flatten().enumerate() {
        env.push(env_var(e, &format!("{path}.env[{i}]"))?);
    }
    let mut env_from = Vec::new();
    for (i, e) in c.env_from.iter().flatten().enumerate() {
        env_from.push(env_from_source(e, &format!("{path}.envFrom[{i}]"))?);
    }
    let mut ports = Vec::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        ports.push(container_port(p, &format!("{path}.ports[{i}]"))?);
    }
    let mut volume_mounts = Vec::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        volume_mounts.push(volume_mount(
            m,
            &format!("{path}.volumeMounts[{i}]"),
            warnings,
        )?);
    }
    let probe_at = |p: &Option<k8s::Probe>, name: &str| {
        p.as_ref()
            .map(|p| probe(p, &format!("{path}.{name}")))
            .transpose()
    };

    Ok(ContainerSpec {
        name: c.name.clone(),
        image_pull_policy: choice(
            &format!("{path}.imagePullPolicy"),
            c.image_pull_policy.as_deref(),
            PullPolicy::default_for_image(&image),
            &[
                ("Always", PullPolicy::Always),
                ("IfNotPresent", PullPolicy::IfNotPresent),
                ("Never", PullPolicy::Never),
            ],
        )?,
        image,
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        env,
        env_from,
        ports,
        resources: resources(c.resources.as_ref(), &format!("{path}.resources"))?,
        volume_mounts,
        security_context: container_security(c.security_context.as_ref(), path, warnings)?,
        liveness_probe: probe_at(&c.liveness_probe, "livenessProbe")?,
        readiness_probe: probe_at(&c.readiness_probe, "readinessProbe")?,
        startup_probe: probe_at(&c.startup_probe, "startupProbe")?,
        lifecycle: lifecycle(c.lifecycle.as_ref(), &format!("{path}.lifecycle"))?,
        termination_message_path: c
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.to_string()),
        termination_message_policy: choice(
            &format!("{path}.terminationMessagePolicy"),
            c.termination_message_policy.as_deref(),
            TerminationMessagePolicy::File,
            &[
                ("File", TerminationMessagePolicy::File),
                (
                    "FallbackToLogsOnError",
                    TerminationMessagePolicy::FallbackToLogsOnError,
                ),
            ],
        )?,
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
    })
}

/// Parsed here, once: the pull policy's default, pulls and store lookups all take the
/// typed reference, so a malformed one is refused now rather than failing a pull later.
fn image_reference(value: Option<&str>, field: &str) -> Result<ImageRef> {
    let value = value.unwrap_or_default();
    if value.is_empty() {
        return Err(FieldError::new(field, "required"));
    }
    if value.trim() != value {
        return Err(FieldError::new(
            field,
            "must not have leading or trailing whitespace",
        ));
    }
    ImageRef::parse(value).map_err(|e| FieldError::new(field, e.to_string()))
}

fn env_var(e: &k8s::EnvVar, path: &str) -> Result<EnvVar> {
    let value = e.value.clone().unwrap_or_default();
    let source = match &e.value_from {
        Some(_) if !value.is_empty() => {
            return Err(FieldError::new(
                format!("{path}.valueFrom"),
                "may not be specified when value is not empty",
            ))
        }
        Some(from) => env_var_source(from, &format!("{path}.valueFrom"))?,
        None => EnvSource::Value(value),
    };
    Ok(EnvVar {
        name: e.name.clone(),
        source,
    })
}

fn env_var_source(from: &k8s::EnvVarSource, path: &str) -> Result<EnvSource> {
    let mut found = Vec::new();
    if let Some(f) = &from.field_ref {
        found.push(EnvSource::Field(field_ref(f, &format!("{path}.fieldRef"))?));
    }
    if let Some(r) = &from.resource_field_ref {
        found.push(EnvSource::ResourceField(resource_field_ref(
            r,
            &format!("{path}.resourceFieldRef"),
        )?));
    }
    if let Some(k) = &from.config_map_key_ref {
        found.push(EnvSource::ConfigMapKey {
            name: k.name.clone(),
            key: k.key.clone(),
            optional: k.optional.unwrap_or(false),
        });
    }
    if let Some(k) = &from.secret_key_ref {
        found.push(EnvSource::SecretKey {
            name: k.name.clone(),
            key: k.key.clone(),
            optional: k.optional.unwrap_or(false),
        });
    }
    exactly_one(
        found,
        path,
        "fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef",
    )
}

/// The one member of a Kubernetes "one of" group, or the API server's messages for none and
/// several.
fn exactly_one<T>(mut found: Vec<T>, path: &str, choices: &str) -> Result<T> {
    if found.len() > 1 {
        return Err(FieldError::new(
            path,
            "may not have more than one field specified at a time",
        ));
    }
    found
        .pop()
        .ok_or_else(|| FieldError::new(path, format!("must specify one of: {choices}")))
}

fn env_from_source(e: &k8s::EnvFromSource, path: &str) -> Result<EnvFromSource> {
    let mut found = Vec::new();
    if let Some(c) = &e.config_map_ref {
        found.push(EnvFromKind::ConfigMap {
            name: c.name.clone(),
            optional: c.optional.unwrap_or(false),
        });
    }
    if let Some(s) = &e.secret_ref {
        found.push(EnvFromKind::Secret {
            name: s.name.clone(),
            optional: s.optional.unwrap_or(false),
        });
    }
    let source = exactly_one(found, path, "configMapRef or secretRef")?;
    Ok(EnvFromSource {
        prefix: e.prefix.clone().unwrap_or_default(),
        source,
    })
}

fn container_port(p: &k8s::ContainerPort, path: &str) -> Result<ContainerPort> {
    Ok(ContainerPort {
        name: p.name.clone().filter(|n| !n.is_empty()),
        container_port: port(&format!("{path}.containerPort"), p.container_port)?,
        protocol: choice(
            &format!("{path}.protocol"),
            p.protocol.as_deref(),
            Protocol::Tcp,
            &[
                ("TCP", Protocol::Tcp),
                ("UDP", Protocol::Udp),
                ("SCTP", Protocol::Sctp),
            ],
        )?,
        // 0 is how Kubernetes spells "no host port".
        host_port: match p.host_port {
            None | Some(0) => None,
            Some(n) => Some(port(&format!("{path}.hostPort"), n)?),
        },
        host_ip: p.host_ip.clone().filter(|h| !h.is_empty()),
    })
}

fn resources(r: Option<&k8s::ResourceRequirements>, path: &str) -> Result<Resources> {
    let Some(r) = r else {
        return Ok(Resources::default());
    };
    if non_empty(&r.claims) {
        return Err(not_supported(
            format!("{path}.claims"),
            "dynamic resource allocation",
        ));
    }
    let limits = resource_list(r.limits.as_ref(), &format!("{path}.limits"))?;
    let mut requests = resource_list(r.requests.as_ref(), &format!("{path}.requests"))?;
    // The API server defaults each missing request to its limit.
    requests.cpu_millis = requests.cpu_millis.or(limits.cpu_millis);
    requests.memory = requests.memory.or(limits.memory);
    requests.ephemeral_storage = requests.ephemeral_storage.or(limits.ephemeral_storage);
    Ok(Resources { limits, requests })
}

fn resource_list(list: Option<&BTreeMap<String, Quantity>>, path: &str) -> Result<ResourceList> {
    let mut out = ResourceList::default();
    for (name, value) in list.into_iter().flatten() {
        let field = format!("{path}.{name}");
        match name.as_str() {
            "cpu" => out.cpu_millis = Some(quantity(&field, value, QuantityKind::Millicores)?),
            "memory" => out.memory = Some(quantity(&field, value, QuantityKind::Bytes)?),
            "ephemeral-storage" => {
                out.ephemeral_storage = Some(quantity(&field, value, QuantityKind::Bytes)?)
            }
            n if n.starts_with("hugepages-") => return Err(not_supported(field, "huge pages")),
            _ => {
                return Err(FieldError::new(
                    field,
                    "unsupported resource; expected cpu, memory or ephemeral-storage",
                ))
            }
        }
    }
    Ok(out)
}

fn volume_mount(
    m: &k8s::VolumeMount,
    path: &str,
    warnings: &mut Vec<Warning>,
) -> Result<VolumeMount> {
    match m.recursive_read_only.as_deref() {
        None | Some("") | Some("Disabled") => {}
        Some("IfPossible") => warn(
            warnings,
            format!("{path}.recursiveReadOnly"),
            "ignored: submounts of the volume stay writable",
        ),
        Some("Enabled") => {
            return Err(not_supported(
                format!("{path}.recursiveReadOnly"),
                "recursive read-only mounts",
            ))
        }
        Some(other) => {
            return Err(FieldError::new(
                format!("{path}.recursiveReadOnly"),
                format!(
                    "unsupported value {other:?}; expected one of Disabled, IfPossible, Enabled"
                ),
            ))
        }
    }
    Ok(VolumeMount {
        name: m.name.clone(),
        mount_path: m.mount_path.clone(),
        read_only: m.read_only.unwrap_or(false),
        sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
        sub_path_expr: m.sub_path_expr.clone().filter(|s| !s.is_empty()),
        propagation: choice(
            &format!("{path}.mountPropagation"),
            m.mount_propagation.as_deref(),
            MountPropagation::None,
            &[
                ("None", MountPropagation::None),
                ("HostToContainer", MountPropagation::HostToContainer),
                ("Bidirectional", MountPropagation::Bidirectional),
            ],
        )?,
    })
}

fn container_security(
    sc: Option<&k8s::SecurityContext>,
    container_path: &str,
    warnings: &mut Vec<Warning>,
) -> Result<ContainerSecurity> {
    let Some(sc) = sc else {
        return Ok(ContainerSecurity::default());
    };
    let p = format!("{container_path}.securityContext");
    app_armor(sc.app_armor_profile.as_ref(), &p)?;
    if sc.se_linux_options.is_some() {
        warn(
            warnings,
            format!("{p}.seLinuxOptions"),
            "ignored: layerlet applies no SELinux labels",
        );
    }
    if sc.windows_options.is_some() {
        warn(
            warnings,
            format!("{p}.windowsOptions"),
            "ignored: Windows only",
        );
    }
    Ok(ContainerSecurity {
        run_as_user: optional_id(sc.run_as_user, &format!("{p}.runAsUser"))?,
        run_as_group: optional_id(sc.run_as_group, &format!("{p}.runAsGroup"))?,
        run_as_non_root: sc.run_as_non_root,
        read_only_root_filesystem: sc.read_only_root_filesystem.unwrap_or(false),
        privileged: sc.privileged.unwrap_or(false),
        allow_privilege_escalation: sc.allow_privilege_escalation,
        capabilities: sc
            .capabilities
            .as_ref()
            .map(|c| Capabilities {
                add: c.add.clone().unwrap_or_default(),
                drop: c.drop.clone().unwrap_or_default(),
            })
            .unwrap_or_default(),
        proc_mount: choice(
            &format!("{p}.procMount"),
            sc.proc_mount.as_deref(),
            ProcMount::Default,
            &[
                ("Default", ProcMount::Default),
                ("Unmasked", ProcMount::Unmasked),
            ],
        )?,
        seccomp_profile: seccomp(sc.seccomp_profile.as_ref(), &format!("{p}.seccompProfile"))?,
    })
}

/// Exactly one handler, or the Kubernetes messages for none and several.
fn one_handler<T>(mut handlers: Vec<T>, path: &str) -> Result<T> {
    match handlers.len() {
        1 => handlers
            .pop()
            .ok_or_else(|| FieldError::new(path, "must specify a handler type")),
        0 => Err(FieldError::new(path, "must specify a handler type")),
        _ => Err(FieldError::new(
            path,
            "may not specify more than 1 handler type",
        )),
    }
}

fn probe(p: &k8s::Probe, path: &str) -> Result<Probe> {
    if p.grpc.is_some() {
        return Err(not_supported(
            format!("{path}.grpc"),
            "gRPC probes (use exec, httpGet or tcpSocket)",
        ));
    }
    let mut handlers = Vec::new();
    if let Some(e) = &p.exec {
        handlers.push(ProbeHandler::Exec {
            command: e.command.clone().unwrap_or_default(),
        });
    }
    if let Some(h) = &p.http_get {
        handlers.push(ProbeHandler::HttpGet(http_get(
            h,
            &format!("{path}.httpGet"),
        )?));
    }
    if let Some(t) = &p.tcp_socket {
        handlers.push(ProbeHandler::TcpSocket {
            port: port_ref(&t.port, &format!("{path}.tcpSocket.port"))?,
            host: t.host.clone().filter(|h| !h.is_empty()),
        });
    }
    let mut probe = Probe::with_handler(one_handler(handlers, path)?);
    let field = |name: &str| format!("{path}.{name}");
    if let Some(v) = p.initial_delay_seconds {
        probe.initial_delay =
            Duration::from_secs(non_negative(&field("initialDelaySeconds"), v)?.into());
    }
    // As in Kubernetes, 0 means "the default" for these four.
    if let Some(v) = p.period_seconds {
        let v = non_negative(&field("periodSeconds"), v)?;
        if v > 0 {
            probe.period = Duration::from_secs(v.into());
        }
    }
    if let Some(v) = p.timeout_seconds {
        let v = non_negative(&field("timeoutSeconds"), v)?;
        if v > 0 {
            probe.timeout = Duration::from_secs(v.into());
        }
    }
    if let Some(v) = p.success_threshold {
        let v = non_negative(&field("successThreshold"), v)?;
        if v > 0 {
            probe.success_threshold = v;
        }
    }
    if let Some(v) = p.failure_threshold {
        let v = non_negative(&field("failureThreshold"), v)?;
        if v > 0 {
            probe.failure_threshold = v;
        }
    }
    if let Some(v) = p.termination_grace_period_seconds {
        probe.termination_grace_period =
            Some(seconds(&field("terminationGracePeriodSeconds"), v, 1)?);
    }
    Ok(probe)
}

fn http_get(h: &k8s::HTTPGetAction, path: &str) -> Result<HttpGet> {
    Ok(HttpGet {
        path: h
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_string()),
        port: port_ref(&h.port, &format!("{path}.port"))?,
        host: h.host.clone().filter(|h| !h.is_empty()),
        scheme: choice(
            &format!("{path}.scheme"),
            h.scheme.as_deref(),
            HttpScheme::Http,
            &[("HTTP", HttpScheme::Http), ("HTTPS", HttpScheme::Https)],
        )?,
        headers: h
            .http_headers
            .iter()
            .flatten()
            .map(|h| HttpHeader {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect(),
    })
}

fn port_ref(value: &IntOrString, field: &str) -> Result<PortRef> {
    match value {
        IntOrString::Int(n) => Ok(PortRef::Number(port(field, *n)?)),
        IntOrString::String(s) if s.is_empty() => Err(FieldError::new(field, "required")),
        IntOrString::String(s) => Ok(PortRef::Name(s.clone())),
    }
}

fn lifecycle(l: Option<&k8s::Lifecycle>, path: &str) -> Result<Lifecycle> {
    let Some(l) = l else {
        return Ok(Lifecycle::default());
    };
    if l.stop_signal.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(not_supported(
            format!("{path}.stopSignal"),
            "the image's STOPSIGNAL or SIGTERM stops the container",
        ));
    }
    Ok(Lifecycle {
        post_start: l
            .post_start
            .as_ref()
            .map(|h| handler(h, &format!("{path}.postStart")))
            .transpose()?,
        pre_stop: l
            .pre_stop
            .as_ref()
            .map(|h| handler(h, &format!("{path}.preStop")))
            .transpose()?,
    })
}

fn handler(h: &k8s::LifecycleHandler, path: &str) -> Result<Handler> {
    if h.tcp_socket.is_some() {
        // Kubernetes keeps the field for compatibility but never runs it either.
        return Err(not_supported(
            format!("{path}.tcpSocket"),
            "tcpSocket is not a lifecycle handler",
        ));
    }
    let mut handlers = Vec::new();
    if let Some(e) = &h.exec {
        handlers.push(Handler::Exec {
            command: e.command.clone().unwrap_or_default(),
        });
    }
    if let Some(g) = &h.http_get {
        handlers.push(Handler::HttpGet(http_get(g, &format!("{path}.httpGet"))?));
    }
    if let Some(s) = &h.sleep {
        handlers.push(Handler::Sleep(seconds(
            &format!("{path}.sleep.seconds"),
            s.seconds,
            0,
        )?));
    }
    one_handler(handlers, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> k8s::Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn convert(yaml: &str) -> Result<Converted> {
        convert_pod(&pod(yaml))
    }

    const MINIMAL: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: nginx}]\n";

    #[test]
    fn a_minimal_pod_gets_kubernetes_defaults() {
        let spec = convert(MINIMAL).unwrap().spec;
        assert_eq!(spec.namespace, "default");
        assert_eq!(spec.hostname, "web");
        assert_eq!(spec.restart_policy, RestartPolicy::Always);
        assert_eq!(spec.termination_grace_period, Duration::from_secs(30));
        assert_eq!(spec.dns_policy, DnsPolicy::ClusterFirst);
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy, PullPolicy::Always);
        assert_eq!(c.termination_message_path, "/dev/termination-log");
        assert_eq!(c.termination_message_policy, TerminationMessagePolicy::File);
        assert_eq!(c.resources, Resources::default());
    }

    #[test]
    fn static_pods_get_a_stable_uid_from_namespace_and_name() {
        let a = convert(MINIMAL).unwrap().spec.uid;
        let b = convert(&MINIMAL.replace("nginx", "nginx:1.27"))
            .unwrap()
            .spec
            .uid;
        assert_eq!(a, b);
        assert_eq!(a, static_uid("default", "web"));
        assert_ne!(a, static_uid("other", "web"));
        // Separators keep ("ab", "c") and ("a", "bc") apart.
        assert_ne!(static_uid("ab", "c"), static_uid("a", "bc"));
        // Version 8, RFC variant.
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn a_uid_in_metadata_is_kept() {
        let yaml = MINIMAL.replace("{name: web}", "{name: web, uid: 1234-abcd}");
        assert_eq!(convert(&yaml).unwrap().spec.uid, "1234-abcd");
    }

    #[test]
    fn the_hostname_is_the_pod_name_cut_to_63_characters() {
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let yaml = MINIMAL.replace("web", &long);
        assert_eq!(convert(&yaml).unwrap().spec.hostname, "a".repeat(62));
        let yaml = MINIMAL.replace("spec:\n", "spec:\n  hostname: box\n");
        assert_eq!(convert(&yaml).unwrap().spec.hostname, "box");
    }

    #[test]
    fn requests_default_to_limits() {
        let yaml = MINIMAL.replace(
            "image: nginx}",
            "image: nginx, resources: {limits: {memory: 128Mi, cpu: 500m}, requests: {cpu: 100m}}}",
        );
        let r = convert(&yaml).unwrap().spec.containers[0].resources.clone();
        assert_eq!(r.limits.memory, Some(128 << 20));
        assert_eq!(r.requests.memory, Some(128 << 20));
        assert_eq!(r.limits.cpu_millis, Some(500));
        assert_eq!(r.requests.cpu_millis, Some(100));
    }

    #[test]
    fn probes_take_kubernetes_defaults_and_zero_means_default() {
        let yaml = MINIMAL.replace(
            "image: nginx}",
            "image: nginx, livenessProbe: {httpGet: {port: 80}, periodSeconds: 0, failureThreshold: 5}}",
        );
        let probe = convert(&yaml).unwrap().spec.containers[0]
            .liveness_probe
            .clone()
            .unwrap();
        assert_eq!(probe.period, Duration::from_secs(10));
        assert_eq!(probe.failure_threshold, 5);
        let ProbeHandler::HttpGet(get) = probe.handler else {
            panic!("not httpGet")
        };
        assert_eq!(get.path, "/");
        assert_eq!(get.port, PortRef::Number(80));
        assert_eq!(get.scheme, HttpScheme::Http);
    }

    #[test]
    fn a_volume_without_a_source_is_an_empty_dir() {
        let yaml = MINIMAL.replace("spec:\n", "spec:\n  volumes: [{name: scratch}]\n");
        assert_eq!(
            convert(&yaml).unwrap().spec.volumes[0].source,
            VolumeSource::EmptyDir {
                medium: StorageMedium::Disk,
                size_limit: None
            }
        );
    }

    #[test]
    fn scheduler_fields_are_warnings_not_errors() {
        let yaml = MINIMAL.replace(
            "spec:\n",
            "spec:\n  nodeSelector: {disk: ssd}\n  tolerations: [{operator: Exists}]\n  schedulerName: default-scheduler\n  priorityClassName: high\n",
        );
        let warnings: Vec<String> = convert(&yaml)
            .unwrap()
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            warnings,
            vec![
                "spec.nodeSelector: ignored: scheduling has no meaning on a single node",
                "spec.tolerations: ignored: scheduling has no meaning on a single node",
                "spec.priorityClassName: ignored: scheduling has no meaning on a single node",
            ]
        );
    }

    #[test]
    fn resource_field_divisors_are_unit_quantities() {
        let yaml = MINIMAL.replace(
            "image: nginx}",
            "image: nginx, env: [{name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}, {name: CPU, valueFrom: {resourceFieldRef: {resource: requests.cpu}}}]}",
        );
        let env = convert(&yaml).unwrap().spec.containers[0].env.clone();
        assert_eq!(
            env[0].source,
            EnvSource::ResourceField(ResourceFieldRef {
                container: None,
                resource: "limits.memory".into(),
                divisor: 1 << 20
            })
        );
        let EnvSource::ResourceField(cpu) = &env[1].source else {
            panic!("not a resource field")
        };
        assert_eq!(cpu.divisor, 1000);
    }
}
