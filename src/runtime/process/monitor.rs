//! The per-container monitor: a re-exec of layerlet, single-threaded and without tokio, that
//! owns the container's init. It clones init into new mount and PID namespaces, reports the
//! start, copies stdout and stderr into the CRI log, reaps init and records its exit status
//! atomically. It outlives whoever started it (it runs in its own session), so exit codes
//! are collected even when that process is killed.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::SystemTime;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, Pid};

use crate::runtime::logs::{CriLogWriter, LogRotation, Stream};
use crate::runtime::spec::ContainerPlan;
use crate::runtime::state::{Exited, Started, StateFiles};
use crate::sys::process::start_ticks;
use crate::time::format_rfc3339_nano;

const PLAN_FILE: &str = "plan.json";

pub fn plan_path(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join(PLAN_FILE)
}

fn now() -> String {
    format_rfc3339_nano(SystemTime::now())
}

/// Entry point of `layerlet __monitor RUN_DIR`, after the caller's fork: reports one line on
/// fd 1 ("started PID" or "failed REASON"), then detaches from it. Returns the exit status of
/// the monitor process.
pub fn monitor_main(run_dir: &Path) -> i32 {
    let mut ready = unsafe_stdout();
    match run(run_dir, &mut ready) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("monitor {}: {message}", run_dir.display());
            let _ = writeln!(ready, "failed {message}");
            1
        }
    }
}

fn unsafe_stdout() -> std::fs::File {
    // SAFETY: fd 1 is the caller's ready pipe, owned by this process from here on.
    unsafe { std::fs::File::from_raw_fd(1) }
}

fn detach_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // Keep fd 1 valid but no longer the caller's pipe, so `$(layerlet run --detach)`
        // returns as soon as the container started.
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
}

