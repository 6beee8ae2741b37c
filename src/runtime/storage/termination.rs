//! terminationMessagePath / terminationMessagePolicy, as kubelet does them: a file of the
//! container's own data directory is bind-mounted at the path (so /dev/termination-log works
//! although /dev is a tmpfs of the container's, and nothing in the image can redirect the read),
//! and when the container exits its monitor reads it, capped at 4096 bytes. With
//! FallbackToLogsOnError an empty file of a failed container gives the log's tail instead.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pod::spec::{ContainerSpec, TerminationMessagePolicy};
use crate::runtime::spec::mounts::{BindMount, Propagation};
use crate::sys::fs::FsError;

/// Kubelet's cap on a termination message.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// FallbackToLogsOnError takes at most this much of the log's end...
pub const MAX_LOG_BYTES: usize = 2048;
/// ...and at most this many lines.
pub const MAX_LOG_LINES: usize = 80;

const FILE_NAME: &str = "termination-log";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminationMessage {
    /// The host file mounted at the container's terminationMessagePath.
    pub host_file: PathBuf,
    pub fallback_to_logs: bool,
}

/// Creates the (empty, world-writable: any container user may write it) host file in the
/// container's data directory and returns the mount and the plan's part. None when the
/// container has no terminationMessagePath.
pub fn prepare(
    container: &ContainerSpec,
    data_dir: &Path,
) -> Result<Option<(BindMount, TerminationMessage)>, FsError> {
    if container.termination_message_path.is_empty() {
        return Ok(None);
    }
    use std::os::unix::fs::PermissionsExt;
    let host_file = data_dir.join(FILE_NAME);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&host_file)
        .map_err(|e| FsError::io("create", &host_file, e))?;
    std::fs::set_permissions(&host_file, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| FsError::io("chmod", &host_file, e))?;
    let mount = BindMount {
        source: host_file.clone(),
        destination: container.termination_message_path.clone(),
        read_only: false,
        directory: false,
        propagation: Propagation::Private,
    };
    let plan = TerminationMessage {
        host_file,
        fallback_to_logs: container.termination_message_policy
            == TerminationMessagePolicy::FallbackToLogsOnError,
    };
    Ok(Some((mount, plan)))
}

/// The message of a container that exited with `exit_code`; `log_tail` gives the log's
/// lines (called only for the fallback).
pub fn read(
    plan: &TerminationMessage,
    exit_code: i32,
    log_tail: impl FnOnce() -> Vec<Vec<u8>>,
) -> Option<String> {
    let from_file = read_capped(&plan.host_file).unwrap_or_default();
    if !from_file.is_empty() {
        return Some(String::from_utf8_lossy(&from_file).into_owned());
    }
    if plan.fallback_to_logs && exit_code != 0 {
        let tail = tail_of(&log_tail());
        return (!tail.is_empty()).then(|| String::from_utf8_lossy(&tail).into_owned());
    }
    None
}

/// At most [`MAX_MESSAGE_BYTES`] of a regular file, never through a symlink.
fn read_capped(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut out = Vec::new();
    file.take(MAX_MESSAGE_BYTES as u64)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// The last [`MAX_LOG_LINES`] lines, then at most the last [`MAX_LOG_BYTES`] of them.
pub fn tail_of(lines: &[Vec<u8>]) -> Vec<u8> {
    let start = lines.len().saturating_sub(MAX_LOG_LINES);
    let mut out = Vec::new();
    for line in &lines[start..] {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    if out.len() > MAX_LOG_BYTES {
        out.drain(..out.len() - MAX_LOG_BYTES);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(dir: &Path, fallback: bool) -> TerminationMessage {
        TerminationMessage {
            host_file: dir.join(FILE_NAME),
            fallback_to_logs: fallback,
        }
    }

    fn lines(n: usize, width: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{i:0width$}").into_bytes())
            .collect()
    }

    #[test]
    fn the_file_wins_and_is_capped_at_4096_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "x".repeat(5000)).unwrap();
        let m = read(&plan(dir.path(), true), 1, || panic!("no log needed")).unwrap();
        assert_eq!(m.len(), 4096);
    }

    #[test]
    fn an_empty_file_falls_back_to_the_log_only_on_failure_with_that_policy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "").unwrap();
        let log = || vec![b"first".to_vec(), b"last".to_vec()];
        assert_eq!(
            read(&plan(dir.path(), true), 2, log).as_deref(),
            Some("first\nlast\n")
        );
        assert_eq!(read(&plan(dir.path(), true), 0, log), None);
        assert_eq!(read(&plan(dir.path(), false), 2, log), None);
    }

    #[test]
    fn the_log_tail_keeps_80_lines_and_2048_bytes() {
        let t = tail_of(&lines(100, 3));
        assert_eq!(t.len(), 80 * 4);
        assert!(t.starts_with(b"020\n") && t.ends_with(b"099\n"));
        let t = tail_of(&lines(50, 99));
        assert_eq!(t.len(), 2048);
        assert!(t.ends_with(&[b"0".repeat(97), b"49\n".to_vec()].concat()));
    }

    #[test]
    fn a_symlink_in_place_of_the_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "host data").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(read(&plan(dir.path(), false), 1, Vec::new), None);
    }
}
