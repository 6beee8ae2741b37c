//! The node agent through the real `layerlet` binary, as root: pod YAML written, changed and
//! removed in its manifest directory, the status it serves (`/api/v1/pods`,
//! `/api/v1/events`), what `ps`, `inspect`, `logs` and `exec` show of its pods, bad
//! manifests, restart policies, and restarts of the agent itself (adoption, SIGTERM,
//! `--shutdown-pods`, one agent per data root, pods of `layerlet run` left alone).
//!
//! Every agent runs under a [`common::Agent`] guard that kills it and removes every pod of
//! its node when the test ends, pass or fail. Nothing asserts on how long anything takes:
//! each wait polls with a generous deadline and stops as soon as the condition holds. To
//! show that the agent has *not* done something, a test waits for a later "probe" pod to
//! run: by then the agent has rescanned and reconciled after the change under test.
//!
//! Pod names carry a per-process suffix: a static pod's uid (hence its cgroup
//! `layerlet/<uid>`) comes from its namespace and name only, so two tests (or two test
//! binaries) must not use the same name at once.

mod common;
mod support;

use common::{
    alive, busybox_node, condition, container_status as cstatus, process_of, ps_all, ps_rows_of,
    quoted, unique,
};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Agent, HostMounts};
use serde_json::Value;
use support::{Compression, ImageSpec, LayerBuilder};

/// The busybox image every node imports (`imagePullPolicy: Never`: nothing is pulled).
const IMAGE: &str = "example.com/test/busybox:1";
/// Generous: every wait stops as soon as its condition holds.
const DEADLINE: Duration = Duration::from_secs(60);

/// [`Agent::wait_for`] with this suite's deadline.
fn wait_for<T>(agent: &Agent, what: &str, check: impl FnMut() -> Option<T>) -> T {
    agent.wait_for(what, DEADLINE, check)
}

fn pods(agent: &Agent) -> Vec<Value> {
    agent.pods()
}

fn pod(agent: &Agent, name: &str) -> Option<Value> {
    agent.pod(name)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// One entry of `spec.containers`: [`IMAGE`], pull policy Never, `command`, then
/// `extra` lines (already indented by four spaces).
fn container(name: &str, command: &[&str], extra: &str) -> String {
    let command: Vec<String> = command.iter().map(|c| quoted(c)).collect();
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [{}]\n{extra}",
        command.join(", ")
    )
}

/// A container running `sh -c script` (remember: in a pod command `$$` is a literal `$`).
fn sh(name: &str, script: &str) -> String {
    container(name, &["sh", "-c", script], "")
}

/// A container that sleeps for an hour. `sleep` as PID 1 ignores SIGTERM, so it stops at
/// the end of the grace period (1 s in these pods).
fn sleeper(name: &str, seconds: u32) -> String {
    container(name, &["sleep", &seconds.to_string()], "")
}

/// A Pod manifest with a 1 s grace period; `spec_extra` lines (indented by two spaces)
/// follow the containers.
fn pod_yaml(name: &str, restart_policy: &str, containers: &[String], spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n  restartPolicy: {restart_policy}\n  terminationGracePeriodSeconds: 1\n  containers:\n{}{spec_extra}",
        containers.concat()
    )
}

/// Writes `name` in `dir` as an editor does: a dotfile first, then a rename over the real
/// name, so the agent never reads a half-written file.
fn write_atomic(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.swp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Waits until the pod is Running with every container running and Ready; returns it.
fn wait_running(agent: &Agent, name: &str) -> Value {
    wait_for(agent, &format!("pod {name} to run"), || {
        pod(agent, name).filter(|p| {
            p["status"]["phase"] == "Running"
                && condition(p, "Ready") == "True"
                && p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()))
        })
    })
}

fn wait_gone(agent: &Agent, name: &str) {
    wait_for(agent, &format!("pod {name} to leave the status"), || {
        pod(agent, name).is_none().then_some(())
    })
}

/// The container ID in a containerStatuses entry, without its `layerlet://` scheme.
fn container_id(status: impl std::borrow::Borrow<Value>) -> String {
    let status = status.borrow();
    status["containerID"]
        .as_str()
        .and_then(|s| s.strip_prefix("layerlet://"))
        .unwrap_or_else(|| panic!("no layerlet:// containerID in {status}"))
        .to_string()
}

/// Writes a new probe pod and waits until it runs: by then the agent has rescanned the
/// directory and reconciled everything written before it.
fn probe(agent: &Agent) -> String {
    let name = unique("probe");
    write_atomic(
        &agent.manifests,
        &format!("{name}.yaml"),
        &pod_yaml(&name, "Always", &[sleeper("app", 3600)], ""),
    );
    wait_running(agent, &name);
    name
}

/// The items of `/api/v1/events`.
fn events(agent: &Agent) -> Vec<Value> {
    let list = agent.get_json("/api/v1/events");
    assert_eq!(list["kind"], "EventList", "{list}");
    list["items"].as_array().expect("items").clone()
}

/// `(reason, message)` of the events about `object` (a pod name, or a file name for
/// FailedValidation).
fn events_of(agent: &Agent, object: &str) -> Vec<(String, String)> {
    events(agent)
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == object)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Messages of the FailedValidation events.
fn validation_errors(agent: &Agent) -> Vec<String> {
    events(agent)
        .into_iter()
        .filter(|e| e["reason"] == "FailedValidation")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Mount points under `dir` in /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// The pod's cgroups that exist under /sys/fs/cgroup (any hierarchy).
fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path().join("layerlet").join(uid);
        if path.exists() {
            found.push(path);
        }
    }
    found
}

/// Waits until the node holds nothing of any pod: no container directories, no pod
/// directories, no mounts under the node's roots, no cgroups of the pods in `uids`.
fn wait_nothing_left(agent: &Agent, uids: &[String]) {
    wait_nothing_left_within(agent, uids, DEADLINE)
}