fn run(run_dir: &Path, ready: &mut std::fs::File) -> Result<(), String> {
    let plan_bytes = std::fs::read(plan_path(run_dir)).map_err(|e| format!("read plan: {e}"))?;
    let plan: ContainerPlan =
        serde_json::from_slice(&plan_bytes).map_err(|e| format!("parse plan: {e}"))?;
    let state = StateFiles::new(run_dir);

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    let mut sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;

    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (fail_r, fail_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let mut log = CriLogWriter::open(
        &plan.log_path,
        LogRotation {
            max_bytes: plan.log_max_bytes,
            max_files: plan.log_max_files,
        },
    )
    .map_err(|e| e.to_string())?;

    let mut flags = CloneFlags::CLONE_NEWNS;
    if !plan.namespaces.host_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    let filter = crate::runtime::isolation::seccomp::compile(
        &plan.security.seccomp,
        &plan.security.seccomp_dir,
        &plan.security.capabilities,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    let (out_fd, err_fd, fail_fd) = (out_w.as_raw_fd(), err_w.as_raw_fd(), fail_w.as_raw_fd());
    // Init is born in its cgroup2 directory where there is one, so its attach there takes
    // no global lock (see sys::clone).
    let cgroup_dir = plan
        .cgroup
        .as_ref()
        .and_then(|cg| cg.clone_target())
        .and_then(|dir| std::fs::File::open(dir).ok());
    let cgroup_fd = cgroup_dir.as_ref().map(|d| d.as_raw_fd());
    let child = |born_in_cgroup| {
        if let Some(fd) = cgroup_fd {
            // A host directory has no business staying open in the container, even with
            // O_CLOEXEC (a workingDir of /proc/self/fd/N would reach it before exec).
            // SAFETY: the child's copy of the fd; the parent's File is not dropped here.
            unsafe { libc::close(fd) };
        }
        let failure = crate::runtime::process::init::run(
            &plan,
            filter.as_ref(),
            born_in_cgroup,
            out_fd,
            err_fd,
        );
        // SAFETY: fail_fd is the write end of the failure pipe, open in this child.
        let mut pipe = unsafe { std::fs::File::from_raw_fd(fail_fd) };
        let _ = pipe.write_all(failure.0.as_bytes());
        127
    };
    // SAFETY: the monitor is single-threaded (a fresh exec, no runtime), so the child may
    // allocate.
    let pid = unsafe {
        crate::sys::clone::fork_into(flags.bits(), cgroup_dir.as_ref().map(|d| d.as_fd()), child)
    }
    .map(Pid::from_raw)
    .map_err(|e| format!("clone the container's init: {e}"))?;
    drop(cgroup_dir);
    drop((out_w, err_w, fail_w));

    let mut failure = String::new();
    let _ = std::fs::File::from(fail_r).read_to_string(&mut failure);
    if !failure.is_empty() {
        let _ = waitpid(pid, None);
        let exited = Exited {
            exit_code: 128,
            reason: "StartError".into(),
            signal: None,
            finished_at: now(),
            finished_unix_ms: crate::time::unix_ms_now(),
            message: Some(failure.clone()),
        };
        state.write_exited(&exited).map_err(|e| e.to_string())?;
        let _ = writeln!(ready, "failed {failure}");
        return Ok(());
    }

    let started = Started {
        pid: pid.as_raw(),
        pid_start_ticks: start_ticks(pid.as_raw()).unwrap_or(0),
        monitor_pid: std::process::id() as i32,
        monitor_start_ticks: start_ticks(std::process::id() as i32).unwrap_or(0),
        started_at: now(),
        started_unix_ms: crate::time::unix_ms_now(),
    };
    state.write_started(&started).map_err(|e| e.to_string())?;
    let _ = writeln!(ready, "started {}", pid.as_raw());
    detach_stdout();

    let status = pump(pid, &mut sigfd, out_r, err_r, &mut log);
    let _ = log.close();
    let (exit_code, signal) = match status {
        WaitStatus::Exited(_, code) => (code, None),
        WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    // An OOM kill is read from the cgroup's counter, so it is known without an agent.
    let oom = plan.cgroup.as_ref().is_some_and(|cg| cg.oom_killed());
    let message = plan.termination_message.as_ref().and_then(|m| {
        crate::runtime::storage::termination::read(m, exit_code, || {
            crate::runtime::logs::read_all(&plan.log_path)
                .map(|records| {
                    crate::runtime::logs::join_partial(&records)
                        .into_iter()
                        .map(|(_, line)| line)
                        .collect()
                })
                .unwrap_or_default()
        })
    });
    let exited = Exited {
        exit_code,
        reason: if oom {
            "OOMKilled".into()
        } else if exit_code == 0 {
            "Completed".into()
        } else {
            "Error".into()
        },
        signal,
        finished_at: now(),
        finished_unix_ms: crate::time::unix_ms_now(),
        message,
    };
    state.write_exited(&exited).map_err(|e| e.to_string())
}

/// Copies output into the log until init exits and its pipes close; returns init's status.
fn pump(
    pid: Pid,
    sigfd: &mut SignalFd,
    out: OwnedFd,
    err: OwnedFd,
    log: &mut CriLogWriter,
) -> WaitStatus {
    let mut open = [Some(out), Some(err)];
    let mut status: Option<WaitStatus> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(s) = status {
            if open.iter().all(Option::is_none) {
                return s;
            }
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(3);
        for (i, fd) in open.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(Some(i));
            }
        }
        if status.is_none() {
            fds.push(libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            which.push(None);
        }
        // Once init is gone, processes it left (host PID namespace only) may hold the pipes:
        // give them a moment, not forever.
        let timeout = if status.is_some() { 2000 } else { -1 };
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n == 0 {
            return status.unwrap_or(WaitStatus::StillAlive);
        }
        if n < 0 {
            continue;
        }
        for (pfd, slot) in fds.iter().zip(&which) {
            if pfd.revents == 0 {
                continue;
            }
            match slot {
                Some(i) => {
                    let Some(fd) = &open[*i] else { continue };
                    let stream = if *i == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    // SAFETY: reading into our buffer from a pipe we own.
                    let got =
                        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if got > 0 {
                        if let Err(e) = log.write(stream, &buf[..got as usize]) {
                            eprintln!("log write: {e}");
                        }
                    } else if got == 0
                        || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
                    {
                        open[*i] = None;
                    }
                }
                None => {
                    while let Ok(Some(_)) = sigfd.read_signal() {}
                    loop {
                        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                            Ok(s @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _)))
                                if p == pid =>
                            {
                                status = Some(s)
                            }
                            Ok(WaitStatus::StillAlive) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
            }
        }
    }
}
