//! Volumes with Kubernetes semantics: emptyDir (disk or tmpfs with its size limit), hostPath
//! with its type checks, and named node-local volumes (persistentVolumeClaim) that outlive
//! pods. subPath is resolved inside the volume without following symlinks, and the exact
//! directory found is pinned by a bind mount, so a symlink swapped in later cannot point the
//! container's mount at a host path (CVE-2021-25741).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::layout::{LayoutError, NodeLayout};
use crate::pod::spec::{
    ContainerSpec, HostPathType, MountPropagation, PodSpec, StorageMedium, VolumeSource,
};
use crate::runtime::spec::command::expand_vars;
use crate::runtime::spec::mounts::{BindMount, Propagation};
use crate::sys::fs::{create_private_dir, remove_tree, FsError};
use crate::sys::mount::{unmount_under, MountError};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("pod {pod}: volume {volume}: hostPath {path}: {reason}")]
    HostPath {
        pod: String,
        volume: String,
        path: String,
        reason: String,
    },
    #[error("pod {pod}: volume {volume}: {reason}")]
    Unavailable {
        pod: String,
        volume: String,
        reason: String,
    },
    #[error("pod {pod} container {container}: volumeMounts[{index}] {what}: {reason}")]
    Mount {
        pod: String,
        container: String,
        index: usize,
        what: String,
        reason: String,
    },
    #[error("volume {name:?}: names are lowercase letters, digits, '-' and '.' (at most 253)")]
    BadName { name: String },
    #[error("volume {name} is used by pod {pod}; remove the pod first")]
    InUse { name: String, pod: String },
    #[error("no volume named {0:?}; `layerlet volume ls` lists them")]
    Unknown(String),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Mountfs(#[from] MountError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// A pod's volumes on the host, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodVolumes {
    pub sources: BTreeMap<String, PathBuf>,
    /// Volumes mounted read-only whatever the mount says (a read-only claim, and the
    /// configMap, secret and downwardAPI volumes, as kubelet mounts them).
    pub read_only: Vec<String>,
    /// Volumes filled by the atomic writer (`projected`): a subPath goes through `..data`.
    #[serde(default)]
    pub projected: Vec<String>,
}

/// Where named volumes live: `ROOT/volumes/<name>/data`.
pub fn named_volume_dir(layout: &NodeLayout, name: &str) -> Result<PathBuf, VolumeError> {
    check_volume_name(name)?;
    Ok(layout.named_volume_data(name)?)
}

/// A named volume's name is a Kubernetes object name (lowercase DNS subdomain).
fn check_volume_name(name: &str) -> Result<(), VolumeError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(VolumeError::BadName {
            name: name.to_string(),
        })
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), FsError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| FsError::io("chmod", path, e))
}

/// fsGroup: the volume's group becomes fsGroup, with setgid so new files inherit it.
fn apply_fs_group(dir: &Path, gid: u32) -> Result<(), FsError> {
    let walk = |path: &Path| -> Result<(), FsError> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| FsError::io("stat", path, e))?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        std::os::unix::fs::lchown(path, None, Some(gid))
            .map_err(|e| FsError::io("chown", path, e))?;
        let mode = meta.mode() & 0o7777;
        let wanted = if meta.is_dir() {
            mode | 0o2070
        } else {
            mode | 0o060
        };
        set_mode(path, wanted)
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        walk(&path)?;
        if std::fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            for entry in
                std::fs::read_dir(&path).map_err(|e| FsError::io("read directory", &path, e))?
            {
                let entry = entry.map_err(|e| FsError::io("read directory", &path, e))?;
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

fn check_host_path(
    pod: &PodSpec,
    volume: &str,
    path: &str,
    kind: HostPathType,
) -> Result<(), VolumeError> {
    let err = |reason: String| VolumeError::HostPath {
        pod: pod.key(),
        volume: volume.to_string(),
        path: path.to_string(),
        reason,
    };
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    match kind {
        HostPathType::Unset => Ok(()),
        HostPathType::DirectoryOrCreate => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(err(
                "exists but is not a directory (type DirectoryOrCreate)".into(),
            )),
            Err(_) => {
                std::fs::create_dir_all(p).map_err(|e| err(format!("cannot create it: {e}")))?;
                set_mode(p, 0o755).map_err(|e| err(e.to_string()))
            }
        },
        HostPathType::FileOrCreate => {
            match meta {
                Ok(m) if m.is_file() => Ok(()),
                Ok(_) => Err(err("exists but is not a file (type FileOrCreate)".into())),
                Err(_) => {
                    let parent = p.parent().unwrap_or(Path::new("/"));
                    if !parent.is_dir() {
                        return Err(err(format!("its directory {} does not exist (type FileOrCreate creates only the file)", parent.display())));
                    }
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(p)
                        .map(|_| ())
                        .map_err(|e| err(format!("cannot create it: {e}")))
                }
            }
        }
        expected => {
            let m =
                meta.map_err(|_| err(format!("does not exist (type {expected:?} requires it)")))?;
            let ft = m.file_type();
            let ok = match expected {
                HostPathType::Directory => ft.is_dir(),
                HostPathType::File => ft.is_file(),
                HostPathType::Socket => ft.is_socket(),
                HostPathType::CharDevice => ft.is_char_device(),
                HostPathType::BlockDevice => ft.is_block_device(),
                _ => true,
            };
            if ok {
                Ok(())
            } else {
                Err(err(format!("is not a {expected:?}")))
            }
        }
    }
}

