//! The container's first moments, in the child the monitor cloned into new mount and PID
//! namespaces: join the pod's namespaces, build the root filesystem's mounts, pivot into it,
//! drop to the container's user and exec. Runs in a single-threaded process (the monitor), so
//! allocating here is safe. Every failure is reported as text through `error_fd`.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, openat, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, dup2, execve, pivot_root, setgroups, setresgid, setresuid, Gid, Uid};

use super::mount_base::{HostHandles, MountTrees};
use crate::runtime::spec::mounts::Propagation;
use crate::runtime::spec::ContainerPlan;
use crate::sys::mount_tree::attach_tree;

/// A step that failed, with the reason.
pub struct InitFailure(pub String);

fn fail(step: impl std::fmt::Display, e: impl std::fmt::Display) -> InitFailure {
    InitFailure(format!("{step}: {e}"))
}

/// Opens (creating where missing) `rel` under `root` without following any symlink, so a
/// rootfs whose /proc or /dev/null is a symlink cannot point a mount at the host.
fn open_in_root(root: &Path, rel: &str, directory: bool) -> Result<OwnedFd, InitFailure> {
    open_in_root_opt(root, rel, directory, true)?
        .ok_or_else(|| InitFailure(format!("{rel} is missing")))
}

/// Like [`open_in_root`]; with `create` false a missing path gives None.
fn open_in_root_opt(
    root: &Path,
    rel: &str,
    directory: bool,
    create: bool,
) -> Result<Option<OwnedFd>, InitFailure> {
    let path_fd = |fd: i32| {
        // SAFETY: fd is fresh and owned.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let mut current = path_fd(
        open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(format!("open rootfs {}", root.display()), e))?,
    );
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            return Err(InitFailure(format!(
                "mount destination {rel:?} leaves the rootfs"
            )));
        }
        let last = i + 1 == parts.len();
        let want_dir = !last || directory;
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let opened = openat(Some(current.as_raw_fd()), *part, flags, Mode::empty());
        let fd = match opened {
            Ok(fd) => path_fd(fd),
            Err(nix::Error::ENOENT) if !create => return Ok(None),
            Err(nix::Error::ENOENT) => {
                if want_dir {
                    nix::sys::stat::mkdirat(
                        Some(current.as_raw_fd()),
                        *part,
                        Mode::from_bits_truncate(0o755),
                    )
                    .map_err(|e| fail(format!("create {rel}"), e))?;
                } else {
                    let fd = openat(
                        Some(current.as_raw_fd()),
                        *part,
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map_err(|e| fail(format!("create {rel}"), e))?;
                    drop(path_fd(fd));
                }
                path_fd(
                    openat(Some(current.as_raw_fd()), *part, flags, Mode::empty())
                        .map_err(|e| fail(format!("open {rel}"), e))?,
                )
            }
            Err(e) => return Err(fail(format!("open {rel}"), e)),
        };
        let meta =
            nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| fail(format!("stat {rel}"), e))?;
        let kind = SFlag::from_bits_truncate(meta.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            return Err(InitFailure(format!(
                "rootfs path /{} is a symlink; refusing to mount over it",
                parts[..=i].join("/")
            )));
        }
        if want_dir && kind != SFlag::S_IFDIR && (create || !last) {
            return Err(InitFailure(format!(
                "rootfs path /{} is not a directory",
                parts[..=i].join("/")
            )));
        }
        current = fd;
    }
    Ok(Some(current))
}

fn is_dir_fd(fd: &OwnedFd) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|m| SFlag::from_bits_truncate(m.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .unwrap_or(false)
}

