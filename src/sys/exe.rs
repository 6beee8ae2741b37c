//! The layerlet binary that helpers (monitors, sandbox, exec) run from: a copy made once per
//! binary version and exposed through a read-only bind mount, so a container process that
//! reaches a helper's /proc/PID/exe cannot overwrite layerlet (CVE-2019-5736). Helpers are
//! also made non-dumpable, which keeps /proc/PID/exe closed to container processes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::fs::{unique_temp_name, FsError};
use super::lock::{FileLock, LockMode};

#[derive(Debug, thiserror::Error)]
pub enum ExeError {
    #[error("find the layerlet binary: {0}")]
    Current(#[source] std::io::Error),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] super::lock::LockError),
    #[error(transparent)]
    Unmount(#[from] super::mount::MountError),
    #[error("make {path} read-only: {source}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Where read-only copies live: tmpfs, cleared by a reboot, shared by every data root.
pub const SEALED_DIR: &str = "/run/layerlet-exe";

fn is_mount_point(path: &Path) -> bool {
    super::mount::mounts_under(path).iter().any(|m| m == path)
}

/// The read-only copy of the running binary, made on first use.
pub fn sealed_exe() -> Result<PathBuf, ExeError> {
    // /proc/self/exe reaches the running binary even when its file was replaced meanwhile.
    sealed_copy_of(Path::new("/proc/self/exe"), Path::new(SEALED_DIR))
}

/// The name of the monitor binary, installed beside layerlet.
pub const MONITOR_NAME: &str = "layerlet-monitor";

/// Names the sources both binaries were built from (see build.rs), so the agent never runs a
/// monitor from another build beside it (say, an upgrade that replaced layerlet alone).
pub const SOURCE_STAMP: &str =
    concat!("layerlet-source-stamp:", env!("LAYERLET_SOURCE_STAMP"), ";");

/// The read-only copy of the monitor binary beside the running layerlet, made on first use;
/// None where there is none, or where it was built from other sources (then monitors run as
/// `layerlet __monitor`, which weighs more but works the same).
pub fn sealed_monitor() -> Result<Option<PathBuf>, ExeError> {
    let running = std::fs::read_link("/proc/self/exe").map_err(ExeError::Current)?;
    let Some(candidate) = running.parent().map(|dir| dir.join(MONITOR_NAME)) else {
        return Ok(None);
    };
    if !candidate.is_file() {
        return Ok(None);
    }
    let sealed = sealed_copy_named(
        &candidate,
        Path::new(SEALED_DIR),
        MONITOR_NAME,
        Some(SOURCE_STAMP),
    )?;
    if sealed.is_none() {
        tracing::warn!(
            monitor = %candidate.display(),
            "this monitor binary was built from other sources than layerlet; monitors run as `layerlet __monitor` (install both binaries of one build)"
        );
    }
    Ok(sealed)
}

/// Whether the file at `path` holds `stamp`.
fn contains(path: &Path, stamp: &str) -> Result<bool, ExeError> {
    let bytes = std::fs::read(path).map_err(|e| FsError::io("read", path, e))?;
    let stamp = stamp.as_bytes();
    Ok(bytes.windows(stamp.len()).any(|w| w == stamp))
}

/// Where the sealed copy of `exe` (named `name`) lives under `dir`.
fn sealed_path(exe: &Path, dir: &Path, name: &str) -> Result<PathBuf, ExeError> {
    let meta = std::fs::metadata(exe).map_err(|e| FsError::io("stat", exe, e))?;
    let key = format!(
        "{:x}-{:x}-{:x}-{:x}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime()
    );
    Ok(dir.join(key).join(name))
}

pub fn sealed_copy_of(exe: &Path, dir: &Path) -> Result<PathBuf, ExeError> {
    // Without a stamp to match, every copy is taken: None does not come back.
    sealed_copy_named(exe, dir, "layerlet", None)?.ok_or_else(|| {
        ExeError::Current(std::io::Error::other(format!(
            "no sealed copy of {} was made",
            exe.display()
        )))
    })
}

/// The sealed copy of `exe`, named `name`; None when `stamp` is given and the copy does not
/// carry it (checked on the copy, so a file replaced meanwhile cannot slip through).
fn sealed_copy_named(
    exe: &Path,
    dir: &Path,
    name: &str,
    stamp: Option<&str>,
) -> Result<Option<PathBuf>, ExeError> {
    let target = sealed_path(exe, dir, name)?;
    if is_mount_point(&target) {
        return Ok(Some(target));
    }
    let key_dir = target.parent().unwrap_or(dir).to_path_buf();
    let key = key_dir
        .file_name()
        .map(|k| k.to_string_lossy().into_owned())
        .unwrap_or_default();
    super::fs::create_private_dir(&dir.join(&key))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .map_err(|e| FsError::io("chmod", dir, e))?;
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o711))
        .map_err(|e| FsError::io("chmod", dir.join(&key), e))?;
    let _lock = FileLock::acquire(&dir.join(format!("{key}.lock")), LockMode::Exclusive)?;
    if is_mount_point(&target) {
        return Ok(Some(target));
    }
    if !target.exists() {
        let tmp = dir.join(&key).join(unique_temp_name(".copy-"));
        std::fs::copy(exe, &tmp).map_err(|e| FsError::io("copy", &tmp, e))?;
        if let Some(stamp) = stamp {
            if !contains(&tmp, stamp)? {
                let _ = std::fs::remove_file(&tmp);
                return Ok(None);
            }
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o555))
            .map_err(|e| FsError::io("chmod", &tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| FsError::io("rename", &target, e))?;
    }
    let err = |source| ExeError::Mount {
        path: target.clone(),
        source,
    };
    mount(
        Some(&target),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(err)?;
    mount(
        None::<&str>,
        &target,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(err)?;
    Ok(Some(target))
}

/// A copy younger than this may be in the middle of being made and used by a CLI call.
const PRUNE_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the sealed copies of other layerlet versions that no process runs from: every
/// upgrade (and every rebuild, in development) leaves one behind, tens of MB each. Returns
/// the copies removed. The running binary's copies (layerlet and its monitor) stay.
pub fn prune_sealed_copies() -> Result<Vec<PathBuf>, ExeError> {
    let mut keep = vec![sealed_exe()?];
    keep.extend(sealed_monitor()?);
    prune_sealed_copies_in(Path::new(SEALED_DIR), &keep, PRUNE_MIN_AGE)
}

pub fn prune_sealed_copies_in(
    dir: &Path,
    keep: &[PathBuf],
    min_age: std::time::Duration,
) -> Result<Vec<PathBuf>, ExeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::io("read directory", dir, e).into()),
    };
    let in_use = executables_in_use();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let key_dir = entry.path();
        let copy = [MONITOR_NAME, "layerlet"]
            .map(|name| key_dir.join(name))
            .into_iter()
            .find(|c| c.exists())
            .unwrap_or_else(|| key_dir.join("layerlet"));
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !is_dir || keep.contains(&copy) || in_use.contains(&copy) {
            continue;
        }
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < min_age);
        if young {
            continue;
        }
        let mut lock_name = entry.file_name();
        lock_name.push(".lock");
        let lock_path = dir.join(lock_name);
        let Ok(_lock) = FileLock::try_acquire(&lock_path, LockMode::Exclusive) else {
            continue; // being made right now
        };
        let gone = (|| -> Result<(), ExeError> {
            while is_mount_point(&copy) {
                super::mount::unmount(&copy)?;
            }
            Ok(super::fs::remove_tree(&key_dir)?)
        })();
        match gone {
            Ok(()) => {
                let _ = std::fs::remove_file(&lock_path);
                removed.push(copy);
            }
            // One copy that will not go (something else mounted there) must not stop the
            // others, nor the image GC that prunes them.
            Err(e) => {
                tracing::warn!(copy = %key_dir.display(), error = %e, "a sealed copy could not be removed; it is left")
            }
        }
    }
    Ok(removed)
}

