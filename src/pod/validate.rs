//! What the API server would check on a converted pod: names, uniqueness, references between
//! fields and rules that span fields. Values of single fields (enums, quantities, ranges)
//! were already checked by `convert`. All problems are collected, in field order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::spec::*;
use super::FieldError;

/// Kubernetes' limit on the total size of a pod's annotations.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError::new(field, reason));
    }

    fn check(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(reason) = result {
            self.push(field, reason);
        }
    }
}

pub fn validate_pod(spec: &PodSpec) -> Vec<FieldError> {
    let mut e = Errors(validate_object_meta(&spec.namespace, &spec.name));
    // It names directories and cgroups of the pod.
    e.check("metadata.uid", uid(&spec.uid));
    labels_and_annotations(spec, &mut e);

    if spec.hostname != super::convert::default_hostname(&spec.name) {
        e.check("spec.hostname", dns_label(&spec.hostname));
    }
    if let Some(subdomain) = &spec.subdomain {
        e.check("spec.subdomain", dns_label(subdomain));
    }
    dns(spec, &mut e);
    for (i, alias) in spec.host_aliases.iter().enumerate() {
        let p = format!("spec.hostAliases[{i}]");
        e.check(format!("{p}.ip"), ip(&alias.ip));
        for (j, host) in alias.hostnames.iter().enumerate() {
            e.check(format!("{p}.hostnames[{j}]"), dns_subdomain(host));
        }
    }
    for (i, name) in spec.image_pull_secrets.iter().enumerate() {
        e.check(
            format!("spec.imagePullSecrets[{i}].name"),
            dns_subdomain(name),
        );
    }
    pod_security(&spec.security_context, &mut e);

    let mut volume_names = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().enumerate() {
        let p = format!("spec.volumes[{i}]");
        if volume.name.is_empty() {
            e.push(format!("{p}.name"), "required");
        } else if let Err(reason) = dns_label(&volume.name) {
            e.push(format!("{p}.name"), reason);
        } else if !volume_names.insert(volume.name.as_str()) {
            e.push(
                format!("{p}.name"),
                format!("duplicate name {:?}", volume.name),
            );
        }
        volume_source(spec, &volume.source, &p, &mut e);
    }

    if spec.containers.is_empty() {
        e.push(
            "spec.containers",
            "required: a pod needs at least one container",
        );
    }
    let mut container_names = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    let lists = [
        ("spec.initContainers", &spec.init_containers, true),
        ("spec.containers", &spec.containers, false),
    ];
    for (list, containers, init) in lists {
        for (i, c) in containers.iter().enumerate() {
            let p = format!("{list}[{i}]");
            if c.name.is_empty() {
                e.push(format!("{p}.name"), "required");
            } else if let Err(reason) = dns_label(&c.name) {
                e.push(format!("{p}.name"), reason);
            } else if !container_names.insert(c.name.as_str()) {
                e.push(format!("{p}.name"), format!("duplicate name {:?}", c.name));
            }
            container(spec, c, &p, init, &volume_names, &mut host_ports, &mut e);
        }
    }
    e.0
}

/// Namespace a DNS-1123 label, name a DNS-1123 subdomain (Pods, ConfigMaps and Secrets).
pub fn validate_object_meta(namespace: &str, name: &str) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    e.check("metadata.namespace", dns_label(namespace));
    e.check("metadata.name", dns_subdomain(name));
    e.0
}

/// Keys of ConfigMap and Secret data, which become file names in volumes.
pub fn validate_data_keys<'a>(
    field: &str,
    keys: impl Iterator<Item = &'a String>,
) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    for key in keys {
        e.check(format!("{field}.{key}"), config_map_key(key));
    }
    e.0
}

/// Kubernetes' cap on the data of one ConfigMap or Secret.
pub const MAX_OBJECT_DATA_BYTES: usize = 1024 * 1024;

/// The data of a ConfigMap or Secret (all values together) fits in 1 MiB, as in etcd.
pub fn validate_object_size(field: &str, size: usize) -> Vec<FieldError> {
    if size > MAX_OBJECT_DATA_BYTES {
        vec![FieldError::new(
            field,
            format!("{size} bytes of data, over the limit of {MAX_OBJECT_DATA_BYTES} bytes (1 MiB) per object; split it into several objects"),
        )]
    } else {
        Vec::new()
    }
}

