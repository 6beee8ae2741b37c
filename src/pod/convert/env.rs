//! A container's `env` and `envFrom`.

use k8s_openapi::api::core::v1 as k8s;

use super::downward::{field_ref, resource_field_ref};
use super::fields::{exactly_one, Result};
use crate::pod::error::FieldError;
use crate::pod::spec::{EnvFromKind, EnvFromSource, EnvSource, EnvVar};

pub(super) fn env_var(e: &k8s::EnvVar, path: &str) -> Result<EnvVar> {
    let value = e.value.clone().unwrap_or_default();
    let source = match &e.value_from {
        Some(_) if !value.is_empty() => {
            return Err(FieldError::new(
                format!("{path}.valueFrom"),
                "may not be specified when value is not empty",
            ))
        }
        Some(from) => env_var_source(from, &format!("{path}.valueFrom"))?,
        None => EnvSource::Value(value),
    };
    Ok(EnvVar {
        name: e.name.clone(),
        source,
    })
}

pub(super) fn env_var_source(from: &k8s::EnvVarSource, path: &str) -> Result<EnvSource> {
    let mut found = Vec::new();
    if let Some(f) = &from.field_ref {
        found.push(EnvSource::Field(field_ref(f, &format!("{path}.fieldRef"))?));
    }
    if let Some(r) = &from.resource_field_ref {
        found.push(EnvSource::ResourceField(resource_field_ref(
            r,
            &format!("{path}.resourceFieldRef"),
        )?));
    }
    if let Some(k) = &from.config_map_key_ref {
        found.push(EnvSource::ConfigMapKey {
            name: k.name.clone(),
            key: k.key.clone(),
            optional: k.optional.unwrap_or(false),
        });
    }
    if let Some(k) = &from.secret_key_ref {
        found.push(EnvSource::SecretKey {
            name: k.name.clone(),
            key: k.key.clone(),
            optional: k.optional.unwrap_or(false),
        });
    }
    exactly_one(
        found,
        path,
        "fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef",
    )
}

pub(super) fn env_from_source(e: &k8s::EnvFromSource, path: &str) -> Result<EnvFromSource> {
    let mut found = Vec::new();
    if let Some(c) = &e.config_map_ref {
        found.push(EnvFromKind::ConfigMap {
            name: c.name.clone(),
            optional: c.optional.unwrap_or(false),
        });
    }
    if let Some(s) = &e.secret_ref {
        found.push(EnvFromKind::Secret {
            name: s.name.clone(),
            optional: s.optional.unwrap_or(false),
        });
    }
    let source = exactly_one(found, path, "configMapRef or secretRef")?;
    Ok(EnvFromSource {
        prefix: e.prefix.clone().unwrap_or_default(),
        source,
    })
}
