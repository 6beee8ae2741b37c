//! A rule on probe and lifecycle-hook targets that needs the container around them: a port
//! given by name must be one of the container's named ports (else every run would fail).

use super::spec::{ContainerSpec, Handler, PortRef, ProbeHandler};
use super::FieldError;

/// Problems with the probe and hook ports of container `c` at field path `p`.
pub fn check_targets(c: &ContainerSpec, p: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut port = |port: &PortRef, field: String| {
        if let PortRef::Name(name) = port {
            // An ill-formed name was reported already.
            let well_formed = super::validate::iana_svc_name(name).is_ok();
            if well_formed && !c.ports.iter().any(|cp| cp.name.as_deref() == Some(name)) {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "port name {name:?} is not one of this container's ports (name one in ports[].name, or give the number)"
                    ),
                ));
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
    errors
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
