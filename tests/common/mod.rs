//! Helpers for driving the real `layerlet` binary in integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch data root and run root for one test, removed afterwards.
pub struct Node {
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Node {
        Node {
            dir: tempfile::Builder::new()
                .prefix("layerlet-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn cmd(&self) -> Command {
        self.cmd_of(Path::new(env!("CARGO_BIN_EXE_layerlet")))
    }

    /// [`Node::cmd`] of another layerlet binary (a copy installed elsewhere).
    pub fn cmd_of(&self, binary: &Path) -> Command {
        let mut cmd = Command::new(binary);
        cmd.arg("--root")
            .arg(self.root())
            .arg("--run-root")
            .arg(self.run_root());
        cmd.env_remove("DOCKER_CONFIG");
        // Pods get loopback only: a bridge or an address must never appear in the machine's
        // own network namespace. Networked tests pass --pod-network cni inside their own.
        cmd.env("LAYERLET_POD_NETWORK", "none");
        cmd.env("HOME", self.dir.path());
        cmd
    }

    /// Runs layerlet with `args`; returns the output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spawn layerlet")
    }

    /// Runs layerlet and insists on success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "layerlet {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs layerlet, insists on failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "layerlet {args:?} should have failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let text = self.ok(&full);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("layerlet {args:?}: bad JSON ({e}): {text}"))
    }

    /// Names in a directory of the data root, sorted.
    pub fn entries(&self, sub: &str) -> Vec<String> {
        list_dir(&self.root().join(sub))
    }
}

pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// `du -sb` of a path, via the real du.
pub fn du_sb(path: &Path) -> u64 {
    let out = Command::new("du")
        .arg("-sb")
        .arg(path)
        .output()
        .expect("du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du output")
}

/// A `layerlet agent` of a [`Node`], on a free loopback port, with its log in the node's
/// scratch directory. On drop it SIGKILLs the agent and then removes every pod of the node
/// (`layerlet rm -t 0`), so no process, mount or cgroup outlives the test, pass or fail.
/// [`Agent::signal`] and [`Agent::restart`] let a test stop and start it again under the
/// same guard.
pub struct Agent<'n> {
    pub node: &'n Node,
    /// The manifest directory (`--manifests`).
    pub manifests: PathBuf,
    /// `127.0.0.1:PORT` of the running instance.
    pub addr: String,
    /// Arguments after `--listen`; [`Agent::restart`] uses them as they are then.
    pub extra: Vec<String>,
    child: Option<std::process::Child>,
    /// One log file per instance started.
    logs: Vec<PathBuf>,
}

/// How long an agent gets to answer /readyz.
const AGENT_START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

impl<'n> Agent<'n> {
    /// Starts `layerlet agent --manifests NODE_DIR/manifests EXTRA...` and waits for /readyz.
    pub fn start(node: &'n Node, extra: &[&str]) -> Agent<'n> {
        let manifests = node.dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).expect("create manifest dir");
        let mut agent = Agent {
            node,
            manifests,
            addr: String::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            logs: Vec::new(),
        };
        agent.restart();
        agent
    }

    /// Starts the agent again (after [`Agent::signal`]), with the same arguments and a new port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the agent is still running");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let (child, log) = self.spawn_raw(&addr);
            self.child = Some(child);
            self.logs.push(log);
            self.addr = addr;
            let deadline = std::time::Instant::now() + AGENT_START_DEADLINE;
            loop {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                    self.child = None;
                    let log = self.log();
                    if log.contains("Address already in use") {
                        break; // someone took the port: try another
                    }
                    panic!("the agent exited ({status}) before it was ready:\n{log}");
                }
                if http_status(&self.addr, "/readyz") == Some(200) {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the agent was not ready after {AGENT_START_DEADLINE:?}:\n{}",
                    self.log()
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        panic!("could not find a free port for the agent");
    }

    /// Spawns `layerlet agent` on `addr` with this guard's directory and arguments, output to
    /// a new log file; does not wait for anything and does not adopt the process.
    pub fn spawn_raw(&self, addr: &str) -> (std::process::Child, PathBuf) {
        let log = self
            .node
            .dir
            .path()
            .join(format!("agent-{}.log", self.logs.len() + 1));
        let out = std::fs::File::create(&log).expect("agent log");
        let err = out.try_clone().expect("agent log");
        let child = self
            .node
            .cmd()
            .args(["--log-level", "info", "agent", "--manifests"])
            .arg(&self.manifests)
            .args(["--listen", addr])
            .args(&self.extra)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn layerlet agent");
        (child, log)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the agent runs").id()
    }

