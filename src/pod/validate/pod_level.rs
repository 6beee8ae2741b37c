//! Pod-level rules: labels, annotations and DNS settings.

use super::errors::Errors;
use super::names::{dns_subdomain, ip, label_value, qualified_name};
use crate::pod::spec::{DnsPolicy, PodSpec};

/// Kubernetes' limit on the total size of a pod's annotations.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

pub(super) fn labels_and_annotations(spec: &PodSpec, e: &mut Errors) {
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

pub(super) fn dns(spec: &PodSpec, e: &mut Errors) {
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
