//! How the agent carries out steps: events into its event list (and the API server),
//! pull metrics, ConfigMaps and Secrets from its sources, lifecycle hooks and probes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::config::ConfigState;
use super::executor::{About, Host, StepError, StepEvent, MISSING_CLUSTER_DNS};
use super::prober::{self, Prober};
use super::shared::Shared;
use crate::image::store::Store;
use crate::pod::spec::{ContainerSpec, PodSpec};
use crate::runtime::container::{ContainerError, Runtime};
use crate::runtime::storage::volumes::PodVolumes;

pub struct AgentHost {
    pub shared: Arc<Shared>,
    pub config: Arc<ConfigState>,
    pub prober: Arc<Prober>,
}

impl Host for AgentHost {
    fn event(&self, about: About<'_>, event: StepEvent) {
        let (ns, name) = about.namespace_and_name();
        let shared = &self.shared;
        let m = &shared.metrics;
        let container = about.container;
        let normal = |reason: &str, message: String| {
            shared.event("Normal", ns, name, container, reason, message)
        };
        match event {
            StepEvent::Pulling { image } => {
                m.start.pulled(about.uid);
                normal("Pulling", format!("Pulling image {image:?}"));
            }
            StepEvent::Pulled {
                image,
                seconds,
                bytes,
            } => {
                m.pulls.with_label_values(&["success"]).inc();
                m.pull_seconds
                    .with_label_values(&["success"])
                    .observe(seconds);
                m.pull_bytes.inc_by(bytes);
                normal(
                    "Pulled",
                    format!("Successfully pulled image {image:?} in {seconds:.3}s"),
                );
            }
            StepEvent::PullFailed { seconds, .. } => {
                // The Warning follows from the loop, which counts the failures.
                m.pulls.with_label_values(&["failure"]).inc();
                m.pull_seconds
                    .with_label_values(&["failure"])
                    .observe(seconds);
            }
            StepEvent::VolumeWithoutMount { warning } => shared.event(
                "Warning",
                ns,
                name,
                container,
                "VolumeWithoutMount",
                warning,
            ),
            StepEvent::Created => normal(
                "Created",
                format!("Created container {}", container.unwrap_or_default()),
            ),
            StepEvent::Started => normal(
                "Started",
                format!("Started container {}", container.unwrap_or_default()),
            ),
            StepEvent::StartFailed { message } => {
                shared.event("Warning", ns, name, container, "Failed", message)
            }
            StepEvent::StoppingPod => shared.event(
                "Normal",
                ns,
                name,
                None,
                "Killing",
                format!("Stopping pod {}", about.key),
            ),
            StepEvent::MissingClusterDns => shared.event(
                "Warning",
                ns,
                name,
                None,
                "MissingClusterDNS",
                MISSING_CLUSTER_DNS.to_string(),
            ),
            StepEvent::StoppingContainer { id } => shared.event(
                "Normal",
                ns,
                name,
                None,
                "Killing",
                format!("Stopping container {}", &id[..12.min(id.len())]),
            ),
        }
    }

    fn container_env(
        &self,
        pod: &PodSpec,
        container: &ContainerSpec,
        pod_ips: &[std::net::IpAddr],
    ) -> Result<Option<Vec<(String, String)>>, StepError> {
        Ok(self
            .config
            .container_env(&self.shared, pod, container, pod_ips))
    }

    fn volumes_ready(&self, pod: &PodSpec, container: &str) -> bool {
        self.config.volumes_ready(&self.shared, pod, container)
    }

    fn write_volumes(
        &self,
        pod: &PodSpec,
        container: &str,
        volumes: &PodVolumes,
    ) -> Result<bool, StepError> {
        Ok(self
            .config
            .write_volumes(&self.shared, pod, container, volumes)?)
    }

    fn start(
        &self,
        rt: &Runtime,
        _store: &Store,
        pod: &PodSpec,
        container: &ContainerSpec,
        id: &str,
    ) -> Result<(), ContainerError> {
        self.prober.start(rt, pod, container, id).map(|_| ())
    }

    fn pre_stop(
        &self,
        rt: &Runtime,
        pod: &PodSpec,
        container: &ContainerSpec,
        id: &str,
        grace: Duration,
    ) -> Duration {
        prober::pre_stop(rt, &self.shared, pod, container, id, grace)
    }

    fn pre_stop_pod(
        &self,
        rt: &Runtime,
        pod: &PodSpec,
        running: &[(String, String)],
        grace: Duration,
    ) -> Duration {
        prober::pre_stop_pod(rt, &self.shared, pod, running, grace)
    }

    fn kill_grace(&self, id: &str) -> Option<Duration> {
        self.prober.kill_grace(id)
    }

    fn spec_updated(&self, rt: &Runtime, store: &Store, pod: &PodSpec) {
        // New labels or annotations reach the pod's downwardAPI volumes.
        self.config
            .sync_running(rt, store, &BTreeSet::from([pod.uid.clone()]));
    }
}
