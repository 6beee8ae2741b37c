//! Bind mounts into a container, as planned: shared by the container plan, volumes and the
//! termination-message file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A bind mount into the container (pod files, /dev/shm, later volumes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub read_only: bool,
    /// Whether the destination is a directory (else a file is created to mount on).
    pub directory: bool,
    #[serde(default)]
    pub propagation: Propagation,
}

/// Mount propagation of a bind mount (Kubernetes' None, HostToContainer, Bidirectional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Propagation {
    #[default]
    Private,
    Slave,
    Shared,
}
