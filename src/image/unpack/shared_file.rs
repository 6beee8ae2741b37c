//! Regular files of a layer through the object store: a file whose object exists is linked,
//! not written; a new file is written into the layer as before and recorded, to become an
//! object once the layer is durable.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::renameat;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{linkat, LinkatFlags};
use sha2::{Digest as _, Sha256};

use super::{hostile, io_err, UnpackError, Unpacker};
use crate::image::objects::{FileMeta, Lookup, ObjectKey, ObjectStore, PendingObject, Slot};

/// Files up to this size are read into memory and hashed before anything is created, so a
/// file the store has costs one link; bigger ones are written while hashed.
const SMALL_FILE: u64 = 1024 * 1024;

/// Where a big file's object is linked before it is renamed over the written copy; a tar
/// entry of this name that came earlier makes the link fail and the file stay private.
const RELINK_NAME: &str = ".layerlet-object-relink";

/// Creates a new regular file (0600 until its metadata is set) without following symlinks.
pub(super) fn create_file(entry: &str, dir_fd: i32, name: &OsStr) -> Result<File, UnpackError> {
    let fd = openat(
        Some(dir_fd),
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| io_err(entry, "create file", e))?;
    // SAFETY: fd is fresh and owned by us.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Owner of an entry as the layer stores it.
pub(super) fn owner(entry: &str, header: &tar::Header) -> Result<(u32, u32), UnpackError> {
    let uid = header.uid().map_err(UnpackError::Tar)?;
    let gid = header.gid().map_err(UnpackError::Tar)?;
    let uid = u32::try_from(uid).map_err(|_| hostile(entry, format!("uid {uid} out of range")))?;
    let gid = u32::try_from(gid).map_err(|_| hostile(entry, format!("gid {gid} out of range")))?;
    Ok((uid, gid))
}

impl Unpacker {
    /// Hard-links `name` to an identical file this layer wrote before, if there is one.
    fn link_in_layer(
        &self,
        entry_name: &str,
        key: &ObjectKey,
        dir_fd: i32,
        name: &OsStr,
    ) -> Result<bool, UnpackError> {
        let Some(pending) = self.by_key.get(key).and_then(|rel| self.pending.get(rel)) else {
            return Ok(false);
        };
        if &pending.key != key {
            return Ok(false);
        }
        let twin = self.dest.join(&pending.rel);
        match std::fs::symlink_metadata(&twin) {
            Ok(m) if m.is_file() && m.ino() == pending.ino => {}
            _ => return Ok(false),
        }
        match linkat(
            None,
            twin.as_os_str(),
            Some(dir_fd),
            name,
            LinkatFlags::empty(),
        ) {
            Ok(()) => Ok(true),
            Err(Errno::EMLINK) | Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(io_err(entry_name, "link identical file of this layer", e)),
        }
    }

    /// Writes the rest of `entry` into `file`, feeding `hasher` on the way.
    pub(super) fn copy_into<R: Read>(
        &mut self,
        entry_name: &str,
        entry: &mut tar::Entry<'_, R>,
        mut file: File,
        mut hasher: Option<&mut Sha256>,
    ) -> Result<(u64, u64), UnpackError> {
        let mut bytes = 0u64;
        loop {
            let n = entry.read(&mut self.buffer).map_err(UnpackError::Tar)?;
            if n == 0 {
                break;
            }
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&self.buffer[..n]);
            }
            file.write_all(&self.buffer[..n])
                .map_err(|e| io_err(entry_name, "write file", e))?;
            bytes += n as u64;
        }
        let ino = file
            .metadata()
            .map_err(|e| io_err(entry_name, "stat file", e))?
            .ino();
        Ok((bytes, ino))
    }

    /// Owner, mode, xattrs and mtime of a regular file just written, in that order (chown
    /// clears setuid bits and capabilities).
    pub(super) fn set_file_meta(
        &self,
        entry_name: &str,
        dir_fd: i32,
        name: &OsStr,
        header: &tar::Header,
        xattrs: &[(String, Vec<u8>)],
        rel: &Path,
    ) -> Result<(), UnpackError> {
        self.set_owner_mode(entry_name, dir_fd, Some(name), header, false)?;
        self.apply_xattrs(entry_name, xattrs, rel)?;
        self.set_mtime(entry_name, dir_fd, name, header)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn shared_file<R: Read>(
        &mut self,
        objects: &ObjectStore,
        entry_name: &str,
        entry: &mut tar::Entry<'_, R>,
        dir: &OwnedFd,
        name: &OsStr,
        rel: &Path,
        header: &tar::Header,
        xattrs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), UnpackError> {
        let (uid, gid) = owner(entry_name, header)?;
        let meta = FileMeta {
            mode: header.mode().map_err(UnpackError::Tar)? & 0o7777,
            uid,
            gid,
            mtime: header.mtime().unwrap_or(0) as i64,
            xattrs,
        };
        let size = header.size().map_err(UnpackError::Tar)?;
        let lookup_err = |e| io_err(entry_name, "object store", std::io::Error::other(e));
        let dir_fd = dir.as_raw_fd();
        let (key, copy, ino) = if size <= SMALL_FILE {
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).map_err(UnpackError::Tar)?;
            let key = ObjectKey::new(&Sha256::digest(&data).into(), data.len() as u64, &meta);
            let copy = match objects
                .link_existing(&key, dir.as_fd(), name)
                .map_err(lookup_err)?
            {
                Lookup::Linked => {
                    self.report.objects_linked += 1;
                    self.report.object_bytes_linked += data.len() as u64;
                    return Ok(());
                }
                Lookup::Missing(copy) => Some(copy),
                Lookup::Full => None,
            };
            if self.link_in_layer(entry_name, &key, dir_fd, OsStr::new(name))? {
                return Ok(());
            }
            let mut file = create_file(entry_name, dir_fd, name)?;
            file.write_all(&data)
                .map_err(|e| io_err(entry_name, "write file", e))?;
            let ino = file
                .metadata()
                .map_err(|e| io_err(entry_name, "stat file", e))?
                .ino();
            self.set_file_meta(entry_name, dir_fd, name, header, &meta.xattrs, rel)?;
            (key, copy, ino)
        } else {
            let file = create_file(entry_name, dir_fd, name)?;
            let mut hasher = Sha256::new();
            let (bytes, ino) = self.copy_into(entry_name, entry, file, Some(&mut hasher))?;
            self.set_file_meta(entry_name, dir_fd, name, header, &meta.xattrs, rel)?;
            let key = ObjectKey::new(&hasher.finalize().into(), bytes, &meta);
            let copy = match objects.find(&key).map_err(lookup_err)? {
                Slot::Room(copy) => {
                    // What was written is not durable yet: replacing it by the object costs
                    // no disk I/O. Linked beside it, then renamed over it, so a failure
                    // leaves the written file in place.
                    if objects
                        .link(&key, copy, dir.as_fd(), OsStr::new(RELINK_NAME))
                        .map_err(lookup_err)?
                    {
                        renameat(Some(dir_fd), RELINK_NAME, Some(dir_fd), name)
                            .map_err(|e| io_err(entry_name, "replace file by its object", e))?;
                        self.report.objects_linked += 1;
                        self.report.object_bytes_linked += bytes;
                        return Ok(());
                    }
                    None
                }
                Slot::Free(copy) => Some(copy),
                Slot::Full => None,
            };
            if self.link_in_layer(entry_name, &key, dir_fd, OsStr::new(RELINK_NAME))? {
                renameat(Some(dir_fd), RELINK_NAME, Some(dir_fd), name)
                    .map_err(|e| io_err(entry_name, "replace file by its twin", e))?;
                return Ok(());
            }
            (key, copy, ino)
        };
        if let Some(copy) = copy {
            self.by_key.insert(key.clone(), rel.to_path_buf());
            self.pending.insert(
                rel.to_path_buf(),
                PendingObject {
                    rel: rel.to_path_buf(),
                    key,
                    copy,
                    ino,
                },
            );
        }
        Ok(())
    }
}
