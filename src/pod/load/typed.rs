//! The second pass: the Kubernetes type read from a document, its errors in Kubernetes'
//! terms, and the keys it did not know (unknown fields).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::pod::error::{FieldError, PodError};

/// The Kubernetes type, then the unknown-field check.
///
/// Read from the document's own text first: serde_yaml is as lenient as Kubernetes' YAML
/// reader about plain scalars (`command: [true]` is the string "true") and its errors carry
/// the field path and line. Only if that fails is it read again from the generic value
/// re-encoded as YAML, which has YAML 1.1 octal file modes as numbers; an error there names
/// the field but no line, since the lines would be those of the re-encoded text.
pub(super) fn typed<T>(
    index: usize,
    document: serde_yaml::Deserializer<'_>,
    generic: &Value,
) -> Result<T, PodError>
where
    T: DeserializeOwned + serde::Serialize,
{
    let object = match T::deserialize(document) {
        Ok(object) => object,
        Err(original) => {
            let original = yaml_field_error(&original, true);
            let reencoded = serde_yaml::to_string(generic)
                .map_err(|_| PodError::invalid(Some(index), original.clone()))?;
            match T::deserialize(serde_yaml::Deserializer::from_str(&reencoded)) {
                Ok(object) => object,
                Err(e) => {
                    let e = yaml_field_error(&e, false);
                    // The same field failing both ways: keep the message with the line.
                    let best = if e.field == original.field {
                        original
                    } else {
                        e
                    };
                    return Err(PodError::invalid(Some(index), best));
                }
            }
        }
    };
    let known = serde_json::to_value(&object).map_err(|e| {
        PodError::invalid(
            Some(index),
            FieldError::new("", format!("cannot re-encode: {e}")),
        )
    })?;
    let mut unknown = Vec::new();
    unknown_fields(generic, &known, &mut String::new(), &mut unknown);
    if let Some(e) = PodError::from_field_errors(index, unknown) {
        return Err(e);
    }
    Ok(object)
}

/// serde_yaml renders `spec.containers[0]: missing field `name` at line 5 column 7`; this
/// splits that into Kubernetes' `spec.containers[0].name: required (line 5, column 7)`.
fn yaml_field_error(error: &serde_yaml::Error, with_line: bool) -> FieldError {
    let mut text = error.to_string();
    let mut at = String::new();
    if let Some(location) = error.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = text.strip_suffix(&suffix) {
            text = stripped.to_string();
        }
        if with_line {
            at = format!(" (line {}, column {})", location.line(), location.column());
        }
    }
    // serde names Rust types; people read Kubernetes types.
    for rust in ["i32", "i64", "u32", "u64"] {
        text = text.replace(&format!(", expected {rust}"), ", expected an integer");
    }
    let (mut field, mut reason) = match text.split_once(": ") {
        Some((path, message)) if !path.contains(char::is_whitespace) => {
            (path.to_string(), message.to_string())
        }
        _ => (String::new(), text),
    };
    // Only the base64 decoder of Secret data and ConfigMap binaryData capitalises its errors.
    if reason.starts_with("Invalid ") {
        reason = format!("invalid base64: {reason}");
    }
    if let Some(name) = reason
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        field = if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        };
        reason = "required".to_string();
    }
    FieldError::new(field, format!("{reason}{at}"))
}

/// Keys in `input` that are absent from `known` (nulls excepted: an empty field is no field).
fn unknown_fields(input: &Value, known: &Value, path: &mut String, out: &mut Vec<FieldError>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match known.get(key) {
                    Some(k) => unknown_fields(value, k, path, out),
                    None if value.is_null() => {}
                    // serde_yaml keeps `<<` as a plain key instead of merging.
                    None if key == "<<" => out.push(FieldError::new(
                        path.clone(),
                        "YAML merge keys are not supported; repeat the fields or use an alias",
                    )),
                    None => out.push(FieldError::new(path.clone(), "unknown field")),
                }
                path.truncate(len);
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, k)) in input.iter().zip(known).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                unknown_fields(value, k, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}
