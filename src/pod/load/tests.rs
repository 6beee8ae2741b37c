//! Loading manifests: documents, kinds, bounds, unknown fields and YAML 1.1 file modes.

use super::*;

fn load(text: &str) -> Result<Vec<Document>, PodError> {
    load_documents(text.as_bytes(), &Limits::default())
}

fn kinds(docs: &[Document]) -> Vec<(usize, &'static str)> {
    docs.iter()
        .map(|d| {
            let kind = match d.object {
                Object::Pod(_) => "Pod",
                Object::ConfigMap(_) => "ConfigMap",
                Object::Secret(_) => "Secret",
            };
            (d.index, kind)
        })
        .collect()
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: busybox}]\n";

#[test]
fn several_documents_load_in_order_and_empty_ones_are_skipped_but_counted() {
    let text = format!(
        "---\n{POD}---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\ndata: {{a: b}}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{k: v}}\n"
    );
    let docs = load(&text).unwrap();
    assert_eq!(
        kinds(&docs),
        vec![(1, "Pod"), (3, "ConfigMap"), (5, "Secret")]
    );
}

#[test]
fn json_manifests_load_like_yaml() {
    let json = r#"{
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "a", "labels": {"app": "x\/y"}},
	"spec": {"containers": [{"name": "c", "image": "busybox"}]}
}"#;
    let docs = load(json).unwrap();
    let Object::Pod(pod) = &docs[0].object else {
        panic!("not a pod")
    };
    assert_eq!(pod.metadata.labels.as_ref().unwrap()["app"], "x/y");
}

#[test]
fn empty_files_hold_no_documents() {
    assert!(load("").unwrap().is_empty());
    assert!(load("# nothing\n").unwrap().is_empty());
    assert!(load("---\n---\n").unwrap().is_empty());
}

#[test]
fn other_kinds_are_refused_naming_the_kind_and_document() {
    let text = format!("{POD}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n");
    assert_eq!(
        load(&text).unwrap_err().to_string(),
        "document 2: kind: unsupported kind \"Deployment\"; a manifest may hold Pod, ConfigMap and Secret objects"
    );
}

#[test]
fn files_over_the_size_cap_are_refused_before_parsing() {
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(
        load_documents(POD.as_bytes(), &limits)
            .unwrap_err()
            .to_string(),
        format!(
            "manifest is {} bytes, over the limit of 10 bytes",
            POD.len()
        )
    );
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    assert_eq!(
        load(&deep).unwrap_err().to_string(),
        "document 1: nested deeper than 64 levels"
    );
    let ok = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x, annotations: {{a: b}}}}\nextra: {}1{}\n",
        "[".repeat(61),
        "]".repeat(61)
    );
    // 63 levels parse; the unknown field is reported rather than the depth.
    assert!(load(&ok)
        .unwrap_err()
        .to_string()
        .contains("extra: unknown field"));
}

#[test]
fn billion_laughs_fails_fast_with_a_clear_error() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let err = load(&bomb).unwrap_err();
    assert_eq!(
        err.to_string(),
        "document 1: more than 500000 values once YAML aliases are expanded; anchors and aliases may not inflate a manifest"
    );
}

#[test]
fn wide_alias_bombs_are_stopped_by_the_value_budget() {
    // One big anchor referenced many times: few alias jumps, so serde_yaml's own
    // repetition guard does not see it, but the expanded size is 50k x 20k values.
    let mut bomb = format!("a: &a [{}]\nb: [", vec!["x"; 50_000].join(","));
    bomb.push_str(&vec!["*a"; 20_000].join(","));
    bomb.push_str("]\n");
    let err = load(&bomb).unwrap_err();
    assert!(
        matches!(err, PodError::TooManyValues { document: 1, .. }),
        "{err}"
    );
}

#[test]
fn modest_aliases_are_allowed() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    env: &env [{name: A, value: '1'}]\n  - name: d\n    image: busybox\n    env: *env\n";
    let docs = load(text).unwrap();
    let Object::Pod(pod) = &docs[0].object else {
        panic!("not a pod")
    };
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.containers[1].env, spec.containers[0].env);
}

#[test]
fn merge_keys_are_refused_rather_than_dropped() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - &base {name: c, image: busybox}\n  - <<: *base\n    name: d\n";
    assert_eq!(
        load(text).unwrap_err().to_string(),
        "document 1: spec.containers[1].<<: YAML merge keys are not supported; repeat the fields or use an alias"
    );
}

