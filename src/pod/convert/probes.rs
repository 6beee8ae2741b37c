//! Probes and lifecycle hooks, which share the httpGet handler.

use std::time::Duration;

use k8s_openapi::api::core::v1 as k8s;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::fields::{choice, non_negative, not_supported, one_handler, port, seconds, Result};
use crate::pod::error::FieldError;
use crate::pod::spec::{
    Handler, HttpGet, HttpHeader, HttpScheme, Lifecycle, PortRef, Probe, ProbeHandler,
};

pub(super) fn probe(p: &k8s::Probe, path: &str) -> Result<Probe> {
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

pub(super) fn lifecycle(l: Option<&k8s::Lifecycle>, path: &str) -> Result<Lifecycle> {
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
