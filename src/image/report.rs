//! What `images`, `history` and `df` print, computed from a snapshot of the records: pure
//! functions, so the sharing arithmetic is testable without a store. Sizes are apparent
//! bytes (as `du -sb` counts them) of the unpacked layers.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::db::{BlobRecord, ImageRecord, LayerRecord};
use super::digest::Digest;
use super::manifest::ImageConfig;
use super::objects::usage::FileSharing;
use crate::meta::{Db, MetaError};

/// Everything the reports need, read in one go.
#[derive(Debug, Default)]
pub struct StoreSnapshot {
    pub images: Vec<ImageRecord>,
    pub tags: Vec<(String, Digest)>,
    /// Image digest -> chain IDs, bottom first.
    pub chains: BTreeMap<Digest, Vec<Digest>>,
    pub layers: BTreeMap<Digest, LayerRecord>,
    /// Image digest -> containers using it.
    pub users: BTreeMap<Digest, u64>,
    pub blobs: Vec<BlobRecord>,
    /// File-level sharing as measured on disk (empty until [`Store::file_sharing`] fills it).
    ///
    /// [`Store::file_sharing`]: super::store::Store::file_sharing
    pub files: FileSharing,
}

impl StoreSnapshot {
    pub fn load(db: &Db) -> Result<Self, MetaError> {
        let images = db.images()?;
        let mut chains = BTreeMap::new();
        for image in &images {
            chains.insert(image.digest.clone(), db.image_chain(&image.digest)?);
        }
        Ok(StoreSnapshot {
            tags: db.tags()?,
            layers: db
                .layers()?
                .into_iter()
                .map(|l| (l.chain_id.clone(), l))
                .collect(),
            users: db.image_user_counts()?.into_iter().collect(),
            blobs: db.blobs()?,
            chains,
            images,
            files: FileSharing::default(),
        })
    }

