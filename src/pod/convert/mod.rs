//! Kubernetes `Pod` -> layerlet [`PodSpec`]: Kubernetes' defaults applied, values typed
//! (enums, quantities, ports, modes, durations), and every field layerlet does not support
//! reported by name: an error when ignoring it would change what runs, a warning when it only
//! means something to a scheduler or a cluster.
//!
//! Checks that need more than one field (names, uniqueness, references) are in `validate`.

mod containers;
mod downward;
mod env;
mod fields;
mod pod_level;
mod probes;
mod security;
mod volumes;

#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use self::containers::container;
use self::fields::{choice, seconds, Result};
use self::pod_level::{dns_config, pod_level_fields};
use self::security::pod_security;
use self::volumes::volume;
use crate::pod::error::{FieldError, Warning};
use crate::pod::spec::*;

pub use self::volumes::refuse_tokens_without_api;

/// A converted pod and the fields it sets that layerlet ignores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub spec: PodSpec,
    pub warnings: Vec<Warning>,
}

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
