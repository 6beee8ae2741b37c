//! Pod resources and volumes through the real `layerlet` binary, as root, on this machine's
//! cgroup v1 hierarchies: memory limits and the OOM killer (with `layerlet run` and with the
//! agent), CPU quota and shares and pids.max as the kernel sees them, cgroups removed with
//! their pod; named volumes that outlive pods, emptyDir (on disk and tmpfs), hostPath type
//! checks, subPath and the symlink-swap attack (CVE-2021-25741), and the data-loss warning
//! for an image VOLUME nothing is mounted at.
//!
//! Every pod is removed by a guard (`layerlet rm -t 0`) when its test ends, pass or fail, so
//! no mount, process or cgroup outlives a test. Anything observed while it runs is polled
//! with a deadline; no assertion depends on how long anything takes.

mod common;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Node;
use serde_json::{json, Value};
use support::{Compression, ImageSpec, LayerBuilder};

/// The busybox image (`imagePullPolicy: Never`: nothing is pulled).
const IMAGE: &str = "example.com/test/busybox:1";
/// busybox with `VOLUME /var/lib/db`: a database image.
const DB_IMAGE: &str = "example.com/test/db:1";
/// Generous: polling stops as soon as the condition holds.
const DEADLINE: Duration = Duration::from_secs(30);
/// Where this machine mounts its cgroup hierarchies.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers layerlet puts every container in.
const CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "devices", "freezer"];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// [`ImageSpec::busybox`] with an uncompressed layer: gzip in a debug build costs seconds.
fn busybox_image() -> ImageSpec {
    ImageSpec {
        layers: vec![LayerBuilder::busybox_layer(Compression::None)],
        ..ImageSpec::busybox()
    }
}

fn db_image() -> ImageSpec {
    ImageSpec {
        volumes: vec!["/var/lib/db".into()],
        ..busybox_image()
    }
}

/// A fresh node with each `(reference, image)` imported from an OCI layout.
fn node_with_images(images: &[(&str, ImageSpec)]) -> Node {
    let node = Node::new();
    for (i, (reference, spec)) in images.iter().enumerate() {
        let layout = node.dir.path().join(format!("layout-{i}"));
        support::write_oci_layout(&layout, spec, reference);
        node.ok(&["image", "import", layout.to_str().unwrap()]);
    }
    node
}

fn busybox_node() -> Node {
    node_with_images(&[(IMAGE, busybox_image())])
}

/// A container of `image` running `sh -c script` (`$$` is a literal `$`).
fn sh_of(image: &str, name: &str, script: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["/bin/busybox", "sh", "-c", script],
    })
}

fn sh(name: &str, script: &str) -> Value {
    sh_of(IMAGE, name, script)
}

/// `container` with `key: value` set (resources, volumeMounts, env, ...).
fn with(mut container: Value, key: &str, value: Value) -> Value {
    container[key] = value;
    container
}

/// A uid of its own for every pod: a static pod's uid derives from its namespace and name
/// only, and the cgroup path from the uid, so pods of the same name on other data roots of
/// this machine (other tests running at the same time) would share cgroup directories.
fn unique_uid(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "rv-{name}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Pod manifest (JSON is YAML) with `restartPolicy: Never`, a short grace period and a
/// unique uid.
fn manifest(name: &str, containers: Vec<Value>, volumes: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "uid": unique_uid(name) },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": containers,
            "volumes": volumes,
        },
    })
}

/// A pod written to a file of the node's scratch directory; `layerlet rm -t 0` runs on drop,
/// so the pod's processes, mounts, cgroups and directories go even when the test fails.
struct Pod<'n> {
    node: &'n Node,
    name: String,
    uid: String,
    file: PathBuf,
}

