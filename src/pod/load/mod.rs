//! Manifest bytes (YAML, possibly several `---` documents, or JSON) to Kubernetes objects,
//! with bounded cost.
//!
//! Two passes over the text, both with serde_yaml (JSON is YAML). The first reads each
//! document into a generic value, counting every value and level as it is built, so that a
//! too-deep document or an alias bomb fails while it is still small; that value gives
//! `apiVersion` and `kind`, and duplicate keys are refused there. The second reads the
//! Kubernetes types.
//!
//! The typed object is serialised again and compared with the generic value: a key that did
//! not survive is a field Kubernetes does not know (a typo, or a newer API), which kubectl
//! refuses under strict validation and layerlet refuses too, rather than ignore it silently.

mod bounded;
mod typed;

#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::Value;

use self::bounded::Budget;
use self::typed::typed;
use crate::pod::error::{FieldError, PodError};

pub use self::bounded::Limits;

#[derive(Debug, Clone)]
pub enum Object {
    Pod(Box<Pod>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
}

#[derive(Debug, Clone)]
pub struct Document {
    /// Position in the file, counted from 1 (empty documents included).
    pub index: usize,
    pub object: Object,
}

#[derive(Clone, Copy)]
enum Kind {
    Pod,
    ConfigMap,
    Secret,
}

/// Parses every non-empty document of a manifest. Fails on the first bad document.
pub fn load_documents(bytes: &[u8], limits: &Limits) -> Result<Vec<Document>, PodError> {
    if bytes.len() > limits.max_bytes {
        return Err(PodError::TooLarge {
            file: None,
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }

    let budget = Budget::new(limits);
    let mut generic = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
        let index = i + 1;
        let mut value = budget.read(index, document)?;
        if value.is_null() {
            continue;
        }
        let kind = kind_of(&value).map_err(|e| PodError::invalid(Some(index), e))?;
        if let Kind::Pod = kind {
            octal_file_modes(&mut value);
        }
        generic.push((index, kind, value));
    }

    // Second pass, now that the text is known to be bounded: the typed objects.
    let mut documents = Vec::with_capacity(generic.len());
    let mut pending = generic.into_iter().peekable();
    for (i, document) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
        let Some((index, kind, value)) = pending.next_if(|(index, _, _)| *index == i + 1) else {
            if pending.peek().is_none() {
                break;
            }
            continue;
        };
        let object = match kind {
            Kind::Pod => Object::Pod(Box::new(typed(index, document, &value)?)),
            Kind::ConfigMap => Object::ConfigMap(Box::new(typed(index, document, &value)?)),
            Kind::Secret => Object::Secret(Box::new(typed(index, document, &value)?)),
        };
        documents.push(Document { index, object });
    }
    Ok(documents)
}

/// Kubernetes reads YAML 1.1, where `defaultMode: 0644` is octal; serde_yaml reads YAML 1.2,
/// where it is the string "0644". File modes are the one place manifests rely on this, and a
/// string is never valid there, so such strings under `mode` and `defaultMode` become numbers.
fn octal_file_modes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "mode" || key == "defaultMode" {
                    if let Some(n) = v.as_str().and_then(yaml11_octal) {
                        *v = Value::from(n);
                        continue;
                    }
                }
                octal_file_modes(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(octal_file_modes),
        _ => {}
    }
}

/// `0644` -> 420; anything else (including `0`, which is already a number) -> None.
fn yaml11_octal(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('0')?;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    i64::from_str_radix(digits, 8).ok()
}

const SUPPORTED_KINDS: &str = "a manifest may hold Pod, ConfigMap and Secret objects";

fn kind_of(value: &Value) -> Result<Kind, FieldError> {
    let Value::Object(map) = value else {
        return Err(FieldError::new(
            "",
            format!(
                "expected an object with apiVersion and kind, found {}",
                describe(value)
            ),
        ));
    };
    let text = |field: &str| match map.get(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, "required")),
        Some(Value::String(s)) if s.is_empty() => Err(FieldError::new(field, "required")),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a string, found {}", describe(other)),
        )),
    };
    let kind_name = text("kind")?;
    let kind = match kind_name {
        "Pod" => Kind::Pod,
        "ConfigMap" => Kind::ConfigMap,
        "Secret" => Kind::Secret,
        other => {
            return Err(FieldError::new(
                "kind",
                format!("unsupported kind {other:?}; {SUPPORTED_KINDS}"),
            ))
        }
    };
    let api_version = text("apiVersion")?;
    if api_version != "v1" {
        return Err(FieldError::new(
            "apiVersion",
            format!("unsupported value {api_version:?} for kind {kind_name}; expected v1"),
        ));
    }
    Ok(kind)
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