fn wait_nothing_left_within(agent: &Agent, uids: &[String], within: Duration) {
    let node = agent.node;
    let deadline = Instant::now() + within;
    let last = loop {
        let containers = node.entries("containers");
        let run_containers = common::list_dir(&node.run_root().join("containers"));
        let run_pods = common::list_dir(&node.run_root().join("pods"));
        let mounts = mounts_under(node.dir.path());
        let cgroups: Vec<PathBuf> = uids.iter().flat_map(|u| pod_cgroups(u)).collect();
        let ps = ps_all(node);
        if containers.is_empty()
            && run_containers.is_empty()
            && run_pods.is_empty()
            && mounts.is_empty()
            && cgroups.is_empty()
            && ps.is_empty()
        {
            return;
        }
        if Instant::now() > deadline {
            break format!(
                "ROOT/containers: {containers:?}\nRUN_ROOT/containers: {run_containers:?}\nRUN_ROOT/pods: {run_pods:?}\nmounts: {mounts:?}\ncgroups: {cgroups:?}\nps -a: {ps:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    panic!("left behind after {within:?}:\n{last}");
}

/// A hostPath volume `out` at /out, for files a container leaves for the test to read.
fn out_volume(dir: &Path) -> String {
    format!(
        "  volumes:\n  - name: out\n    hostPath: {{path: {}, type: Directory}}\n",
        dir.display()
    )
}

const OUT_MOUNT: &str = "    volumeMounts:\n    - {name: out, mountPath: /out}\n";

/// A container that logs `hello-TAG`, and on SIGTERM writes /out/term-TAG and exits 0.
fn graceful(tag: &str) -> String {
    container(
        "app",
        &[
            "sh",
            "-c",
            &format!(
                "echo hello-{tag}; trap 'echo term > /out/term-{tag}; exit 0' TERM; while true; do sleep 1; done"
            ),
        ],
        OUT_MOUNT,
    )
}

// ---------------------------------------------------------------------------------------
// 1. Manifests in, pods out, nothing left behind
// ---------------------------------------------------------------------------------------

#[test]
fn a_pod_file_written_changed_and_removed_runs_is_replaced_and_leaves_nothing_behind() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let out = node.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let name = unique("web");
    let file = agent.manifests.join("web.yaml");

    // Written: Running, in the status and in `ps`.
    // A long grace period: the trap runs once the loop's `sleep 1` ends, well within it.
    let web = |tag: &str| {
        pod_yaml(&name, "Always", &[graceful(tag)], &out_volume(&out)).replace(
            "terminationGracePeriodSeconds: 1",
            "terminationGracePeriodSeconds: 20",
        )
    };
    std::fs::write(&file, web("v1")).unwrap();
    let running = wait_running(&agent, &name);
    let uid = running["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(running["metadata"]["namespace"], "default");
    assert_eq!(
        running["spec"]["nodeName"].as_str().map(str::is_empty),
        Some(false)
    );
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(condition(&running, kind), "True", "{kind} in {running}");
    }
    let first = cstatus(&running, "app");
    assert_eq!(first["restartCount"], 0, "{first}");
    assert_eq!(first["ready"], true, "{first}");
    assert_eq!(first["image"], IMAGE, "{first}");
    let first_id = container_id(first);
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["id"], first_id.as_str());
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["container"], "app");

    // logs, exec and inspect work on the agent's pod.
    wait_for(&agent, "hello-v1 in the logs", || {
        node.ok(&["logs", &format!("{name}/app")])
            .lines()
            .any(|l| l == "hello-v1")
            .then_some(())
    });
    assert_eq!(
        node.ok(&[
            "exec",
            &format!("{name}/app"),
            "--",
            "/bin/busybox",
            "hostname"
        ])
        .trim(),
        name
    );
    let inspected = node.json(&["inspect", &format!("{name}/app")]);
    assert_eq!(inspected["Id"], first_id.as_str());
    assert_eq!(inspected["Owner"], "agent");
    let first_process = process_of(&node, &first_id);
    let events = events_of(&agent, &name);
    for reason in ["Created", "Started"] {
        assert!(
            events.iter().any(|(r, _)| r == reason),
            "no {reason} event in {events:?}"
        );
    }

    // The container's command changes: that container is replaced, gracefully. (Rewritten
    // atomically: a rewrite in place is briefly an empty file, see
    // a_manifest_file_truncated_to_empty_keeps_its_pods_running.)
    write_atomic(&agent.manifests, "web.yaml", &web("v2"));
    let replaced = wait_for(&agent, "the container to be replaced", || {
        pod(&agent, &name).filter(|p| {
            let c = cstatus(p, "app");
            c["state"]["running"].is_object() && container_id(c) != first_id
        })
    });
    let second = cstatus(&replaced, "app");
    assert_eq!(
        second["restartCount"], 0,
        "a replacement is a new container: {second}"
    );
    assert_eq!(
        replaced["metadata"]["uid"],
        uid.as_str(),
        "the pod itself stays"
    );
    let second_id = container_id(second);
    assert!(
        out.join("term-v1").exists(),
        "the old container was stopped with SIGTERM first"
    );
    assert!(!alive(first_process), "the old container's process is gone");
    assert!(
        !node.entries("containers").contains(&first_id),
        "the old writable layer is deleted: {:?}",
        node.entries("containers")
    );
    assert!(!node.run(&["inspect", &first_id]).status.success());
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["id"], second_id.as_str());
    wait_for(&agent, "hello-v2 in the logs", || {
        let text = node.ok(&["logs", &format!("{name}/app")]);
        (text.lines().any(|l| l == "hello-v2") && !text.contains("hello-v1")).then_some(())
    });
    let killing = events_of(&agent, &name);
    assert!(
        killing
            .iter()
            .any(|(r, m)| r == "Killing" && m.contains(&first_id[..12])),
        "no Killing event for the old container: {killing:?}"
    );

    // Removed: stopped within its grace period (SIGTERM honoured) and deleted.
    std::fs::remove_file(&file).unwrap();
    wait_gone(&agent, &name);
    assert!(
        out.join("term-v2").exists(),
        "the pod was stopped with SIGTERM before being deleted"
    );
    wait_nothing_left(&agent, &[uid]);
    let events = events_of(&agent, &name);
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Killing" && m.contains("Stopping pod")),
        "{events:?}"
    );
}

