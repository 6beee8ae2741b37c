//! Runs one plugin process: a clean environment plus the CNI variables, the config on
//! stdin, the result on stdout, stderr kept (bounded) for errors, and a deadline after which
//! the plugin and everything it started are killed. Plain `std::process::Command`: no code
//! runs between fork and exec.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Deserialize;

use super::error::{NetworkError, PluginSite};
use super::netns::in_netns;

/// The most of a plugin's stdout kept: results are a few KiB.
const STDOUT_LIMIT: usize = 1 << 20;
/// The most of a plugin's stderr kept for an error message.
const STDERR_LIMIT: usize = 8 << 10;
/// Plugins look up helpers (iptables, ip) in PATH; the caller's own PATH is not passed on.
const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How plugins are run, for every call.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    pub bin_dirs: Vec<PathBuf>,
    pub timeout: Duration,
    /// Run plugins in this network namespace instead of the caller's: for tests that keep
    /// the bridge and everything else inside a namespace of their own.
    pub plugin_netns: Option<PathBuf>,
}

/// One call of one plugin.
pub struct PluginCall<'a> {
    pub site: PluginSite,
    pub binary: &'a Path,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub stdin: Vec<u8>,
}

/// The error object a failing plugin prints on stdout.
#[derive(Deserialize)]
struct PluginErrorJson {
    code: u64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// Runs `call` and returns its stdout when it exits 0.
pub fn run_plugin(call: PluginCall<'_>, settings: &ExecSettings) -> Result<Vec<u8>, NetworkError> {
    let mut command = Command::new(call.binary);
    command
        .env_clear()
        .env("PATH", PLUGIN_PATH)
        .env("CNI_COMMAND", call.site.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_ARGS", call.args)
        .env("CNI_PATH", join_paths(&settings.bin_dirs))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what the plugin started too.
        .process_group(0);
    let spawned = match &settings.plugin_netns {
        Some(netns) => in_netns(netns, || command.spawn())?,
        None => command.spawn(),
    };
    let child = spawned.map_err(|source| NetworkError::PluginSpawn {
        site: call.site.clone(),
        binary: call.binary.to_path_buf(),
        source,
    })?;
    let started = Instant::now();
    let finished = supervise(child, call.stdin, settings.timeout);
    let site = call.site;
    tracing::trace!(
        site = %site,
        ms = %format_args!("{:.3}", started.elapsed().as_secs_f64() * 1e3),
        "CNI plugin call finished"
    );
    match finished {
        Finished::TimedOut { stderr } => Err(NetworkError::PluginTimeout {
            site,
            timeout: settings.timeout,
            stderr: lossy(&stderr),
        }),
        Finished::Exited {
            status,
            stdout,
            stderr,
        } => {
            if status.success() {
                return Ok(stdout);
            }
            match serde_json::from_slice::<PluginErrorJson>(&stdout) {
                Ok(e) => Err(NetworkError::PluginFailed {
                    site,
                    code: e.code,
                    msg: e.msg,
                    details: e.details,
                }),
                Err(_) => Err(NetworkError::PluginExit {
                    site,
                    status: status.to_string(),
                    stderr: lossy(&stderr),
                }),
            }
        }
    }
}

enum Finished {
    Exited {
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    TimedOut {
        stderr: Vec<u8>,
    },
}

/// Feeds stdin, drains stdout and stderr, and waits, all within `timeout`; on the deadline
/// kills the plugin's process group. Helper threads never outlive a pipe's last writer.
fn supervise(mut child: Child, stdin: Vec<u8>, timeout: Duration) -> Finished {
    let deadline = Instant::now() + timeout;
    let group = Pid::from_raw(child.id() as i32);
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin that exits without reading gives EPIPE here, which is its business.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&stdin);
        });
    }
    let stdout = read_in_background(child.stdout.take(), STDOUT_LIMIT);
    let stderr = read_in_background(child.stderr.take(), STDERR_LIMIT);
    let (exit_tx, exit_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    let left = || deadline.saturating_duration_since(Instant::now());
    let kill = || {
        let _ = killpg(group, Signal::SIGKILL);
    };
    let status = match exit_rx.recv_timeout(left()) {
        Ok(Ok(status)) => status,
        // wait() itself failed or its thread died: treat as a hang, after killing.
        Ok(Err(_)) | Err(_) => {
            kill();
            let _ = exit_rx.recv_timeout(Duration::from_secs(5));
            return Finished::TimedOut {
                stderr: stderr
                    .recv_timeout(Duration::from_secs(1))
                    .unwrap_or_default(),
            };
        }
    };
    // A child the plugin left behind may still hold the pipes open: it gets what is left
    // of the deadline, then the group is killed.
    let stdout = match stdout.recv_timeout(left()) {
        Ok(out) => out,
        Err(_) => {
            kill();
            return Finished::TimedOut {
                stderr: stderr
                    .recv_timeout(Duration::from_secs(1))
                    .unwrap_or_default(),
            };
        }
    };
    let stderr = stderr
        .recv_timeout(left().max(Duration::from_millis(100)))
        .unwrap_or_default();
    Finished::Exited {
        status,
        stdout,
        stderr,
    }
}

