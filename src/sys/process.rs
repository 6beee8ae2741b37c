//! Processes named safely: a pid plus its start time identifies one process, and a pidfd
//! keeps naming it after it exits, so a recycled pid is never signalled.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("pidfd_open({pid}): {source}")]
    PidfdOpen {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        pid: i32,
        signal: i32,
        #[source]
        source: std::io::Error,
    },
}

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or None when
/// the process does not exist.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A handle on one process that stays valid, and never names another, after it exits.
#[derive(Debug)]
pub struct PidFd {
    pid: i32,
    fd: OwnedFd,
}

impl PidFd {
    /// Opens `pid` only if it is still the process that started at `expected_ticks`.
    /// Returns None when that process is gone.
    pub fn open_checked(pid: i32, expected_ticks: u64) -> Result<Option<PidFd>, ProcessError> {
        // SAFETY: pidfd_open returns a new fd or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(None);
            }
            return Err(ProcessError::PidfdOpen { pid, source: e });
        }
        // SAFETY: raw is a fresh fd owned by nobody else (O_CLOEXEC is implied for pidfds).
        let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        // Checked after opening: from here on the fd pins this exact process.
        if start_ticks(pid) != Some(expected_ticks) {
            return Ok(None);
        }
        Ok(Some(PidFd { pid, fd }))
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal`; a process that already exited is not an error.
    pub fn signal(&self, signal: i32) -> Result<(), ProcessError> {
        // SAFETY: pidfd_send_signal on our fd with no siginfo.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(ProcessError::Signal {
                pid: self.pid,
                signal,
                source: e,
            });
        }
        Ok(())
    }

    /// Waits until the process exits or `timeout` passes; true when it exited.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc > 0 {
                return true;
            }
            if rc == 0 {
                return false;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_signals_its_process_and_sees_it_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let ticks = start_ticks(pid).unwrap();
        assert!(
            PidFd::open_checked(pid, ticks + 1).unwrap().is_none(),
            "a wrong start time is another process"
        );
        let fd = PidFd::open_checked(pid, ticks).unwrap().unwrap();
        assert!(!fd.wait_exit(Duration::from_millis(20)));
        fd.signal(libc::SIGKILL).unwrap();
        assert!(fd.wait_exit(Duration::from_secs(5)));
        child.wait().unwrap();
        fd.signal(libc::SIGKILL).unwrap();
    }
}
