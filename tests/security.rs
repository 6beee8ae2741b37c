//! Container security through the real `layerlet` binary, as root, from inside real
//! containers: users and groups, `runAsNonRoot`, a read-only root filesystem, capabilities,
//! masked and read-only paths, `no_new_privs`, the devices cgroup, seccomp profiles, the
//! known runtime escapes (CVE-2019-16884, CVE-2024-21626, CVE-2019-5736, symlinked
//! `/etc/hosts`, volumes over /proc) and what `inspect` reports.
//!
//! Short checks run the pod in the foreground (`layerlet run`, the containers' output
//! streamed to its own) and assert on stdout, stderr and the exit code. Pods that must be
//! observed while running are started with `run -d` and watched by polling with a deadline.
//! Every pod is removed (`layerlet rm -t 0`) by a guard when its test ends, pass or fail.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::Node;
use serde_json::{json, Value};
use support::{Compression, ImageSpec, LayerBuilder};

/// The busybox image (no `User`: root).
const IMAGE: &str = "example.com/security/busybox:1";
/// The busybox image with `User: app` (uid 1000).
const APP_IMAGE: &str = "example.com/security/app:1";
/// Generous: polling stops as soon as the condition holds.
const DEADLINE: Duration = Duration::from_secs(60);

/// Docker's and containerd's 14 default capabilities as a capability mask.
const DEFAULT_CAPS: u64 = 0x0000_0000_a804_25fb;
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

/// Capability numbers (linux/capability.h), for reading /proc/PID/status masks.
const CAPABILITY_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// [`ImageSpec::busybox`] with an uncompressed layer: gzip in a debug build costs seconds.
fn busybox() -> ImageSpec {
    ImageSpec {
        layers: vec![LayerBuilder::busybox_layer(Compression::None)],
        ..ImageSpec::busybox()
    }
}

/// [`busybox`] with one more layer on top, built by `extra`.
fn busybox_with(extra: impl FnOnce(&mut LayerBuilder)) -> ImageSpec {
    let mut layer = LayerBuilder::new();
    extra(&mut layer);
    let mut spec = busybox();
    spec.layers.push(layer.build(Compression::None));
    spec
}

/// Imports `spec` as `reference` into `node` through an OCI layout.
fn import(node: &Node, reference: &str, spec: &ImageSpec) {
    let layout = node
        .dir
        .path()
        .join(format!("layout-{}", reference.replace(['/', ':'], "_")));
    support::write_oci_layout(&layout, spec, reference);
    node.ok(&["image", "import", layout.to_str().unwrap()]);
}

/// A fresh node with [`IMAGE`] imported.
fn busybox_node() -> Node {
    let node = Node::new();
    import(&node, IMAGE, &busybox());
    node
}

/// `sh -c SCRIPT` as a pod command. Every `$` is written `$$`: a pod's command has
/// Kubernetes' `$(VAR)` expansion, in which `$$` is a literal `$`.
fn sh(script: &str) -> Value {
    json!(["sh", "-c", script.replace('$', "$$")])
}

/// A container of `image` running `sh -c script`, with `extra` merged into it
/// (`securityContext`, `volumeMounts`, `workingDir`, ...).
fn container_of(image: &str, name: &str, script: &str, extra: Value) -> Value {
    let mut c = json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": sh(script),
    });
    merge(&mut c, extra);
    c
}

/// A container of [`IMAGE`]; see [`container_of`].
fn container(name: &str, script: &str, extra: Value) -> Value {
    container_of(IMAGE, name, script, extra)
}

/// A Pod manifest (JSON is YAML) with `restartPolicy: Never`, a zero grace period and
/// `spec_extra` merged into its spec (`securityContext`, `volumes`, `hostPID`, ...).
fn manifest(name: &str, containers: Vec<Value>, spec_extra: Value) -> Value {
    let mut spec = json!({
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "containers": containers,
    });
    merge(&mut spec, spec_extra);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// Shallow merge of the keys of `extra` (an object or null) into `into`.
fn merge(into: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            into[k] = v;
        }
    }
}

/// What a foreground `layerlet run` did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if std::env::var_os("LAYERLET_TEST_VERBOSE").is_some() {
            eprintln!("{}", run.describe());
        }
        run
    }

    fn describe(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Insists the pod ran and every container exited 0; returns stdout.
    fn succeeded(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "the pod should succeed:\n{}",
            self.describe()
        );
        &self.stdout
    }

    /// Insists `run` failed; returns stdout and stderr together.
    fn failed(&self) -> String {
        assert!(
            self.code != Some(0),
            "the pod should have failed:\n{}",
            self.describe()
        );
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The value after `KEY=` on the first stdout line starting so.
    fn field(&self, key: &str) -> &str {
        field(&self.stdout, key)
            .unwrap_or_else(|| panic!("no line {key}=... in the output:\n{}", self.describe()))
    }
}

/// The value after `KEY=` on the first line of `text` starting so.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// A pod written to a file of the node's scratch directory; `layerlet rm -t 0` runs on drop,
/// so the pod's processes, mounts and directories go even when the test fails.
struct Pod<'n> {
    node: &'n Node,
    name: String,
    file: PathBuf,
}

impl<'n> Pod<'n> {
    fn new(node: &'n Node, manifest: &Value) -> Pod<'n> {
        let name = manifest["metadata"]["name"]
            .as_str()
            .expect("manifest has a name")
            .to_string();
        let file = node.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
        Pod { node, name, file }
    }

    /// `layerlet run -f FILE` in the foreground until the pod finishes.
    fn run(&self) -> Run {
        Run::from(self.node.run(&["run", "-f", self.file.to_str().unwrap()]))
    }

    /// `layerlet run -d`: insists it succeeds.
    fn start(&self) {
        let out = Run::from(
            self.node
                .run(&["run", "-d", "-f", self.file.to_str().unwrap()]),
        );
        assert_eq!(
            out.code,
            Some(0),
            "run -d {}:\n{}",
            self.name,
            out.describe()
        );
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

/// Runs a one-container pod of [`IMAGE`] in the foreground.
fn run_one(node: &Node, pod: &str, script: &str, container_extra: Value, spec_extra: Value) -> Run {
    let p = Pod::new(
        node,
        &manifest(
            pod,
            vec![container("c", script, container_extra)],
            spec_extra,
        ),
    );
    p.run()
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `logs NAME` until its stdout has a line equal to `line`; returns the whole stdout.
fn wait_for_line(node: &Node, name: &str, line: &str) -> String {
    wait_for(&format!("{name} to log {line:?}"), || {
        let out = node.run(&["logs", name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.lines().any(|l| l == line)).then_some(text)
    })
}

/// A capability mask line (`CapEff:\t00000000a80425fb`) of /proc/PID/status text.
fn cap_mask(status: &str, key: &str) -> u64 {
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} line in:\n{status}"));
    u64::from_str_radix(value.trim(), 16)
        .unwrap_or_else(|e| panic!("{key}: {value:?} is not hex: {e}"))
}

/// A numeric line (`Seccomp:\t2`) of /proc/PID/status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} line in:\n{status}"))
}

/// Capability names of a mask, for readable failure messages.
fn cap_names(mask: u64) -> Vec<&'static str> {
    (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| CAPABILITY_NAMES.get(bit).copied().unwrap_or("CAP_?"))
        .collect()
}

/// The mask of capability names (`CAP_NET_ADMIN`).
fn mask_of(names: &[String]) -> u64 {
    names
        .iter()
        .map(|n| {
            let bit = CAPABILITY_NAMES
                .iter()
                .position(|c| c == n)
                .unwrap_or_else(|| panic!("unknown capability name {n:?}"));
            1u64 << bit
        })
        .fold(0, |a, b| a | b)
}

fn assert_caps(what: &str, got: u64, want: u64) {
    assert_eq!(
        got,
        want,
        "{what}: got {got:#018x} {:?}, want {want:#018x} {:?}",
        cap_names(got),
        cap_names(want)
    );
}

/// This test process's own /proc/self/status (the host's view).
fn host_status() -> String {
    std::fs::read_to_string("/proc/self/status").unwrap()
}

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    support::sha256_digest(&bytes)
}

/// `(pid, command line)` of the host's `layerlet __monitor DIR` processes whose DIR is under
/// `run_root`.
fn monitors_of(run_root: &Path) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.get(1).map(String::as_str) == Some("__monitor")
            && argv
                .get(2)
                .is_some_and(|dir| Path::new(dir).starts_with(run_root))
        {
            found.push((pid, argv.join(" ")));
        }
    }
    found
}