impl<'n> Pod<'n> {
    fn new(node: &'n Node, manifest: &Value) -> Pod<'n> {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("manifest has a name")
            .to_string();
        // Empty when the manifest leaves the uid to layerlet.
        let uid = manifest["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let file = node.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
        Pod {
            node,
            name,
            uid,
            file,
        }
    }

    /// `layerlet run -f FILE EXTRA...`, whatever its exit code.
    fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec!["run", "-f", self.file.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.node.run(&args)
    }

    /// `layerlet run -d`: insists it succeeds.
    fn start(&self) {
        let out = self.run(&["-d"]);
        assert!(
            out.status.success(),
            "run -d {}: {}",
            self.name,
            describe(&out)
        );
    }

    /// `layerlet run` in the foreground: insists the pod succeeds; returns its output.
    fn run_ok(&self) -> Output {
        let out = self.run(&[]);
        assert!(
            out.status.success(),
            "run {}: {}",
            self.name,
            describe(&out)
        );
        out
    }

    /// `layerlet rm -t 0 POD`: insists it succeeds.
    fn rm(&self) {
        self.node.ok(&["rm", "-t", "0", &self.name]);
    }

    /// `POD/CONTAINER`.
    fn c(&self, container: &str) -> String {
        format!("{}/{}", self.name, container)
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        let _ = self.node.run(&["rm", "-t", "0", &self.name]);
    }
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `check` until it returns Some, or panics naming `what` after [`DEADLINE`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn inspect(node: &Node, name: &str) -> Value {
    node.json(&["inspect", name])
}

fn ps_row(node: &Node, pod: &str, container: &str) -> Option<Value> {
    node.json(&["ps", "-a"])
        .as_array()
        .expect("ps prints an array")
        .iter()
        .find(|r| r["pod"] == pod && r["container"] == container)
        .cloned()
}

fn wait_state(node: &Node, pod: &str, container: &str, state: &str) -> Value {
    wait_for(&format!("{pod}/{container} to be {state}"), || {
        ps_row(node, pod, container).filter(|r| r["state"] == state)
    })
}

/// The pod's cgroup relative to a hierarchy: `layerlet/<data root id>/<pod uid>` (found by
/// looking, so the test does not depend on how the data root id is made).
fn pod_cgroup_rel(pod_uid: &str) -> PathBuf {
    for controller in ["memory", "cpu", "pids", "devices"] {
        let base = Path::new(CGROUP_ROOT).join(controller).join("layerlet");
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            if entry.path().join(pod_uid).is_dir() {
                return Path::new("layerlet").join(entry.file_name()).join(pod_uid);
            }
        }
    }
    Path::new("layerlet").join("unknown-root").join(pod_uid)
}

/// `/sys/fs/cgroup/CONTROLLER/layerlet/<data root id>/<pod uid>[/<container id>]`.
fn cgroup_dir(controller: &str, pod_uid: &str, container_id: Option<&str>) -> PathBuf {
    let mut p = Path::new(CGROUP_ROOT)
        .join(controller)
        .join(pod_cgroup_rel(pod_uid));
    if let Some(id) = container_id {
        p.push(id);
    }
    p
}

/// Every `layerlet/*/<pod uid>` directory under any hierarchy of /sys/fs/cgroup.
fn pod_cgroups_anywhere(pod_uid: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for hierarchy in std::fs::read_dir(CGROUP_ROOT)
        .expect("read /sys/fs/cgroup")
        .flatten()
    {
        for root in std::fs::read_dir(hierarchy.path().join("layerlet"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = root.path().join(pod_uid);
            if p.exists() {
                found.push(p);
            }
        }
    }
    found
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Mount points of this (the host's) mount namespace at or under `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

/// `layerlet volume ls --output json`.
fn volumes(node: &Node) -> Vec<Value> {
    node.json(&["volume", "ls"])
        .as_array()
        .expect("volume ls prints an array")
        .clone()
}

/// A host directory of the node's scratch space holding a `marker` file only the host has.
fn host_marker_dir(node: &Node) -> (PathBuf, String) {
    let dir = node.dir.path().join("host-secret");
    std::fs::create_dir_all(&dir).unwrap();
    let marker = format!("HOST-ONLY-{}", std::process::id());
    std::fs::write(dir.join("marker"), &marker).unwrap();
    (dir, marker)
}

/// A spawned process killed (SIGTERM, then SIGKILL) and reaped when the test ends.
struct ChildGuard(Child);

impl ChildGuard {
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `layerlet agent` on a manifest directory of the node's scratch space.
struct Agent {
    child: ChildGuard,
    addr: String,
    manifests: PathBuf,
    log: PathBuf,
}

impl Agent {
    fn start_with(node: &Node, extra: &[&str]) -> Agent {
        let manifests = node.dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        let addr = format!("127.0.0.1:{}", support::free_port());
        let log = node.dir.path().join("agent.log");
        let child = node
            .cmd()
            .args(["agent", "--manifests"])
            .arg(&manifests)
            .args(["--listen", &addr])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(node.dir.path().join("agent.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn layerlet agent");
        let mut agent = Agent {
            child: ChildGuard(child),
            addr,
            manifests,
            log,
        };
        wait_for("the agent to be ready", || {
            if let Ok(Some(status)) = agent.child.0.try_wait() {
                panic!("the agent exited ({status}): {}", agent.log_text());
            }
            support::http::get(&agent.addr, "/readyz", &[])
                .ok()
                .filter(|r| r.status == 200)
        });
        agent
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pods(&self) -> Value {
        let r = support::http::get(&self.addr, "/api/v1/pods", &[]).expect("GET /api/v1/pods");
        assert_eq!(r.status, 200, "GET /api/v1/pods");
        serde_json::from_slice(&r.body).expect("/api/v1/pods is JSON")
    }

    fn pod(&self, name: &str) -> Option<Value> {
        self.pods()["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["name"] == name)
            .cloned()
    }
}

// ---------------------------------------------------------------------------------------
// Memory limits and the OOM killer
// ---------------------------------------------------------------------------------------

/// PID 1 of the container allocates (and touches) 64 MiB: dd reads /dev/zero into one buffer.
fn memory_hog(name: &str) -> Value {
    json!({
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "command": ["/bin/busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        "resources": { "limits": { "memory": "32Mi" } },
    })
}

#[test]
fn a_container_allocating_past_its_memory_limit_is_oom_killed_without_an_agent() {
    let node = busybox_node();
    let pod = Pod::new(&node, &manifest("hog", vec![memory_hog("hog")], json!([])));
    let out = pod.run(&[]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "run exits with the OOM-killed container's code: {}",
        describe(&out)
    );
    let c = inspect(&node, &pod.c("hog"));
    assert_eq!(c["State"]["Reason"], "OOMKilled", "{c:#}");
    assert_eq!(c["State"]["ExitCode"], 137, "{c:#}");
    let row = ps_row(&node, "hog", "hog").expect("ps row");
    assert_eq!(row["exit_code"], 137, "{row}");
    // The kernel's own record: the container's memory cgroup counted the kill.
    let uid = c["PodUID"].as_str().unwrap();
    let id = c["Id"].as_str().unwrap();
    let oom = read_trim(&cgroup_dir("memory", uid, Some(id)).join("memory.oom_control"));
    assert!(
        oom.lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "memory.oom_control: {oom}"
    );
    pod.rm();
    assert!(pod_cgroups_anywhere(uid).is_empty());
}

#[test]
fn removing_a_pod_removes_leftover_container_cgroups_and_kills_what_is_in_them() {
    // A data root deleted without `layerlet rm` (or a crash that lost the records) leaves
    // container cgroups under the pod's cgroup, whose path depends only on the data root's
    // path and the pod's uid: the next pod there must still be removable.
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("stale", vec![sh("main", "true")], json!([])),
    );
    pod.start();
    let uid = pod.uid.clone();
    wait_state(&node, "stale", "main", "exited");
    let pod_dir = cgroup_dir("memory", &uid, None);
    let empty = pod_dir.join("old-container-empty");
    let busy = pod_dir.join("old-container-busy");
    std::fs::create_dir_all(empty.join("nested")).unwrap();
    std::fs::create_dir(&busy).unwrap();
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    std::fs::write(busy.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let out = node.run(&["rm", "-t", "0", "stale"]);
    assert!(out.status.success(), "rm: {}", describe(&out));
    assert!(
        stderr(&out).contains("old-container-busy"),
        "rm says what it cleaned: {}",
        describe(&out)
    );
    assert!(
        pod_cgroups_anywhere(&uid).is_empty(),
        "{:?}",
        pod_cgroups_anywhere(&uid)
    );
    let status = sleeper.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
}

#[test]
fn exit_code_137_without_an_oom_kill_is_an_error_not_oom_killed() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "not-oom",
            vec![
                with(
                    sh("exits", "exit 137"),
                    "resources",
                    json!({"limits": {"memory": "32Mi"}}),
                ),
                with(
                    sh(
                        "small",
                        "/bin/busybox dd if=/dev/zero of=/dev/null bs=4M count=1",
                    ),
                    "resources",
                    json!({"limits": {"memory": "32Mi"}}),
                ),
            ],
            json!([]),
        ),
    );
    let out = pod.run(&[]);
    assert_eq!(out.status.code(), Some(137), "{}", describe(&out));
    let c = inspect(&node, &pod.c("exits"));
    assert_eq!(
        (c["State"]["ExitCode"].clone(), c["State"]["Reason"].clone()),
        (json!(137), json!("Error")),
        "{c:#}"
    );
    let c = inspect(&node, &pod.c("small"));
    assert_eq!(
        (c["State"]["ExitCode"].clone(), c["State"]["Reason"].clone()),
        (json!(0), json!("Completed")),
        "a container under its limit: {c:#}"
    );
}

#[test]
fn a_container_allocating_past_its_memory_limit_is_reported_oom_killed_by_the_agent() {
    let node = busybox_node();
    let never = manifest("hog-agent", vec![memory_hog("hog")], json!([]));
    let mut on_failure = manifest("hog-again", vec![memory_hog("hog")], json!([]));
    on_failure["spec"]["restartPolicy"] = json!("OnFailure");
    // Guards declared before the agent are dropped after it: should anything below fail,
    // the agent stops its pods first (--shutdown-pods), then the CLI removes them.
    let _guards = [Pod::new(&node, &never), Pod::new(&node, &on_failure)];
    let agent = Agent::start_with(&node, &["--shutdown-pods", "--backoff-seconds", "1"]);
    for m in [&never, &on_failure] {
        let name = m["metadata"]["name"].as_str().unwrap();
        std::fs::write(
            agent.manifests.join(format!("{name}.yaml")),
            serde_json::to_vec_pretty(m).unwrap(),
        )
        .unwrap();
    }
    let hog_status = |pod: &str| {
        let pod = agent.pod(pod)?;
        let s = pod["status"]["containerStatuses"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "hog")?
            .clone();
        Some((pod, s))
    };

    // restartPolicy Never: terminated, OOMKilled, 137; the pod failed.
    let (pod, s) = wait_for("the agent to report hog-agent/hog terminated", || {
        hog_status("hog-agent").filter(|(_, s)| s["state"].get("terminated").is_some())
    });
    assert_eq!(s["state"]["terminated"]["reason"], "OOMKilled", "{s:#}");
    assert_eq!(s["state"]["terminated"]["exitCode"], 137, "{s:#}");
    assert_eq!(s["restartCount"], 0, "restartPolicy Never: {s:#}");
    assert_eq!(pod["status"]["phase"], "Failed", "{:#}", pod["status"]);
    let c = inspect(&node, "hog-agent/hog");
    assert_eq!(c["State"]["Reason"], "OOMKilled", "{c:#}");
    let uid = c["PodUID"].as_str().unwrap().to_string();
    assert_eq!(uid, never["metadata"]["uid"].as_str().unwrap());

    // restartPolicy OnFailure: restarted, and the previous instance is remembered as
    // OOMKilled (kubectl's "Last State: Terminated, Reason: OOMKilled").
    let (_, s) = wait_for("hog-again/hog to be restarted after its OOM kill", || {
        hog_status("hog-again").filter(|(_, s)| {
            s["restartCount"].as_u64() >= Some(1) && s["lastState"].get("terminated").is_some()
        })
    });
    assert_eq!(s["lastState"]["terminated"]["reason"], "OOMKilled", "{s:#}");
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 137, "{s:#}");
    let again_uid = on_failure["metadata"]["uid"].as_str().unwrap().to_string();

    // Removing the manifests removes the pods, and their cgroups with them.
    for name in ["hog-agent", "hog-again"] {
        std::fs::remove_file(agent.manifests.join(format!("{name}.yaml"))).unwrap();
    }
    wait_for("the agent to delete its pods", || {
        (ps_row(&node, "hog-agent", "hog").is_none() && ps_row(&node, "hog-again", "hog").is_none())
            .then_some(())
    });
    for uid in [&uid, &again_uid] {
        wait_for("the pods' cgroups to go", || {
            pod_cgroups_anywhere(uid).is_empty().then_some(())
        });
    }
    drop(agent);
}

// ---------------------------------------------------------------------------------------
// CPU, memory and pids limits in the cgroup files; cgroups removed with the pod
// ---------------------------------------------------------------------------------------

#[test]
fn cpu_quota_shares_memory_and_pids_limits_are_in_the_containers_v1_cgroup_files() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "limits",
            vec![
                with(
                    sh("limited", "exec /bin/busybox sleep 1000"),
                    "resources",
                    json!({
                        "limits": { "cpu": "500m", "memory": "64Mi" },
                        "requests": { "cpu": "250m", "memory": "32Mi" },
                    }),
                ),
                sh("besteffort", "exec /bin/busybox sleep 1000"),
                // Requests default to limits, as the API server's defaulting does.
                with(
                    sh("limit-only", "exec /bin/busybox sleep 1000"),
                    "resources",
                    json!({ "limits": { "cpu": "1500m", "memory": "16Mi" } }),
                ),
            ],
            json!([]),
        ),
    );
    pod.start();
    wait_state(&node, "limits", "limited", "running");
    wait_state(&node, "limits", "besteffort", "running");
    wait_state(&node, "limits", "limit-only", "running");

    let c = inspect(&node, &pod.c("limited"));
    let uid = c["PodUID"].as_str().unwrap();
    let id = c["Id"].as_str().unwrap();
    let cpu = cgroup_dir("cpu", uid, Some(id));
    assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read_trim(&cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read_trim(&cpu.join("cpu.shares")), "256");
    let memory = cgroup_dir("memory", uid, Some(id));
    assert_eq!(
        read_trim(&memory.join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    let pids = cgroup_dir("pids", uid, Some(id));
    assert_eq!(read_trim(&pids.join("pids.max")), "4096");
    // The limits bind the container's process: it is in those cgroups.
    let pid = c["State"]["Pid"]
        .as_i64()
        .expect("a running container has a Pid");
    let membership = read_trim(Path::new(&format!("/proc/{pid}/cgroup")));
    let expected = format!("/{}/{id}", pod_cgroup_rel(uid).display());
    for controller in ["memory", "cpu", "pids"] {
        assert!(
            membership.lines().any(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, path) = (parts.next(), parts.next(), parts.next());
                ctrls.is_some_and(|c| c.split(',').any(|c| c == controller))
                    && path == Some(expected.as_str())
            }),
            "pid {pid} is not in {controller}:{expected}:\n{membership}"
        );
    }
    assert!(
        read_trim(&pids.join("pids.current"))
            .parse::<u64>()
            .unwrap()
            >= 1,
        "pids.current counts the container's process"
    );

    // No resources: kubelet's BestEffort values (shares 2, no quota, no memory limit), and
    // the node's pids default all the same.
    let b = inspect(&node, &pod.c("besteffort"));
    let bid = b["Id"].as_str().unwrap();
    let cpu = cgroup_dir("cpu", uid, Some(bid));
    assert_eq!(read_trim(&cpu.join("cpu.shares")), "2");
    assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "-1");
    let unlimited: u64 =
        read_trim(&cgroup_dir("memory", uid, Some(bid)).join("memory.limit_in_bytes"))
            .parse()
            .unwrap();
    assert!(unlimited > 1 << 40, "no memory limit: {unlimited}");
    assert_eq!(
        read_trim(&cgroup_dir("pids", uid, Some(bid)).join("pids.max")),
        "4096"
    );

    let l = inspect(&node, &pod.c("limit-only"));
    let lid = l["Id"].as_str().unwrap();
    let cpu = cgroup_dir("cpu", uid, Some(lid));
    assert_eq!(read_trim(&cpu.join("cpu.cfs_quota_us")), "150000");
    assert_eq!(read_trim(&cpu.join("cpu.shares")), "1536");
    assert_eq!(
        read_trim(&cgroup_dir("memory", uid, Some(lid)).join("memory.limit_in_bytes")),
        (16u64 << 20).to_string()
    );
}

#[test]
fn a_pods_cgroups_are_gone_after_rm() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "cg",
            vec![
                sh("a", "exec /bin/busybox sleep 1000"),
                // A child process too: it must not keep the cgroup busy.
                sh(
                    "b",
                    "/bin/busybox sleep 1000 & exec /bin/busybox sleep 1000",
                ),
            ],
            json!([]),
        ),
    );
    pod.start();
    wait_state(&node, "cg", "a", "running");
    wait_state(&node, "cg", "b", "running");
    let uid = inspect(&node, &pod.c("a"))["PodUID"]
        .as_str()
        .unwrap()
        .to_string();
    for name in ["a", "b"] {
        let id = inspect(&node, &pod.c(name))["Id"]
            .as_str()
            .unwrap()
            .to_string();
        for controller in CONTROLLERS {
            let dir = cgroup_dir(controller, &uid, Some(&id));
            assert!(dir.is_dir(), "{} should exist while cg runs", dir.display());
        }
    }
    pod.rm();
    let left = pod_cgroups_anywhere(&uid);
    assert!(left.is_empty(), "cgroups left after rm: {left:?}");
    assert!(ps_row(&node, "cg", "a").is_none());
}

