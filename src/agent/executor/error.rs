//! Why a step failed, typed: the agent files it under the step's name in its metrics and
//! reports its text as a FailedSync event; `layerlet run` prints it with what to do.

use super::image::ImageError;
use crate::pod::objects::ConfigError;
use crate::runtime::container::ContainerError;
use crate::runtime::network::NetworkError;
use crate::runtime::pods::PodError;
use crate::runtime::sandbox::SandboxError;
use crate::runtime::storage::projected::ProjectedError;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The pod's configMap, secret or downwardAPI volumes could not be written.
    #[error(transparent)]
    Volumes(#[from] ProjectedError),
    /// The container's env names an object or key that is not there.
    #[error("pod {pod} container {container}: {source}")]
    Env {
        pod: String,
        container: String,
        #[source]
        source: Box<ConfigError>,
    },
    #[error("pod {pod}: {step} needs the pod's desired spec, and it has none")]
    NoSpec { pod: String, step: &'static str },
    #[error("pod {pod}: its spec has no container {container}")]
    NoContainer { pod: String, container: String },
    /// A foreground run's image could not be resolved (the agent retries with backoff).
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("pod {pod}: carrying out its steps panicked; see the log")]
    Panicked { pod: String },
}

impl StepError {
    /// The reason of the Warning event that tells of it, as kubelet names them.
    pub fn event_reason(&self) -> &'static str {
        match self {
            StepError::Pod(PodError::Sandbox(SandboxError::Network { .. })) => {
                "FailedCreatePodSandBox"
            }
            _ => "FailedSync",
        }
    }

    /// A pod waiting for the node's network to be ready: retried every second, not backed
    /// off, since the wait ends with a read of the Node rather than with a retry.
    pub fn network_not_ready(&self) -> bool {
        matches!(
            self,
            StepError::Pod(PodError::Sandbox(SandboxError::Network { source, .. }))
                if matches!(**source, NetworkError::AwaitingNodePodCidrs)
        )
    }
}
