//! Unpacked layers, keyed by chain ID: `layers/<chain-id hex>/` holds one layer's diff in
//! overlay format. A layer is unpacked into `tmp/new-*`, verified against its blob digest and
//! diff_id, made durable with one `syncfs`, and only then renamed into place.

use std::cell::RefCell;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest as _, Sha256};

use super::digest::Digest;
use super::objects::ObjectStore;
use super::unpack::{unpack_layer, UnpackError, UnpackReport};
use crate::layout::{LayoutError, NodeLayout};
use crate::sys::fs::{create_private_dir, fsync_dir, remove_tree, unique_temp_name, FsError};
use crate::sys::lock::{FileLock, LockError, LockMode};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {blob}: unsupported media type {media_type:?}; layerlet reads tar layers that are uncompressed, gzip or zstd")]
    UnsupportedMediaType { blob: Digest, media_type: String },
    #[error("layer {blob}: {source}")]
    Unpack {
        blob: Digest,
        #[source]
        source: UnpackError,
    },
    #[error("layer {blob}: downloaded content has digest {actual} ({size} bytes); the registry served the wrong bytes")]
    BlobDigest {
        blob: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("layer {blob}: {actual} bytes where the manifest says {expected}")]
    BlobSize {
        blob: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("layer {blob}: uncompressed content has digest {actual} but the image config lists diff_id {expected}")]
    DiffId {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {blob} unpacks to more than {limit} bytes (--max-layer-size); refused as a possible decompression bomb")]
    TooLarge { blob: Digest, limit: u64 },
    #[error("layer {blob}: corrupt {compression} stream: {source}")]
    Decompress {
        blob: Digest,
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer {blob}: transfer failed: {message}")]
    Transfer { blob: Digest, message: String },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

impl LayerError {
    /// Transfer failures are worth another try; bad content is not.
    pub fn is_transient(&self) -> bool {
        matches!(self, LayerError::Transfer { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn from_media_type(blob: &Digest, media_type: &str) -> Result<Self, LayerError> {
        let base = media_type.trim();
        match base {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Ok(Compression::Zstd)
            }
            _ => Err(LayerError::UnsupportedMediaType {
                blob: blob.clone(),
                media_type: media_type.to_string(),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// What one layer blob is expected to be.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Digest,
}

/// A verified layer unpacked into a temporary directory, not yet visible in the store.
#[derive(Debug)]
pub struct UnpackedLayer {
    pub dir: PathBuf,
    pub report: UnpackReport,
}

#[derive(Default)]
struct Tally {
    hasher: Sha256,
    bytes: u64,
    limit: Option<u64>,
    over_limit: bool,
}

/// Hashes and counts what passes through; refuses to pass more than a limit.
struct TallyReader<R> {
    inner: R,
    tally: Rc<RefCell<Tally>>,
}

impl<R: Read> Read for TallyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut tally = self.tally.borrow_mut();
        tally.hasher.update(&buf[..n]);
        tally.bytes += n as u64;
        if let Some(limit) = tally.limit {
            if tally.bytes > limit {
                tally.over_limit = true;
                return Err(io::Error::other("unpacked size limit exceeded"));
            }
        }
        Ok(n)
    }
}

/// Streams `compressed` through decompression into `dest`, checking the blob digest and size
/// and the diff_id on the way: one pass over the data, no copy of the blob kept.
pub fn unpack_blob<R: Read>(
    blob: &LayerBlob,
    compressed: R,
    dest: &Path,
    max_unpacked: u64,
    objects: Option<&ObjectStore>,
    transfer_error: impl Fn() -> Option<String>,
) -> Result<UnpackReport, LayerError> {
    let compression = Compression::from_media_type(&blob.digest, &blob.media_type)?;
    let outer = Rc::new(RefCell::new(Tally::default()));
    let inner = Rc::new(RefCell::new(Tally {
        limit: Some(max_unpacked),
        ..Tally::default()
    }));
    let source = TallyReader {
        inner: compressed,
        tally: outer.clone(),
    };
    let decoder: Box<dyn Read> = match compression {
        Compression::None => Box::new(source),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            256 * 1024,
            source,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(source).map_err(|e| {
            LayerError::Decompress {
                blob: blob.digest.clone(),
                compression: compression.name(),
                source: e,
            }
        })?),
    };
    let mut tar_stream = TallyReader {
        inner: decoder,
        tally: inner.clone(),
    };
    let classify = |err: io::Error, fallback: LayerError| -> LayerError {
        if let Some(message) = transfer_error() {
            return LayerError::Transfer {
                blob: blob.digest.clone(),
                message,
            };
        }
        if inner.borrow().over_limit {
            return LayerError::TooLarge {
                blob: blob.digest.clone(),
                limit: max_unpacked,
            };
        }
        let _ = err;
        fallback
    };
    let report = match unpack_layer(&mut tar_stream, dest, objects) {
        Ok(report) => report,
        Err(UnpackError::Tar(e)) => {
            let fallback = LayerError::Decompress {
                blob: blob.digest.clone(),
                compression: compression.name(),
                source: io::Error::new(e.kind(), e.to_string()),
            };
            return Err(classify(e, fallback));
        }
        Err(source) => {
            if let Some(message) = transfer_error() {
                return Err(LayerError::Transfer {
                    blob: blob.digest.clone(),
                    message,
                });
            }
            return Err(LayerError::Unpack {
                blob: blob.digest.clone(),
                source,
            });
        }
    };
    // The tar ends before its stream does (padding, trailing frames): read the rest so both
    // digests cover every byte.
    if let Err(e) = io::copy(&mut tar_stream, &mut io::sink()) {
        let fallback = LayerError::Decompress {
            blob: blob.digest.clone(),
            compression: compression.name(),
            source: io::Error::new(e.kind(), e.to_string()),
        };
        return Err(classify(e, fallback));
    }
    drop(tar_stream);
    let outer = Rc::try_unwrap(outer)
        .map(RefCell::into_inner)
        .unwrap_or_default();
    let inner = Rc::try_unwrap(inner)
        .map(RefCell::into_inner)
        .unwrap_or_default();
    if outer.bytes != blob.size {
        return Err(LayerError::BlobSize {
            blob: blob.digest.clone(),
            expected: blob.size,
            actual: outer.bytes,
        });
    }
    let actual = Digest::from_hasher(outer.hasher);
    if actual != blob.digest {
        return Err(LayerError::BlobDigest {
            blob: blob.digest.clone(),
            actual,
            size: outer.bytes,
        });
    }
    let diff_id = Digest::from_hasher(inner.hasher);
    if diff_id != blob.diff_id {
        return Err(LayerError::DiffId {
            blob: blob.digest.clone(),
            expected: blob.diff_id.clone(),
            actual: diff_id,
        });
    }
    Ok(report)
}

/// Where layers live on disk and how they get there.
#[derive(Debug, Clone)]
pub struct LayerStore {
    layout: NodeLayout,
    layers: PathBuf,
    tmp: PathBuf,
}

impl LayerStore {
    pub fn new(layout: &NodeLayout) -> Self {
        LayerStore {
            layout: layout.clone(),
            layers: layout.layers_dir(),
            tmp: layout.tmp_dir(),
        }
    }

    pub fn path(&self, chain_id: &Digest) -> Result<PathBuf, LayerError> {
        Ok(self.layout.layer_dir(chain_id.hex())?)
    }

    pub fn dir(&self) -> &Path {
        &self.layers
    }

    /// One writer per layer across every process on this data root: a second pull of the same
    /// layer waits here, then finds it committed and fetches nothing.
    pub fn lock(&self, chain_id: &Digest) -> Result<FileLock, LayerError> {
        Ok(FileLock::acquire(
            &self.layout.layer_lock(chain_id.hex())?,
            LockMode::Exclusive,
        )?)
    }

    /// A fresh private directory to unpack into, on the same filesystem as the store.
    pub fn new_unpack_dir(&self) -> Result<PathBuf, LayerError> {
        let dir = self.tmp.join(unique_temp_name("new-"));
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// Renames a verified, durable layer into place. The caller holds the layer's lock, so a
    /// directory already there without a database record is debris of a crash: replaced.
    pub fn commit(&self, unpacked: &Path, chain_id: &Digest) -> Result<PathBuf, LayerError> {
        let target = self.path(chain_id)?;
        if target.exists() {
            self.remove(chain_id)?;
        }
        std::fs::rename(unpacked, &target).map_err(|e| FsError::io("rename", &target, e))?;
        fsync_dir(&self.layers)?;
        Ok(target)
    }

    /// Removes a layer directory: first renamed out of `layers/`, so a crash half-way never
    /// leaves a partial layer under its name.
    pub fn remove(&self, chain_id: &Digest) -> Result<(), LayerError> {
        let target = self.path(chain_id)?;
        let doomed = self.tmp.join(unique_temp_name("del-"));
        match std::fs::rename(&target, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(FsError::io("rename", &target, e).into()),
        }
        remove_tree(&doomed)?;
        Ok(())
    }

    pub fn discard(&self, unpacked: &Path) {
        if let Err(e) = remove_tree(unpacked) {
            tracing::warn!(path = %unpacked.display(), error = %e, "could not remove unpack directory");
        }
    }
}
