//! The CRI log record and what describes it: streams, rotation settings, errors.

use std::io;
use std::path::PathBuf;

/// Longest text of one record; longer lines become `P` records (containerd's
/// `max_container_log_line_size` default).
pub const MAX_LINE_SIZE: usize = 16 * 1024;
/// Default size at which `name.log` rotates (kubelet's `containerLogMaxSize`).
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default number of files kept, the current one included (kubelet's `containerLogMaxFiles`).
pub const DEFAULT_MAX_FILES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("opening log file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing log file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("rotating log file {path}: {op} {target}: {source}")]
    Rotate {
        path: PathBuf,
        op: &'static str,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading log file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("log file {path}: max_files must be at least 1 (the current file)")]
    InvalidRotation { path: PathBuf },
}

/// Which output of the container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub fn parse(s: &[u8]) -> Option<Stream> {
        match s {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Size-based rotation: `max_bytes` per file, `max_files` files in total (current included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    pub max_bytes: u64,
    pub max_files: usize,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_bytes: DEFAULT_MAX_BYTES,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// One parsed record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub time: String,
    pub stream: Stream,
    pub partial: bool,
    /// The record's text, without the terminating newline.
    pub text: Vec<u8>,
}
