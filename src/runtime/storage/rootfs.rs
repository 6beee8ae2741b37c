//! A container's root filesystem: its image's shared, read-only layers as overlay lowerdirs
//! plus its own writable copy-on-write layer (upperdir), and the audit of that layer (`diff`).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sys::fs::{create_private_dir, remove_tree, FsError};
use crate::sys::mount::{mount_overlay, unmount, MountError, OverlaySpec};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("image has no layers; a container needs at least one")]
    NoLayers,
}

/// The directories of one container's writable layer, under its container directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerLayer {
    /// Mount points layerlet needs (/etc/hosts, /proc, ...), as a read-only layer of their
    /// own between the image and the writable layer, so they never show in `diff` (docker's
    /// "init layer").
    pub init: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl ContainerLayer {
    pub fn under(container_dir: &Path) -> Self {
        ContainerLayer {
            init: container_dir.join("init"),
            upper: container_dir.join("upper"),
            work: container_dir.join("work"),
            merged: container_dir.join("merged"),
        }
    }

    /// The image's layers (topmost first) with the init layer on top.
    pub fn lowerdirs(&self, image_lowerdirs: &[PathBuf]) -> Vec<PathBuf> {
        let mut lower = Vec::with_capacity(image_lowerdirs.len() + 1);
        lower.push(self.init.clone());
        lower.extend_from_slice(image_lowerdirs);
        lower
    }

    /// The overlay that makes the rootfs: `image_lowerdirs` topmost first.
    pub fn overlay(&self, image_lowerdirs: &[PathBuf], read_only: bool) -> OverlaySpec {
        OverlaySpec {
            lower: self.lowerdirs(image_lowerdirs),
            upper: self.upper.clone(),
            work: self.work.clone(),
            read_only,
            volatile: true,
        }
    }

    /// Creates the init and writable layers and mounts the rootfs on `merged`.
    /// `mount_points` are absolute paths inside the container, with whether each is a
    /// directory.
    pub fn mount(
        &self,
        image_lowerdirs: &[PathBuf],
        read_only: bool,
        mount_points: &[(&str, bool)],
    ) -> Result<OverlaySpec, RootfsError> {
        if image_lowerdirs.is_empty() {
            return Err(RootfsError::NoLayers);
        }
        for dir in [&self.init, &self.upper, &self.work, &self.merged] {
            create_private_dir(dir)?;
        }
        self.make_init_layer(mount_points)?;
        // The upper's root becomes the merged root's attributes: it must not stay 0700.
        fs::set_permissions(
            &self.upper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| FsError::io("chmod", &self.upper, e))?;
        let spec = self.overlay(image_lowerdirs, read_only);
        mount_overlay(&spec, &self.merged)?;
        Ok(spec)
    }

    fn make_init_layer(&self, mount_points: &[(&str, bool)]) -> Result<(), RootfsError> {
        use std::os::unix::fs::PermissionsExt;
        let chmod = |p: &Path, mode: u32| {
            fs::set_permissions(p, fs::Permissions::from_mode(mode))
                .map_err(|e| FsError::io("chmod", p, e))
        };
        chmod(&self.init, 0o755)?;
        for (point, is_dir) in mount_points {
            let rel = point.trim_start_matches('/');
            if rel.is_empty() || rel.split('/').any(|c| c == "..") {
                continue;
            }
            let path = self.init.join(rel);
            let parent = if *is_dir {
                path.as_path()
            } else {
                path.parent().unwrap_or(&self.init)
            };
            fs::create_dir_all(parent).map_err(|e| FsError::io("create directory", parent, e))?;
            let mut dir = parent.to_path_buf();
            while dir != self.init {
                chmod(&dir, 0o755)?;
                if !dir.pop() {
                    break;
                }
            }
            if !*is_dir {
                fs::write(&path, b"").map_err(|e| FsError::io("create", &path, e))?;
            }
        }
        Ok(())
    }

    /// Unmounts the rootfs and destroys the writable layer: deleting a container deletes
    /// everything it wrote outside volumes.
    pub fn destroy(&self) -> Result<(), RootfsError> {
        unmount(&self.merged)?;
        for dir in [&self.merged, &self.work, &self.upper, &self.init] {
            remove_tree(dir)?;
        }
        Ok(())
    }
}

/// One change a container made to its image, as `docker diff` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct Change {
    /// Absolute path inside the container.
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub enum ChangeKind {
    #[serde(rename = "A")]
    Added,
    #[serde(rename = "C")]
    Changed,
    #[serde(rename = "D")]
    Deleted,
}

impl ChangeKind {
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn in_lower(lowerdirs: &[PathBuf], rel: &Path) -> bool {
    lowerdirs
        .iter()
        .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
}

/// Reads a writable layer (`upper`) against the image layers below it: a path the image has
/// is Changed, a new one Added, an overlay whiteout Deleted. Sorted by path.
pub fn diff(upper: &Path, lowerdirs: &[PathBuf]) -> Result<Vec<Change>, RootfsError> {
    let mut changes = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = upper.join(&rel);
        let entries = fs::read_dir(&dir).map_err(|e| FsError::io("read directory", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| FsError::io("read directory", &dir, e))?;
            let child = rel.join(entry.file_name());
            let meta = fs::symlink_metadata(entry.path())
                .map_err(|e| FsError::io("stat", entry.path(), e))?;
            let path = format!("/{}", child.display());
            if is_whiteout(&meta) {
                changes.push(Change {
                    path,
                    kind: ChangeKind::Deleted,
                });
                continue;
            }
            let kind = if in_lower(lowerdirs, &child) {
                ChangeKind::Changed
            } else {
                ChangeKind::Added
            };
            // A directory that exists below and was only traversed by copy-up still counts
            // as changed (its mtime moved), as docker shows it.
            changes.push(Change { path, kind });
            if meta.is_dir() {
                stack.push(child);
            }
        }
    }
    changes.sort();
    Ok(changes)
}
