//! The deployment files: `manifests/kind/*.yaml` read as the API server would (typed
//! k8s-openapi objects), their DaemonSet's arguments accepted by the real binary's parser,
//! every host directory a flag names mounted from the host, and the chart's values read and
//! every `.Values` path its templates use defined. No helm here: the templates themselves
//! are not rendered.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Deserialize;
use serde_json::Value;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The documents of a multi-document YAML file, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let value = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::to_value(value).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The one object of `kind` in `docs`, typed.
fn object<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str) -> T {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn pod_spec(ds: &DaemonSet) -> &PodSpec {
    ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn args(ds: &DaemonSet) -> Vec<String> {
    pod_spec(ds).containers[0].args.clone().unwrap()
}

/// The value of `--flag=VALUE` in `args`, every time it is given.
fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    let prefix = format!("--{name}=");
    args.iter()
        .filter_map(|a| a.strip_prefix(prefix.as_str()))
        .collect()
}

/// The host path mounted at `path` in the agent's container, if any.
fn host_path_at(ds: &DaemonSet, path: &str) -> Option<String> {
    let spec = pod_spec(ds);
    let mount = spec.containers[0]
        .volume_mounts
        .as_ref()?
        .iter()
        .find(|m| m.mount_path == path)?;
    let volume = spec
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == mount.name)?;
    Some(volume.host_path.as_ref()?.path.clone())
}

/// What every layerlet DaemonSet must hold, in file mode and in kube mode.
fn check_daemon_set(ds: &DaemonSet) {
    let spec = pod_spec(ds);
    let args = args(ds);
    assert_eq!(spec.host_network, Some(true), "on the host's network");
    assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    // The real parser accepts the arguments (an unknown flag fails before --help is read).
    let out = Command::new(env!("CARGO_BIN_EXE_layerlet"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The host's CNI configuration and plugins, each directory mounted from the host at the
    // path the flag names; /usr/lib/cni is the image's own.
    let conf = flag(&args, "cni-conf-dir");
    assert_eq!(conf, ["/etc/cni/net.d"]);
    let bins = flag(&args, "cni-bin-dir");
    assert_eq!(bins, ["/opt/cni/bin", "/usr/lib/cni"]);
    for dir in [
        "/etc/cni/net.d",
        "/opt/cni/bin",
        "/var/lib/cni",
        "/run/cni-ipam-state",
    ] {
        assert_eq!(
            host_path_at(ds, dir).as_deref(),
            Some(dir),
            "{dir} from the host"
        );
    }
    assert_eq!(
        host_path_at(ds, "/usr/lib/cni"),
        None,
        "the image's plugins"
    );
}

#[test]
fn the_file_mode_manifest_runs_on_the_hosts_network_with_its_cni() {
    let docs = documents(&repo("manifests/kind/layerlet.yaml"));
    let ds: DaemonSet = object(&docs, "DaemonSet");
    check_daemon_set(&ds);
    let args = args(&ds);
    // Without an API server the kubelet API is off by default: no flag needed.
    assert!(flag(&args, "kubelet-listen").is_empty(), "{args:?}");
    assert!(!args.iter().any(|a| a == "--in-cluster"));
}

#[test]
fn the_kube_mode_manifest_serves_the_kubelet_api_beside_the_nodes_kubelet() {
    let docs = documents(&repo("manifests/kind/layerlet-kube.yaml"));
    let ds: DaemonSet = object(&docs, "DaemonSet");
    check_daemon_set(&ds);
    let args = args(&ds);
    assert!(args.iter().any(|a| a == "--in-cluster"));
    assert!(args.iter().any(|a| a == "--register-node"));
    // 10250 is the kind node's own kubelet's: a port of its own, on every interface, so the
    // API server reaches it at the node's InternalIP.
    assert_eq!(flag(&args, "kubelet-listen"), ["0.0.0.0:10350"]);
    let ports: Vec<i32> = pod_spec(&ds).containers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert!(ports.contains(&10350), "{ports:?}");
    assert_eq!(
        flag(&args, "client-ca-file"),
        ["/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"]
    );
    assert_eq!(flag(&args, "authorization-mode"), ["Webhook"]);

    // The service account the DaemonSet runs as may create TokenReviews and
    // SubjectAccessReviews (the kubelet API's authentication and authorization).
    let role: ClusterRole = object(&docs, "ClusterRole");
    let binding: ClusterRoleBinding = object(&docs, "ClusterRoleBinding");
    assert_eq!(binding.role_ref.name, role.metadata.name.clone().unwrap());
    let subject = &binding.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (Some(subject.name.as_str()), subject.namespace.as_deref()),
        (
            pod_spec(&ds).service_account_name.as_deref(),
            ds.metadata.namespace.as_deref()
        )
    );
    let grants = |group: &str, resource: &str, verb: &str| {
        role.rules.iter().flatten().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    };
    assert!(grants("authentication.k8s.io", "tokenreviews", "create"));
    assert!(grants(
        "authorization.k8s.io",
        "subjectaccessreviews",
        "create"
    ));
    assert!(grants("", "nodes/status", "patch"));
}

/// Whether `path` (`a.b.c`) names something in `values`.
fn defined(values: &serde_yaml::Value, path: &str) -> bool {
    path.split('.')
        .try_fold(values, |v, key| v.get(key))
        .is_some()
}

#[test]
fn the_charts_values_define_everything_its_templates_use() {
    let values: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo("charts/layerlet/values.yaml")).unwrap(),
    )
    .unwrap();
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo("charts/layerlet/Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart["name"].as_str(), Some("layerlet"));
    assert_eq!(values["kubelet"]["port"].as_u64(), Some(10350));
    let mut used = Vec::new();
    for entry in std::fs::read_dir(repo("charts/layerlet/templates")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (at, _) in text.match_indices(".Values.") {
            let rest = &text[at + ".Values.".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                .unwrap_or(rest.len());
            used.push(rest[..end].trim_end_matches('.').to_string());
        }
    }
    for path in [
        "kubelet.port",
        "kubelet.enabled",
        "cni.confDir",
        "cni.binDir",
    ] {
        assert!(used.iter().any(|u| u == path), "the templates use {path}");
    }
    let missing: Vec<&String> = used.iter().filter(|p| !defined(&values, p)).collect();
    assert!(missing.is_empty(), "not in values.yaml: {missing:?}");
}
