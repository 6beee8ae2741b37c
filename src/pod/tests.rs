//! End-to-end tests of the module: manifest text in, `ParsedObject`s or one exact error out.

use std::path::Path;
use std::time::Duration;

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

const BYTES_HELP: &str = "expected a whole number of bytes with an optional suffix (Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E) or exponent, e.g. 128974848, 129e6, 129M, 123Mi, .5Gi";

#[test]
fn bad_manifests_get_one_exact_error_with_file_document_and_field() {
    let label_help = "must be a DNS-1123 label (at most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit)";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "container without a name",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{image: nginx}]\n".into(),
            "spec.containers[0].name: required".into(),
        ),
        (
            "quoted number for a number",
            pod("  terminationGracePeriodSeconds: '30'\n", ""),
            "spec.terminationGracePeriodSeconds: invalid type: string \"30\", expected an integer (line 6, column 34)".into(),
        ),
        (
            "missing image",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app}]\n".into(),
            "spec.containers[0].image: required".into(),
        ),
        (
            "second container without image",
            pod("", "  - name: sidecar\n"),
            "spec.containers[1].image: required".into(),
        ),
        (
            "bad memory quantity",
            pod("", "    resources: {limits: {memory: 12XB}}\n"),
            format!("spec.containers[0].resources.limits.memory: invalid quantity \"12XB\": unknown suffix \"XB\"; {BYTES_HELP}"),
        ),
        (
            "memory in millibytes",
            pod("", "    resources: {requests: {memory: 400m}}\n"),
            format!("spec.containers[0].resources.requests.memory: invalid quantity \"400m\": the suffix m means thousandths of a byte, which makes a fractional byte count (did you mean Mi or M?); {BYTES_HELP}"),
        ),
        (
            "bad cpu quantity",
            pod("", "    resources: {limits: {cpu: 2cores}}\n"),
            "spec.containers[0].resources.limits.cpu: invalid quantity \"2cores\": unknown suffix \"cores\"; expected cores or millicores, e.g. 2, 0.5, 500m".into(),
        ),
        (
            "nfs volume",
            pod(
                "  volumes:\n  - {name: a, emptyDir: {}}\n  - {name: b, hostPath: {path: /srv}}\n  - {name: c, nfs: {server: nas, path: /x}}\n",
                "",
            ),
            "spec.volumes[2]: unsupported volume type nfs".into(),
        ),
        (
            "nfs volume",
            pod("  volumes: [{name: share, nfs: {server: nas, path: /export}}]\n", ""),
            "spec.volumes[0]: unsupported volume type nfs".into(),
        ),
        (
            "two volume types",
            pod("  volumes: [{name: a, emptyDir: {}, hostPath: {path: /srv}}]\n", ""),
            "spec.volumes[0]: may not specify more than 1 volume type".into(),
        ),
        (
            "ephemeral containers",
            pod("  ephemeralContainers: [{name: debug, image: busybox}]\n", ""),
            "spec.ephemeralContainers: not supported by layerlet".into(),
        ),
        (
            "grpc probe",
            pod("", "    livenessProbe: {grpc: {port: 9000}}\n"),
            "spec.containers[0].livenessProbe.grpc: not supported by layerlet: gRPC probes (use exec, httpGet or tcpSocket)".into(),
        ),
        (
            "probe without handler",
            pod("", "    readinessProbe: {periodSeconds: 5}\n"),
            "spec.containers[0].readinessProbe: must specify a handler type".into(),
        ),
        (
            "probe with two handlers",
            pod("", "    readinessProbe: {exec: {command: [true]}, tcpSocket: {port: 80}}\n"),
            "spec.containers[0].readinessProbe: may not specify more than 1 handler type".into(),
        ),
        (
            "liveness success threshold above 1",
            pod("", "    livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2}\n"),
            "spec.containers[0].livenessProbe.successThreshold: must be 1 for a livenessProbe".into(),
        ),
        (
            "negative failure threshold",
            pod("", "    startupProbe: {tcpSocket: {port: 80}, failureThreshold: -1}\n"),
            "spec.containers[0].startupProbe.failureThreshold: must be greater than or equal to 0".into(),
        ),
        (
            "probe port name invalid",
            pod("", "    readinessProbe: {httpGet: {port: \"8080\"}}\n"),
            "spec.containers[0].readinessProbe.httpGet.port: invalid port name \"8080\": at most 15 characters: lowercase letters, digits and '-', with at least one letter, no '--' and no '-' at either end".into(),
        ),
        (
            "container name with capitals",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: Web_1, image: nginx}]\n".into(),
            format!("spec.containers[0].name: invalid name \"Web_1\": {label_help}"),
        ),
        (
            "duplicate container names across init and app containers",
            pod("  initContainers: [{name: app, image: busybox}]\n", ""),
            "spec.containers[0].name: duplicate name \"app\"".into(),
        ),
        (
            "duplicate volume names",
            pod("  volumes: [{name: data, emptyDir: {}}, {name: data, emptyDir: {}}]\n", ""),
            "spec.volumes[1].name: duplicate name \"data\"".into(),
        ),
        (
            "port zero",
            pod("", "    ports: [{containerPort: 0}]\n"),
            "spec.containers[0].ports[0].containerPort: must be between 1 and 65535, inclusive".into(),
        ),
        (
            "port too large",
            pod("", "    ports: [{containerPort: 70000}]\n"),
            "spec.containers[0].ports[0].containerPort: must be between 1 and 65535, inclusive".into(),
        ),
        (
            "port protocol",
            pod("", "    ports: [{containerPort: 80, protocol: HTTP}]\n"),
            "spec.containers[0].ports[0].protocol: unsupported value \"HTTP\"; expected one of TCP, UDP, SCTP".into(),
        ),
        (
            "duplicate port names",
            pod("", "    ports: [{name: web, containerPort: 80}, {name: web, containerPort: 81}]\n"),
            "spec.containers[0].ports[1].name: duplicate name \"web\"".into(),
        ),
        (
            "host port different from container port on the host network",
            pod("  hostNetwork: true\n", "    ports: [{containerPort: 80, hostPort: 8080}]\n"),
            "spec.containers[0].ports[0].hostPort: must match containerPort when hostNetwork is true".into(),
        ),
        (
            "mount of an undeclared volume",
            pod("", "    volumeMounts: [{name: data, mountPath: /data}]\n"),
            "spec.containers[0].volumeMounts[0].name: volume \"data\" is not in spec.volumes".into(),
        ),
        (
            "relative mount path",
            pod("  volumes: [{name: data}]\n", "    volumeMounts: [{name: data, mountPath: data}]\n"),
            "spec.containers[0].volumeMounts[0].mountPath: \"data\" must be an absolute path".into(),
        ),
        (
            "mount path with a backstep",
            pod("  volumes: [{name: data}]\n", "    volumeMounts: [{name: data, mountPath: /data/../etc}]\n"),
            "spec.containers[0].volumeMounts[0].mountPath: \"/data/../etc\" must not contain '..'".into(),
        ),
        (
            "absolute sub path",
            pod("  volumes: [{name: data}]\n", "    volumeMounts: [{name: data, mountPath: /data, subPath: /etc}]\n"),
            "spec.containers[0].volumeMounts[0].subPath: \"/etc\" must be a relative path".into(),
        ),
        (
            "sub path escaping its volume",
            pod("  volumes: [{name: data}]\n", "    volumeMounts: [{name: data, mountPath: /data, subPath: a/../../etc}]\n"),
            "spec.containers[0].volumeMounts[0].subPath: \"a/../../etc\" must not contain '..'".into(),
        ),
        (
            "bidirectional propagation without privilege",
            pod("  volumes: [{name: data}]\n", "    volumeMounts: [{name: data, mountPath: /data, mountPropagation: Bidirectional}]\n"),
            "spec.containers[0].volumeMounts[0].mountPropagation: Bidirectional is only allowed in privileged containers".into(),
        ),
        (
            "env var name starting with a digit",
            pod("", "    env: [{name: 1X, value: a}]\n"),
            "spec.containers[0].env[0].name: invalid name \"1X\": letters, digits, '_', '-' and '.', not starting with a digit".into(),
        ),
        (
            "env var with value and valueFrom",
            pod("", "    env: [{name: A, value: a, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n"),
            "spec.containers[0].env[0].valueFrom: may not be specified when value is not empty".into(),
        ),
        (
            "env field path the downward API lacks",
            pod("", "    env: [{name: A, valueFrom: {fieldRef: {fieldPath: spec.hostname}}}]\n"),
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported field path \"spec.hostname\"; expected one of metadata.name, metadata.namespace, metadata.uid, spec.nodeName, spec.serviceAccountName, status.hostIP, status.hostIPs, status.podIP, status.podIPs, metadata.labels['KEY'], metadata.annotations['KEY']".into(),
        ),
        (
            "no containers",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: []\n".into(),
            "spec.containers: required: a pod needs at least one container".into(),
        ),
        (
            "no spec",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n".into(),
            "spec: required".into(),
        ),
        (
            "restart policy",
            pod("  restartPolicy: Sometimes\n", ""),
            "spec.restartPolicy: unsupported value \"Sometimes\"; expected one of Always, OnFailure, Never".into(),
        ),
        (
            "pull policy",
            pod("", "    imagePullPolicy: Sometimes\n"),
            "spec.containers[0].imagePullPolicy: unsupported value \"Sometimes\"; expected one of Always, IfNotPresent, Never".into(),
        ),
        (
            "pod name not a subdomain",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: Web}\nspec:\n  containers: [{name: app, image: nginx}]\n".into(),
            "metadata.name: invalid name \"Web\": must be a DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit)".into(),
        ),
        (
            "namespace not a label",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: my.ns}\nspec:\n  containers: [{name: app, image: nginx}]\n".into(),
            format!("metadata.namespace: invalid name \"my.ns\": {label_help}"),
        ),
        (
            "a uid that would be a path",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web, uid: ../../etc}\nspec:\n  containers: [{name: app, image: nginx}]\n".into(),
            "metadata.uid: invalid uid \"../../etc\": at most 64 letters, digits and '-' (a UUID); leave it out to have one derived from the name".into(),
        ),
        (
            "missing name",
            "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec:\n  containers: [{name: app, image: nginx}]\n".into(),
            "metadata.name: required (generateName is not supported)".into(),
        ),
        (
            "sidecar init container",
            pod("  initContainers: [{name: proxy, image: envoy, restartPolicy: Always}]\n", ""),
            "spec.initContainers[0].restartPolicy: not supported by layerlet: sidecar containers (init containers with restartPolicy Always)".into(),
        ),
        (
            "init container with a probe",
            pod("  initContainers: [{name: setup, image: busybox, readinessProbe: {exec: {command: [true]}}}]\n", ""),
            "spec.initContainers[0].readinessProbe: must not be set for init containers".into(),
        ),
        (
            "huge pages",
            pod("", "    resources: {limits: {hugepages-2Mi: 100Mi}}\n"),
            "spec.containers[0].resources.limits.hugepages-2Mi: not supported by layerlet: huge pages".into(),
        ),
        (
            "extended resource",
            pod("", "    resources: {limits: {nvidia.com/gpu: 1}}\n"),
            "spec.containers[0].resources.limits.nvidia.com/gpu: unsupported resource; expected cpu, memory or ephemeral-storage".into(),
        ),
        (
            "request above limit",
            pod("", "    resources: {limits: {memory: 64Mi}, requests: {memory: 128Mi}}\n"),
            "spec.containers[0].resources.requests.memory: must be less than or equal to the memory limit (67108864 bytes)".into(),
        ),
        (
            "privileged without privilege escalation",
            pod("", "    securityContext: {privileged: true, allowPrivilegeEscalation: false}\n"),
            "spec.containers[0].securityContext.allowPrivilegeEscalation: cannot be false when privileged is true".into(),
        ),
        (
            "negative user id",
            pod("  securityContext: {runAsUser: -1}\n", ""),
            "spec.securityContext.runAsUser: must be between 0 and 2147483647, inclusive".into(),
        ),
        (
            "seccomp localhost without a profile",
            pod("", "    securityContext: {seccompProfile: {type: Localhost}}\n"),
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: required when type is Localhost".into(),
        ),
        (
            "seccomp profile escaping the profile directory",
            pod("  securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../../etc/x.json}}\n", ""),
            "spec.securityContext.seccompProfile.localhostProfile: \"../../etc/x.json\" must not contain '..'".into(),
        ),
        (
            "apparmor",
            pod("", "    securityContext: {appArmorProfile: {type: RuntimeDefault}}\n"),
            "spec.containers[0].securityContext.appArmorProfile: not supported by layerlet: AppArmor profiles are not applied (only type Unconfined is accepted)".into(),
        ),
        (
            "windows pod",
            pod("  os: {name: windows}\n", ""),
            "spec.os.name: unsupported value \"windows\"; layerlet runs Linux pods".into(),
        ),
        (
            "shared process namespace",
            pod("  shareProcessNamespace: true\n", ""),
            "spec.shareProcessNamespace: not supported by layerlet: each container has its own PID namespace".into(),
        ),
        (
            "user namespaces",
            pod("  hostUsers: false\n", ""),
            "spec.hostUsers: not supported by layerlet: user namespaces".into(),
        ),
        (
            "runtime class",
            pod("  runtimeClassName: gvisor\n", ""),
            "spec.runtimeClassName: not supported by layerlet: layerlet is the only runtime".into(),
        ),
        (
            "raw block device",
            pod("", "    volumeDevices: [{name: disk, devicePath: /dev/xvda}]\n"),
            "spec.containers[0].volumeDevices: not supported by layerlet: raw block volumes".into(),
        ),
        (
            "stop signal",
            pod("", "    lifecycle: {stopSignal: SIGUSR1}\n"),
            "spec.containers[0].lifecycle.stopSignal: not supported by layerlet: the image's STOPSIGNAL or SIGTERM stops the container".into(),
        ),
        (
            "sleep hook longer than the grace period",
            pod("  terminationGracePeriodSeconds: 5\n", "    lifecycle: {preStop: {sleep: {seconds: 10}}}\n"),
            "spec.containers[0].lifecycle.preStop.sleep.seconds: must not be longer than terminationGracePeriodSeconds (5)".into(),
        ),
        (
            "image with whitespace",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: ' nginx'}]\n".into(),
            "spec.containers[0].image: must not have leading or trailing whitespace".into(),
        ),
        (
            "malformed image reference",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: \"UPPER/Case::bad\"}]\n".into(),
            "spec.containers[0].image: invalid image reference \"UPPER/Case::bad\": repository names must be lowercase; expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]".into(),
        ),
        (
            "image digest that is not sha256",
            pod("", "  - name: pinned\n    image: busybox@md5:abc\n"),
            "spec.containers[1].image: invalid image reference \"busybox@md5:abc\": digest \"md5:abc\" must be sha256: followed by 64 lowercase hex digits; expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]".into(),
        ),
        (
            "dns policy None without nameservers",
            pod("  dnsPolicy: None\n", ""),
            "spec.dnsConfig.nameservers: required: dnsPolicy None needs at least one nameserver".into(),
        ),
        (
            "empty dir on huge pages",
            pod("  volumes: [{name: d, emptyDir: {medium: HugePages}}]\n", ""),
            "spec.volumes[0].emptyDir.medium: unsupported value \"HugePages\"; expected one of Memory".into(),
        ),
        (
            "empty dir size limit",
            pod("  volumes: [{name: d, emptyDir: {sizeLimit: lots}}]\n", ""),
            format!("spec.volumes[0].emptyDir.sizeLimit: invalid quantity \"lots\": no number; {BYTES_HELP}"),
        ),
        (
            "host path type",
            pod("  volumes: [{name: d, hostPath: {path: /srv, type: Dir}}]\n", ""),
            "spec.volumes[0].hostPath.type: unsupported value \"Dir\"; expected one of DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice".into(),
        ),
        (
            "relative host path",
            pod("  volumes: [{name: d, hostPath: {path: srv}}]\n", ""),
            "spec.volumes[0].hostPath.path: \"srv\" must be an absolute path".into(),
        ),
        (
            "claim name that is a path",
            pod("  volumes: [{name: d, persistentVolumeClaim: {claimName: ../x}}]\n", ""),
            "spec.volumes[0].persistentVolumeClaim.claimName: invalid name \"../x\": must be a DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit)".into(),
        ),
        (
            "config map item path escaping the volume",
            pod("  volumes: [{name: d, configMap: {name: cfg, items: [{key: a, path: ../a}]}}]\n", ""),
            "spec.volumes[0].configMap.items[0].path: \"../a\" must not contain '..'".into(),
        ),
        (
            "file mode out of range",
            pod("  volumes: [{name: d, secret: {secretName: s, defaultMode: 4095}}]\n", ""),
            "spec.volumes[0].secret.defaultMode: must be a number between 0 and 0777 (octal), both inclusive".into(),
        ),
        (
            "secret volume without a name",
            pod("  volumes: [{name: d, secret: {}}]\n", ""),
            "spec.volumes[0].secret.secretName: required".into(),
        ),
        (
            "downward API resource without a container",
            pod("  volumes: [{name: d, downwardAPI: {items: [{path: mem, resourceFieldRef: {resource: limits.memory}}]}}]\n", ""),
            "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: required in a downwardAPI volume".into(),
        ),
        (
            "resource field divisor",
            pod("", "    env: [{name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 10m}}}]\n"),
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: unsupported divisor \"10m\"; expected 1m or 1".into(),
        ),
        (
            "resource field of another pod's container",
            pod("", "    env: [{name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu, containerName: db}}}]\n"),
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName: container \"db\" is not in this pod".into(),
        ),
        (
            "unknown field",
            pod("", "    imagePullPolicyy: Always\n"),
            "spec.containers[0].imagePullPolicyy: unknown field".into(),
        ),
        (
            "wrong type",
            pod("  hostNetwork: yes please\n", ""),
            "spec.hostNetwork: invalid type: string \"yes please\", expected a boolean (line 6, column 16)".into(),
        ),
        (
            "several problems at once",
            pod("  volumes: [{name: Data}]\n", "  - name: app\n    image: busybox\n"),
            format!("spec.volumes[0].name: invalid name \"Data\": {label_help}; spec.containers[1].name: duplicate name \"app\""),
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

const FULL: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: shop
  namespace: prod
  uid: 0b7c5a3e-9f1d-4c52-8f0a-2d6d3c1b9e77
  labels: {app: shop, app.kubernetes.io/part-of: store}
  annotations: {note: hello}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  activeDeadlineSeconds: 3600
  hostname: shop-0
  subdomain: shops
  nodeName: node-1
  dnsPolicy: None
  dnsConfig: {nameservers: [10.0.0.10], searches: [svc.local], options: [{name: ndots, value: "2"}]}
  hostAliases: [{ip: 10.0.0.5, hostnames: [db.local]}]
  imagePullSecrets: [{name: regcred}]
  nodeSelector: {disk: ssd}
  affinity: {}
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    runAsNonRoot: true
    supplementalGroups: [2000]
    fsGroup: 3000
    fsGroupChangePolicy: OnRootMismatch
    seccompProfile: {type: RuntimeDefault}
    sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
  volumes:
  - name: cache
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  - name: logs
    hostPath: {path: /var/log/shop, type: DirectoryOrCreate}
  - name: data
    persistentVolumeClaim: {claimName: shop-data}
  - name: config
    configMap: {name: shop-config, items: [{key: app.conf, path: conf/app.conf, mode: 0400}], optional: true}
  - name: creds
    secret: {secretName: shop-creds, defaultMode: 0440}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
  initContainers:
  - name: migrate
    image: registry.local:5000/shop/migrate@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    command: [/migrate]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: app
    image: registry.local:5000/shop/app:2.1
    command: [/app]
    args: [--port=8080]
    workingDir: /srv
    env:
    - {name: MODE, value: prod}
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: LEVEL, valueFrom: {configMapKeyRef: {name: shop-config, key: level}}}
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: shop-creds, key: token, optional: true}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory}}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: shop-config}}
    - {secretRef: {name: shop-creds, optional: true}}
    ports:
    - {name: http, containerPort: 8080}
    - {containerPort: 5353, protocol: UDP, hostPort: 5353, hostIP: 127.0.0.1}
    resources:
      limits: {cpu: "1.5", memory: 256Mi, ephemeral-storage: 1Gi}
      requests: {cpu: 250m}
    resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]
    volumeMounts:
    - {name: cache, mountPath: /cache}
    - {name: logs, mountPath: /logs, mountPropagation: HostToContainer}
    - {name: data, mountPath: /data, subPath: app}
    - {name: config, mountPath: /etc/shop, readOnly: true}
    - {name: info, mountPath: /info, subPathExpr: $(POD)}
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
      seccompProfile: {type: Localhost, localhostProfile: profiles/shop.json}
    livenessProbe:
      httpGet: {path: /healthz, port: http, scheme: HTTPS, httpHeaders: [{name: X-Probe, value: "1"}]}
      initialDelaySeconds: 5
      periodSeconds: 20
      timeoutSeconds: 2
      failureThreshold: 6
      terminationGracePeriodSeconds: 3
    readinessProbe:
      tcpSocket: {port: 8080}
      successThreshold: 2
    startupProbe:
      exec: {command: [cat, /tmp/ready]}
    lifecycle:
      postStart: {exec: {command: [/hook]}}
      preStop: {sleep: {seconds: 5}}
    terminationMessagePath: /tmp/msg
    terminationMessagePolicy: FallbackToLogsOnError
    stdin: true
    tty: true
