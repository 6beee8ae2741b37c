//! ConfigMaps, Secrets and the downward API through the real agent, as root: objects in the
//! manifest directory feed configMap/secret/downwardAPI volumes and env of the pods there;
//! an update reaches the files of running containers atomically but not their env; secrets
//! live on tmpfs and stay out of the status and events; a missing object holds a container
//! in CreateContainerConfigError until it appears; removing a pod leaves no mount behind.
//!
//! Every agent runs under a [`common::Agent`] guard. Waits poll with a generous deadline
//! and stop as soon as their condition holds; nothing asserts on how long anything takes.

mod common;
mod support;

use common::{busybox_node, container_status as cstatus, quoted, unique};

use std::path::Path;
use std::time::Duration;

use common::{Agent, Node};
use serde_json::Value;

const IMAGE: &str = "example.com/test/busybox:1";
const DEADLINE: Duration = Duration::from_secs(60);

/// [`Agent::wait_for`] with this suite's deadline.
fn wait_for<T>(agent: &Agent, what: &str, check: impl FnMut() -> Option<T>) -> T {
    agent.wait_for(what, DEADLINE, check)
}

fn pod(agent: &Agent, name: &str) -> Option<Value> {
    agent.pod(name)
}

/// A container of [`IMAGE`] running `sh -c script`, then `extra` lines (four spaces).
fn sh(name: &str, script: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [sh, -c, {}]\n{extra}",
        quoted(script)
    )
}

/// A pod with a 1 s grace period; `metadata_extra` lines (two spaces) go under metadata,
/// `spec_extra` (two spaces) after the containers.
fn pod_yaml(name: &str, metadata_extra: &str, containers: &[String], spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{metadata_extra}spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n{}{spec_extra}",
        containers.concat()
    )
}

fn config_map(name: &str, data: &[(&str, &str)]) -> String {
    let data: Vec<String> = data
        .iter()
        .map(|(k, v)| format!("  {k}: {}\n", quoted(v)))
        .collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{}",
        data.concat()
    )
}

/// Writes as an editor does: a dotfile, then a rename over the real name.
fn write_atomic(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.swp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn wait_running(agent: &Agent, name: &str) -> Value {
    wait_for(agent, &format!("pod {name} to run"), || {
        pod(agent, name).filter(|p| {
            p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()))
        })
    })
}

/// `layerlet exec POD/CONTAINER -- sh -c script`: stdout, or None when it fails.
fn exec(node: &Node, target: &str, script: &str) -> Option<String> {
    let out = node.run(&["exec", target, "--", "sh", "-c", script]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn logs(node: &Node, target: &str) -> String {
    node.ok(&["logs", target])
}

/// Mount points under `dir` with their filesystem types, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<(String, String)> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            point
                .starts_with(&prefix)
                .then(|| (point.to_string(), fstype.to_string()))
        })
        .collect()
}

/// Removes the pod's file and waits until its directories and mounts are gone.
fn remove_and_wait_clean(agent: &Agent, file: &str, uid: &str) {
    std::fs::remove_file(agent.manifests.join(file)).unwrap();
    let node = agent.node;
    let pod_data = node.root().join("pods").join(uid);
    wait_for(agent, "the pod's directories and mounts to go", || {
        let mounts: Vec<(String, String)> = mounts_under(node.dir.path())
            .into_iter()
            .filter(|(m, _)| m.contains(uid))
            .collect();
        (mounts.is_empty()
            && !pod_data.exists()
            && !node.run_root().join("pods").join(uid).exists())
        .then_some(())
    });
}