#[test]
fn duplicate_keys_are_refused_with_their_path() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    image: nginx\n";
    assert_eq!(
        load(text).unwrap_err().to_string(),
        "document 1: invalid YAML: spec.containers[0]: duplicate key \"image\" at line 6 column 5"
    );
}

#[test]
fn unknown_fields_are_refused_by_path() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolicyy: Always\n    securityContext: {readOnlyRootFileSystem: true}\n";
    assert_eq!(
        load(text).unwrap_err().to_string(),
        "document 1: spec.containers[0].imagePullPolicyy: unknown field; spec.containers[0].securityContext.readOnlyRootFileSystem: unknown field"
    );
}

#[test]
fn type_errors_carry_the_field_path_and_line() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    ports: [{containerPort: eighty}]\n";
    assert_eq!(
        load(text).unwrap_err().to_string(),
        "document 1: spec.containers[0].ports[0].containerPort: invalid type: string \"eighty\", expected an integer (line 8, column 29)"
    );
}

#[test]
fn file_modes_with_a_leading_zero_are_octal_as_in_yaml_1_1() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: busybox}]\n  volumes:\n  - {name: s, secret: {secretName: s, defaultMode: 0640, items: [{key: k, path: k, mode: 0400}]}}\n  - {name: t, configMap: {name: c, defaultMode: 420}}\n";
    let docs = load(text).unwrap();
    let Object::Pod(pod) = &docs[0].object else {
        panic!("not a pod")
    };
    let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
    let secret = volumes[0].secret.as_ref().unwrap();
    assert_eq!(secret.default_mode, Some(0o640));
    assert_eq!(secret.items.as_ref().unwrap()[0].mode, Some(0o400));
    assert_eq!(
        volumes[1].config_map.as_ref().unwrap().default_mode,
        Some(420)
    );
    assert_eq!(yaml11_octal("0"), None);
    assert_eq!(yaml11_octal("0800"), None);
    assert_eq!(yaml11_octal("0+7"), None);
}

#[test]
fn plain_scalars_read_as_strings_where_strings_are_expected() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {on: true}}\nspec:\n  containers: [{name: c, image: busybox, args: [--port, 8080, true]}]\n";
    let docs = load(text).unwrap();
    let Object::Pod(pod) = &docs[0].object else {
        panic!("not a pod")
    };
    let args = pod.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert_eq!(args, vec!["--port", "8080", "true"]);
    assert_eq!(pod.metadata.labels.as_ref().unwrap()["on"], "true");
}

#[test]
fn an_error_next_to_octal_modes_still_names_its_own_field() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: busybox}]\n  volumes: [{name: s, secret: {secretName: s, defaultMode: 0640}}]\n  hostPID: maybe\n";
    // The first reading stops at defaultMode; the second finds hostPID, with no line.
    assert_eq!(
        load(text).unwrap_err().to_string(),
        "document 1: spec.hostPID: invalid type: string \"maybe\", expected a boolean"
    );
    let before = text
        .replace("  hostPID: maybe\n", "")
        .replace("spec:\n", "spec:\n  hostPID: maybe\n");
    assert_eq!(
        load(&before).unwrap_err().to_string(),
        "document 1: spec.hostPID: invalid type: string \"maybe\", expected a boolean (line 5, column 12)"
    );
}

#[test]
fn syntax_errors_name_the_document_and_line() {
    let text = format!("{POD}---\nkey: [unclosed\n");
    let err = load(&text).unwrap_err();
    assert_eq!(err.document(), Some(2));
    assert!(
        err.to_string().starts_with("document 2: invalid YAML: "),
        "{err}"
    );
    assert!(err.to_string().contains("line"), "{err}");
}

#[test]
fn documents_that_are_not_objects_or_lack_kind_are_refused() {
    assert_eq!(
        load("- a\n- b\n").unwrap_err().to_string(),
        "document 1: expected an object with apiVersion and kind, found a list"
    );
    assert_eq!(
        load("apiVersion: v1\nmetadata: {name: a}\n")
            .unwrap_err()
            .to_string(),
        "document 1: kind: required"
    );
    assert_eq!(
        load("apiVersion: v2\nkind: Pod\n").unwrap_err().to_string(),
        "document 1: apiVersion: unsupported value \"v2\" for kind Pod; expected v1"
    );
}