// ---------------------------------------------------------------------------------------
// 1. Users and groups
// ---------------------------------------------------------------------------------------

const ID_SCRIPT: &str = "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); \
                         grep -E '^(Uid|Gid|Groups):' /proc/self/status";

/// Sorted numbers of a space-separated list.
fn numbers(text: &str) -> Vec<u32> {
    let mut v: Vec<u32> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap_or_else(|e| panic!("{n:?}: {e}")))
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn run_as_user_group_supplemental_groups_and_fs_group_set_the_process_identity() {
    let node = busybox_node();
    let script = format!(
        "{ID_SCRIPT}; echo volgid=$(stat -c %g /data); touch /data/written && echo volume=writable"
    );
    let pod = Pod::new(
        &node,
        &manifest(
            "ids",
            vec![container(
                "c",
                &script,
                json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]}),
            )],
            json!({
                "securityContext": {
                    "runAsUser": 1234,
                    "runAsGroup": 2345,
                    "supplementalGroups": [3000, 3001],
                    "fsGroup": 4000,
                },
                "volumes": [{"name": "data", "emptyDir": {}}],
            }),
        ),
    );
    let run = pod.run();
    run.succeeded();
    assert_eq!(run.field("uid"), "1234", "{}", run.describe());
    assert_eq!(run.field("gid"), "2345", "{}", run.describe());
    assert_eq!(
        numbers(run.field("groups")),
        vec![2345, 3000, 3001, 4000],
        "{}",
        run.describe()
    );
    // The kernel's view: real, effective, saved and filesystem ids all switched.
    let uids = status_field(&run.stdout, "Uid");
    assert_eq!(numbers(uids), vec![1234], "Uid: {uids}");
    let gids = status_field(&run.stdout, "Gid");
    assert_eq!(numbers(gids), vec![2345], "Gid: {gids}");
    assert_eq!(
        numbers(status_field(&run.stdout, "Groups")),
        vec![3000, 3001, 4000],
        "{}",
        run.describe()
    );
    // fsGroup owns the volume, so the non-root user can write there.
    assert_eq!(run.field("volgid"), "4000", "{}", run.describe());
    assert_eq!(run.field("volume"), "writable", "{}", run.describe());
}

#[test]
fn the_containers_run_as_user_and_group_win_over_the_pods() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "override",
            vec![
                container(
                    "wins",
                    ID_SCRIPT,
                    json!({"securityContext": {"runAsUser": 1500, "runAsGroup": 1600}}),
                ),
                container("inherits", ID_SCRIPT, json!({})),
            ],
            json!({"securityContext": {"runAsUser": 1234, "runAsGroup": 2345}}),
        ),
    );
    pod.run().succeeded();
    let wins = node.ok(&["logs", &pod.c("wins")]);
    assert_eq!(field(&wins, "uid"), Some("1500"), "{wins}");
    assert_eq!(field(&wins, "gid"), Some("1600"), "{wins}");
    let inherits = node.ok(&["logs", &pod.c("inherits")]);
    assert_eq!(field(&inherits, "uid"), Some("1234"), "{inherits}");
    assert_eq!(field(&inherits, "gid"), Some("2345"), "{inherits}");
}

#[test]
fn the_images_user_app_runs_as_uid_1000_and_run_as_user_overrides_it() {
    let node = busybox_node();
    import(
        &node,
        APP_IMAGE,
        &ImageSpec {
            user: Some("app".into()),
            ..busybox()
        },
    );
    let pod = Pod::new(
        &node,
        &manifest(
            "app-user",
            vec![
                container_of(APP_IMAGE, "image-user", ID_SCRIPT, json!({})),
                container_of(
                    APP_IMAGE,
                    "overridden",
                    ID_SCRIPT,
                    json!({"securityContext": {"runAsUser": 2000}}),
                ),
            ],
            json!({}),
        ),
    );
    pod.run().succeeded();
    let image_user = node.ok(&["logs", &pod.c("image-user")]);
    assert_eq!(field(&image_user, "uid"), Some("1000"), "{image_user}");
    assert_eq!(field(&image_user, "gid"), Some("1000"), "{image_user}");
    let overridden = node.ok(&["logs", &pod.c("overridden")]);
    assert_eq!(field(&overridden, "uid"), Some("2000"), "{overridden}");
}

// ---------------------------------------------------------------------------------------
// 2. runAsNonRoot
// ---------------------------------------------------------------------------------------

#[test]
fn run_as_non_root_refuses_run_as_user_zero_naming_the_pod_and_container() {
    let node = busybox_node();
    let run = run_one(
        &node,
        "nonroot-uid0",
        "echo STARTED",
        json!({"securityContext": {"runAsUser": 0}}),
        json!({"securityContext": {"runAsNonRoot": true}}),
    );
    let text = run.failed();
    assert!(!run.stdout.contains("STARTED"), "{}", run.describe());
    assert!(
        text.contains("nonroot-uid0")
            && text.contains("container c")
            && text.contains("runAsNonRoot"),
        "the refusal should name the pod, the container and runAsNonRoot:\n{}",
        run.describe()
    );
}

#[test]
fn run_as_non_root_refuses_an_image_whose_user_is_root() {
    let node = busybox_node();
    import(
        &node,
        "example.com/security/root-user:1",
        &ImageSpec {
            user: Some("root".into()),
            ..busybox()
        },
    );
    let pod = Pod::new(
        &node,
        &manifest(
            "nonroot-image",
            vec![container_of(
                "example.com/security/root-user:1",
                "web",
                "echo STARTED",
                json!({"securityContext": {"runAsNonRoot": true}}),
            )],
            json!({}),
        ),
    );
    let run = pod.run();
    let text = run.failed();
    assert!(!run.stdout.contains("STARTED"), "{}", run.describe());
    assert!(
        text.contains("nonroot-image") && text.contains("container web") && text.contains("User"),
        "the refusal should name the pod, the container and the image's User:\n{}",
        run.describe()
    );

    // An image without any User runs as root too, and is refused the same way.
    let run = run_one(
        &node,
        "nonroot-nouser",
        "echo STARTED",
        json!({"securityContext": {"runAsNonRoot": true}}),
        json!({}),
    );
    let text = run.failed();
    assert!(!run.stdout.contains("STARTED"), "{}", run.describe());
    assert!(
        text.contains("nonroot-nouser") && text.contains("runAsNonRoot"),
        "{}",
        run.describe()
    );
}

#[test]
fn run_as_non_root_admits_a_non_root_image_user_and_a_non_zero_run_as_user() {
    let node = busybox_node();
    import(
        &node,
        APP_IMAGE,
        &ImageSpec {
            user: Some("app".into()),
            ..busybox()
        },
    );
    let pod = Pod::new(
        &node,
        &manifest(
            "nonroot-ok",
            vec![
                container_of(APP_IMAGE, "app", "echo uid=$(id -u)", json!({})),
                container(
                    "numeric",
                    "echo uid=$(id -u)",
                    json!({"securityContext": {"runAsUser": 4321}}),
                ),
            ],
            json!({"securityContext": {"runAsNonRoot": true}}),
        ),
    );
    pod.run().succeeded();
    let app = node.ok(&["logs", &pod.c("app")]);
    assert_eq!(field(&app, "uid"), Some("1000"), "{app}");
    let numeric = node.ok(&["logs", &pod.c("numeric")]);
    assert_eq!(field(&numeric, "uid"), Some("4321"), "{numeric}");
}

