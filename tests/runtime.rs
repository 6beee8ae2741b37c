//! The container runtime through the real `layerlet` binary, as root, with real namespaces,
//! overlay mounts and processes: what a container sees from inside, what its pod shares,
//! copy-on-write, stop and its grace period, exit codes that outlive the process that started
//! the pod, CRI logs, `--rm`, bad input, users, env and working directories.
//!
//! Every pod is removed by a guard (`layerlet rm -t 0`) when its test ends, pass or fail, so
//! no mount or process outlives a test. Containers that must be observed while running are
//! started with `run -d` and watched by polling `ps`/`logs` with a deadline; no assertion
//! depends on how long anything takes.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::Node;
use serde_json::{json, Value};
use support::{Compression, ImageSpec, LayerBuilder};

/// The busybox image every test imports (`imagePullPolicy: Never`: nothing is pulled).
const IMAGE: &str = "example.com/test/busybox:1";
/// Generous: polling stops as soon as the condition holds.
const DEADLINE: Duration = Duration::from_secs(20);
/// What the runtime puts in PATH when the image has none (Docker's and Kubernetes' default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

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

/// [`ImageSpec::busybox`] with an uncompressed layer (gzip in a debug build costs seconds):
/// the busybox layer, a PATH and `cmd ["sh"]`.
fn busybox() -> ImageSpec {
    ImageSpec {
        layers: vec![LayerBuilder::busybox_layer(Compression::None)],
        env: vec![format!("PATH={DEFAULT_PATH}")],
        cmd: Some(vec!["sh".into()]),
        ..ImageSpec::default()
    }
}

fn busybox_node() -> Node {
    node_with_images(&[(IMAGE, busybox())])
}

/// A container of [`IMAGE`] running `command` as is.
fn exec_container(name: &str, command: &[&str]) -> Value {
    json!({
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "command": command,
    })
}

/// A container of [`IMAGE`] running `sh -c script` (remember: `$$` is a literal `$`).
fn sh_container(name: &str, script: &str) -> Value {
    exec_container(name, &["sh", "-c", script])
}

/// A Pod manifest (JSON is YAML) with `restartPolicy: Never`.
fn manifest(name: &str, containers: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": { "restartPolicy": "Never", "containers": containers },
    })
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
        let pod_name = manifest["metadata"]["name"]
            .as_str()
            .expect("manifest has a name");
        let file = node.dir.path().join(format!("{pod_name}.yaml"));
        // `NAMESPACE/POD`, so the guard removes exactly this pod.
        let name = match manifest["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{ns}/{pod_name}"),
            None => pod_name.to_string(),
        };
        std::fs::write(&file, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
        Pod { node, name, file }
    }

    fn file(&self) -> &str {
        self.file.to_str().unwrap()
    }

    /// `layerlet run -f FILE EXTRA...`, whatever its exit code.
    fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec!["run", "-f", self.file()];
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

    /// `layerlet run` in the foreground until the pod finishes; returns the output.
    fn run_to_completion(&self) -> Output {
        self.run(&[])
    }

    /// `POD/CONTAINER`.
    fn c(&self, container: &str) -> String {
        format!("{}/{}", self.name, container)
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        let removed = self
            .node
            .run(&["rm", "-t", "0", &self.name])
            .status
            .success();
        if !removed {
            // Only when layerlet itself failed (a test documenting a bug): detach whatever it
            // left mounted under the node's directory, so the host stays clean.
            unmount_everything_under(self.node.dir.path());
        }
    }
}

/// Lazily unmounts every mount point under `dir`, deepest first.
fn unmount_everything_under(dir: &std::path::Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| std::path::Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Kills a spawned process if the test ends before it was reaped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

/// `ps -a --output json` rows.
fn ps_all(node: &Node) -> Vec<Value> {
    node.json(&["ps", "-a"])
        .as_array()
        .expect("ps prints an array")
        .clone()
}

fn ps_row(node: &Node, pod: &str, container: &str) -> Option<Value> {
    ps_all(node)
        .into_iter()
        .find(|r| r["pod"] == pod && r["container"] == container)
}

fn wait_running(node: &Node, pod: &str, container: &str) -> Value {
    wait_for(&format!("{pod}/{container} to run"), || {
        ps_row(node, pod, container).filter(|r| r["state"] == "running")
    })
}

fn wait_exited(node: &Node, pod: &str, container: &str) -> Value {
    wait_for(&format!("{pod}/{container} to exit"), || {
        ps_row(node, pod, container).filter(|r| r["state"] == "exited")
    })
}

/// `layerlet logs NAME`'s stdout.
fn logs(node: &Node, name: &str) -> String {
    node.ok(&["logs", name])
}

/// Polls `logs NAME` until its stdout has a line equal to `line`; returns the whole stdout.
fn wait_for_line(node: &Node, name: &str, line: &str) -> String {
    wait_for(&format!("{name} to log {line:?}"), || {
        // The container may not exist yet: `logs` then fails, and we poll again.
        let out = node.run(&["logs", name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.lines().any(|l| l == line)).then_some(text)
    })
}

fn inspect(node: &Node, name: &str) -> Value {
    node.json(&["inspect", name])
}

/// The value after `KEY=` on the first line starting so.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no line {prefix}... in:\n{text}"))
}

/// The lines between `---BEGIN name---` and `---END name---`.
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let begin = format!("---BEGIN {name}---");
    let end = format!("---END {name}---");
    let mut lines = text.lines().skip_while(|l| *l != begin);
    assert!(lines.next().is_some(), "no {begin} in:\n{text}");
    let inner: Vec<&str> = lines.by_ref().take_while(|l| *l != end).collect();
    inner
}

/// The directories of the image's layers in an inspect's LowerDir (the container's own
/// entries left out), topmost first.
fn image_lowerdirs(node: &Node, inspected: &Value) -> Vec<PathBuf> {
    let layers = node.root().join("layers");
    inspected["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .expect("LowerDir")
        .split(':')
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&layers))
        .collect()
}

fn path_of(inspected: &Value, key: &str) -> PathBuf {
    PathBuf::from(
        inspected["GraphDriver"]["Data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no GraphDriver.Data.{key} in {inspected}")),
    )
}

/// `<RFC3339 with 9-digit fraction>Z (stdout|stderr) (F|P) ` at the start of `line`, i.e.
/// `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) `.
fn is_cri_line(line: &[u8]) -> bool {
    const STAMP: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddddddddZ ";
    if line.len() < STAMP.len() {
        return false;
    }
    let stamp_ok = STAMP.iter().zip(line).all(|(want, got)| match want {
        b'd' => got.is_ascii_digit(),
        other => other == got,
    });
    let rest = &line[STAMP.len()..];
    let rest = match rest
        .strip_prefix(b"stdout ".as_slice())
        .or_else(|| rest.strip_prefix(b"stderr ".as_slice()))
    {
        Some(r) => r,
        None => return false,
    };
    stamp_ok && (rest.starts_with(b"F ") || rest.starts_with(b"P "))
}

/// The `(stream, tag, text)` of each record of a raw CRI log file.
fn cri_records(bytes: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let mut records = Vec::new();
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return records;
    }
    for line in body.split(|&b| b == b'\n') {
        assert!(
            is_cri_line(line),
            "not a CRI log line: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(120)])
        );
        let mut parts = line.splitn(4, |&b| b == b' ');
        let _stamp = parts.next();
        let stream = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
        let tag = String::from_utf8_lossy(parts.next().unwrap()).into_owned();
        records.push((stream, tag, parts.next().unwrap_or_default().to_vec()));
    }
    records
}