#[test]
fn a_pod_refused_half_way_leaves_no_cgroup_after_rm() {
    let node = busybox_node();
    // The init container plants a link; the first app container starts; the second, whose
    // subPath goes through the link, is refused at create time.
    let mut m = manifest(
        "half",
        vec![
            sh("first", "exec /bin/busybox sleep 1000"),
            with(
                sh("second", "true"),
                "volumeMounts",
                json!([{"name": "v", "mountPath": "/v", "subPath": "link"}]),
            ),
        ],
        json!([{"name": "v", "emptyDir": {}}]),
    );
    m["spec"]["initContainers"] = json!([with(
        sh("plant", "/bin/busybox ln -s /etc /vol/link"),
        "volumeMounts",
        json!([mount("v", "/vol")]),
    )]);
    let pod = Pod::new(&node, &m);
    let out = pod.run(&["-d"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("symlink"), "{}", describe(&out));
    // The first container was created (and its cgroup with it) before the second was refused.
    let first = inspect(&node, &pod.c("first"));
    let id = first["Id"].as_str().unwrap();
    assert_eq!(first["PodUID"], pod.uid.as_str());
    assert!(
        cgroup_dir("memory", &pod.uid, Some(id)).is_dir(),
        "{first:#}\n{}",
        describe(&out)
    );
    assert!(pod_cgroups_anywhere(&pod.uid).len() >= CONTROLLERS.len());
    pod.rm();
    let left = pod_cgroups_anywhere(&pod.uid);
    assert!(left.is_empty(), "cgroups left after rm: {left:?}");
    assert!(
        node.entries("pods").is_empty(),
        "{:?}",
        node.entries("pods")
    );
}

#[test]
fn a_pod_run_with_rm_leaves_no_cgroup() {
    let node = busybox_node();
    // The container waits for the test's go-ahead, so its cgroups can be seen first.
    let gate = node.dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let pod = Pod::new(
        &node,
        &manifest(
            "rm-me",
            vec![with(
                sh(
                    "c",
                    "while [ ! -e /gate/go ]; do /bin/busybox usleep 10000; done; echo done",
                ),
                "volumeMounts",
                json!([mount("gate", "/gate")]),
            )],
            json!([{"name": "gate", "hostPath": {"path": gate, "type": "Directory"}}]),
        ),
    );
    let child = node
        .cmd()
        .args(["run", "--rm", "-f", pod.file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn layerlet run --rm");
    let mut guard = ChildGuard(child);
    wait_state(&node, "rm-me", "c", "running");
    let id = inspect(&node, &pod.c("c"))["Id"]
        .as_str()
        .unwrap()
        .to_string();
    for controller in CONTROLLERS {
        assert!(cgroup_dir(controller, &pod.uid, Some(&id)).is_dir());
    }
    std::fs::write(gate.join("go"), "").unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "run --rm did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(guard.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "run --rm: {status}");
    assert_eq!(out, "done\n");
    assert!(ps_row(&node, "rm-me", "c").is_none());
    let left = pod_cgroups_anywhere(&pod.uid);
    assert!(left.is_empty(), "{left:?}");
}

// ---------------------------------------------------------------------------------------
// Named volumes
// ---------------------------------------------------------------------------------------

fn claim(volume: &str, claim_name: &str) -> Value {
    json!({"name": volume, "persistentVolumeClaim": {"claimName": claim_name}})
}

fn mount(volume: &str, path: &str) -> Value {
    json!({"name": volume, "mountPath": path})
}

#[test]
fn a_file_written_to_a_named_volume_is_read_by_the_next_pod_after_the_first_is_deleted() {
    let node = busybox_node();
    let writer = Pod::new(
        &node,
        &manifest(
            "writer",
            vec![with(
                sh("w", "echo kept-across-pods > /data/row && echo wrote"),
                "volumeMounts",
                json!([mount("store", "/data")]),
            )],
            json!([claim("store", "db-data")]),
        ),
    );
    writer.run_ok();
    let listed = volumes(&node);
    let v = listed
        .iter()
        .find(|v| v["name"] == "db-data")
        .unwrap_or_else(|| panic!("volume ls lists db-data: {listed:?}"));
    assert_eq!(v["used_by"], json!(["default/writer"]), "{v}");
    writer.rm();

    let listed = volumes(&node);
    let v = listed
        .iter()
        .find(|v| v["name"] == "db-data")
        .unwrap_or_else(|| panic!("db-data outlives its pod: {listed:?}"));
    assert_eq!(v["used_by"], json!([]), "{v}");
    assert!(
        v["bytes"].as_u64().unwrap() >= "kept-across-pods\n".len() as u64,
        "{v}"
    );
    let path = PathBuf::from(v["path"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(path.join("row")).unwrap(),
        "kept-across-pods\n"
    );

    let reader = Pod::new(
        &node,
        &manifest(
            "reader",
            vec![with(
                sh("r", "cat /var/lib/app/row"),
                "volumeMounts",
                json!([mount("v", "/var/lib/app")]),
            )],
            json!([claim("v", "db-data")]),
        ),
    );
    let out = reader.run_ok();
    assert_eq!(stdout(&out), "kept-across-pods\n", "{}", describe(&out));

    // In use (the pod exists, even exited): refused, and the data is still there.
    let err = node.fails(&["volume", "rm", "db-data"]);
    assert!(
        err.contains("db-data") && err.contains("default/reader"),
        "volume rm names the volume and the pod using it: {err}"
    );
    assert!(path.join("row").is_file());
    let shown = node.json(&["volume", "inspect", "db-data"]);
    assert_eq!(shown["used_by"], json!(["default/reader"]), "{shown}");

    reader.rm();
    node.ok(&["volume", "rm", "db-data"]);
    assert!(!path.exists(), "{} should be gone", path.display());
    assert!(
        !volumes(&node).iter().any(|v| v["name"] == "db-data"),
        "{:?}",
        volumes(&node)
    );
    let err = node.fails(&["volume", "rm", "db-data"]);
    assert!(err.contains("db-data"), "{err}");

    // The next pod naming it gets a new, empty volume.
    let fresh = Pod::new(
        &node,
        &manifest(
            "fresh",
            vec![with(
                sh("f", "ls -A /data; test ! -e /data/row"),
                "volumeMounts",
                json!([mount("v", "/data")]),
            )],
            json!([claim("v", "db-data")]),
        ),
    );
    let out = fresh.run_ok();
    assert_eq!(stdout(&out), "", "{}", describe(&out));
}

#[test]
fn a_read_only_mount_of_a_named_volume_refuses_writes() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "ro",
            vec![with(
                sh("seed", "echo seeded > /data/f"),
                "volumeMounts",
                json!([mount("v", "/data")]),
            )],
            json!([claim("v", "ro-data")]),
        ),
    );
    pod.run_ok();
    pod.rm();
    let ro = Pod::new(
        &node,
        &manifest(
            "ro2",
            vec![with(
                sh("r", "cat /data/f; if echo x > /data/g; then echo WROTE; fi"),
                "volumeMounts",
                json!([{"name": "v", "mountPath": "/data", "readOnly": true}]),
            )],
            json!([claim("v", "ro-data")]),
        ),
    );
    let out = ro.run_ok();
    assert_eq!(stdout(&out), "seeded\n", "{}", describe(&out));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        describe(&out)
    );
    ro.rm();
    // A read-only claim makes every mount of it read-only, whatever the mount says; a
    // read-only subPath mount is read-only too.
    let ro = Pod::new(
        &node,
        &manifest(
            "ro3",
            vec![with(
                sh(
                    "r",
                    "cat /data/f; if echo x > /data/g; then echo WROTE; fi; \
                     if echo x > /sub/g; then echo WROTE-SUB; fi",
                ),
                "volumeMounts",
                json!([
                    mount("v", "/data"),
                    {"name": "w", "mountPath": "/sub", "subPath": "dir", "readOnly": true},
                ]),
            )],
            json!([
                {"name": "v", "persistentVolumeClaim": {"claimName": "ro-data", "readOnly": true}},
                claim("w", "ro-data"),
            ]),
        ),
    );
    let out = ro.run_ok();
    assert_eq!(stdout(&out), "seeded\n", "{}", describe(&out));
    assert_eq!(
        stderr(&out).matches("Read-only file system").count(),
        2,
        "{}",
        describe(&out)
    );
    let path = PathBuf::from(
        node.json(&["volume", "inspect", "ro-data"])["path"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        common::list_dir(&path),
        vec!["dir".to_string(), "f".to_string()]
    );
    assert_eq!(common::list_dir(&path.join("dir")), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// emptyDir
// ---------------------------------------------------------------------------------------

#[test]
fn an_empty_dir_is_shared_by_the_pods_containers_and_gone_after_deletion() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "shared",
            vec![
                with(
                    sh("writer", "echo from-writer > /out/msg"),
                    "volumeMounts",
                    json!([mount("scratch", "/out")]),
                ),
                with(
                    sh(
                        "reader",
                        "i=0; while [ ! -s /in/msg ]; do i=$$((i+1)); \
                         if [ $$i -gt 2000 ]; then echo timeout; exit 3; fi; \
                         /bin/busybox usleep 10000; done; cat /in/msg",
                    ),
                    "volumeMounts",
                    json!([mount("scratch", "/in")]),
                ),
            ],
            json!([{"name": "scratch", "emptyDir": {}}]),
        ),
    );
    let out = pod.run_ok();
    assert_eq!(stdout(&out), "from-writer\n", "{}", describe(&out));
    let uid = inspect(&node, &pod.c("reader"))["PodUID"]
        .as_str()
        .unwrap()
        .to_string();
    let pod_dir = node.root().join("pods").join(&uid);
    assert_eq!(
        std::fs::read_to_string(pod_dir.join("volumes/scratch/msg")).unwrap(),
        "from-writer\n",
        "the emptyDir lives under ROOT/pods/<uid> while the pod exists"
    );
    pod.rm();
    assert!(!pod_dir.exists(), "{} should be gone", pod_dir.display());
    // A new pod of the same name starts with an empty emptyDir.
    let again = Pod::new(
        &node,
        &manifest(
            "shared",
            vec![with(
                sh("reader", "ls -A /in"),
                "volumeMounts",
                json!([mount("scratch", "/in")]),
            )],
            json!([{"name": "scratch", "emptyDir": {}}]),
        ),
    );
    let out = again.run_ok();
    assert_eq!(stdout(&out), "", "{}", describe(&out));
}

