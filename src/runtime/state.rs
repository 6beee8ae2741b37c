//! A container's lifecycle: the state machine and the records the monitor writes atomically.
//!
//! created (rootfs ready, no process) -> running (the process was executed) -> exited (exit
//! code, reason and finish time kept). Illegal transitions are errors, never panics.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sys::fs::{replace_file, FsError};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {container} is {status}; cannot {action} it{hint}")]
    IllegalTransition {
        container: String,
        status: Status,
        action: &'static str,
        hint: &'static str,
    },
    #[error("container record {path} is unreadable: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Fs(#[from] FsError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        })
    }
}

/// What may be done to a container in each status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Delete,
    Exec,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Delete => "delete",
            Action::Exec => "exec into",
        }
    }
}

/// Whether `action` may proceed, is a no-op (already done), or is illegal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    AlreadyDone,
}

pub fn check(container: &str, status: Status, action: Action) -> Result<Verdict, StateError> {
    let illegal = |hint: &'static str| StateError::IllegalTransition {
        container: container.to_string(),
        status,
        action: action.verb(),
        hint,
    };
    match (status, action) {
        (Status::Created, Action::Start) => Ok(Verdict::Proceed),
        (Status::Running, Action::Start) => Err(illegal(" (it is already running)")),
        (Status::Exited, Action::Start) => Err(illegal(
            " (an exited container is replaced by a new one, not restarted)",
        )),
        (Status::Running, Action::Stop) => Ok(Verdict::Proceed),
        (Status::Created | Status::Exited, Action::Stop) => Ok(Verdict::AlreadyDone),
        (Status::Created | Status::Exited, Action::Delete) => Ok(Verdict::Proceed),
        (Status::Running, Action::Delete) => Err(illegal("; stop it first")),
        (Status::Running, Action::Exec) => Ok(Verdict::Proceed),
        (Status::Created | Status::Exited, Action::Exec) => Err(illegal(" (it is not running)")),
    }
}

/// Written by the monitor once the container's process has been executed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub pid: i32,
    /// Start time of the process in clock ticks since boot (/proc/PID/stat field 22): with the
    /// pid it names the process uniquely, so a recycled pid is never signalled.
    pub pid_start_ticks: u64,
    pub monitor_pid: i32,
    /// With monitor_pid, names the monitor process (0: not recorded).
    #[serde(default)]
    pub monitor_start_ticks: u64,
    pub started_at: String,
    /// The same instant in milliseconds since the epoch, for arithmetic (backoff, uptime).
    #[serde(default)]
    pub started_unix_ms: u64,
}

/// Written by the monitor when the container's process is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    pub exit_code: i32,
    /// Completed, Error, OOMKilled, StartError, ...
    pub reason: String,
    pub signal: Option<i32>,
    pub finished_at: String,
    #[serde(default)]
    pub finished_unix_ms: u64,
    /// Why the process could not start, when it could not.
    pub message: Option<String>,
}

/// The records of one container in its run directory.
#[derive(Debug, Clone)]
pub struct StateFiles {
    dir: PathBuf,
}

impl StateFiles {
    pub fn new(dir: &Path) -> Self {
        StateFiles {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn started_path(&self) -> PathBuf {
        self.dir.join("started.json")
    }

    fn exited_path(&self) -> PathBuf {
        self.dir.join("exited.json")
    }

    pub fn write_started(&self, started: &Started) -> Result<(), StateError> {
        write_json(&self.started_path(), started)
    }

    pub fn write_exited(&self, exited: &Exited) -> Result<(), StateError> {
        write_json(&self.exited_path(), exited)
    }

    pub fn started(&self) -> Result<Option<Started>, StateError> {
        read_json(&self.started_path())
    }

    pub fn exited(&self) -> Result<Option<Exited>, StateError> {
        read_json(&self.exited_path())
    }

    /// The status the records show. An exit record wins: it is written last.
    pub fn status(&self) -> Result<Status, StateError> {
        if self.exited()?.is_some() {
            Ok(Status::Exited)
        } else if self.started()?.is_some() {
            Ok(Status::Running)
        } else {
            Ok(Status::Created)
        }
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(replace_file(path, &bytes)?)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::io("read", path, e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_table_allows_only_legal_transitions() {
        use Action::*;
        use Status::*;
        let table = [
            (Created, Start, Some(Verdict::Proceed)),
            (Running, Start, None),
            (Exited, Start, None),
            (Created, Stop, Some(Verdict::AlreadyDone)),
            (Running, Stop, Some(Verdict::Proceed)),
            (Exited, Stop, Some(Verdict::AlreadyDone)),
            (Created, Delete, Some(Verdict::Proceed)),
            (Running, Delete, None),
            (Exited, Delete, Some(Verdict::Proceed)),
            (Running, Exec, Some(Verdict::Proceed)),
            (Exited, Exec, None),
        ];
        for (status, action, expected) in table {
            assert_eq!(
                check("c", status, action).ok(),
                expected,
                "{status} {action:?}"
            );
        }
        let err = check("web", Running, Delete).unwrap_err().to_string();
        assert_eq!(
            err,
            "container web is running; cannot delete it; stop it first"
        );
    }

    #[test]
    fn status_follows_the_records_and_the_exit_record_wins() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(dir.path());
        assert_eq!(files.status().unwrap(), Status::Created);
        files
            .write_started(&Started {
                pid: 42,
                pid_start_ticks: 7,
                monitor_pid: 41,
                monitor_start_ticks: 0,
                started_at: "t".into(),
                started_unix_ms: 1,
            })
            .unwrap();
        assert_eq!(files.status().unwrap(), Status::Running);
        files
            .write_exited(&Exited {
                exit_code: 3,
                reason: "Error".into(),
                signal: None,
                finished_at: "t".into(),
                finished_unix_ms: 2,
                message: None,
            })
            .unwrap();
        assert_eq!(files.status().unwrap(), Status::Exited);
        assert_eq!(files.exited().unwrap().unwrap().exit_code, 3);
    }
}
