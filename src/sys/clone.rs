//! clone3(2) with CLONE_INTO_CGROUP: a child born inside a cgroup v2 directory.
//!
//! Moving a process into a cgroup by writing `cgroup.procs` takes the kernel's global
//! cgroup_threadgroup_rwsem for writing; the first writer after a quiet spell waits for an RCU
//! grace period (6–16 ms measured on this kernel), and every fork on the machine waits with
//! it. A child cloned straight into its cgroup takes only the read side, as any fork does.

use std::os::fd::{AsRawFd, BorrowedFd};

/// `clone_args` of linux/sched.h up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks a child that starts in new namespaces (`namespace_flags`, CLONE_NEW*) and, when
/// `cgroup` is given, inside that cgroup v2 directory. The child runs `child`, told whether
/// it was born in `cgroup`, and exits with its return value. Returns the child's pid.
///
/// Where the kernel refuses the cgroup (EBADF: not a cgroup2 directory; EBUSY or EOPNOTSUPP:
/// it takes no processes; ENOSYS: no clone3) the child is forked without it, and must join
/// its cgroups itself.
///
/// # Safety
/// Fork semantics: the child is a copy of the calling thread only, so the caller must be
/// single-threaded (no lock may be held by a thread that does not exist in the child).
pub unsafe fn fork_into(
    namespace_flags: libc::c_int,
    cgroup: Option<BorrowedFd<'_>>,
    child: impl FnOnce(bool) -> i32,
) -> std::io::Result<i32> {
    // The CLONE_NEW* bits are positive c_int values.
    let flags = namespace_flags as u64;
    let mut born_in_cgroup = false;
    let mut rc = -1;
    if let Some(cgroup) = cgroup {
        rc = clone3(flags | CLONE_INTO_CGROUP, cgroup.as_raw_fd() as u64);
        born_in_cgroup = rc >= 0;
    }
    if rc < 0 {
        rc = clone3(flags, 0);
    }
    if rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        // SAFETY: clone(2) with no new stack and no CLONE_VM is fork with namespace flags; the
        // argument order past flags differs by architecture, but every one of them is zero.
        rc = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags | libc::SIGCHLD as u64,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
    }
    match rc {
        0 => {
            let code =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(born_in_cgroup)))
                    .unwrap_or(127);
            // SAFETY: the child never returns into the parent's code.
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => Ok(pid as i32),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// clone3 with fork semantics: no new stack and no CLONE_VM, so the child runs on its own
/// copy of this stack. Returns the raw result (0 in the child, the pid, or -1 with errno).
fn clone3(flags: u64, cgroup: u64) -> libc::c_long {
    let args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        cgroup,
        ..CloneArgs::default()
    };
    // SAFETY: args is a valid clone_args of the size given.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_directory_that_is_not_a_cgroup_is_refused_by_the_kernel() {
        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        let rc = clone3(CLONE_INTO_CGROUP, dir.as_fd().as_raw_fd() as u64);
        let err = std::io::Error::last_os_error();
        assert_eq!(rc, -1, "no child may be made");
        assert!(
            matches!(err.raw_os_error(), Some(libc::EBADF) | Some(libc::ENOSYS)),
            "{err}"
        );
    }

    #[test]
    fn a_child_refused_its_cgroup_is_still_forked_and_told_so() {
        let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
        // SAFETY: the child only returns a number (no allocation, no locks) before _exit.
        let pid =
            unsafe { fork_into(0, Some(dir.as_fd()), |in_cgroup| 40 + in_cgroup as i32) }.unwrap();
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(
            libc::WEXITSTATUS(status),
            40,
            "born outside the refused cgroup"
        );
    }
}
