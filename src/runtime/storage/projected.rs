//! configMap, secret and downwardAPI volumes: the files they hold (computed purely from the
//! pod, the node's objects and the node) and kubelet's atomic writer, which puts them on disk
//! so that a reader in the container sees either the old set of files or the new, never a
//! mix:
//!
//! ```text
//! VOLUME/..2026_11_26_19_02_45.1a2b3c4d/   one version of the files (real files, modes set)
//! VOLUME/..data -> ..2026_11_26_19_02_45.1a2b3c4d   swapped by rename(2), atomically
//! VOLUME/app.conf -> ..data/app.conf       what the container sees (one per top-level name)
//! ```
//!
//! The volume directory itself is bind-mounted read-only into the container, so a swap of
//! `..data` is seen there at once. Secret and projected volumes are a tmpfs (as kubelet
//! makes them): their data never reaches disk.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::pod::downward::{resource_container, resource_value, volume_field, NodeInfo};
use crate::pod::objects::{ConfigError, ConfigObjects};
use crate::pod::spec::{
    DownwardApiFile, DownwardSource, KeyToPath, PodSpec, ProjectedSource, Volume, VolumeSource,
};
use crate::sys::fs::{random_id, remove_tree, FsError};

#[derive(Debug, thiserror::Error)]
pub enum ProjectedError {
    #[error("pod {pod}: {source}")]
    Config {
        pod: String,
        #[source]
        source: ConfigError,
    },
    #[error("volume {volume}: file path {path:?} {reason}")]
    BadPath {
        volume: String,
        path: String,
        reason: &'static str,
    },
    #[error("volume {volume}: {source}")]
    Fs {
        volume: String,
        #[source]
        source: FsError,
    },
}

