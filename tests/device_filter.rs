//! The cgroup v2 device allow-list (an eBPF program of type CGROUP_DEVICE) on the real
//! kernel, as root. Processes are moved into cgroups made for the test in the cgroup2
//! hierarchy (`/sys/fs/cgroup` on a v2 host, `/sys/fs/cgroup/unified` in hybrid mode, where
//! eBPF device programs are enforced too), and open device nodes made with mknod; a sibling
//! cgroup without the program is the control. End to end, a container whose v1 devices
//! cgroup is lifted by hand is still refused the host's disk: by the eBPF filter alone.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Node;
use layerlet::runtime::isolation::device_filter;
use layerlet::runtime::isolation::devices::{default_devices, DeviceRule};
use serde_json::json;
use support::{Compression, ImageSpec, LayerBuilder};

const IMAGE: &str = "example.com/devfilter/busybox:1";
const DEADLINE: Duration = Duration::from_secs(60);
const EPERM: &str = "Operation not permitted";

/// The cgroup2 hierarchy: the whole tree on a v2 host, the unified one in hybrid mode.
fn cgroup2_root() -> PathBuf {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(PathBuf::from)
        .find(|p| layerlet::sys::bpf::is_cgroup2(p))
        .expect("a cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

/// A cgroup made for one test, with a unique name; its processes are killed and it is
/// removed when the test ends, pass or fail.
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    fn new(tag: &str) -> TestCgroup {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = cgroup2_root().join(format!(
            "layerlet-test-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).unwrap();
        TestCgroup { dir }
    }

    /// Runs `sh -c script` moved into this cgroup first; returns its stdout.
    fn sh(&self, script: &str) -> String {
        let procs = self.dir.join("cgroup.procs");
        let full = format!("echo $$ > {} || exit 99\n{script}", procs.display());
        let out = Command::new("sh").arg("-c").arg(&full).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "sh in {}: {}\nstdout: {stdout}\nstderr: {}",
            self.dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            for pid in std::fs::read_to_string(self.dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on pids of the test's own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The value of `key=` in `key=value` lines.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in:\n{text}"))
}

/// `mknod` from the test process (outside any test cgroup).
fn mknod(path: &Path, kind: &str, major: u32, minor: u32) {
    let status = Command::new("mknod")
        .arg(path)
        .arg(kind)
        .arg(major.to_string())
        .arg(minor.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "mknod {}", path.display());
}

/// Reads one byte of each of `names` in `dir`; lines `read-NAME=CODE ERROR`. Nothing goes
/// to /dev/null: some lists in these tests refuse it.
fn read_script(dir: &Path, names: &[&str]) -> String {
    let d = dir.display();
    names
        .iter()
        .map(|n| {
            format!(
                "head -c 1 {d}/{n} >{d}/out-{n} 2>{d}/err-{n}; echo \"read-{n}=$? $(cat {d}/err-{n})\"\n"
            )
        })
        .collect()
}

/// A scratch directory on the target's filesystem (not a `nodev` tmpfs /tmp).
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[test]
fn the_default_allow_list_refuses_a_host_disk_and_dev_mem_but_opens_dev_null() {
    let (major, minor, host_node) = common::host_block_device();
    let script = |dir: &Path| {
        let d = dir.display();
        format!(
            "mknod {d}/disk b {major} {minor}; echo \"mknod-disk=$?\"\n\
             mknod {d}/mem c 1 1; echo \"mknod-mem=$?\"\n\
             mknod {d}/null c 1 3; echo \"mknod-null=$?\"\n\
             {}\
             head -c 1 {host} > /dev/null 2>{d}/err-host; echo \"read-host=$? $(cat {d}/err-host)\"\n\
             echo x > /dev/null; echo \"write-devnull=$?\"\n",
            read_script(dir, &["disk", "mem", "null"]),
            host = host_node.display(),
        )
    };

    // Control: the same cgroup hierarchy without the program reads the disk.
    let control = TestCgroup::new("devfilter-control");
    let control_dir = scratch();
    let out = control.sh(&script(control_dir.path()));
    assert_eq!(field(&out, "mknod-disk"), "0", "{out}");
    assert_eq!(field(&out, "read-disk"), "0 ", "{out}");
    assert_eq!(field(&out, "read-host"), "0 ", "{out}");
    assert_eq!(field(&out, "read-null"), "0 ", "{out}");

    let filtered = TestCgroup::new("devfilter");
    device_filter::apply(&filtered.dir, &default_devices()).unwrap();
    assert_eq!(device_filter::attached(&filtered.dir).unwrap().len(), 1);
    let dir = scratch();
    let out = filtered.sh(&script(dir.path()));
    // mknod of anything is allowed (images may carry device nodes)...
    assert_eq!(field(&out, "mknod-disk"), "0", "{out}");
    assert_eq!(field(&out, "mknod-mem"), "0", "{out}");
    assert_eq!(field(&out, "mknod-null"), "0", "{out}");
    // ...but a node of the host's disk or of /dev/mem cannot be opened, nor the host's own.
    for key in ["read-disk", "read-mem", "read-host"] {
        let value = field(&out, key);
        assert!(
            !value.starts_with("0 ") && value.contains(EPERM),
            "{key}: {out}"
        );
    }
    // The pseudo-devices of the list still open, for reading and writing.
    assert_eq!(field(&out, "read-null"), "0 ", "{out}");
    assert_eq!(field(&out, "write-devnull"), "0", "{out}");
}

#[test]
fn applying_a_new_list_replaces_the_program_and_clearing_removes_it() {
    let (major, minor, _) = common::host_block_device();
    let dir = scratch();
    mknod(&dir.path().join("disk"), "b", major, minor);
    mknod(&dir.path().join("mem"), "c", 1, 1);
    mknod(&dir.path().join("null"), "c", 1, 3);
    let reads = read_script(dir.path(), &["disk", "mem", "null"]);
    let cg = TestCgroup::new("devfilter-replace");

    device_filter::apply(&cg.dir, &default_devices()).unwrap();
    let first = device_filter::attached(&cg.dir).unwrap();
    assert_eq!(first.len(), 1);
    let out = cg.sh(&reads);
    assert!(field(&out, "read-disk").contains(EPERM), "{out}");

    // A list that allows reading the disk but not /dev/null: only the new program decides.
    let rules = vec![
        DeviceRule {
            kind: 'b',
            major: Some(major),
            minor: Some(minor),
            access: "r".into(),
        },
        DeviceRule {
            kind: 'c',
            major: Some(1),
            minor: Some(1),
            access: "w".into(),
        },
    ];
    device_filter::apply(&cg.dir, &rules).unwrap();
    let second = device_filter::attached(&cg.dir).unwrap();
    assert_eq!(second.len(), 1, "the old program is detached");
    assert_ne!(first, second);
    // `echo $$ > cgroup.procs` in sh needs no device; the reads are the test.
    let out = cg.sh(&reads);
    assert_eq!(field(&out, "read-disk"), "0 ", "{out}");
    assert!(field(&out, "read-mem").contains(EPERM), "{out}");
    assert!(field(&out, "read-null").contains(EPERM), "{out}");

    device_filter::clear(&cg.dir).unwrap();
    assert_eq!(device_filter::attached(&cg.dir).unwrap(), Vec::<u32>::new());
    let out = cg.sh(&reads);
    assert_eq!(field(&out, "read-disk"), "0 ", "{out}");
    assert_eq!(field(&out, "read-null"), "0 ", "{out}");
}

#[test]
fn a_program_the_verifier_refuses_is_reported_with_its_log() {
    use layerlet::sys::bpf::{load, Insn, BPF_PROG_TYPE_CGROUP_DEVICE};
    // `exit` with r0 never set.
    let insns = [Insn {
        code: 0x95,
        regs: 0,
        off: 0,
        imm: 0,
    }];
    let e = load(BPF_PROG_TYPE_CGROUP_DEVICE, 0, "bad", &insns)
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused to load the bad program"), "{e}");
    assert!(e.contains("verifier log") && e.contains("R0"), "{e}");
}

// ---------------------------------------------------------------------------------------
// End to end: a container through the real `layerlet` binary
// ---------------------------------------------------------------------------------------

fn import_busybox(node: &Node) {
    let spec = ImageSpec {
        layers: vec![LayerBuilder::busybox_layer(Compression::None)],
        ..ImageSpec::busybox()
    };
    let layout = node.dir.path().join("layout-busybox");
    support::write_oci_layout(&layout, &spec, IMAGE);
    node.ok(&["image", "import", layout.to_str().unwrap()]);
}

/// Removes the pod when the test ends, pass or fail.
struct PodGuard<'n>(&'n Node, &'static str);

impl Drop for PodGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["rm", "-t", "0", self.1]);
    }
}

fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts pod `name` (one container `c` running `sh -c script`, with `security` as its
/// securityContext) once it logs `ready`; returns its pid and cgroup2 directory.
fn start(node: &Node, name: &str, script: &str, security: serde_json::Value) -> (u64, PathBuf) {
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", script.replace('$', "$$")],
                "securityContext": security,
            }],
        },
    });
    let file = node.dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, serde_json::to_vec(&manifest).unwrap()).unwrap();
    node.ok(&["run", "-d", "-f", file.to_str().unwrap()]);
    let c = format!("{name}/c");
    wait_for(&format!("{c} to be ready"), || {
        logs(node, &c).lines().any(|l| l == "ready").then_some(())
    });
    let pid = node.json(&["inspect", &c])["State"]["Pid"]
        .as_u64()
        .expect("a running container's pid");
    let unified = cgroup2_root().join(
        cgroup_of(pid, "")
            .expect("a cgroup2 line in /proc/PID/cgroup")
            .trim_start_matches('/'),
    );
    assert!(
        unified.to_string_lossy().contains("layerlet/"),
        "{c} is not in a layerlet cgroup2 directory: {}",
        unified.display()
    );
    (pid, unified)
}