/// Mount points (field 5) of a mountinfo text.
fn mount_points(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l.split(' ')
                .nth(4)
                .unwrap_or_else(|| panic!("not a mountinfo line: {l:?}"))
                .to_string()
        })
        .collect()
}

/// PIDs of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push((pid, cmdline));
            }
        }
    }
    found
}

/// Waits until no process's command line mentions `needle` (e.g. a run root: monitors are
/// `layerlet __monitor RUN_ROOT/containers/ID`).
fn wait_no_process_mentioning(needle: &str) {
    let mut last = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        last = processes_mentioning(needle);
        if last.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("processes left behind: {last:?}");
}

fn readlink_ns(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// Whether `pid` is still the process whose command line was `cmdline`.
fn still_running(pid: i64, cmdline: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == cmdline)
}

// ---------------------------------------------------------------------------------------
// 1. From inside a container
// ---------------------------------------------------------------------------------------

#[test]
fn pid_1_is_the_containers_command_and_the_hostname_is_the_pods() {
    let node = busybox_node();
    let mut m = manifest(
        "inside",
        vec![
            sh_container(
                "shell",
                "echo pid=$$$$; echo ppid=$$PPID; echo hostname=$$(/bin/busybox hostname); \
                 echo etc-hostname=$$(cat /etc/hostname); \
                 echo env-hostname=$$HOSTNAME",
            ),
            exec_container("cat", &["cat", "/proc/1/cmdline"]),
        ],
    );
    m["spec"]["terminationGracePeriodSeconds"] = json!(1);
    let pod = Pod::new(&node, &m);
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));

    let shell = logs(&node, &pod.c("shell"));
    assert_eq!(field(&shell, "pid"), "1", "the shell is PID 1:\n{shell}");
    assert_eq!(
        field(&shell, "ppid"),
        "0",
        "PID 1's parent is outside its PID namespace"
    );
    assert_eq!(field(&shell, "hostname"), "inside");
    assert_eq!(field(&shell, "etc-hostname"), "inside");
    assert_eq!(field(&shell, "env-hostname"), "inside");
    // PID 1 of the other container is its own command, not some init of layerlet's.
    assert_eq!(logs(&node, &pod.c("cat")), "cat\0/proc/1/cmdline\0\n");

    // spec.hostname wins over the pod name.
    let mut m = manifest(
        "named",
        vec![sh_container(
            "c",
            "echo hostname=$$(/bin/busybox hostname); echo etc-hostname=$$(cat /etc/hostname)",
        )],
    );
    m["spec"]["hostname"] = json!("custom-host");
    let named = Pod::new(&node, &m);
    let out = named.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    let text = logs(&node, "named");
    assert_eq!(field(&text, "hostname"), "custom-host");
    assert_eq!(field(&text, "etc-hostname"), "custom-host");

    // The host's hostname is untouched.
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(host.to_string_lossy(), "inside");
    assert_ne!(host.to_string_lossy(), "custom-host");
}

#[test]
fn the_container_init_seen_from_the_host_is_the_command_in_its_own_pid_namespace() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("sleeper", vec![exec_container("c", &["sleep", "1000"])]),
    );
    pod.start();
    wait_running(&node, "sleeper", "c");
    let info = inspect(&node, "sleeper");
    let pid = info["State"]["Pid"]
        .as_i64()
        .expect("a running container has a Pid");
    assert_eq!(
        std::fs::read(format!("/proc/{pid}/cmdline")).unwrap(),
        b"sleep\x001000\x00",
        "the container's PID is its command, exec'd directly"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .expect("NSpid line");
    let nspid: Vec<&str> = nspid.split_whitespace().collect();
    assert_eq!(nspid, vec![pid.to_string().as_str(), "1"], "{status}");
    // inspect's namespaces are those of that process.
    for kind in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_eq!(
            info["Namespaces"][kind],
            readlink_ns(&pid.to_string(), kind),
            "{kind}"
        );
        assert_ne!(
            info["Namespaces"][kind],
            readlink_ns("self", kind),
            "the container has its own {kind} namespace"
        );
    }
}

#[test]
fn no_host_mount_is_visible_inside_a_container() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "mounts",
            vec![sh_container(
                "c",
                "echo ---BEGIN mountinfo---; cat /proc/self/mountinfo; echo ---END mountinfo---; \
                 echo ---BEGIN root---; ls -a /; echo ---END root---",
            )],
        ),
    );
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    let text = logs(&node, "mounts");
    let mountinfo = section(&text, "mountinfo");
    let points = mount_points(&mountinfo);
    assert_eq!(points.first().map(String::as_str), Some("/"), "{text}");
    // Only the container's own mounts: its rootfs, /proc, /dev, /sys and the pod's files.
    let allowed = |p: &str| {
        p == "/"
            || ["/proc", "/dev", "/sys"]
                .iter()
                .any(|top| p == *top || p.starts_with(&format!("{top}/")))
            || ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].contains(&p)
    };
    for p in &points {
        assert!(
            allowed(p),
            "host mount {p:?} visible in the container:\n{text}"
        );
    }
    let scratch = node.dir.path().to_str().unwrap();
    for p in &points {
        assert!(
            !p.contains(scratch) && !p.contains("layerlet"),
            "mount point {p:?} names the node's directories"
        );
    }
    // None of the host's own mount points beyond those the container mounts for itself.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let host_lines: Vec<&str> = host.lines().collect();
    for p in mount_points(&host_lines) {
        if !allowed(&p) {
            assert!(
                !points.contains(&p),
                "host mount point {p:?} is visible in the container"
            );
        }
    }
    // The rootfs is the image's, not the host's /.
    let root = section(&text, "root");
    assert!(root.contains(&"bin") && root.contains(&"etc"), "{root:?}");
    assert!(
        !root.contains(&"usr"),
        "the busybox image has no /usr: {root:?}"
    );
    // The pod files are the pod's, not the host's.
    assert!(
        !points.iter().any(|p| p.starts_with("/tmp")),
        "the host's /tmp must not be mounted: {points:?}"
    );
}

#[test]
fn a_container_gets_a_minimal_dev_and_the_pods_hosts_file() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "devs",
            vec![sh_container(
                "c",
                "echo ---BEGIN dev---; ls /dev; echo ---END dev---; \
                 echo ---BEGIN hosts---; cat /etc/hosts; echo ---END hosts---; \
                 echo zero=$$(/bin/busybox head -c 4 /dev/zero | /bin/busybox wc -c); \
                 echo x > /dev/null && echo null=writable",
            )],
        ),
    );
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    let text = logs(&node, "devs");
    let dev: BTreeSet<&str> = section(&text, "dev").into_iter().collect();
    for want in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin",
        "stdout", "stderr",
    ] {
        assert!(dev.contains(want), "/dev/{want} missing: {dev:?}");
    }
    // Not the host's /dev: no disks, no kmsg, no mem.
    for host_only in ["mem", "kmsg", "vda", "sda", "loop0", "console"] {
        assert!(
            !dev.contains(host_only),
            "/dev/{host_only} in the container: {dev:?}"
        );
    }
    assert_eq!(field(&text, "zero").trim(), "4");
    assert_eq!(field(&text, "null"), "writable");
    let hosts = section(&text, "hosts");
    assert!(
        hosts
            .iter()
            .any(|l| l.starts_with("127.0.0.1") && l.contains("localhost")),
        "{hosts:?}"
    );
    assert!(
        hosts
            .iter()
            .any(|l| l.split_whitespace().skip(1).any(|name| name == "devs")),
        "/etc/hosts names the pod: {hosts:?}"
    );
}

