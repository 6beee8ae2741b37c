//! Probes and lifecycle hooks, including the rule that needs the container around them: a
//! port given by name must be one of the container's named ports (else every run would fail).

use super::errors::Errors;
use super::names::{http_header_name, iana_svc_name};
use crate::pod::spec::*;

/// Probes and lifecycle hooks of container `c` at `p`: init containers have none, each
/// probe's own rules, and named ports that must be the container's.
pub(super) fn probes_and_hooks(
    spec: &PodSpec,
    c: &ContainerSpec,
    p: &str,
    init: bool,
    e: &mut Errors,
) {
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
    check_targets(c, p, e);
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

/// Probe and hook ports of container `c` at field path `p` that name none of its ports.
fn check_targets(c: &ContainerSpec, p: &str, e: &mut Errors) {
    let mut port = |port: &PortRef, field: String| {
        if let PortRef::Name(name) = port {
            // An ill-formed name was reported already.
            let well_formed = iana_svc_name(name).is_ok();
            if well_formed && !c.ports.iter().any(|cp| cp.name.as_deref() == Some(name)) {
                e.push(
                    field,
                    format!(
                        "port name {name:?} is not one of this container's ports (name one in ports[].name, or give the number)"
                    ),
                );
            }
        }
    };
    for (probe, name) in [
        (&c.liveness_probe, "livenessProbe"),
        (&c.readiness_probe, "readinessProbe"),
        (&c.startup_probe, "startupProbe"),
    ] {
        match probe.as_ref().map(|p| &p.handler) {
            Some(ProbeHandler::HttpGet(get)) => port(&get.port, format!("{p}.{name}.httpGet.port")),
            Some(ProbeHandler::TcpSocket { port: n, .. }) => {
                port(n, format!("{p}.{name}.tcpSocket.port"))
            }
            _ => {}
        }
    }
    for (hook, name) in [
        (&c.lifecycle.post_start, "postStart"),
        (&c.lifecycle.pre_stop, "preStop"),
    ] {
        if let Some(Handler::HttpGet(get)) = hook {
            port(&get.port, format!("{p}.lifecycle.{name}.httpGet.port"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::pod::pod_from_yaml_str;

    fn errors(container: &str) -> Vec<String> {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - {container}\n"
        );
        match pod_from_yaml_str(&yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().split("; ").map(str::to_string).collect(),
        }
    }

    #[test]
    fn named_probe_and_hook_ports_must_name_a_container_port() {
        assert!(errors("{name: a, image: x:1, ports: [{name: http, containerPort: 80}], livenessProbe: {httpGet: {port: http, scheme: HTTPS}}}").is_empty());
        let e = errors("{name: a, image: x:1, ports: [{name: http, containerPort: 80}], readinessProbe: {tcpSocket: {port: admin}}, lifecycle: {preStop: {httpGet: {port: web}}}}");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].ends_with("spec.containers[0].readinessProbe.tcpSocket.port: port name \"admin\" is not one of this container's ports (name one in ports[].name, or give the number)"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(
                "spec.containers[0].lifecycle.preStop.httpGet.port: port name \"web\""
            ),
            "{e:?}"
        );
    }
}
