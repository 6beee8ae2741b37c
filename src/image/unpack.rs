//! Safe extraction of one layer tar into overlay format.
//!
//! Every entry is created relative to a directory fd of the layer root, walking parent
//! components with `O_NOFOLLOW`, so no entry can create, change or follow a path outside the
//! layer: `..`, absolute names, writes through a symlink the same layer made, and hardlinks to
//! outside all fail with an error that names the entry. OCI whiteouts become overlay
//! whiteouts (0:0 character devices) and opaque markers become `trusted.overlay.opaque=y`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{
    fchmodat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{
    fchownat, linkat, symlinkat, unlinkat, FchownatFlags, Gid, LinkatFlags, Uid, UnlinkatFlags,
};
use tar::EntryType;

use super::objects::{ObjectKey, ObjectStore, PendingObject};

mod shared_file;
use shared_file::create_file;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
const COPY_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {entry:?} refused: {reason}")]
    Hostile { entry: String, reason: String },
    #[error("layer entry {entry:?}: {op}: {source}")]
    Io {
        entry: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the layer tar: {0}")]
    Tar(#[source] std::io::Error),
}

/// What an unpack left for the layer store to finish.
#[derive(Debug, Default)]
pub struct UnpackReport {
    /// Directories the layer implies without an entry of its own (the root is "" ): their
    /// mode and owner must come from the layers below.
    pub implied_dirs: BTreeSet<PathBuf>,
    pub entries: u64,
    /// Files written by this layer that become objects once it is durable.
    pub pending_objects: Vec<PendingObject>,
    /// Files linked to objects already in the store instead of written.
    pub objects_linked: u64,
    pub object_bytes_linked: u64,
}

fn hostile(entry: &str, reason: impl Into<String>) -> UnpackError {
    UnpackError::Hostile {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

fn io_err(entry: &str, op: &'static str, e: impl Into<std::io::Error>) -> UnpackError {
    UnpackError::Io {
        entry: entry.to_string(),
        op,
        source: e.into(),
    }
}

/// Splits a tar name into safe components: no `..`, not absolute; `.` and empty parts vanish.
pub fn safe_components(entry: &str, name: &[u8]) -> Result<Vec<OsString>, UnpackError> {
    if name.first() == Some(&b'/') {
        return Err(hostile(
            entry,
            "absolute path names are not allowed in a layer",
        ));
    }
    let mut parts = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(hostile(entry, "path goes outside the layer through '..'")),
            p => parts.push(OsString::from_vec(p.to_vec())),
        }
    }
    Ok(parts)
}

fn rel_path(parts: &[OsString]) -> PathBuf {
    parts.iter().collect()
}

struct DirMeta {
    rel: PathBuf,
    mtime: i64,
}

/// Unpacks the tar read from `tar_stream` into the empty directory `dest`.
/// With `objects`, regular files are shared through the object store.
pub fn unpack_layer<R: Read>(
    tar_stream: R,
    dest: &Path,
    objects: Option<&ObjectStore>,
) -> Result<UnpackReport, UnpackError> {
    let root = open_dir_path(dest).map_err(|e| io_err("", "open layer directory", e))?;
    let mut unpacker = Unpacker {
        root,
        dest: dest.to_path_buf(),
        cached_parent: None,
        report: UnpackReport::default(),
        dir_times: Vec::new(),
        buffer: vec![0u8; COPY_BUFFER],
        objects: objects.cloned(),
        pending: BTreeMap::new(),
        by_key: HashMap::new(),
    };
    unpacker.report.implied_dirs.insert(PathBuf::new());
    let mut archive = tar::Archive::new(tar_stream);
    let entries = archive.entries().map_err(UnpackError::Tar)?;
    for entry in entries {
        let entry = entry.map_err(UnpackError::Tar)?;
        unpacker.apply(entry)?;
    }
    unpacker.finish()
}

fn open_dir_path(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: fd is fresh and owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_child_dir(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    let fd = openat(
        Some(parent.as_raw_fd()),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: fd is fresh and owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

struct Unpacker {
    root: OwnedFd,
    dest: PathBuf,
    /// The parent directory of the previous entry: tar streams list siblings together.
    cached_parent: Option<(Vec<OsString>, OwnedFd)>,
    report: UnpackReport,
    dir_times: Vec<DirMeta>,
    buffer: Vec<u8>,
    /// None: every file private to its layer (sharing off or impossible).
    objects: Option<ObjectStore>,
    /// Files this layer wrote that are to become objects, by path; an entry that replaces
    /// a path (or a directory above it) drops it, so every path here still names the file
    /// that was hashed, through directories only.
    pending: BTreeMap<PathBuf, PendingObject>,
    /// The path of the pending file with each key: a second identical file of the layer is
    /// linked to it.
    by_key: HashMap<ObjectKey, PathBuf>,
}

impl Unpacker {
    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        self.report.entries += 1;
        let name_bytes = entry.path_bytes().into_owned();
        let entry_name = String::from_utf8_lossy(&name_bytes).into_owned();
        let parts = safe_components(&entry_name, &name_bytes)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let Some((file_name, parent_parts)) = parts.split_last() else {
            // The layer root itself ("./"): take its attributes, as a directory entry.
            if kind.is_dir() {
                self.report.implied_dirs.remove(Path::new(""));
                self.set_owner_mode(&entry_name, self.root.as_raw_fd(), None, &header, false)?;
                self.dir_times.push(DirMeta {
                    rel: PathBuf::new(),
                    mtime: header.mtime().unwrap_or(0) as i64,
                });
                return Ok(());
            }
            return Err(hostile(
                &entry_name,
                "a non-directory entry cannot replace the layer root",
            ));
        };
        let file_name_str = file_name.to_string_lossy();

        // OCI whiteouts.
        if file_name_str == OPAQUE_MARKER {
            let dir = self.parent_dir(&entry_name, parent_parts)?;
            return set_xattr_fd(&dir, "trusted.overlay.opaque", b"y")
                .map_err(|e| io_err(&entry_name, "mark directory opaque", e));
        }
        if let Some(hidden) = file_name_str.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(WHITEOUT_PREFIX) {
                // Other AUFS metadata (.wh..wh.plnk, ...): not content, skipped as containerd does.
                return Ok(());
            }
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(hostile(&entry_name, "whiteout names no file"));
            }
            let hidden = OsString::from_vec(file_name.as_bytes()[WHITEOUT_PREFIX.len()..].to_vec());
            let dir = self.parent_dir(&entry_name, parent_parts)?;
            self.remove_existing(&entry_name, &dir, &hidden, parent_parts)?;
            mknodat(
                Some(dir.as_raw_fd()),
                hidden.as_os_str(),
                SFlag::S_IFCHR,
                Mode::empty(),
                0,
            )
            .map_err(|e| io_err(&entry_name, "create overlay whiteout", e))?;
            return Ok(());
        }

        let dir = self.parent_dir(&entry_name, parent_parts)?;
        let rel = rel_path(&parts);
        let dir_fd = dir.as_raw_fd();
        match kind {
            EntryType::Directory => {
                match open_child_dir(dir.as_fd(), file_name) {
                    Ok(_) => {}
                    Err(Errno::ENOENT) => {
                        mkdirat(
                            Some(dir_fd),
                            file_name.as_os_str(),
                            Mode::from_bits_truncate(0o755),
                        )
                        .map_err(|e| io_err(&entry_name, "create directory", e))?;
                    }
                    Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => {
                        self.remove_existing(&entry_name, &dir, file_name, parent_parts)?;
                        mkdirat(
                            Some(dir_fd),
                            file_name.as_os_str(),
                            Mode::from_bits_truncate(0o755),
                        )
                        .map_err(|e| io_err(&entry_name, "create directory", e))?;
                    }
                    Err(e) => return Err(io_err(&entry_name, "open directory", e)),
                }
                self.report.implied_dirs.remove(&rel);
                self.set_owner_mode(&entry_name, dir_fd, Some(file_name), &header, false)?;
                self.set_xattrs(&entry_name, &mut entry, &rel)?;
                self.dir_times.push(DirMeta {
                    rel,
                    mtime: header.mtime().unwrap_or(0) as i64,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.remove_existing(&entry_name, &dir, file_name, parent_parts)?;
                let xattrs = entry_xattrs(&entry_name, &mut entry)?;
                // A POSIX ACL changes the mode the kernel shows from what the tar says, which
                // verification could not tell from damage: such files stay private.
                let has_acl = xattrs
                    .iter()
                    .any(|(k, _)| k.starts_with("system.posix_acl_"));
                let objects = match kind {
                    EntryType::GNUSparse => None,
                    _ if has_acl => None,
                    _ => self.objects.clone(),
                };
                match objects {
                    Some(objects) => self.shared_file(
                        &objects,
                        &entry_name,
                        &mut entry,
                        &dir,
                        file_name,
                        &rel,
                        &header,
                        xattrs,
                    )?,
                    None => {
                        let file = create_file(&entry_name, dir_fd, file_name)?;
                        self.copy_into(&entry_name, &mut entry, file, None)?;
                        self.set_file_meta(&entry_name, dir_fd, file_name, &header, &xattrs, &rel)?;
                    }
                }
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| hostile(&entry_name, "symlink without a target"))?
                    .into_owned();
                self.remove_existing(&entry_name, &dir, file_name, parent_parts)?;
                // The target is stored, never followed: a symlink to /etc is harmless in the
                // layer; writing through it is what parent_dir refuses.
                symlinkat(
                    OsStr::from_bytes(&target),
                    Some(dir_fd),
                    file_name.as_os_str(),
                )
                .map_err(|e| io_err(&entry_name, "create symlink", e))?;
                self.set_owner_mode(&entry_name, dir_fd, Some(file_name), &header, true)?;
                self.set_mtime(&entry_name, dir_fd, file_name, &header)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| hostile(&entry_name, "hardlink without a target"))?
                    .into_owned();
                let target_parts = safe_components(&entry_name, &target)?;
                let Some((target_name, target_parent)) = target_parts.split_last() else {
                    return Err(hostile(&entry_name, "hardlink to the layer root"));
                };
                let target_dir = self.existing_dir(&entry_name, target_parent)?;
                self.remove_existing(&entry_name, &dir, file_name, parent_parts)?;
                linkat(
                    Some(target_dir.as_raw_fd()),
                    target_name.as_os_str(),
                    Some(dir_fd),
                    file_name.as_os_str(),
                    LinkatFlags::empty(),
                )
                .map_err(|e| match e {
                    Errno::ENOENT => hostile(
                        &entry_name,
                        format!(
                            "hardlink target {:?} is not an earlier entry of this layer",
                            String::from_utf8_lossy(&target)
                        ),
                    ),
                    e => io_err(&entry_name, "create hardlink", e),
                })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                if kind == EntryType::Char && major == 0 && minor == 0 {
                    return Err(hostile(
                        &entry_name,
                        "a 0:0 character device would act as an overlay whiteout; layers express deletions with .wh. files",
                    ));
                }
                self.remove_existing(&entry_name, &dir, file_name, parent_parts)?;
                mknodat(
                    Some(dir_fd),
                    file_name.as_os_str(),
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
                )
                .map_err(|e| io_err(&entry_name, "create device node", e))?;
                self.set_owner_mode(&entry_name, dir_fd, Some(file_name), &header, false)?;
                self.set_xattrs(&entry_name, &mut entry, &rel)?;
                self.set_mtime(&entry_name, dir_fd, file_name, &header)?;
            }
            other => {
                return Err(hostile(
                    &entry_name,
                    format!("unsupported tar entry type {other:?}"),
                ))
            }
        }
        Ok(())
    }

    /// Opens (creating as implied directories where missing) the parent of an entry without
    /// following any symlink on the way.
    fn parent_dir(&mut self, entry: &str, parts: &[OsString]) -> Result<OwnedFd, UnpackError> {
        self.walk(entry, parts, true)
    }

    /// Opens an existing directory of this layer without following symlinks.
    fn existing_dir(&mut self, entry: &str, parts: &[OsString]) -> Result<OwnedFd, UnpackError> {
        self.walk(entry, parts, false)
    }

    fn walk(
        &mut self,
        entry: &str,
        parts: &[OsString],
        create: bool,
    ) -> Result<OwnedFd, UnpackError> {
        if let Some((cached, fd)) = &self.cached_parent {
            if cached.as_slice() == parts {
                return fd.try_clone().map_err(|e| io_err(entry, "dup", e));
            }
        }
        let mut current = self.root.try_clone().map_err(|e| io_err(entry, "dup", e))?;
        for (depth, part) in parts.iter().enumerate() {
            current = match open_child_dir(current.as_fd(), part) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    mkdirat(
                        Some(current.as_raw_fd()),
                        part.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                    .map_err(|e| io_err(entry, "create implied directory", e))?;
                    self.report.implied_dirs.insert(rel_path(&parts[..=depth]));
                    open_child_dir(current.as_fd(), part)
                        .map_err(|e| io_err(entry, "open implied directory", e))?
                }
                Err(Errno::ELOOP) => {
                    return Err(hostile(
                        entry,
                        format!(
                            "{} is a symlink; following it could leave the layer",
                            rel_path(&parts[..=depth]).display()
                        ),
                    ))
                }
                Err(Errno::ENOTDIR) => {
                    return Err(hostile(
                        entry,
                        format!(
                            "{} is not a directory",
                            rel_path(&parts[..=depth]).display()
                        ),
                    ))
                }
                Err(e) => return Err(io_err(entry, "open parent directory", e)),
            };
        }
        let keep = current.try_clone().map_err(|e| io_err(entry, "dup", e))?;
        self.cached_parent = Some((parts.to_vec(), keep));
        Ok(current)
    }

    /// Removes whatever an earlier entry of this layer put at `name`, so the later entry wins.
    fn remove_existing(
        &mut self,
        entry: &str,
        dir: &OwnedFd,
        name: &OsStr,
        parent_parts: &[OsString],
    ) -> Result<(), UnpackError> {
        match unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                if !self.pending.is_empty() {
                    let mut rel = rel_path(parent_parts);
                    rel.push(name);
                    self.pending.remove(&rel);
                }
                Ok(())
            }
            Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => {
                let mut rel = rel_path(parent_parts);
                rel.push(name);
                self.pending.retain(|p, _| !p.starts_with(&rel));
                let mut path = self.dest.clone();
                path.extend(parent_parts);
                path.push(name);
                // Parents were opened with O_NOFOLLOW above and std's remove_dir_all does not
                // follow symlinks, so this stays inside the layer.
                self.cached_parent = None;
                std::fs::remove_dir_all(&path).map_err(|e| io_err(entry, "replace directory", e))
            }
            Err(e) => Err(io_err(entry, "replace existing entry", e)),
        }
    }

    fn set_owner_mode(
        &self,
        entry: &str,
        dir_fd: i32,
        name: Option<&OsStr>,
        header: &tar::Header,
        is_symlink: bool,
    ) -> Result<(), UnpackError> {
        let uid = header.uid().map_err(UnpackError::Tar)?;
        let gid = header.gid().map_err(UnpackError::Tar)?;
        let uid =
            u32::try_from(uid).map_err(|_| hostile(entry, format!("uid {uid} out of range")))?;
        let gid =
            u32::try_from(gid).map_err(|_| hostile(entry, format!("gid {gid} out of range")))?;
        let name = name.unwrap_or(OsStr::new("."));
        fchownat(
            Some(dir_fd),
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            FchownatFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err(entry, "set owner", e))?;
        if !is_symlink {
            // After chown, which clears setuid/setgid: the bits from the tar are kept.
            let mode = header.mode().map_err(UnpackError::Tar)? & 0o7777;
            fchmodat(
                Some(dir_fd),
                name,
                Mode::from_bits_truncate(mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| io_err(entry, "set mode", e))?;
        }
        Ok(())
    }

    fn set_mtime(
        &self,
        entry: &str,
        dir_fd: i32,
        name: &OsStr,
        header: &tar::Header,
    ) -> Result<(), UnpackError> {
        let mtime = TimeSpec::new(header.mtime().unwrap_or(0) as i64, 0);
        utimensat(
            Some(dir_fd),
            name,
            &mtime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| io_err(entry, "set mtime", e))
    }

    fn set_xattrs<R: Read>(
        &self,
        entry_name: &str,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
    ) -> Result<(), UnpackError> {
        let xattrs = entry_xattrs(entry_name, entry)?;
        self.apply_xattrs(entry_name, &xattrs, rel)
    }

    fn apply_xattrs(
        &self,
        entry_name: &str,
        xattrs: &[(String, Vec<u8>)],
        rel: &Path,
    ) -> Result<(), UnpackError> {
        for (key, value) in xattrs {
            let path = self.dest.join(rel);
            set_xattr_path(&path, key, value).map_err(|e| io_err(entry_name, "set xattr", e))?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<UnpackReport, UnpackError> {
        self.report.pending_objects = std::mem::take(&mut self.pending).into_values().collect();
        // Directory mtimes last: creating children changes them. Deepest first.
        self.cached_parent = None;
        self.dir_times
            .sort_by_key(|d| std::cmp::Reverse(d.rel.components().count()));
        for dir in &self.dir_times {
            let t = TimeSpec::new(dir.mtime, 0);
            let path = self.dest.join(&dir.rel);
            utimensat(None, &path, &t, &t, UtimensatFlags::NoFollowSymlink)
                .map_err(|e| io_err(&dir.rel.to_string_lossy(), "set directory mtime", e))?;
        }
        Ok(self.report)
    }
}

/// The extended attributes a tar entry asks for, overlay's own left out: overlayfs would read
/// them as its metadata (whiteouts, redirects).
fn entry_xattrs<R: Read>(
    entry_name: &str,
    entry: &mut tar::Entry<'_, R>,
) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let mut xattrs = Vec::new();
    let Some(extensions) = entry.pax_extensions().map_err(UnpackError::Tar)? else {
        return Ok(xattrs);
    };
    for ext in extensions {
        let ext = ext.map_err(UnpackError::Tar)?;
        let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
            continue;
        };
        let key = String::from_utf8_lossy(key).into_owned();
        if key.starts_with(OVERLAY_XATTR_PREFIX) {
            tracing::debug!(entry = entry_name, xattr = key, "stripped overlay xattr");
            continue;
        }
        xattrs.push((key, ext.value_bytes().to_vec()));
    }
    Ok(xattrs)
}