#[test]
fn a_file_with_two_pod_documents_runs_both_and_removing_it_removes_both() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let (a, b) = (unique("multi-a"), unique("multi-b"));
    let text = format!(
        "---\n{}---\n# a comment between documents\n{}",
        pod_yaml(&a, "Always", &[sleeper("app", 3600)], ""),
        pod_yaml(
            &b,
            "Always",
            &[sleeper("one", 3600), sleeper("two", 3601)],
            ""
        )
    );
    let file = agent.manifests.join("pair.yml");
    std::fs::write(&file, text).unwrap();
    let pa = wait_running(&agent, &a);
    let pb = wait_running(&agent, &b);
    assert_eq!(cstatus(&pb, "one")["restartCount"], 0);
    assert_eq!(cstatus(&pb, "two")["restartCount"], 0);
    assert_eq!(ps_rows_of(&node, &a).len(), 1);
    assert_eq!(ps_rows_of(&node, &b).len(), 2);
    let uids: Vec<String> = [&pa, &pb]
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(uids[0], uids[1]);

    std::fs::remove_file(&file).unwrap();
    wait_gone(&agent, &a);
    wait_gone(&agent, &b);
    wait_nothing_left(&agent, &uids);
}

#[test]
fn an_editor_style_write_then_rename_is_followed_and_dotfiles_are_not_read() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("edited");
    let dir = agent.manifests.clone();
    let swp = dir.join(".a.yaml.swp");

    // The swap file alone is not a manifest: a pod written after it runs, it does not.
    std::fs::write(&swp, pod_yaml(&name, "Always", &[sleeper("app", 3600)], "")).unwrap();
    let witness = probe(&agent);
    assert!(
        pod(&agent, &name).is_none(),
        "a dotfile was read as a manifest"
    );
    assert!(ps_rows_of(&node, &name).is_empty());

    // Renamed into place: the pod runs.
    std::fs::rename(&swp, dir.join("a.yaml")).unwrap();
    let first = container_id(cstatus(&wait_running(&agent, &name), "app"));

    // Edited the same way: the container is replaced.
    std::fs::write(&swp, pod_yaml(&name, "Always", &[sleeper("app", 3601)], "")).unwrap();
    std::fs::rename(&swp, dir.join("a.yaml")).unwrap();
    let replaced = wait_for(&agent, "the edited container to run", || {
        pod(&agent, &name).filter(|p| {
            let c = cstatus(p, "app");
            c["state"]["running"].is_object() && container_id(c) != first
        })
    });
    assert_eq!(cstatus(&replaced, "app")["restartCount"], 0);
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "the old container is gone: {rows:?}");
    let inspected = node.json(&["inspect", &format!("{name}/app")]);
    assert_eq!(
        inspected["Config"]["Args"],
        serde_json::json!(["sleep", "3601"])
    );

    // Renamed to another manifest name: same pod, same spec, nothing restarts.
    let id = container_id(cstatus(&replaced, "app"));
    std::fs::rename(dir.join("a.yaml"), dir.join("b.yml")).unwrap();
    probe(&agent);
    let after = wait_running(&agent, &name);
    assert_eq!(
        container_id(cstatus(&after, "app")),
        id,
        "a renamed file restarted its pod"
    );
    assert_eq!(cstatus(&after, "app")["restartCount"], 0);

    // Renamed away to a dotfile (as some editors do before writing): the pod goes.
    std::fs::rename(dir.join("b.yml"), &swp).unwrap();
    wait_gone(&agent, &name);
    assert!(ps_rows_of(&node, &name).is_empty());
    assert!(
        pod(&agent, &witness).is_some(),
        "the probe pod is unaffected"
    );
}

#[test]
fn a_manifest_file_truncated_to_empty_keeps_its_pods_running() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("trunc");
    let file = agent.manifests.join("trunc.yaml");
    let yaml = pod_yaml(&name, "Always", &[sleeper("app", 3600)], "");
    write_atomic(&agent.manifests, "trunc.yaml", &yaml);
    let id = container_id(cstatus(&wait_running(&agent, &name), "app"));

    // What `cat new.yaml > trunc.yaml` looks like before its write(2).
    std::fs::File::create(&file).unwrap();
    probe(&agent);
    let events = events_of(&agent, &name);
    assert!(
        events.iter().all(|(r, _)| r != "Killing"),
        "the pod is being stopped: {events:?}"
    );
    // The content arrives: still the same container.
    std::fs::write(&file, &yaml).unwrap();
    probe(&agent);
    let p = wait_running(&agent, &name);
    assert_eq!(
        container_id(cstatus(&p, "app")),
        id,
        "the pod was recreated"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Bad manifests
// ---------------------------------------------------------------------------------------

/// `(file name, content, error after "FILE: ")`: each file is refused as a whole with
/// exactly this error.
fn bad_manifests(suffix: &str) -> Vec<(String, String, String)> {
    let pod = |name: &str, containers: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}-{suffix}\nspec:\n  containers:\n{containers}")
    };
    let app = container("app", &["sleep", "3600"], "");
    vec![
        (
            "no-image.yaml".into(),
            pod("no-image", "  - name: app\n    command: [sleep, '3600']\n"),
            "document 1: spec.containers[0].image: required".into(),
        ),
        (
            // Refused when read, not later as a pull error.
            "bad-image.yaml".into(),
            pod("bad-image", "  - name: app\n    image: \"UPPER/Case::bad\"\n    command: [sleep, '3600']\n"),
            "document 1: spec.containers[0].image: invalid image reference \"UPPER/Case::bad\": repository names must be lowercase; expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]".into(),
        ),
        (
            "duplicate.yaml".into(),
            pod("duplicate", &format!("{app}{app}")),
            "document 1: spec.containers[1].name: duplicate name \"app\"".into(),
        ),
        (
            "unknown-field.yaml".into(),
            pod("unknown-field", &container("app", &["sleep", "3600"], "    imagePullPolicyy: Never\n")),
            "document 1: spec.containers[0].imagePullPolicyy: unknown field".into(),
        ),
        (
            "quantity.yaml".into(),
            pod(
                "quantity",
                &container("app", &["sleep", "3600"], "    resources:\n      limits: {cpu: 2cores}\n"),
            ),
            "document 1: spec.containers[0].resources.limits.cpu: invalid quantity \"2cores\": unknown suffix \"cores\"; expected cores or millicores, e.g. 2, 0.5, 500m".into(),
        ),
        (
            "deployment.yaml".into(),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{suffix}\nspec:\n  replicas: 2\n"),
            "document 1: kind: unsupported kind \"Deployment\"; a manifest may hold Pod, ConfigMap and Secret objects".into(),
        ),
        (
            // A good pod in document 1 does not save the file: it is refused as a whole.
            "second-document.yaml".into(),
            format!(
                "{}---\n{}",
                pod("first-doc", &app),
                pod("second-doc", "  - name: App_1\n    image: x\n")
            ),
            "document 2: spec.containers[0].name: invalid name \"App_1\": must be a DNS-1123 label (at most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit)".into(),
        ),
        (
            "syntax.yaml".into(),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n".into(),
            "document 1: invalid YAML: did not find expected ',' or ']' at line 5 column 1, while parsing a flow sequence at line 4 column 9".into(),
        ),
    ]
}

