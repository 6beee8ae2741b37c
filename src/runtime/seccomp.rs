//! seccomp for containers: a pod's `seccompProfile` (RuntimeDefault, Unconfined or Localhost)
//! compiled to a classic-BPF program with seccompiler, then installed by the container's init
//! right before it execs the container's process.
//!
//! **RuntimeDefault** follows moby's default profile (`profiles/seccomp/default.json`, the
//! profile Docker and containerd ship, as of its kernel 6.13 update): every syscall fails with
//! EPERM except an allow-list of about 360 syscalls; `personality` only with the personas moby
//! allows; `socket` for every family except AF_VSOCK; `clone` only without namespace flags and
//! `clone3` failing with ENOSYS (so libcs fall back to `clone`), unless the container holds
//! CAP_SYS_ADMIN; and the syscalls that only make sense with a capability (mount, unshare,
//! setns with CAP_SYS_ADMIN, ptrace with CAP_SYS_PTRACE, chroot with CAP_SYS_CHROOT, ...)
//! allowed when the container holds it, as moby does. `keyctl`, `add_key`, `request_key`,
//! `io_uring_*` and the like are never allowed. The lists below are facts taken from that
//! profile; the code is ours. Names that do not exist on the node's architecture are skipped,
//! as moby does.
//!
//! **Localhost** reads an OCI/Docker seccomp JSON profile (`defaultAction`, `syscalls`,
//! `architectures`, Docker's `includes`/`excludes`) from a path relative to the seccomp
//! profile directory, like kubelet's `/var/lib/kubelet/seccomp`.
//!
//! One program for several actions: a seccompiler filter has exactly two actions (match and
//! mismatch). Each action of a profile gets its own filter whose mismatch action is a
//! sentinel; every sentinel return is rewritten into a jump to the next filter, and the last
//! part returns the default action. Actions are tried from the most to the least restrictive
//! (kill process, kill thread, trap, errno, log, allow), the order in which the kernel ranks
//! the results of stacked filters, so a syscall that two rules match gets the stricter one.
//!
//! Only the node's native ABI is served: seccompiler's architecture check kills a syscall
//! made through another one (i386 `int 0x80`, arm32 compat), and on x86_64 a leading check
//! kills x32 calls (numbers with bit 30 set), which would otherwise slip past a deny-list.
//! Docker also admits i386 and x32 calls under its default profile; layerlet does not.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use seccompiler::{
    sock_filter, BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};

/// The seccomp profile of a container, as Kubernetes' `securityContext.seccompProfile` says it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompPolicy {
    /// The container runtime's default profile (moby's); what layerlet uses when the pod says
    /// nothing, as Kubernetes' SeccompDefault feature does.
    #[default]
    RuntimeDefault,
    /// No filter at all.
    Unconfined,
    /// A JSON profile file, relative to the seccomp profile directory.
    Localhost(PathBuf),
}

impl fmt::Display for SeccompPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeccompPolicy::RuntimeDefault => f.write_str("RuntimeDefault"),
            SeccompPolicy::Unconfined => f.write_str("Unconfined"),
            SeccompPolicy::Localhost(path) => write!(f, "Localhost {}", path.display()),
        }
    }
}

/// Why a seccomp profile could not be compiled or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error(
        "seccomp: layerlet compiles seccomp filters for x86_64 and aarch64, not {arch}; \
         give the pod seccompProfile Unconfined on this node"
    )]
    UnsupportedArchitecture { arch: &'static str },
    #[error(
        "seccomp profile Localhost {path:?}: {problem}; give a path relative to the seccomp \
         profile directory {}",
        .root.display()
    )]
    LocalhostPath {
        path: PathBuf,
        root: PathBuf,
        problem: &'static str,
    },
    #[error("seccomp profile {}: cannot read it: {source}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("seccomp profile {}: not an OCI/Docker seccomp profile: {source}", .file.display())]
    Parse {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "seccomp profile {profile}: {field}: action {action:?} is not supported (layerlet knows \
         SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, \
         SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP and SCMP_ACT_LOG)"
    )]
    UnknownAction {
        profile: String,
        field: String,
        action: String,
    },
    #[error(
        "seccomp profile {profile}: {field}: comparison {op:?} is not supported (layerlet knows \
         SCMP_CMP_EQ, SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_GT, SCMP_CMP_GE and \
         SCMP_CMP_MASKED_EQ)"
    )]
    UnknownOperator {
        profile: String,
        field: String,
        op: String,
    },
    #[error(
        "seccomp profile {profile}: {field}: unknown syscall {name:?}: it is not a Linux \
         syscall on any architecture; check its spelling"
    )]
    UnknownSyscall {
        profile: String,
        field: String,
        name: String,
    },
    #[error("seccomp profile {profile}: {field}: {problem}")]
    Invalid {
        profile: String,
        field: String,
        problem: String,
    },
    #[error("seccomp profile {profile}: seccompiler cannot compile it: {source}")]
    Compile {
        profile: String,
        #[source]
        source: BackendError,
    },
    #[error(
        "seccomp profile {profile}: the filter has {len} BPF instructions, more than the \
         kernel accepts (4096); use fewer rules or argument conditions"
    )]
    TooLarge { profile: String, len: usize },
    #[error("cannot install the seccomp filter: {hint}: {source}")]
    Install {
        hint: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Compiles `policy` for a container holding the capabilities `caps` (names such as
/// "CAP_SYS_ADMIN"; RuntimeDefault and Docker-style `includes`/`excludes` depend on them).
/// A Localhost path is taken relative to `root_for_localhost`. None means no filter
/// (Unconfined).
pub fn compile(
    policy: &SeccompPolicy,
    root_for_localhost: &Path,
    caps: &[String],
) -> Result<Option<BpfProgram>, SeccompError> {
    let (label, profile) = match policy {
        SeccompPolicy::Unconfined => return Ok(None),
        SeccompPolicy::RuntimeDefault => ("RuntimeDefault".to_owned(), runtime_default(caps)?),
        SeccompPolicy::Localhost(rel) => {
            let file = localhost_file(root_for_localhost, rel)?;
            let profile = load_localhost(&file, caps)?;
            (file.display().to_string(), profile)
        }
    };
    build(&label, profile).map(Some)
}

/// Installs `program` on the calling thread with seccomp(2).
///
/// The kernel accepts a filter only from a thread that has set no_new_privs or holds
/// CAP_SYS_ADMIN. Unlike seccompiler's `apply_filter`, this does not set no_new_privs itself:
/// whether setuid binaries may raise privileges is the pod's `allowPrivilegeEscalation`, so
/// an init that keeps privilege escalation must install while it still holds CAP_SYS_ADMIN
/// (as runc does), and the syscalls it makes afterwards must pass the filter.
pub fn install(program: &BpfProgram) -> Result<(), SeccompError> {
    let len = match u16::try_from(program.len()) {
        Ok(len) if len > 0 => len,
        _ => {
            return Err(SeccompError::Install {
                hint: "the program is empty or longer than 65535 instructions",
                source: io::Error::from_raw_os_error(libc::EINVAL),
            })
        }
    };
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    let flags: libc::c_uint = 0;
    // SAFETY: seccompiler's sock_filter is #[repr(C)] {u16, u8, u8, u32}, the layout of the
    // kernel's struct sock_filter; the kernel copies the program and keeps no pointer to it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    let hint = match source.raw_os_error() {
        Some(libc::EACCES) => {
            "the thread has neither no_new_privs nor CAP_SYS_ADMIN (set no_new_privs first, or \
             install before dropping CAP_SYS_ADMIN)"
        }
        Some(libc::EINVAL) => "the kernel rejected the BPF program or lacks seccomp filters",
        _ => "seccomp(SECCOMP_SET_MODE_FILTER) failed",
    };
    Err(SeccompError::Install { hint, source })
}

// ---------------------------------------------------------------------------------------
// RuntimeDefault: moby's default profile as data.

/// Allowed for every container (moby's first, unconditional rule).
#[rustfmt::skip]
const DEFAULT_ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2",
    "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
    "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr",
    "link", "linkat", "listen", "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack",
    "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep",
    "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
    "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "removexattrat", "rename",
    "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
    "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid",
    "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "setxattrat", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
    "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat",
    "stat64", "statfs", "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
    "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
];

/// Allowed on kernels from 4.8 on, where ptrace can no longer be used to skip seccomp.
const ALLOWED_SINCE_4_8: &[&str] = &["process_vm_readv", "process_vm_writev", "ptrace"];

/// Allowed only on the architecture that has them (moby's `includes.arches`).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ON_THIS_ARCH: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(target_arch = "aarch64")]
const ALLOWED_ON_THIS_ARCH: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALLOWED_ON_THIS_ARCH: &[&str] = &[];

