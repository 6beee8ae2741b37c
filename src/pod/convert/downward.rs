//! Downward API selectors (`fieldRef`, `resourceFieldRef`), read by env and by volumes.

use k8s_openapi::api::core::v1 as k8s;

use super::fields::{exactly_one, mode, quantity, Result};
use crate::pod::error::FieldError;
use crate::pod::quantity::QuantityKind;
use crate::pod::spec::{DownwardApiFile, DownwardSource, ResourceFieldRef};

pub(super) fn downward_file(f: &k8s::DownwardAPIVolumeFile, path: &str) -> Result<DownwardApiFile> {
    let mut found = Vec::new();
    if let Some(field) = &f.field_ref {
        found.push(DownwardSource::Field(field_ref(
            field,
            &format!("{path}.fieldRef"),
        )?));
    }
    if let Some(r) = &f.resource_field_ref {
        found.push(DownwardSource::Resource(resource_field_ref(
            r,
            &format!("{path}.resourceFieldRef"),
        )?));
    }
    let source = exactly_one(found, path, "fieldRef or resourceFieldRef")?;
    Ok(DownwardApiFile {
        path: f.path.clone(),
        source,
        mode: f
            .mode
            .map(|m| mode(&format!("{path}.mode"), m))
            .transpose()?,
    })
}

pub(super) fn field_ref(field: &k8s::ObjectFieldSelector, path: &str) -> Result<String> {
    if let Some(v) = field
        .api_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "v1")
    {
        return Err(FieldError::new(
            format!("{path}.apiVersion"),
            format!("unsupported value {v:?}; expected v1"),
        ));
    }
    Ok(field.field_path.clone())
}

const RESOURCE_FIELDS: &str = "limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage";

pub(super) fn resource_field_ref(
    r: &k8s::ResourceFieldSelector,
    path: &str,
) -> Result<ResourceFieldRef> {
    let kind = match r.resource.as_str() {
        "limits.cpu" | "requests.cpu" => QuantityKind::Millicores,
        "limits.memory"
        | "requests.memory"
        | "limits.ephemeral-storage"
        | "requests.ephemeral-storage" => QuantityKind::Bytes,
        "" => return Err(FieldError::new(format!("{path}.resource"), "required")),
        other => {
            return Err(FieldError::new(
                format!("{path}.resource"),
                format!("unsupported value {other:?}; expected one of {RESOURCE_FIELDS}"),
            ))
        }
    };
    let divisor = match &r.divisor {
        None => match kind {
            QuantityKind::Millicores => 1000,
            QuantityKind::Bytes => 1,
        },
        Some(q) => {
            let field = format!("{path}.divisor");
            let value = quantity(&field, q, kind)?;
            // Kubernetes allows only unit divisors: 1m or 1 for CPU, 1 or one power of each
            // suffix for bytes.
            let allowed = match kind {
                QuantityKind::Millicores => value == 1 || value == 1000,
                QuantityKind::Bytes => {
                    (0..=6).any(|i| value == 1000u64.pow(i) || value == 1024u64.pow(i))
                }
            };
            if !allowed {
                let expected = match kind {
                    QuantityKind::Millicores => "1m or 1",
                    QuantityKind::Bytes => {
                        "one of 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
                    }
                };
                return Err(FieldError::new(
                    field,
                    format!("unsupported divisor {:?}; expected {expected}", q.0),
                ));
            }
            value
        }
    };
    Ok(ResourceFieldRef {
        container: r.container_name.clone().filter(|c| !c.is_empty()),
        resource: r.resource.clone(),
        divisor,
    })
}
