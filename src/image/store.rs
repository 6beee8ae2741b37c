//! The image store: blobs, unpacked layers and their records, and the one path by which an
//! image becomes visible (`install`), shared by registry pulls and archive imports.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::content::{ContentError, ContentStore};
use super::db::{BlobRecord, ImageRecord, LayerRecord};
use super::digest::Digest;
use super::layers::{unpack_blob, LayerBlob, LayerError, LayerStore};
use super::manifest::{parse_config, ImageConfig, ImageManifest, ManifestError};
use super::objects::usage::{private_size, FileSharing};
use super::objects::{ObjectError, ObjectStore, SweepReport};
use super::registry::{RegistryClient, RegistryError};
use super::report::StoreSnapshot;
use super::unpack::{settle_implied_dirs, UnpackReport};
use crate::layout::NodeLayout;
use crate::meta::{Db, MetaError};
use crate::reference::ImageRef;
use crate::sys::fs::{apparent_size, create_private_dir, syncfs, FsError};
use crate::sys::lock::{FileLock, LockError, LockMode};
use crate::time::unix_secs_now as now;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] MetaError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{image}: config {config} in the manifest does not match the blob: {source}")]
    Config {
        image: String,
        config: Digest,
        #[source]
        source: ContentError,
    },
    #[error("layer {blob}: transfer failed after {attempts} attempts: {message}")]
    TransferGaveUp {
        blob: Digest,
        attempts: u32,
        message: String,
    },
    #[error("no image named {0:?} in the store; `layerlet images` lists them")]
    UnknownImage(String),
    #[error("{name:?} matches several images ({candidates}); give more of the digest")]
    AmbiguousImage { name: String, candidates: String },
    #[error("image {image} is used by {containers} container(s); remove them first")]
    ImageInUse { image: String, containers: u64 },
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("background task failed: {0}")]
    Task(String),
}

/// Knobs of the store a node operator may set.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest unpacked size of one layer (decompression-bomb guard).
    pub max_layer_bytes: u64,
    /// Attempts per layer when the transfer (not the content) fails.
    pub transfer_attempts: u32,
    /// Layers fetched at once.
    pub parallel_layers: usize,
    /// Keep each regular file once in `objects/` and hard-link it into layers (file-level
    /// sharing); off keeps every file private to its layer.
    pub file_sharing: bool,
}

/// Environment variable that turns file-level sharing off (`0`, `false`, `off`, `no`).
pub const FILE_SHARING_ENV: &str = "LAYERLET_FILE_SHARING";

/// File-level sharing unless the environment turns it off.
pub fn file_sharing_default() -> bool {
    std::env::var(FILE_SHARING_ENV).map_or(true, |v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "off" | "no"
        )
    })
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_layer_bytes: 64 * 1024 * 1024 * 1024,
            transfer_attempts: 3,
            parallel_layers: 6,
            file_sharing: file_sharing_default(),
        }
    }
}

/// Where a layer's bytes come from.
#[derive(Clone)]
pub enum LayerSource {
    Registry(Arc<RegistryClient>),
    /// `blobs/sha256/` of an OCI image layout.
    Layout(PathBuf),
}

/// An image that was put in the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstalledImage {
    pub names: Vec<String>,
    pub digest: Digest,
    pub config_digest: Digest,
    pub platform: String,
    pub layers: usize,
    /// Layers this call unpacked (the others were already in the store).
    pub fetched_layers: usize,
    pub fetched_bytes: u64,
}

/// Everything `install` needs about one image.
pub struct ImageToInstall {
    pub display_name: String,
    pub names: Vec<String>,
    pub manifest: ImageManifest,
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
    pub index: Option<(Vec<u8>, Digest)>,
    pub config_bytes: Vec<u8>,
    pub platform: String,
}

pub struct Store {
    layout: NodeLayout,
    content: ContentStore,
    layers: LayerStore,
    db: Arc<Mutex<Db>>,
    options: StoreOptions,
    /// None when file-level sharing is off or the filesystem cannot hard-link.
    objects: Option<ObjectStore>,
}