/// Allowed when the container holds the capability (moby's `includes.caps`).
const ALLOWED_WITH_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// `personality` values moby allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
/// and 0xffffffff (a query).
const ALLOWED_PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// AF_VSOCK would reach the host's vsock services, which are not namespaced.
const AF_VSOCK: u64 = 40;

fn runtime_default(caps: &[String]) -> Result<Profile, SeccompError> {
    native_arch()?;
    let mut rules = Vec::new();
    let mut allow = |names: &[&str]| {
        for nr in names.iter().filter_map(|name| native_number(name)) {
            rules.push(Rule::new(nr, Action::Allow, Vec::new()));
        }
    };
    allow(DEFAULT_ALLOWED);
    allow(ALLOWED_ON_THIS_ARCH);
    if kernel_at_least((4, 8)) {
        allow(ALLOWED_SINCE_4_8);
    }
    for (cap, names) in ALLOWED_WITH_CAPABILITY {
        if has_capability(caps, cap) {
            allow(names);
        }
    }
    let arg0 = |op: SeccompCmpOp, value: u64| {
        condition(0, op, value).map_err(|source| SeccompError::Compile {
            profile: "RuntimeDefault".to_owned(),
            source,
        })
    };
    for persona in ALLOWED_PERSONAS {
        rules.push(Rule::new(
            libc::SYS_personality,
            Action::Allow,
            vec![arg0(SeccompCmpOp::Eq, *persona)?],
        ));
    }
    rules.push(Rule::new(
        libc::SYS_socket,
        Action::Allow,
        vec![arg0(SeccompCmpOp::Ne, AF_VSOCK)?],
    ));
    if !has_capability(caps, "CAP_SYS_ADMIN") {
        rules.push(Rule::new(
            libc::SYS_clone,
            Action::Allow,
            vec![arg0(SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)?],
        ));
        rules.push(Rule::new(
            libc::SYS_clone3,
            Action::Errno(libc::ENOSYS as u32),
            Vec::new(),
        ));
    }
    Ok(Profile {
        default: Action::Errno(libc::EPERM as u32),
        rules,
    })
}

// ---------------------------------------------------------------------------------------
// Localhost: OCI/Docker JSON profiles.

/// Resolves a Localhost profile path, refusing any that could leave the profile directory.
fn localhost_file(root: &Path, rel: &Path) -> Result<PathBuf, SeccompError> {
    let refuse = |problem| SeccompError::LocalhostPath {
        path: rel.to_path_buf(),
        root: root.to_path_buf(),
        problem,
    };
    if rel.as_os_str().is_empty() {
        return Err(refuse("the path is empty"));
    }
    for component in rel.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(refuse("the path contains '..'")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("the path is absolute"))
            }
        }
    }
    Ok(root.join(rel))
}

/// The profile file, as runc and Docker read it. Unknown fields are refused so that a
/// misspelt `syscalls` cannot silently leave a profile without rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProfileFile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    /// Docker's per-host architecture list; the native ABI is all layerlet serves anyway.
    #[serde(default)]
    #[allow(dead_code)]
    arch_map: Option<serde_json::Value>,
    #[serde(default)]
    syscalls: Option<Vec<SyscallEntry>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    listener_metadata: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SyscallEntry {
    #[serde(default)]
    names: Option<Vec<String>>,
    /// Docker's older single-name form.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<ArgEntry>>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<DockerFilter>,
    #[serde(default)]
    excludes: Option<DockerFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArgEntry {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// Docker's conditions on a rule: architectures (Go names), capabilities, kernel version.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DockerFilter {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// libseccomp's architecture names; a profile may list any of them.
const SCMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_SH",
];

fn load_localhost(file: &Path, caps: &[String]) -> Result<Profile, SeccompError> {
    native_arch()?;
    let text = std::fs::read_to_string(file).map_err(|source| SeccompError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let parsed: ProfileFile =
        serde_json::from_str(&text).map_err(|source| SeccompError::Parse {
            file: file.to_path_buf(),
            source,
        })?;
    convert(&file.display().to_string(), parsed, caps)
}

/// Turns a parsed profile into rules for this architecture and these capabilities.
fn convert(label: &str, file: ProfileFile, caps: &[String]) -> Result<Profile, SeccompError> {
    let invalid = |field: &str, problem: String| SeccompError::Invalid {
        profile: label.to_owned(),
        field: field.to_owned(),
        problem,
    };
    for (i, arch) in file.architectures.iter().flatten().enumerate() {
        if !SCMP_ARCHES.contains(&arch.as_str()) {
            return Err(invalid(
                &format!("architectures[{i}]"),
                format!("unknown architecture {arch:?}"),
            ));
        }
    }
    for (i, flag) in file.flags.iter().flatten().enumerate() {
        // TSYNC only matters to multi-threaded callers; the container's init is not one.
        if flag != "SECCOMP_FILTER_FLAG_TSYNC" {
            return Err(invalid(
                &format!("flags[{i}]"),
                format!("filter flag {flag:?} is not supported by layerlet"),
            ));
        }
    }
    if file.listener_path.as_deref().is_some_and(|p| !p.is_empty())
        || file
            .listener_metadata
            .as_deref()
            .is_some_and(|m| !m.is_empty())
    {
        return Err(invalid(
            "listenerPath",
            "seccomp user notification (SCMP_ACT_NOTIFY) is not supported by layerlet".into(),
        ));
    }
    let default = action(
        label,
        "defaultAction",
        &file.default_action,
        file.default_errno_ret,
    )?;

    let mut rules = Vec::new();
    for (i, entry) in file.syscalls.into_iter().flatten().enumerate() {
        let field = format!("syscalls[{i}]");
        let applies = docker_filter_matches(label, &field, entry.includes.as_ref(), caps, true)?
            && !docker_filter_matches(label, &field, entry.excludes.as_ref(), caps, false)?;
        let act = action(
            label,
            &format!("{field}.action"),
            &entry.action,
            entry.errno_ret,
        )?;
        let alternatives = conditions(label, &field, entry.args.as_deref().unwrap_or(&[]))?;
        let names: Vec<&String> = entry.names.iter().flatten().chain(&entry.name).collect();
        if names.is_empty() {
            return Err(invalid(&field, "the rule names no syscall".into()));
        }
        for (j, name) in names.into_iter().enumerate() {
            let nr = match native_number(name) {
                Some(nr) => nr,
                // Exists on another architecture: skipped, as runc and moby do.
                None if known_elsewhere(name) => continue,
                None => {
                    return Err(SeccompError::UnknownSyscall {
                        profile: label.to_owned(),
                        field: format!("{field}.names[{j}]"),
                        name: name.clone(),
                    })
                }
            };
            if !applies {
                continue;
            }
            for conds in &alternatives {
                rules.push(Rule::new(nr, act.clone(), conds.clone()));
            }
        }
    }
    Ok(Profile { default, rules })
}

fn action(
    label: &str,
    field: &str,
    name: &str,
    errno_ret: Option<u32>,
) -> Result<Action, SeccompError> {
    let action = match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => {
            let errno = errno_ret.unwrap_or(libc::EPERM as u32);
            if errno > MAX_ERRNO {
                return Err(SeccompError::Invalid {
                    profile: label.to_owned(),
                    field: field.to_owned(),
                    problem: format!("errno {errno} is out of range (0-{MAX_ERRNO})"),
                });
            }
            return Ok(Action::Errno(errno));
        }
        // libseccomp's SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD.
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        _ => {
            return Err(SeccompError::UnknownAction {
                profile: label.to_owned(),
                field: field.to_owned(),
                action: name.to_owned(),
            })
        }
    };
    match errno_ret {
        None => Ok(action),
        Some(_) => Err(SeccompError::Invalid {
            profile: label.to_owned(),
            field: field.to_owned(),
            problem: format!("errnoRet only goes with SCMP_ACT_ERRNO, not {name}"),
        }),
    }
}

/// The largest errno the kernel passes back (MAX_ERRNO).
const MAX_ERRNO: u32 = 4095;

/// The argument conditions of one rule, as alternatives: usually one set that must all hold;
/// when an argument index repeats, runc adds each condition as its own rule, and so do we.
fn conditions(
    label: &str,
    field: &str,
    args: &[ArgEntry],
) -> Result<Vec<Vec<SeccompCondition>>, SeccompError> {
    let mut all = Vec::with_capacity(args.len());
    for (k, arg) in args.iter().enumerate() {
        let at = format!("{field}.args[{k}]");
        let index = match u8::try_from(arg.index) {
            Ok(index) if index <= 5 => index,
            _ => {
                return Err(SeccompError::Invalid {
                    profile: label.to_owned(),
                    field: format!("{at}.index"),
                    problem: format!(
                        "argument {} does not exist (syscalls have arguments 0-5)",
                        arg.index
                    ),
                })
            }
        };
        let (op, value) = match arg.op.as_str() {
            "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, arg.value),
            "SCMP_CMP_NE" => (SeccompCmpOp::Ne, arg.value),
            "SCMP_CMP_LT" => (SeccompCmpOp::Lt, arg.value),
            "SCMP_CMP_LE" => (SeccompCmpOp::Le, arg.value),
            "SCMP_CMP_GT" => (SeccompCmpOp::Gt, arg.value),
            "SCMP_CMP_GE" => (SeccompCmpOp::Ge, arg.value),
            // (arg & value) == valueTwo
            "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
            other => {
                return Err(SeccompError::UnknownOperator {
                    profile: label.to_owned(),
                    field: format!("{at}.op"),
                    op: other.to_owned(),
                })
            }
        };
        let cond = condition(index, op, value).map_err(|source| SeccompError::Compile {
            profile: label.to_owned(),
            source,
        })?;
        all.push((index, cond));
    }
    let mut seen = [false; 6];
    let repeats = all
        .iter()
        .any(|(index, _)| std::mem::replace(&mut seen[usize::from(*index)], true));
    Ok(if repeats {
        all.into_iter().map(|(_, c)| vec![c]).collect()
    } else {
        vec![all.into_iter().map(|(_, c)| c).collect()]
    })
}

/// Whether Docker's `includes` (`want` true: every listed condition holds) or `excludes`
/// (`want` false: any listed condition holds) selects this rule.
fn docker_filter_matches(
    label: &str,
    field: &str,
    filter: Option<&DockerFilter>,
    caps: &[String],
    want: bool,
) -> Result<bool, SeccompError> {
    let Some(filter) = filter else {
        return Ok(want);
    };
    let mut tests = Vec::new();
    if let Some(arches) = &filter.arches {
        if !arches.is_empty() {
            tests.push(arches.iter().any(|a| a == GO_ARCH));
        }
    }
    if let Some(listed) = &filter.caps {
        if !listed.is_empty() {
            let held = |c: &String| has_capability(caps, c);
            tests.push(if want {
                listed.iter().all(held)
            } else {
                listed.iter().any(held)
            });
        }
    }
    if let Some(min) = filter.min_kernel.as_deref().filter(|m| !m.is_empty()) {
        let which = if want { "includes" } else { "excludes" };
        let version = parse_kernel_version(min).ok_or_else(|| SeccompError::Invalid {
            profile: label.to_owned(),
            field: format!("{field}.{which}.minKernel"),
            problem: format!("{min:?} is not a kernel version like \"4.8\""),
        })?;
        tests.push(kernel_at_least(version));
    }
    Ok(if want {
        tests.into_iter().all(|t| t)
    } else {
        tests.into_iter().any(|t| t)
    })
}

// ---------------------------------------------------------------------------------------
// Compiling rules into one BPF program.

/// Actions ordered from the most to the least restrictive, as the kernel ranks them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    KillProcess,
    KillThread,
    Trap,
    Errno(u32),
    Log,
    Allow,
}

