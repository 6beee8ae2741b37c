//! One container: its image, ports, resources and mounts, with env, probes and security
//! from their own files.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::env::{env_from_source, env_var};
use super::fields::{choice, non_empty, not_supported, port, quantity, warn, Result};
use super::probes::{lifecycle, probe};
use super::security::container_security;
use crate::pod::error::{FieldError, Warning};
use crate::pod::quantity::QuantityKind;
use crate::pod::spec::*;
use crate::reference::ImageRef;

pub(super) fn container(
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

pub(super) fn container_port(p: &k8s::ContainerPort, path: &str) -> Result<ContainerPort> {
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
