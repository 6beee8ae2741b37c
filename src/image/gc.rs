//! Image garbage collection by disk usage: the effectful edge of `gc_policy`. Reads the
//! filesystem's usage and the store's records, removes the images the policy picks, then the
//! layers and blobs nothing references any more.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::gc_policy::{plan_image_gc, FsUsage, GcCandidate, Watermarks};
use super::store::{GcReport, Store, StoreError};
use crate::sys::lock::LockMode;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("cannot read the usage of the filesystem holding {path}: {source}")]
    Statvfs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass did.
#[derive(Debug, Default, serde::Serialize)]
pub struct FreeSpaceReport {
    pub usage_percent_before: f64,
    pub usage_percent_after: f64,
    /// Bytes the low watermark asked for (0 when usage was below the high watermark).
    pub wanted_bytes: u64,
    pub images_removed: Vec<Digest>,
    pub collected: GcReport,
}

impl FreeSpaceReport {
    /// The pass could not get down to the low watermark (what kubelet reports as
    /// FreeDiskSpaceFailed).
    pub fn short_of_target(&self) -> bool {
        self.collected.bytes_freed < self.wanted_bytes
    }
}

/// Usage as `df` shows it: used / (used + available). Blocks reserved for root count in
/// neither, so a filesystem with a large reservation is not "full" while df says 67%.
pub fn fs_usage(path: &Path) -> Result<FsUsage, GcError> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(|source| GcError::Statvfs {
        path: path.to_path_buf(),
        source,
    })?;
    let block = stat.fragment_size();
    let used = stat.blocks().saturating_sub(stat.blocks_free()) * block;
    let available = stat.blocks_available() * block;
    Ok(FsUsage {
        capacity_bytes: used + available,
        used_bytes: used,
    })
}

fn percent(usage: FsUsage) -> f64 {
    if usage.capacity_bytes == 0 {
        return 0.0;
    }
    usage.used_bytes as f64 * 100.0 / usage.capacity_bytes as f64
}

impl Store {
    /// When the data root's filesystem is above the high watermark, removes least recently
    /// used images that no container uses and that are not in `keep` (images pods reference),
    /// until the low watermark is reached or nothing more may go; then their layers and
    /// blobs. Holds the GC lock throughout, so no pull commits meanwhile.
    pub fn free_space(
        &self,
        marks: Watermarks,
        keep: &BTreeSet<Digest>,
    ) -> Result<FreeSpaceReport, GcError> {
        let gc = self.gc_guard(LockMode::Exclusive)?;
        let before = fs_usage(self.root())?;
        let mut report = FreeSpaceReport {
            usage_percent_before: percent(before),
            usage_percent_after: percent(before),
            ..FreeSpaceReport::default()
        };
        let (images, layers, users) = {
            let db = self.db();
            let images = db.images().map_err(StoreError::from)?;
            let layers = db.layers().map_err(StoreError::from)?;
            let users = db.image_user_counts().map_err(StoreError::from)?;
            (images, layers, users)
        };
        let in_use: BTreeSet<Digest> = users
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(d, _)| d)
            .collect();
        let mut candidates = Vec::with_capacity(images.len());
        for image in images {
            let chain = self
                .db()
                .image_chain(&image.digest)
                .map_err(StoreError::from)?;
            candidates.push(GcCandidate {
                protected: in_use.contains(&image.digest) || keep.contains(&image.digest),
                digest: image.digest,
                last_used: image.last_used,
                created_at: image.created_at,
                layers: chain,
            });
        }
        let sizes: BTreeMap<Digest, u64> = layers
            .into_iter()
            .map(|l| (l.chain_id, l.unpacked_size))
            .collect();
        let plan = plan_image_gc(before, marks, &candidates, &sizes);
        report.wanted_bytes = plan.wanted_bytes;
        if plan.remove.is_empty() {
            return Ok(report);
        }
        for image in &plan.remove {
            // A container may have started with it since the plan was made: then it stays.
            let removed = self
                .db()
                .remove_unused_image(image)
                .map_err(StoreError::from)?;
            if removed {
                report.images_removed.push(image.clone());
            }
        }
        report.collected = self.collect_garbage_locked(&gc)?;
        report.usage_percent_after = percent(fs_usage(self.root())?);
        Ok(report)
    }
}