#[test]
fn run_as_non_root_refuses_an_image_user_name_that_the_images_passwd_maps_to_uid_0() {
    // kubelet cannot check a non-numeric image User; layerlet resolves it in the image's own
    // /etc/passwd, so a harmless-looking name for uid 0 is caught.
    let node = busybox_node();
    let mut spec = busybox_with(|l| {
        l.dir("etc", 0o755).file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n",
            0o644,
        );
    });
    spec.user = Some("toor".into());
    import(&node, "example.com/security/toor:1", &spec);
    let pod = Pod::new(
        &node,
        &manifest(
            "nonroot-toor",
            vec![container_of(
                "example.com/security/toor:1",
                "c",
                "echo STARTED",
                json!({}),
            )],
            json!({"securityContext": {"runAsNonRoot": true}}),
        ),
    );
    let run = pod.run();
    let text = run.failed();
    assert!(!run.stdout.contains("STARTED"), "{}", run.describe());
    assert!(
        text.contains("nonroot-toor") && text.contains("runAsNonRoot") && text.contains("toor"),
        "{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------------------
// 3. readOnlyRootFilesystem
// ---------------------------------------------------------------------------------------

#[test]
fn read_only_root_filesystem_refuses_writes_outside_volumes() {
    let node = busybox_node();
    let run = run_one(
        &node,
        "rofs",
        "touch /x 2>&1; echo root=$?; touch /tmp/y 2>&1; echo tmp=$?; \
         echo data > /data/f && echo volume=$(cat /data/f)",
        json!({
            "securityContext": {"readOnlyRootFilesystem": true},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }),
        json!({"volumes": [{"name": "data", "emptyDir": {}}]}),
    );
    run.succeeded();
    assert_ne!(
        run.field("root"),
        "0",
        "touch /x should fail:\n{}",
        run.describe()
    );
    assert_ne!(
        run.field("tmp"),
        "0",
        "touch /tmp/y should fail:\n{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("Read-only file system"),
        "the write should fail with EROFS:\n{}",
        run.describe()
    );
    assert_eq!(run.field("volume"), "data", "{}", run.describe());

    // Without the setting the same write works: the refusal is the setting's doing.
    let run = run_one(
        &node,
        "rwfs",
        "touch /x && echo root=ok",
        json!({}),
        json!({}),
    );
    run.succeeded();
    assert_eq!(run.field("root"), "ok", "{}", run.describe());
}

// ---------------------------------------------------------------------------------------
// 4. Capabilities
// ---------------------------------------------------------------------------------------

/// Runs `grep Cap /proc/self/status` in a container with `security` as its securityContext.
fn caps_of(node: &Node, pod: &str, security: Value) -> String {
    let run = run_one(
        node,
        pod,
        "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
        json!({"securityContext": security}),
        json!({}),
    );
    run.succeeded().to_string()
}

#[test]
fn a_default_container_has_exactly_dockers_fourteen_capabilities() {
    let node = busybox_node();
    let status = caps_of(&node, "caps-default", json!({}));
    assert_caps("CapEff", cap_mask(&status, "CapEff"), DEFAULT_CAPS);
    assert_caps("CapPrm", cap_mask(&status, "CapPrm"), DEFAULT_CAPS);
    assert_caps("CapBnd", cap_mask(&status, "CapBnd"), DEFAULT_CAPS);
    assert_caps("CapAmb", cap_mask(&status, "CapAmb"), 0);
}

#[test]
fn capabilities_add_and_drop_change_the_effective_and_bounding_sets() {
    let node = busybox_node();
    let added = caps_of(
        &node,
        "caps-add",
        json!({"capabilities": {"add": ["NET_ADMIN"]}}),
    );
    let want = DEFAULT_CAPS | 1 << CAP_NET_ADMIN;
    assert_caps("add NET_ADMIN: CapEff", cap_mask(&added, "CapEff"), want);
    assert_caps("add NET_ADMIN: CapBnd", cap_mask(&added, "CapBnd"), want);

    let dropped = caps_of(
        &node,
        "caps-drop-one",
        json!({"capabilities": {"drop": ["NET_RAW"]}}),
    );
    let want = DEFAULT_CAPS & !(1 << CAP_NET_RAW);
    assert_caps("drop NET_RAW: CapEff", cap_mask(&dropped, "CapEff"), want);
    assert_caps("drop NET_RAW: CapBnd", cap_mask(&dropped, "CapBnd"), want);

    let none = caps_of(
        &node,
        "caps-drop-all",
        json!({"capabilities": {"drop": ["ALL"]}}),
    );
    assert_caps("drop ALL: CapEff", cap_mask(&none, "CapEff"), 0);
    assert_caps("drop ALL: CapPrm", cap_mask(&none, "CapPrm"), 0);
    assert_caps("drop ALL: CapBnd", cap_mask(&none, "CapBnd"), 0);

    // drop ALL then add one: just that one.
    let one = caps_of(
        &node,
        "caps-drop-all-add",
        json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}),
    );
    assert_caps(
        "drop ALL add NET_BIND_SERVICE",
        cap_mask(&one, "CapEff"),
        1 << 10,
    );
}

/// Capability names (`SYS_RESOURCE`) this kernel knows that the host's bounding set lacks
/// (on a node that itself runs in a container, for example).
fn caps_the_host_lacks() -> Vec<String> {
    let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAPABILITY_NAMES.len() - 1);
    let host = cap_mask(&host_status(), "CapBnd");
    (0..=last.min(CAPABILITY_NAMES.len() - 1))
        .filter(|bit| host & (1u64 << bit) == 0)
        .map(|bit| CAPABILITY_NAMES[bit].trim_start_matches("CAP_").to_string())
        .collect()
}

#[test]
fn a_privileged_container_has_every_capability_the_host_bounding_set_has() {
    let node = busybox_node();
    let status = caps_of(&node, "caps-privileged", json!({"privileged": true}));
    let host = cap_mask(&host_status(), "CapBnd");
    assert_caps("privileged: CapEff", cap_mask(&status, "CapEff"), host);
    assert_caps("privileged: CapBnd", cap_mask(&status, "CapBnd"), host);
    assert_eq!(status_field(&status, "Seccomp"), "0", "{status}");
    assert_eq!(status_field(&status, "NoNewPrivs"), "0", "{status}");
}

#[test]
fn a_privileged_container_without_the_capabilities_the_host_lacks_has_all_the_others() {
    // What a_privileged_container_has_every_capability_the_host_bounding_set_has checks,
    // with the capabilities the host cannot grant dropped by the pod.
    let node = busybox_node();
    let lacking = caps_the_host_lacks();
    let status = caps_of(
        &node,
        "caps-privileged-drop",
        json!({"privileged": true, "capabilities": {"drop": lacking}}),
    );
    let host = cap_mask(&host_status(), "CapBnd");
    assert_caps("privileged: CapEff", cap_mask(&status, "CapEff"), host);
    assert_caps("privileged: CapBnd", cap_mask(&status, "CapBnd"), host);
    assert_eq!(status_field(&status, "Seccomp"), "0", "{status}");
    assert_eq!(status_field(&status, "NoNewPrivs"), "0", "{status}");
}

#[test]
fn a_non_root_user_has_no_effective_or_permitted_capabilities() {
    let node = busybox_node();
    let status = caps_of(&node, "caps-nonroot", json!({"runAsUser": 1000}));
    assert_caps("uid 1000: CapEff", cap_mask(&status, "CapEff"), 0);
    assert_caps("uid 1000: CapPrm", cap_mask(&status, "CapPrm"), 0);
    assert_caps("uid 1000: CapAmb", cap_mask(&status, "CapAmb"), 0);
    // Even with capabilities added: Kubernetes gives a non-root user none of them.
    let status = caps_of(
        &node,
        "caps-nonroot-add",
        json!({"runAsUser": 1000, "capabilities": {"add": ["NET_ADMIN"]}}),
    );
    assert_caps(
        "uid 1000 + NET_ADMIN: CapEff",
        cap_mask(&status, "CapEff"),
        0,
    );
}

