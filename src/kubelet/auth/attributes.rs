//! kubelet's authorization attributes of a request: the subresource of `nodes` its path
//! falls under and the verb its method means. Pure.

/// What is being asked, in SubjectAccessReview terms (resource `nodes`, name = node name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub verb: &'static str,
    pub subresource: &'static str,
    pub node: String,
}

/// kubelet's mapping: `/stats/*` nodes/stats, `/metrics/*` nodes/metrics, `/logs/*`
/// nodes/log, everything else (exec, attach, portForward, containerLogs, pods, healthz)
/// nodes/proxy. Prefixes match whole segments, as kubelet's (`/statsX` is proxy).
pub fn subresource(path: &str) -> &'static str {
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else {
        "proxy"
    }
}

/// The API verb of an HTTP method, as kubelet maps it; "" for others (which no rule allows).
pub fn verb(method: &str) -> &'static str {
    match method {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
}

pub fn attributes(method: &str, path: &str, node: &str) -> Attributes {
    Attributes {
        verb: verb(method),
        subresource: subresource(path),
        node: node.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_node_subresources_as_kubelet_maps_them() {
        assert_eq!(subresource("/stats/summary"), "stats");
        assert_eq!(subresource("/stats"), "stats");
        assert_eq!(subresource("/metrics"), "metrics");
        assert_eq!(subresource("/metrics/cadvisor"), "metrics");
        assert_eq!(subresource("/metrics/resource"), "metrics");
        assert_eq!(subresource("/logs/"), "log");
        assert_eq!(subresource("/containerLogs/ns/p/c"), "proxy");
        assert_eq!(subresource("/exec/ns/p/c"), "proxy");
        assert_eq!(subresource("/portForward/ns/p"), "proxy");
        assert_eq!(subresource("/pods"), "proxy");
        assert_eq!(subresource("/healthz"), "proxy");
        assert_eq!(subresource("/statsX"), "proxy");
    }

    #[test]
    fn methods_map_to_verbs() {
        assert_eq!(verb("GET"), "get");
        assert_eq!(verb("POST"), "create");
        assert_eq!(verb("PUT"), "update");
        assert_eq!(verb("PATCH"), "patch");
        assert_eq!(verb("DELETE"), "delete");
        assert_eq!(verb("OPTIONS"), "");
        let a = attributes("POST", "/exec/ns/p/c", "node-1");
        assert_eq!(
            (a.verb, a.subresource, a.node.as_str()),
            ("create", "proxy", "node-1")
        );
    }
}