/// Masked paths become unreadable (an empty read-only tmpfs over a directory, the
/// container's /dev/null over a file); read-only paths are remounted read-only.
fn harden_paths(root: &Path, plan: &ContainerPlan) -> Result<(), InitFailure> {
    let ro = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    for path in &plan.security.readonly_paths {
        let Some(target) = open_in_root_opt(root, path, true, false)? else {
            continue;
        };
        let at = fd_path(&target);
        mount(
            Some(&at),
            &at,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| fail(format!("bind {path}"), e))?;
        let again = open_in_root(root, path, is_dir_fd(&target))?;
        mount(
            None::<&str>,
            &fd_path(&again),
            None::<&str>,
            ro,
            None::<&str>,
        )
        .map_err(|e| fail(format!("make {path} read-only"), e))?;
    }
    let null = open_in_root(root, "dev/null", false)?;
    for path in &plan.security.masked_paths {
        let Some(target) = open_in_root_opt(root, path, true, false)? else {
            continue;
        };
        if is_dir_fd(&target) {
            mount(
                Some("tmpfs"),
                &fd_path(&target),
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0k"),
            )
            .map_err(|e| fail(format!("mask {path}"), e))?;
        } else {
            mount(
                Some(&fd_path(&null)),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| fail(format!("mask {path}"), e))?;
        }
    }
    Ok(())
}

/// The container's identity and limits: bounding set, user, capabilities, no_new_privs.
/// Shared by the container's init and by `exec`.
pub fn lock_down(plan: &ContainerPlan) -> Result<(), InitFailure> {
    drop_bounding(plan)?;
    become_user(plan)?;
    set_capabilities(plan)?;
    if plan.security.no_new_privileges {
        // SAFETY: prctl with constant arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(fail("set no_new_privs", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Capabilities: the bounding set first (needs CAP_SETPCAP, held until now).
fn drop_bounding(plan: &ContainerPlan) -> Result<(), InitFailure> {
    use std::str::FromStr;
    let keep: Vec<caps::Capability> = plan
        .security
        .capabilities
        .iter()
        .filter_map(|c| caps::Capability::from_str(c).ok())
        .collect();
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, caps::CapSet::Bounding, cap)
                .map_err(|e| fail(format!("drop {cap} from the bounding set"), e))?;
        }
    }
    Ok(())
}

/// After the switch of user: a root user keeps exactly the planned set; any other user has
/// lost them all to setuid already, as in Kubernetes.
fn set_capabilities(plan: &ContainerPlan) -> Result<(), InitFailure> {
    use std::str::FromStr;
    let set: caps::CapsHashSet = plan
        .security
        .capabilities
        .iter()
        .filter_map(|c| caps::Capability::from_str(c).ok())
        .collect();
    let target = if plan.uid == 0 {
        set
    } else {
        caps::CapsHashSet::new()
    };
    for which in [
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
        caps::CapSet::Inheritable,
    ] {
        caps::set(None, which, &target)
            .map_err(|e| fail(format!("set {which:?} capabilities"), e))?;
    }
    caps::clear(None, caps::CapSet::Ambient).map_err(|e| fail("clear ambient capabilities", e))?;
    Ok(())
}

/// The path through which the kernel reaches an O_PATH fd: mounting there mounts on exactly
/// the inode we checked.
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn mount_at(
    root: &Path,
    rel: &str,
    directory: bool,
    source: Option<&Path>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), InitFailure> {
    let target = open_in_root(root, rel, directory)?;
    mount(source, &fd_path(&target), fstype, flags, data)
        .map_err(|e| fail(format!("mount {rel}"), e))
}

fn join_namespaces(plan: &ContainerPlan, handles: Option<&HostHandles>) -> Result<(), InitFailure> {
    if let Some(handles) = handles {
        // Opened by the monitor in the host's mount namespace, where the pins are.
        for (fd, flag, name) in [
            (&handles.ipc, CloneFlags::CLONE_NEWIPC, "ipc"),
            (&handles.uts, CloneFlags::CLONE_NEWUTS, "uts"),
            (&handles.net, CloneFlags::CLONE_NEWNET, "net"),
        ] {
            if let Some(fd) = fd {
                setns(fd, flag).map_err(|e| fail(format!("join pod {name} namespace"), e))?;
            }
        }
        return Ok(());
    }
    for (path, flag, name) in [
        (&plan.namespaces.ipc, CloneFlags::CLONE_NEWIPC, "ipc"),
        (&plan.namespaces.uts, CloneFlags::CLONE_NEWUTS, "uts"),
        (&plan.namespaces.net, CloneFlags::CLONE_NEWNET, "net"),
    ] {
        if let Some(path) = path {
            let file = File::open(path)
                .map_err(|e| fail(format!("open pod {name} namespace {}", path.display()), e))?;
            setns(&file, flag).map_err(|e| fail(format!("join pod {name} namespace"), e))?;
        }
    }
    Ok(())
}

