//! Conversion of whole pods: defaults, uids, hostnames and typed values.

use std::time::Duration;

use super::*;

fn pod(yaml: &str) -> k8s::Pod {
    serde_yaml::from_str(yaml).unwrap()
}

fn convert(yaml: &str) -> Result<Converted> {
    convert_pod(&pod(yaml))
}

const MINIMAL: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: nginx}]\n";

#[test]
fn a_minimal_pod_gets_kubernetes_defaults() {
    let spec = convert(MINIMAL).unwrap().spec;
    assert_eq!(spec.namespace, "default");
    assert_eq!(spec.hostname, "web");
    assert_eq!(spec.restart_policy, RestartPolicy::Always);
    assert_eq!(spec.termination_grace_period, Duration::from_secs(30));
    assert_eq!(spec.dns_policy, DnsPolicy::ClusterFirst);
    let c = &spec.containers[0];
    assert_eq!(c.image_pull_policy, PullPolicy::Always);
    assert_eq!(c.termination_message_path, "/dev/termination-log");
    assert_eq!(c.termination_message_policy, TerminationMessagePolicy::File);
    assert_eq!(c.resources, Resources::default());
}

#[test]
fn static_pods_get_a_stable_uid_from_namespace_and_name() {
    let a = convert(MINIMAL).unwrap().spec.uid;
    let b = convert(&MINIMAL.replace("nginx", "nginx:1.27"))
        .unwrap()
        .spec
        .uid;
    assert_eq!(a, b);
    assert_eq!(a, static_uid("default", "web"));
    assert_ne!(a, static_uid("other", "web"));
    // Separators keep ("ab", "c") and ("a", "bc") apart.
    assert_ne!(static_uid("ab", "c"), static_uid("a", "bc"));
    // Version 8, RFC variant.
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "8");
    assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
}

#[test]
fn a_uid_in_metadata_is_kept() {
    let yaml = MINIMAL.replace("{name: web}", "{name: web, uid: 1234-abcd}");
    assert_eq!(convert(&yaml).unwrap().spec.uid, "1234-abcd");
}

#[test]
fn the_hostname_is_the_pod_name_cut_to_63_characters() {
    let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
    let yaml = MINIMAL.replace("web", &long);
    assert_eq!(convert(&yaml).unwrap().spec.hostname, "a".repeat(62));
    let yaml = MINIMAL.replace("spec:\n", "spec:\n  hostname: box\n");
    assert_eq!(convert(&yaml).unwrap().spec.hostname, "box");
}

#[test]
fn requests_default_to_limits() {
    let yaml = MINIMAL.replace(
        "image: nginx}",
        "image: nginx, resources: {limits: {memory: 128Mi, cpu: 500m}, requests: {cpu: 100m}}}",
    );
    let r = convert(&yaml).unwrap().spec.containers[0].resources.clone();
    assert_eq!(r.limits.memory, Some(128 << 20));
    assert_eq!(r.requests.memory, Some(128 << 20));
    assert_eq!(r.limits.cpu_millis, Some(500));
    assert_eq!(r.requests.cpu_millis, Some(100));
}

#[test]
fn probes_take_kubernetes_defaults_and_zero_means_default() {
    let yaml = MINIMAL.replace(
        "image: nginx}",
        "image: nginx, livenessProbe: {httpGet: {port: 80}, periodSeconds: 0, failureThreshold: 5}}",
    );
    let probe = convert(&yaml).unwrap().spec.containers[0]
        .liveness_probe
        .clone()
        .unwrap();
    assert_eq!(probe.period, Duration::from_secs(10));
    assert_eq!(probe.failure_threshold, 5);
    let ProbeHandler::HttpGet(get) = probe.handler else {
        panic!("not httpGet")
    };
    assert_eq!(get.path, "/");
    assert_eq!(get.port, PortRef::Number(80));
    assert_eq!(get.scheme, HttpScheme::Http);
}

#[test]
fn a_volume_without_a_source_is_an_empty_dir() {
    let yaml = MINIMAL.replace("spec:\n", "spec:\n  volumes: [{name: scratch}]\n");
    assert_eq!(
        convert(&yaml).unwrap().spec.volumes[0].source,
        VolumeSource::EmptyDir {
            medium: StorageMedium::Disk,
            size_limit: None
        }
    );
}

#[test]
fn scheduler_fields_are_warnings_not_errors() {
    let yaml = MINIMAL.replace(
        "spec:\n",
        "spec:\n  nodeSelector: {disk: ssd}\n  tolerations: [{operator: Exists}]\n  schedulerName: default-scheduler\n  priorityClassName: high\n",
    );
    let warnings: Vec<String> = convert(&yaml)
        .unwrap()
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        warnings,
        vec![
            "spec.nodeSelector: ignored: scheduling has no meaning on a single node",
            "spec.tolerations: ignored: scheduling has no meaning on a single node",
            "spec.priorityClassName: ignored: scheduling has no meaning on a single node",
        ]
    );
}

#[test]
fn resource_field_divisors_are_unit_quantities() {
    let yaml = MINIMAL.replace(
        "image: nginx}",
        "image: nginx, env: [{name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}, {name: CPU, valueFrom: {resourceFieldRef: {resource: requests.cpu}}}]}",
    );
    let env = convert(&yaml).unwrap().spec.containers[0].env.clone();
    assert_eq!(
        env[0].source,
        EnvSource::ResourceField(ResourceFieldRef {
            container: None,
            resource: "limits.memory".into(),
            divisor: 1 << 20
        })
    );
    let EnvSource::ResourceField(cpu) = &env[1].source else {
        panic!("not a resource field")
    };
    assert_eq!(cpu.divisor, 1000);
}
