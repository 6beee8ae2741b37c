//! Checking objects against their names: the key is a function of what the file holds and
//! shows (content, mode, owner, mtime, xattrs), so re-reading the object tells whether a bit
//! of it changed since it was written.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{io_err, read_dir, FileMeta, ObjectError, ObjectKey, ObjectStore};

/// xattrs the kernel or a security module may add to any file after it was written; the
/// tar never sets them for layerlet (overlay's are stripped at unpack).
const NOT_IN_KEY: [&str; 1] = ["security.selinux"];

/// An object whose bytes or metadata no longer match its name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DamagedObject {
    pub path: PathBuf,
    #[serde(skip)]
    pub dev: u64,
    #[serde(skip)]
    pub ino: u64,
    /// The key the object's current state has.
    pub actual: String,
}

impl ObjectStore {
    /// Re-reads every object; returns how many were checked and the damaged ones.
    pub fn verify(&self) -> Result<(u64, Vec<DamagedObject>), ObjectError> {
        let mut checked = 0;
        let mut damaged = Vec::new();
        for fan in read_dir(self.dir())? {
            if !fan.is_dir() {
                continue;
            }
            for object in read_dir(&fan)? {
                let Some(name) = object.file_name().map(|n| n.to_string_lossy().into_owned())
                else {
                    continue;
                };
                let expected = name.split('.').next().unwrap_or_default().to_string();
                let meta = std::fs::symlink_metadata(&object)
                    .map_err(|e| io_err("stat object", &object, e))?;
                if !meta.is_file() {
                    continue;
                }
                checked += 1;
                let actual = key_of(&object)?;
                if actual.hex() != expected {
                    damaged.push(DamagedObject {
                        path: object,
                        dev: meta.dev(),
                        ino: meta.ino(),
                        actual: actual.hex().to_string(),
                    });
                }
            }
        }
        Ok((checked, damaged))
    }
}

/// The key a file's current content and metadata give.
pub fn key_of(path: &Path) -> Result<ObjectKey, ObjectError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_err("stat object", path, e))?;
    let mut file = std::fs::File::open(path).map_err(|e| io_err("open object", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| io_err("read object", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let file_meta = FileMeta {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        xattrs: xattrs(path)?
            .into_iter()
            .filter(|(k, _)| !NOT_IN_KEY.contains(&k.as_str()))
            .collect(),
    };
    Ok(ObjectKey::new(&hasher.finalize().into(), size, &file_meta))
}

fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>, ObjectError> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io_err("xattr path", path, std::io::Error::other(e)))?;
    // SAFETY: a NUL-terminated path and a null buffer of length 0 ask for the size.
    let len = unsafe { libc::llistxattr(c_path.as_ptr(), std::ptr::null_mut(), 0) };
    if len < 0 {
        return Err(io_err("list xattrs", path, std::io::Error::last_os_error()));
    }
    let mut names = vec![0u8; len as usize];
    // SAFETY: the buffer has the length passed.
    let len = unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if len < 0 {
        return Err(io_err("list xattrs", path, std::io::Error::last_os_error()));
    }
    names.truncate(len as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let c_name =
            CString::new(name).map_err(|e| io_err("xattr name", path, std::io::Error::other(e)))?;
        // SAFETY: NUL-terminated strings; a null buffer of length 0 asks for the size.
        let size =
            unsafe { libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            return Err(io_err("read xattr", path, std::io::Error::last_os_error()));
        }
        let mut value = vec![0u8; size as usize];
        // SAFETY: the buffer has the length passed.
        let size = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if size < 0 {
            return Err(io_err("read xattr", path, std::io::Error::last_os_error()));
        }
        value.truncate(size as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn an_object_whose_bytes_or_mode_changed_is_found() {
        let root = tempfile::tempdir().unwrap();
        let store = ObjectStore::at(&root.path().join("objects"));
        let file = root.path().join("f");
        std::fs::write(&file, b"content").unwrap();
        let key = key_of(&file).unwrap();
        std::fs::create_dir_all(store.dir().join(key.fan_out())).unwrap();
        let object = store.dir().join(key.fan_out()).join(key.file_name(0));
        std::fs::rename(&file, &object).unwrap();
        let copy = store.dir().join(key.fan_out()).join(key.file_name(1));
        std::fs::copy(&object, &copy).unwrap();
        let t = std::fs::metadata(&object).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let (checked, damaged) = store.verify().unwrap();
        assert_eq!((checked, damaged.len()), (2, 0), "{damaged:?}");

        std::fs::write(&object, b"cOntent").unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, damaged) = store.verify().unwrap();
        let paths: Vec<&PathBuf> = damaged.iter().map(|d| &d.path).collect();
        assert_eq!(paths.len(), 2);
        assert!(paths.contains(&&object) && paths.contains(&&copy));
    }
}