#[test]
fn host_network_pid_and_ipc_share_the_nodes_namespaces() {
    let node = busybox_node();
    let mut m = manifest(
        "hostns",
        vec![sh_container(
            "c",
            &format!("{PRINT_NAMESPACES} echo pid1=$$$$; echo hostname=$$(/bin/busybox hostname)"),
        )],
    );
    m["spec"]["hostNetwork"] = json!(true);
    m["spec"]["hostPID"] = json!(true);
    m["spec"]["hostIPC"] = json!(true);
    let pod = Pod::new(&node, &m);
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    let text = logs(&node, "hostns");
    for kind in ["net", "ipc", "uts", "pid"] {
        assert_eq!(
            field(&text, kind),
            readlink_ns("self", kind),
            "{kind}: {text}"
        );
    }
    assert_ne!(field(&text, "mnt"), readlink_ns("self", "mnt"), "{text}");
    assert_ne!(
        field(&text, "pid1"),
        "1",
        "in the host's PID namespace: {text}"
    );
    let host = nix::unistd::gethostname().unwrap();
    assert_eq!(field(&text, "hostname"), host.to_string_lossy(), "{text}");
}

#[test]
fn no_file_descriptor_of_layerlet_leaks_into_a_container() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "fds",
            vec![
                // ls is PID 1 itself: exactly what init exec'd with, plus ls's own dir fd.
                exec_container("ls", &["ls", "-l", "/proc/self/fd"]),
                exec_container("sleeper", &["sleep", "1000"]),
            ],
        ),
    );
    pod.start();
    wait_running(&node, "fds", "sleeper");

    // Seen from the host: the running init has 0, 1 and 2, and nothing else.
    let info = inspect(&node, &pod.c("sleeper"));
    let pid = info["State"]["Pid"].as_i64().expect("Pid");
    let mut fds = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let target = std::fs::read_link(entry.path()).unwrap();
        fds.insert(
            entry.file_name().to_string_lossy().into_owned(),
            target.display().to_string(),
        );
    }
    assert_eq!(
        fds.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["0", "1", "2"],
        "{fds:?}"
    );
    assert_eq!(fds["0"], "/dev/null", "{fds:?}");
    assert!(fds["1"].starts_with("pipe:["), "{fds:?}");
    assert!(fds["2"].starts_with("pipe:["), "{fds:?}");
    assert_ne!(fds["1"], fds["2"], "stdout and stderr are separate streams");

    // Seen from inside.
    wait_exited(&node, "fds", "ls");
    let text = logs(&node, &pod.c("ls"));
    let mut inside = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('l')) {
        // `ls -l` prints `NAME -> TARGET`, or just NAME for ls's own directory fd, which is
        // closed again by the time ls reads the links.
        let (left, target) = line.split_once(" -> ").unwrap_or((line, ""));
        let fd = left.split_whitespace().last().unwrap().to_string();
        inside.insert(fd, target.to_string());
    }
    assert_eq!(
        inside.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["0", "1", "2", "3"],
        "only stdio and the directory ls itself opened:\n{text}"
    );
    assert_eq!(inside["0"], "/dev/null", "{text}");
    assert!(inside["1"].starts_with("pipe:["), "{text}");
    assert!(inside["2"].starts_with("pipe:["), "{text}");
    assert!(
        inside["3"].is_empty()
            || (inside["3"].starts_with("/proc/") && inside["3"].ends_with("/fd")),
        "fd 3 is ls's own directory: {text}"
    );
    for (fd, target) in &inside {
        for bad in ["layerlet", ".db", "lock", "socket:", "anon_inode"] {
            assert!(
                !target.contains(bad),
                "fd {fd} -> {target} leaked into the container"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. What a pod's containers share
// ---------------------------------------------------------------------------------------

const PRINT_NAMESPACES: &str = "for n in net ipc uts mnt pid; do \
     echo \"$$n=$$(/bin/busybox readlink /proc/self/ns/$$n)\"; done; ";

#[test]
fn containers_of_a_pod_share_network_ipc_uts_and_dev_shm_but_not_with_another_pod() {
    let node = busybox_node();
    let mut m = manifest(
        "shared",
        vec![
            sh_container(
                "a",
                &format!(
                    "{PRINT_NAMESPACES} echo from-a > /dev/shm/note; \
                     mkdir -p /tmp/www; echo served-by-a > /tmp/www/index.html; \
                     exec /bin/busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www"
                ),
            ),
            sh_container(
                "b",
                &format!(
                    "{PRINT_NAMESPACES} \
                     i=0; while [ ! -e /dev/shm/note ] && [ $$i -lt 400 ]; do sleep 0.05; i=$$((i+1)); done; \
                     echo shm=$$(cat /dev/shm/note); \
                     i=0; until page=$$(/bin/busybox wget -q -O - http://127.0.0.1:8080/index.html); do \
                       [ $$i -lt 400 ] || break; sleep 0.05; i=$$((i+1)); done; \
                     echo localhost=$$page; echo done; exec sleep 1000"
                ),
            ),
        ],
    );
    m["spec"]["terminationGracePeriodSeconds"] = json!(1);
    let shared = Pod::new(&node, &m);
    shared.start();
    let b = wait_for_line(&node, &shared.c("b"), "done");
    let a = logs(&node, &shared.c("a"));

    for kind in ["net", "ipc", "uts"] {
        assert!(field(&a, kind).starts_with(&format!("{kind}:[")), "{a}");
        assert_eq!(field(&a, kind), field(&b, kind), "{kind} is the pod's");
        assert_ne!(
            field(&a, kind),
            readlink_ns("self", kind),
            "{kind} is not the host's"
        );
    }
    for kind in ["mnt", "pid"] {
        assert_ne!(field(&a, kind), field(&b, kind), "{kind} is per container");
    }
    assert_eq!(field(&b, "shm"), "from-a", "one /dev/shm per pod:\n{b}");
    assert_eq!(
        field(&b, "localhost"),
        "served-by-a",
        "b reaches a on 127.0.0.1:\n{b}"
    );
    // inspect agrees with what the processes see.
    let inspected = inspect(&node, &shared.c("a"));
    assert_eq!(inspected["Namespaces"]["net"], field(&a, "net"));

    // Another pod: its own namespaces, its own localhost and /dev/shm.
    let mut m = manifest(
        "other",
        vec![sh_container(
            "c",
            &format!(
                "{PRINT_NAMESPACES} \
                 /bin/busybox wget -q -O - http://127.0.0.1:8080/index.html || echo localhost=unreachable; \
                 [ -e /dev/shm/note ] && echo shm=visible || echo shm=empty; \
                 echo hostname=$$(/bin/busybox hostname)"
            ),
        )],
    );
    m["spec"]["terminationGracePeriodSeconds"] = json!(1);
    let other = Pod::new(&node, &m);
    let out = other.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    let c = logs(&node, "other");
    for kind in ["net", "ipc", "uts"] {
        assert_ne!(
            field(&c, kind),
            field(&a, kind),
            "{kind} differs between pods"
        );
    }
    assert_eq!(field(&c, "localhost"), "unreachable", "{c}");
    assert_eq!(field(&c, "shm"), "empty", "{c}");
    assert_eq!(field(&c, "hostname"), "other");
}

// ---------------------------------------------------------------------------------------
// 3. Copy-on-write
// ---------------------------------------------------------------------------------------

#[test]
fn writes_stay_in_the_containers_own_layer_and_diff_shows_them() {
    let node = busybox_node();
    let mut m = manifest(
        "cow",
        vec![
            sh_container(
                "writer",
                "echo written-by-writer > /tmp/new-file; echo appended >> /etc/passwd; \
                 rm /etc/group; /bin/busybox head -c 1000000 /dev/zero > /tmp/big; \
                 touch /dev/shm/go; echo done; exec sleep 1000",
            ),
            sh_container(
                "sibling",
                "i=0; while [ ! -e /dev/shm/go ] && [ $$i -lt 400 ]; do sleep 0.05; i=$$((i+1)); done; \
                 [ -e /dev/shm/go ] && echo barrier=passed; \
                 [ -e /tmp/new-file ] && echo new-file=seen || echo new-file=absent; \
                 [ -e /etc/group ] && echo group=present || echo group=deleted; \
                 /bin/busybox grep -q appended /etc/passwd && echo passwd=changed || echo passwd=original; \
                 echo done; exec sleep 1000",
            ),
        ],
    );
    m["spec"]["terminationGracePeriodSeconds"] = json!(1);
    let pod = Pod::new(&node, &m);
    pod.start();
    wait_for_line(&node, &pod.c("writer"), "done");
    let sibling = wait_for_line(&node, &pod.c("sibling"), "done");

    // The sibling, same image, sees none of the writer's changes.
    assert_eq!(field(&sibling, "barrier"), "passed", "{sibling}");
    assert_eq!(field(&sibling, "new-file"), "absent", "{sibling}");
    assert_eq!(field(&sibling, "group"), "present", "{sibling}");
    assert_eq!(field(&sibling, "passwd"), "original", "{sibling}");

    let writer = inspect(&node, &pod.c("writer"));
    let other = inspect(&node, &pod.c("sibling"));

    // ps counts what each container wrote into its own layer.
    let cow = |c: &str| {
        ps_row(&node, "cow", c).unwrap()["cow_bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(
        cow("writer") >= 1_000_000,
        "writer wrote 1 MB: {}",
        cow("writer")
    );
    assert!(
        cow("sibling") < 100_000,
        "the sibling wrote nothing: {}",
        cow("sibling")
    );

    // Both containers stack the same image layer directories: shared, not copied.
    let lowers = image_lowerdirs(&node, &writer);
    assert!(!lowers.is_empty(), "{writer}");
    assert_eq!(lowers, image_lowerdirs(&node, &other));
    assert_eq!(
        lowers.len(),
        writer["RootFS"]["Layers"].as_array().unwrap().len(),
        "one lowerdir per image layer"
    );
    assert_ne!(path_of(&writer, "UpperDir"), path_of(&other, "UpperDir"));
    assert_ne!(path_of(&writer, "MergedDir"), path_of(&other, "MergedDir"));

    // The image's layer is untouched.
    let layer = &lowers[0];
    let passwd = std::fs::read_to_string(layer.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    assert!(!passwd.contains("appended"), "the image layer was written");
    assert!(
        layer.join("etc/group").is_file(),
        "the image layer lost a file"
    );
    assert!(!layer.join("tmp/new-file").exists());

    // The writer's upper layer holds exactly its changes: a copied-up passwd (old content
    // plus the change), the new file, and a whiteout for the deleted one.
    let upper = path_of(&writer, "UpperDir");
    let copied = std::fs::read_to_string(upper.join("etc/passwd")).unwrap();
    assert_eq!(copied, format!("{passwd}appended\n"));
    assert_eq!(
        std::fs::read_to_string(upper.join("tmp/new-file")).unwrap(),
        "written-by-writer\n"
    );
    let whiteout = std::fs::symlink_metadata(upper.join("etc/group")).unwrap();
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "a deleted image file is an overlay whiteout (0:0 char device) in the upper layer"
    );
    // The sibling's upper layer has none of it.
    let sibling_upper = path_of(&other, "UpperDir");
    for rel in ["etc/passwd", "etc/group", "tmp/new-file"] {
        assert!(
            std::fs::symlink_metadata(sibling_upper.join(rel)).is_err(),
            "{rel} in the sibling's upper layer"
        );
    }

    // diff: A for added, C for changed, D for deleted.
    let diff = node.ok(&["diff", &pod.c("writer")]);
    let lines: BTreeSet<&str> = diff.lines().collect();
    for want in ["A /tmp/new-file", "C /etc/passwd", "D /etc/group"] {
        assert!(lines.contains(want), "diff lacks {want:?}:\n{diff}");
    }
    let sibling_diff = node.ok(&["diff", &pod.c("sibling")]);
    for path in ["/tmp/new-file", "/etc/passwd", "/etc/group"] {
        assert!(
            !sibling_diff.lines().any(|l| l.ends_with(path)),
            "the sibling's diff shows {path}:\n{sibling_diff}"
        );
    }
    // The JSON form has the same entries.
    let json_diff = node.json(&["diff", &pod.c("writer")]);
    let text = json_diff.to_string();
    for path in ["/tmp/new-file", "/etc/passwd", "/etc/group"] {
        assert!(text.contains(path), "{text}");
    }
}

#[test]
fn two_pods_of_one_image_share_its_layer_directories() {
    let node = busybox_node();
    let one = Pod::new(
        &node,
        &manifest("one", vec![exec_container("c", &["sleep", "1000"])]),
    );
    let two = Pod::new(
        &node,
        &manifest("two", vec![exec_container("c", &["sleep", "1000"])]),
    );
    one.start();
    two.start();
    let a = inspect(&node, "one");
    let b = inspect(&node, "two");
    assert_eq!(a["ImageDigest"], b["ImageDigest"]);
    assert_eq!(a["RootFS"], b["RootFS"]);
    let lowers = image_lowerdirs(&node, &a);
    assert!(!lowers.is_empty());
    assert_eq!(lowers, image_lowerdirs(&node, &b));
    assert_eq!(
        node.entries("layers").len(),
        1,
        "one unpacked copy of the layer"
    );
    // Each container's own directories live under its own ID.
    for info in [&a, &b] {
        let id = info["Id"].as_str().unwrap();
        for key in ["UpperDir", "WorkDir", "MergedDir"] {
            assert!(
                path_of(info, key).starts_with(node.root().join("containers").join(id)),
                "{key} of {id}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. Stop
// ---------------------------------------------------------------------------------------

#[test]
fn stop_kills_a_process_that_ignores_sigterm_once_the_grace_period_is_over() {
    let node = busybox_node();
    // Default grace period (30 s): `-t 1` must override it.
    let pod = Pod::new(
        &node,
        &manifest(
            "stubborn",
            vec![
                // PID 1 ignores signals it has no handler for: sleep never sees SIGTERM.
                exec_container("sleeper", &["sleep", "1000"]),
                sh_container("trapper", "trap '' TERM; echo ready; sleep 1000"),
                sh_container(
                    "graceful",
                    "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.1; done",
                ),
            ],
        ),
    );
    pod.start();
    wait_running(&node, "stubborn", "sleeper");
    wait_for_line(&node, &pod.c("trapper"), "ready");
    wait_for_line(&node, &pod.c("graceful"), "ready");
    let pid = inspect(&node, &pod.c("sleeper"))["State"]["Pid"]
        .as_i64()
        .expect("Pid");
    assert!(still_running(pid, b"sleep\x001000\x00"));

    node.ok(&["stop", "stubborn", "-t", "1"]);

    let rows = ps_all(&node);
    let code = |name: &str| {
        rows.iter()
            .find(|r| r["pod"] == "stubborn" && r["container"] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {rows:?}"))["exit_code"]
            .clone()
    };
    assert_eq!(
        code("sleeper"),
        137,
        "SIGKILL after the grace period: {rows:?}"
    );
    assert_eq!(code("trapper"), 137, "{rows:?}");
    assert_eq!(code("graceful"), 3, "SIGTERM first: {rows:?}");
    for r in &rows {
        assert_eq!(r["state"], "exited", "{r}");
    }
    assert!(logs(&node, &pod.c("graceful")).contains("got-term"));
    assert!(
        !still_running(pid, b"sleep\x001000\x00"),
        "the process is gone"
    );
    let info = inspect(&node, &pod.c("sleeper"));
    assert_eq!(info["State"]["Status"], "exited");
    assert_eq!(info["State"]["ExitCode"], 137);
    assert!(info["State"]["Pid"].is_null());
    assert!(info["State"]["FinishedAt"].is_string());

    // Stopping again is fine and changes nothing.
    node.ok(&["stop", "stubborn", "-t", "1"]);
    assert_eq!(
        ps_row(&node, "stubborn", "sleeper").unwrap()["exit_code"],
        137
    );
    // `ps` without -a lists running containers only.
    assert_eq!(node.json(&["ps"]), json!([]));
}

#[test]
fn stop_sends_the_images_stopsignal_first() {
    let image = ImageSpec {
        stop_signal: Some("SIGUSR1".into()),
        ..busybox()
    };
    let node = node_with_images(&[(IMAGE, image)]);
    let pod = Pod::new(
        &node,
        &manifest(
            "usr1",
            vec![sh_container(
                "c",
                "trap 'echo got-usr1; exit 5' USR1; trap 'echo got-term; exit 6' TERM; \
                 echo ready; while :; do sleep 0.1; done",
            )],
        ),
    );
    pod.start();
    wait_for_line(&node, "usr1", "ready");
    assert_eq!(
        inspect(&node, "usr1")["Config"]["StopSignal"],
        libc::SIGUSR1
    );
    node.ok(&["stop", "usr1", "-t", "20"]);
    let row = ps_row(&node, "usr1", "c").unwrap();
    assert_eq!(row["exit_code"], 5, "{row}");
    assert_eq!(logs(&node, "usr1"), "ready\ngot-usr1\n");
}

#[test]
fn ctrl_c_on_a_foreground_run_stops_the_pod_gracefully() {
    let node = busybox_node();
    let script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    for rm in [false, true] {
        let name = if rm { "interrupted-rm" } else { "interrupted" };
        let pod = Pod::new(&node, &manifest(name, vec![sh_container("c", script)]));
        let mut args = vec!["run", "-f", pod.file()];
        if rm {
            args.push("--rm");
        }
        let mut child = ChildGuard(
            node.cmd()
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_line(&node, name, "ready");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.0.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status = wait_for("run to return after SIGINT", || child.0.try_wait().unwrap());
        assert_eq!(status.code(), Some(130), "{status}");
        if rm {
            assert_eq!(ps_all(&node), Vec::<Value>::new(), "--rm removed the pod");
            assert_eq!(node.entries("containers"), Vec::<String>::new());
            wait_no_process_mentioning(&node.run_root().display().to_string());
        } else {
            let row = ps_row(&node, name, "c").unwrap();
            assert_eq!(
                row["exit_code"], 0,
                "the container exited on SIGTERM: {row}"
            );
            assert_eq!(logs(&node, name), "ready\ngot-term\n");
            node.ok(&["rm", name]);
        }
    }
}

#[test]
fn run_detach_returns_while_the_pod_runs_even_with_its_output_captured() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("background", vec![exec_container("c", &["sleep", "1000"])]),
    );
    // Like `$(layerlet run -d ...)`: the caller reads stdout and stderr to their end, which
    // only comes if no monitor or container holds them.
    let child = node
        .cmd()
        .args(["run", "-d", "-f", pod.file()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(DEADLINE)
        .expect("run -d returned and closed its output while the pod runs")
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "default/background\n");
    assert_eq!(
        ps_row(&node, "background", "c").unwrap()["state"],
        "running"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Exit codes outlive the process that started the pod
// ---------------------------------------------------------------------------------------

#[test]
fn exit_codes_survive_kill_9_of_the_process_that_started_the_pod() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("survivor", vec![sh_container("c", "sleep 2; exit 7")]),
    );
    let child = node
        .cmd()
        .args(["run", "-f", pod.file()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn layerlet run");
    let mut child = ChildGuard(child);
    wait_running(&node, "survivor", "c");
    child.0.kill().expect("SIGKILL layerlet run");
    let status = child.0.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "layerlet run was killed while its container ran: {status}"
    );

    let row = wait_exited(&node, "survivor", "c");
    assert_eq!(row["exit_code"], 7, "{row}");
    let info = inspect(&node, "survivor");
    assert_eq!(info["State"]["ExitCode"], 7);
    assert_eq!(info["State"]["Reason"], "Error");
    assert_eq!(info["State"]["Status"], "exited");
    // The monitor exits once it has recorded the exit status.
    wait_no_process_mentioning(node.run_root().to_str().unwrap());
}

#[test]
fn a_container_whose_monitor_was_killed_can_still_be_stopped_and_removed() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("orphan", vec![exec_container("c", &["sleep", "1000"])]),
    );
    pod.start();
    wait_running(&node, "orphan", "c");
    let pid = inspect(&node, "orphan")["State"]["Pid"].as_i64().unwrap();
    let id = inspect(&node, "orphan")["Id"].as_str().unwrap().to_string();
    // The monitor dies (OOM killer, an operator's kill -9): the exit status cannot be
    // collected any more, but the container must not be stuck.
    let monitors = processes_mentioning(&format!("__monitor {}", node.run_root().display()));
    let (monitor, _) = monitors
        .iter()
        .find(|(_, cmdline)| cmdline.contains(&id))
        .unwrap_or_else(|| panic!("no monitor for {id}: {monitors:?}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(*monitor as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let out = node.run(&["stop", "orphan", "-t", "1"]);
    assert!(out.status.success(), "stop: {}", describe(&out));
    assert!(
        !still_running(pid, b"sleep\x001000\x00"),
        "the container was killed"
    );
    let row = ps_row(&node, "orphan", "c").unwrap();
    assert_eq!(row["state"], "exited", "{row}");
    let out = node.run(&["rm", "orphan"]);
    assert!(out.status.success(), "rm: {}", describe(&out));
    assert_eq!(node.entries("containers"), Vec::<String>::new());
    assert_eq!(
        common::list_dir(&node.run_root().join("pods")),
        Vec::<String>::new()
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(node.dir.path().to_str().unwrap()));
}

/// The executable of the monitor of pod `pod`'s container `c` on `node`, once it runs.
fn monitor_exe(node: &Node, pod: &str) -> PathBuf {
    wait_running(node, pod, "c");
    let id = inspect(node, pod)["Id"].as_str().unwrap().to_string();
    let id = id.as_str();
    let monitors = processes_mentioning(&format!("__monitor {}", node.run_root().display()));
    let (monitor, _) = monitors
        .iter()
        .find(|(_, cmdline)| cmdline.contains(id))
        .unwrap_or_else(|| panic!("no monitor for {id}: {monitors:?}"));
    std::fs::read_link(format!("/proc/{monitor}/exe")).unwrap()
}

#[test]
fn monitors_run_from_a_sealed_fixed_address_monitor_binary_of_the_same_build_or_fall_back() {
    let monitor_binary = Path::new(env!("CARGO_BIN_EXE_layerlet-monitor"));
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("weight", vec![exec_container("c", &["sleep", "1000"])]),
    );
    pod.start();
    let exe = monitor_exe(&node, "weight");
    assert_eq!(
        exe.file_name().unwrap(),
        "layerlet-monitor",
        "{}",
        exe.display()
    );
    assert!(exe.starts_with("/run/layerlet-exe"), "{}", exe.display());
    let bytes = std::fs::read(&exe).unwrap();
    assert!(
        bytes == std::fs::read(monitor_binary).unwrap(),
        "the copy differs from the binary"
    );
    // ELF e_type 2 (ET_EXEC): linked at a fixed address, so its relocated data stays shared
    // with the file instead of being copied into every monitor.
    assert_eq!(
        u16::from_le_bytes([bytes[16], bytes[17]]),
        2,
        "the monitor is a PIE"
    );
    // Sealed: a read-only mount (the file is busy anyway while a monitor runs it).
    let mount = nix::sys::statvfs::statvfs(&exe).unwrap();
    assert!(mount
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    node.ok(&["rm", "-t", "0", "weight"]);

    // A layerlet installed alone, and one beside a monitor of another build: both run their
    // monitors as `layerlet __monitor`.
    let installs = tempfile::tempdir().unwrap();
    for (name, other_monitor) in [("alone", None), ("mixed", Some("/bin/true"))] {
        let dir = installs.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let binary = dir.join("layerlet");
        std::fs::copy(env!("CARGO_BIN_EXE_layerlet"), &binary).unwrap();
        if let Some(other) = other_monitor {
            std::fs::copy(other, dir.join("layerlet-monitor")).unwrap();
        }
        let out = node
            .cmd_of(&binary)
            .args(["run", "-d", "-f", pod.file()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", describe(&out));
        let exe = monitor_exe(&node, "weight");
        assert_eq!(
            exe.file_name().unwrap(),
            "layerlet",
            "{name}: {}",
            exe.display()
        );
        if other_monitor.is_some() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("built from other sources"),
                "{name}: {stderr}"
            );
        }
        node.ok(&["rm", "-t", "0", "weight"]);
    }
}

/// Every pod start runs the sandbox helper once; the monitor binary answers it (a small
/// binary execs faster than layerlet), with the same effect as `layerlet __sandbox`.
#[test]
fn the_monitor_binary_pins_a_pods_namespaces_as_the_sandbox_helper() {
    let monitor_binary = env!("CARGO_BIN_EXE_layerlet-monitor");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sandbox");
    std::fs::create_dir_all(dir.join("ns")).unwrap();
    for kind in ["net", "uts", "ipc"] {
        std::fs::write(dir.join("ns").join(kind), b"").unwrap();
    }
    let out = std::process::Command::new(monitor_binary)
        .arg("__sandbox")
        .arg(&dir)
        .args(["pinned-host", "net,uts,ipc"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let hostname = std::process::Command::new("nsenter")
        .arg(format!("--uts={}", dir.join("ns/uts").display()))
        .arg("hostname")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hostname.stdout).trim(),
        "pinned-host",
        "{}",
        describe(&hostname)
    );
    let links = std::process::Command::new("nsenter")
        .arg(format!("--net={}", dir.join("ns/net").display()))
        .args(["ip", "-o", "link", "show", "up"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(links.contains(": lo:"), "loopback is not up: {links}");
    assert_ne!(
        std::fs::metadata(dir.join("ns/net")).unwrap().ino(),
        std::fs::metadata("/proc/self/ns/net").unwrap().ino(),
        "the pinned net namespace is this process's own"
    );
    for kind in ["uts", "net", "ipc"] {
        nix::mount::umount(&dir.join("ns").join(kind)).unwrap();
    }

    // A kind it does not know is refused, and nothing is pinned.
    let out = std::process::Command::new(monitor_binary)
        .arg("__sandbox")
        .arg(&dir)
        .args(["h", "net,pid"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown namespace kind \"pid\""),
        "{}",
        describe(&out)
    );
    assert!(std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .all(|l| !l.contains(dir.to_str().unwrap())));
}

// ---------------------------------------------------------------------------------------
// 6. Logs
// ---------------------------------------------------------------------------------------

/// A 40000-byte line whose every 10 bytes name their position, so a reordered or lost
/// chunk shows.
fn long_line() -> String {
    (0..4000).map(|i| format!("{i:09},")).collect()
}

#[test]
fn logs_are_cri_records_and_come_back_in_order_with_long_lines_whole() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "talker",
            vec![sh_container(
                "c",
                "/bin/busybox seq 1 50 | while read n; do echo \"line $$n\"; done; \
                 echo to-stderr >&2; \
                 /bin/busybox awk 'BEGIN { for (i = 0; i < 4000; i++) printf \"%09d,\", i; print \"\" }'; \
                 printf 'no newline at the end'",
            )],
        ),
    );
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));

    let info = inspect(&node, "talker");
    let path = PathBuf::from(info["LogPath"].as_str().expect("LogPath"));
    let raw = std::fs::read(&path).unwrap();
    let records = cri_records(&raw);
    assert!(
        records
            .iter()
            .any(|(s, t, text)| s == "stderr" && t == "F" && text == b"to-stderr"),
        "the stderr line is a stderr record"
    );
    assert!(
        records.iter().any(|(s, t, _)| s == "stdout" && t == "P"),
        "a line over 16 KiB is cut into partial records"
    );
    for (_, _, text) in &records {
        assert!(text.len() <= 16 * 1024, "a record is at most 16 KiB");
    }
    let first = &records[0];
    assert_eq!(
        (first.0.as_str(), first.1.as_str(), first.2.as_slice()),
        ("stdout", "F", b"line 1".as_slice())
    );

    let out = node.run(&["logs", "talker"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut want: Vec<String> = (1..=50).map(|n| format!("line {n}")).collect();
    want.push(long_line());
    want.push("no newline at the end".into());
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got.len(), want.len(), "{stdout}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w,
            "line {i} differs: {} bytes vs {} expected",
            g.len(),
            w.len()
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "to-stderr",
        "stderr lines go to stderr"
    );
}

#[test]
fn logs_follow_prints_lines_as_they_come_and_returns_when_the_container_exits() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "follow",
            vec![sh_container(
                "c",
                "echo early; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo late",
            )],
        ),
    );
    pod.start();
    wait_for_line(&node, "follow", "early");
    let mut child = ChildGuard(
        node.cmd()
            .args(["logs", "-f", "follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Let the container finish only after `logs -f` is following.
    let merged = path_of(&inspect(&node, "follow"), "MergedDir");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "logs -f returned while the container runs"
    );
    std::fs::write(merged.join("tmp/go"), "").unwrap();
    let status = wait_for("logs -f to return after the exit", || {
        child.0.try_wait().unwrap()
    });
    assert!(status.success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout, "early\nlate\n");
}

#[test]
fn logs_rotate_at_10_mib_and_keep_five_files() {
    let node = busybox_node();
    // 60000 numbered lines of ~1 KB: ~60 MB, more than 5 files of 10 MiB hold.
    let pod = Pod::new(
        &node,
        &manifest(
            "chatty",
            vec![sh_container(
                "c",
                "/bin/busybox awk 'BEGIN { p = sprintf(\"%1000s\", \"\"); gsub(/ /, \"x\", p); \
                 for (i = 1; i <= 60000; i++) print i, p }'",
            )],
        ),
    );
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    let path = PathBuf::from(inspect(&node, "chatty")["LogPath"].as_str().unwrap());
    let dir = path.parent().unwrap();
    let base = path.file_name().unwrap().to_str().unwrap();
    let files: Vec<String> = common::list_dir(dir)
        .into_iter()
        .filter(|n| n.starts_with(base))
        .collect();
    assert_eq!(
        files.len(),
        5,
        "the current file and 4 rotated ones: {files:?}"
    );
    let mut numbers = Vec::new();
    // Oldest first: name.log.4 ... name.log.1, name.log.
    for n in (0..5).rev() {
        let file = if n == 0 {
            path.clone()
        } else {
            PathBuf::from(format!("{}.{n}", path.display()))
        };
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            bytes.len() as u64 <= 10 * 1024 * 1024,
            "{} is {} bytes",
            file.display(),
            bytes.len()
        );
        for (stream, tag, text) in cri_records(&bytes) {
            assert_eq!((stream.as_str(), tag.as_str()), ("stdout", "F"));
            let text = String::from_utf8(text).unwrap();
            let (number, pad) = text.split_once(' ').unwrap();
            assert_eq!(pad.len(), 1000, "a record was split across files");
            numbers.push(number.parse::<u32>().unwrap());
        }
    }
    assert_eq!(*numbers.last().unwrap(), 60000, "the newest line is kept");
    assert!(numbers[0] > 1, "the oldest lines were rotated away");
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "no line lost or reordered between the kept files"
    );
    // `logs` reads the kept files, oldest first.
    let out = node.run(&["logs", "chatty"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<u32> = text
        .lines()
        .map(|l| l.split_once(' ').unwrap().0.parse().unwrap())
        .collect();
    assert_eq!(printed, numbers);
}

#[test]
fn a_restarted_containers_previous_logs_stay_readable() {
    let node = busybox_node();
    // The pod's /dev/shm outlives its containers' restarts: it counts the attempts.
    let mut m = manifest(
        "flaky",
        vec![sh_container(
            "c",
            "n=$$(cat /dev/shm/n 2>/dev/null || echo 0); n=$$((n+1)); echo $$n > /dev/shm/n; \
             echo attempt-$$n; [ $$n -ge 2 ] && exit 0; exit 1",
        )],
    );
    m["spec"]["restartPolicy"] = json!("OnFailure");
    let pod = Pod::new(&node, &m);
    // In the foreground, `run` restarts the failed container (after kubelet's 10 s back-off)
    // and returns once it succeeded.
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    let row = ps_row(&node, "flaky", "c").unwrap();
    assert_eq!(row["restarts"], 1, "{row}");
    assert_eq!(row["exit_code"], 0, "{row}");
    assert_eq!(
        ps_all(&node).len(),
        1,
        "one row per container, not per attempt"
    );
    assert_eq!(logs(&node, "flaky"), "attempt-2\n");
    assert_eq!(node.ok(&["logs", "--previous", "flaky"]), "attempt-1\n");
    assert_eq!(inspect(&node, "flaky")["Attempt"], 1);
}

// ---------------------------------------------------------------------------------------
// 7. --rm
// ---------------------------------------------------------------------------------------

#[test]
fn run_rm_leaves_nothing_behind_and_returns_the_failed_containers_exit_code() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "gone",
            vec![
                sh_container("ok", "echo fine; exit 0"),
                sh_container("bad", "echo leaving; sleep 0.2; exit 4"),
            ],
        ),
    );
    let out = pod.run(&["--rm"]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));

    assert_eq!(node.entries("containers"), Vec::<String>::new());
    assert_eq!(
        common::list_dir(&node.run_root().join("pods")),
        Vec::<String>::new()
    );
    assert_eq!(
        common::list_dir(&node.run_root().join("containers")),
        Vec::<String>::new()
    );
    let root = node.root().display().to_string();
    let run_root = node.run_root().display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mountinfo.lines() {
        assert!(
            !line.contains(&root) && !line.contains(&run_root),
            "a mount is left: {line}"
        );
    }
    // No monitor is left (polled: a monitor may still be exiting as `run` returns).
    wait_no_process_mentioning(&run_root);
    assert_eq!(ps_all(&node), Vec::<Value>::new());
    // The image stays: only the pod goes.
    assert_eq!(node.entries("layers").len(), 1);
    assert_eq!(node.json(&["images"]).as_array().unwrap().len(), 1);

    // A pod that succeeds returns 0, and the name is free again.
    let pod = Pod::new(&node, &manifest("gone", vec![sh_container("ok", "exit 0")]));
    let out = pod.run(&["--rm"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(ps_all(&node), Vec::<Value>::new());
}

#[test]
fn rm_of_a_running_pod_removes_its_mounts_processes_and_directories() {
    let node = busybox_node();
    let mut m = manifest(
        "busy",
        vec![
            exec_container("a", &["sleep", "1000"]),
            exec_container("b", &["sleep", "1000"]),
        ],
    );
    m["spec"]["terminationGracePeriodSeconds"] = json!(1);
    let pod = Pod::new(&node, &m);
    pod.start();
    wait_running(&node, "busy", "a");
    wait_running(&node, "busy", "b");
    let pids: Vec<i64> = ["a", "b"]
        .iter()
        .map(|c| inspect(&node, &pod.c(c))["State"]["Pid"].as_i64().unwrap())
        .collect();
    node.ok(&["rm", "busy"]);
    for pid in pids {
        assert!(
            !still_running(pid, b"sleep\x001000\x00"),
            "pid {pid} survived rm"
        );
    }
    assert_eq!(node.entries("containers"), Vec::<String>::new());
    assert_eq!(
        common::list_dir(&node.run_root().join("pods")),
        Vec::<String>::new()
    );
    let scratch = node.dir.path().display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&scratch),
        "mounts left after rm:\n{mountinfo}"
    );
    wait_no_process_mentioning(&node.run_root().display().to_string());
    // rm is idempotent.
    node.ok(&["rm", "busy"]);
}

// ---------------------------------------------------------------------------------------
// 8. Bad input
// ---------------------------------------------------------------------------------------

#[test]
fn a_command_not_in_path_fails_the_run_with_an_error_naming_it() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest(
            "typo",
            vec![exec_container("c", &["no-such-tool", "--flag"])],
        ),
    );
    let out = pod.run_to_completion();
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-tool"), "{stderr}");
    let info = inspect(&node, "typo");
    assert_eq!(info["State"]["Status"], "exited");
    assert!(
        info["State"]["Message"]
            .as_str()
            .is_some_and(|m| m.contains("no-such-tool")),
        "{info}"
    );
    assert_ne!(info["State"]["ExitCode"], 0);
}

#[test]
fn a_command_not_in_path_fails_a_detached_run_too() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("typo", vec![exec_container("c", &["no-such-tool"])]),
    );
    let out = pod.run(&["-d"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-tool"));
}

#[test]
fn a_pod_without_an_image_is_refused_naming_the_field() {
    let node = busybox_node();
    let m = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "noimage" },
        "spec": { "containers": [ { "name": "c", "command": ["true"] } ] },
    });
    let pod = Pod::new(&node, &m);
    let out = pod.run_to_completion();
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.containers[0].image"), "{stderr}");
    assert_eq!(ps_all(&node), Vec::<Value>::new(), "nothing was created");
    assert_eq!(node.entries("containers"), Vec::<String>::new());
    assert_eq!(
        common::list_dir(&node.run_root().join("pods")),
        Vec::<String>::new()
    );
}

