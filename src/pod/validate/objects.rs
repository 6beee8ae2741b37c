//! Rules for ConfigMaps and Secrets: object names, data keys, size and the keys each
//! built-in Secret type requires.

use std::collections::BTreeMap;

use super::errors::Errors;
use super::names::{config_map_key, dns_label, dns_subdomain};
use crate::pod::error::FieldError;

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
