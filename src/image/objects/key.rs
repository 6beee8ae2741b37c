//! The name of an object: a digest of a regular file's content and of every piece of metadata
//! overlayfs shows for it, so two files get one object only when a container could not tell
//! them apart.
//!
//! mtime is part of the key: containers see it (make, rsync, Python's .pyc checks read it),
//! and a shared object must look exactly as the tar said. ostree zeroes mtimes to share more;
//! containerd keeps them; layerlet keeps them, trading some sharing for exact content.

use sha2::{Digest as _, Sha256};

/// Bumped whenever what goes into the key changes, so old and new objects never collide.
const KEY_DOMAIN: &[u8] = b"layerlet-object-v1\0";

/// What a container sees of a regular file besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Permission bits, setuid/setgid/sticky included (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds; layers carry no sub-second times.
    pub mtime: i64,
    /// Extended attributes (security.capability included), in any order.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// The digest naming one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    hex: String,
}

impl ObjectKey {
    /// `content` is the sha256 of the file's bytes, `size` their count.
    pub fn new(content: &[u8; 32], size: u64, meta: &FileMeta) -> Self {
        let mut h = Sha256::new();
        h.update(KEY_DOMAIN);
        h.update(content);
        h.update(size.to_le_bytes());
        h.update((meta.mode & 0o7777).to_le_bytes());
        h.update(meta.uid.to_le_bytes());
        h.update(meta.gid.to_le_bytes());
        h.update(meta.mtime.to_le_bytes());
        let mut xattrs: Vec<&(String, Vec<u8>)> = meta.xattrs.iter().collect();
        xattrs.sort();
        h.update((xattrs.len() as u64).to_le_bytes());
        for (name, value) in xattrs {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((value.len() as u64).to_le_bytes());
            h.update(value);
        }
        ObjectKey {
            hex: hex::encode(h.finalize()),
        }
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The object's file name: the key, or `<key>.<n>` for the n-th extra copy of a file
    /// whose first object reached the filesystem's link limit.
    pub fn file_name(&self, copy: u32) -> String {
        if copy == 0 {
            self.hex.clone()
        } else {
            format!("{}.{copy}", self.hex)
        }
    }

    /// The fan-out directory (first two hex digits), as git and ostree do.
    pub fn fan_out(&self) -> &str {
        &self.hex[..2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> FileMeta {
        FileMeta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: vec![("user.a".into(), b"1".to_vec()), ("user.b".into(), vec![])],
        }
    }

    #[test]
    fn every_visible_attribute_changes_the_key() {
        let content = [7u8; 32];
        let base = ObjectKey::new(&content, 10, &meta());
        assert_eq!(base, ObjectKey::new(&content, 10, &meta()));
        let variants = [
            FileMeta {
                mode: 0o4644,
                ..meta()
            },
            FileMeta { uid: 1, ..meta() },
            FileMeta { gid: 1, ..meta() },
            FileMeta { mtime: 1, ..meta() },
            FileMeta {
                xattrs: vec![("security.capability".into(), vec![1, 2, 3])],
                ..meta()
            },
            FileMeta {
                xattrs: vec![("user.a".into(), b"2".to_vec()), ("user.b".into(), vec![])],
                ..meta()
            },
        ];
        for v in &variants {
            assert_ne!(base, ObjectKey::new(&content, 10, v), "{v:?}");
        }
        assert_ne!(base, ObjectKey::new(&[8u8; 32], 10, &meta()));
        assert_ne!(base, ObjectKey::new(&content, 11, &meta()));
    }

    #[test]
    fn xattr_order_does_not_matter_and_names_fan_out() {
        let mut reordered = meta();
        reordered.xattrs.reverse();
        let a = ObjectKey::new(&[1u8; 32], 0, &meta());
        assert_eq!(a, ObjectKey::new(&[1u8; 32], 0, &reordered));
        assert_eq!(a.hex().len(), 64);
        assert_eq!(a.fan_out(), &a.hex()[..2]);
        assert_eq!(a.file_name(0), a.hex());
        assert_eq!(a.file_name(2), format!("{}.2", a.hex()));
    }
}