/// Creates what the pod's volumes need on the host. emptyDir lives under the pod's data dir
/// (a tmpfs for `medium: Memory`); named volumes are created on first use and kept.
pub fn prepare(layout: &NodeLayout, pod: &PodSpec) -> Result<PodVolumes, VolumeError> {
    let mut out = PodVolumes::default();
    for volume in &pod.volumes {
        let source = match &volume.source {
            VolumeSource::EmptyDir { medium, size_limit } => {
                let dir = layout.pod_volume_dir(&pod.uid, &volume.name)?;
                create_private_dir(&dir)?;
                if *medium == StorageMedium::Memory {
                    let size = size_limit.map(|b| format!(",size={b}")).unwrap_or_default();
                    mount(
                        Some("tmpfs"),
                        &dir,
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        Some(format!("mode=1777{size}").as_str()),
                    )
                    .map_err(|e| VolumeError::Unavailable {
                        pod: pod.key(),
                        volume: volume.name.clone(),
                        reason: format!("mount tmpfs: {e}"),
                    })?;
                }
                // Kubernetes' emptyDir is world-writable, so any user of the pod can use it.
                set_mode(&dir, 0o777)?;
                dir
            }
            VolumeSource::HostPath {
                path,
                host_path_type,
            } => {
                check_host_path(pod, &volume.name, path, *host_path_type)?;
                PathBuf::from(path)
            }
            VolumeSource::PersistentVolumeClaim {
                claim_name,
                read_only,
            } => {
                let dir = named_volume_dir(layout, claim_name)?;
                if !dir.exists() {
                    create_private_dir(&dir)?;
                    set_mode(&dir, 0o777)?;
                }
                if *read_only {
                    out.read_only.push(volume.name.clone());
                }
                dir
            }
            VolumeSource::ConfigMap { .. }
            | VolumeSource::Secret { .. }
            | VolumeSource::DownwardApi { .. }
            | VolumeSource::Projected { .. } => {
                // Empty until the atomic writer fills it (projected::sync_pod).
                let dir = layout.pod_volume_dir(&pod.uid, &volume.name)?;
                create_private_dir(&dir)?;
                if matches!(
                    volume.source,
                    VolumeSource::Secret { .. } | VolumeSource::Projected { .. }
                ) {
                    // Secrets live in memory only, as kubelet keeps them (projected
                    // volumes too, which may hold secrets).
                    mount(
                        Some("tmpfs"),
                        &dir,
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        Some("mode=0755"),
                    )
                    .map_err(|e| VolumeError::Unavailable {
                        pod: pod.key(),
                        volume: volume.name.clone(),
                        reason: format!("mount tmpfs: {e}"),
                    })?;
                }
                set_mode(&dir, 0o755)?;
                out.read_only.push(volume.name.clone());
                out.projected.push(volume.name.clone());
                dir
            }
        };
        if let Some(gid) = pod.security_context.fs_group {
            if !matches!(volume.source, VolumeSource::HostPath { .. })
                && !crate::runtime::storage::projected::is_projected(&volume.source)
            {
                apply_fs_group(&source, gid)?;
            }
        }
        out.sources.insert(volume.name.clone(), source);
    }
    Ok(out)
}

/// Removes the pod's emptyDirs (named volumes stay).
pub fn teardown(layout: &NodeLayout, pod_uid: &str) -> Result<(), VolumeError> {
    let dir = layout.pod_dir(pod_uid)?;
    unmount_under(&dir)?;
    remove_tree(&dir)?;
    Ok(())
}