#[test]
fn a_second_pod_asking_for_a_host_port_in_use_is_refused_naming_both_until_the_first_goes() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let port = "    ports: [{containerPort: 80, hostPort: 18080}]\n";
    let (first, second) = (unique("holder"), unique("latecomer"));
    let app = |seconds| container("app", &["sleep", &format!("{seconds}")], port);
    write_atomic(
        &agent.manifests,
        "holder.yaml",
        &pod_yaml(&first, "Always", &[app(3600)], ""),
    );
    wait_running(&agent, &first);
    write_atomic(
        &agent.manifests,
        "latecomer.yaml",
        &pod_yaml(&second, "Always", &[app(3601)], ""),
    );
    let expected = format!(
        "{}: pod default/{second}: host port TCP 18080 is already taken by pod default/{first}; pick another hostPort or remove one of the two pods",
        agent.manifests.join("latecomer.yaml").display()
    );
    wait_for(&agent, "the host port refusal", || {
        validation_errors(&agent).contains(&expected).then_some(())
    });
    assert!(
        pod(&agent, &second).is_none(),
        "the second pod does not run"
    );
    assert_eq!(ps_rows_of(&node, &second).len(), 0);
    // Once the holder is gone, the port is free and the second pod starts.
    std::fs::remove_file(agent.manifests.join("holder.yaml")).unwrap();
    wait_running(&agent, &second);
}

#[test]
fn bad_manifests_are_refused_with_exact_errors_and_other_pods_run() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let suffix = unique("x");
    let corpus = bad_manifests(&suffix);
    for (file, content, _) in &corpus {
        write_atomic(&agent.manifests, file, content);
    }
    // Written after the bad files, so once it runs the agent has read them all.
    let good = unique("good");
    write_atomic(
        &agent.manifests,
        "good.yaml",
        &pod_yaml(&good, "Always", &[sleeper("app", 3600)], ""),
    );
    wait_running(&agent, &good);

    let errors = validation_errors(&agent);
    let mut expected_files = BTreeSet::new();
    for (file, _, expected) in &corpus {
        let path = agent.manifests.join(file);
        let exact = format!("{}: {expected}", path.display());
        let matching: Vec<&String> = errors
            .iter()
            .filter(|m| m.starts_with(&format!("{}: ", path.display())))
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "{file}: expected one FailedValidation event, got {matching:?}"
        );
        assert_eq!(matching[0], &exact, "{file}");
        expected_files.insert(file.clone());
        // The event is about the file.
        let about: Vec<(String, String)> = events_of(&agent, file);
        assert!(
            about.iter().any(|(r, _)| r == "FailedValidation"),
            "{file}: {about:?}"
        );
    }
    assert_eq!(errors.len(), corpus.len(), "unexpected errors: {errors:#?}");

    // Only the good pod exists: nothing of a refused file was started.
    let names: Vec<String> = pods(&agent)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec![good.clone()]);
    let ps_pods: BTreeSet<String> = ps_all(&node)
        .iter()
        .map(|r| r["pod"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ps_pods, BTreeSet::from([good.clone()]));
    let (_, metrics) = agent.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("layerlet_manifest_errors_total {}", corpus.len())),
        "{metrics}"
    );

    // `layerlet validate` gives the same errors offline, where it exists.
    let probe_validate = node.run(&["validate", "--help"]);
    if !probe_validate.status.success() {
        eprintln!("layerlet validate does not exist yet: skipping its part");
        return;
    }
    for (file, _, expected) in &corpus {
        let path = agent.manifests.join(file);
        let out = node.run(&["validate", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "validate {file}: {out:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("{}: {expected}", path.display())),
            "validate {file}: {text}"
        );
    }
    let out = node.run(&[
        "validate",
        agent.manifests.join("good.yaml").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "validate good.yaml: {out:?}");
}

#[test]
fn a_pod_whose_file_turns_invalid_keeps_running_on_its_last_good_spec() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("keep");
    let file = "keep.yaml";
    write_atomic(
        &agent.manifests,
        file,
        &pod_yaml(&name, "Always", &[sleeper("app", 3600)], ""),
    );
    let id = container_id(cstatus(&wait_running(&agent, &name), "app"));
    let process = process_of(&node, &id);

    // A changed command (which alone would replace the container) with an unknown field.
    let broken = pod_yaml(
        &name,
        "Always",
        &[container(
            "app",
            &["sleep", "3601"],
            "    imagePullPolicyy: Never\n",
        )],
        "",
    );
    write_atomic(&agent.manifests, file, &broken);
    let expected = format!(
        "{}: document 1: spec.containers[0].imagePullPolicyy: unknown field",
        agent.manifests.join(file).display()
    );
    wait_for(&agent, "the FailedValidation event", || {
        validation_errors(&agent).contains(&expected).then_some(())
    });
    probe(&agent);
    let now = wait_running(&agent, &name);
    let c = cstatus(&now, "app");
    assert_eq!(container_id(&c), id, "the container was not replaced");
    assert_eq!(c["restartCount"], 0);
    assert!(alive(process), "the container's process still runs");
    assert_eq!(ps_rows_of(&node, &name).len(), 1);

    // Fixed (with the new command): now it is replaced.
    write_atomic(
        &agent.manifests,
        file,
        &pod_yaml(&name, "Always", &[sleeper("app", 3601)], ""),
    );
    wait_for(&agent, "the fixed spec to replace the container", || {
        pod(&agent, &name).filter(|p| {
            let c = cstatus(p, "app");
            c["state"]["running"].is_object() && container_id(c) != id
        })
    });
    assert!(!alive(process));
}