#[test]
fn a_config_map_feeds_volume_and_env_and_an_update_reaches_only_the_files_atomically() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("cm");
    let cm = format!("{name}-cfg");
    write_atomic(
        &agent.manifests,
        &format!("{cm}.yaml"),
        &config_map(&cm, &[("level", "v0"), ("a", "v0"), ("b", "v0")]),
    );
    // The checker reads both keys from one version (cd into ..data) over and over: with an
    // atomic writer they always agree.
    let checker = "last=; while :; do if cd /c/..data 2>/dev/null; then a=$(cat a 2>/dev/null); b=$(cat b 2>/dev/null); cd /; if [ -n \"$a\" ] && [ -n \"$b\" ]; then if [ \"$a\" != \"$b\" ]; then echo MISMATCH $a $b; elif [ \"$a\" != \"$last\" ]; then echo seen $a; last=$a; fi; fi; fi; usleep 2000; done";
    let spec_extra = format!("  volumes:\n  - name: cfg\n    configMap: {{name: {cm}}}\n");
    let mount = "    volumeMounts: [{name: cfg, mountPath: /c}]\n";
    write_atomic(
        &agent.manifests,
        &format!("{name}.yaml"),
        &pod_yaml(
            &name,
            "",
            &[
                sh(
                    "app",
                    "echo level=$LEVEL; exec sleep 3600",
                    &format!("{mount}    env:\n    - name: LEVEL\n      valueFrom: {{configMapKeyRef: {{name: {cm}, key: level}}}}\n"),
                ),
                sh("checker", checker, mount),
            ],
            &spec_extra,
        ),
    );
    let running = wait_running(&agent, &name);
    let app = format!("{name}/app");
    let first_id = cstatus(&running, "app")["containerID"].clone();
    assert_eq!(exec(&node, &app, "cat /c/level").as_deref(), Some("v0"));
    assert_eq!(logs(&node, &app).trim(), "level=v0");
    let layout = exec(
        &node,
        &app,
        "ls -A /c | tr '\\n' ' '; readlink /c/level; readlink /c/..data",
    )
    .unwrap();
    assert!(
        layout.starts_with("..20") && layout.contains("..data a b level ..data/level\n..20"),
        "kubelet's layout: {layout:?}"
    );
    assert!(
        exec(&node, &app, "echo x > /c/new").is_none(),
        "a configMap volume is read-only"
    );

    for v in 1..=5 {
        let value = format!("v{v}");
        write_atomic(
            &agent.manifests,
            &format!("{cm}.yaml"),
            &config_map(&cm, &[("level", &value), ("a", &value), ("b", &value)]),
        );
        wait_for(
            &agent,
            &format!("the running container to read {value}"),
            || (exec(&node, &app, "cat /c/level").as_deref() == Some(value.as_str())).then_some(()),
        );
    }
    let checker_log = wait_for(&agent, "the checker to see v5", || {
        let log = logs(&node, &format!("{name}/checker"));
        log.contains("seen v5").then_some(log)
    });
    assert!(!checker_log.contains("MISMATCH"), "{checker_log}");
    let versions = exec(&node, &app, "ls -A /c | grep -c '^\\.\\.20'").unwrap();
    assert_eq!(versions.trim(), "1", "old versions are removed");

    // env is fixed at container start; the same container still runs.
    assert_eq!(
        exec(&node, &app, "echo $LEVEL").as_deref(),
        Some("v0\n"),
        "env does not follow the ConfigMap"
    );
    let now = pod(&agent, &name).unwrap();
    assert_eq!(cstatus(&now, "app")["containerID"], first_id);
    assert_eq!(cstatus(&now, "app")["restartCount"], 0);

    let uid = now["metadata"]["uid"].as_str().unwrap().to_string();
    remove_and_wait_clean(&agent, &format!("{name}.yaml"), &uid);
}

#[test]
fn a_secret_volume_is_tmpfs_and_its_values_stay_out_of_status_events_and_logs() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("sec");
    let secret = format!("{name}-creds");
    let value = format!("hunter2-{name}");
    write_atomic(
        &agent.manifests,
        &format!("{secret}.yaml"),
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {secret}}}\ntype: Opaque\nstringData: {{token: {value}}}\n"
        ),
    );
    write_atomic(
        &agent.manifests,
        &format!("{name}.yaml"),
        &pod_yaml(
            &name,
            "",
            &[sh(
                "app",
                "exec sleep 3600",
                &format!("    volumeMounts: [{{name: creds, mountPath: /s}}]\n    env:\n    - name: TOKEN\n      valueFrom: {{secretKeyRef: {{name: {secret}, key: token}}}}\n"),
            )],
            &format!("  volumes:\n  - name: creds\n    secret: {{secretName: {secret}, defaultMode: 0400}}\n"),
        ),
    );
    let running = wait_running(&agent, &name);
    let uid = running["metadata"]["uid"].as_str().unwrap().to_string();
    let app = format!("{name}/app");
    assert_eq!(exec(&node, &app, "cat /s/token"), Some(value.clone()));
    assert_eq!(exec(&node, &app, "echo $TOKEN"), Some(format!("{value}\n")));
    assert_eq!(
        exec(&node, &app, "stat -L -c %a /s/token").as_deref(),
        Some("400\n")
    );
    let in_container = exec(&node, &app, "grep ' /s ' /proc/mounts").unwrap();
    assert!(
        in_container.starts_with("tmpfs /s tmpfs ro,"),
        "{in_container}"
    );
    let host_dir = node
        .root()
        .join("pods")
        .join(&uid)
        .join("volumes")
        .join("creds");
    let on_host: Vec<(String, String)> = mounts_under(node.dir.path())
        .into_iter()
        .filter(|(m, _)| Path::new(m) == host_dir)
        .collect();
    assert_eq!(
        on_host,
        vec![(host_dir.display().to_string(), "tmpfs".to_string())]
    );

    let (_, pods) = agent.get("/api/v1/pods");
    let (_, events) = agent.get("/api/v1/events");
    assert!(
        !pods.contains(&value),
        "the PodList shows the secret: {pods}"
    );
    assert!(!events.contains(&value), "events show the secret: {events}");
    assert!(
        !agent.log().contains(&value),
        "the agent log shows the secret"
    );

    remove_and_wait_clean(&agent, &format!("{name}.yaml"), &uid);
}