/// The keys each built-in Secret type requires, as the API server checks them.
pub fn validate_secret_type(
    secret_type: &str,
    data: &BTreeMap<String, Vec<u8>>,
) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    let mut require = |key: &str| {
        if !data.contains_key(key) {
            e.push(
                format!("data.{key}"),
                format!("required for a Secret of type {secret_type}"),
            );
        }
    };
    match secret_type {
        "kubernetes.io/dockercfg" => require(".dockercfg"),
        "kubernetes.io/dockerconfigjson" => require(".dockerconfigjson"),
        "kubernetes.io/ssh-auth" => require("ssh-privatekey"),
        "kubernetes.io/tls" => {
            require("tls.crt");
            require("tls.key");
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            e.push(
                "data",
                "a Secret of type kubernetes.io/basic-auth needs username or password",
            );
        }
        _ => {}
    }
    let json_key = match secret_type {
        "kubernetes.io/dockercfg" => Some(".dockercfg"),
        "kubernetes.io/dockerconfigjson" => Some(".dockerconfigjson"),
        _ => None,
    };
    if let Some((key, bytes)) = json_key.and_then(|k| data.get(k).map(|b| (k, b))) {
        if serde_json::from_slice::<serde_json::Value>(bytes).is_err() {
            e.push(format!("data.{key}"), "must be valid JSON");
        }
    }
    e.0
}

fn labels_and_annotations(spec: &PodSpec, e: &mut Errors) {
    for (key, value) in &spec.labels {
        e.check(format!("metadata.labels.{key}"), qualified_name(key));
        e.check(format!("metadata.labels.{key}"), label_value(value));
    }
    let mut size = 0;
    for (key, value) in &spec.annotations {
        e.check(format!("metadata.annotations.{key}"), qualified_name(key));
        size += key.len() + value.len();
    }
    if size > MAX_ANNOTATIONS_BYTES {
        e.push(
            "metadata.annotations",
            format!("too long: {size} bytes, at most {MAX_ANNOTATIONS_BYTES}"),
        );
    }
}

fn dns(spec: &PodSpec, e: &mut Errors) {
    if spec.dns_policy == DnsPolicy::None
        && spec
            .dns_config
            .as_ref()
            .is_none_or(|c| c.nameservers.is_empty())
    {
        e.push(
            "spec.dnsConfig.nameservers",
            "required: dnsPolicy None needs at least one nameserver",
        );
    }
    let Some(config) = &spec.dns_config else {
        return;
    };
    if config.nameservers.len() > 3 {
        e.push(
            "spec.dnsConfig.nameservers",
            "must not have more than 3 nameservers",
        );
    }
    for (i, server) in config.nameservers.iter().enumerate() {
        e.check(format!("spec.dnsConfig.nameservers[{i}]"), ip(server));
    }
    if config.searches.len() > 32 {
        e.push(
            "spec.dnsConfig.searches",
            "must not have more than 32 search paths",
        );
    }
    for (i, search) in config.searches.iter().enumerate() {
        // A trailing dot marks a fully qualified name.
        e.check(
            format!("spec.dnsConfig.searches[{i}]"),
            dns_subdomain(search.strip_suffix('.').unwrap_or(search)),
        );
    }
}

fn pod_security(sc: &PodSecurity, e: &mut Errors) {
    let p = "spec.securityContext";
    seccomp(
        sc.seccomp_profile.as_ref(),
        &format!("{p}.seccompProfile"),
        e,
    );
    let mut names = BTreeSet::new();
    for (i, sysctl) in sc.sysctls.iter().enumerate() {
        let field = format!("{p}.sysctls[{i}].name");
        if let Err(reason) = sysctl_name(&sysctl.name) {
            e.push(field, reason);
        } else if !names.insert(sysctl.name.as_str()) {
            e.push(field, format!("duplicate name {:?}", sysctl.name));
        }
    }
}

fn seccomp(profile: Option<&SeccompProfile>, path: &str, e: &mut Errors) {
    if let Some(SeccompProfile::Localhost(file)) = profile {
        e.check(format!("{path}.localhostProfile"), relative_path(file));
    }
}

