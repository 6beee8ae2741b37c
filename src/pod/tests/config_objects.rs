//! ConfigMaps and Secrets next to pods: parsed, refused by field, kept secret in Debug, and
//! the references pods make to them.

use super::full_pod::FULL;
use super::*;

#[test]
fn config_maps_and_secrets_are_parsed_next_to_pods() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{app.conf: 'x=1'}}\nbinaryData: {{blob: AAEC}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: prod}}\ntype: kubernetes.io/basic-auth\ndata: {{username: YWRtaW4=, password: b2xk}}\nstringData: {{password: new}}\n---\n{}",
        pod("", "")
    );
    let objects = parse(&text).unwrap();
    let kinds: Vec<(String, String, usize)> = objects
        .iter()
        .map(|o| (o.kind().to_string(), o.key(), o.document()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("ConfigMap".into(), "default/cfg".into(), 1),
            ("Secret".into(), "prod/creds".into(), 2),
            ("Pod".into(), "default/web".into(), 3),
        ]
    );
    let ParsedObject::ConfigMap(cm) = &objects[0] else {
        panic!("not a config map")
    };
    assert_eq!(cm.data["app.conf"], "x=1");
    assert_eq!(cm.binary_data["blob"], vec![0u8, 1, 2]);
    let ParsedObject::Secret(secret) = &objects[1] else {
        panic!("not a secret")
    };
    assert_eq!(secret.secret_type, "kubernetes.io/basic-auth");
    assert_eq!(secret.data["username"], b"admin".to_vec());
    // stringData wins over data, as in the API server.
    assert_eq!(secret.data["password"], b"new".to_vec());
}

#[test]
fn secret_values_never_appear_in_debug_output() {
    let text =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {token: hunter2}\n";
    let debug = format!("{:?}", parse(text).unwrap());
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("token (7 bytes)"), "{debug}");
}

#[test]
fn bad_config_map_and_secret_objects_are_refused_by_field() {
    assert_eq!(
        error_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {'../x': a}\n"),
        "pods/web.yaml: document 1: data.../x: invalid key \"../x\": at most 253 characters: letters, digits, '-', '_' and '.', not '.' and not starting with '..'"
    );
    assert_eq!(
        error_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: x}\nbinaryData: {a: AA==}\n"),
        "pods/web.yaml: document 1: binaryData.a: duplicate of a key in data"
    );
    assert_eq!(
        error_of("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {key: '!!notbase64'}\n"),
        "pods/web.yaml: document 1: data.key: invalid base64: Invalid symbol 33, offset 0. (line 4, column 13)"
    );
}

#[test]
fn referenced_config_maps_and_secrets_are_listed() {
    let spec = only_pod(FULL).spec;
    let (config_maps, secrets) = referenced_objects(&spec);
    assert_eq!(
        config_maps.into_iter().collect::<Vec<_>>(),
        vec!["shop-config"]
    );
    assert_eq!(
        secrets.into_iter().collect::<Vec<_>>(),
        vec!["regcred", "shop-creds"]
    );
}

