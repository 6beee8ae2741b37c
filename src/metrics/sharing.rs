//! What layer sharing saves: a pure function of the store's records (images, their layer
//! chains, unpacked sizes) and the node's containers (image, bytes written).
//!
//! The arithmetic the founding document asks for: N containers of one image take the image
//! once plus each container's writes (`physical`), where unshared copies would take N
//! images plus the same writes (`logical`). Every container on the node counts, running or
//! exited: an exited container's writable layer still takes its space until deleted.

use std::collections::{BTreeMap, BTreeSet};

use crate::image::digest::Digest;
use crate::image::report::StoreSnapshot;

/// One container as sharing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUse {
    pub image: Digest,
    /// Apparent bytes of its writable layer.
    pub cow_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerShare {
    /// Short diff_id (what `history` shows).
    pub diff_id: String,
    /// Short chain ID: the same diff on two different bases is two layers on disk.
    pub chain_id: String,
    pub bytes: u64,
    pub images: u64,
    pub containers: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageShare {
    /// Its first name, or `<none>`.
    pub name: String,
    /// Short manifest digest.
    pub digest: String,
    pub bytes: u64,
    /// Bytes of its layers that another image uses too.
    pub shared_bytes: u64,
    pub unique_bytes: u64,
    pub containers: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sharing {
    pub layers: Vec<LayerShare>,
    pub images: Vec<ImageShare>,
    /// Every unpacked layer once, each file once: the layer store on disk.
    pub store_bytes: u64,
    /// Objects of file-level sharing and their bytes.
    pub objects: u64,
    pub object_bytes: u64,
    /// What file-level sharing saves across the store's layers.
    pub file_saved_bytes: u64,
    /// Each container: its image's unpacked size plus its writes.
    pub logical_bytes: u64,
    /// Each layer some container uses, once, plus each container's writes.
    pub physical_bytes: u64,
    pub saved_bytes: u64,
}

pub fn sharing(snapshot: &StoreSnapshot, containers: &[ContainerUse]) -> Sharing {
    let image_counts = snapshot.layer_image_counts();
    let mut layer_containers: BTreeMap<&Digest, u64> = BTreeMap::new();
    let mut image_containers: BTreeMap<&Digest, u64> = BTreeMap::new();
    let mut used_layers: BTreeSet<&Digest> = BTreeSet::new();
    let (mut logical, mut writes) = (0u64, 0u64);
    for c in containers {
        *image_containers.entry(&c.image).or_insert(0) += 1;
        logical += snapshot.image_size(&c.image) + c.cow_bytes;
        writes += c.cow_bytes;
        let chain: BTreeSet<&Digest> = snapshot
            .chains
            .get(&c.image)
            .map(|ch| ch.iter().collect())
            .unwrap_or_default();
        for layer in chain {
            *layer_containers.entry(layer).or_insert(0) += 1;
            used_layers.insert(layer);
        }
    }
    // Files several used layers link are on disk once.
    let physical = writes
        + used_layers
            .iter()
            .filter_map(|l| snapshot.layers.get(*l))
            .map(|l| l.unpacked_size)
            .sum::<u64>()
            .saturating_sub(snapshot.files.saved_among(&used_layers));
    let layers = snapshot
        .layers
        .values()
        .map(|l| LayerShare {
            diff_id: l.diff_id.short().to_string(),
            chain_id: l.chain_id.short().to_string(),
            bytes: l.unpacked_size,
            images: image_counts.get(&l.chain_id).copied().unwrap_or(0),
            containers: layer_containers.get(&l.chain_id).copied().unwrap_or(0),
        })
        .collect();
    let images = snapshot
        .images
        .iter()
        .map(|image| {
            let chain: BTreeSet<&Digest> = snapshot
                .chains
                .get(&image.digest)
                .map(|ch| ch.iter().collect())
                .unwrap_or_default();
            let (mut bytes, mut shared) = (0, 0);
            for c in chain {
                let size = snapshot.layers.get(c).map(|l| l.unpacked_size).unwrap_or(0);
                bytes += size;
                if image_counts.get(c).copied().unwrap_or(0) > 1 {
                    shared += size;
                }
            }
            let name = snapshot
                .tags
                .iter()
                .filter(|(_, d)| d == &image.digest)
                .map(|(n, _)| n.as_str())
                .min()
                .unwrap_or("<none>")
                .to_string();
            ImageShare {
                name,
                digest: image.digest.short().to_string(),
                bytes,
                shared_bytes: shared,
                unique_bytes: bytes - shared,
                containers: image_containers.get(&image.digest).copied().unwrap_or(0),
            }
        })
        .collect();
    Sharing {
        layers,
        images,
        store_bytes: snapshot
            .layers
            .values()
            .map(|l| l.unpacked_size)
            .sum::<u64>()
            .saturating_sub(snapshot.files.saved_bytes),
        objects: snapshot.files.objects,
        object_bytes: snapshot.files.object_bytes,
        file_saved_bytes: snapshot.files.saved_bytes,
        logical_bytes: logical,
        physical_bytes: physical,
        saved_bytes: logical.saturating_sub(physical),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::db::{ImageRecord, LayerRecord};

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
            compressed_size: size,
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

    /// Image A = base(800) + a(10); image B = base(800) + b(30); an unused layer of 5.
    fn store() -> StoreSnapshot {
        StoreSnapshot {
            images: vec![image(1), image(2)],
            tags: vec![("r/a:1".into(), d(101)), ("r/b:1".into(), d(102))],
            chains: [(d(101), vec![d(1), d(2)]), (d(102), vec![d(1), d(3)])]
                .into_iter()
                .collect(),
            layers: [
                layer(&d(1), 800),
                layer(&d(2), 10),
                layer(&d(3), 30),
                layer(&d(4), 5),
            ]
            .into_iter()
            .map(|l| (l.chain_id.clone(), l))
            .collect(),
            ..StoreSnapshot::default()
        }
    }

    fn of(image: u8, cow: u64) -> ContainerUse {
        ContainerUse {
            image: d(100 + image),
            cow_bytes: cow,
        }
    }

    #[test]
    fn no_container_shares_nothing_and_the_store_counts_every_layer_once() {
        let s = sharing(&store(), &[]);
        assert_eq!(s.store_bytes, 845);
        assert_eq!(
            (s.logical_bytes, s.physical_bytes, s.saved_bytes),
            (0, 0, 0)
        );
    }

    #[test]
    fn n_containers_of_one_image_take_the_image_once_plus_their_writes() {
        for n in [1u64, 2, 50] {
            let containers: Vec<ContainerUse> = (0..n).map(|i| of(1, 100 + i)).collect();
            let writes: u64 = (0..n).map(|i| 100 + i).sum();
            let s = sharing(&store(), &containers);
            assert_eq!(s.physical_bytes, 810 + writes, "n={n}");
            assert_eq!(s.logical_bytes, n * 810 + writes, "n={n}");
            assert_eq!(s.saved_bytes, (n - 1) * 810, "n={n}");
            let base = s.layers.iter().find(|l| l.bytes == 800).unwrap();
            assert_eq!((base.images, base.containers), (2, n));
            let a = s.images.iter().find(|i| i.name == "r/a:1").unwrap();
            assert_eq!(a.containers, n);
        }
    }

    #[test]
    fn two_images_on_one_base_share_it() {
        let s = sharing(&store(), &[of(1, 7), of(2, 9)]);
        assert_eq!(s.physical_bytes, 800 + 10 + 30 + 16);
        assert_eq!(s.logical_bytes, 810 + 830 + 16);
        assert_eq!(s.saved_bytes, 800);
        let b = s.images.iter().find(|i| i.name == "r/b:1").unwrap();
        assert_eq!((b.bytes, b.shared_bytes, b.unique_bytes), (830, 800, 30));
        let unused = s.layers.iter().find(|l| l.bytes == 5).unwrap();
        assert_eq!((unused.images, unused.containers), (0, 0));
    }
}
