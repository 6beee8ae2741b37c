//! Why the agent could not run (or stopped).

use std::path::PathBuf;

use crate::http::HttpError;
use crate::runtime::pods::PodError;
use crate::source::manifests::SourceError;
use crate::sys::lock::LockError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("another layerlet agent runs on data root {root} (it holds {lock}); one agent per data root")]
    AlreadyRunning { root: PathBuf, lock: PathBuf },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Kube(#[from] crate::source::kube::KubeError),
    #[error(transparent)]
    Kubelet(#[from] crate::kubelet::KubeletError),
    #[error(transparent)]
    NodeAddress(#[from] crate::runtime::node::address::NodeAddressError),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
