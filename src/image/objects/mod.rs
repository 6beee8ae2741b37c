//! File-level sharing: every regular file of an unpacked layer is kept once, in
//! `ROOT/objects/<aa>/<key>`, and layer directories hold hard links to these objects, so
//! overlay mounts work as before while two layers with the same file use one inode (and one
//! page cache). The key covers content and visible metadata (see `key`).
//!
//! An object is only ever published (linked under `objects/`) after the layer that wrote it
//! was made durable with `syncfs`, so no object can be half-written; a pull that finds an
//! object links it instead of writing the file. Objects are never opened for writing once
//! published: overlayfs copies a lower file up before a container changes it. GC removes
//! objects whose only link is their own (`st_nlink == 1`) while holding the store's exclusive
//! GC lock, which every pull holds shared.

pub mod key;
pub mod usage;
pub mod verify;

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{linkat, LinkatFlags};

pub use key::{FileMeta, ObjectKey};

/// Where the objects of the data root `root` live.
pub fn objects_dir(root: &Path) -> PathBuf {
    root.join("objects")
}

/// Extra copies tried for one key once earlier ones are full; past this a file stays private.
const MAX_COPIES: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object store {path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(op: &'static str, path: &Path, e: impl Into<std::io::Error>) -> ObjectError {
    ObjectError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// What a lookup found for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The object is now hard-linked at the asked name.
    Linked,
    /// No object with room: the caller writes the file and may publish it as copy `n`.
    Missing(u32),
    /// Every copy is full: the file stays private to its layer.
    Full,
}

/// Where the object for a key is, or may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Copy n exists and can take another link.
    Room(u32),
    /// Copy n does not exist (earlier ones are full).
    Free(u32),
    Full,
}

/// A file a layer wrote that becomes an object once the layer is durable.
#[derive(Debug, Clone)]
pub struct PendingObject {
    /// Path inside the layer directory.
    pub rel: PathBuf,
    pub key: ObjectKey,
    pub copy: u32,
    /// The inode written: a later entry of the same layer may have replaced the path.
    pub ino: u64,
}

/// The directory of objects and the link limit of its filesystem.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    dir: PathBuf,
    max_links: u64,
    /// Set when `max_links` is below what the filesystem enforces (tests): links are then
    /// counted before linking instead of left to the kernel's EMLINK.
    count_links: bool,
}

impl ObjectStore {
    /// The object store under `root`, or None when its filesystem cannot hard-link files
    /// (or allows too few links to share anything): layers are then stored as before.
    pub fn open(root: &Path) -> Result<Option<Self>, ObjectError> {
        let dir = objects_dir(root);
        crate::sys::fs::create_private_dir(&dir).map_err(|e| ObjectError::Io {
            op: "create directory",
            path: dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let link_max = nix::unistd::pathconf(&dir, nix::unistd::PathconfVar::LINK_MAX)
            .ok()
            .flatten()
            .map(|n| n.max(0) as u64)
            .unwrap_or(u64::from(u32::MAX));
        if link_max < 3 || !hard_links_work(&dir)? {
            tracing::info!(dir = %dir.display(), "filesystem without usable hard links: file-level sharing off");
            return Ok(None);
        }
        Ok(Some(ObjectStore {
            dir,
            max_links: link_max,
            count_links: false,
        }))
    }

    /// The objects in `dir` as they are, for collecting them: no probe, no link limit.
    pub fn at(dir: &Path) -> Self {
        ObjectStore {
            dir: dir.to_path_buf(),
            max_links: u64::from(u32::MAX),
            count_links: false,
        }
    }

    /// Lowers the link limit (tests of the limit without 65000 links).
    pub fn with_max_links(mut self, max_links: u64) -> Self {
        self.max_links = max_links.max(2);
        self.count_links = true;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &ObjectKey, copy: u32) -> PathBuf {
        self.dir.join(key.fan_out()).join(key.file_name(copy))
    }

    /// Where a file with `key` stands: an object with a link to spare, the first free name,
    /// or every copy full.
    pub fn find(&self, key: &ObjectKey) -> Result<Slot, ObjectError> {
        for copy in 0..MAX_COPIES {
            let path = self.path(key, copy);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() && m.nlink() < self.max_links => return Ok(Slot::Room(copy)),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Slot::Free(copy)),
                Err(e) => return Err(io_err("stat object", &path, e)),
            }
        }
        Ok(Slot::Full)
    }