/// Reads `pipe` to its end on a thread, keeping at most `limit` bytes.
fn read_in_background(
    pipe: Option<impl Read + Send + 'static>,
    limit: usize,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = limit.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

fn join_paths(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":")
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn call<'a>(binary: &'a Path, command: &'static str) -> PluginCall<'a> {
        PluginCall {
            site: PluginSite {
                plugin: "test".into(),
                command,
                config: PathBuf::from("/etc/cni/net.d/10-test.conflist"),
            },
            binary,
            container_id: "c1",
            netns: "/run/netns/x",
            ifname: "eth0",
            args: "IgnoreUnknown=1",
            stdin: b"{\"cniVersion\":\"1.0.0\"}".to_vec(),
        }
    }

    fn settings(timeout: Duration) -> ExecSettings {
        ExecSettings {
            bin_dirs: vec!["/a".into(), "/b".into()],
            timeout,
            plugin_netns: None,
        }
    }

    #[test]
    fn a_plugin_sees_only_the_cni_environment_and_its_config_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "env",
            "env | sort | grep -v '^PWD=\\|^SHLVL=\\|^_='; cat",
        );
        let out = run_plugin(call(&bin, "ADD"), &settings(Duration::from_secs(10))).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            format!(
                "CNI_ARGS=IgnoreUnknown=1\nCNI_COMMAND=ADD\nCNI_CONTAINERID=c1\nCNI_IFNAME=eth0\n\
                 CNI_NETNS=/run/netns/x\nCNI_PATH=/a:/b\nPATH={PLUGIN_PATH}\n\
                 {{\"cniVersion\":\"1.0.0\"}}"
            )
        );
    }

    #[test]
    fn a_plugin_error_is_shown_as_the_plugin_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "fail",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"no more addresses","details":"range 10.89.0.0/30 is full"}'; echo noise >&2; exit 1"#,
        );
        let err = run_plugin(call(&bin, "ADD"), &settings(Duration::from_secs(10))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI plugin \"test\" (ADD with /etc/cni/net.d/10-test.conflist) failed: code 11: \
             no more addresses (range 10.89.0.0/30 is full)"
        );
    }

    #[test]
    fn a_plugin_that_fails_without_an_error_object_shows_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(dir.path(), "crash", "echo 'panic: boom' >&2; exit 2");
        let err = run_plugin(call(&bin, "DEL"), &settings(Duration::from_secs(10))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI plugin \"test\" (DEL with /etc/cni/net.d/10-test.conflist) exited with exit \
             status: 2 and no CNI error on stdout; stderr: \"panic: boom\""
        );
    }

    #[test]
    fn a_hanging_plugin_and_its_children_are_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let bin = script(
            dir.path(),
            "hang",
            &format!(
                "sleep 300 & echo $! > {}; echo waiting >&2; wait",
                pidfile.display()
            ),
        );
        let err = run_plugin(call(&bin, "ADD"), &settings(Duration::from_millis(500))).unwrap_err();
        assert!(
            matches!(&err, NetworkError::PluginTimeout { stderr, .. } if stderr == "waiting"),
            "{err}"
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Reaped by init once killed; give it a moment to disappear.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z "))
        });
        assert!(gone, "the plugin's child {pid} survived the timeout");
    }

    #[test]
    fn a_plugin_that_leaves_a_child_holding_stdout_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(dir.path(), "linger", "sleep 300 & echo '{}'; exit 0");
        let err = run_plugin(call(&bin, "ADD"), &settings(Duration::from_millis(500))).unwrap_err();
        assert!(matches!(err, NetworkError::PluginTimeout { .. }), "{err}");
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error_naming_it() {
        let err = run_plugin(
            call(Path::new("/nonexistent/bridge"), "ADD"),
            &settings(Duration::from_secs(1)),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("start /nonexistent/bridge"),
            "{err}"
        );
    }
}