"#;

#[test]
fn a_full_pod_converts_every_supported_field() {
    let parsed = only_pod(FULL);
    let s = &parsed.spec;
    assert_eq!(s.key(), "prod/shop");
    assert_eq!(s.uid, "0b7c5a3e-9f1d-4c52-8f0a-2d6d3c1b9e77");
    assert_eq!(s.labels["app.kubernetes.io/part-of"], "store");
    assert_eq!(s.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(s.termination_grace_period, Duration::from_secs(10));
    assert_eq!(s.active_deadline, Some(Duration::from_secs(3600)));
    assert_eq!(s.hostname, "shop-0");
    assert_eq!(s.subdomain.as_deref(), Some("shops"));
    assert_eq!(s.node_name.as_deref(), Some("node-1"));
    assert_eq!(s.dns_policy, DnsPolicy::None);
    assert_eq!(
        s.dns_config,
        Some(DnsConfig {
            nameservers: vec!["10.0.0.10".into()],
            searches: vec!["svc.local".into()],
            options: vec![DnsOption {
                name: "ndots".into(),
                value: Some("2".into())
            }],
        })
    );
    assert_eq!(s.host_aliases[0].hostnames, vec!["db.local".to_string()]);
    assert_eq!(s.image_pull_secrets, vec!["regcred".to_string()]);
    assert_eq!(
        s.security_context,
        PodSecurity {
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            run_as_non_root: Some(true),
            supplemental_groups: vec![2000],
            supplemental_groups_policy: SupplementalGroupsPolicy::Merge,
            fs_group: Some(3000),
            fs_group_change_policy: FsGroupChangePolicy::OnRootMismatch,
            seccomp_profile: Some(SeccompProfile::RuntimeDefault),
            sysctls: vec![Sysctl {
                name: "net.ipv4.ip_unprivileged_port_start".into(),
                value: "0".into()
            }],
        }
    );

    let sources: Vec<&VolumeSource> = s.volumes.iter().map(|v| &v.source).collect();
    assert_eq!(
        sources,
        vec![
            &VolumeSource::EmptyDir {
                medium: StorageMedium::Memory,
                size_limit: Some(64 << 20)
            },
            &VolumeSource::HostPath {
                path: "/var/log/shop".into(),
                host_path_type: HostPathType::DirectoryOrCreate
            },
            &VolumeSource::PersistentVolumeClaim {
                claim_name: "shop-data".into(),
                read_only: false
            },
            &VolumeSource::ConfigMap {
                name: "shop-config".into(),
                items: vec![KeyToPath {
                    key: "app.conf".into(),
                    path: "conf/app.conf".into(),
                    mode: Some(0o400)
                }],
                default_mode: 0o644,
                optional: true
            },
            &VolumeSource::Secret {
                secret_name: "shop-creds".into(),
                items: vec![],
                default_mode: 0o440,
                optional: false
            },
            &VolumeSource::DownwardApi {
                items: vec![
                    DownwardApiFile {
                        path: "labels".into(),
                        source: DownwardSource::Field("metadata.labels".into()),
                        mode: None
                    },
                    DownwardApiFile {
                        path: "mem".into(),
                        source: DownwardSource::Resource(ResourceFieldRef {
                            container: Some("app".into()),
                            resource: "limits.memory".into(),
                            divisor: 1 << 20
                        }),
                        mode: None
                    },
                ],
                default_mode: 0o644
            },
        ]
    );

    let init = &s.init_containers[0];
    assert_eq!(init.image_pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(init.command, vec!["/migrate".to_string()]);

    let c = &s.containers[0];
    assert_eq!(c.image_pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(c.args, vec!["--port=8080".to_string()]);
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    let env: Vec<(&str, &EnvSource)> = c.env.iter().map(|e| (e.name.as_str(), &e.source)).collect();
    assert_eq!(
        env,
        vec![
            ("MODE", &EnvSource::Value("prod".into())),
            ("POD", &EnvSource::Field("metadata.name".into())),
            (
                "LEVEL",
                &EnvSource::ConfigMapKey {
                    name: "shop-config".into(),
                    key: "level".into(),
                    optional: false
                }
            ),
            (
                "TOKEN",
                &EnvSource::SecretKey {
                    name: "shop-creds".into(),
                    key: "token".into(),
                    optional: true
                }
            ),
            (
                "MEM",
                &EnvSource::ResourceField(ResourceFieldRef {
                    container: None,
                    resource: "limits.memory".into(),
                    divisor: 1
                })
            ),
        ]
    );
    assert_eq!(
        c.env_from,
        vec![
            EnvFromSource {
                prefix: "CFG_".into(),
                source: EnvFromKind::ConfigMap {
                    name: "shop-config".into(),
                    optional: false
                }
            },
            EnvFromSource {
                prefix: String::new(),
                source: EnvFromKind::Secret {
                    name: "shop-creds".into(),
                    optional: true
                }
            },
        ]
    );
    assert_eq!(
        c.ports,
        vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                protocol: Protocol::Tcp,
                host_port: None,
                host_ip: None
            },
            ContainerPort {
                name: None,
                container_port: 5353,
                protocol: Protocol::Udp,
                host_port: Some(5353),
                host_ip: Some("127.0.0.1".into())
            },
        ]
    );
    assert_eq!(
        c.resources,
        Resources {
            limits: ResourceList {
                cpu_millis: Some(1500),
                memory: Some(256 << 20),
                ephemeral_storage: Some(1 << 30)
            },
            requests: ResourceList {
                cpu_millis: Some(250),
                memory: Some(256 << 20),
                ephemeral_storage: Some(1 << 30)
            },
        }
    );
    assert_eq!(
        c.volume_mounts[1].propagation,
        MountPropagation::HostToContainer
    );
    assert_eq!(c.volume_mounts[2].sub_path.as_deref(), Some("app"));
    assert!(c.volume_mounts[3].read_only);
    assert_eq!(c.volume_mounts[4].sub_path_expr.as_deref(), Some("$(POD)"));
    assert_eq!(
        c.security_context,
        ContainerSecurity {
            run_as_user: None,
            run_as_group: None,
            run_as_non_root: None,
            read_only_root_filesystem: true,
            privileged: false,
            allow_privilege_escalation: Some(false),
            capabilities: Capabilities {
                add: vec!["NET_BIND_SERVICE".into()],
                drop: vec!["ALL".into()]
            },
            proc_mount: ProcMount::Default,
            seccomp_profile: Some(SeccompProfile::Localhost("profiles/shop.json".into())),
        }
    );
    assert_eq!(
        c.liveness_probe,
        Some(Probe {
            handler: ProbeHandler::HttpGet(HttpGet {
                path: "/healthz".into(),
                port: PortRef::Name("http".into()),
                host: None,
                scheme: HttpScheme::Https,
                headers: vec![HttpHeader {
                    name: "X-Probe".into(),
                    value: "1".into()
                }],
            }),
            initial_delay: Duration::from_secs(5),
            period: Duration::from_secs(20),
            timeout: Duration::from_secs(2),
            success_threshold: 1,
            failure_threshold: 6,
            termination_grace_period: Some(Duration::from_secs(3)),
        })
    );
    let readiness = c.readiness_probe.as_ref().unwrap();
    assert_eq!(readiness.success_threshold, 2);
    assert_eq!(
        readiness.handler,
        ProbeHandler::TcpSocket {
            port: PortRef::Number(8080),
            host: None
        }
    );
    assert_eq!(
        c.startup_probe.as_ref().unwrap().handler,
        ProbeHandler::Exec {
            command: vec!["cat".into(), "/tmp/ready".into()]
        }
    );
    assert_eq!(
        c.lifecycle,
        Lifecycle {
            post_start: Some(Handler::Exec {
                command: vec!["/hook".into()]
            }),
            pre_stop: Some(Handler::Sleep(Duration::from_secs(5))),
        }
    );
    assert_eq!(c.termination_message_path, "/tmp/msg");
    assert_eq!(
        c.termination_message_policy,
        TerminationMessagePolicy::FallbackToLogsOnError
    );
    assert!(c.stdin && c.tty && !c.stdin_once);

    let warnings: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec![
            "spec.nodeSelector: ignored: scheduling has no meaning on a single node",
            "spec.affinity: ignored: scheduling has no meaning on a single node",
            "spec.containers[0].resizePolicy: ignored: a change of resources replaces the container",
        ]
    );
}