    /// Hard-links object `copy` of `key` as `name` in `dir`; false when it cannot take
    /// another link after all (another pull took the last one) or `name` exists.
    pub fn link(
        &self,
        key: &ObjectKey,
        copy: u32,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<bool, ObjectError> {
        let path = self.path(key, copy);
        match link_as(&path, dir, name) {
            Ok(()) => Ok(true),
            Err(Errno::EMLINK) | Err(Errno::ENOENT) | Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(io_err("link object", &path, e)),
        }
    }

    /// Links the object for `key` as `name` in `dir` when there is one with room.
    pub fn link_existing(
        &self,
        key: &ObjectKey,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<Lookup, ObjectError> {
        if self.count_links {
            return Ok(match self.find(key)? {
                Slot::Room(copy) if self.link(key, copy, dir, name)? => Lookup::Linked,
                Slot::Room(_) | Slot::Full => Lookup::Full,
                Slot::Free(copy) => Lookup::Missing(copy),
            });
        }
        // One linkat per file the store has, no stat first: the kernel says when an
        // object is missing (ENOENT) or full (EMLINK).
        for copy in 0..MAX_COPIES {
            let path = self.path(key, copy);
            match link_as(&path, dir, name) {
                Ok(()) => return Ok(Lookup::Linked),
                Err(Errno::ENOENT) => return Ok(Lookup::Missing(copy)),
                Err(Errno::EMLINK) => continue,
                Err(e) => return Err(io_err("link object", &path, e)),
            }
        }
        Ok(Lookup::Full)
    }

    /// Links the durable files of a layer (`layer` is made durable already) into the store.
    /// An object another pull published meanwhile wins; this layer's copy stays private.
    /// Returns how many objects were published.
    pub fn publish(&self, layer: &Path, pending: &[PendingObject]) -> Result<u64, ObjectError> {
        let mut published = 0;
        for p in pending {
            let file = layer.join(&p.rel);
            match std::fs::symlink_metadata(&file) {
                Ok(m) if m.is_file() && m.ino() == p.ino => {}
                _ => continue,
            }
            let target = self.path(&p.key, p.copy);
            let mut attempt = linkat(None, &file, None, &target, LinkatFlags::empty());
            if attempt == Err(Errno::ENOENT) {
                if let Some(fan) = target.parent() {
                    match std::fs::create_dir(fan) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_err("create directory", fan, e)),
                    }
                }
                attempt = linkat(None, &file, None, &target, LinkatFlags::empty());
            }
            match attempt {
                Ok(()) => published += 1,
                Err(Errno::EEXIST) | Err(Errno::EMLINK) => {}
                Err(e) => return Err(io_err("publish object", &target, e)),
            }
        }
        Ok(published)
    }

    /// Removes every object no layer links. The caller holds the exclusive GC lock, so no
    /// pull is between finding an object and linking it.
    pub fn sweep(&self) -> Result<SweepReport, ObjectError> {
        let mut report = SweepReport::default();
        for fan in read_dir(&self.dir)? {
            if !fan.is_dir() {
                continue;
            }
            for object in read_dir(&fan)? {
                let meta = match std::fs::symlink_metadata(&object) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("stat object", &object, e)),
                };
                if meta.is_dir() || meta.nlink() > 1 {
                    continue;
                }
                std::fs::remove_file(&object).map_err(|e| io_err("remove object", &object, e))?;
                report.objects_removed += 1;
                report.bytes_freed += meta.size();
            }
        }
        Ok(report)
    }
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    pub objects_removed: u64,
    pub bytes_freed: u64,
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, ObjectError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", dir, e)),
    };
    entries
        .map(|e| {
            e.map(|e| e.path())
                .map_err(|e| io_err("read directory", dir, e))
        })
        .collect()
}

/// Tries one hard link in `dir`: FUSE and some network filesystems refuse them.
fn hard_links_work(dir: &Path) -> Result<bool, ObjectError> {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let link = dir.join(format!(".probe-{}-link", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::fs::write(&probe, b"").map_err(|e| io_err("create probe", &probe, e))?;
    let works = std::fs::hard_link(&probe, &link).is_ok();
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&probe);
    Ok(works)
}

/// A hard link to `object` named `name` in `dir`.
fn link_as(object: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<()> {
    linkat(
        None,
        object.as_os_str(),
        Some(dir.as_raw_fd()),
        name,
        LinkatFlags::empty(),
    )
}

#[cfg(test)]
mod tests;