// ---------------------------------------------------------------------------------------
// 5. Masked and read-only paths, /sys, no_new_privs, procMount
// ---------------------------------------------------------------------------------------

/// Prints, for each masked /proc file, its byte count when read (or "unreadable"), the
/// entries of /proc/acpi, what writing /proc/sys and /sys does, and NoNewPrivs.
const PATHS_SCRIPT: &str = r#"
for f in /proc/keys /proc/timer_list /proc/kcore /proc/sched_debug; do
  if [ -e $f ]; then
    n=$(cat $f 2>/dev/null | wc -c)
    echo "read $f=$n"
  fi
done
echo acpi=$(ls -A /proc/acpi 2>/dev/null | wc -l)
{ echo x > /proc/sys/kernel/hostname; } 2>/tmp/err; echo procsys=$?; echo "procsys-err=$(cat /tmp/err)"
{ touch /sys/x; } 2>/tmp/err; echo sys=$?; echo "sys-err=$(cat /tmp/err)"
if [ -e /proc/sysrq-trigger ]; then
  { echo 1 > /proc/sysrq-trigger; } 2>/tmp/err; echo sysrq=$?; echo "sysrq-err=$(cat /tmp/err)"
fi
grep NoNewPrivs /proc/self/status
grep -E ' /proc/(kcore|keys|timer_list|acpi|sys) ' /proc/self/mountinfo | while read -r id parent dev root mnt opts rest; do echo "mount $mnt $opts"; done
"#;

#[test]
fn masked_proc_files_read_empty_and_proc_sys_and_sys_are_read_only() {
    let node = busybox_node();
    let run = run_one(&node, "masked", PATHS_SCRIPT, json!({}), json!({}));
    run.succeeded();
    // /proc/keys and /proc/timer_list exist on every kernel this runs on and have content
    // on the host: in the container they read as empty.
    assert!(
        Path::new("/proc/keys").exists() && Path::new("/proc/timer_list").exists(),
        "this kernel lacks /proc/keys or /proc/timer_list"
    );
    for f in [
        "/proc/keys",
        "/proc/timer_list",
        "/proc/kcore",
        "/proc/sched_debug",
    ] {
        if let Some(n) = field(&run.stdout, &format!("read {f}")) {
            assert_eq!(n, "0", "{f} should read as empty:\n{}", run.describe());
        }
    }
    assert_eq!(run.field("read /proc/keys"), "0", "{}", run.describe());
    assert_eq!(
        run.field("read /proc/timer_list"),
        "0",
        "{}",
        run.describe()
    );
    assert_eq!(run.field("acpi"), "0", "{}", run.describe());
    // /proc/acpi is hidden by a read-only mount of its own.
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("mount /proc/acpi ro")),
        "/proc/acpi should be covered by a read-only mount:\n{}",
        run.describe()
    );
    // /proc/sys: read-only (EROFS, not just EPERM for want of CAP_SYS_ADMIN).
    assert_ne!(run.field("procsys"), "0", "{}", run.describe());
    assert!(
        run.field("procsys-err").contains("Read-only file system"),
        "{}",
        run.describe()
    );
    if let Some(code) = field(&run.stdout, "sysrq") {
        assert_ne!(code, "0", "{}", run.describe());
        assert!(
            run.field("sysrq-err").contains("Read-only file system"),
            "{}",
            run.describe()
        );
    }
    assert_ne!(run.field("sys"), "0", "{}", run.describe());
    assert!(
        run.field("sys-err").contains("Read-only file system"),
        "{}",
        run.describe()
    );
    assert_eq!(
        status_field(&run.stdout, "NoNewPrivs"),
        "1",
        "{}",
        run.describe()
    );
}

#[test]
fn allow_privilege_escalation_true_leaves_no_new_privs_off() {
    let node = busybox_node();
    let on = caps_of(&node, "nnp-default", json!({}));
    assert_eq!(status_field(&on, "NoNewPrivs"), "1", "{on}");
    let explicit = caps_of(
        &node,
        "nnp-false",
        json!({"allowPrivilegeEscalation": false}),
    );
    assert_eq!(status_field(&explicit, "NoNewPrivs"), "1", "{explicit}");
    let off = caps_of(&node, "nnp-true", json!({"allowPrivilegeEscalation": true}));
    assert_eq!(status_field(&off, "NoNewPrivs"), "0", "{off}");
}

#[test]
fn proc_mount_unmasked_without_a_user_namespace_is_refused() {
    // Unmasked /proc without a user namespace would let the container write the host's
    // sysctls (Kubernetes, too, requires hostUsers: false for it); layerlet has no user
    // namespaces yet, so it refuses the setting with the reason.
    let node = busybox_node();
    let run = run_one(
        &node,
        "unmasked",
        PATHS_SCRIPT,
        json!({"securityContext": {"procMount": "Unmasked"}}),
        json!({}),
    );
    let output = run.failed();
    assert!(
        output.contains("procMount: Unmasked needs a user namespace"),
        "{}",
        run.describe()
    );
}