/// Opens `rel` inside `base` without following any symlink, creating missing directories
/// (as kubelet does for subPath).
fn open_beneath(base: &Path, rel: &str) -> Result<OwnedFd, String> {
    let own = |fd| {
        // SAFETY: fd is fresh.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let mut current = own(nix::fcntl::open(
        base,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open volume: {e}"))?);
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            return Err("must not contain '..'".into());
        }
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(Some(current.as_raw_fd()), *part, flags, Mode::empty()) {
            Ok(fd) => own(fd),
            Err(nix::Error::ENOENT) => {
                nix::sys::stat::mkdirat(
                    Some(current.as_raw_fd()),
                    *part,
                    Mode::from_bits_truncate(0o755),
                )
                .map_err(|e| format!("create {part}: {e}"))?;
                own(
                    openat(Some(current.as_raw_fd()), *part, flags, Mode::empty())
                        .map_err(|e| format!("open {part}: {e}"))?,
                )
            }
            Err(e) => return Err(format!("open {part}: {e}")),
        };
        let stat =
            nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| format!("stat {part}: {e}"))?;
        let kind =
            nix::sys::stat::SFlag::from_bits_truncate(stat.st_mode) & nix::sys::stat::SFlag::S_IFMT;
        if kind == nix::sys::stat::SFlag::S_IFLNK {
            return Err(format!(
                "/{} is a symlink; a subPath may not go through symlinks",
                parts[..=i].join("/")
            ));
        }
        current = fd;
    }
    Ok(current)
}

/// The bind mounts of one container's volumeMounts. subPaths are pinned under `pin_dir`
/// (the container's data dir) by bind mounts of the exact inode found.
pub fn container_mounts(
    pod: &PodSpec,
    container: &ContainerSpec,
    volumes: &PodVolumes,
    env: &[String],
    pin_dir: &Path,
) -> Result<Vec<BindMount>, VolumeError> {
    let mut mounts = Vec::new();
    for (index, m) in container.volume_mounts.iter().enumerate() {
        let err = |what: &str, reason: String| VolumeError::Mount {
            pod: pod.key(),
            container: container.name.clone(),
            index,
            what: what.to_string(),
            reason,
        };
        let base = volumes.sources.get(&m.name).ok_or_else(|| {
            err(
                &format!("name {:?}", m.name),
                "no such volume in the pod".into(),
            )
        })?;
        if m.propagation == MountPropagation::Bidirectional
            && !container.security_context.privileged
        {
            return Err(err(
                "mountPropagation",
                "Bidirectional is allowed only for privileged containers".into(),
            ));
        }
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(expr)) => {
                let lookup = |name: &str| {
                    env.iter().find_map(|e| {
                        e.strip_prefix(name)
                            .and_then(|r| r.strip_prefix('='))
                            .map(str::to_string)
                    })
                };
                Some(expand_vars(expr, &lookup))
            }
            (None, None) => None,
        };
        let source = match sub.filter(|s| !s.is_empty()) {
            None => base.clone(),
            Some(sub) => {
                if sub.starts_with('/') {
                    return Err(err("subPath", format!("{sub:?} must be relative")));
                }
                // Visible names of a written volume are symlinks into `..data`: a subPath
                // is the file in the current version (not updated later, as in Kubernetes).
                let base = if volumes.projected.contains(&m.name) {
                    crate::runtime::storage::projected::current_version(base).ok_or_else(|| {
                        err(
                            "subPath",
                            format!("{sub:?}: the volume has not been written yet"),
                        )
                    })?
                } else {
                    base.clone()
                };
                let fd = open_beneath(&base, &sub)
                    .map_err(|reason| err("subPath", format!("{sub:?}: {reason}")))?;
                let is_dir = nix::sys::stat::fstat(fd.as_raw_fd())
                    .map(|s| {
                        nix::sys::stat::SFlag::from_bits_truncate(s.st_mode)
                            & nix::sys::stat::SFlag::S_IFMT
                            == nix::sys::stat::SFlag::S_IFDIR
                    })
                    .unwrap_or(true);
                let pin = pin_dir.join("subpaths").join(index.to_string());
                std::fs::create_dir_all(pin_dir.join("subpaths"))
                    .map_err(|e| FsError::io("create", pin_dir, e))?;
                if is_dir {
                    std::fs::create_dir_all(&pin).map_err(|e| FsError::io("create", &pin, e))?;
                } else {
                    std::fs::write(&pin, b"").map_err(|e| FsError::io("create", &pin, e))?;
                }
                let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
                mount(
                    Some(proc_path.as_str()),
                    &pin,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| err("subPath", format!("pin {sub:?}: {e}")))?;
                pin
            }
        };
        let is_dir = std::fs::metadata(&source)
            .map(|m| m.is_dir())
            .unwrap_or(true);
        mounts.push(BindMount {
            source,
            destination: m.mount_path.clone(),
            read_only: m.read_only || volumes.read_only.contains(&m.name),
            directory: is_dir,
            propagation: match m.propagation {
                MountPropagation::None => Propagation::Private,
                MountPropagation::HostToContainer => Propagation::Slave,
                MountPropagation::Bidirectional => Propagation::Shared,
            },
        });
    }
    Ok(mounts)
}