#[test]
fn a_missing_config_map_holds_the_container_in_create_container_config_error_until_it_appears() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("late");
    let cm = format!("{name}-cfg");
    write_atomic(
        &agent.manifests,
        &format!("{name}.yaml"),
        &pod_yaml(
            &name,
            "",
            &[sh(
                "app",
                "echo greeting=$GREETING from=$CM_greeting; exec sleep 3600",
                &format!("    volumeMounts: [{{name: cfg, mountPath: /c}}]\n    envFrom: [{{prefix: CM_, configMapRef: {{name: {cm}}}}}, {{configMapRef: {{name: {cm}}}}}]\n    env:\n    - name: GREETING\n      valueFrom: {{configMapKeyRef: {{name: {cm}, key: greeting}}}}\n"),
            )],
            &format!("  volumes:\n  - name: cfg\n    configMap: {{name: {cm}}}\n"),
        ),
    );
    let waiting = wait_for(&agent, "CreateContainerConfigError", || {
        let p = pod(&agent, &name)?;
        let state = cstatus(&p, "app")["state"].clone();
        (state["waiting"]["reason"] == "CreateContainerConfigError").then_some(state)
    });
    assert_eq!(
        waiting["waiting"]["message"],
        format!("configmap \"{cm}\" not found (namespace default); add it to the manifest directory or mark the reference optional")
    );
    let failed: Vec<String> = agent.get_json("/api/v1/events")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name.as_str() && e["reason"] == "Failed")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        failed,
        vec![format!("Error: configmap \"{cm}\" not found (namespace default); add it to the manifest directory or mark the reference optional")],
        "one event, not one per retry"
    );
    assert!(
        node.ok(&["--output", "json", "ps", "-a"]).trim() == "[]",
        "no container was created"
    );

    write_atomic(
        &agent.manifests,
        &format!("{cm}.yaml"),
        &config_map(&cm, &[("greeting", "hello"), ("9lives", "x")]),
    );
    let running = wait_running(&agent, &name);
    let app = format!("{name}/app");
    assert_eq!(logs(&node, &app).trim(), "greeting=hello from=hello");
    let skipped: Vec<String> = agent.get_json("/api/v1/events")["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "InvalidEnvironmentVariableNames")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        skipped,
        vec![format!("Keys [9lives] from the EnvFrom configMap default/{cm} were skipped since they are considered invalid environment variable names.")],
        "the prefixed copy (CM_9lives) is a valid name; the bare key is not"
    );
    assert_eq!(
        exec(&node, &app, "cat /c/greeting").as_deref(),
        Some("hello")
    );
    let uid = running["metadata"]["uid"].as_str().unwrap().to_string();
    remove_and_wait_clean(&agent, &format!("{name}.yaml"), &uid);
}