#[test]
fn bad_config_maps_secrets_and_their_references_get_exact_errors() {
    let key_help = "at most 253 characters: letters, digits, '-', '_' and '.', not '.' and not starting with '..'";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "config map name with capitals",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Cfg}\n".into(),
            "metadata.name: invalid name \"Cfg\": must be a DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit)".into(),
        ),
        (
            "config map key with a space",
            object("ConfigMap", "data: {'a b': x}\n"),
            format!("data.a b: invalid key \"a b\": {key_help}"),
        ),
        (
            "config map key that is a dot",
            object("ConfigMap", "data: {'.': x}\n"),
            format!("data..: invalid key \".\": {key_help}"),
        ),
        (
            "config map key with a slash",
            object("ConfigMap", "binaryData: {'a/b': AA==}\n"),
            format!("binaryData.a/b: invalid key \"a/b\": {key_help}"),
        ),
        (
            "binary data that is not base64",
            object("ConfigMap", "binaryData: {blob: '%%%'}\n"),
            "binaryData.blob: invalid base64: Invalid symbol 37, offset 0. (line 4, column 20)".into(),
        ),
        (
            "config map field misspelt",
            object("ConfigMap", "datas: {a: b}\n"),
            "datas: unknown field".into(),
        ),
        (
            "immutable that is not a boolean",
            object("ConfigMap", "immutable: sometimes\n"),
            "immutable: invalid type: string \"sometimes\", expected a boolean (line 4, column 12)".into(),
        ),
        (
            "secret stringData key with a colon",
            object("Secret", "stringData: {'a:b': x}\n"),
            format!("stringData.a:b: invalid key \"a:b\": {key_help}"),
        ),
        (
            "tls secret without its key",
            object("Secret", "type: kubernetes.io/tls\nstringData: {tls.crt: x}\n"),
            "data.tls.key: required for a Secret of type kubernetes.io/tls".into(),
        ),
        (
            "registry secret that is not JSON",
            object("Secret", "type: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: '{nope'}\n"),
            "data..dockerconfigjson: must be valid JSON".into(),
        ),
        (
            "basic auth secret with neither field",
            object("Secret", "type: kubernetes.io/basic-auth\nstringData: {user: x}\n"),
            "data: a Secret of type kubernetes.io/basic-auth needs username or password".into(),
        ),
        (
            "ssh secret without its key",
            object("Secret", "type: kubernetes.io/ssh-auth\n"),
            "data.ssh-privatekey: required for a Secret of type kubernetes.io/ssh-auth".into(),
        ),
        (
            "config map volume item over the writer's own names",
            pod("  volumes: [{name: d, configMap: {name: cfg, items: [{key: a, path: ..data}]}}]\n", ""),
            "spec.volumes[0].configMap.items[0].path: \"..data\" must not start with '..'".into(),
        ),
        (
            "secret volume item at an absolute path",
            pod("  volumes: [{name: d, secret: {secretName: s, items: [{key: a, path: /etc/passwd}]}}]\n", ""),
            "spec.volumes[0].secret.items[0].path: \"/etc/passwd\" must be a relative path".into(),
        ),
        (
            "secret volume item key that is a path",
            pod("  volumes: [{name: d, secret: {secretName: s, items: [{key: ../k, path: k}]}}]\n", ""),
            format!("spec.volumes[0].secret.items[0].key: invalid key \"../k\": {key_help}"),
        ),
        (
            "two items at one path",
            pod("  volumes: [{name: d, configMap: {name: cfg, items: [{key: a, path: x}, {key: b, path: x}]}}]\n", ""),
            "spec.volumes[0].configMap.items[1].path: duplicate path \"x\"".into(),
        ),
        (
            "downward API file escaping the volume",
            pod("  volumes: [{name: d, downwardAPI: {items: [{path: a/../../x, fieldRef: {fieldPath: metadata.name}}]}}]\n", ""),
            "spec.volumes[0].downwardAPI.items[0].path: \"a/../../x\" must not contain '..'".into(),
        ),
        (
            "downward API file of a field only env has",
            pod("  volumes: [{name: d, downwardAPI: {items: [{path: n, fieldRef: {fieldPath: spec.nodeName}}]}}]\n", ""),
            "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: unsupported field path \"spec.nodeName\"; expected one of metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, metadata.labels['KEY'], metadata.annotations['KEY']".into(),
        ),
        (
            "item mode out of range",
            pod("  volumes: [{name: d, configMap: {name: cfg, items: [{key: a, path: a, mode: 01000}]}}]\n", ""),
            "spec.volumes[0].configMap.items[0].mode: must be a number between 0 and 0777 (octal), both inclusive".into(),
        ),
        (
            "env from a config map key that cannot exist",
            pod("", "    env: [{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: 'a b'}}}]\n"),
            format!("spec.containers[0].env[0].valueFrom.configMapKeyRef.key: invalid key \"a b\": {key_help}"),
        ),
        (
            "env from a secret without a name",
            pod("", "    env: [{name: X, valueFrom: {secretKeyRef: {key: a}}}]\n"),
            "spec.containers[0].env[0].valueFrom.secretKeyRef.name: required".into(),
        ),
        (
            "env with two sources",
            pod("", "    env: [{name: X, value: a, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n"),
            "spec.containers[0].env[0].valueFrom: may not be specified when value is not empty".into(),
        ),
        (
            "env field the downward API lacks",
            pod("", "    env: [{name: X, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}]\n"),
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported field path \"metadata.labels\"; expected one of metadata.name, metadata.namespace, metadata.uid, spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs, metadata.labels['KEY'], metadata.annotations['KEY']".into(),
        ),
        (
            "envFrom prefix that is no variable name",
            pod("", "    envFrom: [{prefix: '1_', configMapRef: {name: cfg}}]\n"),
            "spec.containers[0].envFrom[0].prefix: invalid name \"1_\": letters, digits, '_', '-' and '.', not starting with a digit".into(),
        ),
        (
            "envFrom with both sources",
            pod("", "    envFrom: [{configMapRef: {name: cfg}, secretRef: {name: s}}]\n"),
            "spec.containers[0].envFrom[0]: may not have more than one field specified at a time".into(),
        ),
        (
            "projected service account token",
            pod("  volumes: [{name: d, projected: {sources: [{serviceAccountToken: {path: token}}]}}]\n", ""),
            "spec.volumes[0].projected.sources[0].serviceAccountToken: not supported by layerlet: there is no API server to issue service account tokens".into(),
        ),
        (
            "projected source with two kinds",
            pod("  volumes: [{name: d, projected: {sources: [{configMap: {name: a}, secret: {name: b}}]}}]\n", ""),
            "spec.volumes[0].projected.sources[0]: may not have more than one field specified at a time".into(),
        ),
        (
            "projected sources writing one path",
            pod("  volumes: [{name: d, projected: {sources: [{configMap: {name: a, items: [{key: k, path: f}]}}, {downwardAPI: {items: [{path: f, fieldRef: {fieldPath: metadata.name}}]}}]}}]\n", ""),
            "spec.volumes[0].projected.sources[1].downwardAPI.items[0].path: duplicate path \"f\"".into(),
        ),
        (
            "projected secret without a name",
            pod("  volumes: [{name: d, projected: {sources: [{secret: {items: [{key: k, path: '..k'}]}}]}}]\n", ""),
            "spec.volumes[0].projected.sources[0].secret.name: required; spec.volumes[0].projected.sources[0].secret.items[0].path: \"..k\" must not start with '..'".into(),
        ),
        (
            "resource field of an unknown resource",
            pod("", "    env: [{name: X, valueFrom: {resourceFieldRef: {resource: limits.gpu}}}]\n"),
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: unsupported value \"limits.gpu\"; expected one of limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, expected) in &cases {
        let expected = format!("{FILE}: document 1: {expected}");
        let got = match parse(text) {
            Ok(_) => "parsed without error".to_string(),
            Err(e) => e.to_string(),
        };
        if got != expected {
            failures.push(format!(
                "{name}:\n  expected: {expected}\n  got:      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn objects_over_one_mebibyte_of_data_are_refused() {
    let limits = Limits {
        max_bytes: 4 << 20,
        max_values: 1_000_000,
        ..Limits::default()
    };
    let big = "x".repeat(600 * 1024);
    let text = object("ConfigMap", &format!("data: {{a: {big}, b: {big}}}\n"));
    let err = parse_manifest_file(Path::new(FILE), text.as_bytes(), &limits)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("{FILE}: document 1: data: {} bytes of data, over the limit of 1048576 bytes (1 MiB) per object; split it into several objects", 1200 * 1024)
    );
    let text = object("Secret", &format!("stringData: {{a: {big}}}\n"));
    assert!(parse_manifest_file(Path::new(FILE), text.as_bytes(), &limits).is_ok());
}

#[test]
fn immutable_is_kept_on_config_maps_and_secrets() {
    let objects = parse(&format!(
        "{}---\n{}",
        object("ConfigMap", "immutable: true\ndata: {a: b}\n"),
        object("Secret", "immutable: true\n")
    ))
    .unwrap();
    match (&objects[0], &objects[1]) {
        (ParsedObject::ConfigMap(c), ParsedObject::Secret(s)) => {
            assert!(c.immutable && s.immutable)
        }
        other => panic!("{other:?}"),
    }
}
