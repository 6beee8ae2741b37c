//! Content-addressed blobs (manifests, configs, indexes). A blob is written to an ingest file,
//! fsynced, checked against its digest and size, and only then renamed to
//! `blobs/sha256/<hex>`: nothing half-written or unverified is ever visible under its name.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::digest::Digest;
use crate::layout::{LayoutError, NodeLayout};
use crate::sys::fs::{fsync_dir, unique_temp_name, FsError};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {expected}: content has digest {actual} ({size} bytes); the registry or file served the wrong bytes")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("blob {digest}: {actual} bytes where the descriptor says {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is not in the store at {path}; pull the image again")]
    Missing { digest: Digest, path: PathBuf },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

#[derive(Debug, Clone)]
pub struct ContentStore {
    layout: NodeLayout,
    blobs: PathBuf,
    ingest: PathBuf,
}

/// Checks bytes against the digest and size a descriptor promised.
pub fn verify(
    expected: &Digest,
    expected_size: Option<u64>,
    bytes: &[u8],
) -> Result<(), ContentError> {
    if let Some(size) = expected_size {
        if size != bytes.len() as u64 {
            return Err(ContentError::SizeMismatch {
                digest: expected.clone(),
                expected: size,
                actual: bytes.len() as u64,
            });
        }
    }
    let actual = Digest::of_bytes(bytes);
    if &actual != expected {
        return Err(ContentError::DigestMismatch {
            expected: expected.clone(),
            actual,
            size: bytes.len() as u64,
        });
    }
    Ok(())
}

impl ContentStore {
    pub fn new(layout: &NodeLayout) -> Self {
        ContentStore {
            layout: layout.clone(),
            blobs: layout.blobs_dir(),
            ingest: layout.tmp_dir(),
        }
    }

    pub fn path(&self, digest: &Digest) -> Result<PathBuf, ContentError> {
        Ok(self.layout.blob(digest.hex())?)
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// Verifies `bytes` and makes them durable under their digest.
    pub fn write(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
        bytes: &[u8],
    ) -> Result<(), ContentError> {
        verify(digest, expected_size, bytes)?;
        let target = self.path(digest)?;
        if target.is_file() {
            return Ok(());
        }
        let tmp = self.ingest.join(unique_temp_name("blob-"));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)
                .map_err(|e| FsError::io("create", &tmp, e))?;
            file.write_all(bytes)
                .map_err(|e| FsError::io("write", &tmp, e))?;
            file.sync_all().map_err(|e| FsError::io("fsync", &tmp, e))?;
            fs::rename(&tmp, &target).map_err(|e| FsError::io("rename", &target, e))?;
            fsync_dir(&self.blobs)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(result?)
    }

    /// Reads a blob back, checking it still has its digest (a disk or a hand edit may have
    /// changed it).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let path = self.path(digest)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContentError::Missing {
                    digest: digest.clone(),
                    path,
                })
            }
            Err(e) => return Err(FsError::io("read", &path, e).into()),
        };
        verify(digest, None, &bytes)?;
        Ok(bytes)
    }

    pub fn remove(&self, digest: &Digest) -> Result<(), ContentError> {
        crate::sys::fs::remove_tree(&self.path(digest)?)?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.blobs
    }
}