#[test]
fn an_unmasked_proc_does_not_let_a_container_write_the_hosts_global_sysctls() {
    // kernel.printk_ratelimit is global (not per namespace). The container writes back the
    // value it reads, so the host's setting is unchanged even where the write succeeds.
    let node = busybox_node();
    let before = std::fs::read_to_string("/proc/sys/kernel/printk_ratelimit").unwrap();
    let run = run_one(
        &node,
        "unmasked-sysctl",
        "v=$(cat /proc/sys/kernel/printk_ratelimit); \
         { echo $v > /proc/sys/kernel/printk_ratelimit; } 2>/tmp/err; echo write=$?; \
         echo \"err=$(cat /tmp/err)\"",
        json!({"securityContext": {"procMount": "Unmasked"}}),
        json!({}),
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/printk_ratelimit").unwrap(),
        before
    );
    if run.code != Some(0) {
        // Refused, as Kubernetes refuses it without hostUsers: false.
        assert!(run.failed().contains("procMount"), "{}", run.describe());
        return;
    }
    assert_ne!(
        run.field("write"),
        "0",
        "a container without CAP_SYS_ADMIN wrote a host-global sysctl:\n{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------------------
// 6. Devices
// ---------------------------------------------------------------------------------------

#[test]
fn a_device_node_made_with_mknod_cannot_reach_host_devices() {
    let node = busybox_node();
    // A disk this process can open, so a refused read inside the container means something.
    let (major, minor, _) = common::host_block_device();
    // In /dev (a tmpfs without nodev) and in /tmp (the overlay rootfs): a node of the host's
    // disk and of /dev/mem; a copy of /dev/null made the same way is the control.
    let script = format!(
        r#"
for dir in /dev /tmp; do
  mknod $dir/disk b {major} {minor}; echo "$dir mknod-disk=$?"
  mknod $dir/mem c 1 1; echo "$dir mknod-mem=$?"
  mknod $dir/mynull c 1 3; echo "$dir mknod-null=$?"
  for n in disk mem; do
    if [ -e $dir/$n ]; then
      head -c 16 $dir/$n > /dev/null 2>/tmp/err; echo "$dir read-$n=$?"; echo "$dir err-$n=$(cat /tmp/err)"
    fi
  done
  echo "$dir read-null=$(head -c 16 $dir/mynull | wc -c) $?"
done
head -c 16 /dev/null; echo "devnull=$?"
"#
    );
    let run = run_one(&node, "mknod", &script, json!({}), json!({}));
    run.succeeded();
    for dir in ["/dev", "/tmp"] {
        for n in ["disk", "mem"] {
            if let Some(code) = field(&run.stdout, &format!("{dir} read-{n}")) {
                assert_ne!(
                    code,
                    "0",
                    "reading {dir}/{n} should fail:\n{}",
                    run.describe()
                );
            }
        }
    }
    // The nodes in /dev were made (CAP_MKNOD is a default capability), so what refuses the
    // read is the devices cgroup: EPERM.
    assert_eq!(run.field("/dev mknod-disk"), "0", "{}", run.describe());
    assert_eq!(run.field("/dev mknod-mem"), "0", "{}", run.describe());
    assert_eq!(run.field("/dev read-null"), "0 0", "{}", run.describe());
    assert!(
        run.field("/dev err-disk")
            .contains("Operation not permitted"),
        "{}",
        run.describe()
    );
    assert!(
        run.field("/dev err-mem")
            .contains("Operation not permitted"),
        "{}",
        run.describe()
    );
    assert_eq!(run.field("devnull"), "0", "{}", run.describe());
}

#[test]
fn a_device_node_shipped_in_the_image_cannot_reach_host_devices() {
    let node = busybox_node();
    import(
        &node,
        "example.com/security/devices:1",
        &busybox_with(|l| {
            l.dir("opt", 0o755)
                .char_device("opt/mem", 1, 1)
                .char_device("opt/null", 1, 3);
        }),
    );
    let pod = Pod::new(
        &node,
        &manifest(
            "image-dev",
            vec![container_of(
                "example.com/security/devices:1",
                "c",
                "ls -l /opt; head -c 16 /opt/mem > /dev/null; echo mem=$?; \
                 echo null=$(head -c 16 /opt/null | wc -c)",
                json!({}),
            )],
            json!({}),
        ),
    );
    let run = pod.run();
    run.succeeded();
    assert_ne!(run.field("mem"), "0", "{}", run.describe());
}

// ---------------------------------------------------------------------------------------
// 7. seccomp
// ---------------------------------------------------------------------------------------

const UNSHARE_SCRIPT: &str = "grep Seccomp: /proc/self/status; \
                              /bin/busybox unshare -U true 2>/tmp/err; echo unshare=$?; \
                              echo \"unshare-err=$(cat /tmp/err)\"";

#[test]
fn runtime_default_seccomp_blocks_user_namespaces_and_unconfined_allows_them() {
    let node = busybox_node();
    let run = run_one(
        &node,
        "seccomp-default",
        UNSHARE_SCRIPT,
        json!({}),
        json!({}),
    );
    run.succeeded();
    assert_eq!(
        status_field(&run.stdout, "Seccomp"),
        "2",
        "{}",
        run.describe()
    );
    assert_ne!(run.field("unshare"), "0", "{}", run.describe());
    assert!(
        run.field("unshare-err").contains("Operation not permitted"),
        "{}",
        run.describe()
    );

    // RuntimeDefault said explicitly, at the pod level: the same.
    let run = run_one(
        &node,
        "seccomp-runtime-default",
        UNSHARE_SCRIPT,
        json!({}),
        json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}),
    );
    run.succeeded();
    assert_eq!(
        status_field(&run.stdout, "Seccomp"),
        "2",
        "{}",
        run.describe()
    );
    assert_ne!(run.field("unshare"), "0", "{}", run.describe());

    let run = run_one(
        &node,
        "seccomp-unconfined",
        UNSHARE_SCRIPT,
        json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
        json!({}),
    );
    run.succeeded();
    assert_eq!(
        status_field(&run.stdout, "Seccomp"),
        "0",
        "{}",
        run.describe()
    );
    assert_eq!(run.field("unshare"), "0", "{}", run.describe());
}

#[test]
fn a_localhost_seccomp_profile_denies_exactly_its_syscalls() {
    let node = busybox_node();
    let profiles = node.root().join("seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("deny-mkdir.json"),
        serde_json::to_vec_pretty(&json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
        }))
        .unwrap(),
    )
    .unwrap();
    let run = run_one(
        &node,
        "seccomp-localhost",
        "grep Seccomp: /proc/self/status; mkdir /tmp/x 2>/tmp/err; echo mkdir=$?; \
         echo \"mkdir-err=$(cat /tmp/err)\"; touch /tmp/y; echo touch=$?; \
         /bin/busybox unshare -U true; echo unshare=$?",
        json!({"securityContext": {"seccompProfile": {
            "type": "Localhost", "localhostProfile": "profiles/deny-mkdir.json"}}}),
        json!({}),
    );
    run.succeeded();
    assert_eq!(
        status_field(&run.stdout, "Seccomp"),
        "2",
        "{}",
        run.describe()
    );
    assert_ne!(run.field("mkdir"), "0", "{}", run.describe());
    assert!(
        run.field("mkdir-err").contains("Operation not permitted"),
        "{}",
        run.describe()
    );
    assert_eq!(run.field("touch"), "0", "{}", run.describe());
    // Only mkdir is denied: what RuntimeDefault refuses is allowed by this profile.
    assert_eq!(run.field("unshare"), "0", "{}", run.describe());

    // The same commands without the profile: mkdir works.
    let run = run_one(
        &node,
        "seccomp-nolocal",
        "mkdir /tmp/x; echo mkdir=$?",
        json!({}),
        json!({}),
    );
    run.succeeded();
    assert_eq!(run.field("mkdir"), "0", "{}", run.describe());
}

#[test]
fn a_localhost_seccomp_profile_path_that_climbs_out_is_refused() {
    let node = busybox_node();
    // A valid profile outside the profile directory, so only the path can be the reason.
    std::fs::create_dir_all(node.root().join("seccomp")).unwrap();
    std::fs::write(
        node.root().join("outside.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#,
    )
    .unwrap();
    for (pod, path) in [
        ("seccomp-dotdot", "../outside.json"),
        ("seccomp-abs", "/etc/passwd"),
    ] {
        let run = run_one(
            &node,
            pod,
            "echo STARTED",
            json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": path}}}),
            json!({}),
        );
        let text = run.failed();
        assert!(!run.stdout.contains("STARTED"), "{}", run.describe());
        assert!(
            text.contains(path) && text.contains("seccomp"),
            "the refusal should name the profile path {path:?}:\n{}",
            run.describe()
        );
    }
    let run = run_one(
        &node,
        "seccomp-missing",
        "echo STARTED",
        json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "nope.json"}}}),
        json!({}),
    );
    let text = run.failed();
    assert!(text.contains("nope.json"), "{}", run.describe());
}

// ---------------------------------------------------------------------------------------
// 8. Known escapes
// ---------------------------------------------------------------------------------------

/// Runs a pod of an image built from busybox plus `extra`, the container running `script`.
fn run_image(node: &Node, pod: &str, extra: impl FnOnce(&mut LayerBuilder), script: &str) -> Run {
    let reference = format!("example.com/security/{pod}:1");
    import(node, &reference, &busybox_with(extra));
    let p = Pod::new(
        node,
        &manifest(
            pod,
            vec![container_of(&reference, "c", script, json!({}))],
            json!({}),
        ),
    );
    p.run()
}

/// What a container saw of its /proc, /dev and the places an image's symlinks pointed to:
/// `KEY=value` lines of file types (`stat -c %F`) and filesystem types (`stat -f -c %T`, or
/// the magic number with `%t`: busybox has no name for overlayfs).
const MOUNT_POINTS_SCRIPT: &str = r#"
echo proc-type=$(stat -c %F /proc); echo proc-fs=$(stat -f -c %T /proc)
echo dev-type=$(stat -c %F /dev); echo dev-fs=$(stat -f -c %T /dev)
echo root-fs=$(stat -f -c %t /); echo tmp-fs=$(stat -f -c %t /tmp)
echo null=$(stat -c '%F %t:%T' /dev/null)
echo self=$(ls -d /self /tmp/self /tmp/null /tmp/pts 2>/dev/null | tr '\n' ' ')
echo keys=$(cat /proc/keys | wc -c)
"#;