#[test]
fn an_empty_dir_survives_a_container_restart_under_the_agent() {
    let node = busybox_node();
    let mut m = manifest(
        "restarts",
        vec![with(
            sh(
                "c",
                "if [ -e /d/first ]; then echo second-run-saw: $$(cat /d/first); exit 0; fi; \
                 echo run1 > /d/first; exit 1",
            ),
            "volumeMounts",
            json!([mount("d", "/d")]),
        )],
        json!([{"name": "d", "emptyDir": {}}]),
    );
    m["spec"]["restartPolicy"] = json!("OnFailure");
    let _guard = Pod::new(&node, &m);
    let agent = Agent::start_with(&node, &["--shutdown-pods", "--backoff-seconds", "1"]);
    std::fs::write(
        agent.manifests.join("restarts.yaml"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    let s = wait_for("restarts/c to succeed after one restart", || {
        let pod = agent.pod("restarts")?;
        let s = pod["status"]["containerStatuses"]
            .as_array()?
            .first()?
            .clone();
        (s["state"]["terminated"]["exitCode"] == 0).then_some(s)
    });
    assert_eq!(s["restartCount"], 1, "{s:#}");
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 1, "{s:#}");
    let logs = node.ok(&["logs", "restarts/c"]);
    assert_eq!(logs, "second-run-saw: run1\n");
    std::fs::remove_file(agent.manifests.join("restarts.yaml")).unwrap();
    wait_for("the agent to delete restarts", || {
        ps_row(&node, "restarts", "c").is_none().then_some(())
    });
    let pod_dir = node
        .root()
        .join("pods")
        .join(m["metadata"]["uid"].as_str().unwrap());
    wait_for("the emptyDir to go with the pod", || {
        (!pod_dir.exists()).then_some(())
    });
    drop(agent);
}

#[test]
fn a_memory_empty_dir_is_a_tmpfs_that_refuses_writes_past_its_size_limit() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "mem",
            vec![with(
                sh(
                    "c",
                    "/bin/busybox grep ' /cache ' /proc/mounts; \
                     /bin/busybox dd if=/dev/zero of=/cache/small bs=1024 count=512 2>/dev/null && echo small-ok; \
                     /bin/busybox dd if=/dev/zero of=/cache/big bs=1024 count=2048 || echo big-refused; \
                     exec /bin/busybox sleep 1000",
                ),
                "volumeMounts",
                json!([mount("m", "/cache")]),
            )],
            json!([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]),
        ),
    );
    pod.start();
    wait_state(&node, "mem", "c", "running");
    let logs = wait_for("the size-limit checks to finish", || {
        let out = node.run(&["logs", &pod.c("c")]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        text.contains("big-refused").then_some(text)
    });
    assert!(logs.contains("tmpfs"), "mounted as tmpfs: {logs}");
    assert!(logs.contains("small-ok"), "512 KiB fit in 1 MiB: {logs}");
    assert!(logs.contains("No space left on device"), "{logs}");
    let uid = inspect(&node, &pod.c("c"))["PodUID"]
        .as_str()
        .unwrap()
        .to_string();
    let pod_dir = node.root().join("pods").join(&uid);
    assert_eq!(
        host_mounts_under(&pod_dir),
        vec![pod_dir.join("volumes/m").display().to_string()],
        "the tmpfs is mounted on the host while the pod runs"
    );
    pod.rm();
    assert!(
        host_mounts_under(&pod_dir).is_empty(),
        "tmpfs left mounted: {:?}",
        host_mounts_under(&pod_dir)
    );
    assert!(!pod_dir.exists());
}

