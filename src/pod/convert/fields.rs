//! Typed values of single fields, shared by the converters of each part of a pod: choices
//! from a fixed set, numbers in Kubernetes' ranges, quantities, and the "one of" groups.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::pod::error::{FieldError, Warning};
use crate::pod::quantity::{self, QuantityKind};

pub(super) type Result<T> = std::result::Result<T, FieldError>;

pub(super) fn not_supported(field: impl Into<String>, why: &str) -> FieldError {
    let reason = if why.is_empty() {
        "not supported by layerlet".to_string()
    } else {
        format!("not supported by layerlet: {why}")
    };
    FieldError::new(field, reason)
}

pub(super) fn warn(warnings: &mut Vec<Warning>, field: impl Into<String>, message: &str) {
    warnings.push(Warning {
        field: field.into(),
        message: message.to_string(),
    });
}

pub(super) fn non_empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

pub(super) fn non_empty_map<K, V>(v: &Option<BTreeMap<K, V>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

pub(super) fn set_to(v: &Option<String>, ignore: &str) -> bool {
    v.as_deref().is_some_and(|v| !v.is_empty() && v != ignore)
}

/// An optional string field with a fixed set of values; empty means unset, as in Kubernetes.
pub(super) fn choice<T: Copy>(
    field: &str,
    value: Option<&str>,
    default: T,
    options: &[(&str, T)],
) -> Result<T> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    options
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            FieldError::new(
                field,
                format!(
                    "unsupported value {value:?}; expected one of {}",
                    names.join(", ")
                ),
            )
        })
}

pub(super) fn seconds(field: &str, value: i64, min: i64) -> Result<Duration> {
    u64::try_from(value)
        .ok()
        .filter(|_| value >= min)
        .map(Duration::from_secs)
        .ok_or_else(|| FieldError::new(field, format!("must be greater than or equal to {min}")))
}

pub(super) fn non_negative(field: &str, value: i32) -> Result<u32> {
    u32::try_from(value).map_err(|_| FieldError::new(field, "must be greater than or equal to 0"))
}

/// uids and gids, in the range Kubernetes allows.
pub(super) fn id(field: &str, value: i64) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or_else(|| FieldError::new(field, "must be between 0 and 2147483647, inclusive"))
}

pub(super) fn port(field: &str, value: i32) -> Result<u16> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| FieldError::new(field, "must be between 1 and 65535, inclusive"))
}

pub(super) fn mode(field: &str, value: i32) -> Result<u32> {
    u32::try_from(value)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            FieldError::new(
                field,
                "must be a number between 0 and 0777 (octal), both inclusive",
            )
        })
}

pub(super) fn quantity(field: &str, value: &Quantity, kind: QuantityKind) -> Result<u64> {
    quantity::parse_quantity(&value.0, kind).map_err(|e| FieldError::new(field, e.to_string()))
}

/// The one member of a Kubernetes "one of" group, or the API server's messages for none and
/// several.
pub(super) fn exactly_one<T>(mut found: Vec<T>, path: &str, choices: &str) -> Result<T> {
    if found.len() > 1 {
        return Err(FieldError::new(
            path,
            "may not have more than one field specified at a time",
        ));
    }
    found
        .pop()
        .ok_or_else(|| FieldError::new(path, format!("must specify one of: {choices}")))
}

/// Exactly one handler, or the Kubernetes messages for none and several.
pub(super) fn one_handler<T>(mut handlers: Vec<T>, path: &str) -> Result<T> {
    match handlers.len() {
        1 => handlers
            .pop()
            .ok_or_else(|| FieldError::new(path, "must specify a handler type")),
        0 => Err(FieldError::new(path, "must specify a handler type")),
        _ => Err(FieldError::new(
            path,
            "may not specify more than 1 handler type",
        )),
    }
}