/// Runs an image whose `link` (a top-level directory the runtime mounts on) is a symlink to
/// `target`. layerlet may refuse it, naming the symlink, or start the container with the
/// symlink hidden; either way nothing is mounted through the symlink.
fn assert_symlinked_mount_point_is_not_followed(node: &Node, pod: &str, link: &str, target: &str) {
    let run = run_image(
        node,
        pod,
        |l| {
            l.symlink(link, target);
        },
        MOUNT_POINTS_SCRIPT,
    );
    if run.code != Some(0) {
        let text = run.failed();
        assert!(
            text.contains("symlink") && text.contains(&format!("/{link}")),
            "/{link} -> {target}: the refusal should say /{link} is a symlink:\n{}",
            run.describe()
        );
        return;
    }
    let what = format!("/{link} -> {target}");
    assert_eq!(
        run.field("proc-type"),
        "directory",
        "{what}:\n{}",
        run.describe()
    );
    assert_eq!(run.field("proc-fs"), "proc", "{what}:\n{}", run.describe());
    assert_eq!(
        run.field("dev-type"),
        "directory",
        "{what}:\n{}",
        run.describe()
    );
    assert_eq!(run.field("dev-fs"), "tmpfs", "{what}:\n{}", run.describe());
    // The symlink's target got neither procfs nor the /dev tmpfs.
    // (0x794c7630 is overlayfs' magic number.)
    assert_eq!(
        run.field("root-fs"),
        "794c7630",
        "{what}:\n{}",
        run.describe()
    );
    assert_eq!(
        run.field("tmp-fs"),
        "794c7630",
        "{what}:\n{}",
        run.describe()
    );
    assert_eq!(run.field("self").trim(), "", "{what}:\n{}", run.describe());
    assert_eq!(
        run.field("null"),
        "character special file 1:3",
        "{what}:\n{}",
        run.describe()
    );
    // The masks went on the container's own /proc.
    assert_eq!(run.field("keys"), "0", "{what}:\n{}", run.describe());
}

#[test]
fn an_image_whose_proc_is_a_symlink_cannot_redirect_the_proc_mount() {
    // CVE-2019-16884: mounting procfs "on /proc" followed a symlink out of the rootfs (or onto
    // a directory of the attacker's choosing), and the masks with it.
    let node = busybox_node();
    assert_symlinked_mount_point_is_not_followed(&node, "proc-to-root", "proc", "/");
    assert_symlinked_mount_point_is_not_followed(&node, "proc-to-tmp", "proc", "/tmp");
    assert_symlinked_mount_point_is_not_followed(&node, "proc-relative", "proc", "tmp");
}

#[test]
fn an_image_whose_dev_is_a_symlink_cannot_redirect_the_dev_mount() {
    let node = busybox_node();
    assert_symlinked_mount_point_is_not_followed(&node, "dev-to-tmp", "dev", "/tmp");
    assert_symlinked_mount_point_is_not_followed(&node, "dev-to-root", "dev", "/");
}

#[test]
fn an_image_whose_dev_null_or_console_is_a_symlink_cannot_redirect_writes_to_procfs() {
    // CVE-2025-31133 / CVE-2025-52565: the runtime bind-mounts /dev/null over masked paths
    // and /dev/console for a terminal; if those follow the image's symlinks, masks become
    // bind mounts of writable procfs files such as core_pattern.
    let node = busybox_node();
    let core_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let run = run_image(
        &node,
        "dev-null-link",
        |l| {
            l.dir("dev", 0o755)
                .symlink("dev/null", "/proc/sys/kernel/core_pattern")
                .symlink("dev/console", "/proc/sysrq-trigger")
                .symlink("dev/ptmx", "/proc/sys/kernel/core_pattern");
        },
        "echo null=$(stat -c '%F %t:%T' /dev/null); echo keys=$(cat /proc/keys | wc -c); \
         echo '|/bin/evil' > /dev/null; echo '|/bin/evil' > /proc/keys; \
         echo timer=$(cat /proc/timer_list | wc -c)",
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core_pattern,
        "the host's core_pattern changed:\n{}",
        run.describe()
    );
    if run.code != Some(0) {
        assert!(run.failed().contains("symlink"), "{}", run.describe());
        return;
    }
    assert_eq!(
        run.field("null"),
        "character special file 1:3",
        "{}",
        run.describe()
    );
    assert_eq!(run.field("keys"), "0", "{}", run.describe());
    assert_eq!(run.field("timer"), "0", "{}", run.describe());
}

/// Host files `hosts`, `hostname` and `resolv.conf` with known content, in a new directory
/// `name` of the node's scratch directory.
fn host_owned_files(node: &Node, name: &str) -> PathBuf {
    let dir = node.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ETC_FILES {
        std::fs::write(dir.join(f), format!("host-owned {f}\n")).unwrap();
    }
    dir
}

const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// The files of [`host_owned_files`] still hold what they were created with.
fn assert_host_files_untouched(dir: &Path, run: &Run) {
    for f in ETC_FILES {
        assert_eq!(
            std::fs::read_to_string(dir.join(f)).unwrap(),
            format!("host-owned {f}\n"),
            "host file {}/{f} was written through the image's symlink:\n{}",
            dir.display(),
            run.describe()
        );
    }
}

const ETC_SCRIPT: &str = "cat /etc/hosts; echo hostname=$(cat /etc/hostname); \
                          echo x >> /etc/hosts; echo x >> /etc/hostname; echo x >> /etc/resolv.conf; \
                          echo append=$?";

/// The container either ran and saw the pod's own /etc/hosts, or was refused over a symlink.
fn assert_pod_etc_files(run: &Run, pod: &str) {
    if run.code == Some(0) {
        assert!(
            run.stdout.contains("localhost") && !run.stdout.contains("host-owned"),
            "the container should see the pod's /etc/hosts:\n{}",
            run.describe()
        );
        assert_eq!(run.field("hostname"), pod, "{}", run.describe());
    } else {
        assert!(run.failed().contains("symlink"), "{}", run.describe());
    }
}

#[test]
fn an_image_whose_etc_hosts_is_a_symlink_to_a_host_file_does_not_get_it_written() {
    let node = busybox_node();
    let host_dir = host_owned_files(&node, "host-owned");
    let run = run_image(
        &node,
        "etc-links",
        |l| {
            for f in ETC_FILES {
                l.symlink(&format!("etc/{f}"), host_dir.join(f).to_str().unwrap());
            }
        },
        ETC_SCRIPT,
    );
    assert_host_files_untouched(&host_dir, &run);
    assert_pod_etc_files(&run, "etc-links");
}

#[test]
fn an_image_whose_etc_is_a_symlink_to_a_host_directory_does_not_get_it_written() {
    let node = busybox_node();
    let host_dir = host_owned_files(&node, "host-etc");
    let run = run_image(
        &node,
        "etc-dir-link",
        |l| {
            l.whiteout("etc").symlink("etc", host_dir.to_str().unwrap());
        },
        ETC_SCRIPT,
    );
    assert_host_files_untouched(&host_dir, &run);
    assert_eq!(
        common::list_dir(&host_dir),
        vec!["hostname", "hosts", "resolv.conf"],
        "nothing may be created in the host directory"
    );
    assert_pod_etc_files(&run, "etc-dir-link");
}