// ---------------------------------------------------------------------------------------
// hostPath
// ---------------------------------------------------------------------------------------

fn host_path_pod(name: &str, path: &Path, kind: &str, script: &str, mount_path: &str) -> Value {
    manifest(
        name,
        vec![with(
            sh("c", script),
            "volumeMounts",
            json!([mount("h", mount_path)]),
        )],
        json!([{"name": "h", "hostPath": {"path": path, "type": kind}}]),
    )
}

#[test]
fn a_host_path_of_the_wrong_type_is_refused_with_a_clear_error() {
    let node = busybox_node();
    let scratch = node.dir.path().join("host");
    std::fs::create_dir_all(scratch.join("a-dir")).unwrap();
    std::fs::write(scratch.join("a-file"), "x").unwrap();
    let cases: &[(&str, PathBuf, &str, &str)] = &[
        (
            "dir-on-file",
            scratch.join("a-file"),
            "Directory",
            "is not a Directory",
        ),
        (
            "file-on-dir",
            scratch.join("a-dir"),
            "File",
            "is not a File",
        ),
        (
            "socket-on-file",
            scratch.join("a-file"),
            "Socket",
            "is not a Socket",
        ),
        (
            "chardev-on-file",
            scratch.join("a-file"),
            "CharDevice",
            "is not a CharDevice",
        ),
        (
            "missing-dir",
            scratch.join("nope"),
            "Directory",
            "does not exist",
        ),
        (
            "missing-file",
            scratch.join("nope"),
            "File",
            "does not exist",
        ),
        (
            "file-or-create-on-dir",
            scratch.join("a-dir"),
            "FileOrCreate",
            "is not a file",
        ),
        (
            "dir-or-create-on-file",
            scratch.join("a-file"),
            "DirectoryOrCreate",
            "is not a directory",
        ),
        (
            "file-or-create-no-parent",
            scratch.join("no/parent/f"),
            "FileOrCreate",
            "does not exist",
        ),
    ];
    for (name, path, kind, reason) in cases {
        let pod = Pod::new(&node, &host_path_pod(name, path, kind, "echo RAN", "/h"));
        let out = pod.run(&[]);
        assert!(!out.status.success(), "{name}: {}", describe(&out));
        let err = stderr(&out);
        for part in [
            &format!("default/{name}"),
            "volume h",
            &path.display().to_string(),
            *reason,
        ] {
            assert!(
                err.contains(part),
                "{name}: the error should say {part:?}: {err}"
            );
        }
        assert!(!stdout(&out).contains("RAN"), "{name}: {}", describe(&out));
        assert!(ps_row(&node, name, "c").is_none(), "{name}: no pod is left");
    }
    assert!(
        !scratch.join("nope").exists(),
        "a failed check creates nothing"
    );
    assert!(
        !scratch.join("no").exists(),
        "a failed check creates nothing"
    );
    assert!(
        node.entries("pods").is_empty(),
        "{:?}",
        node.entries("pods")
    );
}

