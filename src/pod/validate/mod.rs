//! What the API server would check on a converted pod: names, uniqueness, references between
//! fields and rules that span fields. Values of single fields (enums, quantities, ranges)
//! were already checked by `convert`. All problems are collected, in field order.

mod containers;
mod errors;
mod names;
mod objects;
mod paths;
mod pod_level;
mod probes;
mod security;
mod volumes;

use std::collections::BTreeSet;

use self::containers::container;
use self::errors::Errors;
use self::names::{ip, uid};
use self::pod_level::{dns, labels_and_annotations};
use self::security::pod_security;
use self::volumes::volume_source;
use crate::pod::error::FieldError;
use crate::pod::spec::PodSpec;

pub use self::names::{config_map_key, dns_label, dns_subdomain, env_var_name, iana_svc_name};
pub use self::objects::{
    validate_data_keys, validate_object_meta, validate_object_size, validate_secret_type,
    MAX_OBJECT_DATA_BYTES,
};

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