#[test]
fn a_volume_whose_mount_path_the_image_makes_a_symlink_is_not_mounted_outside_the_rootfs() {
    // The image turns the volume's mountPath into a symlink to a host directory: the bind
    // mount must not follow it (nor the container's writes).
    let node = busybox_node();
    let host_dir = node.dir.path().join("host-target");
    std::fs::create_dir_all(&host_dir).unwrap();
    let reference = "example.com/security/volume-link:1";
    let target = host_dir.to_str().unwrap().to_string();
    import(
        &node,
        reference,
        &busybox_with(|l| {
            l.symlink("data", &target);
        }),
    );
    let pod = Pod::new(
        &node,
        &manifest(
            "volume-link",
            vec![container_of(
                reference,
                "c",
                "echo hello > /data/written; echo wrote=$?",
                json!({"volumeMounts": [{"name": "v", "mountPath": "/data"}]}),
            )],
            json!({"volumes": [{"name": "v", "emptyDir": {}}]}),
        ),
    );
    let run = pod.run();
    assert!(
        common::list_dir(&host_dir).is_empty(),
        "the container wrote into the host directory its image's symlink names:\n{}",
        run.describe()
    );
    if run.code != Some(0) {
        let text = run.failed();
        assert!(
            text.contains("symlink") && text.contains("/data"),
            "the refusal should say /data is a symlink:\n{}",
            run.describe()
        );
    }
}

#[test]
fn a_working_dir_through_proc_self_fd_is_refused() {
    // CVE-2024-21626: a working directory reached through a leaked descriptor lies outside
    // the container's root.
    let node = busybox_node();
    for (i, dir) in [
        "/proc/self/fd/7",
        "/proc/self/cwd",
        "/proc/1/root/..",
        "//proc/self/fd/7",
    ]
    .iter()
    .enumerate()
    {
        let run = run_one(
            &node,
            &format!("cwd-{i}"),
            "echo cwd=$(pwd)",
            json!({"workingDir": dir}),
            json!({}),
        );
        let text = run.failed();
        assert!(
            !run.stdout.contains("cwd="),
            "workingDir {dir}:\n{}",
            run.describe()
        );
        assert!(
            text.contains("workingDir"),
            "workingDir {dir}: the refusal should name workingDir:\n{}",
            run.describe()
        );
    }
}

#[test]
fn an_image_working_dir_through_proc_self_fd_is_refused() {
    let node = busybox_node();
    import(
        &node,
        "example.com/security/fd-workdir:1",
        &ImageSpec {
            working_dir: Some("/proc/self/fd/7".into()),
            ..busybox()
        },
    );
    let pod = Pod::new(
        &node,
        &manifest(
            "image-cwd",
            vec![container_of(
                "example.com/security/fd-workdir:1",
                "c",
                "echo cwd=$(pwd)",
                json!({}),
            )],
            json!({}),
        ),
    );
    let run = pod.run();
    let text = run.failed();
    assert!(!run.stdout.contains("cwd="), "{}", run.describe());
    assert!(
        text.contains("workingDir") && text.contains("/proc/self/fd/7"),
        "{}",
        run.describe()
    );
}

#[test]
fn an_image_working_dir_symlinked_to_a_leaked_descriptor_never_starts_outside_the_root() {
    // The same escape with the path hidden in the image: WorkingDir is a symlink into
    // /proc/self/fd. Whatever descriptor numbers the runtime has open while it prepares the
    // container, the process must never start with a working directory outside its root.
    let node = busybox_node();
    let mut extra = LayerBuilder::new();
    for n in 3..=12 {
        extra.symlink(&format!("fd{n}"), &format!("/proc/self/fd/{n}"));
    }
    let mut spec = busybox();
    spec.layers.push(extra.build(Compression::None));
    import(&node, "example.com/security/fd-links:1", &spec);
    let containers: Vec<Value> = (3..=12)
        .map(|n| {
            container_of(
                "example.com/security/fd-links:1",
                &format!("fd{n}"),
                "echo cwd=$(pwd); ls .. | head -n 3",
                json!({"workingDir": format!("/fd{n}")}),
            )
        })
        .collect();
    let pod = Pod::new(&node, &manifest("fd-links", containers, json!({})));
    let run = pod.run();
    for n in 3..=12 {
        let out = node.run(&["logs", &pod.c(&format!("fd{n}"))]);
        let logs = String::from_utf8_lossy(&out.stdout);
        if let Some(cwd) = field(&logs, "cwd") {
            assert!(
                cwd.starts_with('/') && !cwd.contains("unreachable"),
                "container fd{n} started in {cwd:?}:\n{logs}\n{}",
                run.describe()
            );
        }
    }
}

#[test]
fn a_volume_mounted_over_proc_is_refused() {
    let node = busybox_node();
    let host_dir = node.dir.path().join("fake-proc");
    std::fs::create_dir_all(&host_dir).unwrap();
    let cases = [
        (
            "vol-proc-empty",
            "/proc",
            json!({"name": "v", "emptyDir": {}}),
        ),
        (
            "vol-proc-host",
            "/proc",
            json!({"name": "v", "hostPath": {"path": host_dir.to_str().unwrap()}}),
        ),
        (
            "vol-proc-sub",
            "/proc/sys",
            json!({"name": "v", "emptyDir": {}}),
        ),
        (
            "vol-proc-slash",
            "/proc/",
            json!({"name": "v", "emptyDir": {}}),
        ),
        ("vol-sys", "/sys", json!({"name": "v", "emptyDir": {}})),
    ];
    for (pod, path, volume) in cases {
        let run = run_one(
            &node,
            pod,
            "echo STARTED",
            json!({"volumeMounts": [{"name": "v", "mountPath": path}]}),
            json!({"volumes": [volume]}),
        );
        let text = run.failed();
        assert!(
            !run.stdout.contains("STARTED"),
            "{path}:\n{}",
            run.describe()
        );
        assert!(
            text.contains(path) && text.contains(pod),
            "the refusal should name the pod and {path}:\n{}",
            run.describe()
        );
    }
}

/// The container's side of CVE-2019-5736: find the `layerlet __monitor` processes of the
/// node whose run root is `run_root` (other nodes' monitors on this machine are left alone)
/// and try to open each one's /proc/PID/exe for writing: directly, with dd, and by reopening
/// a read-only descriptor through /proc/self/fd. Prints `monitor PID exe=...` for each,
/// `refused HOW PID: ERROR` or `WROTE HOW PID` per attempt, and ends with `attack done`.
fn exe_attack_script(run_root: &Path) -> String {
    r#"
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  [ "$(tr '\0' '\n' < $d/cmdline 2>/dev/null | sed -n 2p)" = "__monitor" ] || continue
  case "$(tr '\0' ' ' < $d/cmdline)" in *"RUN_ROOT/"*) ;; *) continue ;; esac
  echo "monitor $pid exe=$(readlink $d/exe 2>&1)"
  if (echo x > $d/exe) 2>/tmp/err; then echo "WROTE echo $pid"; else echo "refused echo $pid: $(cat /tmp/err)"; fi
  if dd if=/dev/zero of=$d/exe bs=1 count=1 conv=notrunc 2>/tmp/err; then echo "WROTE dd $pid"; else echo "refused dd $pid: $(cat /tmp/err)"; fi
  if (exec 3< $d/exe && echo x > /proc/self/fd/3) 2>/tmp/err; then echo "WROTE reopen $pid"; else echo "refused reopen $pid: $(cat /tmp/err)"; fi
done
echo "attack done"
sleep 3600
"#
    .replace("RUN_ROOT", run_root.to_str().unwrap())
}

