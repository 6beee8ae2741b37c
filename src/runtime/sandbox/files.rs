//! Pure: the pod's /etc/hosts and /etc/resolv.conf as kubelet writes them, from the pod
//! spec, its addresses and the node's DNS settings.

use std::net::IpAddr;

use crate::pod::spec::{DnsPolicy, PodSpec};

/// The cluster's DNS as the node knows it: `--cluster-dns` and `--cluster-domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    pub servers: Vec<IpAddr>,
    pub domain: String,
}

pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

impl Default for ClusterDns {
    fn default() -> Self {
        ClusterDns {
            servers: Vec::new(),
            domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
        }
    }
}

/// The address /etc/hosts gives the pod's own name when it has no pod IP (no network).
pub const NO_POD_IP: &str = "127.0.1.1";

/// /etc/hosts: localhost, the pod's address with its FQDN (with a subdomain) and its name,
/// then the host aliases. A hostNetwork pod gets the node's own file.
pub fn hosts_file(
    pod: &PodSpec,
    pod_ip: Option<IpAddr>,
    domain: &str,
    node_hosts: Option<&str>,
) -> String {
    if pod.host_network {
        if let Some(host) = node_hosts {
            return host.to_string();
        }
    }
    let mut out = String::from("# Kubernetes-managed hosts file (layerlet).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let fqdn = pod
        .subdomain
        .as_ref()
        .map(|s| format!("{}.{s}.{}.svc.{domain} ", pod.hostname, pod.namespace));
    let address = pod_ip.map_or(NO_POD_IP.to_string(), |ip| ip.to_string());
    out.push_str(&format!(
        "{address}\t{}{}\n",
        fqdn.unwrap_or_default(),
        pod.hostname
    ));
    for alias in &pod.host_aliases {
        out.push_str(&format!(
            "\n# Entries added by HostAliases.\n{}\t{}\n",
            alias.ip,
            alias.hostnames.join("\t")
        ));
    }
    out
}

/// A resolv.conf, parsed enough to merge: nameservers, search domains, options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Resolver {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

fn parse_resolv(text: &str) -> Resolver {
    let mut r = Resolver::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(str::to_string)),
            // The last search (or domain) line wins, as in glibc.
            Some("search") | Some("domain") => r.searches = words.map(str::to_string).collect(),
            Some("options") => r.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    r
}

fn render(r: &Resolver) -> String {
    let mut out = String::new();
    for ns in &r.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

/// What the pod's resolver becomes, and a warning when ClusterFirst had to fall back to the
/// node's resolver for want of `--cluster-dns` (kubelet's MissingClusterDNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvPlan {
    pub text: String,
    pub missing_cluster_dns: bool,
}

