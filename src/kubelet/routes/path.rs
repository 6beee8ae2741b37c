//! kubelet's paths, parsed and checked: every name segment must be a valid namespace, pod,
//! container name or uid before anything is looked up (so `..`, `%2f` and the like never
//! get near a lookup, let alone a file path). Pure.

use crate::pod::validate::{dns_label, dns_subdomain};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub uid: Option<String>,
    pub container: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Pods,
    ContainerLogs(Target),
    Exec(Target),
    Attach(Target),
    PortForward {
        namespace: String,
        pod: String,
        uid: Option<String>,
    },
    StatsSummary,
    MetricsResource,
    MetricsCadvisor,
    MetricsProbes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// 400: a name that cannot be one.
    BadName(String),
    /// 404: no such endpoint.
    NotFound,
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
        Err("a uid is up to 64 letters, digits and '-'".into())
    }
}

fn check(
    what: &str,
    value: &str,
    rule: fn(&str) -> Result<(), String>,
) -> Result<String, PathError> {
    rule(value)
        .map(|()| value.to_string())
        .map_err(|e| PathError::BadName(format!("invalid {what} {value:?}: {e}")))
}

fn target(parts: &[&str]) -> Result<Target, PathError> {
    let (ns, pod, uid_part, container) = match parts {
        [ns, pod, container] => (ns, pod, None, container),
        [ns, pod, u, container] => (ns, pod, Some(u), container),
        _ => return Err(PathError::NotFound),
    };
    Ok(Target {
        namespace: check("namespace", ns, dns_label)?,
        pod: check("pod name", pod, dns_subdomain)?,
        uid: uid_part.map(|u| check("pod uid", u, uid)).transpose()?,
        container: check("container name", container, dns_label)?,
    })
}

pub fn parse(path: &str) -> Result<Route, PathError> {
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let parts: Vec<&str> = trimmed.split('/').skip(1).collect();
    match parts.as_slice() {
        ["healthz"] => Ok(Route::Healthz),
        ["pods"] => Ok(Route::Pods),
        ["stats", "summary"] => Ok(Route::StatsSummary),
        ["metrics", "resource"] => Ok(Route::MetricsResource),
        ["metrics", "cadvisor"] => Ok(Route::MetricsCadvisor),
        ["metrics", "probes"] => Ok(Route::MetricsProbes),
        ["containerLogs", rest @ ..] if rest.len() == 3 => target(rest).map(Route::ContainerLogs),
        ["exec", rest @ ..] => target(rest).map(Route::Exec),
        ["attach", rest @ ..] => target(rest).map(Route::Attach),
        ["portForward", ns, pod] | ["portForward", ns, pod, _] => {
            let uid_part = parts.get(3);
            Ok(Route::PortForward {
                namespace: check("namespace", ns, dns_label)?,
                pod: check("pod name", pod, dns_subdomain)?,
                uid: uid_part.map(|u| check("pod uid", u, uid)).transpose()?,
            })
        }
        _ => Err(PathError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ns: &str, pod: &str, uid: Option<&str>, c: &str) -> Target {
        Target {
            namespace: ns.into(),
            pod: pod.into(),
            uid: uid.map(str::to_string),
            container: c.into(),
        }
    }

    #[test]
    fn kubelets_paths_parse_with_and_without_the_pod_uid() {
        assert_eq!(parse("/healthz"), Ok(Route::Healthz));
        assert_eq!(parse("/pods/"), Ok(Route::Pods));
        assert_eq!(
            parse("/containerLogs/ns/p/c"),
            Ok(Route::ContainerLogs(t("ns", "p", None, "c")))
        );
        assert_eq!(
            parse("/exec/ns/p.x/c"),
            Ok(Route::Exec(t("ns", "p.x", None, "c")))
        );
        assert_eq!(
            parse("/exec/ns/p/u-1/c"),
            Ok(Route::Exec(t("ns", "p", Some("u-1"), "c")))
        );
        assert_eq!(
            parse("/attach/ns/p/c"),
            Ok(Route::Attach(t("ns", "p", None, "c")))
        );
        assert_eq!(
            parse("/portForward/ns/p/u1"),
            Ok(Route::PortForward {
                namespace: "ns".into(),
                pod: "p".into(),
                uid: Some("u1".into())
            })
        );
        assert_eq!(parse("/stats/summary"), Ok(Route::StatsSummary));
        assert_eq!(parse("/metrics/cadvisor"), Ok(Route::MetricsCadvisor));
    }

    #[test]
    fn dot_dot_and_bad_names_are_refused_before_any_lookup() {
        for bad in [
            "/containerLogs/ns/../c",
            "/containerLogs/../p/c",
            "/exec/ns/p/..",
            "/exec/ns/p/%2e%2e/c",
            "/exec/NS/p/c",
            "/portForward/ns/p%2Fx",
            "/exec/ns/p/a_b",
        ] {
            assert!(matches!(parse(bad), Err(PathError::BadName(_))), "{bad}");
        }
        assert_eq!(parse("/exec/ns/p"), Err(PathError::NotFound));
        assert_eq!(parse("/logs/../../etc/passwd"), Err(PathError::NotFound));
        assert_eq!(parse("/nothing"), Err(PathError::NotFound));
        assert_eq!(parse("/containerLogs/ns/p/u/c"), Err(PathError::NotFound));
    }
}