fn volume_source(spec: &PodSpec, source: &VolumeSource, p: &str, e: &mut Errors) {
    match source {
        VolumeSource::EmptyDir { .. } => {}
        VolumeSource::HostPath { path, .. } => {
            e.check(format!("{p}.hostPath.path"), absolute_path(path));
        }
        VolumeSource::PersistentVolumeClaim { claim_name, .. } => {
            e.check(
                format!("{p}.persistentVolumeClaim.claimName"),
                required(claim_name).and_then(|_| dns_subdomain(claim_name)),
            );
        }
        VolumeSource::ConfigMap { name, items, .. } => {
            e.check(
                format!("{p}.configMap.name"),
                required(name).and_then(|_| dns_subdomain(name)),
            );
            key_to_paths(items, &format!("{p}.configMap"), e);
        }
        VolumeSource::Secret {
            secret_name, items, ..
        } => {
            e.check(
                format!("{p}.secret.secretName"),
                required(secret_name).and_then(|_| dns_subdomain(secret_name)),
            );
            key_to_paths(items, &format!("{p}.secret"), e);
        }
        VolumeSource::DownwardApi { items, .. } => {
            downward_items(
                spec,
                items,
                &format!("{p}.downwardAPI"),
                &mut BTreeSet::new(),
                e,
            );
        }
        VolumeSource::Projected { sources, .. } => {
            // Paths are unique across all sources: they share one directory.
            let mut paths = BTreeSet::new();
            for (i, source) in sources.iter().enumerate() {
                let sp = format!("{p}.projected.sources[{i}]");
                match source {
                    ProjectedSource::ConfigMap { name, items, .. } => {
                        e.check(
                            format!("{sp}.configMap.name"),
                            required(name).and_then(|_| dns_subdomain(name)),
                        );
                        key_to_paths_in(items, &format!("{sp}.configMap"), &mut paths, e);
                    }
                    ProjectedSource::Secret { name, items, .. } => {
                        e.check(
                            format!("{sp}.secret.name"),
                            required(name).and_then(|_| dns_subdomain(name)),
                        );
                        key_to_paths_in(items, &format!("{sp}.secret"), &mut paths, e);
                    }
                    ProjectedSource::DownwardApi { items } => {
                        downward_items(spec, items, &format!("{sp}.downwardAPI"), &mut paths, e);
                    }
                    ProjectedSource::ServiceAccountToken { path, .. } => {
                        let pp = format!("{sp}.serviceAccountToken.path");
                        e.check(pp.clone(), volume_file_path(path));
                        if !paths.insert(path.as_str()) {
                            e.push(pp, format!("duplicate path {path:?}"));
                        }
                    }
                }
            }
        }
    }
}

fn downward_items<'a>(
    spec: &PodSpec,
    items: &'a [DownwardApiFile],
    p: &str,
    paths: &mut BTreeSet<&'a str>,
    e: &mut Errors,
) {
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}.items[{i}]");
        e.check(format!("{ip}.path"), volume_file_path(&item.path));
        if !paths.insert(item.path.as_str()) {
            e.push(
                format!("{ip}.path"),
                format!("duplicate path {:?}", item.path),
            );
        }
        match &item.source {
            DownwardSource::Field(path) => {
                e.check(format!("{ip}.fieldRef.fieldPath"), volume_field_path(path));
            }
            DownwardSource::Resource(r) => {
                let field = format!("{ip}.resourceFieldRef.containerName");
                match &r.container {
                    None => e.push(field, "required in a downwardAPI volume"),
                    Some(name) => e.check(field, known_container(spec, name)),
                }
            }
        }
    }
}

fn key_to_paths(items: &[KeyToPath], p: &str, e: &mut Errors) {
    key_to_paths_in(items, p, &mut BTreeSet::new(), e)
}

fn key_to_paths_in<'a>(
    items: &'a [KeyToPath],
    p: &str,
    paths: &mut BTreeSet<&'a str>,
    e: &mut Errors,
) {
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}.items[{i}]");
        e.check(format!("{ip}.key"), config_map_key(&item.key));
        e.check(format!("{ip}.path"), volume_file_path(&item.path));
        if !paths.insert(item.path.as_str()) {
            e.push(
                format!("{ip}.path"),
                format!("duplicate path {:?}", item.path),
            );
        }
    }
}

