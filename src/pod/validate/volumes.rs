//! Volume sources: the names they refer to and the file paths they write.

use std::collections::BTreeSet;

use super::containers::known_container;
use super::errors::Errors;
use super::names::{config_map_key, dns_subdomain, required};
use super::paths::{absolute_path, volume_field_path, volume_file_path};
use crate::pod::spec::*;

pub(super) fn volume_source(spec: &PodSpec, source: &VolumeSource, p: &str, e: &mut Errors) {
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