fn exe_attack(pod_name: &str, security: Value) {
    let node = busybox_node();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_layerlet"));
    let before = sha256_of(&binary);
    // Monitors run from the monitor binary installed beside layerlet.
    let monitor_binary = PathBuf::from(env!("CARGO_BIN_EXE_layerlet-monitor"));
    let monitor_before = sha256_of(&monitor_binary);
    let pod = Pod::new(
        &node,
        &manifest(
            pod_name,
            vec![container(
                "attacker",
                &exe_attack_script(&node.run_root()),
                json!({"securityContext": security}),
            )],
            json!({"hostPID": true}),
        ),
    );
    pod.start();
    let logs = wait_for_line(&node, &pod.c("attacker"), "attack done");
    if std::env::var_os("LAYERLET_TEST_VERBOSE").is_some() {
        eprintln!("{pod_name}:\n{logs}");
    }
    // The container found its own monitor, so the attack was really tried.
    let monitors: Vec<&str> = logs.lines().filter(|l| l.starts_with("monitor ")).collect();
    assert_eq!(
        monitors.len(),
        1,
        "the container should see its monitor in a hostPID pod:\n{logs}"
    );
    assert_eq!(
        logs.lines().filter(|l| l.starts_with("refused ")).count(),
        3,
        "every write should have been tried and refused:\n{logs}"
    );
    assert!(
        !logs.contains("WROTE"),
        "a container wrote to a monitor's executable:\n{logs}"
    );
    // The file the monitor runs (the host's view) still has the binary's bytes, and so does
    // the binary itself.
    let ours = monitors_of(&node.run_root());
    assert!(
        !ours.is_empty(),
        "no monitor of this node found on the host"
    );
    for (pid, cmdline) in ours {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(
            sha256_of(&exe),
            monitor_before,
            "monitor {pid} ({cmdline}) runs {} whose content changed",
            exe.display()
        );
        assert_ne!(
            exe, monitor_binary,
            "the monitor should run from a sealed copy, not the binary"
        );
    }
    assert_eq!(sha256_of(&binary), before, "the layerlet binary changed");
    assert_eq!(
        sha256_of(&monitor_binary),
        monitor_before,
        "the monitor binary changed"
    );
}

#[test]
fn a_default_container_cannot_overwrite_the_monitor_binary_through_proc_pid_exe() {
    exe_attack("exe-default", json!({}));
}

#[test]
fn a_container_with_sys_ptrace_cannot_overwrite_the_monitor_binary_through_proc_pid_exe() {
    // CAP_SYS_PTRACE opens the non-dumpable monitors' /proc/PID/exe: only the sealed,
    // read-only copy stands between the container and the binary.
    exe_attack(
        "exe-ptrace",
        json!({"capabilities": {"add": ["SYS_PTRACE"]}}),
    );
}

#[test]
fn a_privileged_container_cannot_overwrite_the_monitor_binary_through_proc_pid_exe() {
    // The capabilities the host lacks are dropped: see
    // a_privileged_container_has_every_capability_the_host_bounding_set_has.
    exe_attack(
        "exe-privileged",
        json!({"privileged": true, "capabilities": {"drop": caps_the_host_lacks()}}),
    );
}

#[test]
fn exec_runs_with_the_containers_user_capabilities_seccomp_and_no_new_privs() {
    // An exec'd process joins the container: it must not bring the CLI's full capability
    // set, an unfiltered syscall table or the host's root user with it.
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "exec-locked",
            vec![
                container("root", "echo ready; sleep 3600", json!({})),
                container(
                    "user",
                    "echo ready; sleep 3600",
                    json!({"securityContext": {"runAsUser": 1000, "runAsGroup": 1000}}),
                ),
            ],
            json!({}),
        ),
    );
    pod.start();
    let check = "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
                 /bin/busybox unshare -U true 2>&1; echo unshare=$?";
    for (name, uid, eff) in [("root", "0", DEFAULT_CAPS), ("user", "1000", 0)] {
        wait_for_line(&node, &pod.c(name), "ready");
        let out = Run::from(node.run(&["exec", &pod.c(name), "--", "sh", "-c", check]));
        let status = out.succeeded();
        assert_eq!(
            status.lines().next(),
            Some(uid),
            "{name}:\n{}",
            out.describe()
        );
        assert_caps(
            &format!("exec in {name}: CapEff"),
            cap_mask(status, "CapEff"),
            eff,
        );
        assert_caps(
            &format!("exec in {name}: CapBnd"),
            cap_mask(status, "CapBnd"),
            DEFAULT_CAPS,
        );
        assert_eq!(
            status_field(status, "NoNewPrivs"),
            "1",
            "{name}:\n{}",
            out.describe()
        );
        assert_eq!(
            status_field(status, "Seccomp"),
            "2",
            "{name}:\n{}",
            out.describe()
        );
        assert_ne!(
            field(status, "unshare"),
            Some("0"),
            "{name}:\n{}",
            out.describe()
        );
    }
}

// ---------------------------------------------------------------------------------------
// 9. inspect
// ---------------------------------------------------------------------------------------

#[test]
fn inspect_shows_the_effective_user_capabilities_seccomp_profile_and_masked_paths() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "inspected",
            vec![
                container(
                    "root",
                    "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
                    json!({"securityContext": {
                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["NET_RAW"]},
                    }}),
                ),
                container(
                    "user",
                    "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
                    json!({"securityContext": {
                        "runAsUser": 1000, "runAsGroup": 1001,
                        "allowPrivilegeEscalation": true,
                        "seccompProfile": {"type": "Unconfined"},
                    }}),
                ),
            ],
            json!({"securityContext": {"supplementalGroups": [3000]}}),
        ),
    );
    pod.run().succeeded();

    let root = node.json(&["inspect", &pod.c("root")]);
    let sec = &root["Security"];
    assert_eq!(sec["User"], "0:0", "{sec:#}");
    let caps: Vec<String> = serde_json::from_value(sec["Capabilities"].clone()).unwrap();
    assert!(caps.contains(&"CAP_NET_ADMIN".to_string()), "{sec:#}");
    assert!(!caps.contains(&"CAP_NET_RAW".to_string()), "{sec:#}");
    assert_eq!(sec["Seccomp"], "RuntimeDefault", "{sec:#}");
    assert_eq!(sec["NoNewPrivileges"], true, "{sec:#}");
    let masked: Vec<String> = serde_json::from_value(sec["MaskedPaths"].clone()).unwrap();
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/acpi",
    ] {
        assert!(
            masked.iter().any(|m| m == p),
            "{p} missing from MaskedPaths: {sec:#}"
        );
    }
    let readonly: Vec<String> = serde_json::from_value(sec["ReadonlyPaths"].clone()).unwrap();
    assert!(readonly.iter().any(|m| m == "/proc/sys"), "{sec:#}");
    // What inspect says is what the container had.
    let seen = node.ok(&["logs", &pod.c("root")]);
    assert_caps(
        "inspect vs the container's CapEff",
        cap_mask(&seen, "CapEff"),
        mask_of(&caps),
    );

    let user = node.json(&["inspect", &pod.c("user")]);
    let sec = &user["Security"];
    assert_eq!(sec["User"], "1000:1001", "{sec:#}");
    assert_eq!(sec["Capabilities"], json!([]), "{sec:#}");
    assert_eq!(sec["Seccomp"], "Unconfined", "{sec:#}");
    assert_eq!(sec["NoNewPrivileges"], false, "{sec:#}");
    let seen = node.ok(&["logs", &pod.c("user")]);
    assert_eq!(cap_mask(&seen, "CapEff"), 0, "{seen}");
    assert_eq!(status_field(&seen, "Seccomp"), "0", "{seen}");
    assert_eq!(status_field(&seen, "NoNewPrivs"), "0", "{seen}");
}

#[test]
fn inspect_names_a_localhost_seccomp_profile() {
    let node = busybox_node();
    let profiles = node.root().join("seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("audit.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let pod = Pod::new(
        &node,
        &manifest(
            "inspected-local",
            vec![container(
                "c",
                "true",
                json!({"securityContext": {"seccompProfile": {
                    "type": "Localhost", "localhostProfile": "profiles/audit.json"}}}),
            )],
            json!({}),
        ),
    );
    pod.run().succeeded();
    let sec = &node.json(&["inspect", &pod.c("c")])["Security"];
    let seccomp = sec["Seccomp"].as_str().unwrap_or_default();
    assert!(
        seccomp.starts_with("Localhost") && seccomp.contains("profiles/audit.json"),
        "{sec:#}"
    );
}