fn container<'a>(
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
    security(c, p, e);

    if init {
        for (set, field) in [
            (c.liveness_probe.is_some(), "livenessProbe"),
            (c.readiness_probe.is_some(), "readinessProbe"),
            (c.startup_probe.is_some(), "startupProbe"),
            (c.lifecycle != Lifecycle::default(), "lifecycle"),
        ] {
            if set {
                e.push(
                    format!("{p}.{field}"),
                    "must not be set for init containers",
                );
            }
        }
    }
    let probes = [
        (&c.liveness_probe, "livenessProbe"),
        (&c.readiness_probe, "readinessProbe"),
        (&c.startup_probe, "startupProbe"),
    ];
    for (probe, name) in probes {
        if let Some(probe) = probe {
            probe_rules(probe, name, &format!("{p}.{name}"), e);
        }
    }
    e.0.extend(super::probe::check_targets(c, p));
    for (hook, name) in [
        (&c.lifecycle.post_start, "postStart"),
        (&c.lifecycle.pre_stop, "preStop"),
    ] {
        let hp = format!("{p}.lifecycle.{name}");
        match hook {
            Some(Handler::Exec { command }) if command.is_empty() => {
                e.push(format!("{hp}.exec.command"), "required");
            }
            Some(Handler::HttpGet(get)) => http_get(get, &format!("{hp}.httpGet"), e),
            Some(Handler::Sleep(d)) if *d > spec.termination_grace_period => e.push(
                format!("{hp}.sleep.seconds"),
                format!(
                    "must not be longer than terminationGracePeriodSeconds ({})",
                    spec.termination_grace_period.as_secs()
                ),
            ),
            _ => {}
        }
    }
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

fn security(c: &ContainerSpec, p: &str, e: &mut Errors) {
    let sc = &c.security_context;
    let sp = format!("{p}.securityContext");
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged {
            e.push(
                format!("{sp}.allowPrivilegeEscalation"),
                "cannot be false when privileged is true",
            );
        }
        if sc
            .capabilities
            .add
            .iter()
            .any(|cap| cap.trim_start_matches("CAP_") == "SYS_ADMIN")
        {
            e.push(
                format!("{sp}.allowPrivilegeEscalation"),
                "cannot be false when capabilities.add has SYS_ADMIN",
            );
        }
    }
    for (list, name) in [
        (&sc.capabilities.add, "add"),
        (&sc.capabilities.drop, "drop"),
    ] {
        for (i, cap) in list.iter().enumerate() {
            if cap.is_empty() {
                e.push(format!("{sp}.capabilities.{name}[{i}]"), "required");
            }
        }
    }
    seccomp(
        sc.seccomp_profile.as_ref(),
        &format!("{sp}.seccompProfile"),
        e,
    );
}

fn probe_rules(probe: &Probe, name: &str, p: &str, e: &mut Errors) {
    if probe.success_threshold < 1 {
        e.push(format!("{p}.successThreshold"), "must be at least 1");
    } else if name != "readinessProbe" && probe.success_threshold != 1 {
        e.push(
            format!("{p}.successThreshold"),
            format!("must be 1 for a {name}"),
        );
    }
    if probe.failure_threshold < 1 {
        e.push(format!("{p}.failureThreshold"), "must be at least 1");
    }
    if probe.period.is_zero() {
        e.push(format!("{p}.periodSeconds"), "must be at least 1");
    }
    if probe.timeout.is_zero() {
        e.push(format!("{p}.timeoutSeconds"), "must be at least 1");
    }
    if name == "readinessProbe" && probe.termination_grace_period.is_some() {
        e.push(
            format!("{p}.terminationGracePeriodSeconds"),
            "must not be set for a readinessProbe",
        );
    }
    match &probe.handler {
        ProbeHandler::Exec { command } if command.is_empty() => {
            e.push(format!("{p}.exec.command"), "required");
        }
        ProbeHandler::HttpGet(get) => http_get(get, &format!("{p}.httpGet"), e),
        ProbeHandler::TcpSocket { port, .. } => port_ref(port, &format!("{p}.tcpSocket.port"), e),
        _ => {}
    }
}