fn setup_dev(root: &Path, plan: &ContainerPlan) -> Result<(), InitFailure> {
    let nosuid_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount_at(
        root,
        "dev",
        true,
        Some(Path::new("tmpfs")),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    let dev = open_in_root(root, "dev", true)?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = fd_path(&dev).join(name);
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .map_err(|e| fail(format!("mknod /dev/{name}"), e))?;
        // mknod honours the umask: set the mode explicitly.
        nix::sys::stat::fchmodat(
            None,
            &path,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| fail(format!("chmod /dev/{name}"), e))?;
    }
    mount_at(
        root,
        "dev/pts",
        true,
        Some(Path::new("devpts")),
        Some("devpts"),
        nosuid_noexec,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), link)
            .map_err(|e| fail(format!("symlink /dev/{link}"), e))?;
    }
    let shm_mounted = plan.mounts.iter().any(|m| m.destination == "/dev/shm");
    if !shm_mounted {
        mount_at(
            root,
            "dev/shm",
            true,
            Some(Path::new("shm")),
            Some("tmpfs"),
            nosuid_noexec | MsFlags::MS_NODEV,
            Some("mode=1777,size=65536k"),
        )?;
    }
    mount_at(
        root,
        "dev/mqueue",
        true,
        Some(Path::new("mqueue")),
        Some("mqueue"),
        nosuid_noexec | MsFlags::MS_NODEV,
        None,
    )?;
    Ok(())
}

fn setup_mounts(plan: &ContainerPlan, handles: Option<&HostHandles>) -> Result<(), InitFailure> {
    let root = plan.rootfs.as_path();
    // The rootfs and each volume are attached as copies of their host mounts, a volume a peer
    // of its host mount until its propagation is set: the monitor's copies when init was
    // cloned from the mount base, else taken here, before the namespace turns private and
    // the copies would be private too.
    let taken_here;
    let trees = match handles {
        Some(h) => &h.trees,
        None => {
            taken_here = MountTrees::take(plan).map_err(|e| InitFailure(e.to_string()))?;
            &taken_here
        }
    };
    let private = |target: &Path, what: &str| {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| fail(format!("make {what} private"), e))
    };
    private(Path::new("/"), "the mount namespace")?;
    // The copy goes on the rootfs path (over the rootfs mount, or onto the bare directory in
    // the base) and is cut from the host's peer group, so nothing mounted here reaches the
    // host. It is a mount point of its own, to remount read-only and pivot into.
    let target = File::open(root).map_err(|e| fail("open the rootfs mount point", e))?;
    attach_tree(trees.rootfs.as_fd(), target.as_fd()).map_err(|e| fail("attach the rootfs", e))?;
    private(root, "the rootfs")?;
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    mount_at(
        root,
        "proc",
        true,
        Some(Path::new("proc")),
        Some("proc"),
        nodev,
        None,
    )?;
    setup_dev(root, plan)?;
    if let Err(e) = mount_at(
        root,
        "sys",
        true,
        Some(Path::new("sysfs")),
        Some("sysfs"),
        nodev | MsFlags::MS_RDONLY,
        None,
    ) {
        // Sharing the host's network namespace, a new sysfs is refused: bind the host's.
        mount_at(
            root,
            "sys",
            true,
            Some(Path::new("/sys")),
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(|_| e)?;
        let target = open_in_root(root, "sys", true)?;
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | nodev,
            None::<&str>,
        )
        .map_err(|e| fail("remount /sys read-only", e))?;
    }
    if plan.security.privileged {
        let target = open_in_root(root, "sys", true)?;
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_REMOUNT | nodev,
            None::<&str>,
        )
        .map_err(|e| fail("remount /sys read-write for a privileged container", e))?;
    }
    harden_paths(root, plan)?;
    for (m, tree) in plan.mounts.iter().zip(&trees.mounts) {
        let target = open_in_root(root, &m.destination, m.directory)?;
        attach_tree(tree.as_fd(), target.as_fd())
            .map_err(|e| fail(format!("mount {}", m.destination), e))?;
        let propagation = match m.propagation {
            Propagation::Private => MsFlags::MS_PRIVATE,
            Propagation::Slave => MsFlags::MS_SLAVE,
            Propagation::Shared => MsFlags::MS_SHARED,
        };
        // Read again: the attached mount now covers the directory opened above.
        let attached = open_in_root(root, &m.destination, m.directory)?;
        mount(
            None::<&str>,
            &fd_path(&attached),
            None::<&str>,
            MsFlags::MS_REC | propagation,
            None::<&str>,
        )
        .map_err(|e| fail(format!("set propagation of {}", m.destination), e))?;
        if m.read_only {
            mount(
                None::<&str>,
                &fd_path(&attached),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|e| fail(format!("remount {} read-only", m.destination), e))?;
        }
    }
    if plan.read_only_rootfs {
        mount(
            None::<&str>,
            root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| fail("remount rootfs read-only", e))?;
    }
    chdir(root).map_err(|e| fail("chdir rootfs", e))?;
    pivot_root(".", ".").map_err(|e| fail("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| fail("detach the old root", e))?;
    chdir("/").map_err(|e| fail("chdir /", e))?;
    Ok(())
}

pub fn find_executable(program: &str, env: &[String]) -> Result<CString, InitFailure> {
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| InitFailure(format!("{program:?} contains a NUL byte")))
    };
    if program.contains('/') {
        return cstr(program.as_bytes());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::runtime::spec::command::DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
            && candidate.is_file()
        {
            return cstr(candidate.as_os_str().as_bytes());
        }
    }
    Err(InitFailure(format!(
        "executable {program:?} not found in PATH {path}"
    )))
}

