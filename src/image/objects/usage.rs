//! What file-level sharing saves, measured on disk: the layers' files that are one inode
//! (an object hard-linked into several layers) are counted once, as `du` counts them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{objects_dir, read_dir, ObjectError};
use crate::image::digest::Digest;
use crate::layout::NodeLayout;

/// Calls `visit` with the metadata of `root` and of everything below it (symlinks not
/// followed); entries that vanish meanwhile are skipped.
fn walk(root: &Path, mut visit: impl FnMut(&std::fs::Metadata)) -> Result<(), ObjectError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(super::io_err("stat", &path, e)),
        };
        if meta.is_dir() {
            stack.extend(read_dir(&path)?);
        }
        visit(&meta);
    }
    Ok(())
}

/// Apparent bytes of a layer directory that removing it frees: every entry once, except
/// files also linked from outside it (objects, which the object sweep counts when it
/// removes them).
pub fn private_size(root: &Path) -> Result<u64, ObjectError> {
    let mut links: HashMap<(u64, u64), (u64, u64, u64)> = HashMap::new();
    let mut total = 0u64;
    walk(root, |meta| {
        if meta.is_dir() || meta.nlink() <= 1 {
            total += meta.size();
        } else {
            let seen =
                links
                    .entry((meta.dev(), meta.ino()))
                    .or_insert((meta.nlink(), meta.size(), 0));
            seen.2 += 1;
        }
    })?;
    for (nlink, size, seen) in links.into_values() {
        if seen >= nlink {
            total += size;
        }
    }
    Ok(total)
}

/// File sharing across the store's layers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileSharing {
    /// Objects in `objects/` and their bytes (each once).
    pub objects: u64,
    pub object_bytes: u64,
    /// Bytes the layers would take beyond this if each layer kept its own copy of every
    /// file: the sum of the layers' sizes minus the size of all layers counted together.
    pub saved_bytes: u64,
    /// Per layer (chain ID): bytes of its files that some other layer links too.
    pub layer_shared_bytes: BTreeMap<Digest, u64>,
    /// Inodes several layers link: the layers (indexes into the scan's list) and the size.
    #[serde(skip)]
    pub shared_inodes: Vec<(u64, Vec<usize>)>,
    #[serde(skip)]
    pub layers: Vec<Digest>,
}

impl FileSharing {
    /// Walks every layer directory (`(chain ID, path)`) and the object directory.
    pub fn scan(layers: &[(Digest, PathBuf)], objects_dir: &Path) -> Result<Self, ObjectError> {
        let mut inodes: HashMap<(u64, u64), (u64, Vec<usize>)> = HashMap::new();
        for (index, (_, dir)) in layers.iter().enumerate() {
            walk(dir, |meta| {
                if !meta.is_dir() && meta.nlink() > 1 {
                    let entry = inodes
                        .entry((meta.dev(), meta.ino()))
                        .or_insert((meta.size(), Vec::new()));
                    if entry.1.last() != Some(&index) {
                        entry.1.push(index);
                    }
                }
            })?;
        }
        let mut sharing = FileSharing {
            layers: layers.iter().map(|(d, _)| d.clone()).collect(),
            ..FileSharing::default()
        };
        for (size, in_layers) in inodes.into_values() {
            if in_layers.len() < 2 {
                continue;
            }
            sharing.saved_bytes += size * (in_layers.len() as u64 - 1);
            for &i in &in_layers {
                *sharing
                    .layer_shared_bytes
                    .entry(layers[i].0.clone())
                    .or_insert(0) += size;
            }
            sharing.shared_inodes.push((size, in_layers));
        }
        for fan in read_dir(objects_dir)? {
            if !fan.is_dir() {
                continue;
            }
            for object in read_dir(&fan)? {
                if let Ok(meta) = std::fs::symlink_metadata(&object) {
                    if meta.is_file() {
                        sharing.objects += 1;
                        sharing.object_bytes += meta.size();
                    }
                }
            }
        }
        Ok(sharing)
    }

    /// Walks the layers `chain_ids` of the store at `layout`, and its objects.
    pub fn scan_layout<'a>(
        layout: &NodeLayout,
        chain_ids: impl IntoIterator<Item = &'a Digest>,
    ) -> Result<Self, ObjectError> {
        let mut layers = Vec::new();
        for c in chain_ids {
            // A chain ID is 64 hex digits: always a valid layer directory name.
            if let Ok(dir) = layout.layer_dir(c.hex()) {
                layers.push((c.clone(), dir));
            }
        }
        Self::scan(&layers, &objects_dir(layout.root()))
    }

    /// Bytes saved among `used` layers only (those some container uses).
    pub fn saved_among(&self, used: &BTreeSet<&Digest>) -> u64 {
        let inside: Vec<bool> = self.layers.iter().map(|l| used.contains(l)).collect();
        self.shared_inodes
            .iter()
            .map(|(size, ls)| {
                let n = ls.iter().filter(|&&i| inside[i]).count() as u64;
                size * n.saturating_sub(1)
            })
            .sum()
    }

    /// Bytes of `chain`'s files (one image's layers) that layers outside it link too: what
    /// file sharing saves between this image and the others.
    pub fn shared_outside(&self, chain: &[Digest]) -> u64 {
        let inside: Vec<bool> = self.layers.iter().map(|l| chain.contains(l)).collect();
        self.shared_inodes
            .iter()
            .filter(|(_, ls)| ls.iter().any(|&i| inside[i]) && ls.iter().any(|&i| !inside[i]))
            .map(|(size, _)| size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of_bytes(&[n])
    }

    #[test]
    fn a_file_in_two_layers_is_saved_once_and_shared_outside_one_image() {
        let root = tempfile::tempdir().unwrap();
        let objects = root.path().join("objects");
        std::fs::create_dir_all(objects.join("ab")).unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| root.path().join(format!("l{i}"))).collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(objects.join("ab/obj"), vec![1u8; 1000]).unwrap();
        std::fs::hard_link(objects.join("ab/obj"), dirs[0].join("f")).unwrap();
        std::fs::hard_link(objects.join("ab/obj"), dirs[1].join("f")).unwrap();
        // Twice in one layer (a tar hardlink): still one copy for that layer.
        std::fs::hard_link(objects.join("ab/obj"), dirs[1].join("g")).unwrap();
        std::fs::write(dirs[2].join("own"), b"x").unwrap();
        let layers: Vec<(Digest, PathBuf)> = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| (digest(i as u8), d.clone()))
            .collect();
        let s = FileSharing::scan(&layers, &objects).unwrap();
        assert_eq!(s.objects, 1);
        assert_eq!(s.object_bytes, 1000);
        assert_eq!(s.saved_bytes, 1000);
        assert_eq!(s.layer_shared_bytes.get(&digest(0)), Some(&1000));
        assert_eq!(s.layer_shared_bytes.get(&digest(2)), None);
        assert_eq!(s.shared_outside(&[digest(0)]), 1000);
        assert_eq!(s.shared_outside(&[digest(0), digest(1)]), 0);
        assert_eq!(s.shared_outside(&[digest(2)]), 0);
    }
}