#[test]
fn host_paths_of_the_right_type_are_mounted_and_or_create_types_create_them() {
    let node = busybox_node();
    let scratch = node.dir.path().join("host");
    std::fs::create_dir_all(scratch.join("a-dir")).unwrap();
    std::fs::write(scratch.join("a-dir/from-host"), "host-data\n").unwrap();
    std::fs::write(scratch.join("a-file"), "file-data\n").unwrap();
    let socket_path = scratch.join("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();

    // Existing paths of each type.
    for (name, path, kind, script, at) in [
        (
            "dir",
            scratch.join("a-dir"),
            "Directory",
            "cat /h/from-host",
            "/h",
        ),
        ("file", scratch.join("a-file"), "File", "cat /h", "/h"),
        (
            "socket",
            socket_path.clone(),
            "Socket",
            "test -S /h.sock && echo socket",
            "/h.sock",
        ),
        (
            "chardev",
            PathBuf::from("/dev/null"),
            "CharDevice",
            "test -c /h && echo chardev",
            "/h",
        ),
        (
            "untyped",
            scratch.join("a-dir"),
            "",
            "cat /h/from-host",
            "/h",
        ),
    ] {
        let pod = Pod::new(&node, &host_path_pod(name, &path, kind, script, at));
        let out = pod.run_ok();
        let want = match name {
            "file" => "file-data\n",
            "socket" => "socket\n",
            "chardev" => "chardev\n",
            _ => "host-data\n",
        };
        assert_eq!(stdout(&out), want, "{name}: {}", describe(&out));
        pod.rm();
    }

    // DirectoryOrCreate makes the whole path, 0755; the container's writes land on the host.
    let made = scratch.join("made/by/layerlet");
    let pod = Pod::new(
        &node,
        &host_path_pod(
            "dir-create",
            &made,
            "DirectoryOrCreate",
            "echo hi > /h/x",
            "/h",
        ),
    );
    pod.run_ok();
    let meta = std::fs::metadata(&made).expect("DirectoryOrCreate creates the directory");
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(std::fs::read_to_string(made.join("x")).unwrap(), "hi\n");
    pod.rm();
    assert!(made.join("x").is_file(), "a hostPath outlives its pod");

    // FileOrCreate makes the file (its directory must exist).
    let file = scratch.join("a-dir/created.conf");
    let pod = Pod::new(
        &node,
        &host_path_pod(
            "file-create",
            &file,
            "FileOrCreate",
            "echo written > /etc/app.conf",
            "/etc/app.conf",
        ),
    );
    pod.run_ok();
    assert!(std::fs::metadata(&file)
        .expect("FileOrCreate creates it")
        .is_file());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "written\n");
    pod.rm();

    // An existing file under FileOrCreate is kept as it is.
    let pod = Pod::new(
        &node,
        &host_path_pod("file-keep", &file, "FileOrCreate", "cat /h", "/h"),
    );
    let out = pod.run_ok();
    assert_eq!(stdout(&out), "written\n");
}

// ---------------------------------------------------------------------------------------
// subPath and the symlink-swap attack (CVE-2021-25741)
// ---------------------------------------------------------------------------------------