    /// Sends `signal` and waits for the agent to exit; returns how it exited.
    pub fn signal(&mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the agent runs");
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the agent did not exit within 60 s of signal {signal}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Everything every instance of this agent logged.
    pub fn log(&self) -> String {
        let mut text = String::new();
        for (i, path) in self.logs.iter().enumerate() {
            text.push_str(&format!("--- agent instance {} ---\n", i + 1));
            text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        text
    }

    /// `GET path` on the agent: status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
            .unwrap_or_else(|e| panic!("GET {path} on the agent: {e}\n{}", self.log()))
    }

    /// `GET path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: bad JSON ({e}): {body}"))
    }
}

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("agent log:\n{}", self.log());
        }
        remove_all_pods(self.node);
        scrub(self.node);
    }
}

/// Last resort after [`remove_all_pods`], for debris no record owns (what a killed agent
/// may leave): the cgroups of container directories still present, then every mount under
/// the node's scratch directory (detached, deepest first).
pub fn scrub(node: &Node) {
    let mut ids = node.entries("containers");
    ids.extend(list_dir(&node.run_root().join("containers")));
    for id in &ids {
        for hierarchy in list_dir(Path::new("/sys/fs/cgroup")) {
            let base = Path::new("/sys/fs/cgroup").join(hierarchy).join("layerlet");
            for pod in list_dir(&base) {
                let cg = base.join(&pod).join(id);
                if cg.is_dir() {
                    if let Ok(procs) = std::fs::read_to_string(cg.join("cgroup.procs")) {
                        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                            // SAFETY: kill(2) of a process in a cgroup of this test's node.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                    }
                    let _ = std::fs::remove_dir(&cg);
                    let _ = std::fs::remove_dir(base.join(&pod));
                }
            }
        }
    }
    let prefix = format!("{}/", node.dir.path().display());
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        if let Ok(c) = std::ffi::CString::new(m.clone()) {
            // SAFETY: umount2 of a path under this test's scratch directory.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        eprintln!("cleanup: detached {m}");
    }
}

/// `layerlet rm -t 0` of every pod `ps -a` lists.
pub fn remove_all_pods(node: &Node) {
    let out = node.run(&["--output", "json", "ps", "-a"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut pods: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["namespace"].as_str().unwrap_or("default"),
                r["pod"].as_str().unwrap_or_default()
            )
        })
        .collect();
    pods.sort();
    pods.dedup();
    for pod in pods {
        let out = node.run(&["rm", "-t", "0", &pod]);
        if !out.status.success() {
            eprintln!(
                "cleanup: layerlet rm {pod} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The status code of `GET path`, or None if nothing answered.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    http_get(addr, path).ok().map(|(status, _)| status)
}

/// A plain `GET` over HTTP/1.1 with `Connection: close`: status and body (not chunked).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no HTTP head in {text:?}"),
        )
    })?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line in {head:?}"),
            )
        })?;
    Ok((status, body.to_string()))
}

/// A block device of the host that this test process may open (major, minor, its /dev
/// node): the host's disks first (/proc/partitions), then any (/sys/dev/block). Opening it
/// from a cgroup without the filter is the control, so it must open here.
pub fn host_block_device() -> (u32, u32, PathBuf) {
    let partitions = std::fs::read_to_string("/proc/partitions").unwrap();
    let disks = partitions.lines().skip(2).filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((
            f.first()?.parse().ok()?,
            f.get(1)?.parse().ok()?,
            f.get(3)?.to_string(),
        ))
    });
    let mut others: Vec<(u32, u32, String)> = std::fs::read_dir("/sys/dev/block")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let numbers = e.file_name().to_string_lossy().into_owned();
            let (major, minor) = numbers.split_once(':')?;
            let uevent = std::fs::read_to_string(e.path().join("uevent")).ok()?;
            let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
            Some((major.parse().ok()?, minor.parse().ok()?, name.to_string()))
        })
        .collect();
    others.sort();
    disks
        .chain(others)
        .map(|(major, minor, name)| (major, minor, std::path::Path::new("/dev").join(name)))
        .find(|(_, _, node)| std::fs::File::open(node).is_ok())
        .expect("a block device this test process can open, for the control")
}

/// The busybox test image every agent suite imports.
pub const BUSYBOX_IMAGE: &str = "example.com/test/busybox:1";

