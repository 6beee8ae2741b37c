//! How a foreground `layerlet run` carries out steps: no ConfigMaps or Secrets (only
//! optional ones may be missing), no lifecycle hooks or probes, and events to a callback
//! (the command prints its warnings and start errors).

use std::time::Duration;

use crate::agent::executor::{About, Host, StepError, StepEvent};
use crate::image::store::Store;
use crate::pod::downward::NodeInfo;
use crate::pod::env::resolve_env;
use crate::pod::objects::ConfigObjects;
use crate::pod::spec::{ContainerSpec, PodSpec};
use crate::runtime::container::{ContainerError, Runtime};
use crate::runtime::storage::projected::sync_pod;
use crate::runtime::storage::volumes::PodVolumes;

pub type OnEvent = Box<dyn Fn(About<'_>, &StepEvent) + Send + Sync>;

pub struct PlainHost {
    node: NodeInfo,
    on_event: OnEvent,
}

impl PlainHost {
    pub fn new(rt: &Runtime, on_event: OnEvent) -> PlainHost {
        PlainHost {
            node: crate::runtime::node::node_info(
                &rt.node_name,
                foreground_node_address(),
                rt.layout.root(),
            ),
            on_event,
        }
    }
}

/// `layerlet run` has no `--node-ip`: the detected address, as the agent's default.
fn foreground_node_address() -> std::net::IpAddr {
    match crate::runtime::node::address::node_address(None) {
        Ok(address) => address.ip,
        // Unreachable without a flag; loopback keeps a foreground pod running regardless.
        Err(_) => std::net::IpAddr::from([127, 0, 0, 1]),
    }
}

impl Host for PlainHost {
    fn event(&self, about: About<'_>, event: StepEvent) {
        (self.on_event)(about, &event);
    }

    fn container_env(
        &self,
        pod: &PodSpec,
        container: &ContainerSpec,
        pod_ips: &[std::net::IpAddr],
    ) -> Result<Option<Vec<(String, String)>>, StepError> {
        let env = resolve_env(
            pod,
            container,
            &ConfigObjects::default(),
            &self.node,
            pod_ips,
        )
        .map_err(|source| StepError::Env {
            pod: pod.key(),
            container: container.name.clone(),
            source: Box::new(source),
        })?;
        Ok(Some(env.vars))
    }

    fn volumes_ready(&self, _pod: &PodSpec, _container: &str) -> bool {
        true
    }

    /// downwardAPI volumes work; configMap and secret ones only when optional.
    fn write_volumes(
        &self,
        pod: &PodSpec,
        _container: &str,
        volumes: &PodVolumes,
    ) -> Result<bool, StepError> {
        sync_pod(pod, &volumes.sources, &ConfigObjects::default(), &self.node)?;
        Ok(true)
    }

    fn start(
        &self,
        rt: &Runtime,
        _store: &Store,
        _pod: &PodSpec,
        _container: &ContainerSpec,
        id: &str,
    ) -> Result<(), ContainerError> {
        rt.start(id).map(|_| ())
    }

    fn pre_stop(
        &self,
        _rt: &Runtime,
        _pod: &PodSpec,
        _container: &ContainerSpec,
        _id: &str,
        grace: Duration,
    ) -> Duration {
        grace
    }

    fn pre_stop_pod(
        &self,
        _rt: &Runtime,
        _pod: &PodSpec,
        _running: &[(String, String)],
        grace: Duration,
    ) -> Duration {
        grace
    }

    fn kill_grace(&self, _id: &str) -> Option<Duration> {
        None
    }

    fn spec_updated(&self, _rt: &Runtime, _store: &Store, _pod: &PodSpec) {}
}
