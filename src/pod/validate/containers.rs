//! One container: ports, env, resources and mounts; security and probes have their own
//! files.

use std::collections::BTreeSet;

use super::errors::Errors;
use super::names::{config_map_key, dns_subdomain, env_var_name, iana_svc_name, ip, required};
use super::paths::{absolute_path, env_field_path, relative_path};
use super::probes::probes_and_hooks;
use super::security::container_security;
use crate::pod::spec::*;

pub(super) fn container<'a>(
    spec: &'a PodSpec,
    c: &'a ContainerSpec,
    p: &str,
    init: bool,
    volume_names: &BTreeSet<&str>,
    host_ports: &mut BTreeSet<(u16, Protocol, Option<&'a str>)>,
    e: &mut Errors,
) {
    let mut port_names = BTreeSet::new();
    for (i, port) in c.ports.iter().enumerate() {
        let pp = format!("{p}.ports[{i}]");
        if let Some(name) = &port.name {
            if let Err(reason) = iana_svc_name(name) {
                e.push(format!("{pp}.name"), reason);
            } else if !port_names.insert(name.as_str()) {
                e.push(format!("{pp}.name"), format!("duplicate name {name:?}"));
            }
        }
        if let Some(host_port) = port.host_port {
            if spec.host_network && host_port != port.container_port {
                e.push(
                    format!("{pp}.hostPort"),
                    "must match containerPort when hostNetwork is true",
                );
            }
            if !host_ports.insert((host_port, port.protocol, port.host_ip.as_deref())) {
                e.push(
                    format!("{pp}.hostPort"),
                    format!(
                        "duplicate host port {host_port}/{:?} in the pod",
                        port.protocol
                    ),
                );
            }
        }
        if let Some(host_ip) = &port.host_ip {
            e.check(format!("{pp}.hostIP"), ip(host_ip));
        }
    }

    for (i, env) in c.env.iter().enumerate() {
        let ep = format!("{p}.env[{i}]");
        e.check(format!("{ep}.name"), env_var_name(&env.name));
        let from = format!("{ep}.valueFrom");
        match &env.source {
            EnvSource::Value(_) => {}
            EnvSource::ConfigMapKey { name, key, .. } => {
                let kp = format!("{from}.configMapKeyRef");
                e.check(
                    format!("{kp}.name"),
                    required(name).and_then(|_| dns_subdomain(name)),
                );
                e.check(format!("{kp}.key"), config_map_key(key));
            }
            EnvSource::SecretKey { name, key, .. } => {
                let kp = format!("{from}.secretKeyRef");
                e.check(
                    format!("{kp}.name"),
                    required(name).and_then(|_| dns_subdomain(name)),
                );
                e.check(format!("{kp}.key"), config_map_key(key));
            }
            EnvSource::Field(path) => {
                e.check(format!("{from}.fieldRef.fieldPath"), env_field_path(path));
            }
            EnvSource::ResourceField(r) => {
                if let Some(name) = &r.container {
                    e.check(
                        format!("{from}.resourceFieldRef.containerName"),
                        known_container(spec, name),
                    );
                }
            }
        }
    }
    for (i, from) in c.env_from.iter().enumerate() {
        let fp = format!("{p}.envFrom[{i}]");
        if !from.prefix.is_empty() {
            e.check(format!("{fp}.prefix"), env_var_name(&from.prefix));
        }
        let (field, name) = match &from.source {
            EnvFromKind::ConfigMap { name, .. } => ("configMapRef", name),
            EnvFromKind::Secret { name, .. } => ("secretRef", name),
        };
        e.check(
            format!("{fp}.{field}.name"),
            required(name).and_then(|_| dns_subdomain(name)),
        );
    }

    resources(&c.resources, &format!("{p}.resources"), e);
    volume_mounts(c, p, volume_names, e);
    container_security(c, p, e);

    probes_and_hooks(spec, c, p, init, e);
}

fn resources(r: &Resources, p: &str, e: &mut Errors) {
    let pairs = [
        ("cpu", r.requests.cpu_millis, r.limits.cpu_millis, "m"),
        ("memory", r.requests.memory, r.limits.memory, " bytes"),
        (
            "ephemeral-storage",
            r.requests.ephemeral_storage,
            r.limits.ephemeral_storage,
            " bytes",
        ),
    ];
    for (name, request, limit, unit) in pairs {
        if let (Some(request), Some(limit)) = (request, limit) {
            if request > limit {
                e.push(
                    format!("{p}.requests.{name}"),
                    format!("must be less than or equal to the {name} limit ({limit}{unit})"),
                );
            }
        }
    }
}

fn volume_mounts(c: &ContainerSpec, p: &str, volume_names: &BTreeSet<&str>, e: &mut Errors) {
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{p}.volumeMounts[{i}]");
        if m.name.is_empty() {
            e.push(format!("{mp}.name"), "required");
        } else if !volume_names.contains(m.name.as_str()) {
            e.push(
                format!("{mp}.name"),
                format!("volume {:?} is not in spec.volumes", m.name),
            );
        }
        if let Err(reason) = absolute_path(&m.mount_path) {
            e.push(format!("{mp}.mountPath"), reason);
        } else if !mount_paths.insert(m.mount_path.trim_end_matches('/')) {
            e.push(
                format!("{mp}.mountPath"),
                format!("duplicate mount path {:?}", m.mount_path),
            );
        }
        if m.sub_path.is_some() && m.sub_path_expr.is_some() {
            e.push(
                format!("{mp}.subPathExpr"),
                "may not be set together with subPath",
            );
        }
        if let Some(sub) = &m.sub_path {
            e.check(format!("{mp}.subPath"), relative_path(sub));
        }
        if let Some(sub) = &m.sub_path_expr {
            e.check(format!("{mp}.subPathExpr"), relative_path(sub));
        }
        if m.propagation == MountPropagation::Bidirectional && !c.security_context.privileged {
            e.push(
                format!("{mp}.mountPropagation"),
                "Bidirectional is only allowed in privileged containers",
            );
        }
    }
}

pub(super) fn known_container(spec: &PodSpec, name: &str) -> Result<(), String> {
    if spec.all_containers().any(|c| c.name == name) {
        Ok(())
    } else {
        Err(format!("container {name:?} is not in this pod"))
    }
}

// ---- value rules, in Kubernetes' terms ----
