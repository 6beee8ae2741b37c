//! The node's files: every path under the data root (`--root`) and the run root
//! (`--run-root`) is built here, and nowhere else. The store and the runtime are handed a
//! [`NodeLayout`] and ask it for places; the modules named below own what goes inside them.
//!
//! ```text
//! ROOT (--root, /var/lib/layerlet): what must survive a reboot
//! ├── layerlet.db                  metadata (SQLite, WAL): images, layers, blobs, tags, pods,
//! │                                containers; the schema is crate::meta's
//! ├── layerlet.db-wal, -shm        SQLite's write-ahead log and its index
//! ├── layerlet.db.open-lock        serialises opening the database (WAL switch, migrations)
//! ├── agent.lock                   held by the one agent of this data root
//! ├── blobs/sha256/<hex>           manifests, configs and indexes, by digest (image::content)
//! ├── layers/<chain-id hex>/       one unpacked layer diff in overlay format, shared by every
//! │                                image and container above it (image::layers)
//! ├── tmp/                         new-* layers being unpacked, blob-* blobs being written,
//! │                                del-* layers being removed: debris after a crash, same
//! │                                filesystem as layers/ and blobs/ so renames are atomic
//! ├── locks/
//! │   ├── gc                       shared by every pull and import, exclusive for gc
//! │   └── layer-<chain-id hex>     one writer per layer across processes
//! ├── containers/<id>/             one container's data (runtime::storage::rootfs and
//! │                                runtime::container): upper/ and work/ (its writable
//! │                                layer), init/, merged/, subpaths/, container.log,
//! │                                termination-log
//! ├── pods/<uid>/volumes/<volume>/ the pod's emptyDir and projected volumes; go with the pod
//! │                                (runtime::storage::volumes)
//! ├── volumes/<name>/data/         named volumes (persistentVolumeClaim): outlive pods
//! ├── cni/                         pod networking (runtime::network)
//! │   ├── attachments/<id>.json    each pod's CNI attachment: config, runtime config and
//! │   │                            result, so DEL gets what ADD got
//! │   ├── ipam/                    host-local's address store for the default network
//! │   └── layerlet.conflist        the default network, used when --cni-conf-dir has none
//! ├── pki/                         the kubelet API's self-signed serving certificate and key
//! └── seccomp/                     Localhost seccomp profiles (localhostProfile is relative
//!                                  to it)
//!
//! RUN_ROOT (--run-root, /run/layerlet): runtime state that a reboot must clear
//! ├── containers/<id>/             plan.json, started.json, exited.json, monitor.log: what
//! │                                the container's monitor reads and writes
//! │                                (runtime::process::monitor, runtime::state)
//! └── pods/<uid>/                  the pod's sandbox (runtime::sandbox): ns/{net,ipc,uts}
//!                                  pinned namespaces, shm/, hosts, hostname, resolv.conf,
//!                                  volumes.json, ips (the pod's addresses from CNI)
//! ```
//!
//! A name that becomes one path component (a container ID, a pod UID, a volume name, a
//! digest's hex) is checked where its path is built: one non-empty component, never `.` or
//! `..`, no `/` and no NUL. Callers with stricter rules (pod UIDs, volume names) check those
//! first, with errors that name the pod or the field.

use std::path::{Path, PathBuf};

/// The data root when `--root` is not given.
pub const DEFAULT_ROOT: &str = "/var/lib/layerlet";
/// The run root when `--run-root` is not given.
pub const DEFAULT_RUN_ROOT: &str = "/run/layerlet";

/// Longest file name Linux filesystems accept (NAME_MAX).
const NAME_MAX: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{what} {value:?} cannot name an entry of {parent}: it must be one path component (not empty, not '.' or '..', no '/' or NUL, at most {NAME_MAX} bytes)")]
    BadComponent {
        what: &'static str,
        value: String,
        parent: PathBuf,
    },
}

/// Where one node keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    root: PathBuf,
    run_root: PathBuf,
}