/// A fresh node with [`BUSYBOX_IMAGE`] imported (an uncompressed busybox layer: gzip is slow
/// in a debug build).
pub fn busybox_node() -> Node {
    let node = Node::new();
    let spec = crate::support::ImageSpec {
        layers: vec![crate::support::LayerBuilder::busybox_layer(
            crate::support::Compression::None,
        )],
        ..crate::support::ImageSpec::busybox()
    };
    let layout = node.dir.path().join("layout");
    crate::support::write_oci_layout(&layout, &spec, BUSYBOX_IMAGE);
    node.ok(&["image", "import", layout.to_str().unwrap()]);
    node
}

/// `base-<pid>-<n>`: unique among the pods of every test running now.
pub fn unique(base: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    format!(
        "{base}-{:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
pub fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The status entry of `container` in `pod` (app or init container); panics when missing.
pub fn container_status(pod: &serde_json::Value, container: &str) -> serde_json::Value {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .find(|c| c["name"] == container)
        .cloned()
        .unwrap_or_else(|| panic!("no status of container {container} in {pod}"))
}

impl Agent<'_> {
    /// Polls `check` until it gives a value; past `within`, panics with `what` and the
    /// agent's pods, events and log.
    pub fn wait_for<T>(
        &self,
        what: &str,
        within: std::time::Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if std::time::Instant::now() > deadline {
                let (_, pods) = self.get("/api/v1/pods");
                let (_, events) = self.get("/api/v1/events");
                panic!(
                    "gave up after {within:?} waiting for {what}\npods: {pods}\nevents: {events}\nlog: {}",
                    self.log()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// The items of `/api/v1/pods`.
    pub fn pods(&self) -> Vec<serde_json::Value> {
        let list = self.get_json("/api/v1/pods");
        assert_eq!(list["kind"], "PodList", "{list}");
        list["items"].as_array().expect("items").clone()
    }

    /// The pod named `name` in `/api/v1/pods`, if listed.
    pub fn pod(&self, name: &str) -> Option<serde_json::Value> {
        self.pods()
            .into_iter()
            .find(|p| p["metadata"]["name"] == name)
    }
}

/// The pid of a running container's init and its start time, from `inspect`.
pub fn process_of(node: &Node, target: &str) -> (i64, u64) {
    let inspected = node.json(&["inspect", target]);
    assert_eq!(inspected["State"]["Status"], "running", "{inspected}");
    let pid = inspected["State"]["Pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no State.Pid in {inspected}"));
    let ticks = start_ticks(pid).unwrap_or_else(|| panic!("process {pid} of {target} is gone"));
    (pid, ticks)
}

/// Field 22 of /proc/PID/stat.
pub fn start_ticks(pid: i64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(19)?.parse().ok()
}

/// Whether the process of [`process_of`] still runs (the same start time: not a reused pid).
pub fn alive(process: (i64, u64)) -> bool {
    start_ticks(process.0) == Some(process.1)
}

/// `ps -a --output json` rows.
pub fn ps_all(node: &Node) -> Vec<serde_json::Value> {
    node.json(&["ps", "-a"])
        .as_array()
        .expect("ps prints an array")
        .clone()
}

/// The `ps -a` rows of one pod.
pub fn ps_rows_of(node: &Node, pod: &str) -> Vec<serde_json::Value> {
    ps_all(node)
        .into_iter()
        .filter(|r| r["pod"] == pod)
        .collect()
}

/// The status ("True", "False") of a pod condition in a PodList item, or "missing".
pub fn condition(pod: &serde_json::Value, kind: &str) -> String {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("missing")
        .to_string()
}

/// `promtool check metrics` of a scrape: no error and no lint finding.
pub fn promtool_check(what: &str, text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool: scripts/install-test-deps.sh installs Debian's prometheus");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics of {what}: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store's layer directories of `image` on `node`, topmost first.
pub fn layer_dirs_of(node: &Node, image: &str) -> Vec<PathBuf> {
    node.json(&["history", image])
        .as_array()
        .expect("history array")
        .iter()
        .filter_map(|row| row["chain_id"].as_str())
        .map(|chain| {
            node.root()
                .join("layers")
                .join(chain.trim_start_matches("sha256:"))
        })
        .collect()
}

/// Host mounts made for a test, detached when it ends (pass or fail), deepest first.
#[derive(Default)]
pub struct HostMounts(Vec<std::path::PathBuf>);

impl HostMounts {
    /// `dir` becomes a shared mount point of its own (a bind onto itself), as the host's
    /// mounts are under systemd.
    pub fn share(&mut self, dir: &std::path::Path) {
        use nix::mount::{mount, MsFlags};
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        self.0.push(dir.to_path_buf());
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
    }

    pub fn tmpfs(&mut self, dir: &std::path::Path) {
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        self.0.push(dir.to_path_buf());
    }
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
