//! Advisory file locks (flock) shared by every layerlet process on one data root: the agent,
//! CLI calls and monitors. The kernel drops them when a holder dies, so a crash never leaves a
//! lock behind.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("open lock file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{path} is held by another process")]
    WouldBlock { path: PathBuf },
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

fn open_lock_file(path: &Path) -> Result<File, LockError> {
    // O_CLOEXEC is std's default: a container or monitor never inherits the lock.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_path_buf(),
            source,
        })
}

impl FileLock {
    /// Blocks until the lock is held.
    pub fn acquire(path: &Path, mode: LockMode) -> Result<Self, LockError> {
        let file = open_lock_file(path)?;
        let arg = match mode {
            LockMode::Shared => FlockArg::LockShared,
            LockMode::Exclusive => FlockArg::LockExclusive,
        };
        let lock = Flock::lock(file, arg).map_err(|(_, source)| LockError::Lock {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FileLock { _lock: lock })
    }

    /// Takes the lock only if nobody holds a conflicting one.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Self, LockError> {
        let file = open_lock_file(path)?;
        let arg = match mode {
            LockMode::Shared => FlockArg::LockSharedNonblock,
            LockMode::Exclusive => FlockArg::LockExclusiveNonblock,
        };
        match Flock::lock(file, arg) {
            Ok(lock) => Ok(FileLock { _lock: lock }),
            Err((_, nix::Error::EWOULDBLOCK)) => Err(LockError::WouldBlock {
                path: path.to_path_buf(),
            }),
            Err((_, source)) => Err(LockError::Lock {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}