impl Action {
    fn to_seccompiler(&self) -> SeccompAction {
        match self {
            Action::KillProcess => SeccompAction::KillProcess,
            Action::KillThread => SeccompAction::KillThread,
            Action::Trap => SeccompAction::Trap,
            Action::Errno(errno) => SeccompAction::Errno(*errno),
            Action::Log => SeccompAction::Log,
            Action::Allow => SeccompAction::Allow,
        }
    }
}

/// One syscall, one action, and conditions that must all hold (none: always).
#[derive(Debug)]
struct Rule {
    nr: libc::c_long,
    action: Action,
    conditions: Vec<SeccompCondition>,
}

impl Rule {
    fn new(nr: libc::c_long, action: Action, conditions: Vec<SeccompCondition>) -> Rule {
        Rule {
            nr,
            action,
            conditions,
        }
    }
}

#[derive(Debug)]
struct Profile {
    default: Action,
    rules: Vec<Rule>,
}

/// Compares a whole 64-bit argument, as libseccomp does on 64-bit architectures.
fn condition(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, BackendError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
}

/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;

/// Marks "no rule of this action matched": seccompiler's mismatch return, rewritten into a
/// jump. TRACE is never an action of ours, so no real return carries this value.
fn sentinel() -> SeccompAction {
    SeccompAction::Trace(0x5ecc)
}

const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;

fn build(label: &str, profile: Profile) -> Result<BpfProgram, SeccompError> {
    let arch = native_arch()?;
    let compile_error = |source| SeccompError::Compile {
        profile: label.to_owned(),
        source,
    };
    // Per action, per syscall: None when some rule allows it unconditionally, else the
    // alternative condition sets.
    let mut by_action: BTreeMap<Action, BTreeMap<i64, Option<Vec<SeccompRule>>>> = BTreeMap::new();
    for rule in profile.rules {
        // As runc: a rule that repeats the default action changes nothing.
        if rule.action == profile.default {
            continue;
        }
        let slot = by_action
            .entry(rule.action)
            .or_default()
            .entry(rule.nr)
            .or_insert_with(|| Some(Vec::new()));
        if rule.conditions.is_empty() {
            *slot = None;
        } else if let Some(alternatives) = slot {
            alternatives.push(SeccompRule::new(rule.conditions).map_err(compile_error)?);
        }
    }

    let mut program = abi_guard();
    let continue_k = u32::from(sentinel());
    for (action, syscalls) in by_action {
        let syscalls = syscalls
            .into_iter()
            .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(syscalls, sentinel(), action.to_seccompiler(), arch)
            .map_err(compile_error)?;
        let mut part = BpfProgram::try_from(filter).map_err(compile_error)?;
        let len = part.len();
        for (i, insn) in part.iter_mut().enumerate() {
            if insn.code == BPF_RET_K && insn.k == continue_k {
                // Jump to the first instruction after this part.
                *insn = bpf_stmt(BPF_JA, (len - i - 1) as u32);
            }
        }
        program.extend(part);
    }
    // The default action: seccompiler's arch check, then the return for every other syscall.
    let other = if profile.default == Action::Allow {
        SeccompAction::KillProcess
    } else {
        SeccompAction::Allow
    };
    let tail = SeccompFilter::new(
        BTreeMap::new(),
        profile.default.to_seccompiler(),
        other,
        arch,
    )
    .map_err(compile_error)?;
    program.extend(BpfProgram::try_from(tail).map_err(compile_error)?);

    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLarge {
            profile: label.to_owned(),
            len: program.len(),
        });
    }
    Ok(program)
}