#[test]
fn the_same_manifest_as_json_gives_the_same_spec() {
    let yaml = pod("", "    ports: [{name: http, containerPort: 80}]\n");
    let value: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    let json = serde_json::to_string_pretty(&value).unwrap();
    assert_eq!(only_pod(&json).spec, only_pod(&yaml).spec);
}

#[test]
fn specs_compare_equal_only_when_they_would_run_the_same() {
    let a = pod_from_yaml_str(&pod("", "")).unwrap();
    // Defaults spelled out are the same spec.
    let b = pod_from_yaml_str(&pod(
        "  restartPolicy: Always\n  terminationGracePeriodSeconds: 30\n",
        "    imagePullPolicy: IfNotPresent\n    terminationMessagePath: /dev/termination-log\n",
    ))
    .unwrap();
    assert_eq!(a, b);
    let c = pod_from_yaml_str(&pod("", "    args: [-g, daemon off;]\n")).unwrap();
    assert_ne!(a, c);
}

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
fn specs_serialize_for_printing() {
    let spec = pod_from_yaml_str(&pod("", "    ports: [{containerPort: 80}]\n")).unwrap();
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(json["restart_policy"], "Always");
    assert_eq!(
        json["termination_grace_period"],
        serde_json::json!({"secs": 30, "nanos": 0})
    );
}

/// A ConfigMap or Secret named `cfg` with extra top-level YAML lines.
fn object(kind: &str, rest: &str) -> String {
    format!("apiVersion: v1\nkind: {kind}\nmetadata: {{name: cfg}}\n{rest}")
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