fn http_get(get: &HttpGet, p: &str, e: &mut Errors) {
    port_ref(&get.port, &format!("{p}.port"), e);
    for (i, header) in get.headers.iter().enumerate() {
        e.check(
            format!("{p}.httpHeaders[{i}].name"),
            http_header_name(&header.name),
        );
    }
}

fn port_ref(port: &PortRef, field: &str, e: &mut Errors) {
    if let PortRef::Name(name) = port {
        e.check(field, iana_svc_name(name));
    }
}

fn known_container(spec: &PodSpec, name: &str) -> Result<(), String> {
    if spec.all_containers().any(|c| c.name == name) {
        Ok(())
    } else {
        Err(format!("container {name:?} is not in this pod"))
    }
}

// ---- value rules, in Kubernetes' terms ----

fn required(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Err("required".to_string())
    } else {
        Ok(())
    }
}

fn is_label_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

/// DNS-1123 label: container, volume and namespace names.
pub fn dns_label(value: &str) -> Result<(), String> {
    if value.len() <= 63 && is_label_part(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid name {value:?}: must be a DNS-1123 label (at most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit)"
        ))
    }
}

/// DNS-1123 subdomain: pod, ConfigMap, Secret and claim names.
pub fn dns_subdomain(value: &str) -> Result<(), String> {
    if value.len() <= 253 && value.split('.').all(is_label_part) {
        Ok(())
    } else {
        Err(format!(
            "invalid name {value:?}: must be a DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit)"
        ))
    }
}

/// IANA service name: container port names (and probe ports given by name).
pub fn iana_svc_name(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let ok = (1..=15).contains(&value.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.iter().any(|b| b.is_ascii_lowercase())
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid port name {value:?}: at most 15 characters: lowercase letters, digits and '-', with at least one letter, no '--' and no '-' at either end"
        ))
    }
}

/// Environment variable names (and envFrom prefixes), as Kubernetes 1.33 accepts them.
pub fn env_var_name(value: &str) -> Result<(), String> {
    let mut bytes = value.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'));
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        Ok(())
    } else {
        Err(format!(
            "invalid name {value:?}: letters, digits, '_', '-' and '.', not starting with a digit"
        ))
    }
}

/// Keys of ConfigMap and Secret data (and so file names in their volumes).
pub fn config_map_key(value: &str) -> Result<(), String> {
    let ok = (1..=253).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && value != "."
        && !value.starts_with("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid key {value:?}: at most 253 characters: letters, digits, '-', '_' and '.', not '.' and not starting with '..'"
        ))
    }
}

/// Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain.
fn qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    let prefix_ok = prefix.is_none_or(|p| dns_subdomain(p).is_ok());
    if prefix_ok && !name.is_empty() && label_value(name).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "invalid key {value:?}: an optional DNS subdomain prefix and '/', then at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

fn label_value(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    let ok = value.is_empty()
        || (value.len() <= 63
            && bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes
                .iter()
                .all(|b| edge(b) || matches!(b, b'-' | b'_' | b'.')));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid value {value:?}: at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

fn sysctl_name(value: &str) -> Result<(), String> {
    let segment_ok = |s: &str| {
        let b = s.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || matches!(c, b'-' | b'_'))
    };
    if value.len() <= 253 && value.split(['.', '/']).all(segment_ok) {
        Ok(())
    } else {
        Err(format!("invalid sysctl name {value:?}"))
    }
}

fn http_header_name(value: &str) -> Result<(), String> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(format!(
            "invalid header name {value:?}: letters, digits and '-'"
        ))
    }
}

fn ip(value: &str) -> Result<(), String> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("invalid IP address {value:?}"))
}

fn has_backstep(path: &str) -> bool {
    path.split('/').any(|part| part == "..")
}

/// Container mount paths and host paths.
fn absolute_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("required".to_string())
    } else if !path.starts_with('/') {
        Err(format!("{path:?} must be an absolute path"))
    } else if has_backstep(path) {
        Err(format!("{path:?} must not contain '..'"))
    } else {
        Ok(())
    }
}