#[test]
fn a_normal_sub_path_mounts_the_directory_or_file_inside_the_volume() {
    let node = busybox_node();
    let seed = Pod::new(
        &node,
        &manifest(
            "seed",
            vec![with(
                sh("s", "mkdir -p /vol/app && echo cfg-ok > /vol/app/config.txt && echo other > /vol/top"),
                "volumeMounts",
                json!([mount("v", "/vol")]),
            )],
            json!([claim("v", "sub-data")]),
        ),
    );
    seed.run_ok();
    seed.rm();
    let pod = Pod::new(
        &node,
        &manifest(
            "sub",
            vec![with(
                with(
                    sh(
                        "c",
                        "cat /cfg/config.txt /etc/app.conf /expr/config.txt; ls -A /cfg; \
                         echo made > /newdir/made; test ! -e /cfg/top && echo confined",
                    ),
                    "env",
                    json!([{"name": "SUB", "value": "app"}]),
                ),
                "volumeMounts",
                json!([
                    {"name": "v", "mountPath": "/cfg", "subPath": "app"},
                    {"name": "v", "mountPath": "/etc/app.conf", "subPath": "app/config.txt"},
                    {"name": "v", "mountPath": "/expr", "subPathExpr": "$(SUB)"},
                    {"name": "v", "mountPath": "/newdir", "subPath": "new/dir"},
                ]),
            )],
            json!([claim("v", "sub-data")]),
        ),
    );
    let out = pod.run_ok();
    assert_eq!(
        stdout(&out),
        "cfg-ok\ncfg-ok\ncfg-ok\nconfig.txt\nconfined\n",
        "{}",
        describe(&out)
    );
    let path = PathBuf::from(
        node.json(&["volume", "inspect", "sub-data"])["path"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        std::fs::read_to_string(path.join("new/dir/made")).unwrap(),
        "made\n",
        "a missing subPath is created inside the volume"
    );
}

/// A pod mounting `subPath` of the named volume `claim_name` at /mnt, printing what it sees.
fn victim(name: &str, claim_name: &str, sub_path: &str) -> Value {
    manifest(
        name,
        vec![with(
            sh(
                "victim",
                "cat /mnt/marker 2>/dev/null || echo no-marker; ls -A /mnt",
            ),
            "volumeMounts",
            json!([{"name": "v", "mountPath": "/mnt", "subPath": sub_path}]),
        )],
        json!([claim("v", claim_name)]),
    )
}

#[test]
fn a_sub_path_through_a_symlink_planted_by_another_pod_is_refused() {
    let node = busybox_node();
    let (host_dir, marker) = host_marker_dir(&node);
    // The attacker's pod plants links in the volume: absolute to a host directory (what the
    // host would follow), relative up and out of the volume, and to /etc.
    let attacker = Pod::new(
        &node,
        &manifest(
            "attacker",
            vec![with(
                sh(
                    "a",
                    &format!(
                        "/bin/busybox ln -s {} /vol/escape && \
                         /bin/busybox ln -s ../../../../../../../../../../{} /vol/relative && \
                         /bin/busybox ln -s /etc /vol/etc && mkdir -p /vol/real && echo planted",
                        host_dir.display(),
                        host_dir.display()
                    ),
                ),
                "volumeMounts",
                json!([mount("v", "/vol")]),
            )],
            json!([claim("v", "shared")]),
        ),
    );
    attacker.run_ok();
    attacker.rm();

    for (i, sub) in ["escape", "relative", "etc", "escape/.", "real/../escape"]
        .iter()
        .enumerate()
    {
        let name = format!("victim-{i}");
        let pod = Pod::new(&node, &victim(&name, "shared", sub));
        let out = pod.run(&[]);
        assert!(!out.status.success(), "subPath {sub:?}: {}", describe(&out));
        let err = stderr(&out);
        let why = if sub.contains("..") { ".." } else { "symlink" };
        assert!(
            err.contains(why) && err.contains("subPath"),
            "subPath {sub:?}: the error should name the subPath and {why:?}: {err}"
        );
        assert!(
            !stdout(&out).contains(&marker),
            "subPath {sub:?} mounted the host directory: {}",
            describe(&out)
        );
        pod.rm();
        let pods = node.entries("pods");
        assert!(pods.is_empty(), "subPath {sub:?}: left {pods:?}");
    }
    // Nothing under the host directory changed, and the link is still only a link.
    assert_eq!(common::list_dir(&host_dir), vec!["marker".to_string()]);

    // The plain directory next to the links still works.
    let ok = Pod::new(&node, &victim("victim-ok", "shared", "real"));
    let out = ok.run_ok();
    assert_eq!(stdout(&out), "no-marker\n", "{}", describe(&out));
}

#[test]
fn a_sub_path_symlink_swapped_in_by_an_init_container_of_the_same_pod_is_refused() {
    let node = busybox_node();
    let (host_dir, marker) = host_marker_dir(&node);
    let mut m = victim("same-pod", "swap", "escape");
    // The init container first makes `escape` a directory, then swaps it for a link.
    m["spec"]["initContainers"] = json!([with(
        sh(
            "swap",
            &format!(
                "mkdir /vol/escape && rmdir /vol/escape && /bin/busybox ln -s {} /vol/escape",
                host_dir.display()
            ),
        ),
        "volumeMounts",
        json!([mount("v", "/vol")]),
    )]);
    let pod = Pod::new(&node, &m);
    let out = pod.run(&[]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("symlink"), "{}", describe(&out));
    assert!(!stdout(&out).contains(&marker), "{}", describe(&out));
    let left = host_mounts_under(node.dir.path());
    assert!(
        left.iter().all(|m| !m.contains("subpaths")),
        "a refused subPath leaves no pin mounted: {left:?}"
    );
}

#[test]
fn a_sub_path_raced_by_a_symlink_swapping_container_never_mounts_the_host_path() {
    let node = busybox_node();
    let (host_dir, marker) = host_marker_dir(&node);
    // Swaps /vol/escape between a directory and a link to the host directory, for ever.
    let attacker = Pod::new(
        &node,
        &manifest(
            "swapper",
            vec![with(
                sh(
                    "a",
                    &format!(
                        "while true; do mkdir /vol/escape 2>/dev/null; rm -rf /vol/escape; \
                         /bin/busybox ln -s {} /vol/escape 2>/dev/null; rm -f /vol/escape; done",
                        host_dir.display()
                    ),
                ),
                "volumeMounts",
                json!([mount("v", "/vol")]),
            )],
            json!([claim("v", "raced")]),
        ),
    );
    attacker.start();
    wait_state(&node, "swapper", "a", "running");
    let (mut refused, mut mounted) = (0, 0);
    for i in 0..15 {
        let pod = Pod::new(&node, &victim(&format!("race-{i}"), "raced", "escape"));
        let out = pod.run(&["--rm"]);
        assert!(
            !stdout(&out).contains(&marker),
            "attempt {i} mounted the host directory: {}",
            describe(&out)
        );
        if out.status.success() {
            assert!(
                stdout(&out).starts_with("no-marker\n"),
                "{}",
                describe(&out)
            );
            mounted += 1;
        } else {
            let err = stderr(&out);
            // Refused because it found a link, or failed to start because the directory it
            // pinned was deleted under it: both are safe.
            assert!(
                err.contains("subPath") || err.contains("failed to start"),
                "attempt {i}: {}",
                describe(&out)
            );
            refused += 1;
        }
    }
    eprintln!("race: {mounted} attempts mounted the real directory, {refused} were refused");
    assert_eq!(common::list_dir(&host_dir), vec!["marker".to_string()]);
}

// ---------------------------------------------------------------------------------------
// The data-loss guard
// ---------------------------------------------------------------------------------------

/// The `warning: ...` lines `layerlet run` prints for the data-loss guard. (The same text
/// also goes to the log, which the CLI writes to stderr as well; that line is not counted.)
fn loss_warnings(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("warning: ") && l.contains(LOSS))
        .map(str::to_string)
        .collect()
}

const LOSS: &str = "writes to /var/lib/db go into the writable layer and are lost when the container is deleted; mount a volume there";

#[test]
fn the_data_loss_warning_fires_for_an_image_volume_with_no_mount_and_not_when_one_is_mounted() {
    let node = node_with_images(&[(DB_IMAGE, db_image())]);
    let script = "mkdir -p /var/lib/db && echo row > /var/lib/db/table && cat /var/lib/db/table";
    let pod = Pod::new(
        &node,
        &manifest("db-lost", vec![sh_of(DB_IMAGE, "db", script)], json!([])),
    );
    let out = pod.run_ok();
    assert_eq!(stdout(&out), "row\n", "{}", describe(&out));
    let line = format!("warning: pod default/db-lost container db: {LOSS}");
    assert_eq!(
        loss_warnings(&out),
        vec![line],
        "warned once: {}",
        describe(&out)
    );
    pod.rm();

    // Mounted there (a named volume), above it (/var/lib), or not: per container.
    let pod = Pod::new(
        &node,
        &manifest(
            "db-kept",
            vec![
                with(
                    sh_of(DB_IMAGE, "named", script),
                    "volumeMounts",
                    json!([mount("data", "/var/lib/db")]),
                ),
                with(
                    sh_of(DB_IMAGE, "parent", script),
                    "volumeMounts",
                    json!([mount("scratch", "/var/lib")]),
                ),
                with(
                    sh_of(DB_IMAGE, "sibling", script),
                    "volumeMounts",
                    json!([mount("scratch", "/var/lib/dbx")]),
                ),
            ],
            json!([claim("data", "db"), {"name": "scratch", "emptyDir": {}}]),
        ),
    );
    let out = pod.run_ok();
    assert_eq!(
        loss_warnings(&out),
        vec![format!(
            "warning: pod default/db-kept container sibling: {LOSS}"
        )],
        "only the container whose mount (/var/lib/dbx) does not cover /var/lib/db: {}",
        describe(&out)
    );
    assert!(
        !stderr(&out).contains("container named"),
        "{}",
        describe(&out)
    );
    assert!(
        !stderr(&out).contains("container parent"),
        "{}",
        describe(&out)
    );
    pod.rm();
    let path = PathBuf::from(
        node.json(&["volume", "inspect", "db"])["path"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        std::fs::read_to_string(path.join("table")).unwrap(),
        "row\n",
        "the mounted database kept its data"
    );
}

#[test]
fn the_agent_reports_the_data_loss_warning_as_an_event_and_in_its_log() {
    let node = node_with_images(&[(DB_IMAGE, db_image())]);
    let script = "mkdir -p /var/lib/db && echo row > /var/lib/db/table";
    let m = manifest(
        "db-agent",
        vec![
            sh_of(DB_IMAGE, "lost", script),
            with(
                sh_of(DB_IMAGE, "kept", script),
                "volumeMounts",
                json!([mount("data", "/var/lib/db")]),
            ),
        ],
        json!([{"name": "data", "emptyDir": {}}]),
    );
    let _guard = Pod::new(&node, &m);
    let agent = Agent::start_with(&node, &["--shutdown-pods"]);
    std::fs::write(
        agent.manifests.join("db-agent.yaml"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
    let events = |reason: &str| -> Vec<Value> {
        let r = support::http::get(&agent.addr, "/api/v1/events", &[]).expect("GET events");
        let list: Value = serde_json::from_slice(&r.body).expect("events are JSON");
        list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["reason"] == reason && e["involvedObject"]["name"] == "db-agent")
            .collect()
    };
    // Both containers created (so any warning for either has been raised by then).
    wait_for("both containers of db-agent to be created", || {
        (events("Created").len() >= 2).then_some(())
    });
    let warnings = events("VolumeWithoutMount");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let w = &warnings[0];
    assert_eq!(w["type"], "Warning", "{w:#}");
    assert_eq!(
        w["involvedObject"]["fieldPath"], "spec.containers{lost}",
        "{w:#}"
    );
    assert!(w["message"].as_str().unwrap().contains(LOSS), "{w:#}");
    let log = agent.log_text();
    assert!(log.contains(LOSS), "the agent's log: {log}");

    std::fs::remove_file(agent.manifests.join("db-agent.yaml")).unwrap();
    wait_for("the agent to delete db-agent", || {
        (ps_row(&node, "db-agent", "lost").is_none() && ps_row(&node, "db-agent", "kept").is_none())
            .then_some(())
    });
    drop(agent);
}

#[test]
fn no_data_loss_warning_for_an_image_without_volumes() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "plain",
            vec![sh("c", "mkdir -p /var/lib/db && echo ok")],
            json!([]),
        ),
    );
    let out = pod.run_ok();
    assert!(!stderr(&out).contains("warning:"), "{}", describe(&out));
}