#[test]
fn unknown_names_fail_for_inspect_and_logs_but_stop_and_rm_succeed() {
    let node = busybox_node();
    for args in [
        vec!["inspect", "nosuch"],
        vec!["logs", "nosuch"],
        vec!["diff", "nosuch"],
    ] {
        let err = node.fails(&args);
        assert!(err.contains("no container named"), "{args:?}: {err}");
        assert!(err.contains("nosuch"), "{args:?}: {err}");
    }
    node.ok(&["stop", "nosuch"]);
    node.ok(&["rm", "nosuch"]);
    node.ok(&["stop", "kube-system/nosuch"]);
    node.ok(&["rm", "kube-system/nosuch"]);
}

#[test]
fn running_the_same_pod_twice_fails_with_already_exists() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("twice", vec![exec_container("c", &["sleep", "1000"])]),
    );
    pod.start();
    let first = wait_running(&node, "twice", "c");
    let out = pod.run(&["-d"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(stderr.contains("default/twice"), "{stderr}");
    // The first pod is untouched.
    let rows = ps_all(&node);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["id"], first["id"]);
    assert_eq!(rows[0]["state"], "running");
}

#[test]
fn containers_are_found_by_pod_pod_container_namespace_and_id_prefix() {
    let node = busybox_node();
    let mut m = manifest(
        "named",
        vec![
            sh_container("a", "echo i-am-a"),
            sh_container("b", "echo i-am-b"),
        ],
    );
    m["metadata"]["namespace"] = json!("team");
    let pod = Pod::new(&node, &m);
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(logs(&node, "team/named/a"), "i-am-a\n");
    assert_eq!(logs(&node, "team/named/b"), "i-am-b\n");
    let id = inspect(&node, "team/named/b")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(logs(&node, &id[..12]), "i-am-b\n");
    // A two-container pod named alone is ambiguous; a pod in another namespace is not found.
    let err = node.fails(&["logs", "team/named"]);
    assert!(err.contains("ambiguous"), "{err}");
    let err = node.fails(&["logs", "named/a"]);
    assert!(err.contains("no container named"), "{err}");
    node.ok(&["rm", "team/named"]);
    assert_eq!(ps_all(&node), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------
// 9. Users, env, working directory
// ---------------------------------------------------------------------------------------

const APP_IMAGE: &str = "example.com/test/app:1";

/// Busybox with `User: app` (uid 1000 in its /etc/passwd), `WorkingDir: /home/app` and no
/// Env at all (so no PATH).
fn app_image() -> ImageSpec {
    ImageSpec {
        user: Some("app".into()),
        working_dir: Some("/home/app".into()),
        env: Vec::new(),
        ..busybox()
    }
}

const PRINT_IDENTITY: &str = "echo uid=$$(id -u); echo gid=$$(id -g); echo pwd=$$(pwd); \
     echo home=$$HOME; echo path=$$PATH";

#[test]
fn the_images_user_and_working_dir_apply_and_path_has_a_default() {
    let node = node_with_images(&[(IMAGE, busybox()), (APP_IMAGE, app_image())]);
    let mut as_image = sh_container("image", PRINT_IDENTITY);
    as_image["image"] = json!(APP_IMAGE);
    let mut in_tmp = sh_container("workdir", PRINT_IDENTITY);
    in_tmp["image"] = json!(APP_IMAGE);
    in_tmp["workingDir"] = json!("/tmp");
    let root = sh_container("root", PRINT_IDENTITY);
    let pod = Pod::new(&node, &manifest("users", vec![as_image, in_tmp, root]));
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));

    let image = logs(&node, &pod.c("image"));
    assert_eq!(field(&image, "uid"), "1000", "{image}");
    assert_eq!(field(&image, "gid"), "1000", "{image}");
    assert_eq!(field(&image, "pwd"), "/home/app", "{image}");
    assert_eq!(field(&image, "home"), "/home/app", "{image}");
    assert_eq!(field(&image, "path"), DEFAULT_PATH, "{image}");

    let workdir = logs(&node, &pod.c("workdir"));
    assert_eq!(field(&workdir, "uid"), "1000", "{workdir}");
    assert_eq!(field(&workdir, "pwd"), "/tmp", "{workdir}");

    let root = logs(&node, &pod.c("root"));
    assert_eq!(field(&root, "uid"), "0", "{root}");
    assert_eq!(field(&root, "pwd"), "/", "{root}");
    assert_eq!(field(&root, "home"), "/root", "{root}");

    // inspect shows the user it resolved.
    assert_eq!(
        inspect(&node, &pod.c("image"))["Config"]["User"],
        "1000:1000"
    );
}