// ---------------------------------------------------------------------------------------
// 3, 4. Restarts of the agent, one agent per data root
// ---------------------------------------------------------------------------------------

/// containerID, restartCount and process of every container of `names`, from the agent's
/// status and `inspect`.
fn snapshot(agent: &Agent, names: &[&str]) -> Vec<(String, String, u64, (i64, u64))> {
    let mut out = Vec::new();
    for name in names {
        let p = wait_running(agent, name);
        for c in p["status"]["containerStatuses"].as_array().unwrap() {
            let id = container_id(c);
            out.push((
                format!("{name}/{}", c["name"].as_str().unwrap()),
                id.clone(),
                c["restartCount"].as_u64().unwrap(),
                process_of(agent.node, &id),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn an_agent_killed_with_sigkill_and_restarted_adopts_its_pods_without_restarting_them() {
    let node = busybox_node();
    let mut agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let (a, b) = (unique("adopt-a"), unique("adopt-b"));
    write_atomic(
        &agent.manifests,
        "a.yaml",
        &pod_yaml(&a, "Always", &[sleeper("app", 3600)], ""),
    );
    write_atomic(
        &agent.manifests,
        "b.yaml",
        &pod_yaml(
            &b,
            "OnFailure",
            &[sleeper("one", 3600), sleeper("two", 3601)],
            "",
        ),
    );
    let before = snapshot(&agent, &[&a, &b]);
    assert_eq!(before.len(), 3);
    let dirs_before = node.entries("containers");
    assert_eq!(dirs_before.len(), 3, "{dirs_before:?}");

    let status = agent.signal(libc::SIGKILL);
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    for (name, _, _, process) in &before {
        assert!(alive(*process), "{name} died with the agent");
    }

    agent.restart();
    // A pod written after the restart runs: the new agent has reconciled the old ones.
    let witness = probe(&agent);
    let after = snapshot(&agent, &[&a, &b]);
    assert_eq!(
        after, before,
        "same containers, same processes, no restarts"
    );
    for (name, _, _, _) in &after {
        let rows: Vec<Value> = ps_all(&node)
            .into_iter()
            .filter(|r| {
                format!(
                    "{}/{}",
                    r["pod"].as_str().unwrap(),
                    r["container"].as_str().unwrap()
                ) == *name
            })
            .collect();
        assert_eq!(rows.len(), 1, "{name} is listed once: {rows:?}");
    }
    let mut dirs_after = node.entries("containers");
    let witness_id = container_id(cstatus(&pod(&agent, &witness).unwrap(), "app"));
    dirs_after.retain(|d| *d != witness_id);
    assert_eq!(
        dirs_after, dirs_before,
        "no container was created or deleted"
    );
    for pod_name in [&a, &b] {
        let events = events_of(&agent, pod_name);
        assert!(
            events
                .iter()
                .all(|(r, _)| !matches!(r.as_str(), "Created" | "Started" | "Killing")),
            "the new agent touched {pod_name}: {events:?}"
        );
    }
    let items = pods(&agent);
    assert_eq!(items.len(), 3, "no duplicate pods: {items:?}");
    // The new agent's base was made with the adopted pods' mounts in the host's namespace.
    assert_base_has_no_pod_mounts(&agent);
}

/// A two-container pod, written and running under `agent`; its snapshot.
fn two_sleepers(agent: &Agent, name: &str) -> Vec<(String, String, u64, (i64, u64))> {
    write_atomic(
        &agent.manifests,
        &format!("{name}.yaml"),
        &pod_yaml(
            name,
            "Always",
            &[sleeper("one", 3600), sleeper("two", 3601)],
            "",
        ),
    );
    snapshot(agent, &[name])
}

#[test]
fn sigterm_to_the_agent_leaves_its_pods_running_and_a_new_agent_adopts_them() {
    let node = busybox_node();
    let mut agent = Agent::start(&node, &[]);
    let name = unique("term");
    let before = two_sleepers(&agent, &name);

    // SIGTERM: the agent exits cleanly and its pods keep running, as with kubelet.
    let status = agent.signal(libc::SIGTERM);
    assert!(
        status.success(),
        "the agent exits 0 on SIGTERM: {status}\n{}",
        agent.log()
    );
    for (c, _, _, process) in &before {
        assert!(alive(*process), "{c} was stopped by the agent's SIGTERM");
    }
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["state"] == "running"), "{rows:?}");

    agent.restart();
    probe(&agent);
    assert_eq!(snapshot(&agent, &[&name]), before, "adopted as they were");
}

#[test]
fn sigterm_to_an_agent_with_shutdown_pods_stops_its_pods_gracefully() {
    let node = busybox_node();
    let mut agent = Agent::start(&node, &[]);
    let name = unique("shutdown");
    let before = two_sleepers(&agent, &name);
    // Pods an earlier agent started are stopped too: restart it with --shutdown-pods.
    assert!(agent.signal(libc::SIGTERM).success());
    agent.extra = vec!["--shutdown-pods".to_string()];
    agent.restart();
    probe(&agent);
    assert_eq!(snapshot(&agent, &[&name]), before, "adopted as they were");

    let status = agent.signal(libc::SIGTERM);
    assert!(status.success(), "{status}\n{}", agent.log());
    for (c, _, _, process) in &before {
        assert!(!alive(*process), "{c} still runs after --shutdown-pods");
    }
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 2, "stopped, not removed: {rows:?}");
    for r in &rows {
        assert_eq!(r["state"], "exited", "{r}");
        // sleep as PID 1 ignores SIGTERM: killed at the end of the 1 s grace period.
        assert_eq!(r["exit_code"], 137, "{r}");
    }
}

#[test]
fn an_agent_killed_while_creating_a_container_leaves_no_debris_once_restarted() {
    let node = busybox_node();
    let mut agent = Agent::start(&node, &[]);
    let name = unique("midway");
    let containers = node.root().join("containers");
    write_atomic(
        &agent.manifests,
        "midway.yaml",
        &pod_yaml(&name, "Always", &[sleeper("app", 3600)], ""),
    );
    // SIGKILL as soon as the first container directory appears: in the middle of creating
    // it (or, on a fast machine, just after; the outcome must be the same).
    let deadline = Instant::now() + DEADLINE;
    while !std::fs::read_dir(&containers).is_ok_and(|mut d| d.next().is_some()) {
        assert!(Instant::now() < deadline, "no container directory appeared");
        std::hint::spin_loop();
    }
    agent.signal(libc::SIGKILL);
    let seen_at_kill = node.entries("containers");

    agent.restart();
    let running = wait_running(&agent, &name);
    let uid = running["metadata"]["uid"].as_str().unwrap().to_string();
    let id = container_id(cstatus(&running, "app"));
    assert_eq!(cstatus(&running, "app")["restartCount"], 0);
    assert_eq!(ps_rows_of(&node, &name).len(), 1);

    // Removed: everything goes, including whatever the killed agent left half-made (a
    // periodic sweep may wait for debris to be some seconds old: allow two minutes).
    std::fs::remove_file(agent.manifests.join("midway.yaml")).unwrap();
    wait_gone(&agent, &name);
    eprintln!("at the kill: {seen_at_kill:?}; the pod's container: {id}");
    wait_nothing_left_within(&agent, &[uid], Duration::from_secs(120));
}

#[test]
fn containers_that_exit_while_the_agent_is_down_are_seen_when_it_returns() {
    let node = busybox_node();
    let mut agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let out = node.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let waiter = |code: u8| {
        container(
            "app",
            &[
                "sh",
                "-c",
                &format!("while [ ! -e /out/go ]; do sleep 1; done; exit {code}"),
            ],
            OUT_MOUNT,
        )
    };
    let (never, always) = (unique("down-never"), unique("down-always"));
    write_atomic(
        &agent.manifests,
        "never.yaml",
        &pod_yaml(&never, "Never", &[waiter(3)], &out_volume(&out)),
    );
    write_atomic(
        &agent.manifests,
        "always.yaml",
        &pod_yaml(&always, "Always", &[waiter(4)], &out_volume(&out)),
    );
    wait_running(&agent, &never);
    wait_running(&agent, &always);

    agent.signal(libc::SIGKILL);
    std::fs::write(out.join("go"), "").unwrap();
    // The monitors record the exits with no agent running.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let rows: Vec<Value> = ps_all(&node);
        let exited: BTreeSet<(String, i64)> = rows
            .iter()
            .filter(|r| r["state"] == "exited")
            .map(|r| {
                (
                    r["pod"].as_str().unwrap().to_string(),
                    r["exit_code"].as_i64().unwrap(),
                )
            })
            .collect();
        if exited == BTreeSet::from([(never.clone(), 3), (always.clone(), 4)]) {
            break;
        }
        assert!(Instant::now() < deadline, "{rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    agent.restart();
    let failed = wait_for(&agent, "the Never pod to be Failed", || {
        pod(&agent, &never).filter(|p| p["status"]["phase"] == "Failed")
    });
    let c = cstatus(&failed, "app");
    assert_eq!(c["state"]["terminated"]["exitCode"], 3, "{c}");
    assert_eq!(c["restartCount"], 0, "{c}");
    wait_for(&agent, "the Always pod to be restarted", || {
        pod(&agent, &always).filter(|p| {
            let c = cstatus(p, "app");
            c["restartCount"].as_u64().unwrap_or(0) >= 1
                && (c["lastState"]["terminated"]["exitCode"] == 4
                    || c["state"]["terminated"]["exitCode"] == 4)
        })
    });
}

#[test]
fn a_second_agent_on_the_same_data_root_is_refused() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let port = support::free_port();
    let mut second = node
        .cmd()
        .arg("agent")
        .arg("--manifests")
        .arg(node.dir.path().join("other-manifests"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second agent kept running");
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{status}: {stderr}");
    assert!(stderr.contains("another layerlet agent"), "{stderr}");
    assert!(
        stderr.contains(node.root().to_str().unwrap()),
        "names the data root: {stderr}"
    );
    // The first one is unaffected.
    assert_eq!(common::http_status(&agent.addr, "/healthz"), Some(200));
    let name = unique("still");
    write_atomic(
        &agent.manifests,
        "still.yaml",
        &pod_yaml(&name, "Always", &[sleeper("app", 3600)], ""),
    );
    wait_running(&agent, &name);
}

// ---------------------------------------------------------------------------------------
// 5. Restart policy, image not present
// ---------------------------------------------------------------------------------------

#[test]
fn a_failing_container_with_restart_policy_always_is_restarted_with_backoff() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("crash");
    write_atomic(
        &agent.manifests,
        "crash.yaml",
        &pod_yaml(&name, "Always", &[sh("app", "echo crashing; exit 1")], ""),
    );
    let p = wait_for(&agent, "two restarts and a CrashLoopBackOff", || {
        pod(&agent, &name).filter(|p| {
            let c = cstatus(p, "app");
            c["restartCount"].as_u64().unwrap_or(0) >= 2
                && c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
    });
    let c = cstatus(&p, "app");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1, "{c}");
    assert_eq!(c["ready"], false, "{c}");
    assert_eq!(condition(&p, "Ready"), "False");
    // Older instances are pruned: the current one and the one before it stay.
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0]["restarts"].as_u64().unwrap() >= 2, "{rows:?}");
    let dirs = node.entries("containers");
    assert!(dirs.len() <= 2, "old instances are deleted: {dirs:?}");
    assert_eq!(
        node.ok(&["logs", "--previous", &format!("{name}/app")])
            .trim(),
        "crashing"
    );
}

#[test]
fn a_failed_container_with_restart_policy_never_stays_terminated_and_the_pod_failed() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("never");
    write_atomic(
        &agent.manifests,
        "never.yaml",
        &pod_yaml(&name, "Never", &[sh("app", "echo bye; exit 1")], ""),
    );
    let failed = wait_for(&agent, "phase Failed", || {
        pod(&agent, &name).filter(|p| p["status"]["phase"] == "Failed")
    });
    let c = cstatus(&failed, "app");
    assert_eq!(c["state"]["terminated"]["exitCode"], 1, "{c}");
    assert_eq!(c["state"]["terminated"]["reason"], "Error", "{c}");
    let id = container_id(c);
    // Later rounds (a probe, and beyond the 1 s backoff) do not restart it.
    probe(&agent);
    std::thread::sleep(Duration::from_millis(1500));
    probe(&agent);
    let p = pod(&agent, &name).unwrap();
    let c = cstatus(&p, "app");
    assert_eq!(p["status"]["phase"], "Failed");
    assert_eq!(c["restartCount"], 0, "{c}");
    assert_eq!(container_id(c), id);
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "exited");
    assert_eq!(rows[0]["exit_code"], 1);
    assert_eq!(node.ok(&["logs", &format!("{name}/app")]).trim(), "bye");
}