#[test]
fn the_downward_api_shows_the_pod_in_env_and_in_a_volume() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("dw");
    let env = "    resources: {limits: {memory: 64Mi}}\n    env:\n    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}\n    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}\n    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n    - {name: HOST, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}\n    - {name: TIER, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['tier']\"}}}\n    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}\n    - {name: CPUS, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n    - {name: ECHO, value: '$(NAME) in $(NS)'}\n    volumeMounts: [{name: info, mountPath: /info}, {name: all, mountPath: /all}]\n";
    write_atomic(
        &agent.manifests,
        &format!("{name}.yaml"),
        &pod_yaml(
            &name,
            "  labels: {tier: web, app: shop}\n  annotations: {note: 'two words'}\n",
            &[sh("app", "echo $NAME $NS $UID $NODE $HOST $TIER $MEM $CPUS; echo $ECHO; exec sleep 3600", env)],
            "  volumes:\n  - name: info\n    downwardAPI:\n      items:\n      - {path: labels, fieldRef: {fieldPath: metadata.labels}}\n      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}\n      - {path: meta/name, fieldRef: {fieldPath: metadata.name}}\n      - {path: mem, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}, mode: 0400}\n  - name: all\n    projected:\n      sources:\n      - downwardAPI: {items: [{path: pod/name, fieldRef: {fieldPath: metadata.name}}]}\n      - configMap: {name: absent, optional: true}\n",
        ),
    );
    let running = wait_running(&agent, &name);
    let uid = running["metadata"]["uid"].as_str().unwrap().to_string();
    let node_name = running["spec"]["nodeName"].as_str().unwrap().to_string();
    // The node's address as the agent chose it (the default route's interface here).
    let host_ip = running["status"]["hostIP"].as_str().unwrap().to_string();
    assert!(host_ip.parse::<std::net::IpAddr>().is_ok(), "{host_ip}");
    let cpus = std::thread::available_parallelism().unwrap().get();
    let app = format!("{name}/app");
    assert_eq!(
        logs(&node, &app),
        format!("{name} default {uid} {node_name} {host_ip} web 64 {cpus}\n{name} in default\n")
    );
    assert_eq!(
        exec(&node, &app, "cat /info/labels; echo; cat /info/annotations; echo; cat /info/meta/name; echo; cat /info/mem; echo; stat -L -c %a /info/mem").unwrap(),
        format!("app=\"shop\"\ntier=\"web\"\nnote=\"two words\"\n{name}\n64\n400\n")
    );
    assert_eq!(
        exec(
            &node,
            &app,
            "cat /all/pod/name; echo; grep ' /all ' /proc/mounts | cut -d' ' -f1-3"
        )
        .unwrap(),
        format!("{name}\ntmpfs /all tmpfs\n"),
        "a projected volume is written like the others, in memory"
    );
    remove_and_wait_clean(&agent, &format!("{name}.yaml"), &uid);
}

#[test]
fn validate_checks_config_maps_secrets_and_their_references_offline() {
    let node = Node::new();
    let good = node.dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!(
            "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{k: v}}\n",
            config_map("cfg", &[("a", "b")])
        ),
    )
    .unwrap();
    assert_eq!(
        node.ok(&["validate", good.to_str().unwrap()]),
        format!(
            "{0}: ConfigMap default/cfg ok\n{0}: Secret default/s ok\n",
            good.display()
        )
    );
    // A pod whose objects are not among the files: a warning naming them, not an error.
    let lonely = node.dir.path().join("lonely.yaml");
    std::fs::write(
        &lonely,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x:1\n    env: [{name: A, valueFrom: {configMapKeyRef: {name: cfg, key: nope}}}]\n  volumes: [{name: v, secret: {secretName: creds}}]\n",
    )
    .unwrap();
    let out = node.run(&["validate", good.to_str().unwrap(), lonely.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let hint = "(checked against the objects in the files given); the agent holds the container in CreateContainerConfigError until it exists";
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "warning: {0}: pod default/p: container c: couldn't find key nope in ConfigMap default/cfg {hint}\nwarning: {0}: pod default/p: volume v: secret \"creds\" not found {hint}\n",
            lonely.display()
        )
    );

    let bad = node.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "{}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: x:1}}]\n  volumes: [{{name: v, configMap: {{name: cfg, items: [{{key: a, path: /abs}}]}}}}]\n",
            config_map("cfg", &[("a", "b")])
        ),
    )
    .unwrap();
    let out = node.run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: {}: document 2: spec.volumes[0].configMap.items[0].path: \"/abs\" must be a relative path\n",
            bad.display()
        )
    );
}

#[test]
fn a_config_map_changed_while_the_agent_was_down_reaches_the_adopted_pod() {
    let node = busybox_node();
    let mut agent = Agent::start(&node, &[]);
    let name = unique("adopt");
    let cm = format!("{name}-cfg");
    write_atomic(
        &agent.manifests,
        &format!("{cm}.yaml"),
        &config_map(&cm, &[("v", "before")]),
    );
    write_atomic(
        &agent.manifests,
        &format!("{name}.yaml"),
        &pod_yaml(
            &name,
            "",
            &[sh(
                "app",
                "exec sleep 3600",
                "    volumeMounts: [{name: cfg, mountPath: /c}]\n",
            )],
            &format!("  volumes:\n  - name: cfg\n    configMap: {{name: {cm}}}\n"),
        ),
    );
    let running = wait_running(&agent, &name);
    let id = cstatus(&running, "app")["containerID"].clone();
    let app = format!("{name}/app");
    assert_eq!(exec(&node, &app, "cat /c/v").as_deref(), Some("before"));

    agent.signal(libc::SIGTERM); // pods keep running
    write_atomic(
        &agent.manifests,
        &format!("{cm}.yaml"),
        &config_map(&cm, &[("v", "after")]),
    );
    agent.restart();
    wait_for(&agent, "the adopted pod to see the new data", || {
        (exec(&node, &app, "cat /c/v").as_deref() == Some("after")).then_some(())
    });
    let now = wait_running(&agent, &name);
    assert_eq!(
        cstatus(&now, "app")["containerID"],
        id,
        "adopted, not restarted"
    );
    let uid = now["metadata"]["uid"].as_str().unwrap().to_string();
    remove_and_wait_clean(&agent, &format!("{name}.yaml"), &uid);
}

