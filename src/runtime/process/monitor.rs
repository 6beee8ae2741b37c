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
use crate::runtime::process::mount_base::{HostHandles, MOUNT_BASE_ENV};
use crate::runtime::spec::ContainerPlan;
use crate::runtime::state::{Exited, Started, StateFiles};
use crate::sys::process::start_ticks;
use crate::time::format_rfc3339_nano;

const PLAN_FILE: &str = "plan.json";
const STDIN_FIFO: &str = "stdin";

pub fn plan_path(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join(PLAN_FILE)
}

/// The FIFO a container started with `stdin: true` reads its stdin from (the kubelet API's
/// attach writes to it).
pub fn stdin_path(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join(STDIN_FIFO)
}

/// A fresh FIFO for the container's stdin, opened read-write: a FIFO with a writer never
/// reads as ended, so stdin stays open between attaches, as kubelet keeps it.
fn stdin_fifo(run_dir: &Path, flags: OFlag) -> Result<OwnedFd, String> {
    let path = stdin_path(run_dir);
    let _ = std::fs::remove_file(&path);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("make the stdin FIFO {}: {e}", path.display()))?;
    nix::fcntl::open(
        &path,
        OFlag::O_RDWR | OFlag::O_CLOEXEC | flags,
        nix::sys::stat::Mode::empty(),
    )
    // SAFETY: open returned a new descriptor that nothing else owns.
    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
    .map_err(|e| format!("open the stdin FIFO {}: {e}", path.display()))
}

/// What the monitor gives init and keeps for itself: with a terminal, init gets its
/// secondary end as 0, 1 and 2 and the monitor reads the primary end into the log and
/// feeds it the stdin FIFO; without, output pipes and the FIFO (or /dev/null) as stdin.
struct Stdio {
    /// (read end, Stream) of what goes into the log.
    outputs: Vec<(OwnedFd, Stream)>,
    /// The stdin FIFO the monitor copies into the terminal.
    input: Option<OwnedFd>,
    /// The terminal's primary end (also in `outputs`), input is written to it.
    terminal: Option<std::os::fd::RawFd>,
    /// init's ends, closed in the monitor once init has them.
    child_ends: Vec<OwnedFd>,
    init: crate::runtime::process::init::Stdio,
}

fn stdio(plan: &ContainerPlan, run_dir: &Path) -> Result<Stdio, String> {
    if plan.tty {
        let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(
                fd.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(|e| format!("terminal: {e}"))?;
        }
        nix::fcntl::fcntl(
            pty.master.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
        )
        .map_err(|e| format!("terminal: {e}"))?;
        let input = if plan.stdin {
            Some(stdin_fifo(run_dir, OFlag::O_NONBLOCK)?)
        } else {
            None
        };
        let slave = pty.slave.as_raw_fd();
        let master = pty.master.as_raw_fd();
        Ok(Stdio {
            outputs: vec![(pty.master, Stream::Stdout)],
            input,
            terminal: Some(master),
            init: crate::runtime::process::init::Stdio {
                stdin: Some(slave),
                stdout: slave,
                stderr: slave,
                tty: true,
            },
            child_ends: vec![pty.slave],
        })
    } else {
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let fifo = if plan.stdin {
            Some(stdin_fifo(run_dir, OFlag::empty())?)
        } else {
            None
        };
        let init = crate::runtime::process::init::Stdio {
            stdin: fifo.as_ref().map(|f| f.as_raw_fd()),
            stdout: out_w.as_raw_fd(),
            stderr: err_w.as_raw_fd(),
            tty: false,
        };
        let mut child_ends = vec![out_w, err_w];
        child_ends.extend(fifo);
        Ok(Stdio {
            outputs: vec![(out_r, Stream::Stdout), (err_r, Stream::Stderr)],
            input: None,
            terminal: None,
            child_ends,
            init,
        })
    }
}

fn now() -> String {
    format_rfc3339_nano(SystemTime::now())
}

/// Entry point of a monitor process (`layerlet-monitor RUN_DIR`, or `layerlet __monitor
/// RUN_DIR`): detaches from the caller and runs the monitor in a forked child. Returns this
/// process's exit status. Must be called before anything starts a thread.
pub fn detached_main(run_dir: &Path) -> u8 {
    crate::sys::exe::make_non_dumpable();
    // A monitor lives as long as its container: it must not keep whatever its caller left
    // open (a pipe the caller reads would never close). 0-2 are set up by the caller.
    // SAFETY: closes descriptors above stderr; nothing in this process uses them.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // A session of its own, then a fork whose parent exits at once: the caller reaps that
    // parent immediately and the monitor lives on, reparented, whatever happens to the caller.
    let _ = nix::unistd::setsid();
    // SAFETY: this process is single-threaded (nothing has started a thread yet).
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => 0,
        Ok(nix::unistd::ForkResult::Child) => monitor_main(run_dir) as u8,
        Err(e) => {
            println!("failed fork the monitor: {e}");
            1
        }
    }
}

