//! Pods: manifests (YAML or JSON, Kubernetes' types) in, layerlet's own [`PodSpec`] out.
//!
//! This is the only module that unpacks Kubernetes types. The pipeline per file:
//! [`load`] (bounded parse, kind dispatch, unknown-field check) -> [`convert`] (defaults, typed
//! values, unsupported fields) -> [`validate`] (names, references, cross-field rules, as the
//! API server would). Every error names the file, the document and the field.

pub mod api;
pub mod convert;
pub mod downward;
pub mod env;
pub mod load;
pub mod objects;
pub mod probe;
pub mod quantity;
pub mod spec;
pub mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use load::Limits;
pub use spec::*;

/// One problem with one field: `spec.containers[1].image: required`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Joined(field, reason))]
pub struct FieldError {
    /// Kubernetes-style path (`spec.volumes[2].hostPath.path`); empty for the whole document.
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A field layerlet accepts but ignores because it means nothing on a single node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Joined(&self.field, &self.message).fmt(f)
    }
}

struct Joined<'a>(&'a str, &'a str);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(self.1)
        } else {
            write!(f, "{}: {}", self.0, self.1)
        }
    }
}

/// `pods/web.yaml: document 2: ` (each part only when known).
struct Location<'a>(&'a Option<PathBuf>, &'a Option<usize>);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = self.0 {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(document) = self.1 {
            write!(f, "document {document}: ")?;
        }
        Ok(())
    }
}

struct More<'a>(&'a [FieldError]);

impl fmt::Display for More<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in self.0 {
            write!(f, "; {error}")?;
        }
        Ok(())
    }
}

/// Why a manifest was refused. Documents are counted from 1 in the order YAML sees them
/// (empty documents count, so the number matches the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    #[error("{}manifest is {size} bytes, over the limit of {limit} bytes", Location(file, &None))]
    TooLarge {
        file: Option<PathBuf>,
        size: usize,
        limit: usize,
    },
    #[error("{}invalid YAML: {message}", Location(file, document))]
    Syntax {
        file: Option<PathBuf>,
        document: Option<usize>,
        message: String,
    },
    #[error("{}nested deeper than {limit} levels", Location(file, &Some(*document)))]
    TooDeep {
        file: Option<PathBuf>,
        document: usize,
        limit: usize,
    },
    #[error(
        "{}more than {limit} values once YAML aliases are expanded; anchors and aliases may not inflate a manifest",
        Location(file, &Some(*document))
    )]
    TooManyValues {
        file: Option<PathBuf>,
        document: usize,
        limit: usize,
    },
    /// A field is wrong. `more` holds further problems found in the same document.
    #[error("{}{}{}", Location(file, document), Joined(field, reason), More(more))]
    Invalid {
        file: Option<PathBuf>,
        document: Option<usize>,
        field: String,
        reason: String,
        more: Vec<FieldError>,
    },
}

impl PodError {
    pub(crate) fn invalid(document: Option<usize>, error: FieldError) -> PodError {
        PodError::Invalid {
            file: None,
            document,
            field: error.field,
            reason: error.reason,
            more: Vec::new(),
        }
    }

    /// The same error without a document number (for objects that come from no file).
    pub(crate) fn without_document(self) -> PodError {
        match self {
            PodError::Invalid {
                file,
                field,
                reason,
                more,
                ..
            } => PodError::Invalid {
                file,
                document: None,
                field,
                reason,
                more,
            },
            other => other,
        }
    }

    /// None when `errors` is empty.
    fn from_field_errors(document: usize, errors: Vec<FieldError>) -> Option<PodError> {
        let mut errors = errors.into_iter();
        let first = errors.next()?;
        Some(PodError::Invalid {
            file: None,
            document: Some(document),
            field: first.field,
            reason: first.reason,
            more: errors.collect(),
        })
    }

    pub fn file(&self) -> Option<&Path> {
        match self {
            PodError::TooLarge { file, .. }
            | PodError::Syntax { file, .. }
            | PodError::TooDeep { file, .. }
            | PodError::TooManyValues { file, .. }
            | PodError::Invalid { file, .. } => file.as_deref(),
        }
    }

    pub fn document(&self) -> Option<usize> {
        match self {
            PodError::TooLarge { .. } => None,
            PodError::Syntax { document, .. } | PodError::Invalid { document, .. } => *document,
            PodError::TooDeep { document, .. } | PodError::TooManyValues { document, .. } => {
                Some(*document)
            }
        }
    }

    /// The field path of an `Invalid` error.
    pub fn field(&self) -> Option<&str> {
        match self {
            PodError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    fn with_file(mut self, path: &Path) -> PodError {
        match &mut self {
            PodError::TooLarge { file, .. }
            | PodError::Syntax { file, .. }
            | PodError::TooDeep { file, .. }
            | PodError::TooManyValues { file, .. }
            | PodError::Invalid { file, .. } => *file = Some(path.to_path_buf()),
        }
        self
    }
}

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

fn config_map(
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

fn secret_object(
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

/// Names of ConfigMaps and Secrets a pod reads (volumes, env, envFrom, image pull secrets),
/// so that a source knows which objects to watch.
pub fn referenced_objects(spec: &PodSpec) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets: BTreeSet<String> = spec.image_pull_secrets.iter().cloned().collect();
    for volume in &spec.volumes {
        match &volume.source {
            VolumeSource::ConfigMap { name, .. } => {
                config_maps.insert(name.clone());
            }
            VolumeSource::Secret { secret_name, .. } => {
                secrets.insert(secret_name.clone());
            }
            VolumeSource::Projected { sources, .. } => {
                for source in sources {
                    match source {
                        ProjectedSource::ConfigMap { name, .. } => {
                            config_maps.insert(name.clone());
                        }
                        ProjectedSource::Secret { name, .. } => {
                            secrets.insert(name.clone());
                        }
                        ProjectedSource::DownwardApi { .. }
                        | ProjectedSource::ServiceAccountToken { .. } => {}
                    }
                }
            }
            _ => {}
        }
    }
    for container in spec.all_containers() {
        for env in &container.env {
            match &env.source {
                EnvSource::ConfigMapKey { name, .. } => {
                    config_maps.insert(name.clone());
                }
                EnvSource::SecretKey { name, .. } => {
                    secrets.insert(name.clone());
                }
                _ => {}
            }
        }
        for from in &container.env_from {
            match &from.source {
                EnvFromKind::ConfigMap { name, .. } => {
                    config_maps.insert(name.clone());
                }
                EnvFromKind::Secret { name, .. } => {
                    secrets.insert(name.clone());
                }
            }
        }
    }
    (config_maps, secrets)
}
