//! What differs between the agent and a foreground `layerlet run` when steps are carried
//! out: where events go, where ConfigMaps and Secrets come from, and whether lifecycle hooks
//! and probes go with a start and a stop.

use std::time::Duration;

use super::error::StepError;
use crate::image::store::Store;
use crate::pod::spec::{ContainerSpec, PodSpec};
use crate::runtime::container::{ContainerError, Runtime};
use crate::runtime::storage::volumes::PodVolumes;

/// Which pod (and container) an event is about.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// `namespace/name`.
    pub key: &'a str,
    pub uid: &'a str,
    pub container: Option<&'a str>,
}

impl About<'_> {
    pub fn namespace_and_name(&self) -> (&str, &str) {
        self.key.split_once('/').unwrap_or(("default", self.key))
    }
}

/// kubelet's words when ClusterFirst falls back to the node's resolver.
pub const MISSING_CLUSTER_DNS: &str = "the node has no cluster DNS server configured (--cluster-dns) and cannot create the pod with the \"ClusterFirst\" policy; falling back to the \"Default\" policy (the node's resolv.conf)";

/// Something that happened while carrying out a step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepEvent {
    Pulling {
        image: String,
    },
    Pulled {
        image: String,
        seconds: f64,
        bytes: u64,
    },
    PullFailed {
        image: String,
        seconds: f64,
    },
    /// The image declares a VOLUME that the pod mounts nothing on.
    VolumeWithoutMount {
        warning: String,
    },
    Created,
    Started,
    StartFailed {
        message: String,
    },
    StoppingPod,
    /// ClusterFirst fell back to the node's resolver: the node has no `--cluster-dns`.
    MissingClusterDns,
    StoppingContainer {
        id: String,
    },
}

pub trait Host: Send + Sync {
    fn event(&self, about: About<'_>, event: StepEvent);

    /// The container's env from the pod's objects; Ok(None) when an object it needs is
    /// missing and it must wait (CreateContainerConfigError).
    fn container_env(
        &self,
        pod: &PodSpec,
        container: &ContainerSpec,
        pod_ips: &[std::net::IpAddr],
    ) -> Result<Option<Vec<(String, String)>>, StepError>;

    /// Whether the pod's volumes can be made from the objects now (nothing is written), so
    /// a container that must wait does so before its image is pulled.
    fn volumes_ready(&self, pod: &PodSpec, container: &str) -> bool;

    /// Writes the pod's configMap, secret and downwardAPI volumes before `container` is
    /// created; Ok(false) when an object is missing and it must wait.
    fn write_volumes(
        &self,
        pod: &PodSpec,
        container: &str,
        volumes: &PodVolumes,
    ) -> Result<bool, StepError>;

    /// Starts a created container (with its postStart hook, where hooks run).
    fn start(
        &self,
        rt: &Runtime,
        store: &Store,
        pod: &PodSpec,
        container: &ContainerSpec,
        id: &str,
    ) -> Result<(), ContainerError>;

    /// Before a container's stop signal (its preStop hook, where hooks run): the grace
    /// left for the signal.
    fn pre_stop(
        &self,
        rt: &Runtime,
        pod: &PodSpec,
        container: &ContainerSpec,
        id: &str,
        grace: Duration,
    ) -> Duration;

    /// Before the stop signal of every running container of a pod, given as (name, id):
    /// the grace left for it.
    fn pre_stop_pod(
        &self,
        rt: &Runtime,
        pod: &PodSpec,
        running: &[(String, String)],
        grace: Duration,
    ) -> Duration;

    /// The grace period a failed probe set for killing container `id`.
    fn kill_grace(&self, id: &str) -> Option<Duration>;

    /// The pod's recorded spec changed: new labels or annotations reach its volumes.
    fn spec_updated(&self, rt: &Runtime, store: &Store, pod: &PodSpec);
}
