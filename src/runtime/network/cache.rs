//! The attachment cache: one record per attachment, written before the first plugin runs
//! and after each one, so that DEL can always undo an ADD with the same config, arguments
//! and results, whatever moment a crash interrupted it.
//!
//! Only the first write is made durable (fsync): the record's existence is what makes a
//! sweep undo the ADD, and host-local's allocations outlive a power loss. The later writes
//! (results) and the removal are atomic but not synced: an agent crash keeps them (the page
//! cache survives it), and a power loss also ends every namespace, veth and iptables rule
//! they describe, while DEL works from the config alone (an interrupted ADD has no result
//! either). A removal lost to power loss only means one more, harmless, DEL.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::NetworkError;
use super::identity::{AttachmentId, PodRef};
use super::runtime_config::RuntimeConfig;
use crate::sys::fs::{atomic_write, replace_file, FsError};

/// Everything DEL needs about one attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub id: AttachmentId,
    pub pod: PodRef,
    /// The namespace the pod's interface was put in.
    pub netns: PathBuf,
    pub runtime_config: RuntimeConfig,
    /// The config file the chain came from, for messages.
    pub config_file: PathBuf,
    /// The network list as it was when ADD ran.
    pub config: Value,
    /// The last result of the chain so far: DEL's `prevResult`.
    pub result: Option<Value>,
    /// True once every plugin's ADD succeeded.
    pub complete: bool,
}

/// The records of one node, one file each, under `dir`.
#[derive(Debug, Clone)]
pub struct AttachmentCache {
    dir: PathBuf,
}

impl AttachmentCache {
    pub fn new(dir: impl Into<PathBuf>) -> AttachmentCache {
        AttachmentCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &AttachmentId) -> PathBuf {
        self.dir.join(id.file_name())
    }

    /// Writes a new record durably, before anything is done for it.
    pub fn create(&self, record: &AttachmentRecord) -> Result<(), NetworkError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| FsError::io("create", &self.dir, e))?;
        let (path, bytes) = self.encode(record)?;
        Ok(atomic_write(&path, &bytes)?)
    }

    /// Replaces a record atomically (a reader sees the old one or the new one), unsynced.
    pub fn update(&self, record: &AttachmentRecord) -> Result<(), NetworkError> {
        let (path, bytes) = self.encode(record)?;
        Ok(replace_file(&path, &bytes)?)
    }

    fn encode(&self, record: &AttachmentRecord) -> Result<(PathBuf, Vec<u8>), NetworkError> {
        let path = self.path(&record.id);
        match serde_json::to_vec_pretty(record) {
            Ok(bytes) => Ok((path, bytes)),
            Err(source) => Err(NetworkError::CacheRecord { path, source }),
        }
    }

    /// The record of `id`, or None when there is none.
    pub fn read(&self, id: &AttachmentId) -> Result<Option<AttachmentRecord>, NetworkError> {
        read_record(&self.path(id))
    }

    /// Removes the record of `id`; a record already gone is fine.
    pub fn remove(&self, id: &AttachmentId) -> Result<(), NetworkError> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FsError::io("remove", &path, e).into()),
        }
    }

    /// Every record, each read on its own: one unreadable record does not hide the others.
    pub fn list(&self) -> Result<Vec<Result<AttachmentRecord, NetworkError>>, NetworkError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FsError::io("read dir", &self.dir, e).into()),
        };
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| FsError::io("read dir", &self.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Skips the temp files of writes in flight.
            if name.ends_with(".json") && !name.starts_with('.') {
                paths.push(entry.path());
            }
        }
        paths.sort();
        Ok(paths
            .iter()
            .filter_map(|p| read_record(p).transpose())
            .collect())
    }
}

fn read_record(path: &Path) -> Result<Option<AttachmentRecord>, NetworkError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::io("read", path, e).into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| NetworkError::CacheRecord {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(container: &str) -> AttachmentRecord {
        AttachmentRecord {
            id: AttachmentId::pod(container).unwrap(),
            pod: PodRef {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
            },
            netns: "/run/layerlet/pods/u1/ns/net".into(),
            runtime_config: RuntimeConfig::default(),
            config_file: "/etc/cni/net.d/10.conflist".into(),
            config: serde_json::json!({"name": "n"}),
            result: None,
            complete: false,
        }
    }

    #[test]
    fn records_round_trip_and_removal_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AttachmentCache::new(dir.path().join("attachments"));
        assert!(cache.list().unwrap().is_empty());
        let mut rec = record("c1");
        cache.create(&rec).unwrap();
        rec.result = Some(serde_json::json!({"cniVersion": "1.0.0"}));
        rec.complete = true;
        cache.update(&rec).unwrap();
        assert_eq!(cache.read(&rec.id).unwrap(), Some(rec.clone()));
        assert!(dir.path().join("attachments/c1-eth0.json").is_file());
        cache.remove(&rec.id).unwrap();
        cache.remove(&rec.id).unwrap();
        assert_eq!(cache.read(&rec.id).unwrap(), None);
    }

    #[test]
    fn a_corrupt_record_is_reported_without_hiding_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let cache = AttachmentCache::new(dir.path());
        cache.create(&record("a")).unwrap();
        cache.create(&record("c")).unwrap();
        std::fs::write(dir.path().join("b-eth0.json"), "{").unwrap();
        std::fs::write(dir.path().join(".tmp-123"), "{").unwrap();
        let listed = cache.list().unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].as_ref().unwrap().id.container_id, "a");
        let err = listed[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("b-eth0.json"), "{err}");
        assert_eq!(listed[2].as_ref().unwrap().id.container_id, "c");
    }
}