/// /etc/resolv.conf as kubelet makes it: ClusterFirst (and ClusterFirstWithHostNet for a
/// hostNetwork pod) names the cluster DNS with the namespace's search path and `ndots:5`;
/// Default is the node's file; None is `dnsConfig` alone. `dnsConfig` is merged into all:
/// nameservers and searches appended, options replacing those of the same name.
pub fn resolv_conf(pod: &PodSpec, dns: &ClusterDns, node_resolv: &str) -> ResolvPlan {
    let node = parse_resolv(node_resolv);
    let cluster_first = match pod.dns_policy {
        DnsPolicy::ClusterFirst => !pod.host_network,
        DnsPolicy::ClusterFirstWithHostNet => true,
        DnsPolicy::Default | DnsPolicy::None => false,
    };
    let mut missing_cluster_dns = false;
    let mut r = match pod.dns_policy {
        DnsPolicy::None => Resolver::default(),
        _ if cluster_first && !dns.servers.is_empty() => {
            let domain = &dns.domain;
            let mut searches = vec![
                format!("{}.svc.{domain}", pod.namespace),
                format!("svc.{domain}"),
                domain.clone(),
            ];
            searches.extend(node.searches.iter().cloned());
            Resolver {
                nameservers: dns.servers.iter().map(IpAddr::to_string).collect(),
                searches,
                options: vec!["ndots:5".to_string()],
            }
        }
        _ => {
            missing_cluster_dns = cluster_first;
            node
        }
    };
    if let Some(cfg) = &pod.dns_config {
        r.nameservers.extend(cfg.nameservers.iter().cloned());
        r.searches.extend(cfg.searches.iter().cloned());
        for o in &cfg.options {
            let text = match &o.value {
                Some(v) => format!("{}:{v}", o.name),
                None => o.name.clone(),
            };
            let name = |s: &str| s.split(':').next().unwrap_or_default().to_string();
            r.options.retain(|have| name(have) != o.name);
            r.options.push(text);
        }
    }
    // glibc reads three nameservers and six search domains; kubelet trims to those.
    r.nameservers.truncate(3);
    r.searches.dedup();
    r.searches.truncate(32);
    ResolvPlan {
        text: render(&r),
        missing_cluster_dns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::pod_from_yaml_str;

    const NODE: &str = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

    fn pod(spec: &str) -> PodSpec {
        pod_from_yaml_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: shop}}\nspec:\n{spec}  containers: [{{name: app, image: x:1}}]\n"
        ))
        .unwrap()
    }

    fn cluster() -> ClusterDns {
        ClusterDns {
            servers: vec!["10.96.0.10".parse().unwrap()],
            domain: "cluster.local".into(),
        }
    }

    #[test]
    fn cluster_first_names_the_cluster_dns_with_the_namespace_search_path() {
        let plan = resolv_conf(&pod(""), &cluster(), NODE);
        assert_eq!(
            plan.text,
            "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"
        );
        assert!(!plan.missing_cluster_dns);
    }

    #[test]
    fn without_cluster_dns_cluster_first_falls_back_to_the_node_and_says_so() {
        let plan = resolv_conf(&pod(""), &ClusterDns::default(), NODE);
        assert_eq!(plan.text, NODE);
        assert!(plan.missing_cluster_dns);
    }

    #[test]
    fn default_is_the_nodes_and_none_is_dns_config_alone_merged_into_each() {
        let default = resolv_conf(&pod("  dnsPolicy: Default\n"), &cluster(), NODE);
        assert_eq!(
            (default.text.as_str(), default.missing_cluster_dns),
            (NODE, false)
        );
        let none = resolv_conf(
            &pod("  dnsPolicy: None\n  dnsConfig: {nameservers: [1.1.1.1], searches: [a.example], options: [{name: ndots, value: '2'}]}\n"),
            &cluster(),
            NODE,
        );
        assert_eq!(
            none.text,
            "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2\n"
        );
        let merged = resolv_conf(
            &pod("  dnsConfig: {options: [{name: ndots, value: '1'}, {name: rotate}]}\n"),
            &cluster(),
            NODE,
        );
        assert!(
            merged.text.ends_with("options ndots:1 rotate\n"),
            "{}",
            merged.text
        );
    }

    #[test]
    fn a_host_network_pod_uses_the_node_unless_it_asks_for_cluster_first_with_host_net() {
        let host = resolv_conf(&pod("  hostNetwork: true\n"), &cluster(), NODE);
        assert_eq!(
            (host.text.as_str(), host.missing_cluster_dns),
            (NODE, false)
        );
        let with = resolv_conf(
            &pod("  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n"),
            &cluster(),
            NODE,
        );
        assert!(
            with.text.starts_with("nameserver 10.96.0.10\n"),
            "{}",
            with.text
        );
    }

    #[test]
    fn hosts_names_the_pod_at_its_ip_with_its_fqdn() {
        let p = pod("  hostname: web-0\n  subdomain: db\n");
        let text = hosts_file(
            &p,
            Some("10.89.0.7".parse().unwrap()),
            "cluster.local",
            None,
        );
        assert!(
            text.contains("10.89.0.7\tweb-0.db.shop.svc.cluster.local web-0\n"),
            "{text}"
        );
        let offline = hosts_file(&p, None, "cluster.local", None);
        assert!(offline.contains("127.0.1.1\tweb-0.db.shop"), "{offline}");
    }
}
