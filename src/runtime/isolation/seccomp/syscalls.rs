//! Syscall names and numbers of the node's architecture, capabilities and kernel version.

use seccompiler::TargetArch;

use super::error::SeccompError;

#[cfg(target_arch = "x86_64")]
pub(super) fn native_arch() -> Result<TargetArch, SeccompError> {
    Ok(TargetArch::x86_64)
}
#[cfg(target_arch = "aarch64")]
pub(super) fn native_arch() -> Result<TargetArch, SeccompError> {
    Ok(TargetArch::aarch64)
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) fn native_arch() -> Result<TargetArch, SeccompError> {
    Err(SeccompError::UnsupportedArchitecture {
        arch: std::env::consts::ARCH,
    })
}

/// The architecture's name in Docker's `includes.arches` (Go's GOARCH).
#[cfg(target_arch = "x86_64")]
pub(super) const GO_ARCH: &str = "amd64";
#[cfg(target_arch = "aarch64")]
pub(super) const GO_ARCH: &str = "arm64";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) const GO_ARCH: &str = std::env::consts::ARCH;

/// The syscall's number on this architecture, None when it has no such syscall.
pub(super) fn native_number(name: &str) -> Option<libc::c_long> {
    LIBC_SYSCALLS
        .iter()
        .find(|(sys, _)| sys.strip_prefix("SYS_") == Some(name))
        .or_else(|| NEWER_SYSCALLS.iter().find(|(n, _)| *n == name))
        .map(|(_, nr)| *nr)
}

/// Whether `name` is a syscall of some other architecture (so a profile may name it).
pub(super) fn known_elsewhere(name: &str) -> bool {
    OTHER_ARCH_SYSCALLS.binary_search(&name).is_ok()
}

/// (`SYS_name`, number) pairs from a list of libc constant names.
macro_rules! libc_syscalls {
    ($($sys:ident)*) => { &[$((stringify!($sys), libc::$sys)),*] };
}

#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub(super) const LIBC_SYSCALLS: &[(&str, libc::c_long)] = libc_syscalls!(
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
pub(super) const NEWER_SYSCALLS: &[(&str, libc::c_long)] = &[
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
pub(super) const LIBC_SYSCALLS: &[(&str, libc::c_long)] = libc_syscalls!(
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
pub(super) const NEWER_SYSCALLS: &[(&str, libc::c_long)] = &[
    ("io_pgetevents", 292), ("fchmodat2", 452),
    ("cachestat", 451), ("map_shadow_stack", 453), ("futex_wake", 454), ("futex_wait", 455),
    ("futex_requeue", 456), ("statmount", 457), ("listmount", 458), ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460), ("lsm_list_modules", 461), ("setxattrat", 463),
    ("getxattrat", 464), ("listxattrat", 465), ("removexattrat", 466), ("open_tree_attr", 467),
    ("file_getattr", 468), ("file_setattr", 469),
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) const LIBC_SYSCALLS: &[(&str, libc::c_long)] = &[];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) const NEWER_SYSCALLS: &[(&str, libc::c_long)] = &[];

/// Linux syscall names that exist on some architectures but not on both x86_64 and aarch64
/// (from the libc crate's and the kernel's tables), sorted. A profile naming one that this
/// node lacks is fine; a name in neither list is a typo.
#[rustfmt::skip]
pub(super) const OTHER_ARCH_SYSCALLS: &[&str] = &[
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
pub(super) fn has_capability(caps: &[String], cap: &str) -> bool {
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
pub(super) fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().filter(|m| !m.is_empty())?.parse().ok()?;
    Some((major, minor))
}

/// Whether the running kernel is at least `min`; false when its version is unknown, so a
/// rule that needs a newer kernel is left out.
pub(super) fn kernel_at_least(min: (u32, u32)) -> bool {
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