fn bpf_stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// x86_64: kill x32 calls (bit 30 of the number), which reach the same kernel entry points
/// under other numbers and would pass a deny-list; libseccomp does the same.
#[cfg(target_arch = "x86_64")]
fn abi_guard() -> Vec<sock_filter> {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    vec![
        bpf_stmt(BPF_LD_W_ABS, 0), // seccomp_data.nr
        sock_filter {
            code: BPF_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        bpf_stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn abi_guard() -> Vec<sock_filter> {
    Vec::new()
}

// ---------------------------------------------------------------------------------------
// The node: architecture, syscall numbers, kernel version, capabilities.

#[cfg(target_arch = "x86_64")]
fn native_arch() -> Result<TargetArch, SeccompError> {
    Ok(TargetArch::x86_64)
}
#[cfg(target_arch = "aarch64")]
fn native_arch() -> Result<TargetArch, SeccompError> {
    Ok(TargetArch::aarch64)
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn native_arch() -> Result<TargetArch, SeccompError> {
    Err(SeccompError::UnsupportedArchitecture {
        arch: std::env::consts::ARCH,
    })
}

/// The architecture's name in Docker's `includes.arches` (Go's GOARCH).
#[cfg(target_arch = "x86_64")]
const GO_ARCH: &str = "amd64";
#[cfg(target_arch = "aarch64")]
const GO_ARCH: &str = "arm64";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const GO_ARCH: &str = std::env::consts::ARCH;

/// The syscall's number on this architecture, None when it has no such syscall.
fn native_number(name: &str) -> Option<libc::c_long> {
    LIBC_SYSCALLS
        .iter()
        .find(|(sys, _)| sys.strip_prefix("SYS_") == Some(name))
        .or_else(|| NEWER_SYSCALLS.iter().find(|(n, _)| *n == name))
        .map(|(_, nr)| *nr)
}

/// Whether `name` is a syscall of some other architecture (so a profile may name it).
fn known_elsewhere(name: &str) -> bool {
    OTHER_ARCH_SYSCALLS.binary_search(&name).is_ok()
}

/// (`SYS_name`, number) pairs from a list of libc constant names.
macro_rules! libc_syscalls {
    ($($sys:ident)*) => { &[$((stringify!($sys), libc::$sys)),*] };
}

#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const LIBC_SYSCALLS: &[(&str, libc::c_long)] = libc_syscalls!(
    SYS__sysctl SYS_accept SYS_accept4 SYS_access SYS_acct SYS_add_key SYS_adjtimex
    SYS_afs_syscall SYS_alarm SYS_arch_prctl SYS_bind SYS_bpf SYS_brk SYS_capget SYS_capset
    SYS_chdir SYS_chmod SYS_chown SYS_chroot SYS_clock_adjtime SYS_clock_getres
    SYS_clock_gettime SYS_clock_nanosleep SYS_clock_settime SYS_clone SYS_clone3 SYS_close
    SYS_close_range SYS_connect SYS_copy_file_range SYS_creat SYS_delete_module SYS_dup
    SYS_dup2 SYS_dup3 SYS_epoll_create SYS_epoll_create1 SYS_epoll_ctl SYS_epoll_ctl_old
    SYS_epoll_pwait SYS_epoll_pwait2 SYS_epoll_wait SYS_epoll_wait_old SYS_eventfd SYS_eventfd2
    SYS_execve SYS_execveat SYS_exit SYS_exit_group SYS_faccessat SYS_faccessat2 SYS_fadvise64
    SYS_fallocate SYS_fanotify_init SYS_fanotify_mark SYS_fchdir SYS_fchmod SYS_fchmodat
    SYS_fchmodat2 SYS_fchown SYS_fchownat SYS_fcntl SYS_fdatasync SYS_fgetxattr
    SYS_finit_module SYS_flistxattr SYS_flock SYS_fork SYS_fremovexattr SYS_fsconfig
    SYS_fsetxattr SYS_fsmount SYS_fsopen SYS_fspick SYS_fstat SYS_fstatfs SYS_fsync
    SYS_ftruncate SYS_futex SYS_futex_waitv SYS_futimesat SYS_get_mempolicy SYS_get_robust_list
    SYS_get_thread_area SYS_getcpu SYS_getcwd SYS_getdents SYS_getdents64 SYS_getegid
    SYS_geteuid SYS_getgid SYS_getgroups SYS_getitimer SYS_getpeername SYS_getpgid SYS_getpgrp
    SYS_getpid SYS_getpmsg SYS_getppid SYS_getpriority SYS_getrandom SYS_getresgid
    SYS_getresuid SYS_getrlimit SYS_getrusage SYS_getsid SYS_getsockname SYS_getsockopt
    SYS_gettid SYS_gettimeofday SYS_getuid SYS_getxattr SYS_init_module SYS_inotify_add_watch
    SYS_inotify_init SYS_inotify_init1 SYS_inotify_rm_watch SYS_io_cancel SYS_io_destroy
    SYS_io_getevents SYS_io_setup SYS_io_submit SYS_io_uring_enter SYS_io_uring_register
    SYS_io_uring_setup SYS_ioctl SYS_ioperm SYS_iopl SYS_ioprio_get SYS_ioprio_set SYS_kcmp
    SYS_kexec_file_load SYS_kexec_load SYS_keyctl SYS_kill SYS_landlock_add_rule
    SYS_landlock_create_ruleset SYS_landlock_restrict_self SYS_lchown SYS_lgetxattr SYS_link
    SYS_linkat SYS_listen SYS_listxattr SYS_llistxattr SYS_lookup_dcookie SYS_lremovexattr
    SYS_lseek SYS_lsetxattr SYS_lstat SYS_madvise SYS_mbind SYS_membarrier SYS_memfd_create
    SYS_memfd_secret SYS_migrate_pages SYS_mincore SYS_mkdir SYS_mkdirat SYS_mknod SYS_mknodat
    SYS_mlock SYS_mlock2 SYS_mlockall SYS_mmap SYS_modify_ldt SYS_mount SYS_mount_setattr
    SYS_move_mount SYS_move_pages SYS_mprotect SYS_mq_getsetattr SYS_mq_notify SYS_mq_open
    SYS_mq_timedreceive SYS_mq_timedsend SYS_mq_unlink SYS_mremap SYS_mseal SYS_msgctl
    SYS_msgget SYS_msgrcv SYS_msgsnd SYS_msync SYS_munlock SYS_munlockall SYS_munmap
    SYS_name_to_handle_at SYS_nanosleep SYS_newfstatat SYS_nfsservctl SYS_open
    SYS_open_by_handle_at SYS_open_tree SYS_openat SYS_openat2 SYS_pause SYS_perf_event_open
    SYS_personality SYS_pidfd_getfd SYS_pidfd_open SYS_pidfd_send_signal SYS_pipe SYS_pipe2
    SYS_pivot_root SYS_pkey_alloc SYS_pkey_free SYS_pkey_mprotect SYS_poll SYS_ppoll SYS_prctl
    SYS_pread64 SYS_preadv SYS_preadv2 SYS_prlimit64 SYS_process_madvise SYS_process_mrelease
    SYS_process_vm_readv SYS_process_vm_writev SYS_pselect6 SYS_ptrace SYS_putpmsg SYS_pwrite64
    SYS_pwritev SYS_pwritev2 SYS_quotactl SYS_quotactl_fd SYS_read SYS_readahead SYS_readlink
    SYS_readlinkat SYS_readv SYS_reboot SYS_recvfrom SYS_recvmmsg SYS_recvmsg
    SYS_remap_file_pages SYS_removexattr SYS_rename SYS_renameat SYS_renameat2 SYS_request_key
    SYS_restart_syscall SYS_rmdir SYS_rseq SYS_rt_sigaction SYS_rt_sigpending
    SYS_rt_sigprocmask SYS_rt_sigqueueinfo SYS_rt_sigreturn SYS_rt_sigsuspend
    SYS_rt_sigtimedwait SYS_rt_tgsigqueueinfo SYS_sched_get_priority_max
    SYS_sched_get_priority_min SYS_sched_getaffinity SYS_sched_getattr SYS_sched_getparam
    SYS_sched_getscheduler SYS_sched_rr_get_interval SYS_sched_setaffinity SYS_sched_setattr
    SYS_sched_setparam SYS_sched_setscheduler SYS_sched_yield SYS_seccomp SYS_security
    SYS_select SYS_semctl SYS_semget SYS_semop SYS_semtimedop SYS_sendfile SYS_sendmmsg
    SYS_sendmsg SYS_sendto SYS_set_mempolicy SYS_set_mempolicy_home_node SYS_set_robust_list
    SYS_set_thread_area SYS_set_tid_address SYS_setdomainname SYS_setfsgid SYS_setfsuid
    SYS_setgid SYS_setgroups SYS_sethostname SYS_setitimer SYS_setns SYS_setpgid
    SYS_setpriority SYS_setregid SYS_setresgid SYS_setresuid SYS_setreuid SYS_setrlimit
    SYS_setsid SYS_setsockopt SYS_settimeofday SYS_setuid SYS_setxattr SYS_shmat SYS_shmctl
    SYS_shmdt SYS_shmget SYS_shutdown SYS_sigaltstack SYS_signalfd SYS_signalfd4 SYS_socket
    SYS_socketpair SYS_splice SYS_stat SYS_statfs SYS_statx SYS_swapoff SYS_swapon SYS_symlink
    SYS_symlinkat SYS_sync SYS_sync_file_range SYS_syncfs SYS_sysfs SYS_sysinfo SYS_syslog
    SYS_tee SYS_tgkill SYS_time SYS_timer_create SYS_timer_delete SYS_timer_getoverrun
    SYS_timer_gettime SYS_timer_settime SYS_timerfd_create SYS_timerfd_gettime
    SYS_timerfd_settime SYS_times SYS_tkill SYS_truncate SYS_tuxcall SYS_umask SYS_umount2
    SYS_uname SYS_unlink SYS_unlinkat SYS_unshare SYS_uselib SYS_userfaultfd SYS_ustat
    SYS_utime SYS_utimensat SYS_utimes SYS_vfork SYS_vhangup SYS_vmsplice SYS_vserver SYS_wait4
    SYS_waitid SYS_write SYS_writev
);

/// Syscalls the libc crate has no constant for (kernel tables; from 424 on, numbers are the
/// same on every architecture).
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const NEWER_SYSCALLS: &[(&str, libc::c_long)] = &[
    ("create_module", 174), ("get_kernel_syms", 177), ("query_module", 178),
    ("io_pgetevents", 333), ("uretprobe", 335),
    ("cachestat", 451), ("map_shadow_stack", 453), ("futex_wake", 454), ("futex_wait", 455),
    ("futex_requeue", 456), ("statmount", 457), ("listmount", 458), ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460), ("lsm_list_modules", 461), ("setxattrat", 463),
    ("getxattrat", 464), ("listxattrat", 465), ("removexattrat", 466), ("open_tree_attr", 467),
    ("file_getattr", 468), ("file_setattr", 469),
];

#[cfg(target_arch = "aarch64")]
#[rustfmt::skip]
const LIBC_SYSCALLS: &[(&str, libc::c_long)] = libc_syscalls!(
    SYS_accept SYS_accept4 SYS_acct SYS_add_key SYS_adjtimex SYS_bind SYS_bpf SYS_brk
    SYS_capget SYS_capset SYS_chdir SYS_chroot SYS_clock_adjtime SYS_clock_getres
    SYS_clock_gettime SYS_clock_nanosleep SYS_clock_settime SYS_clone SYS_clone3 SYS_close
    SYS_close_range SYS_connect SYS_copy_file_range SYS_delete_module SYS_dup SYS_dup3
    SYS_epoll_create1 SYS_epoll_ctl SYS_epoll_pwait SYS_epoll_pwait2 SYS_eventfd2 SYS_execve
    SYS_execveat SYS_exit SYS_exit_group SYS_faccessat SYS_faccessat2 SYS_fadvise64
    SYS_fallocate SYS_fanotify_init SYS_fanotify_mark SYS_fchdir SYS_fchmod SYS_fchmodat
    SYS_fchown SYS_fchownat SYS_fcntl SYS_fdatasync SYS_fgetxattr SYS_finit_module
    SYS_flistxattr SYS_flock SYS_fremovexattr SYS_fsconfig SYS_fsetxattr SYS_fsmount SYS_fsopen
    SYS_fspick SYS_fstat SYS_fstatfs SYS_fsync SYS_ftruncate SYS_futex SYS_futex_waitv
    SYS_get_mempolicy SYS_get_robust_list SYS_getcpu SYS_getcwd SYS_getdents64 SYS_getegid
    SYS_geteuid SYS_getgid SYS_getgroups SYS_getitimer SYS_getpeername SYS_getpgid SYS_getpid
    SYS_getppid SYS_getpriority SYS_getrandom SYS_getresgid SYS_getresuid SYS_getrlimit
    SYS_getrusage SYS_getsid SYS_getsockname SYS_getsockopt SYS_gettid SYS_gettimeofday
    SYS_getuid SYS_getxattr SYS_init_module SYS_inotify_add_watch SYS_inotify_init1
    SYS_inotify_rm_watch SYS_io_cancel SYS_io_destroy SYS_io_getevents SYS_io_setup
    SYS_io_submit SYS_io_uring_enter SYS_io_uring_register SYS_io_uring_setup SYS_ioctl
    SYS_ioprio_get SYS_ioprio_set SYS_kcmp SYS_kexec_file_load SYS_kexec_load SYS_keyctl
    SYS_kill SYS_landlock_add_rule SYS_landlock_create_ruleset SYS_landlock_restrict_self
    SYS_lgetxattr SYS_linkat SYS_listen SYS_listxattr SYS_llistxattr SYS_lookup_dcookie
    SYS_lremovexattr SYS_lseek SYS_lsetxattr SYS_madvise SYS_mbind SYS_membarrier
    SYS_memfd_create SYS_memfd_secret SYS_migrate_pages SYS_mincore SYS_mkdirat SYS_mknodat
    SYS_mlock SYS_mlock2 SYS_mlockall SYS_mmap SYS_mount SYS_mount_setattr SYS_move_mount
    SYS_move_pages SYS_mprotect SYS_mq_getsetattr SYS_mq_notify SYS_mq_open SYS_mq_timedreceive
    SYS_mq_timedsend SYS_mq_unlink SYS_mremap SYS_mseal SYS_msgctl SYS_msgget SYS_msgrcv
    SYS_msgsnd SYS_msync SYS_munlock SYS_munlockall SYS_munmap SYS_name_to_handle_at
    SYS_nanosleep SYS_newfstatat SYS_nfsservctl SYS_open_by_handle_at SYS_open_tree SYS_openat
    SYS_openat2 SYS_perf_event_open SYS_personality SYS_pidfd_getfd SYS_pidfd_open
    SYS_pidfd_send_signal SYS_pipe2 SYS_pivot_root SYS_pkey_alloc SYS_pkey_free
    SYS_pkey_mprotect SYS_ppoll SYS_prctl SYS_pread64 SYS_preadv SYS_preadv2 SYS_prlimit64
    SYS_process_madvise SYS_process_mrelease SYS_process_vm_readv SYS_process_vm_writev
    SYS_pselect6 SYS_ptrace SYS_pwrite64 SYS_pwritev SYS_pwritev2 SYS_quotactl SYS_quotactl_fd
    SYS_read SYS_readahead SYS_readlinkat SYS_readv SYS_reboot SYS_recvfrom SYS_recvmmsg
    SYS_recvmsg SYS_remap_file_pages SYS_removexattr SYS_renameat SYS_renameat2 SYS_request_key
    SYS_restart_syscall SYS_rseq SYS_rt_sigaction SYS_rt_sigpending SYS_rt_sigprocmask
    SYS_rt_sigqueueinfo SYS_rt_sigreturn SYS_rt_sigsuspend SYS_rt_sigtimedwait
    SYS_rt_tgsigqueueinfo SYS_sched_get_priority_max SYS_sched_get_priority_min
    SYS_sched_getaffinity SYS_sched_getattr SYS_sched_getparam SYS_sched_getscheduler
    SYS_sched_rr_get_interval SYS_sched_setaffinity SYS_sched_setattr SYS_sched_setparam
    SYS_sched_setscheduler SYS_sched_yield SYS_seccomp SYS_semctl SYS_semget SYS_semop
    SYS_semtimedop SYS_sendfile SYS_sendmmsg SYS_sendmsg SYS_sendto SYS_set_mempolicy
    SYS_set_mempolicy_home_node SYS_set_robust_list SYS_set_tid_address SYS_setdomainname
    SYS_setfsgid SYS_setfsuid SYS_setgid SYS_setgroups SYS_sethostname SYS_setitimer SYS_setns
    SYS_setpgid SYS_setpriority SYS_setregid SYS_setresgid SYS_setresuid SYS_setreuid
    SYS_setrlimit SYS_setsid SYS_setsockopt SYS_settimeofday SYS_setuid SYS_setxattr SYS_shmat
    SYS_shmctl SYS_shmdt SYS_shmget SYS_shutdown SYS_sigaltstack SYS_signalfd4 SYS_socket
    SYS_socketpair SYS_splice SYS_statfs SYS_statx SYS_swapoff SYS_swapon SYS_symlinkat
    SYS_sync SYS_sync_file_range SYS_syncfs SYS_sysinfo SYS_syslog SYS_tee SYS_tgkill
    SYS_timer_create SYS_timer_delete SYS_timer_getoverrun SYS_timer_gettime SYS_timer_settime
    SYS_timerfd_create SYS_timerfd_gettime SYS_timerfd_settime SYS_times SYS_tkill SYS_truncate
    SYS_umask SYS_umount2 SYS_uname SYS_unlinkat SYS_unshare SYS_userfaultfd SYS_utimensat
    SYS_vhangup SYS_vmsplice SYS_wait4 SYS_waitid SYS_write SYS_writev
);

#[cfg(target_arch = "aarch64")]
#[rustfmt::skip]
const NEWER_SYSCALLS: &[(&str, libc::c_long)] = &[
    ("io_pgetevents", 292), ("fchmodat2", 452),
    ("cachestat", 451), ("map_shadow_stack", 453), ("futex_wake", 454), ("futex_wait", 455),
    ("futex_requeue", 456), ("statmount", 457), ("listmount", 458), ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460), ("lsm_list_modules", 461), ("setxattrat", 463),
    ("getxattrat", 464), ("listxattrat", 465), ("removexattrat", 466), ("open_tree_attr", 467),
    ("file_getattr", 468), ("file_setattr", 469),
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const LIBC_SYSCALLS: &[(&str, libc::c_long)] = &[];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NEWER_SYSCALLS: &[(&str, libc::c_long)] = &[];

/// Linux syscall names that exist on some architectures but not on both x86_64 and aarch64
/// (from the libc crate's and the kernel's tables), sorted. A profile naming one that this
/// node lacks is fine; a name in neither list is a typo.
#[rustfmt::skip]
const OTHER_ARCH_SYSCALLS: &[&str] = &[
    "_llseek", "_newselect", "_sysctl", "access", "adjtimex_time32", "afs_syscall", "alarm",
    "arch_prctl", "arch_specific_syscall", "arm_fadvise64_64", "arm_sync_file_range",
    "atomic_barrier", "atomic_cmpxchg_32", "bdflush", "break", "breakpoint", "cachectl",
    "cacheflush", "chmod", "chown", "chown16", "chown32", "clock_adjtime32", "clock_adjtime64",
    "clock_getres_time32", "clock_getres_time64", "clock_gettime32", "clock_gettime64",
    "clock_nanosleep_time32", "clock_nanosleep_time64", "clock_settime32", "clock_settime64",
    "creat", "create_module", "dup2", "epoll_create", "epoll_ctl_old", "epoll_wait",
    "epoll_wait_old", "eventfd", "execv", "fadvise", "fadvise64_64", "fchown16", "fchown32",
    "fcntl64", "file_get_attr", "file_set_attr", "fork", "fstat64", "fstatat64", "fstatfs64",
    "ftime", "ftruncate64", "futex_time32", "futex_time64", "futimesat", "futimesat_time32",
    "get_kernel_syms", "get_thread_area", "get_tls", "getdents", "getdomainname", "getegid16",
    "getegid32", "geteuid16", "geteuid32", "getgid16", "getgid32", "getgroups16", "getgroups32",
    "getpagesize", "getpgrp", "getpmsg", "getresgid16", "getresgid32", "getresuid16",
    "getresuid32", "getuid16", "getuid32", "gtty", "idle", "inotify_init", "io_getevents_time32",
    "io_pgetevents_time64", "ioperm", "iopl", "ipc", "kern_features", "lchown", "lchown16",
    "lchown32", "link", "llseek", "lock", "lstat", "lstat64", "memory_ordering", "mkdir",
    "mknod", "mmap2", "modify_ldt", "mpx", "mq_timedreceive_time32", "mq_timedreceive_time64",
    "mq_timedsend_time32", "mq_timedsend_time64", "multiplexer", "nanosleep_time32", "newfstat",
    "newlstat", "newstat", "newuname", "nice", "old_getrlimit", "old_mmap", "old_readdir",
    "old_select", "oldfstat", "oldlstat", "oldolduname", "oldstat", "oldumount", "olduname",
    "oldwait4", "open", "pause", "pciconfig_iobase", "pciconfig_read", "pciconfig_write",
    "perfctr", "pipe", "poll", "ppoll_time32", "ppoll_time64", "prof", "profil",
    "pselect6_time32", "pselect6_time64", "putpmsg", "query_module", "readdir", "readlink",
    "recv", "recvmmsg_time32", "recvmmsg_time64", "rename", "riscv_flush_icache",
    "riscv_hwprobe", "rmdir", "rt_sigtimedwait_time32", "rt_sigtimedwait_time64", "rtas",
    "s390_guarded_storage", "s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr",
    "s390_sthyi", "sched_get_affinity", "sched_rr_get_interval_time32",
    "sched_rr_get_interval_time64", "sched_set_affinity", "security", "select",
    "semtimedop_time64", "send", "sendfile64", "set_thread_area", "set_tls", "setfsgid16",
    "setfsgid32", "setfsuid16", "setfsuid32", "setgid16", "setgid32", "setgroups16",
    "setgroups32", "setregid16", "setregid32", "setresgid16", "setresgid32", "setresuid16",
    "setresuid32", "setreuid16", "setreuid32", "setuid16", "setuid32", "sgetmask", "sigaction",
    "signal", "signalfd", "sigpending", "sigprocmask", "sigreturn", "sigsuspend", "socketcall",
    "spu_create", "spu_run", "ssetmask", "stat", "stat64", "statfs64", "stime", "stime32",
    "stty", "subpage_prot", "swapcontext", "switch_endian", "symlink", "sync_file_range2",
    "sys_debug_setcontext", "sys_setaltroot", "syscall", "syscalls", "sysfs", "sysmips", "time",
    "time32", "timer_gettime32", "timer_gettime64", "timer_settime32", "timer_settime64",
    "timerfd", "timerfd_gettime32", "timerfd_gettime64", "timerfd_settime32",
    "timerfd_settime64", "truncate64", "tuxcall", "ugetrlimit", "ulimit", "umount", "unlink",
    "uretprobe", "uselib", "usr26", "usr32", "ustat", "utime", "utime32", "utimensat_time32",
    "utimensat_time64", "utimes", "utimes_time32", "utrap_install", "vfork", "vm86", "vm86old",
    "vserver", "waitpid",
];

/// Whether `caps` holds `cap`; "SYS_ADMIN" and "sys_admin" count as "CAP_SYS_ADMIN".
fn has_capability(caps: &[String], cap: &str) -> bool {
    let bare = |c: &str| {
        let c = c.trim();
        match c.get(..4) {
            Some(prefix) if prefix.eq_ignore_ascii_case("CAP_") => c[4..].to_ascii_uppercase(),
            _ => c.to_ascii_uppercase(),
        }
    };
    let wanted = bare(cap);
    caps.iter().any(|c| bare(c) == wanted)
}

/// "6.1.0-18-amd64" or "4.8" → (6, 1).
fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().filter(|m| !m.is_empty())?.parse().ok()?;
    Some((major, minor))
}

/// Whether the running kernel is at least `min`; false when its version is unknown, so a
/// rule that needs a newer kernel is left out.
fn kernel_at_least(min: (u32, u32)) -> bool {
    // SAFETY: uname fills the zeroed struct, whose fields are NUL-terminated arrays.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return false;
    }
    // SAFETY: release is NUL-terminated by the kernel (and zero-filled before).
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    release
        .to_str()
        .ok()
        .and_then(parse_kernel_version)
        .is_some_and(|version| version >= min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    #[cfg(target_arch = "x86_64")]
    const NATIVE_AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const NATIVE_AUDIT_ARCH: u32 = 0xC000_00B7;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    /// Docker's and containerd's default capability set.
    fn default_caps() -> Vec<String> {
        [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect()
    }

    fn with_caps(extra: &[&str]) -> Vec<String> {
        let mut caps = default_caps();
        caps.extend(extra.iter().map(|c| c.to_string()));
        caps
    }

    fn runtime_default_program(caps: &[String]) -> BpfProgram {
        compile(
            &SeccompPolicy::RuntimeDefault,
            Path::new("/nonexistent"),
            caps,
        )
        .unwrap()
        .unwrap()
    }

    /// Runs a seccomp program the way the kernel would, for one syscall.
    fn run(program: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        // struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
        let mut data = Vec::new();
        data.extend_from_slice(&(nr as i32).to_le_bytes());
        data.extend_from_slice(&arch.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        for arg in args {
            data.extend_from_slice(&arg.to_le_bytes());
        }
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let insn = &program[pc];
            let k = insn.k;
            let jump = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
            pc += 1;
            match insn.code {
                0x20 => {
                    let at = k as usize;
                    a = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                }
                0x54 => a &= k,
                0x05 => pc += k as usize,
                0x15 => pc += jump(a == k),
                0x25 => pc += jump(a > k),
                0x35 => pc += jump(a >= k),
                0x45 => pc += jump(a & k != 0),
                0x06 => return k,
                code => panic!("instruction {code:#x} at {} not understood", pc - 1),
            }
        }
    }

    fn verdict(program: &[sock_filter], name: &str, args: [u64; 6]) -> u32 {
        let nr = native_number(name).unwrap_or_else(|| panic!("{name} has no number here"));
        run(program, NATIVE_AUDIT_ARCH, nr, args)
    }

    #[test]
    fn unconfined_compiles_to_no_filter() {
        let compiled = compile(&SeccompPolicy::Unconfined, Path::new("/x"), &[]).unwrap();
        assert!(compiled.is_none());
    }

    #[test]
    fn runtime_default_is_what_a_pod_gets_when_it_says_nothing() {
        assert_eq!(SeccompPolicy::default(), SeccompPolicy::RuntimeDefault);
    }

    #[test]
    fn policy_round_trips_through_json_for_the_container_plan() {
        for policy in [
            SeccompPolicy::RuntimeDefault,
            SeccompPolicy::Unconfined,
            SeccompPolicy::Localhost(PathBuf::from("profiles/audit.json")),
        ] {
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(
                serde_json::from_str::<SeccompPolicy>(&json).unwrap(),
                policy
            );
        }
    }

    #[test]
    fn runtime_default_compiles_within_the_kernel_limit() {
        let program = runtime_default_program(&default_caps());
        assert!(
            program.len() <= BPF_MAXINSNS,
            "{} instructions",
            program.len()
        );
        let privileged = runtime_default_program(&with_caps(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]));
        assert!(privileged.len() <= BPF_MAXINSNS);
    }

    #[test]
    fn runtime_default_allows_read_write_openat_and_execve() {
        let program = runtime_default_program(&default_caps());
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "exit_group",
            "futex",
            "getpid",
        ] {
            assert_eq!(verdict(&program, name, [0; 6]), ALLOW, "{name}");
        }
    }

    #[test]
    fn runtime_default_refuses_keyctl_unshare_and_mount_with_eperm() {
        let program = runtime_default_program(&default_caps());
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "mount",
            "umount2",
            "setns",
            "bpf",
            "io_uring_setup",
            "kexec_load",
            "reboot",
            "init_module",
        ] {
            assert_eq!(verdict(&program, name, [0; 6]), EPERM, "{name}");
        }
    }

    #[test]
    fn a_container_with_cap_sys_admin_may_mount_and_unshare() {
        let program = runtime_default_program(&with_caps(&["CAP_SYS_ADMIN"]));
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "clone3",
            "sethostname",
        ] {
            assert_eq!(verdict(&program, name, [0; 6]), ALLOW, "{name}");
        }
        let new_user_ns = libc::CLONE_NEWUSER as u64;
        assert_eq!(
            verdict(&program, "clone", [new_user_ns, 0, 0, 0, 0, 0]),
            ALLOW
        );
        // Still nothing for the keyring.
        assert_eq!(verdict(&program, "keyctl", [0; 6]), EPERM);
    }

    #[test]
    fn capability_names_are_accepted_with_or_without_the_cap_prefix() {
        let program = runtime_default_program(&["sys_admin".to_string()]);
        assert_eq!(verdict(&program, "mount", [0; 6]), ALLOW);
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags() {
        let program = runtime_default_program(&default_caps());
        let thread =
            (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_THREAD) as u64;
        let fork_like = libc::SIGCHLD as u64;
        assert_eq!(verdict(&program, "clone", [thread, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            verdict(&program, "clone", [fork_like, 0, 0, 0, 0, 0]),
            ALLOW
        );
        for flag in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWCGROUP,
        ] {
            let flags = fork_like | flag as u64;
            assert_eq!(verdict(&program, "clone", [flags, 0, 0, 0, 0, 0]), EPERM);
        }
    }

    #[test]
    fn clone3_fails_with_enosys_so_libcs_fall_back_to_clone() {
        let program = runtime_default_program(&default_caps());
        assert_eq!(verdict(&program, "clone3", [0; 6]), ENOSYS);
    }

    #[test]
    fn personality_is_allowed_only_with_the_personas_moby_allows() {
        let program = runtime_default_program(&default_caps());
        for persona in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(
                verdict(&program, "personality", [persona, 0, 0, 0, 0, 0]),
                ALLOW
            );
        }
        // ADDR_NO_RANDOMIZE: turning off ASLR is not allowed.
        assert_eq!(
            verdict(&program, "personality", [0x0040000, 0, 0, 0, 0, 0]),
            EPERM
        );
    }

    #[test]
    fn sockets_are_allowed_except_af_vsock() {
        let program = runtime_default_program(&default_caps());
        let inet = libc::AF_INET as u64;
        assert_eq!(verdict(&program, "socket", [inet, 1, 0, 0, 0, 0]), ALLOW);
        let vsock = libc::AF_VSOCK as u64;
        assert_eq!(verdict(&program, "socket", [vsock, 1, 0, 0, 0, 0]), EPERM);
    }

    #[test]
    fn capability_gated_syscalls_follow_the_capabilities() {
        let default = runtime_default_program(&default_caps());
        // CAP_SYS_CHROOT is in the default set.
        assert_eq!(verdict(&default, "chroot", [0; 6]), ALLOW);
        for name in [
            "reboot",
            "settimeofday",
            "kcmp",
            "pidfd_getfd",
            "acct",
            "vhangup",
        ] {
            assert_eq!(verdict(&default, name, [0; 6]), EPERM, "{name}");
        }
        let none = runtime_default_program(&[]);
        assert_eq!(verdict(&none, "chroot", [0; 6]), EPERM);
        let more = runtime_default_program(&with_caps(&[
            "CAP_SYS_BOOT",
            "CAP_SYS_TIME",
            "CAP_SYS_PTRACE",
            "CAP_BPF",
            "CAP_PERFMON",
        ]));
        for name in [
            "reboot",
            "settimeofday",
            "kcmp",
            "pidfd_getfd",
            "bpf",
            "perf_event_open",
        ] {
            assert_eq!(verdict(&more, name, [0; 6]), ALLOW, "{name}");
        }
    }

    #[test]
    fn ptrace_is_allowed_on_kernels_from_4_8_as_moby_does() {
        let program = runtime_default_program(&default_caps());
        let expected = if kernel_at_least((4, 8)) {
            ALLOW
        } else {
            EPERM
        };
        assert_eq!(verdict(&program, "ptrace", [0; 6]), expected);
    }

    #[test]
    fn a_syscall_through_another_abi_kills_the_process() {
        let program = runtime_default_program(&default_caps());
        // i386 getpid through int 0x80.
        assert_eq!(run(&program, AUDIT_ARCH_I386, 20, [0; 6]), KILL_PROCESS);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_syscall_numbers_kill_the_process() {
        let program = runtime_default_program(&default_caps());
        let x32_read = 0x4000_0000 | libc::SYS_read;
        assert_eq!(
            run(&program, NATIVE_AUDIT_ARCH, x32_read, [0; 6]),
            KILL_PROCESS
        );
    }

    #[test]
    fn every_name_in_the_runtime_default_lists_is_a_real_syscall() {
        let mut names: Vec<&str> = DEFAULT_ALLOWED.to_vec();
        names.extend(ALLOWED_SINCE_4_8);
        names.extend(ALLOWED_ON_THIS_ARCH);
        for (_, gated) in ALLOWED_WITH_CAPABILITY {
            names.extend(gated.iter());
        }
        for name in names {
            assert!(
                native_number(name).is_some() || known_elsewhere(name),
                "{name} is not a Linux syscall"
            );
        }
    }

    #[test]
    fn syscall_name_tables_are_consistent() {
        assert!(
            OTHER_ARCH_SYSCALLS.windows(2).all(|w| w[0] < w[1]),
            "not sorted"
        );
        for (name, nr) in NEWER_SYSCALLS {
            let in_libc = LIBC_SYSCALLS
                .iter()
                .any(|(sys, _)| sys.strip_prefix("SYS_") == Some(*name));
            assert!(
                !in_libc,
                "{name} is in libc now; drop it from NEWER_SYSCALLS"
            );
            assert!(
                !LIBC_SYSCALLS.iter().any(|(_, n)| n == nr),
                "{name}'s number {nr} is taken"
            );
        }
        assert_eq!(native_number("read"), Some(libc::SYS_read));
        assert_eq!(native_number("listmount"), Some(458));
        assert_eq!(native_number("chown32"), None);
        assert!(known_elsewhere("chown32"));
        assert!(!known_elsewhere("opne"));
    }

    #[test]
    fn runtime_default_list_sizes_per_architecture() {
        let resolved = DEFAULT_ALLOWED
            .iter()
            .filter(|n| native_number(n).is_some())
            .count();
        let arch_only = ALLOWED_ON_THIS_ARCH
            .iter()
            .filter(|n| native_number(n).is_some())
            .count();
        eprintln!(
            "{}: {} of {} moby names resolve, plus {arch_only} arch-specific",
            std::env::consts::ARCH,
            resolved,
            DEFAULT_ALLOWED.len()
        );
        assert!(resolved > 280, "only {resolved} syscalls resolved");
    }

    // --- Localhost -------------------------------------------------------------------

    fn profile_dir(files: &[(&str, &str)]) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    /// A throwaway directory without another crate.
    mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub struct Dir(PathBuf);

        impl Dir {
            pub fn new() -> Dir {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir().join(format!(
                    "layerlet-seccomp-test-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn localhost(
        dir: &tempdir::Dir,
        rel: &str,
        caps: &[String],
    ) -> Result<BpfProgram, SeccompError> {
        let policy = SeccompPolicy::Localhost(PathBuf::from(rel));
        compile(&policy, dir.path(), caps).map(|p| p.unwrap())
    }

    const SAMPLE: &str = r#"{
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [
            {"names": ["keyctl", "add_key", "chown32"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["unshare"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["personality"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 0, "value": 4194304, "valueTwo": 4194304, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GE"},
                      {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "comment": "not without CAP_SYS_ADMIN",
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
        ]
    }"#;

    #[test]
    fn a_localhost_profile_is_parsed_and_compiled() {
        let dir = profile_dir(&[("profiles/sample.json", SAMPLE)]);
        let program = localhost(&dir, "profiles/sample.json", &default_caps()).unwrap();
        let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
        assert_eq!(verdict(&program, "read", [0; 6]), ALLOW);
        assert_eq!(verdict(&program, "keyctl", [0; 6]), errno(libc::ENOSYS));
        assert_eq!(verdict(&program, "add_key", [0; 6]), errno(libc::ENOSYS));
        assert_eq!(verdict(&program, "unshare", [0; 6]), EPERM);
        assert_eq!(verdict(&program, "kexec_load", [0; 6]), KILL_PROCESS);
        let trap = libc::SECCOMP_RET_TRAP;
        assert_eq!(
            verdict(&program, "personality", [0x40_0000, 0, 0, 0, 0, 0]),
            trap
        );
        assert_eq!(verdict(&program, "personality", [0, 0, 0, 0, 0, 0]), ALLOW);
        let log = libc::SECCOMP_RET_LOG;
        assert_eq!(verdict(&program, "socket", [10, 3, 0, 0, 0, 0]), log);
        assert_eq!(verdict(&program, "socket", [10, 1, 0, 0, 0, 0]), ALLOW);
        assert_eq!(verdict(&program, "socket", [2, 3, 0, 0, 0, 0]), ALLOW);
        assert_eq!(verdict(&program, "mount", [0; 6]), EPERM);

        let admin = localhost(&dir, "profiles/sample.json", &with_caps(&["CAP_SYS_ADMIN"]));
        assert_eq!(verdict(&admin.unwrap(), "mount", [0; 6]), ALLOW);
    }

    #[test]
    fn the_stricter_action_wins_when_two_rules_match() {
        let dir = profile_dir(&[(
            "p.json",
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["ioctl"], "action": "SCMP_ACT_KILL",
                 "args": [{"index": 1, "value": 21522, "op": "SCMP_CMP_EQ"}]}
            ]}"#,
        )]);
        let program = localhost(&dir, "p.json", &[]).unwrap();
        // TIOCSTI (0x5412) kills the thread; other ioctls pass.
        let kill_thread = libc::SECCOMP_RET_KILL_THREAD;
        assert_eq!(
            verdict(&program, "ioctl", [0, 0x5412, 0, 0, 0, 0]),
            kill_thread
        );
        assert_eq!(verdict(&program, "ioctl", [0, 0x5401, 0, 0, 0, 0]), ALLOW);
        assert_eq!(verdict(&program, "read", [0; 6]), EPERM);
    }

    #[test]
    fn repeated_conditions_on_one_argument_are_alternatives_as_in_runc() {
        let dir = profile_dir(&[(
            "p.json",
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]}"#,
        )]);
        let program = localhost(&dir, "p.json", &[]).unwrap();
        assert_eq!(verdict(&program, "personality", [0, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(verdict(&program, "personality", [8, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(verdict(&program, "personality", [9, 0, 0, 0, 0, 0]), EPERM);
    }

    #[test]
    fn a_localhost_path_that_is_absolute_or_climbs_out_is_refused() {
        let dir = profile_dir(&[("ok.json", SAMPLE)]);
        for bad in [
            "../etc/profile.json",
            "a/../../x.json",
            "/etc/seccomp.json",
            "",
        ] {
            let err = localhost(&dir, bad, &[]).unwrap_err();
            assert!(
                matches!(err, SeccompError::LocalhostPath { .. }),
                "{bad}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.contains("relative to the seccomp profile directory"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_missing_localhost_file_is_named_in_the_error() {
        let dir = profile_dir(&[]);
        let err = localhost(&dir, "missing.json", &[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SeccompError::Read { .. }), "{text}");
        assert!(text.contains("missing.json"), "{text}");
    }

    fn error_for(profile: &str) -> (SeccompError, String) {
        let dir = profile_dir(&[("bad.json", profile)]);
        let err = localhost(&dir, "bad.json", &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bad.json"), "the file is not named: {text}");
        (err, text)
    }

    #[test]
    fn an_unknown_action_is_named_with_its_field() {
        let (err, text) = error_for(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(matches!(err, SeccompError::UnknownAction { .. }), "{text}");
        assert!(text.contains("syscalls[1].action"), "{text}");
        assert!(text.contains("SCMP_ACT_NOTIFY"), "{text}");
        let (err, text) = error_for(r#"{"defaultAction": "SCMP_ACT_DENY"}"#);
        assert!(matches!(err, SeccompError::UnknownAction { .. }), "{text}");
        assert!(
            text.contains("defaultAction") && text.contains("SCMP_ACT_DENY"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_comparison_is_named_with_its_field() {
        let (err, text) = error_for(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}"#,
        );
        assert!(
            matches!(err, SeccompError::UnknownOperator { .. }),
            "{text}"
        );
        assert!(text.contains("syscalls[0].args[0].op"), "{text}");
        assert!(text.contains("SCMP_CMP_LIKE"), "{text}");
    }

    #[test]
    fn an_unknown_syscall_is_named_but_other_architectures_syscalls_are_skipped() {
        let (err, text) = error_for(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read", "chown32", "opne"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(matches!(err, SeccompError::UnknownSyscall { .. }), "{text}");
        assert!(text.contains("syscalls[0].names[2]"), "{text}");
        assert!(text.contains("\"opne\""), "{text}");
    }

    #[test]
    fn an_argument_index_beyond_five_is_refused() {
        let (err, text) = error_for(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(matches!(err, SeccompError::Invalid { .. }), "{text}");
        assert!(text.contains("syscalls[0].args[0].index"), "{text}");
    }

    #[test]
    fn a_misspelt_field_is_refused_rather_than_ignored() {
        let (err, text) = error_for(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscall": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(matches!(err, SeccompError::Parse { .. }), "{text}");
        assert!(text.contains("syscall"), "{text}");
    }

    #[test]
    fn errno_ret_outside_errno_actions_or_range_is_refused() {
        let (_, text) = error_for(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}"#,
        );
        assert!(
            text.contains("errnoRet only goes with SCMP_ACT_ERRNO"),
            "{text}"
        );
        let (_, text) =
            error_for(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#);
        assert!(text.contains("out of range"), "{text}");
    }

    #[test]
    fn unknown_architectures_and_unsupported_flags_are_refused() {
        let (_, text) =
            error_for(r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}"#);
        assert!(
            text.contains("architectures[0]") && text.contains("SCMP_ARCH_VAX"),
            "{text}"
        );
        let (_, text) = error_for(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}"#,
        );
        assert!(text.contains("flags[0]"), "{text}");
    }

    #[test]
    fn docker_default_json_compiles_as_a_localhost_profile() {
        // moby's format: archMap, includes/excludes with caps, arches and minKernel, nulls.
        let dir = profile_dir(&[(
            "docker.json",
            r#"{
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": null}],
                "syscalls": [
                    {"names": ["read", "write", "fstat64", "_llseek"], "action": "SCMP_ACT_ALLOW",
                     "args": null, "comment": "", "includes": {}, "excludes": {}},
                    {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                     "includes": {"minKernel": "4.8"}},
                    {"names": ["arch_prctl", "breakpoint"], "action": "SCMP_ACT_ALLOW",
                     "includes": {"arches": ["amd64", "x32", "arm64"]}},
                    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                     "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
                ]
            }"#,
        )]);
        let program = localhost(&dir, "docker.json", &default_caps()).unwrap();
        assert_eq!(verdict(&program, "read", [0; 6]), ALLOW);
        assert_eq!(verdict(&program, "clone3", [0; 6]), ENOSYS);
        assert_eq!(verdict(&program, "ptrace", [0; 6]), ALLOW);
        if let Some(nr) = native_number("arch_prctl") {
            assert_eq!(run(&program, NATIVE_AUDIT_ARCH, nr, [0; 6]), ALLOW);
        }
    }

    // --- A real process --------------------------------------------------------------

    /// In the forked child: only raw syscalls, no allocation, no locks.
    fn probe_in_child(program: &BpfProgram) -> i32 {
        let errno = || nix::errno::Errno::last_raw();
        // SAFETY: plain syscalls on this thread.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return 64;
            }
            if install(program).is_err() {
                return 65;
            }
            let mut failures = 0;
            // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
            if libc::syscall(libc::SYS_keyctl, 0, -3, 0) != -1 || errno() != libc::EPERM {
                failures |= 1;
            }
            if libc::unshare(libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
                failures |= 2;
            }
            if libc::syscall(libc::SYS_getpid) <= 0 {
                failures |= 4;
            }
            let null = std::ptr::null::<u8>();
            if libc::syscall(libc::SYS_clone3, null, 0) != -1 || errno() != libc::ENOSYS {
                failures |= 8;
            }
            failures
        }
    }

    #[test]
    fn runtime_default_blocks_keyctl_and_user_namespaces_in_a_real_process() {
        // Built before forking: the child of a multi-threaded test process must not allocate.
        let program = runtime_default_program(&default_caps());
        // SAFETY: the child only makes raw syscalls and leaves with _exit.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = probe_in_child(&program);
                // SAFETY: leaves without running the parent's atexit handlers or destructors.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let status = waitpid(child, None).unwrap();
                let WaitStatus::Exited(_, code) = status else {
                    panic!("the probe did not exit normally: {status:?}");
                };
                let mut problems = Vec::new();
                if code == 64 {
                    problems.push("prctl(PR_SET_NO_NEW_PRIVS) failed");
                }
                if code == 65 {
                    problems.push("install failed");
                }
                if code < 64 {
                    for (bit, what) in [
                        (1, "keyctl did not fail with EPERM"),
                        (2, "unshare(CLONE_NEWUSER) did not fail with EPERM"),
                        (4, "getpid failed"),
                        (8, "clone3 did not fail with ENOSYS"),
                    ] {
                        if code & bit != 0 {
                            problems.push(what);
                        }
                    }
                }
                assert!(problems.is_empty(), "{problems:?}");
            }
        }
    }
}