/// A named volume as `volume ls` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NamedVolume {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Pods (namespace/name) whose spec names it.
    pub used_by: Vec<String>,
}

/// Named volumes under the data root, with the pods that use them.
pub fn list_named(layout: &NodeLayout, pods: &[PodSpec]) -> Result<Vec<NamedVolume>, VolumeError> {
    let dir = layout.volumes_dir();
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(FsError::io("read directory", &dir, e).into()),
    };
    for entry in entries {
        let entry = entry.map_err(|e| FsError::io("read directory", &dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = named_volume_dir(layout, &name)?;
        out.push(NamedVolume {
            bytes: crate::sys::fs::apparent_size(&path).unwrap_or(0),
            used_by: users(&name, pods),
            name,
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn users(name: &str, pods: &[PodSpec]) -> Vec<String> {
    pods.iter()
        .filter(|p| {
            p.volumes
                .iter()
                .any(|v| matches!(&v.source, VolumeSource::PersistentVolumeClaim { claim_name, .. } if claim_name == name))
        })
        .map(|p| p.key())
        .collect()
}

/// Removes a named volume and its data; refused while a pod uses it.
pub fn remove_named(layout: &NodeLayout, name: &str, pods: &[PodSpec]) -> Result<(), VolumeError> {
    check_volume_name(name)?;
    let dir = layout.named_volume_dir(name)?;
    if !dir.exists() {
        return Err(VolumeError::Unknown(name.to_string()));
    }
    if let Some(pod) = users(name, pods).into_iter().next() {
        return Err(VolumeError::InUse {
            name: name.to_string(),
            pod,
        });
    }
    remove_tree(&dir)?;
    Ok(())
}

/// The data-loss guard: image VOLUME paths the pod mounts nothing at (or above). Writes
/// there go into the writable layer and die with the container.
pub fn unmounted_image_volumes(image_volumes: &[String], mounts: &[BindMount]) -> Vec<String> {
    image_volumes
        .iter()
        .filter(|v| {
            let v = Path::new(v.as_str());
            !mounts
                .iter()
                .any(|m| v.starts_with(Path::new(&m.destination)))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(dest: &str) -> BindMount {
        BindMount {
            source: "/x".into(),
            destination: dest.into(),
            read_only: false,
            directory: true,
            propagation: Propagation::Private,
        }
    }

    #[test]
    fn the_data_loss_guard_names_volume_paths_without_a_mount() {
        let vols = vec!["/var/lib/mysql".to_string(), "/data".to_string()];
        assert_eq!(
            unmounted_image_volumes(&vols, &[bind("/data")]),
            vec!["/var/lib/mysql".to_string()]
        );
        assert!(unmounted_image_volumes(&vols, &[bind("/var/lib"), bind("/data")]).is_empty());
        assert_eq!(
            unmounted_image_volumes(&vols, &[bind("/var/lib/mysqlx")]).len(),
            2
        );
    }

    #[test]
    fn named_volume_names_cannot_leave_the_volume_directory() {
        let layout = NodeLayout::new("/r", "/run/r");
        assert!(named_volume_dir(&layout, "db-data").is_ok());
        for bad in ["..", "a/b", "../etc", "", "UPPER"] {
            assert!(named_volume_dir(&layout, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_subpath_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        assert!(open_beneath(dir.path(), "real").is_ok());
        assert!(open_beneath(dir.path(), "new/dir").is_ok());
        let err = open_beneath(dir.path(), "link/ssl").unwrap_err();
        assert!(err.contains("symlink"), "{err}");
        assert!(open_beneath(dir.path(), "../x").is_err());
    }
}
