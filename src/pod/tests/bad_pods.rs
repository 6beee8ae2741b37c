//! The exact-error corpus: one bad pod per case, each refused with one exact error naming
//! the file, the document and the field.

use super::*;

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
