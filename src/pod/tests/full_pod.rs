//! A pod that sets every supported field, converted in full; the spec's equality and
//! serialization.

use std::time::Duration;

use super::*;

pub(super) const FULL: &str = r#"
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