impl ProjectedError {
    /// A missing object or key: the pod's fault, reported as CreateContainerConfigError.
    pub fn config_error(&self) -> Option<&ConfigError> {
        match self {
            ProjectedError::Config { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path.
pub type Payload = BTreeMap<String, FileEntry>;

/// Whether the writer (not the volume code) fills this volume.
pub fn is_projected(source: &VolumeSource) -> bool {
    matches!(
        source,
        VolumeSource::ConfigMap { .. }
            | VolumeSource::Secret { .. }
            | VolumeSource::DownwardApi { .. }
            | VolumeSource::Projected { .. }
    )
}

/// Files of `entries` (key -> bytes) as a configMap or secret volume lays them out: every
/// key with `default_mode` when `items` is empty, else only the items, at their paths.
fn key_files(
    entries: &BTreeMap<&str, &[u8]>,
    items: &[KeyToPath],
    default_mode: u32,
    optional: bool,
    missing_key: impl Fn(&str) -> ConfigError,
) -> Result<Payload, ConfigError> {
    let mut out = Payload::new();
    if items.is_empty() {
        for (key, data) in entries {
            out.insert(
                key.to_string(),
                FileEntry {
                    data: data.to_vec(),
                    mode: default_mode,
                },
            );
        }
        return Ok(out);
    }
    for item in items {
        match entries.get(item.key.as_str()) {
            Some(data) => {
                out.insert(
                    item.path.clone(),
                    FileEntry {
                        data: data.to_vec(),
                        mode: item.mode.unwrap_or(default_mode),
                    },
                );
            }
            None if optional => {}
            None => return Err(missing_key(&item.key)),
        }
    }
    Ok(out)
}

fn config_map_files(
    pod: &PodSpec,
    volume: &str,
    name: &str,
    items: &[KeyToPath],
    default_mode: u32,
    optional: bool,
    objects: &ConfigObjects,
) -> Result<Payload, ConfigError> {
    match objects.config_map(&pod.namespace, name) {
        None if optional => Ok(Payload::new()),
        None => Err(ConfigError::MissingConfigMap {
            namespace: pod.namespace.clone(),
            name: name.to_string(),
        }),
        Some(cm) => key_files(&cm.entries(), items, default_mode, optional, |key| {
            ConfigError::Volume {
                volume: volume.to_string(),
                reason: format!("configmap references non-existent config key: {key}"),
            }
        }),
    }
}

fn secret_files(
    pod: &PodSpec,
    volume: &str,
    name: &str,
    items: &[KeyToPath],
    default_mode: u32,
    optional: bool,
    objects: &ConfigObjects,
) -> Result<Payload, ConfigError> {
    match objects.secret(&pod.namespace, name) {
        None if optional => Ok(Payload::new()),
        None => Err(ConfigError::MissingSecret {
            namespace: pod.namespace.clone(),
            name: name.to_string(),
        }),
        Some(s) => {
            let entries: BTreeMap<&str, &[u8]> = s
                .data
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            key_files(&entries, items, default_mode, optional, |key| {
                ConfigError::Volume {
                    volume: volume.to_string(),
                    reason: format!("secret references non-existent secret key: {key}"),
                }
            })
        }
    }
}

fn downward_files(
    pod: &PodSpec,
    volume: &str,
    items: &[DownwardApiFile],
    default_mode: u32,
    node: &NodeInfo,
) -> Result<Payload, ConfigError> {
    let mut out = Payload::new();
    for item in items {
        let value = match &item.source {
            DownwardSource::Field(path) => volume_field(pod, path, node),
            DownwardSource::Resource(r) => {
                resource_container(pod, None, r).and_then(|c| resource_value(c, r, node))
            }
        }
        .map_err(|reason| ConfigError::Volume {
            volume: volume.to_string(),
            reason: format!("{}: {reason}", item.path),
        })?;
        out.insert(
            item.path.clone(),
            FileEntry {
                data: value.into_bytes(),
                mode: item.mode.unwrap_or(default_mode),
            },
        );
    }
    Ok(out)
}

/// The files of one configMap, secret, downwardAPI or projected volume (None for other
/// types). A missing object is an error unless its reference is optional (then it adds no
/// files).
pub fn volume_payload(
    pod: &PodSpec,
    volume: &Volume,
    objects: &ConfigObjects,
    node: &NodeInfo,
) -> Result<Option<Payload>, ConfigError> {
    let v = volume.name.as_str();
    let payload = match &volume.source {
        VolumeSource::ConfigMap {
            name,
            items,
            default_mode,
            optional,
        } => config_map_files(pod, v, name, items, *default_mode, *optional, objects)?,
        VolumeSource::Secret {
            secret_name,
            items,
            default_mode,
            optional,
        } => secret_files(
            pod,
            v,
            secret_name,
            items,
            *default_mode,
            *optional,
            objects,
        )?,
        VolumeSource::DownwardApi {
            items,
            default_mode,
        } => downward_files(pod, v, items, *default_mode, node)?,
        VolumeSource::Projected {
            sources,
            default_mode,
        } => {
            let mut out = Payload::new();
            for source in sources {
                out.extend(match source {
                    ProjectedSource::ConfigMap {
                        name,
                        items,
                        optional,
                    } => config_map_files(pod, v, name, items, *default_mode, *optional, objects)?,
                    ProjectedSource::Secret {
                        name,
                        items,
                        optional,
                    } => secret_files(pod, v, name, items, *default_mode, *optional, objects)?,
                    ProjectedSource::DownwardApi { items } => {
                        downward_files(pod, v, items, *default_mode, node)?
                    }
                    ProjectedSource::ServiceAccountToken {
                        service_account,
                        audience,
                        expiration_seconds,
                        path,
                    } => {
                        // The API link keeps the issued token as a node-local secret.
                        let name = crate::pod::api::token_secret_name(
                            &pod.uid,
                            service_account,
                            audience.as_deref(),
                            *expiration_seconds,
                        );
                        let item = KeyToPath {
                            key: crate::pod::api::TOKEN_KEY.to_string(),
                            path: path.clone(),
                            mode: None,
                        };
                        secret_files(pod, v, &name, &[item], *default_mode, false, objects)?
                    }
                });
            }
            out
        }
        _ => return Ok(None),
    };
    Ok(Some(payload))
}

/// Refuses a path that could leave the volume or collide with the writer's own entries.
/// (Validation refuses these already; the writer does not rely on it.)
pub fn check_file_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.starts_with('/') {
        return Err("must be relative");
    }
    if path.starts_with("..") {
        return Err("must not start with '..'");
    }
    if path
        .split('/')
        .any(|c| c == ".." || c.is_empty() || c == ".")
    {
        return Err("must not contain '..', '.' or empty components");
    }
    Ok(())
}

const DATA_LINK: &str = "..data";

/// What `fsGroup` does to a read-only volume's files (kubelet's SetVolumeOwnership):
/// group-readable, directories setgid and group-searchable.
fn with_fs_group(mode: u32, dir: bool, fs_group: Option<u32>) -> u32 {
    match (fs_group, dir) {
        (None, _) => mode,
        (Some(_), false) => mode | 0o440,
        (Some(_), true) => mode | 0o440 | 0o110 | 0o2000,
    }
}

/// The files of one version directory: relative path -> (bytes, permission bits).
fn read_version(dir: &Path) -> Option<BTreeMap<String, (Vec<u8>, u32)>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        for entry in std::fs::read_dir(&path).ok()? {
            let entry = entry.ok()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                stack.push((entry.path(), rel));
            } else {
                let data = std::fs::read(entry.path()).ok()?;
                out.insert(rel, (data, meta.mode() & 0o7777));
            }
        }
    }
    Some(out)
}

