//! Why a seccomp profile could not be loaded, compiled or installed.

use std::io;
use std::path::PathBuf;

use seccompiler::BackendError;

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