#[test]
fn run_as_user_and_group_override_the_images_user() {
    let node = node_with_images(&[(APP_IMAGE, app_image())]);
    let mut pod_level = sh_container("pod-level", PRINT_IDENTITY);
    pod_level["image"] = json!(APP_IMAGE);
    let mut container_level = sh_container("container-level", PRINT_IDENTITY);
    container_level["image"] = json!(APP_IMAGE);
    container_level["securityContext"] = json!({ "runAsUser": 4321, "runAsGroup": 4322 });
    let mut m = manifest("runas", vec![pod_level, container_level]);
    m["spec"]["securityContext"] = json!({ "runAsUser": 2000 });
    let pod = Pod::new(&node, &m);
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));

    let text = logs(&node, &pod.c("pod-level"));
    assert_eq!(field(&text, "uid"), "2000", "{text}");
    let text = logs(&node, &pod.c("container-level"));
    assert_eq!(field(&text, "uid"), "4321", "{text}");
    assert_eq!(field(&text, "gid"), "4322", "{text}");
}

#[test]
fn pod_env_is_added_to_the_images_and_dollar_var_references_expand() {
    let image = ImageSpec {
        env: vec![
            format!("PATH={DEFAULT_PATH}"),
            "FROM_IMAGE=image-value".into(),
            "OVERRIDDEN=image".into(),
        ],
        ..busybox()
    };
    let node = node_with_images(&[(IMAGE, image)]);
    let mut c = sh_container(
        "c",
        "echo A=$$A; echo B=$$B; echo C=$$C; echo D=$$D; \
         echo FROM_IMAGE=$$FROM_IMAGE; echo OVERRIDDEN=$$OVERRIDDEN; echo arg=$(A)",
    );
    c["env"] = json!([
        { "name": "A", "value": "hello" },
        { "name": "B", "value": "$(A)-world" },
        { "name": "C", "value": "$$(A)" },
        { "name": "D", "value": "$(UNDEFINED_VAR)" },
        { "name": "OVERRIDDEN", "value": "pod" },
    ]);
    let pod = Pod::new(&node, &manifest("env", vec![c]));
    let out = pod.run_to_completion();
    assert!(out.status.success(), "{}", describe(&out));
    let text = logs(&node, "env");
    assert_eq!(field(&text, "A"), "hello", "{text}");
    assert_eq!(field(&text, "B"), "hello-world", "{text}");
    assert_eq!(field(&text, "C"), "$(A)", "`$$` is a literal `$`: {text}");
    assert_eq!(
        field(&text, "D"),
        "$(UNDEFINED_VAR)",
        "an undefined reference stays as written: {text}"
    );
    assert_eq!(field(&text, "FROM_IMAGE"), "image-value", "{text}");
    assert_eq!(field(&text, "OVERRIDDEN"), "pod", "{text}");
    assert_eq!(
        field(&text, "arg"),
        "hello",
        "command args expand $(VAR): {text}"
    );
}

/// Only the agent names a mount base to its monitors: a `LAYERLET_MOUNT_BASE` in the caller's
/// environment is not passed on, so no monitor tries to clone a container from it.
#[test]
fn a_mount_base_named_in_the_callers_environment_is_not_passed_to_monitors() {
    let node = busybox_node();
    let pod = Pod::new(
        &node,
        &manifest("stray-base", vec![sh_container("c", "echo ran")]),
    );
    let out = node
        .cmd()
        .env(
            "LAYERLET_MOUNT_BASE",
            node.dir.path().join("not-a-namespace"),
        )
        .args(["run", "-f", pod.file()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(logs(&node, "stray-base/c"), "ran\n");
    let monitor_logs: Vec<String> = common::list_dir(&node.run_root().join("containers"))
        .iter()
        .filter_map(|id| {
            std::fs::read_to_string(
                node.run_root()
                    .join("containers")
                    .join(id)
                    .join("monitor.log"),
            )
            .ok()
        })
        .collect();
    assert!(
        !monitor_logs.is_empty(),
        "the run left its container's monitor.log"
    );
    for log in &monitor_logs {
        assert!(!log.contains("mount base"), "{log}");
    }
}
