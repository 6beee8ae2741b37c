//! `exec`: a new process inside a running container, in all its namespaces, as its user,
//! with its environment. Forks: call it only from a single-threaded process (the CLI, before
//! any runtime starts), never from the agent's async runtime.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{chdir, dup2, execve, fork, setsid, ForkResult};

use crate::runtime::process::init::{find_executable, lock_down};
use crate::runtime::spec::ContainerPlan;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("open namespace {path}: {source}")]
    Namespace {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("fork: {0}")]
    Fork(#[source] std::io::Error),
    #[error("wait: {0}")]
    Wait(#[source] nix::Error),
    #[error(transparent)]
    Seccomp(#[from] crate::runtime::isolation::seccomp::SeccompError),
}

/// Where the new process's standard streams go.
pub enum ExecStdio {
    /// Inherit the caller's stdin, stdout and stderr.
    Inherit,
    /// Inherit stdout/stderr; stdin from /dev/null.
    NoStdin,
    /// A pty slave as controlling terminal and all three streams.
    Tty(OwnedFd),
}

/// Runs `args` in the container whose init is `pid` and waits for it; returns the exit code
/// (128+signal when killed; 126/127 when it could not be started, with the reason on stderr).
pub fn exec_in(
    pid: i32,
    plan: &ContainerPlan,
    args: &[String],
    stdio: ExecStdio,
) -> Result<i32, ExecError> {
    let child = spawn_in(pid, plan, args, stdio)?;
    wait_code(child)
}

/// Waits for a process started by [`spawn_in`].
pub fn wait_code(child: nix::unistd::Pid) -> Result<i32, ExecError> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(ExecError::Wait(e)),
        }
    }
}

/// Starts `args` in the container whose init is `pid` without waiting for it.
pub fn spawn_in(
    pid: i32,
    plan: &ContainerPlan,
    args: &[String],
    stdio: ExecStdio,
) -> Result<nix::unistd::Pid, ExecError> {
    // Opened before forking: the paths are the host's /proc.
    let mut namespaces = Vec::new();
    for (kind, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let path = format!("/proc/{pid}/ns/{kind}");
        let theirs = std::fs::read_link(&path).map_err(|source| ExecError::Namespace {
            path: path.clone(),
            source,
        })?;
        let ours = std::fs::read_link(format!("/proc/self/ns/{kind}")).ok();
        if ours.as_ref() == Some(&theirs) {
            continue; // shared with the host (hostNetwork, hostPID, ...): nothing to join
        }
        let file = File::open(&path).map_err(|source| ExecError::Namespace { path, source })?;
        namespaces.push((file, flag, kind));
    }
    let filter = crate::runtime::isolation::seccomp::compile(
        &plan.security.seccomp,
        &plan.security.seccomp_dir,
        &plan.security.capabilities,
    )?;
    // Born in the container's cgroup2 directory where there is one (see sys::clone).
    let cgroup_dir = plan
        .cgroup
        .as_ref()
        .and_then(|cg| cg.clone_target())
        .and_then(|dir| File::open(dir).ok());
    let cgroup_fd = cgroup_dir.as_ref().map(|d| d.as_raw_fd());
    let run_child = |born_in_cgroup| {
        if let Some(fd) = cgroup_fd {
            // SAFETY: the child's copy of a host directory fd, closed before any setns.
            unsafe { libc::close(fd) };
        }
        // Inside the container's namespaces before exec: nobody there may reach our exe.
        crate::sys::exe::make_non_dumpable();
        match child(
            &namespaces,
            plan,
            born_in_cgroup,
            filter.as_ref(),
            args,
            stdio,
        ) {
            Ok(code) => code,
            Err((code, message)) => {
                eprintln!("layerlet exec: {message}");
                code
            }
        }
    };
    // SAFETY: documented precondition: the caller is single-threaded.
    let pid = unsafe {
        crate::sys::clone::fork_into(0, cgroup_dir.as_ref().map(|d| d.as_fd()), run_child)
    }
    .map_err(ExecError::Fork)?;
    Ok(nix::unistd::Pid::from_raw(pid))
}

type ChildResult = Result<i32, (i32, String)>;

fn child(
    namespaces: &[(File, CloneFlags, &str)],
    plan: &ContainerPlan,
    born_in_cgroup: bool,
    filter: Option<&seccompiler::BpfProgram>,
    args: &[String],
    stdio: ExecStdio,
) -> ChildResult {
    // The container's cgroups first, through the host's /sys: its limits and device
    // allow-list bind what exec runs as much as its init.
    if let Some(cg) = &plan.cgroup {
        cg.join_self(born_in_cgroup)
            .map_err(|e| (126, format!("join the container's cgroup: {e}")))?;
    }
    for (file, flag, kind) in namespaces {
        setns(file, *flag).map_err(|e| (126, format!("join {kind} namespace: {e}")))?;
    }
    // Joining a PID namespace places only our children in it: fork once more.
    // SAFETY: this child of a single-threaded process is single-threaded.
    match unsafe { fork() }.map_err(|e| (126, format!("fork: {e}")))? {
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err((126, format!("wait: {e}"))),
            }
        },
        ForkResult::Child => {
            let (code, message) = match grandchild(plan, filter, args, stdio) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            eprintln!("layerlet exec: {message}");
            std::process::exit(code)
        }
    }
}

enum Never {}

fn grandchild(
    plan: &ContainerPlan,
    filter: Option<&seccompiler::BpfProgram>,
    args: &[String],
    stdio: ExecStdio,
) -> Result<Never, (i32, String)> {
    if let ExecStdio::Tty(slave) = &stdio {
        setsid().map_err(|e| (126, format!("setsid: {e}")))?;
        // SAFETY: TIOCSCTTY on the pty slave we own makes it our controlling terminal.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY as _, 0) };
        for fd in 0..3 {
            dup2(slave.as_raw_fd(), fd).map_err(|e| (126, format!("dup2: {e}")))?;
        }
    } else if let ExecStdio::NoStdin = stdio {
        let null = File::open("/dev/null").map_err(|e| (126, format!("open /dev/null: {e}")))?;
        dup2(null.as_raw_fd(), 0 as RawFd).map_err(|e| (126, format!("dup2: {e}")))?;
    }
    let program = args.first().ok_or((126, "no command given".to_string()))?;
    let executable = find_executable(program, &plan.env).map_err(|e| (127, e.0))?;
    if let Some(program) = filter {
        crate::runtime::isolation::seccomp::install(program)
            .map_err(|e| (126, format!("install the seccomp filter: {e}")))?;
    }
    lock_down(plan).map_err(|e| (126, e.0))?;
    if chdir(plan.cwd.as_str()).is_err() {
        chdir("/").map_err(|e| (126, format!("chdir /: {e}")))?;
    }
    // SAFETY: marks every descriptor above stderr close-on-exec.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32) };
    let to_c = |s: &String| {
        CString::new(s.as_bytes()).map_err(|_| (126, format!("{s:?} contains a NUL byte")))
    };
    let argv: Vec<CString> = args.iter().map(to_c).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = plan.env.iter().map(to_c).collect::<Result<_, _>>()?;
    let e = execve(&executable, &argv, &envp)
        .err()
        .unwrap_or(nix::Error::UnknownErrno);
    Err((126, format!("exec {}: {e}", executable.to_string_lossy())))
}