fn become_user(plan: &ContainerPlan) -> Result<(), InitFailure> {
    let groups: Vec<Gid> = plan
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&groups).map_err(|e| fail("setgroups", e))?;
    let gid = Gid::from_raw(plan.gid);
    setresgid(gid, gid, gid).map_err(|e| fail(format!("setgid {}", plan.gid), e))?;
    let uid = Uid::from_raw(plan.uid);
    setresuid(uid, uid, uid).map_err(|e| fail(format!("setuid {}", plan.uid), e))?;
    Ok(())
}

/// Everything from joining namespaces to exec. Returns only on failure.
/// `born_in_cgroup`: cloned into the cgroup's [`Cgroup::clone_target`] already.
/// `handles`: what the monitor opened in the host's mount namespace when init was cloned
/// from the mount base (see [`super::mount_base`]).
pub fn run(
    plan: &ContainerPlan,
    seccomp: Option<&seccompiler::BpfProgram>,
    born_in_cgroup: bool,
    stdio: Stdio,
    handles: Option<&HostHandles>,
) -> InitFailure {
    match prepare_and_exec(plan, seccomp, born_in_cgroup, stdio, handles) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

/// The command starts with every signal at its default and none blocked, as under any
/// runtime: the monitor blocks SIGCHLD and Rust ignores SIGPIPE, and both would otherwise
/// survive exec (`yes | head` would never end).
fn default_signals() -> Result<(), InitFailure> {
    for signo in 1..=libc::SIGRTMAX() {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP {
            continue;
        }
        // The raw call: glibc refuses its own reserved signals (32, 33), which an
        // ignoring parent passes on too. An all-zero kernel sigaction is SIG_DFL, no flags,
        // an empty mask, whatever the architecture's layout.
        let dfl = [0u64; 4];
        // SAFETY: rt_sigaction with a valid, zeroed struct and no old action; fails
        // harmlessly for signals that cannot change.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signo,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    nix::sys::signal::SigSet::empty()
        .thread_set_mask()
        .map_err(|e| fail("unblock every signal", e))
}

/// init's descriptors from the monitor: fd 0 (None: /dev/null), 1 and 2; with `tty` all
/// three are the terminal, which becomes init's controlling terminal in a new session.
#[derive(Debug, Clone, Copy)]
pub struct Stdio {
    pub stdin: Option<RawFd>,
    pub stdout: RawFd,
    pub stderr: RawFd,
    pub tty: bool,
}

fn prepare_and_exec(
    plan: &ContainerPlan,
    seccomp: Option<&seccompiler::BpfProgram>,
    born_in_cgroup: bool,
    stdio: Stdio,
    handles: Option<&HostHandles>,
) -> Result<Never, InitFailure> {
    default_signals()?;
    if let Some(cg) = &plan.cgroup {
        cg.join_self(born_in_cgroup)
            .map_err(|e| fail("join the container's cgroup", e))?;
        // Its own cgroup namespace: the container sees its cgroup as the root.
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| fail("new cgroup namespace", e))?;
    }
    join_namespaces(plan, handles)?;
    setup_mounts(plan, handles)?;
    for fd in handles.map(HostHandles::raw_fds).unwrap_or_default() {
        // SAFETY: this process's copies of the monitor's handles, used above and no more.
        unsafe { libc::close(fd) };
    }
    // The working directory is created if the image lacks it, as docker does.
    std::fs::create_dir_all(&plan.cwd)
        .map_err(|e| fail(format!("create workingDir {}", plan.cwd), e))?;
    let program = plan
        .args
        .first()
        .ok_or_else(|| InitFailure("empty command".into()))?;
    let executable = find_executable(program, &plan.env)?;
    // The filter goes on while CAP_SYS_ADMIN is still held (so it works without
    // no_new_privs too); what follows (setuid, capset, chdir, execve) is allowed by it.
    if let Some(program) = seccomp {
        crate::runtime::isolation::seccomp::install(program)
            .map_err(|e| fail("install the seccomp filter", e))?;
    }
    lock_down(plan)?;
    chdir(plan.cwd.as_str()).map_err(|e| fail(format!("chdir to workingDir {}", plan.cwd), e))?;
    // CVE-2024-21626: a working directory reached through a leaked descriptor lies outside
    // the new root, and getcwd says so.
    match nix::unistd::getcwd() {
        Ok(cwd) if cwd.starts_with("/") => {}
        _ => {
            return Err(InitFailure(format!(
                "workingDir {} resolves outside the container",
                plan.cwd
            )))
        }
    }
    let stdin = match stdio.stdin {
        Some(fd) => fd,
        None => open("/dev/null", OFlag::O_RDONLY, Mode::empty())
            .map_err(|e| fail("open /dev/null", e))?,
    };
    dup2(stdin, 0).map_err(|e| fail("stdin", e))?;
    dup2(stdio.stdout, 1).map_err(|e| fail("stdout", e))?;
    dup2(stdio.stderr, 2).map_err(|e| fail("stderr", e))?;
    if stdio.tty {
        nix::unistd::setsid().map_err(|e| fail("new session for the terminal", e))?;
        // SAFETY: TIOCSCTTY on fd 0, the terminal just installed; no memory is passed.
        if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
            return Err(fail(
                "make the terminal the controlling one",
                std::io::Error::last_os_error(),
            ));
        }
    }
    // No descriptor of layerlet survives exec (the error pipe is close-on-exec already and
    // must stay open until exec succeeds).
    // SAFETY: close_range with CLOEXEC flag only marks descriptors.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32) };
    let args: Vec<CString> = plan
        .args
        .iter()
        .map(|a| {
            CString::new(a.as_bytes())
                .map_err(|_| InitFailure(format!("argument {a:?} contains a NUL byte")))
        })
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = plan
        .env
        .iter()
        .map(|e| {
            CString::new(e.as_bytes())
                .map_err(|_| InitFailure(format!("env {e:?} contains a NUL byte")))
        })
        .collect::<Result<_, _>>()?;
    let e = execve(&executable, &args, &env)
        .err()
        .unwrap_or(nix::Error::UnknownErrno);
    Err(fail(format!("exec {}", executable.to_string_lossy()), e))
}