#[test]
fn a_container_exiting_zero_with_restart_policy_on_failure_makes_the_pod_succeeded() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("done");
    write_atomic(
        &agent.manifests,
        "done.yaml",
        &pod_yaml(&name, "OnFailure", &[sh("app", "echo done; exit 0")], ""),
    );
    let p = wait_for(&agent, "phase Succeeded", || {
        pod(&agent, &name).filter(|p| p["status"]["phase"] == "Succeeded")
    });
    let c = cstatus(&p, "app");
    assert_eq!(c["state"]["terminated"]["exitCode"], 0, "{c}");
    assert_eq!(c["state"]["terminated"]["reason"], "Completed", "{c}");
    let id = container_id(c);
    std::thread::sleep(Duration::from_millis(1500));
    probe(&agent);
    let p = pod(&agent, &name).unwrap();
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(cstatus(&p, "app")["restartCount"], 0);
    assert_eq!(container_id(cstatus(&p, "app")), id);
}

#[test]
fn a_missing_image_with_pull_policy_never_waits_with_a_pull_error_and_an_event() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("noimage");
    let missing = "example.com/test/absent:1";
    let yaml = pod_yaml(&name, "Always", &[sleeper("app", 3600)], "").replace(IMAGE, missing);
    write_atomic(&agent.manifests, "noimage.yaml", &yaml);
    let p = wait_for(&agent, "a pull error", || {
        pod(&agent, &name)
            .filter(|p| cstatus(p, "app")["state"]["waiting"]["reason"].is_string())
            .filter(|p| cstatus(p, "app")["state"]["waiting"]["reason"] != "ContainerCreating")
    });
    let c = cstatus(&p, "app");
    let reason = c["state"]["waiting"]["reason"].as_str().unwrap();
    assert!(
        ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"].contains(&reason),
        "{c}"
    );
    assert!(
        c["state"]["waiting"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(missing),
        "the message names the image: {c}"
    );
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(c["state"]["running"].is_null());
    let warnings: Vec<Value> = events(&agent)
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == name.as_str() && e["type"] == "Warning")
        .collect();
    assert!(
        warnings.iter().any(|e| {
            let m = e["message"].as_str().unwrap_or_default();
            m.contains(missing) && m.contains("Never")
        }),
        "no Warning event naming the image and the policy: {warnings:?}"
    );
    assert!(
        ps_rows_of(&node, &name).is_empty(),
        "no container was created"
    );
    // The image arrives: the pod starts (no restart of the agent needed).
    let spec = ImageSpec {
        layers: vec![LayerBuilder::busybox_layer(Compression::None)],
        ..ImageSpec::busybox()
    };
    let layout = node.dir.path().join("layout-absent");
    support::write_oci_layout(&layout, &spec, missing);
    node.ok(&["image", "import", layout.to_str().unwrap()]);
    wait_running(&agent, &name);
}

