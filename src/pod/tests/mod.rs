//! End-to-end tests of the module: manifest text in, `ParsedObject`s or one exact error out.

mod bad_pods;
mod config_objects;
mod documents;
mod full_pod;

use std::path::Path;

use super::*;

const FILE: &str = "pods/web.yaml";

fn parse(text: &str) -> Result<Vec<ParsedObject>, PodError> {
    parse_manifest_file(Path::new(FILE), text.as_bytes(), &Limits::default())
}

/// A pod named `web` with one container `app`; `spec` and `container` are extra YAML lines
/// (indented by the caller: 2 spaces for spec fields, 4 for container fields).
fn pod(spec: &str, container: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n{spec}  containers:\n  - name: app\n    image: nginx:1.27\n{container}"
    )
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(objects) => panic!("expected an error, parsed {objects:?}"),
        Err(e) => e.to_string(),
    }
}

fn only_pod(text: &str) -> ParsedPod {
    let mut objects = parse(text).unwrap();
    assert_eq!(objects.len(), 1);
    match objects.remove(0) {
        ParsedObject::Pod(p) => *p,
        other => panic!("not a pod: {other:?}"),
    }
}

/// A ConfigMap or Secret named `cfg` with extra top-level YAML lines.
fn object(kind: &str, rest: &str) -> String {
    format!("apiVersion: v1\nkind: {kind}\nmetadata: {{name: cfg}}\n{rest}")
}