impl Default for NodeLayout {
    fn default() -> Self {
        NodeLayout::new(DEFAULT_ROOT, DEFAULT_RUN_ROOT)
    }
}

impl NodeLayout {
    pub fn new(root: impl Into<PathBuf>, run_root: impl Into<PathBuf>) -> Self {
        NodeLayout {
            root: root.into(),
            run_root: run_root.into(),
        }
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run root.
    pub fn run_root(&self) -> &Path {
        &self.run_root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("layerlet.db")
    }

    pub fn database_open_lock(&self) -> PathBuf {
        self.root.join("layerlet.db.open-lock")
    }

    pub fn agent_lock(&self) -> PathBuf {
        self.root.join("agent.lock")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// A blob, by the hex of its sha256 digest.
    pub fn blob(&self, hex: &str) -> Result<PathBuf, LayoutError> {
        child(&self.blobs_dir(), "blob digest", hex)
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// An unpacked layer, by the hex of its chain ID.
    pub fn layer_dir(&self, chain_id_hex: &str) -> Result<PathBuf, LayoutError> {
        child(&self.layers_dir(), "layer chain ID", chain_id_hex)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub fn gc_lock(&self) -> PathBuf {
        self.locks_dir().join("gc")
    }

    pub fn layer_lock(&self, chain_id_hex: &str) -> Result<PathBuf, LayoutError> {
        check("layer chain ID", chain_id_hex, &self.locks_dir())?;
        Ok(self.locks_dir().join(format!("layer-{chain_id_hex}")))
    }

    /// Every container's data directory is an entry of this one.
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// A container's data: its writable layer and its log.
    pub fn container_dir(&self, id: &str) -> Result<PathBuf, LayoutError> {
        child(&self.containers_dir(), "container ID", id)
    }

    /// Every pod's data directory (its volumes) is an entry of this one.
    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// A pod's data: what goes when the pod goes.
    pub fn pod_dir(&self, uid: &str) -> Result<PathBuf, LayoutError> {
        child(&self.pods_dir(), "pod UID", uid)
    }

    /// A pod's emptyDir and projected volumes are entries of this one.
    pub fn pod_volumes_dir(&self, uid: &str) -> Result<PathBuf, LayoutError> {
        Ok(self.pod_dir(uid)?.join("volumes"))
    }

    /// One emptyDir or projected volume of a pod.
    pub fn pod_volume_dir(&self, uid: &str, volume: &str) -> Result<PathBuf, LayoutError> {
        child(&self.pod_volumes_dir(uid)?, "volume name", volume)
    }

    /// Every named volume is an entry of this one.
    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// A named volume: removing it removes the volume.
    pub fn named_volume_dir(&self, name: &str) -> Result<PathBuf, LayoutError> {
        child(&self.volumes_dir(), "volume name", name)
    }

    /// What a named volume holds: the directory pods mount.
    pub fn named_volume_data(&self, name: &str) -> Result<PathBuf, LayoutError> {
        Ok(self.named_volume_dir(name)?.join("data"))
    }

    /// Each pod's CNI attachment record.
    pub fn cni_attachments_dir(&self) -> PathBuf {
        self.root.join("cni").join("attachments")
    }

    pub fn cni_ipam_dir(&self) -> PathBuf {
        self.root.join("cni").join("ipam")
    }

    /// The default network's conflist, written when the conf dir has none.
    pub fn cni_default_conflist(&self) -> PathBuf {
        self.root.join("cni").join("layerlet.conflist")
    }

    /// The Node's `spec.podCIDRs` as last read (kube mode), so a restart uses them at once.
    pub fn cni_node_pod_cidrs(&self) -> PathBuf {
        self.root.join("cni").join("node-pod-cidrs")
    }

    /// The kubelet API's self-signed serving certificate and key, made once.
    pub fn pki_dir(&self) -> PathBuf {
        self.root.join("pki")
    }

    /// Where Localhost seccomp profiles are looked up.
    pub fn seccomp_dir(&self) -> PathBuf {
        self.root.join("seccomp")
    }

    /// Every container's run directory is an entry of this one.
    pub fn run_containers_dir(&self) -> PathBuf {
        self.run_root.join("containers")
    }

    /// A container's run state: its plan, its state files, its monitor's log.
    pub fn container_run_dir(&self, id: &str) -> Result<PathBuf, LayoutError> {
        child(&self.run_containers_dir(), "container ID", id)
    }

    /// Every pod sandbox is an entry of this one.
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.run_root.join("pods")
    }

    /// A pod's sandbox: pinned namespaces, /dev/shm, its /etc files.
    pub fn sandbox_dir(&self, uid: &str) -> Result<PathBuf, LayoutError> {
        child(&self.sandboxes_dir(), "pod UID", uid)
    }
}

fn child(parent: &Path, what: &'static str, name: &str) -> Result<PathBuf, LayoutError> {
    check(what, name, parent)?;
    Ok(parent.join(name))
}

fn check(what: &'static str, name: &str, parent: &Path) -> Result<(), LayoutError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0']);
    if ok {
        Ok(())
    } else {
        Err(LayoutError::BadComponent {
            what,
            value: name.to_string(),
            parent: parent.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> NodeLayout {
        NodeLayout::new("/data", "/run/l")
    }

    #[test]
    fn the_tree_matches_the_documented_places() {
        let l = layout();
        assert_eq!(l.database(), Path::new("/data/layerlet.db"));
        assert_eq!(l.agent_lock(), Path::new("/data/agent.lock"));
        assert_eq!(
            l.blob("ab12").unwrap(),
            Path::new("/data/blobs/sha256/ab12")
        );
        assert_eq!(l.layer_dir("cd34").unwrap(), Path::new("/data/layers/cd34"));
        assert_eq!(
            l.layer_lock("cd34").unwrap(),
            Path::new("/data/locks/layer-cd34")
        );
        assert_eq!(l.gc_lock(), Path::new("/data/locks/gc"));
        assert_eq!(
            l.container_dir("c1").unwrap(),
            Path::new("/data/containers/c1")
        );
        assert_eq!(
            l.pod_volume_dir("u1", "cache").unwrap(),
            Path::new("/data/pods/u1/volumes/cache")
        );
        assert_eq!(
            l.named_volume_data("db").unwrap(),
            Path::new("/data/volumes/db/data")
        );
        assert_eq!(l.seccomp_dir(), Path::new("/data/seccomp"));
        assert_eq!(
            l.container_run_dir("c1").unwrap(),
            Path::new("/run/l/containers/c1")
        );
        assert_eq!(l.sandbox_dir("u1").unwrap(), Path::new("/run/l/pods/u1"));
    }

    #[test]
    fn names_that_would_leave_their_directory_are_refused() {
        let l = layout();
        let long = "x".repeat(NAME_MAX + 1);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "/etc",
            "a\0b",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    l.container_dir(bad),
                    Err(LayoutError::BadComponent {
                        what: "container ID",
                        ..
                    })
                ),
                "{bad:?}"
            );
            assert!(l.sandbox_dir(bad).is_err(), "{bad:?}");
            assert!(l.named_volume_dir(bad).is_err(), "{bad:?}");
            assert!(l.pod_volume_dir("u1", bad).is_err(), "{bad:?}");
            assert!(l.pod_volume_dir(bad, "v").is_err(), "{bad:?}");
            assert!(l.layer_dir(bad).is_err(), "{bad:?}");
            assert!(l.layer_lock(bad).is_err(), "{bad:?}");
            assert!(l.blob(bad).is_err(), "{bad:?}");
        }
        assert!(
            l.container_dir("..x").is_ok(),
            "a dotted name is still one component"
        );
    }

    #[test]
    fn a_refusal_names_the_field_the_value_and_the_parent() {
        let err = layout().sandbox_dir("../x").unwrap_err().to_string();
        assert!(err.contains("pod UID \"../x\""), "{err}");
        assert!(err.contains("/run/l/pods"), "{err}");
    }
}