// ---------------------------------------------------------------------------------------
// 6. Pods of `layerlet run`
// ---------------------------------------------------------------------------------------

#[test]
fn pods_started_with_layerlet_run_are_left_alone_by_the_agent() {
    let node = busybox_node();
    let run_d = |name: &str| {
        let file = node.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, pod_yaml(name, "Always", &[sleeper("app", 3600)], "")).unwrap();
        node.ok(&["run", "-d", "-f", file.to_str().unwrap()]);
        let rows = ps_rows_of(&node, name);
        assert_eq!(rows.len(), 1, "{rows:?}");
        process_of(&node, &format!("{name}/app"))
    };
    // One started before the agent, one while it runs.
    let early = unique("cli-early");
    let early_process = run_d(&early);
    let agent = Agent::start(&node, &[]);
    let late = unique("cli-late");
    let late_process = run_d(&late);

    let witness = probe(&agent);
    let names: Vec<String> = pods(&agent)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        vec![witness.clone()],
        "the agent reports only its own pods"
    );
    assert!(alive(early_process) && alive(late_process));

    // Removing the agent's pod touches nothing else.
    std::fs::remove_file(agent.manifests.join(format!("{witness}.yaml"))).unwrap();
    wait_gone(&agent, &witness);
    probe(&agent);
    assert!(alive(early_process) && alive(late_process));
    for name in [&early, &late] {
        let rows = ps_rows_of(&node, name);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["state"], "running");
        assert_eq!(rows[0]["restarts"], 0);
        assert_eq!(
            node.json(&["inspect", &format!("{name}/app")])["Owner"],
            "cli"
        );
        assert!(events_of(&agent, name).is_empty());
    }
}

#[test]
fn a_manifest_pod_named_like_a_cli_pod_is_reported_and_does_not_touch_the_cli_pod() {
    let node = busybox_node();
    let name = unique("clash");
    let file = node.dir.path().join("cli.yaml");
    std::fs::write(
        &file,
        pod_yaml(&name, "Always", &[sleeper("app", 3600)], ""),
    )
    .unwrap();
    node.ok(&["run", "-d", "-f", file.to_str().unwrap()]);
    let cli_process = process_of(&node, &format!("{name}/app"));
    let agent = Agent::start(&node, &[]);
    write_atomic(
        &agent.manifests,
        "clash.yaml",
        &pod_yaml(&name, "Always", &[sleeper("app", 3601)], ""),
    );
    wait_for(&agent, "the clash to be reported", || {
        events_of(&agent, &name)
            .iter()
            .any(|(r, m)| r == "FailedSync" && m.contains("already exists"))
            .then_some(())
    });
    probe(&agent);
    assert!(alive(cli_process), "the CLI pod was touched");
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "running");
    let inspected = node.json(&["inspect", &format!("{name}/app")]);
    assert_eq!(inspected["Owner"], "cli");
    assert_eq!(
        inspected["Config"]["Args"],
        serde_json::json!(["sleep", "3600"])
    );
    let p = pod(&agent, &name).expect("the manifest pod is in the status");
    assert_ne!(p["status"]["phase"], "Running", "{p}");
}

