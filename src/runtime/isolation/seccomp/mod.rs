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

mod error;
mod filter;
mod localhost;
mod runtime_default;
mod syscalls;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use seccompiler::BpfProgram;
use serde::{Deserialize, Serialize};

pub use error::SeccompError;
use filter::*;
use localhost::*;
use runtime_default::*;

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

#[cfg(test)]
mod tests;