    /// Number of images whose stack contains each layer.
    pub fn layer_image_counts(&self) -> BTreeMap<Digest, u64> {
        let mut counts = BTreeMap::new();
        for chain in self.chains.values() {
            let distinct: BTreeSet<&Digest> = chain.iter().collect();
            for c in distinct {
                *counts.entry(c.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    pub fn image_size(&self, image: &Digest) -> u64 {
        self.chains
            .get(image)
            .map(|chain| {
                chain
                    .iter()
                    .filter_map(|c| self.layers.get(c))
                    .map(|l| l.unpacked_size)
                    .sum()
            })
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageRow {
    pub repository: String,
    pub tag: String,
    pub image_id: String,
    pub digest: Digest,
    pub platform: String,
    pub size: u64,
    /// Bytes of layers that at least one other image also uses.
    pub shared_size: u64,
    /// Bytes of files in its other layers stored once with files of other images' layers
    /// (file-level sharing).
    pub file_shared_size: u64,
    pub unique_size: u64,
    pub containers: u64,
    pub created_at: i64,
}

/// One row per name, as `docker images` shows; an image without names gets `<none>`.
pub fn image_rows(snapshot: &StoreSnapshot) -> Vec<ImageRow> {
    let counts = snapshot.layer_image_counts();
    let mut rows = Vec::new();
    for image in &snapshot.images {
        let chain = snapshot
            .chains
            .get(&image.digest)
            .cloned()
            .unwrap_or_default();
        let distinct: BTreeSet<&Digest> = chain.iter().collect();
        let (mut size, mut shared) = (0, 0);
        for c in distinct {
            let bytes = snapshot.layers.get(c).map(|l| l.unpacked_size).unwrap_or(0);
            size += bytes;
            if counts.get(c).copied().unwrap_or(0) > 1 {
                shared += bytes;
            }
        }
        let file_shared = snapshot.files.shared_outside(&chain);
        let mut names: Vec<&String> = snapshot
            .tags
            .iter()
            .filter(|(_, d)| d == &image.digest)
            .map(|(n, _)| n)
            .collect();
        names.sort();
        let base = ImageRow {
            repository: "<none>".into(),
            tag: "<none>".into(),
            image_id: image.config_digest.short().to_string(),
            digest: image.digest.clone(),
            platform: image.platform.clone(),
            size,
            shared_size: shared,
            file_shared_size: file_shared,
            unique_size: size.saturating_sub(shared + file_shared),
            containers: snapshot.users.get(&image.digest).copied().unwrap_or(0),
            created_at: image.created_at,
        };
        if names.is_empty() {
            rows.push(base.clone());
        }
        for name in names {
            let (repository, tag) = split_name(name);
            rows.push(ImageRow {
                repository,
                tag,
                ..base.clone()
            });
        }
    }
    rows
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryRow {
    /// None for history entries that made no layer (ENV, CMD, ...).
    pub diff_id: Option<Digest>,
    pub chain_id: Option<Digest>,
    pub created: Option<String>,
    pub created_by: String,
    pub comment: Option<String>,
    pub compressed_size: u64,
    pub unpacked_size: u64,
    /// Images on this node whose stacks contain this layer.
    pub images_sharing: u64,
}

/// Splits a recorded name into repository and tag (or digest) for listings.
fn split_name(name: &str) -> (String, String) {
    if let Some((repo, digest)) = name.split_once('@') {
        return (repo.to_string(), format!("@{digest}"));
    }
    match name.rfind(':') {
        Some(i) if !name[i + 1..].contains('/') => {
            (name[..i].to_string(), name[i + 1..].to_string())
        }
        _ => (name.to_string(), "<none>".to_string()),
    }
}

/// The image's history, newest first, each layer-making entry matched with its layer.
pub fn history_rows(
    snapshot: &StoreSnapshot,
    image: &Digest,
    config: &ImageConfig,
) -> Vec<HistoryRow> {
    let chain = snapshot.chains.get(image).cloned().unwrap_or_default();
    let counts = snapshot.layer_image_counts();
    let layer_row = |i: usize, entry: Option<&super::manifest::HistoryEntry>| {
        let record = chain.get(i).and_then(|c| snapshot.layers.get(c));
        HistoryRow {
            diff_id: record.map(|r| r.diff_id.clone()),
            chain_id: chain.get(i).cloned(),
            created: entry.and_then(|e| e.created.clone()),
            created_by: entry.and_then(|e| e.created_by.clone()).unwrap_or_default(),
            comment: entry.and_then(|e| e.comment.clone()),
            compressed_size: record.map(|r| r.compressed_size).unwrap_or(0),
            unpacked_size: record.map(|r| r.unpacked_size).unwrap_or(0),
            images_sharing: chain
                .get(i)
                .and_then(|c| counts.get(c))
                .copied()
                .unwrap_or(0),
        }
    };
    let mut rows = Vec::new();
    let mut next_layer = 0;
    for entry in &config.history {
        if entry.empty_layer {
            rows.push(HistoryRow {
                diff_id: None,
                chain_id: None,
                created: entry.created.clone(),
                created_by: entry.created_by.clone().unwrap_or_default(),
                comment: entry.comment.clone(),
                compressed_size: 0,
                unpacked_size: 0,
                images_sharing: 0,
            });
        } else if next_layer < chain.len() {
            rows.push(layer_row(next_layer, Some(entry)));
            next_layer += 1;
        }
    }
    // Layers the history does not describe (it is optional in the spec).
    while next_layer < chain.len() {
        rows.push(layer_row(next_layer, None));
        next_layer += 1;
    }
    rows.reverse();
    rows
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DiskUsage {
    pub images: usize,
    pub layers: usize,
    /// Each unpacked layer once, plus blobs: what the store holds on disk.
    pub physical_bytes: u64,
    /// What every image would take with its own unshared copy of its layers, plus blobs and
    /// layers no image references.
    pub logical_bytes: u64,
    /// What sharing saves: `logical - physical`, the sum of the two below.
    pub saved_bytes: u64,
    /// Saved by images sharing whole layers.
    pub layer_saved_bytes: u64,
    /// Saved by layers sharing files (objects hard-linked into several layers).
    pub file_saved_bytes: u64,
    /// Objects of file-level sharing, each once.
    pub objects: u64,
    pub object_bytes: u64,
    /// Layers and blobs that `gc` would remove.
    pub reclaimable_bytes: u64,
    pub blob_bytes: u64,
}

pub fn disk_usage(snapshot: &StoreSnapshot) -> DiskUsage {
    let counts = snapshot.layer_image_counts();
    let layer_bytes: u64 = snapshot.layers.values().map(|l| l.unpacked_size).sum();
    let unreferenced: u64 = snapshot
        .layers
        .values()
        .filter(|l| !counts.contains_key(&l.chain_id))
        .map(|l| l.unpacked_size)
        .sum();
    let blob_bytes: u64 = snapshot.blobs.iter().map(|b| b.size).sum();
    let referenced: BTreeSet<&Digest> = snapshot
        .images
        .iter()
        .flat_map(|i| {
            [
                Some(&i.digest),
                Some(&i.config_digest),
                i.index_digest.as_ref(),
            ]
        })
        .flatten()
        .collect();
    let unreferenced_blobs: u64 = snapshot
        .blobs
        .iter()
        .filter(|b| !referenced.contains(&b.digest))
        .map(|b| b.size)
        .sum();
    let logical_layers: u64 = snapshot
        .images
        .iter()
        .map(|i| snapshot.image_size(&i.digest))
        .sum::<u64>()
        + unreferenced;
    // Each inode once, as du counts it: files several layers link are one object.
    let file_saved = snapshot.files.saved_bytes.min(layer_bytes);
    let physical = layer_bytes - file_saved + blob_bytes;
    let logical = logical_layers + blob_bytes;
    DiskUsage {
        images: snapshot.images.len(),
        layers: snapshot.layers.len(),
        physical_bytes: physical,
        logical_bytes: logical,
        saved_bytes: logical.saturating_sub(physical),
        layer_saved_bytes: logical_layers.saturating_sub(layer_bytes),
        file_saved_bytes: file_saved,
        objects: snapshot.files.objects,
        object_bytes: snapshot.files.object_bytes,
        reclaimable_bytes: unreferenced + unreferenced_blobs,
        blob_bytes,
    }
}

/// Sizes as docker prints them: SI units, three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else if value >= 100.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else if value >= 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::of_bytes(&[n])
    }

    fn layer(chain: &Digest, size: u64) -> LayerRecord {
        LayerRecord {
            chain_id: chain.clone(),
            diff_id: chain.clone(),
            parent: None,
            blob_digest: chain.clone(),
            media_type: String::new(),
            compressed_size: size / 2,
            unpacked_size: size,
            created_at: 0,
        }
    }

    fn image(n: u8) -> ImageRecord {
        ImageRecord {
            digest: d(100 + n),
            config_digest: d(200 + n),
            index_digest: None,
            platform: "linux/amd64".into(),
            created_at: 0,
            last_used: 0,
        }
    }

    /// Two images over one 800-byte base, each with its own top layer.
    fn two_images_sharing_a_base() -> StoreSnapshot {
        let (base, top_a, top_b) = (d(1), d(2), d(3));
        StoreSnapshot {
            images: vec![image(1), image(2)],
            tags: vec![("r/a:1".into(), d(101)), ("r/b:1".into(), d(102))],
            chains: [
                (d(101), vec![base.clone(), top_a.clone()]),
                (d(102), vec![base.clone(), top_b.clone()]),
            ]
            .into_iter()
            .collect(),
            layers: [layer(&base, 800), layer(&top_a, 10), layer(&top_b, 30)]
                .into_iter()
                .map(|l| (l.chain_id.clone(), l))
                .collect(),
            users: BTreeMap::new(),
            blobs: vec![],
            files: FileSharing::default(),
        }
    }

    #[test]
    fn images_report_shared_and_unique_bytes() {
        let rows = image_rows(&two_images_sharing_a_base());
        let a = rows.iter().find(|r| r.repository == "r/a").unwrap();
        assert_eq!((a.size, a.shared_size, a.unique_size), (810, 800, 10));
        let b = rows.iter().find(|r| r.repository == "r/b").unwrap();
        assert_eq!((b.size, b.shared_size, b.unique_size), (830, 800, 30));
    }

    #[test]
    fn disk_usage_counts_a_shared_base_once() {
        let usage = disk_usage(&two_images_sharing_a_base());
        assert_eq!(usage.physical_bytes, 840);
        assert_eq!(usage.logical_bytes, 1640);
        assert_eq!(usage.saved_bytes, 800);
        assert_eq!(usage.reclaimable_bytes, 0);
    }

    #[test]
    fn a_file_both_top_layers_link_is_counted_once_and_shown_as_file_shared() {
        let mut snapshot = two_images_sharing_a_base();
        snapshot.files = FileSharing {
            objects: 1,
            object_bytes: 6,
            saved_bytes: 6,
            layers: vec![d(2), d(3)],
            shared_inodes: vec![(6, vec![0, 1])],
            ..FileSharing::default()
        };
        let usage = disk_usage(&snapshot);
        assert_eq!(usage.physical_bytes, 834);
        assert_eq!(usage.logical_bytes, 1640);
        assert_eq!(usage.layer_saved_bytes, 800);
        assert_eq!(usage.file_saved_bytes, 6);
        assert_eq!(usage.saved_bytes, 806);
        assert_eq!((usage.objects, usage.object_bytes), (1, 6));
        let rows = image_rows(&snapshot);
        let a = rows
            .iter()
            .find(|r| r.tag == "1" && r.repository == "r/a")
            .unwrap();
        assert_eq!(a.shared_size, 800);
        assert_eq!(a.file_shared_size, 6);
        assert_eq!(a.unique_size, 4);
    }

    #[test]
    fn history_matches_layers_to_entries_that_made_them_newest_first() {
        let snapshot = two_images_sharing_a_base();
        let config: ImageConfig = serde_json::from_str(
            r#"{"rootfs":{"diff_ids":[]},"history":[
                {"created_by":"ADD base"},{"created_by":"ENV X=1","empty_layer":true},{"created_by":"RUN a"}]}"#,
        )
        .unwrap();
        let rows = history_rows(&snapshot, &d(101), &config);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].created_by, "RUN a");
        assert_eq!(rows[0].unpacked_size, 10);
        assert_eq!(rows[0].images_sharing, 1);
        assert_eq!(rows[1].diff_id, None);
        assert_eq!(rows[2].images_sharing, 2);
    }

    #[test]
    fn human_sizes_use_si_units() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000), "1.00kB");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(210_000_000), "210MB");
    }

    #[test]
    fn names_split_into_repository_and_tag() {
        assert_eq!(
            split_name("127.0.0.1:5000/a:v1"),
            ("127.0.0.1:5000/a".into(), "v1".into())
        );
        assert_eq!(
            split_name("127.0.0.1:5000/a"),
            ("127.0.0.1:5000/a".into(), "<none>".into())
        );
        let (_, tag) = split_name("r/a@sha256:abc");
        assert_eq!(tag, "@sha256:abc");
    }
}