/// subPath, volume item paths, seccomp profile files: inside some root, never out of it.
/// A file path inside a configMap, secret or downwardAPI volume: relative, no `..`, and not
/// starting with `..`, which the atomic writer's own entries (`..data`) use.
fn volume_file_path(path: &str) -> Result<(), String> {
    relative_path(path)?;
    if path.starts_with("..") {
        return Err(format!("{path:?} must not start with '..'"));
    }
    Ok(())
}

fn relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("required".to_string())
    } else if path.starts_with('/') {
        Err(format!("{path:?} must be a relative path"))
    } else if has_backstep(path) {
        Err(format!("{path:?} must not contain '..'"))
    } else {
        Ok(())
    }
}

/// `metadata.labels['app']` -> Some(("metadata.labels", "app")).
fn subscripted(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    Some((base, key))
}

fn field_path(path: &str, plain: &[&str], subscriptable: &[&str]) -> Result<(), String> {
    if plain.contains(&path) {
        return Ok(());
    }
    if let Some((base, key)) = subscripted(path) {
        if subscriptable.contains(&base) {
            return qualified_name(key);
        }
    }
    Err(format!(
        "unsupported field path {path:?}; expected one of {}, {}",
        plain.join(", "),
        subscriptable
            .iter()
            .map(|s| format!("{s}['KEY']"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn uid(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid uid {value:?}: at most 64 letters, digits and '-' (a UUID); leave it out to have one derived from the name"
        ))
    }
}

const SUBSCRIPTABLE: &[&str] = &["metadata.labels", "metadata.annotations"];

fn env_field_path(path: &str) -> Result<(), String> {
    field_path(
        path,
        &[
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "spec.nodeName",
            "spec.serviceAccountName",
            "status.hostIP",
            "status.hostIPs",
            "status.podIP",
            "status.podIPs",
        ],
        SUBSCRIPTABLE,
    )
}

fn volume_field_path(path: &str) -> Result<(), String> {
    field_path(
        path,
        &[
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "metadata.labels",
            "metadata.annotations",
        ],
        SUBSCRIPTABLE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_lowercase_alphanumerics_and_dashes_up_to_63() {
        for ok in ["a", "web-1", "0abc", &"a".repeat(63)] {
            assert!(dns_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Web", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_subdomains_allow_dots_up_to_253() {
        for ok in ["a.b", "web-1.example.com", &"a".repeat(253)] {
            assert!(dns_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "a..b", "a.", "A.b", "..", &"a".repeat(254)] {
            assert!(dns_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_names_are_iana_service_names() {
        for ok in ["http", "metrics-1", "h2c", "a"] {
            assert!(iana_svc_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "8080",
            "-http",
            "http-",
            "a--b",
            "HTTP",
            "averyveryverylongname",
        ] {
            assert!(iana_svc_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_var_names_follow_kubernetes_rules() {
        for ok in ["PATH", "_x", "my.var", "-dash", "a1"] {
            assert!(env_var_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1X", "A=B", "A B", "é"] {
            assert!(env_var_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_map_keys_may_not_escape_their_directory() {
        for ok in ["a.conf", "_x", "a..b", ".hidden"] {
            assert!(config_map_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "..data", "a/b", "a b"] {
            assert!(config_map_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_may_have_a_dns_prefix() {
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name("app").is_ok());
        assert!(qualified_name("Example.com/x").is_err());
        assert!(qualified_name("a/").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("-x").is_err());
    }

    #[test]
    fn field_paths_are_checked_against_what_the_downward_api_offers() {
        assert!(env_field_path("status.hostIP").is_ok());
        assert!(env_field_path("metadata.labels['app.kubernetes.io/name']").is_ok());
        assert!(env_field_path("metadata.labels").is_err());
        assert!(volume_field_path("metadata.labels").is_ok());
        assert!(volume_field_path("spec.nodeName").is_err());
    }

    #[test]
    fn paths_are_checked_for_backsteps_and_anchoring() {
        assert!(absolute_path("/data").is_ok());
        assert!(absolute_path("data").is_err());
        assert!(absolute_path("/data/../etc").is_err());
        assert!(absolute_path("/data/..x").is_ok());
        assert!(relative_path("a/b").is_ok());
        assert!(relative_path("/a").is_err());
        assert!(relative_path("../a").is_err());
    }
}