/// The monitor itself, after [`detached_main`]'s fork: reports one line on
/// fd 1 ("started PID" or "failed REASON"), then detaches from it. Returns the exit status of
/// the monitor process.
fn monitor_main(run_dir: &Path) -> i32 {
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

/// The host's handles for an init cloned from the agent's mount base, when the agent named
/// one; without (a foreground `run`, or a base that is gone) init's mount namespace is a copy
/// of the host's, as it always was.
fn host_handles(plan: &ContainerPlan) -> Option<HostHandles> {
    let base = std::env::var_os(MOUNT_BASE_ENV)?;
    HostHandles::open(Path::new(&base), plan)
        .map_err(|e| eprintln!("monitor: {e}; init's mount namespace is copied from the host's"))
        .ok()
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

    let io = stdio(&plan, run_dir)?;
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
    let (init_stdio, fail_fd) = (io.init, fail_w.as_raw_fd());
    // Init is born in its cgroup2 directory where there is one, so its attach there takes
    // no global lock (see sys::clone).
    let cgroup_dir = plan
        .cgroup
        .as_ref()
        .and_then(|cg| cg.clone_target())
        .and_then(|dir| std::fs::File::open(dir).ok());
    let cgroup_fd = cgroup_dir.as_ref().map(|d| d.as_raw_fd());
    let handles = host_handles(&plan);
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
            init_stdio,
            handles.as_ref(),
        );
        // SAFETY: fail_fd is the write end of the failure pipe, open in this child.
        let mut pipe = unsafe { std::fs::File::from_raw_fd(fail_fd) };
        let _ = pipe.write_all(failure.0.as_bytes());
        127
    };
    if let Some(h) = &handles {
        h.enter_base().map_err(|e| e.to_string())?;
    }
    // SAFETY: the monitor is single-threaded (a fresh exec, no runtime), so the child may
    // allocate.
    let cloned = unsafe {
        crate::sys::clone::fork_into(flags.bits(), cgroup_dir.as_ref().map(|d| d.as_fd()), child)
    };
    if let Some(h) = &handles {
        // The monitor's own files (state, logs) are the host's. Should the way back fail, the
        // same files are reached from the base (it only lacks the pods' mounts): init runs,
        // so the monitor carries on rather than orphan it.
        if let Err(e) = h.leave_base() {
            eprintln!("monitor: {e}");
        }
    }
    let pid = cloned
        .map(Pid::from_raw)
        .map_err(|e| format!("clone the container's init: {e}"))?;
    drop((cgroup_dir, handles));
    let Stdio {
        outputs,
        input,
        terminal,
        child_ends,
        ..
    } = io;
    drop((child_ends, fail_w));

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

    let status = pump(pid, &mut sigfd, outputs, input.zip(terminal), &mut log);
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

/// Which descriptor a pollfd is.
#[derive(Clone, Copy)]
enum Slot {
    Output(usize),
    Input,
    Signal,
}

fn read_into(fd: std::os::fd::RawFd, buf: &mut [u8]) -> isize {
    // SAFETY: reading into our own buffer from a descriptor we own.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

fn last_errno() -> Option<i32> {
    std::io::Error::last_os_error().raw_os_error()
}

/// Copies output into the log until init exits and its outputs close, and bytes of the
/// stdin FIFO into the terminal (`input`: the FIFO and the terminal's primary end, which
/// is one of `outputs`); returns init's status.
fn pump(
    pid: Pid,
    sigfd: &mut SignalFd,
    outputs: Vec<(OwnedFd, Stream)>,
    mut input: Option<(OwnedFd, std::os::fd::RawFd)>,
    log: &mut CriLogWriter,
) -> WaitStatus {
    let mut open: Vec<Option<(OwnedFd, Stream)>> = outputs.into_iter().map(Some).collect();
    let mut status: Option<WaitStatus> = None;
    let mut buf = vec![0u8; 64 * 1024];
    // Input read from the FIFO that the terminal has not taken yet.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        if let Some(s) = status {
            if open.iter().all(Option::is_none) {
                return s;
            }
        }
        let terminal = input.as_ref().map(|(_, t)| *t);
        if terminal.is_some_and(|t| !open.iter().flatten().any(|(fd, _)| fd.as_raw_fd() == t)) {
            // The terminal is gone: nobody reads input any more.
            input = None;
            pending.clear();
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(4);
        let mut which = Vec::with_capacity(4);
        for (i, slot) in open.iter().enumerate() {
            if let Some((fd, _)) = slot {
                let mut events = libc::POLLIN;
                if Some(fd.as_raw_fd()) == terminal && !pending.is_empty() {
                    events |= libc::POLLOUT;
                }
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events,
                    revents: 0,
                });
                which.push(Slot::Output(i));
            }
        }
        if let Some((fifo, _)) = &input {
            if pending.is_empty() && status.is_none() {
                fds.push(libc::pollfd {
                    fd: fifo.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                which.push(Slot::Input);
            }
        }
        if status.is_none() {
            fds.push(libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            which.push(Slot::Signal);
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
            match *slot {
                Slot::Output(i) => {
                    let Some((fd, stream)) = &open[i] else {
                        continue;
                    };
                    let fd = fd.as_raw_fd();
                    if pfd.revents & libc::POLLOUT != 0 && !pending.is_empty() {
                        // SAFETY: writing our own buffer to the terminal we own.
                        let put =
                            unsafe { libc::write(fd, pending.as_ptr().cast(), pending.len()) };
                        if put > 0 {
                            pending.drain(..put as usize);
                        } else if !matches!(last_errno(), Some(libc::EAGAIN | libc::EINTR)) {
                            pending.clear();
                        }
                    }
                    if pfd.revents & !libc::POLLOUT == 0 {
                        continue;
                    }
                    let got = read_into(fd, &mut buf);
                    if got > 0 {
                        if let Err(e) = log.write(*stream, &buf[..got as usize]) {
                            eprintln!("log write: {e}");
                        }
                    } else if got == 0 || !matches!(last_errno(), Some(libc::EINTR | libc::EAGAIN))
                    {
                        // EOF, or EIO from a terminal whose other end every process closed.
                        open[i] = None;
                    }
                }
                Slot::Input => {
                    let Some((fifo, _)) = &input else { continue };
                    let got = read_into(fifo.as_raw_fd(), &mut buf);
                    if got > 0 {
                        pending.extend_from_slice(&buf[..got as usize]);
                    }
                }
                Slot::Signal => {
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