#[test]
fn pods_of_the_same_name_on_two_data_roots_do_not_share_cgroups() {
    let a = busybox_node();
    let b = busybox_node();
    // No metadata.uid here: the default, derived uid.
    let m = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "rv-same-name" },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [sh("c", "exec /bin/busybox sleep 1000")],
        },
    });
    let on_a = Pod::new(&a, &m);
    let on_b = Pod::new(&b, &m);
    on_a.start();
    on_b.start();
    let ia = inspect(&a, "rv-same-name/c");
    let ib = inspect(&b, "rv-same-name/c");
    let cg = |c: &Value| {
        cgroup_dir(
            "memory",
            c["PodUID"].as_str().unwrap(),
            Some(c["Id"].as_str().unwrap()),
        )
    };
    // Removing one node's pod works while the other's runs, and leaves the other running.
    on_a.rm();
    assert!(ps_row(&a, "rv-same-name", "c").is_none());
    assert_eq!(ps_row(&b, "rv-same-name", "c").unwrap()["state"], "running");
    assert!(cg(&ib).is_dir());
    on_b.rm();
    assert!(!cg(&ia).exists() && !cg(&ib).exists());
}

/// kubelet gives the pod cgroup `cpu.shares` = the sum of its containers' requests: shares
/// only weigh siblings, and a container's siblings are the other containers of its pod, so
/// without it every pod weighs 1024 against every other whatever it requested.
#[test]
fn cpu_requests_weigh_pods_against_each_other_through_the_pod_cgroup() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "pod-shares",
            vec![
                with(
                    sh("a", "exec /bin/busybox sleep 1000"),
                    "resources",
                    json!({"requests": {"cpu": "1500m"}}),
                ),
                with(
                    sh("b", "exec /bin/busybox sleep 1000"),
                    "resources",
                    json!({"requests": {"cpu": "400m"}}),
                ),
            ],
            json!([]),
        ),
    );
    pod.start();
    wait_state(&node, "pod-shares", "a", "running");
    wait_state(&node, "pod-shares", "b", "running");
    // MilliCPUToShares(1500 + 400) = 1945.
    assert_eq!(
        read_trim(&cgroup_dir("cpu", &pod.uid, None).join("cpu.shares")),
        "1945"
    );
}

/// Kubernetes on cgroup v1 sets the memory+swap limit to the memory limit (no swap for
/// containers): without it, on a node with swap, a container swaps instead of being
/// OOM-killed at its limit.
#[test]
fn a_memory_limit_also_bounds_swap() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "memsw",
            vec![with(
                sh("c", "exec /bin/busybox sleep 1000"),
                "resources",
                json!({"limits": {"memory": "64Mi"}}),
            )],
            json!([]),
        ),
    );
    pod.start();
    wait_state(&node, "memsw", "c", "running");
    let id = inspect(&node, &pod.c("c"))["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = cgroup_dir("memory", &pod.uid, Some(&id));
    if !dir.join("memory.memsw.limit_in_bytes").exists() {
        eprintln!("no swap accounting on this kernel (swapaccount=0): nothing to check");
        return;
    }
    assert_eq!(
        read_trim(&dir.join("memory.memsw.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
}

/// Without an agent too, a HostToContainer volume follows the host: what the host mounts below
/// it after the container started shows inside, while a volume without propagation stays as
/// it was.
#[test]
fn a_host_mount_made_after_run_reaches_a_host_to_container_volume_and_no_other() {
    let node = busybox_node();
    let host = tempfile::tempdir().unwrap();
    let (follows, fixed) = (host.path().join("follows"), host.path().join("fixed"));
    for dir in [&follows, &fixed] {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
    }
    let mut mounts = common::HostMounts::default();
    mounts.share(&follows);
    mounts.share(&fixed);
    let script = "until [ -e /follows/sub/marker ]; do sleep 0.1; done; echo follows-seen; \
                  if [ -e /fixed/sub/marker ]; then echo fixed-seen; else echo fixed-unseen; fi; \
                  exec /bin/busybox sleep 1000";
    let pod = Pod::new(
        &node,
        &manifest(
            "propagation",
            vec![with(
                sh("c", script),
                "volumeMounts",
                json!([
                    {"name": "follows", "mountPath": "/follows", "mountPropagation": "HostToContainer"},
                    mount("fixed", "/fixed"),
                ]),
            )],
            json!([
                {"name": "follows", "hostPath": {"path": follows, "type": "Directory"}},
                {"name": "fixed", "hostPath": {"path": fixed, "type": "Directory"}},
            ]),
        ),
    );
    pod.start();
    wait_state(&node, "propagation", "c", "running");
    for dir in [&follows, &fixed] {
        let sub = dir.join("sub");
        mounts.tmpfs(&sub);
        std::fs::write(sub.join("marker"), b"mounted after the container started").unwrap();
    }
    let logs = wait_for("the container to look at both volumes", || {
        let out = node.run(&["logs", &pod.c("c")]);
        let text = stdout(&out);
        text.contains("fixed-").then_some(text)
    });
    assert!(logs.contains("follows-seen"), "{logs}");
    assert!(logs.contains("fixed-unseen"), "{logs}");
    assert!(!logs.contains("fixed-seen"), "{logs}");
}