#[test]
fn layerlet_run_has_the_downward_api_but_refuses_objects_it_cannot_have() {
    let node = busybox_node();
    let name = unique("cli");
    let file = node.dir.path().join("cli.yaml");
    std::fs::write(
        &file,
        pod_yaml(
            &name,
            "  labels: {app: cli}\n",
            &[sh(
                "app",
                "echo $NAME; cat /info/labels",
                "    env: [{name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n    volumeMounts: [{name: info, mountPath: /info}, {name: opt, mountPath: /opt/cfg}]\n",
            )],
            "  restartPolicy: Never\n  volumes:\n  - name: info\n    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}\n  - name: opt\n    configMap: {name: nowhere, optional: true}\n",
        ),
    )
    .unwrap();
    assert_eq!(
        node.ok(&["run", "--rm", "-f", file.to_str().unwrap()]),
        format!("{name}\napp=\"cli\"")
    );

    let needy = node.dir.path().join("needy.yaml");
    std::fs::write(
        &needy,
        pod_yaml(
            &unique("needy"),
            "",
            &[sh(
                "app",
                "true",
                "    volumeMounts: [{name: c, mountPath: /c}]\n",
            )],
            "  volumes:\n  - name: c\n    configMap: {name: nowhere}\n",
        ),
    )
    .unwrap();
    let err = node.fails(&["run", "--rm", "-f", needy.to_str().unwrap()]);
    assert!(
        err.contains("`layerlet run` has no ConfigMaps or Secrets")
            && err.contains("configmap \"nowhere\" not found"),
        "{err}"
    );
    assert_eq!(node.ok(&["--output", "json", "ps", "-a"]).trim(), "[]");
    assert!(
        mounts_under(node.dir.path()).is_empty(),
        "nothing mounted is left"
    );
}

#[test]
fn new_labels_reach_a_downward_api_volume_in_place_and_env_stays_as_started() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("relabel");
    let file = format!("{name}.yaml");
    let env = "    env:\n    - {name: TIER, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['tier']\"}}}\n    volumeMounts: [{name: info, mountPath: /info}]\n";
    let manifest = |labels: &str| {
        pod_yaml(
            &name,
            &format!("  labels: {labels}\n"),
            &[sh("app", "exec sleep 3600", env)],
            "  volumes:\n  - name: info\n    downwardAPI:\n      items:\n      - {path: labels, fieldRef: {fieldPath: metadata.labels}}\n",
        )
    };
    write_atomic(&agent.manifests, &file, &manifest("{tier: web}"));
    let running = wait_running(&agent, &name);
    let uid = running["metadata"]["uid"].as_str().unwrap().to_string();
    let id = cstatus(&running, "app")["containerID"].clone();
    let app = format!("{name}/app");
    assert_eq!(
        exec(&node, &app, "cat /info/labels; echo; echo $TIER").unwrap(),
        "tier=\"web\"\nweb\n"
    );

    write_atomic(
        &agent.manifests,
        &file,
        &manifest("{tier: db, extra: 'yes'}"),
    );
    wait_for(&agent, "the new labels in the volume", || {
        exec(&node, &app, "cat /info/labels").filter(|l| l == "extra=\"yes\"\ntier=\"db\"")
    });
    let now = pod(&agent, &name).unwrap();
    assert_eq!(now["metadata"]["labels"]["tier"], "db");
    assert_eq!(
        cstatus(&now, "app")["containerID"],
        id,
        "a label change does not restart the container"
    );
    assert_eq!(cstatus(&now, "app")["restartCount"], 0);
    assert_eq!(
        exec(&node, &app, "echo $TIER").unwrap(),
        "web\n",
        "env is fixed when the container starts, as in Kubernetes"
    );
    remove_and_wait_clean(&agent, &file, &uid);
}