/// The executables of every live process (`/proc/PID/exe`).
fn executables_in_use() -> std::collections::HashSet<PathBuf> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    procs
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_link(e.path().join("exe")).ok())
        .collect()
}

/// Makes the calling process non-dumpable: its /proc/PID files, exe included, are then
/// reachable only with CAP_SYS_PTRACE.
pub fn make_non_dumpable() {
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_copy_is_read_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, b"#!/bin/sh\necho ok\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let sealed_dir = dir.path().join("sealed");
        let sealed = sealed_copy_of(&exe, &sealed_dir).unwrap();
        assert_eq!(
            std::fs::read(&sealed).unwrap(),
            std::fs::read(&exe).unwrap()
        );
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&sealed)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
        assert_eq!(sealed_copy_of(&exe, &sealed_dir).unwrap(), sealed);
        crate::sys::mount::unmount(&sealed).unwrap();
    }

    #[test]
    fn copies_of_other_versions_nobody_runs_are_pruned_and_the_kept_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let sealed_dir = dir.path().join("sealed");
        let mut copies = Vec::new();
        for version in ["one", "two"] {
            let exe = dir.path().join(version);
            std::fs::write(&exe, format!("#!/bin/sh\necho {version}\n")).unwrap();
            copies.push(sealed_copy_of(&exe, &sealed_dir).unwrap());
        }
        // Too young: a CLI call may be about to run it.
        let removed = prune_sealed_copies_in(
            &sealed_dir,
            std::slice::from_ref(&copies[1]),
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        assert!(removed.is_empty());
        let removed = prune_sealed_copies_in(
            &sealed_dir,
            std::slice::from_ref(&copies[1]),
            std::time::Duration::ZERO,
        )
        .unwrap();
        assert_eq!(removed, vec![copies[0].clone()]);
        assert!(!copies[0].parent().unwrap().exists());
        assert!(!super::super::mount::mounts_under(&sealed_dir).contains(&copies[0]));
        assert!(is_mount_point(&copies[1]));
        crate::sys::mount::unmount(&copies[1]).unwrap();
    }
}
