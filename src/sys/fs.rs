//! Durable, atomic file operations.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FsError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FsError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The prefix of [`atomic_write`]'s temp files; the writer's pid follows it.
const WRITE_TEMP_PREFIX: &str = ".tmp-";

/// A name for a temporary sibling that no other process or thread will pick.
pub fn unique_temp_name(prefix: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}-{n}-{nanos:x}", std::process::id())
}

/// Writes `bytes` to `path` so that a reader sees either the old content or the new, never a
/// mix, and the new content survives a crash once this returns (temp + fsync + rename + fsync
/// of the directory).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_via_rename(path, bytes, true, 0o644)
}

/// [`atomic_write`] of a file only its owner may read (a private key).
pub fn atomic_write_private(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_via_rename(path, bytes, true, 0o600)
}

fn write_via_rename(path: &Path, bytes: &[u8], durable: bool, mode: u32) -> Result<(), FsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(unique_temp_name(WRITE_TEMP_PREFIX));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| FsError::io("create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| FsError::io("write", &tmp, e))?;
        if durable {
            file.sync_all().map_err(|e| FsError::io("fsync", &tmp, e))?;
        }
        fs::rename(&tmp, path).map_err(|e| FsError::io("rename", path, e))?;
        if durable {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes the temp files [`atomic_write`] left in `dir` when its process died before the
/// rename (kill -9, a crash), which nothing else would ever remove. A temp file whose writer
/// still lives is a write in flight and stays; so does one whose pid was reused since (left
/// for a later pass). Returns what was removed.
pub fn remove_dead_writers_temp_files(dir: &Path) -> Result<Vec<PathBuf>, FsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::io("read dir", dir, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FsError::io("read dir", dir, e))?;
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WRITE_TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // kill(0) would ask about our own process group, not a writer.
        let gone = pid > 0
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH);
        if !gone {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::io("remove", &path, e)),
        }
    }
    Ok(removed)
}

/// Replaces `path` with `bytes` atomically (temp file + rename) but without fsyncs: for
/// runtime state under the run root, which a reboot clears anyway. A crash of the writer
/// leaves the old file or the new one, never a mix; durability across power loss is not
/// needed for files that power loss makes meaningless (the containers they describe are gone).
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_via_rename(path, bytes, false, 0o644)
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub fn fsync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::io("fsync directory", dir, e))
}

/// Flushes every dirty inode of the filesystem holding `dir` in one call: one layer is made
/// durable at once instead of one fsync per file.
pub fn syncfs(dir: &Path) -> Result<(), FsError> {
    let file = File::open(dir).map_err(|e| FsError::io("open", dir, e))?;
    nix::unistd::syncfs(file.as_raw_fd())
        .map_err(|e| FsError::io("syncfs", dir, std::io::Error::from(e)))
}

/// Creates `dir` and its parents with mode 0700 where missing.
pub fn create_private_dir(dir: &Path) -> Result<(), FsError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| FsError::io("create directory", dir, e))
}

/// Apparent size of a tree as `du -sb` counts it: every entry's st_size (directories and
/// symlinks included), each inode once.
pub fn apparent_size(root: &Path) -> Result<u64, FsError> {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FsError::io("stat", &path, e)),
        };
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.size();
        if meta.is_dir() {
            let entries =
                fs::read_dir(&path).map_err(|e| FsError::io("read directory", &path, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| FsError::io("read directory", &path, e))?;
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

/// Removes a tree if it exists; a missing tree is not an error (removal is idempotent).
/// Refuses a tree with a mount point inside: removing it would reach into whatever is
/// mounted there (a volume, a host path).
pub fn remove_tree(path: &Path) -> Result<(), FsError> {
    if let Some(mounted) = crate::sys::mount::mounts_under(path).first() {
        return Err(FsError::io(
            "remove",
            path,
            std::io::Error::other(format!(
                "{} is still mounted; unmount it first",
                mounted.display()
            )),
        ));
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("stat", path, e)),
        Ok(meta) if meta.is_dir() => {
            fs::remove_dir_all(path).map_err(|e| FsError::io("remove directory", path, e))
        }
        Ok(_) => fs::remove_file(path).map_err(|e| FsError::io("remove", path, e)),
    }
}

/// Reads `rel` inside `root` as if `root` were `/` (openat2 RESOLVE_IN_ROOT): a symlink in an
/// image (`/etc/passwd -> /etc/shadow`) resolves inside the image, never on the host.
/// Returns None when the file does not exist.
pub fn read_in_root(root: &Path, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, FsError> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_IN_ROOT: u64 = 0x10;
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    let dir = File::open(root).map_err(|e| FsError::io("open", root, e))?;
    let name = std::ffi::CString::new(rel.trim_start_matches('/'))
        .map_err(|e| FsError::io("open", root.join(rel), std::io::Error::other(e)))?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 with a valid dirfd, path and open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::NotFound {
            return Ok(None);
        }
        return Err(FsError::io("open", root.join(rel), e));
    }
    // SAFETY: fd is fresh and owned.
    let file = unsafe { File::from_raw_fd(fd as i32) };
    let mut out = Vec::new();
    file.take(limit)
        .read_to_end(&mut out)
        .map_err(|e| FsError::io("read", root.join(rel), e))?;
    Ok(Some(out))
}

/// A random 256-bit identifier in hex, as container IDs are.
pub fn random_id() -> Result<String, FsError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| FsError::io("read", "/dev/urandom", e))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_temp_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let orphan = dir.path().join(format!("{WRITE_TEMP_PREFIX}{dead}-0-1f"));
        let in_flight = dir.path().join(unique_temp_name(WRITE_TEMP_PREFIX));
        let record = dir.path().join("pod.json");
        for f in [&orphan, &in_flight, &record] {
            std::fs::write(f, "{}").unwrap();
        }
        let removed = remove_dead_writers_temp_files(dir.path()).unwrap();
        assert_eq!(removed, vec![orphan.clone()]);
        assert!(!orphan.exists() && in_flight.exists() && record.exists());
        assert!(remove_dead_writers_temp_files(&dir.path().join("absent"))
            .unwrap()
            .is_empty());
    }
}