fn set_xattr_fd(fd: &OwnedFd, key: &str, value: &[u8]) -> std::io::Result<()> {
    let key = CString::new(key).map_err(std::io::Error::other)?;
    // SAFETY: valid fd, NUL-terminated key, buffer with its length.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_xattr_path(path: &Path, key: &str, value: &[u8]) -> std::io::Result<()> {
    let key = CString::new(key).map_err(std::io::Error::other)?;
    let path = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: NUL-terminated strings and a buffer with its length.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Gives each implied directory of a freshly unpacked layer the mode and owner it has in the
/// nearest layer below (`lower_layers`, topmost first), or 0755 root:root where none has it,
/// so the merged view does not show /tmp as 0755 because a layer only added /tmp/x.
pub fn settle_implied_dirs(
    layer: &Path,
    implied: &BTreeSet<PathBuf>,
    lower_layers: &[PathBuf],
) -> Result<(), UnpackError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for rel in implied {
        let entry = rel.to_string_lossy();
        let path = layer.join(rel);
        // A later entry may have put a file where the directory was implied: its metadata is
        // its own (and may be an object other layers share).
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let source = lower_layers.iter().find_map(|lower| {
            std::fs::symlink_metadata(lower.join(rel))
                .ok()
                .filter(|m| m.is_dir())
        });
        let (mode, uid, gid) = source
            .map(|m| (m.permissions().mode() & 0o7777, m.uid(), m.gid()))
            .unwrap_or((0o755, 0, 0));
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
            .map_err(|e| io_err(&entry, "set implied directory owner", e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_err(&entry, "set implied directory mode", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_components_refuses_parent_and_absolute_names() {
        assert!(safe_components("x", b"../evil").is_err());
        assert!(safe_components("x", b"a/../../evil").is_err());
        assert!(safe_components("x", b"/etc/passwd").is_err());
        assert_eq!(
            safe_components("x", b"./a//b/./c").unwrap(),
            vec![
                OsString::from("a"),
                OsString::from("b"),
                OsString::from("c")
            ]
        );
        assert!(safe_components("x", b"./").unwrap().is_empty());
    }
}