fn logs(node: &Node, c: &str) -> String {
    String::from_utf8_lossy(&node.run(&["logs", c]).stdout).into_owned()
}

/// The cgroup of `pid` in the hierarchy whose /proc/PID/cgroup line starts with `prefix`
/// (`0::` for cgroup2, `N:devices:` for v1 devices), read from the host's view.
fn cgroup_of(pid: u64, controller: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, list, path) = (f.next()?, f.next()?, f.next()?);
            (list.split(',').any(|c| c == controller)).then(|| path.to_string())
        })
}

#[test]
fn a_container_with_its_v1_device_list_lifted_is_still_refused_the_host_disk_by_the_ebpf_filter() {
    let node = Node::new();
    import_busybox(&node);
    let (major, minor, _) = common::host_block_device();
    let script = format!(
        "mknod /tmp/disk b {major} {minor}; echo \"mknod=$?\"; echo ready\n\
         while [ ! -e /tmp/go ]; do sleep 0.05; done\n\
         head -c 1 /tmp/disk > /dev/null 2>/tmp/err; echo \"read=$? $(cat /tmp/err)\"\n\
         head -c 1 /dev/null; echo \"null=$?\"; echo done\n\
         exec sleep 3600\n"
    );
    let _guard = PodGuard(&node, "devfilter");
    let (pid, unified) = start(&node, "devfilter", &script, json!({}));
    let logs = || logs(&node, "devfilter/c");
    // The container's cgroup2 directory has layerlet's program attached.
    assert_eq!(
        device_filter::attached(&unified).unwrap().len(),
        1,
        "device programs on {}",
        unified.display()
    );

    // Hybrid mode: lift the v1 devices cgroup's list, so only the eBPF filter is left.
    if let Some(v1) = cgroup_of(pid, "devices") {
        let dir = Path::new("/sys/fs/cgroup/devices").join(v1.trim_start_matches('/'));
        std::fs::write(dir.join("devices.allow"), "a").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.list"))
                .unwrap()
                .trim(),
            "a *:* rwm"
        );
    }
    std::fs::write(format!("/proc/{pid}/root/tmp/go"), "").unwrap();
    let out = wait_for("the container's reads", || {
        let text = logs();
        text.lines().any(|l| l == "done").then_some(text)
    });
    assert_eq!(field(&out, "mknod"), "0", "{out}");
    let read = field(&out, "read");
    assert!(!read.starts_with("0 ") && read.contains(EPERM), "{out}");
    assert_eq!(field(&out, "null"), "0", "{out}");

    // A process exec'd into the container is in its cgroups and refused too.
    let exec = node.run(&[
        "exec",
        "devfilter/c",
        "--",
        "sh",
        "-c",
        "head -c 1 /tmp/disk",
    ]);
    assert_ne!(exec.status.code(), Some(0), "{exec:?}");
    assert!(
        String::from_utf8_lossy(&exec.stderr).contains(EPERM),
        "{exec:?}"
    );

    // Without the program the same read works: the filter was what refused it.
    device_filter::clear(&unified).unwrap();
    let exec = node.run(&[
        "exec",
        "devfilter/c",
        "--",
        "sh",
        "-c",
        "head -c 1 /tmp/disk",
    ]);
    assert_eq!(exec.status.code(), Some(0), "{exec:?}");
}

#[test]
fn a_privileged_containers_cgroup_has_no_device_program_and_it_opens_the_host_device() {
    let node = Node::new();
    import_busybox(&node);
    let (major, minor, _) = common::host_block_device();
    let script = format!(
        "mknod /tmp/disk b {major} {minor}\n\
         head -c 1 /tmp/disk > /dev/null 2>/tmp/err; echo \"read=$? $(cat /tmp/err)\"\n\
         echo ready; exec sleep 3600\n"
    );
    let _guard = PodGuard(&node, "devfilter-privileged");
    let (_, unified) = start(
        &node,
        "devfilter-privileged",
        &script,
        json!({"privileged": true}),
    );
    assert_eq!(
        device_filter::attached(&unified).unwrap(),
        Vec::<u32>::new()
    );
    let out = logs(&node, "devfilter-privileged/c");
    assert_eq!(field(&out, "read"), "0 ", "{out}");
}