/// A layer unpacked and verified by this call, waiting for its turn to be committed. Its
/// lock keeps other processes from fetching it meanwhile; dropping it uncommitted removes
/// the directory.
struct PendingLayer {
    dir: Option<PathBuf>,
    report: UnpackReport,
    _lock: FileLock,
    layers: LayerStore,
}

impl Drop for PendingLayer {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            self.layers.discard(&dir);
        }
    }
}

impl Store {
    pub fn open(layout: &NodeLayout, options: StoreOptions) -> Result<Self, StoreError> {
        for dir in [
            layout.root().to_path_buf(),
            layout.blobs_dir(),
            layout.layers_dir(),
            layout.tmp_dir(),
            layout.locks_dir(),
        ] {
            create_private_dir(&dir)?;
        }
        // Overlay needs to traverse the layers as the mounter only; 0711 lets containers'
        // users reach nothing by name but their own mounts.
        let db = Db::open(layout)?;
        let objects = if options.file_sharing {
            ObjectStore::open(layout.root())?
        } else {
            None
        };
        Ok(Store {
            objects,
            layout: layout.clone(),
            content: ContentStore::new(layout),
            layers: LayerStore::new(layout),
            db: Arc::new(Mutex::new(db)),
            options,
        })
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub fn layout(&self) -> &NodeLayout {
        &self.layout
    }

    pub fn db(&self) -> MutexGuard<'_, Db> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back), so a poisoned guard is still good.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The object store of file-level sharing, when it is on.
    pub fn objects(&self) -> Option<&ObjectStore> {
        self.objects.as_ref()
    }

    /// Where objects live whether or not this process shares files: a store written with
    /// sharing on and opened with it off still has (and must collect) them.
    pub fn objects_dir(&self) -> PathBuf {
        super::objects::objects_dir(self.layout.root())
    }

    /// Measures file-level sharing across the layers `snapshot` records (walks them all).
    pub fn file_sharing(&self, snapshot: &StoreSnapshot) -> Result<FileSharing, StoreError> {
        Ok(FileSharing::scan_layout(
            &self.layout,
            snapshot.layers.keys(),
        )?)
    }

    pub fn layer_store(&self) -> &LayerStore {
        &self.layers
    }

    pub fn layer_path(&self, chain_id: &Digest) -> Result<PathBuf, StoreError> {
        Ok(self.layers.path(chain_id)?)
    }

    /// Held (shared) by every pull and import; `gc` takes it exclusively, so garbage
    /// collection never removes what a pull is about to reference.
    pub fn gc_guard(&self, mode: LockMode) -> Result<FileLock, StoreError> {
        Ok(FileLock::acquire(&self.layout.gc_lock(), mode)?)
    }

    /// Verifies and stores an image: config, every layer (each fetched at most once per node,
    /// in parallel, unpacked while it streams), then the records that make it visible.
    pub async fn install(
        &self,
        source: LayerSource,
        image: ImageToInstall,
    ) -> Result<InstalledImage, StoreError> {
        let config_digest =
            Digest::parse(&image.manifest.config.digest).map_err(|e| ManifestError::BadDigest {
                image: image.display_name.clone(),
                field: "config.digest".into(),
                source: e,
            })?;
        super::content::verify(
            &config_digest,
            Some(image.manifest.config.size),
            &image.config_bytes,
        )
        .map_err(|source| StoreError::Config {
            image: image.display_name.clone(),
            config: config_digest.clone(),
            source,
        })?;
        let config: ImageConfig = parse_config(&image.display_name, &image.config_bytes)?;
        let diff_ids = config.diff_ids(&image.display_name)?;
        let platform = if image.platform.is_empty() {
            format!("{}/{}", config.os, config.architecture)
        } else {
            image.platform.clone()
        };
        if diff_ids.len() != image.manifest.layers.len() {
            return Err(ManifestError::LayerCount {
                image: image.display_name.clone(),
                diff_ids: diff_ids.len(),
                layers: image.manifest.layers.len(),
            }
            .into());
        }
        let mut blobs = Vec::with_capacity(diff_ids.len());
        let mut chain = Vec::with_capacity(diff_ids.len());
        for (i, (layer, diff_id)) in image.manifest.layers.iter().zip(&diff_ids).enumerate() {
            let digest = Digest::parse(&layer.digest).map_err(|e| ManifestError::BadDigest {
                image: image.display_name.clone(),
                field: format!("layers[{i}].digest"),
                source: e,
            })?;
            blobs.push(LayerBlob {
                digest,
                size: layer.size,
                media_type: layer.media_type.clone(),
                diff_id: diff_id.clone(),
            });
            chain.push(Digest::chain(chain.last(), diff_id));
        }

        let _gc = {
            let lock = self.layout.gc_lock();
            tokio::task::spawn_blocking(move || FileLock::acquire(&lock, LockMode::Shared))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??
        };

        // Each layer is committed as soon as it is unpacked and every layer below it is in
        // the store (fetched here or by another process): lower layers never wait for upper
        // ones, so two pulls that share layers cannot wait on each other.
        let jobs: Vec<(usize, LayerBlob, Digest)> = blobs
            .iter()
            .cloned()
            .zip(chain.iter().cloned())
            .enumerate()
            .map(|(i, (b, c))| (i, b, c))
            .collect();
        let fetched: Vec<bool> = stream::iter(jobs)
            .map(|(i, blob, chain_id)| {
                self.fetch_and_commit(source.clone(), blob, chain_id, &chain[..i])
            })
            .buffered(self.options.parallel_layers.max(1))
            .try_collect()
            .await?;
        let fetched_layers = fetched.iter().filter(|f| **f).count();
        let fetched_bytes: u64 = fetched
            .iter()
            .zip(&blobs)
            .filter(|(f, _)| **f)
            .map(|(_, b)| b.size)
            .sum();

        self.content.write(
            &config_digest,
            Some(image.manifest.config.size),
            &image.config_bytes,
        )?;
        self.content
            .write(&image.manifest_digest, None, &image.manifest_bytes)?;
        let mut blob_records = vec![
            BlobRecord {
                digest: config_digest.clone(),
                size: image.config_bytes.len() as u64,
                media_type: image.manifest.config.media_type.clone(),
            },
            BlobRecord {
                digest: image.manifest_digest.clone(),
                size: image.manifest_bytes.len() as u64,
                media_type: image.manifest.media_type.clone(),
            },
        ];
        if let Some((bytes, digest)) = &image.index {
            self.content.write(digest, None, bytes)?;
            blob_records.push(BlobRecord {
                digest: digest.clone(),
                size: bytes.len() as u64,
                media_type: "index".into(),
            });
        }
        let record = ImageRecord {
            digest: image.manifest_digest.clone(),
            config_digest: config_digest.clone(),
            index_digest: image.index.as_ref().map(|(_, d)| d.clone()),
            platform: platform.clone(),
            created_at: now(),
            last_used: now(),
        };
        self.db()
            .commit_image(&record, &chain, &blob_records, &image.names)?;
        Ok(InstalledImage {
            names: image.names,
            digest: image.manifest_digest,
            config_digest,
            platform,
            layers: chain.len(),
            fetched_layers,
            fetched_bytes,
        })
    }

    fn committed(&self, chain_id: &Digest) -> Result<bool, StoreError> {
        Ok(self.db().layer(chain_id)?.is_some() && self.layers.path(chain_id)?.is_dir())
    }

    /// Makes one layer present: fetched and committed by this call (true), or already there
    /// or committed meanwhile by another process (false).
    async fn fetch_and_commit(
        &self,
        source: LayerSource,
        blob: LayerBlob,
        chain_id: Digest,
        lowers: &[Digest],
    ) -> Result<bool, StoreError> {
        let Some(pending) = self
            .ensure_layer(source, blob.clone(), chain_id.clone())
            .await?
        else {
            return Ok(false);
        };
        for lower in lowers {
            while !self.committed(lower)? {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let layers = self.layers.clone();
        let objects = self.objects.clone();
        let db = self.db.clone();
        let parent = lowers.last().cloned();
        let lower_dirs = lowers
            .iter()
            .rev()
            .map(|c| self.layers.path(c))
            .collect::<Result<Vec<_>, _>>()?;
        tokio::task::spawn_blocking(move || {
            let target = CommitTarget {
                layers: &layers,
                objects: objects.as_ref(),
                db: &db,
            };
            commit_layer(target, pending, &blob, &chain_id, parent, &lower_dirs)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
        Ok(true)
    }

    async fn ensure_layer(
        &self,
        source: LayerSource,
        blob: LayerBlob,
        chain_id: Digest,
    ) -> Result<Option<PendingLayer>, StoreError> {
        if self.committed(&chain_id)? {
            return Ok(None);
        }
        let lock = {
            let layers = self.layers.clone();
            let chain_id = chain_id.clone();
            tokio::task::spawn_blocking(move || layers.lock(&chain_id))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??
        };
        // Another process may have committed it while we waited for the lock.
        if self.committed(&chain_id)? {
            return Ok(None);
        }
        let attempts = self.options.transfer_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = self.layers.new_unpack_dir()?;
            let result = self.unpack_once(&source, &blob, &dir).await;
            match result {
                Ok(report) => {
                    return Ok(Some(PendingLayer {
                        dir: Some(dir),
                        report,
                        _lock: lock,
                        layers: self.layers.clone(),
                    }))
                }
                Err(e) => {
                    self.layers.discard(&dir);
                    let transient = matches!(&e, StoreError::Layer(l) if l.is_transient());
                    if !transient {
                        return Err(e);
                    }
                    if attempt >= attempts {
                        let message = match e {
                            StoreError::Layer(LayerError::Transfer { message, .. }) => message,
                            other => other.to_string(),
                        };
                        return Err(StoreError::TransferGaveUp {
                            blob: blob.digest.clone(),
                            attempts,
                            message,
                        });
                    }
                    tracing::warn!(blob = %blob.digest, attempt, error = %e, "layer transfer failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
            }
        }
    }

    async fn unpack_once(
        &self,
        source: &LayerSource,
        blob: &LayerBlob,
        dir: &Path,
    ) -> Result<UnpackReport, StoreError> {
        let max = self.options.max_layer_bytes;
        let objects = self.objects.clone();
        let blob = blob.clone();
        let dir = dir.to_path_buf();
        let task = match source {
            LayerSource::Registry(client) => {
                let (reader, status) = client.layer_reader(&blob.digest);
                tokio::task::spawn_blocking(move || {
                    unpack_blob(&blob, reader, &dir, max, objects.as_ref(), || {
                        status.failure()
                    })
                })
            }
            LayerSource::Layout(blobs_dir) => {
                let path = blobs_dir.join(blob.digest.hex());
                tokio::task::spawn_blocking(move || {
                    let file = std::fs::File::open(&path)
                        .map_err(|e| FsError::io("open layer blob", &path, e))?;
                    let reader: Box<dyn Read> =
                        Box::new(std::io::BufReader::with_capacity(256 * 1024, file));
                    unpack_blob(&blob, reader, &dir, max, objects.as_ref(), || None)
                })
            }
        };
        Ok(task.await.map_err(|e| StoreError::Task(e.to_string()))??)
    }

    /// Finds an image by name (as pulled, or with docker's short forms), by digest, or by an
    /// unambiguous prefix of its digest or config digest (the image ID).
    pub fn resolve(&self, name: &str) -> Result<Digest, StoreError> {
        self.resolve_among(name, &names_of(name))
    }

    /// [`Store::resolve`] for a reference parsed already (a pod's image).
    pub fn resolve_reference(&self, reference: &ImageRef) -> Result<Digest, StoreError> {
        self.resolve_among(reference.as_str(), &reference.lookup_names())
    }

    /// The image recorded under one of `names`, else the one whose ID `name` abbreviates.
    fn resolve_among(&self, name: &str, names: &[String]) -> Result<Digest, StoreError> {
        let db = self.db();
        for candidate in names {
            if let Some(d) = db.tag(candidate)? {
                return Ok(d);
            }
        }
        let wanted = name.strip_prefix("sha256:").unwrap_or(name);
        if wanted.len() >= 4 && wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found: BTreeMap<Digest, ()> = BTreeMap::new();
            for image in db.images()? {
                if image.digest.hex().starts_with(wanted)
                    || image.config_digest.hex().starts_with(wanted)
                {
                    found.insert(image.digest.clone(), ());
                }
            }
            if found.len() > 1 {
                return Err(StoreError::AmbiguousImage {
                    name: name.to_string(),
                    candidates: found
                        .keys()
                        .map(|d| d.short().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            if let Some(only) = found.into_keys().next() {
                return Ok(only);
            }
        }
        Err(StoreError::UnknownImage(name.to_string()))
    }

    pub fn image_config(&self, image: &Digest) -> Result<ImageConfig, StoreError> {
        let record = self
            .db()
            .images()?
            .into_iter()
            .find(|i| &i.digest == image)
            .ok_or_else(|| StoreError::UnknownImage(image.to_string()))?;
        let bytes = self.content.read(&record.config_digest)?;
        Ok(parse_config(&image.to_string(), &bytes)?)
    }

    /// The image's layer directories, topmost first (overlay's lowerdir order).
    pub fn image_lowerdirs(&self, image: &Digest) -> Result<Vec<PathBuf>, StoreError> {
        let chain = self.db().image_chain(image)?;
        Ok(chain
            .iter()
            .rev()
            .map(|c| self.layers.path(c))
            .collect::<Result<_, _>>()?)
    }

    /// `rmi`: removes a name, or (by digest or ID) the image with all its names. Refuses an
    /// image a container uses. Returns the images whose records went.
    pub fn remove_image(&self, name: &str) -> Result<Vec<Digest>, StoreError> {
        let image = self.resolve(name)?;
        let users = self
            .db()
            .image_user_counts()?
            .into_iter()
            .find(|(d, _)| d == &image)
            .map(|(_, n)| n)
            .unwrap_or(0);
        if users > 0 {
            return Err(StoreError::ImageInUse {
                image: name.to_string(),
                containers: users,
            });
        }
        let mut db = self.db();
        let by_name = names_of(name)
            .into_iter()
            .find(|c| db.tag(c).ok().flatten().is_some());
        let removed = match by_name {
            Some(tag) => db.untag(&tag)?.into_iter().collect(),
            None => {
                if db.remove_image(&image)? {
                    vec![image]
                } else {
                    Vec::new()
                }
            }
        };
        Ok(removed)
    }

    /// Removes layers and blobs no image references, and debris of interrupted pulls.
    /// Waits for running pulls to finish first.
    pub fn collect_garbage(&self) -> Result<GcReport, StoreError> {
        let gc = self.gc_guard(LockMode::Exclusive)?;
        self.collect_garbage_locked(&gc)
    }

    /// `collect_garbage` for a caller that already holds the exclusive GC lock.
    pub(super) fn collect_garbage_locked(&self, _gc: &FileLock) -> Result<GcReport, StoreError> {
        let (layers, blobs) = self.db().collect_garbage()?;
        let mut report = GcReport::default();
        for layer in &layers {
            let path = self.layers.path(&layer.chain_id)?;
            report.bytes_freed += private_size(&path).unwrap_or(0);
            self.layers.remove(&layer.chain_id)?;
            report.layers_removed.push(layer.chain_id.clone());
        }
        for blob in &blobs {
            report.bytes_freed += blob.size;
            self.content.remove(&blob.digest)?;
            report.blobs_removed += 1;
        }
        // With the exclusive lock held no pull runs: whatever is in tmp/ or in layers/
        // without a record was left by a crash.
        let known: std::collections::HashSet<String> = self
            .db()
            .layers()?
            .iter()
            .map(|l| l.chain_id.hex().to_string())
            .collect();
        for entry in std::fs::read_dir(self.layers.dir())
            .map_err(|e| FsError::io("read directory", self.layers.dir(), e))?
        {
            let entry = entry.map_err(|e| FsError::io("read directory", self.layers.dir(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                    report.bytes_freed += private_size(&entry.path()).unwrap_or(0);
                    self.layers.remove(&d)?;
                    report.debris_removed += 1;
                } else {
                    crate::sys::fs::remove_tree(&entry.path())?;
                    report.debris_removed += 1;
                }
            }
        }
        let tmp = self.layout.tmp_dir();
        for entry in std::fs::read_dir(&tmp).map_err(|e| FsError::io("read directory", &tmp, e))? {
            let entry = entry.map_err(|e| FsError::io("read directory", &tmp, e))?;
            crate::sys::fs::remove_tree(&entry.path())?;
            report.debris_removed += 1;
        }
        // Last: the layers removed above (and debris of killed pulls) dropped their links.
        let swept = sweep_objects(&self.objects_dir())?;
        report.objects_removed = swept.objects_removed;
        report.bytes_freed += swept.bytes_freed;
        Ok(report)
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub layers_removed: Vec<Digest>,
    pub blobs_removed: usize,
    pub debris_removed: usize,
    /// Objects of file-level sharing that no layer linked any more.
    pub objects_removed: u64,
    pub bytes_freed: u64,
}

/// Objects no layer links, removed even when this process runs with file sharing off.
fn sweep_objects(dir: &Path) -> Result<SweepReport, StoreError> {
    if !dir.is_dir() {
        return Ok(SweepReport::default());
    }
    Ok(ObjectStore::at(dir).sweep()?)
}

/// Where a layer is committed to.
struct CommitTarget<'a> {
    layers: &'a LayerStore,
    objects: Option<&'a ObjectStore>,
    db: &'a Mutex<Db>,
}

/// Settles a new layer's implied directories against the (committed) layers below, makes it
/// durable with one `syncfs`, renames it into place and records it.
fn commit_layer(
    target: CommitTarget<'_>,
    mut pending: PendingLayer,
    blob: &LayerBlob,
    chain_id: &Digest,
    parent: Option<Digest>,
    lower_dirs: &[PathBuf],
) -> Result<(), StoreError> {
    let CommitTarget {
        layers,
        objects,
        db,
    } = target;
    let Some(dir) = pending.dir.take() else {
        return Ok(());
    };
    let result = (|| -> Result<(), StoreError> {
        settle_implied_dirs(&dir, &pending.report.implied_dirs, lower_dirs).map_err(|source| {
            LayerError::Unpack {
                blob: blob.digest.clone(),
                source,
            }
        })?;
        let size = apparent_size(&dir)?;
        syncfs(&dir)?;
        // Only now, with every byte durable, may other layers find these files as objects.
        if let Some(objects) = objects {
            objects.publish(&dir, &pending.report.pending_objects)?;
        }
        layers.commit(&dir, chain_id)?;
        let record = LayerRecord {
            chain_id: chain_id.clone(),
            diff_id: blob.diff_id.clone(),
            parent,
            blob_digest: blob.digest.clone(),
            media_type: blob.media_type.clone(),
            compressed_size: blob.size,
            unpacked_size: size,
            created_at: now(),
        };
        db.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert_layer(&record)?;
        Ok(())
    })();
    if result.is_err() && dir.exists() {
        layers.discard(&dir);
    }
    result
}

/// The names an image typed as `name` may be recorded under: as typed, and normalised when
/// it parses as a reference.
fn names_of(name: &str) -> Vec<String> {
    ImageRef::parse(name)
        .map(|reference| reference.lookup_names())
        .unwrap_or_else(|_| vec![name.to_string()])
}
