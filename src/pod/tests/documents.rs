//! Errors about files and documents rather than fields: which document, which file, one
//! object per key, and `pod_from_yaml_str` wanting exactly one Pod.

use super::*;

#[test]
fn errors_in_later_documents_name_that_document() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{a: b}}\n---\n{}",
        pod("", "    ports: [{containerPort: 0}]\n")
    );
    assert_eq!(
        error_of(&text),
        "pods/web.yaml: document 2: spec.containers[0].ports[0].containerPort: must be between 1 and 65535, inclusive"
    );
}

#[test]
fn other_kinds_are_refused_by_name_and_document() {
    let text = format!(
        "{}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\n",
        pod("", "")
    );
    assert_eq!(
        error_of(&text),
        "pods/web.yaml: document 2: kind: unsupported kind \"Deployment\"; a manifest may hold Pod, ConfigMap and Secret objects"
    );
}

#[test]
fn the_same_object_twice_in_one_file_is_refused() {
    let text = format!("{}---\n{}", pod("", ""), pod("", ""));
    assert_eq!(
        error_of(&text),
        "pods/web.yaml: document 2: metadata.name: Pod default/web is already defined in document 1"
    );
}

#[test]
fn oversized_files_name_the_file() {
    let limits = Limits {
        max_bytes: 100,
        ..Limits::default()
    };
    let text = pod("", "");
    let err = parse_manifest_file(Path::new(FILE), text.as_bytes(), &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pods/web.yaml: manifest is {} bytes, over the limit of 100 bytes",
            text.len()
        )
    );
    assert_eq!(err.file(), Some(Path::new(FILE)));
    assert_eq!(err.document(), None);
}

#[test]
fn error_accessors_expose_document_and_field() {
    let err = parse(&pod("", "    ports: [{containerPort: 0}]\n")).unwrap_err();
    assert_eq!(err.document(), Some(1));
    assert_eq!(
        err.field(),
        Some("spec.containers[0].ports[0].containerPort")
    );
}

#[test]
fn pod_from_yaml_str_wants_exactly_one_pod() {
    assert_eq!(pod_from_yaml_str(&pod("", "")).unwrap().name, "web");
    assert_eq!(
        pod_from_yaml_str("# nothing\n").unwrap_err().to_string(),
        "no Pod found"
    );
    let two = format!(
        "{}---\n{}",
        pod("", ""),
        pod("", "").replace("name: web", "name: web2")
    );
    assert_eq!(
        pod_from_yaml_str(&two).unwrap_err().to_string(),
        "document 2: kind: expected a single Pod, found a second one (default/web2)"
    );
    let with_cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\n---\n{}",
        pod("", "")
    );
    assert_eq!(
        pod_from_yaml_str(&with_cm).unwrap_err().to_string(),
        "document 1: kind: expected a single Pod, found ConfigMap default/cfg"
    );
}