// ---------------------------------------------------------------------------------------
// 7. Pods that cannot be created
// ---------------------------------------------------------------------------------------

#[test]
fn a_pod_whose_host_path_is_missing_is_reported_and_runs_once_it_exists() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("nohost");
    let missing = node.dir.path().join("missing");
    write_atomic(
        &agent.manifests,
        "nohost.yaml",
        &pod_yaml(
            &name,
            "Always",
            &[container("app", &["sleep", "3600"], OUT_MOUNT)],
            &out_volume(&missing),
        ),
    );
    let expected = format!(
        "pod default/{name}: volume out: hostPath {}: does not exist (type Directory requires it)",
        missing.display()
    );
    wait_for(&agent, "the missing hostPath to be reported", || {
        events_of(&agent, &name)
            .iter()
            .any(|(r, m)| r == "FailedSync" && *m == expected)
            .then_some(())
    });
    let p = pod(&agent, &name).unwrap();
    assert_eq!(p["status"]["phase"], "Pending", "{p}");
    assert!(ps_rows_of(&node, &name).is_empty());
    std::fs::create_dir(&missing).unwrap();
    wait_running(&agent, &name);
}

/// The identical failure, counted over every event about `name`.
fn max_repeats(agent: &Agent, name: &str) -> (usize, usize) {
    let events = events_of(agent, name);
    let mut counts = std::collections::BTreeMap::new();
    for e in &events {
        *counts.entry(e.clone()).or_insert(0usize) += 1;
    }
    (counts.values().copied().max().unwrap_or(0), events.len())
}

#[test]
fn a_pod_that_keeps_failing_to_be_created_is_retried_with_backoff_and_reported_once() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("nohost");
    write_atomic(
        &agent.manifests,
        "nohost.yaml",
        &pod_yaml(
            &name,
            "Always",
            &[container("app", &["sleep", "3600"], OUT_MOUNT)],
            &out_volume(&node.dir.path().join("missing")),
        ),
    );
    wait_for(&agent, "the failure to be reported", || {
        (max_repeats(&agent, &name).0 > 0).then_some(())
    });
    let first = probe(&agent);
    std::thread::sleep(Duration::from_secs(3));
    probe(&agent);
    let (repeats, total) = max_repeats(&agent, &name);
    assert!(
        repeats <= 3,
        "the same failure was reported {repeats} times ({total} events about the pod)"
    );
    assert!(
        events_of(&agent, &first)
            .iter()
            .any(|(r, _)| r == "Started"),
        "older events were evicted"
    );
}

/// The mount base the agent holds open (see `runtime::process::mount_base`) has none of the
/// mounts under the node's directory, which the host's namespace has while pods run.
fn assert_base_has_no_pod_mounts(agent: &Agent) {
    let base = std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|fd| std::fs::read_link(fd).is_ok_and(|l| l.to_string_lossy().starts_with("mnt:[")))
        .expect("the agent holds its mount base open");
    let table = std::process::Command::new("nsenter")
        .arg(format!("--mount={}", base.display()))
        .args(["cat", "/proc/self/mountinfo"])
        .output()
        .unwrap();
    assert!(table.status.success(), "{table:?}");
    let in_base = String::from_utf8_lossy(&table.stdout).into_owned();
    let node_root = format!("{}/", agent.node.dir.path().display());
    assert!(!in_base.contains(&node_root), "{in_base}");
    assert!(!mounts_under(agent.node.dir.path()).is_empty());
}

/// The agent clones each container's mount namespace from its mount base and hands it the
/// host's mounts as copies: a HostToContainer volume is a slave of its host mount, so what
/// the host mounts below it later shows inside, while a volume without propagation stays
/// as it was when the container started.
#[test]
fn a_host_mount_made_after_start_reaches_a_host_to_container_volume_and_no_other() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let host = tempfile::tempdir().unwrap();
    let (follows, fixed) = (host.path().join("follows"), host.path().join("fixed"));
    for dir in [&follows, &fixed] {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
    }
    let mut mounts = HostMounts::default();
    mounts.share(&follows);
    mounts.share(&fixed);

    let name = unique("propagation");
    let script = "echo first-mount=$(head -n 1 /proc/self/mountinfo | cut -d ' ' -f 5); \
                  until [ -e /follows/sub/marker ]; do sleep 0.1; done; echo follows-seen; \
                  if [ -e /fixed/sub/marker ]; then echo fixed-seen; else echo fixed-unseen; fi; \
                  sleep 3600";
    let volume_mounts = "    volumeMounts:\n    - {name: follows, mountPath: /follows, mountPropagation: HostToContainer}\n    - {name: fixed, mountPath: /fixed}\n";
    let volumes = format!(
        "  volumes:\n  - name: follows\n    hostPath: {{path: {}, type: Directory}}\n  - name: fixed\n    hostPath: {{path: {}, type: Directory}}\n",
        follows.display(),
        fixed.display()
    );
    let app = container("app", &["sh", "-c", script], volume_mounts);
    write_atomic(
        &agent.manifests,
        &format!("{name}.yaml"),
        &pod_yaml(&name, "Always", &[app], &volumes),
    );
    wait_running(&agent, &name);

    assert_base_has_no_pod_mounts(&agent);

    for dir in [&follows, &fixed] {
        let sub = dir.join("sub");
        mounts.tmpfs(&sub);
        std::fs::write(sub.join("marker"), b"mounted after the container started").unwrap();
    }
    let logs = wait_for(&agent, "the container to look at both volumes", || {
        let logs = node.ok(&["logs", &format!("{name}/app")]);
        logs.contains("fixed-").then_some(logs)
    });
    assert!(logs.contains("follows-seen"), "{logs}");
    assert!(logs.contains("fixed-unseen"), "{logs}");
    assert!(!logs.contains("fixed-seen"), "{logs}");
    // Its rootfs is its oldest mount, listed first, as under runc.
    assert!(logs.lines().any(|l| l == "first-mount=/"), "{logs}");
}
