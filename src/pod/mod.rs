//! Pods: manifests (YAML or JSON, Kubernetes' types) in, layerlet's own [`PodSpec`] out.
//!
//! This is the only module that unpacks Kubernetes types. The pipeline per file
//! ([`manifest`]): [`load`] (bounded parse, kind dispatch, unknown-field check) -> [`convert`]
//! (defaults, typed values, unsupported fields) -> [`validate`] (names, references,
//! cross-field rules, as the API server would). Every error names the file, the document and
//! the field.

pub mod api;
pub mod convert;
pub mod downward;
pub mod env;
pub mod error;
pub mod load;
pub mod manifest;
pub mod objects;
pub mod quantity;
pub mod spec;
pub mod validate;

#[cfg(test)]
mod tests;

pub use error::{FieldError, PodError, Warning};
pub use load::Limits;
pub use manifest::{
    parse_manifest_file, pod_from_yaml_str, ConfigMapObject, ParsedObject, ParsedPod, SecretObject,
};
pub use objects::referenced_objects;
pub use spec::*;