/// `..2026_11_26_19_02_45.<random>`: kubelet's name for a version directory.
fn version_name() -> Result<String, FsError> {
    let stamp = crate::time::format_rfc3339_nano(std::time::SystemTime::now());
    let seconds: String = stamp
        .chars()
        .take(19)
        .map(|c| if c.is_ascii_digit() { c } else { '_' })
        .collect();
    Ok(format!("..{seconds}.{}", &random_id()?[..8]))
}

/// Writes `payload` into `dir` as kubelet's atomic writer does. Returns false (and touches
/// nothing) when the files there already are the payload.
pub fn write_payload(
    dir: &Path,
    volume: &str,
    payload: &Payload,
    fs_group: Option<u32>,
) -> Result<bool, ProjectedError> {
    for path in payload.keys() {
        check_file_path(path).map_err(|reason| ProjectedError::BadPath {
            volume: volume.to_string(),
            path: path.clone(),
            reason,
        })?;
    }
    let fs_err = |source: FsError| ProjectedError::Fs {
        volume: volume.to_string(),
        source,
    };
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| ProjectedError::Fs {
            volume: volume.to_string(),
            source: FsError::io(op, path, e),
        }
    };
    let wanted: BTreeMap<String, (Vec<u8>, u32)> = payload
        .iter()
        .map(|(k, f)| {
            (
                k.clone(),
                (f.data.clone(), with_fs_group(f.mode, false, fs_group)),
            )
        })
        .collect();
    let link = dir.join(DATA_LINK);
    let old = std::fs::read_link(&link)
        .ok()
        .map(|t| t.to_string_lossy().into_owned());
    if let Some(old) = &old {
        if read_version(&dir.join(old)).as_ref() == Some(&wanted) {
            return Ok(false);
        }
    }

    // 1. The new version, complete, under a name no reader looks at.
    let name = version_name().map_err(fs_err)?;
    let version = dir.join(&name);
    std::fs::create_dir(&version).map_err(io("create", &version))?;
    set_dir_mode(&version, with_fs_group(0o755, true, fs_group), fs_group).map_err(fs_err)?;
    for (rel, entry) in payload {
        let file = version.join(rel);
        if let Some(parent) = file.parent().filter(|p| *p != version) {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
            // Every directory between the version and the file gets the same treatment.
            let mut p = parent.to_path_buf();
            while p != version {
                set_dir_mode(&p, with_fs_group(0o755, true, fs_group), fs_group).map_err(fs_err)?;
                match p.parent() {
                    Some(up) => p = up.to_path_buf(),
                    None => break,
                }
            }
        }
        write_file(
            &file,
            &entry.data,
            with_fs_group(entry.mode, false, fs_group),
            fs_group,
        )
        .map_err(fs_err)?;
    }

    // 2. The swap: readers see the old version or the new one.
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&name, &tmp_link).map_err(io("symlink", &tmp_link))?;
    std::fs::rename(&tmp_link, &link).map_err(io("rename", &link))?;

    // 3. Visible names: one symlink per top-level entry, through ..data.
    let top: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
    for name in &top {
        let visible = dir.join(name);
        let target = format!("{DATA_LINK}/{name}");
        let ok = std::fs::read_link(&visible).is_ok_and(|t| t == Path::new(&target));
        if !ok {
            let tmp = dir.join(format!("..{name}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&target, &tmp).map_err(io("symlink", &tmp))?;
            std::fs::rename(&tmp, &visible).map_err(io("rename", &visible))?;
        }
    }

    // 4. What the new version no longer has: old visible names and old versions.
    for entry in std::fs::read_dir(dir).map_err(io("read directory", dir))? {
        let entry = entry.map_err(io("read directory", dir))?;
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if entry_name.starts_with("..") {
            if entry_name != DATA_LINK && entry_name != name {
                remove_tree(&path).map_err(fs_err)?;
            }
        } else if !top.contains(entry_name.as_str()) {
            remove_tree(&path).map_err(fs_err)?;
        }
    }
    Ok(true)
}

fn set_dir_mode(path: &Path, mode: u32, fs_group: Option<u32>) -> Result<(), FsError> {
    if let Some(gid) = fs_group {
        std::os::unix::fs::lchown(path, None, Some(gid))
            .map_err(|e| FsError::io("chown", path, e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| FsError::io("chmod", path, e))
}

fn write_file(path: &Path, data: &[u8], mode: u32, fs_group: Option<u32>) -> Result<(), FsError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| FsError::io("create", path, e))?;
    file.write_all(data)
        .map_err(|e| FsError::io("write", path, e))?;
    if let Some(gid) = fs_group {
        std::os::unix::fs::fchown(&file, None, Some(gid))
            .map_err(|e| FsError::io("chown", path, e))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| FsError::io("chmod", path, e))
}

/// Brings every configMap, secret and downwardAPI volume of the pod up to date. Volumes
/// whose objects are there are written even when another one fails; the first failure is
/// returned. Returns the names of the volumes that changed. `sources` is where each volume
/// lives on the node (`PodVolumes::sources`).
pub fn sync_pod(
    pod: &PodSpec,
    sources: &BTreeMap<String, PathBuf>,
    objects: &ConfigObjects,
    node: &NodeInfo,
) -> Result<Vec<String>, ProjectedError> {
    let mut changed = Vec::new();
    let mut first_error = None;
    for volume in &pod.volumes {
        let Some(dir) = sources.get(&volume.name) else {
            continue;
        };
        let result = match volume_payload(pod, volume, objects, node) {
            Ok(None) => continue,
            Ok(Some(payload)) => {
                write_payload(dir, &volume.name, &payload, pod.security_context.fs_group)
            }
            Err(source) => Err(ProjectedError::Config {
                pod: pod.key(),
                source,
            }),
        };
        match result {
            Ok(true) => changed.push(volume.name.clone()),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(changed),
    }
}

/// Where the current version of a written volume is (for subPath mounts, which, as in
/// Kubernetes, keep the version they were made from).
pub fn current_version(dir: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(dir.join(DATA_LINK)).ok()?;
    let name = target.to_string_lossy();
    (name.starts_with("..") && !name.contains('/')).then(|| dir.join(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    FileEntry {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_update_swaps_data_and_removes_the_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = payload(&[("a.conf", "one", 0o644), ("sub/b", "bee", 0o400)]);
        assert!(write_payload(d, "v", &first, None).unwrap());
        let v1 = std::fs::read_link(d.join("..data")).unwrap();
        assert!(v1.to_string_lossy().starts_with("..20"), "{v1:?}");
        assert_eq!(std::fs::read_to_string(d.join("a.conf")).unwrap(), "one");
        assert_eq!(std::fs::read_to_string(d.join("sub/b")).unwrap(), "bee");
        assert_eq!(
            std::fs::read_link(d.join("a.conf")).unwrap(),
            Path::new("..data/a.conf")
        );
        let mode = std::fs::metadata(d.join("sub/b")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o400);

        assert!(
            !write_payload(d, "v", &first, None).unwrap(),
            "the same payload again changes nothing"
        );
        assert_eq!(std::fs::read_link(d.join("..data")).unwrap(), v1);

        let second = payload(&[("a.conf", "two", 0o644), ("c", "sea", 0o644)]);
        assert!(write_payload(d, "v", &second, None).unwrap());
        let v2 = std::fs::read_link(d.join("..data")).unwrap();
        assert_ne!(v1, v2);
        assert!(!d.join(&v1).exists(), "the old version is removed");
        assert_eq!(std::fs::read_to_string(d.join("a.conf")).unwrap(), "two");
        assert!(!d.join("sub").exists(), "names the new version lacks go");
        let mut expected = vec![
            "..data".to_string(),
            v2.to_string_lossy().into_owned(),
            "a.conf".into(),
            "c".into(),
        ];
        expected.sort();
        assert_eq!(names(d), expected);
    }

    #[test]
    fn paths_that_leave_the_volume_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../x", "..data", "a//b", ""] {
            let err = write_payload(dir.path(), "v", &payload(&[(bad, "x", 0o644)]), None)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("volume v: file path {bad:?}")),
                "{err}"
            );
        }
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn fs_group_makes_files_group_readable() {
        let dir = tempfile::tempdir().unwrap();
        write_payload(dir.path(), "v", &payload(&[("k", "x", 0o400)]), Some(1234)).unwrap();
        let meta = std::fs::metadata(dir.path().join("k")).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o440, 1234));
        assert!(
            !write_payload(dir.path(), "v", &payload(&[("k", "x", 0o400)]), Some(1234)).unwrap()
        );
    }

    /// The objects and the one pod of a manifest text.
    fn load(text: &str) -> (ConfigObjects, PodSpec) {
        use crate::pod::{parse_manifest_file, Limits, ParsedObject};
        let mut objects = ConfigObjects::default();
        let mut pod = None;
        for o in
            parse_manifest_file(Path::new("m.yaml"), text.as_bytes(), &Limits::default()).unwrap()
        {
            let key = o.key();
            match o {
                ParsedObject::Pod(p) => pod = Some(p.spec),
                ParsedObject::ConfigMap(c) => {
                    objects.config_maps.insert(key, c);
                }
                ParsedObject::Secret(s) => {
                    objects.secrets.insert(key, s);
                }
            }
        }
        (objects, pod.unwrap())
    }

    fn node() -> NodeInfo {
        NodeInfo {
            node_name: "n".into(),
            host_ip: "127.0.0.1".into(),
            cpu_millis: 2000,
            memory: 1 << 30,
            ephemeral_storage: 1 << 30,
        }
    }

    const OBJECTS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: A, b: B}\nbinaryData: {bin: AAE=}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {t: T}\n---\n";

    fn files(volumes: &str) -> Result<Vec<(String, String, u32)>, String> {
        let (objects, pod) = load(&format!("{OBJECTS}apiVersion: v1\nkind: Pod\nmetadata: {{name: web, labels: {{x: y}}}}\nspec:\n  containers: [{{name: app, image: busybox}}]\n  volumes:\n{volumes}"));
        let payload = volume_payload(&pod, &pod.volumes[0], &objects, &node())
            .map_err(|e| e.to_string())?
            .unwrap();
        Ok(payload
            .into_iter()
            .map(|(p, f)| (p, String::from_utf8_lossy(&f.data).into_owned(), f.mode))
            .collect())
    }

    fn f(p: &str, d: &str, m: u32) -> (String, String, u32) {
        (p.to_string(), d.to_string(), m)
    }

    #[test]
    fn config_map_volumes_hold_every_key_or_just_the_items() {
        assert_eq!(
            files("  - {name: v, configMap: {name: cfg}}\n").unwrap(),
            vec![
                f("a", "A", 0o644),
                f("b", "B", 0o644),
                f("bin", "\0\u{1}", 0o644)
            ]
        );
        assert_eq!(
            files("  - {name: v, configMap: {name: cfg, defaultMode: 0600, items: [{key: a, path: x/a.conf}, {key: b, path: b, mode: 0444}]}}\n").unwrap(),
            vec![f("b", "B", 0o444), f("x/a.conf", "A", 0o600)]
        );
        assert_eq!(
            files("  - {name: v, configMap: {name: cfg, items: [{key: nope, path: n}]}}\n")
                .unwrap_err(),
            "volume v: configmap references non-existent config key: nope"
        );
        assert_eq!(
            files("  - {name: v, configMap: {name: cfg, optional: true, items: [{key: nope, path: n}, {key: a, path: a}]}}\n").unwrap(),
            vec![f("a", "A", 0o644)]
        );
        assert!(
            files("  - {name: v, configMap: {name: gone, optional: true}}\n")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            files("  - {name: v, secret: {secretName: gone}}\n").unwrap_err(),
            "secret \"gone\" not found (namespace default); add it to the manifest directory or mark the reference optional"
        );
    }

    #[test]
    fn projected_volumes_merge_their_sources_with_one_default_mode() {
        assert_eq!(
            files("  - name: v\n    projected:\n      defaultMode: 0440\n      sources:\n      - configMap: {name: cfg, items: [{key: a, path: conf/a}]}\n      - secret: {name: s}\n      - downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}, {path: cpu, resourceFieldRef: {containerName: app, resource: limits.cpu, divisor: 1m}, mode: 0400}]}\n      - configMap: {name: gone, optional: true}\n").unwrap(),
            vec![
                f("conf/a", "A", 0o440),
                f("cpu", "2000", 0o400),
                f("labels", "x=\"y\"", 0o440),
                f("t", "T", 0o440),
            ]
        );
        assert_eq!(
            files("  - name: v\n    projected: {sources: [{configMap: {name: gone}}]}\n").unwrap_err(),
            "configmap \"gone\" not found (namespace default); add it to the manifest directory or mark the reference optional"
        );
    }
}
