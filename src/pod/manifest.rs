//! One manifest file through the whole pipeline: every object loaded, converted and
//! validated, or the file refused with one error.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::convert;
use super::error::{FieldError, PodError, Warning};
use super::load::{self, Limits};
use super::spec::PodSpec;
use super::validate;

/// One object of a manifest file, converted and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedObject {
    Pod(Box<ParsedPod>),
    ConfigMap(ConfigMapObject),
    Secret(SecretObject),
}

impl ParsedObject {
    pub fn kind(&self) -> &'static str {
        match self {
            ParsedObject::Pod(_) => "Pod",
            ParsedObject::ConfigMap(_) => "ConfigMap",
            ParsedObject::Secret(_) => "Secret",
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        match self {
            ParsedObject::Pod(p) => p.spec.key(),
            ParsedObject::ConfigMap(c) => format!("{}/{}", c.namespace, c.name),
            ParsedObject::Secret(s) => format!("{}/{}", s.namespace, s.name),
        }
    }

    /// The document number in its file (from 1).
    pub fn document(&self) -> usize {
        match self {
            ParsedObject::Pod(p) => p.document,
            ParsedObject::ConfigMap(c) => c.document,
            ParsedObject::Secret(s) => s.document,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPod {
    pub document: usize,
    pub spec: PodSpec,
    /// Fields accepted but ignored; worth a log line or an event.
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMapObject {
    pub document: usize,
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, String>,
    pub binary_data: BTreeMap<String, Vec<u8>>,
    /// `immutable: true`: later versions of the file may not change its data.
    pub immutable: bool,
}

/// A Secret with `data` decoded and `stringData` merged in (stringData wins, as in the API).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretObject {
    pub document: usize,
    pub namespace: String,
    pub name: String,
    /// `type`, `Opaque` when unset.
    pub secret_type: String,
    pub data: BTreeMap<String, Vec<u8>>,
    pub immutable: bool,
}

// Secret values never reach logs through Debug.
impl fmt::Debug for SecretObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .data
            .iter()
            .map(|(k, v)| format!("{k} ({} bytes)", v.len()))
            .collect();
        f.debug_struct("SecretObject")
            .field("document", &self.document)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("secret_type", &self.secret_type)
            .field("data", &keys)
            .field("immutable", &self.immutable)
            .finish()
    }
}

/// Parses, converts and validates every object of one manifest file. The file is a unit:
/// one bad document fails the whole file, so that a half-applied file never happens.
pub fn parse_manifest_file(
    path: &Path,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Vec<ParsedObject>, PodError> {
    parse_manifest(bytes, limits).map_err(|e| e.with_file(path))
}

fn parse_manifest(bytes: &[u8], limits: &Limits) -> Result<Vec<ParsedObject>, PodError> {
    let documents = load::load_documents(bytes, limits)?;
    let mut objects = Vec::with_capacity(documents.len());
    let mut seen: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
    for document in documents {
        let index = document.index;
        let object = match document.object {
            load::Object::Pod(pod) => {
                let converted =
                    convert::convert_pod(&pod).map_err(|e| PodError::invalid(Some(index), e))?;
                convert::refuse_tokens_without_api(&converted.spec)
                    .map_err(|e| PodError::invalid(Some(index), e))?;
                if let Some(e) =
                    PodError::from_field_errors(index, validate::validate_pod(&converted.spec))
                {
                    return Err(e);
                }
                ParsedObject::Pod(Box::new(ParsedPod {
                    document: index,
                    spec: converted.spec,
                    warnings: converted.warnings,
                }))
            }
            load::Object::ConfigMap(cm) => ParsedObject::ConfigMap(config_map(index, *cm)?),
            load::Object::Secret(secret) => ParsedObject::Secret(secret_object(index, *secret)?),
        };
        if let Some(first) = seen.insert((object.kind(), object.key()), index) {
            return Err(PodError::invalid(
                Some(index),
                FieldError::new(
                    "metadata.name",
                    format!(
                        "{} {} is already defined in document {first}",
                        object.kind(),
                        object.key()
                    ),
                ),
            ));
        }
        objects.push(object);
    }
    Ok(objects)
}

pub(super) fn config_map(
    document: usize,
    cm: k8s_openapi::api::core::v1::ConfigMap,
) -> Result<ConfigMapObject, PodError> {
    let (namespace, name) =
        convert::object_name(&cm.metadata).map_err(|e| PodError::invalid(Some(document), e))?;
    let data = cm.data.unwrap_or_default();
    let binary_data: BTreeMap<String, Vec<u8>> = cm
        .binary_data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let mut errors = validate::validate_object_meta(&namespace, &name);
    errors.extend(validate::validate_data_keys("data", data.keys()));
    errors.extend(validate::validate_data_keys(
        "binaryData",
        binary_data.keys(),
    ));
    for key in data.keys().filter(|k| binary_data.contains_key(*k)) {
        errors.push(FieldError::new(
            format!("binaryData.{key}"),
            "duplicate of a key in data",
        ));
    }
    let size = data.values().map(String::len).sum::<usize>()
        + binary_data.values().map(Vec::len).sum::<usize>();
    errors.extend(validate::validate_object_size("data", size));
    match PodError::from_field_errors(document, errors) {
        Some(e) => Err(e),
        None => Ok(ConfigMapObject {
            document,
            namespace,
            name,
            data,
            binary_data,
            immutable: cm.immutable.unwrap_or(false),
        }),
    }
}

pub(super) fn secret_object(
    document: usize,
    secret: k8s_openapi::api::core::v1::Secret,
) -> Result<SecretObject, PodError> {
    let (namespace, name) =
        convert::object_name(&secret.metadata).map_err(|e| PodError::invalid(Some(document), e))?;
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let string_data = secret.string_data.unwrap_or_default();
    let mut errors = validate::validate_object_meta(&namespace, &name);
    errors.extend(validate::validate_data_keys("data", data.keys()));
    errors.extend(validate::validate_data_keys(
        "stringData",
        string_data.keys(),
    ));
    data.extend(string_data.into_iter().map(|(k, v)| (k, v.into_bytes())));
    let secret_type = secret
        .type_
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Opaque".to_string());
    errors.extend(validate::validate_object_size(
        "data",
        data.values().map(Vec::len).sum(),
    ));
    errors.extend(validate::validate_secret_type(&secret_type, &data));
    if let Some(e) = PodError::from_field_errors(document, errors) {
        return Err(e);
    }
    Ok(SecretObject {
        document,
        namespace,
        name,
        secret_type,
        data,
        immutable: secret.immutable.unwrap_or(false),
    })
}

/// The one Pod of a YAML (or JSON) text, for tests and `layerlet run -f`. Warnings are
/// logged; any other object, or more than one Pod, is an error.
pub fn pod_from_yaml_str(yaml: &str) -> Result<PodSpec, PodError> {
    let objects = parse_manifest(yaml.as_bytes(), &Limits::default())?;
    let mut pods = Vec::new();
    for object in objects {
        match object {
            ParsedObject::Pod(pod) => pods.push(pod),
            other => {
                return Err(PodError::invalid(
                    Some(other.document()),
                    FieldError::new(
                        "kind",
                        format!(
                            "expected a single Pod, found {} {}",
                            other.kind(),
                            other.key()
                        ),
                    ),
                ))
            }
        }
    }
    let mut pods = pods.into_iter();
    let Some(pod) = pods.next() else {
        return Err(PodError::invalid(None, FieldError::new("", "no Pod found")));
    };
    if let Some(extra) = pods.next() {
        return Err(PodError::invalid(
            Some(extra.document),
            FieldError::new(
                "kind",
                format!(
                    "expected a single Pod, found a second one ({})",
                    extra.spec.key()
                ),
            ),
        ));
    }
    for warning in &pod.warnings {
        tracing::warn!(pod = %pod.spec.key(), "{warning}");
    }
    Ok(pod.spec)
}
