//! `layerlet image verify`: every object of file-level sharing is re-read and checked
//! against its name. A damaged object is unlinked from the store, so no later pull links it,
//! and the layers holding it are removed (their records stay): the next pull of an image
//! that uses them fetches and unpacks them again. Layers of images a container uses are
//! left in place and reported.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::digest::Digest;
use super::objects::verify::DamagedObject;
use super::objects::{objects_dir, ObjectStore};
use super::store::{Store, StoreError};
use crate::sys::fs::FsError;
use crate::sys::lock::LockMode;

/// One damaged object and what was done about it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DamagedReport {
    pub object: DamagedObject,
    /// Layers that held the damaged file and were removed, to be fetched again.
    pub layers_removed: Vec<Digest>,
    /// Layers that hold it but stay, because a container uses their image.
    pub layers_in_use: Vec<Digest>,
    /// Names of the images to pull again.
    pub images: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub objects_checked: u64,
    pub damaged: Vec<DamagedReport>,
}

impl Store {
    /// Checks every object; see the module documentation. Holds the GC lock exclusively,
    /// so no pull links an object meanwhile.
    pub fn verify_objects(&self) -> Result<VerifyReport, StoreError> {
        let _gc = self.gc_guard(LockMode::Exclusive)?;
        let dir = objects_dir(self.root());
        if !dir.is_dir() {
            return Ok(VerifyReport::default());
        }
        let (checked, damaged) = ObjectStore::at(&dir).verify()?;
        let mut report = VerifyReport {
            objects_checked: checked,
            damaged: Vec::new(),
        };
        if damaged.is_empty() {
            return Ok(report);
        }
        let db = self.db();
        let images = db.images()?;
        let tags = db.tags()?;
        let in_use: BTreeSet<Digest> = db
            .image_user_counts()?
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(d, _)| d)
            .collect();
        let mut chains = Vec::new();
        for image in &images {
            chains.push((image.digest.clone(), db.image_chain(&image.digest)?));
        }
        let layers = db.layers()?;
        drop(db);
        for object in damaged {
            let mut entry = DamagedReport {
                object: object.clone(),
                layers_removed: Vec::new(),
                layers_in_use: Vec::new(),
                images: Vec::new(),
            };
            for layer in &layers {
                let path = self.layer_path(&layer.chain_id)?;
                if !holds_inode(&path, object.dev, object.ino)? {
                    continue;
                }
                let users: Vec<&Digest> = chains
                    .iter()
                    .filter(|(_, chain)| chain.contains(&layer.chain_id))
                    .map(|(image, _)| image)
                    .collect();
                for image in &users {
                    let name = tags
                        .iter()
                        .find(|(_, d)| d == *image)
                        .map(|(n, _)| n.clone())
                        .unwrap_or_else(|| image.to_string());
                    if !entry.images.contains(&name) {
                        entry.images.push(name);
                    }
                }
                if users.iter().any(|i| in_use.contains(*i)) {
                    entry.layers_in_use.push(layer.chain_id.clone());
                } else {
                    self.layer_store().remove(&layer.chain_id)?;
                    entry.layers_removed.push(layer.chain_id.clone());
                }
            }
            match std::fs::remove_file(&object.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(FsError::io("remove damaged object", &object.path, e).into()),
            }
            report.damaged.push(entry);
        }
        Ok(report)
    }
}

/// Whether the layer directory `root` has a link to the inode.
fn holds_inode(root: &std::path::Path, dev: u64, ino: u64) -> Result<bool, StoreError> {
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(FsError::io("read directory", &dir, e).into()),
        };
        for entry in entries {
            let entry = entry.map_err(|e| FsError::io("read directory", &dir, e))?;
            let meta = entry
                .metadata()
                .map_err(|e| FsError::io("stat", entry.path(), e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.ino() == ino && meta.dev() == dev {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
