//! Carries out the planner's steps on the node. One implementation for the agent (each
//! pod's steps on a blocking thread of their own) and for a foreground `layerlet run` (in
//! its loop); what differs between the two is behind [`Host`].

mod error;
mod host;
mod image;

use std::sync::Arc;
use std::time::Duration;

pub use error::StepError;
pub use host::{About, Host, StepEvent, MISSING_CLUSTER_DNS};
pub use image::{ImageError, Images, PullRuntime};

use crate::agent::plan::{ObservedPod, Step};
use crate::image::store::Store;
use crate::pod::spec::PodSpec;
use crate::runtime::container::Runtime;
use crate::runtime::pods::{
    create_pod, open_pod, pod_containers, pod_spec, remove_pod_within, stop_pod, PodError,
};
use crate::runtime::state::Status;

/// What a pod's steps work from.
#[derive(Debug, Clone, Copy, Default)]
pub struct PodState<'a> {
    /// What the pod should be; None for a pod that goes.
    pub desired: Option<&'a PodSpec>,
    /// What the node has: the spec its containers were made from, and their instances.
    pub observed: Option<&'a ObservedPod>,
}

/// What carrying out one pod's steps came to.
#[derive(Debug, Default)]
pub struct Applied {
    /// Each container whose image was resolved or pulled: the failure, or None.
    pub pulls: Vec<(String, Option<ImageError>)>,
    /// The step that failed; the ones after it were not tried.
    pub failed: Option<(Step, StepError)>,
}

pub struct Executor {
    pub rt: Runtime,
    pub store: Arc<Store>,
    /// The owner its pod records get: "agent", or "cli" for `layerlet run`.
    pub owner: &'static str,
    pub images: Images,
    pub host: Arc<dyn Host>,
}

/// Used when neither the record nor the spec says (Kubernetes' default).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

impl Executor {
    /// Carries out one pod's steps in order, stopping at the first that fails. Blocks: the
    /// agent calls it on a blocking thread.
    pub fn apply(&self, steps: Vec<Step>, pod: PodState<'_>) -> Applied {
        let mut applied = Applied::default();
        for step in steps {
            let done =
                crate::phases::timed(step.name(), || self.apply_step(&step, pod, &mut applied));
            if let Err(e) = done {
                applied.failed = Some((step, e));
                break;
            }
        }
        applied
    }

    fn apply_step(
        &self,
        step: &Step,
        pod: PodState<'_>,
        applied: &mut Applied,
    ) -> Result<(), StepError> {
        let desired = || {
            pod.desired.ok_or_else(|| StepError::NoSpec {
                pod: step.pod_key().to_string(),
                step: step.name(),
            })
        };
        match step {
            Step::CreatePod { key, .. } => {
                let spec = desired()?;
                let (sandbox, _) = create_pod(&self.rt, &self.store, spec, self.owner)?;
                if sandbox.missing_cluster_dns {
                    let about = About {
                        key,
                        uid: &spec.uid,
                        container: None,
                    };
                    self.host.event(about, StepEvent::MissingClusterDns);
                }
                Ok(())
            }
            Step::RemovePod { key, uid, grace } => {
                self.take_down(key, uid, *grace, pod.observed, true)
            }
            Step::StopPod { key, uid, grace } => {
                self.take_down(key, uid, *grace, pod.observed, false)
            }
            Step::StartContainer {
                key, name, attempt, ..
            } => self.start_container(key, desired()?, name, *attempt, applied),
            Step::StopContainer { key, id } => self.stop_container(key, id, pod),
            Step::KillContainer { id, .. } => {
                self.rt.stop(id, Duration::ZERO)?;
                Ok(())
            }
            Step::DeleteContainer { id, .. } => {
                self.rt.delete(&self.store, id)?;
                Ok(())
            }
            Step::UpdateSpec { .. } => {
                let spec = desired()?;
                let json = serde_json::to_string(spec).unwrap_or_default();
                self.store
                    .db()
                    .update_pod_spec(&spec.uid, &json)
                    .map_err(PodError::from)?;
                self.host.spec_updated(&self.rt, &self.store, spec);
                Ok(())
            }
        }
    }

    /// Stops every container of the pod (preStop hooks first) within `grace`, or the pod's
    /// own grace period; then, with `remove`, deletes everything of it.
    fn take_down(
        &self,
        key: &str,
        uid: &str,
        grace: Option<Duration>,
        observed: Option<&ObservedPod>,
        remove: bool,
    ) -> Result<(), StepError> {
        let about = About {
            key,
            uid,
            container: None,
        };
        self.host.event(about, StepEvent::StoppingPod);
        let record = self.store.db().pods().map_err(PodError::from)?;
        let Some(record) = record.into_iter().find(|p| p.uid == uid) else {
            return Ok(());
        };
        let parsed;
        let spec = match observed.filter(|o| o.uid == uid) {
            Some(o) => &o.spec,
            None => {
                parsed = pod_spec(&record)?;
                &parsed
            }
        };
        // A graceful delete through the API sets it (kubelet uses deletionGracePeriodSeconds
        // as given).
        let grace = grace.unwrap_or(spec.termination_grace_period);
        // Bound first: the database guard must not live across status().
        let containers = pod_containers(&self.store.db(), uid)?;
        let running: Vec<(String, String)> = containers
            .iter()
            .filter(|c| self.rt.status(&c.id).is_ok_and(|s| s == Status::Running))
            .map(|c| (c.name.clone(), c.id.clone()))
            .collect();
        if running.is_empty() {
            if remove {
                remove_pod_within(&self.rt, &self.store, &record, grace)?;
            }
            return Ok(());
        }
        let grace = self.host.pre_stop_pod(&self.rt, spec, &running, grace);
        if remove {
            remove_pod_within(&self.rt, &self.store, &record, grace)?;
        } else {
            // Stopped only: the API server is to see the containers terminated before the
            // pod goes.
            stop_pod(&self.rt, &self.store, &record, grace)?;
        }
        Ok(())
    }

    fn start_container(
        &self,
        key: &str,
        spec: &PodSpec,
        name: &str,
        attempt: u32,
        applied: &mut Applied,
    ) -> Result<(), StepError> {
        let container = spec
            .all_containers()
            .find(|c| c.name == name)
            .ok_or_else(|| StepError::NoContainer {
                pod: key.to_string(),
                container: name.to_string(),
            })?;
        let about = About {
            key,
            uid: &spec.uid,
            container: Some(name),
        };
        let host = &*self.host;
        let pod_ips = crate::runtime::sandbox::pod_ips(
            &self
                .rt
                .layout
                .sandbox_dir(&spec.uid)
                .map_err(PodError::from)?,
        );
        let Some(env) = host.container_env(spec, container, &pod_ips)? else {
            return Ok(()); // CreateContainerConfigError until the objects appear
        };
        if !host.volumes_ready(spec, name) {
            return Ok(());
        }
        let image = match self.images.ensure(&self.store, host, about, container) {
            Ok(digest) => {
                applied.pulls.push((name.to_string(), None));
                digest
            }
            Err(e) => {
                applied.pulls.push((name.to_string(), Some(e)));
                return Ok(());
            }
        };
        let (sandbox, volumes) = open_pod(&self.rt, spec)?;
        if !host.write_volumes(spec, name, &volumes)? {
            return Ok(());
        }
        let created = crate::phases::timed("create_container", || {
            self.rt.create(
                &self.store,
                spec,
                &sandbox,
                &volumes,
                container,
                &image,
                attempt,
                &env,
            )
        })?;
        for warning in created.warnings {
            host.event(about, StepEvent::VolumeWithoutMount { warning });
        }
        host.event(about, StepEvent::Created);
        let started = crate::phases::timed("start_process", || {
            host.start(&self.rt, &self.store, spec, container, &created.record.id)
        });
        match started {
            Ok(()) => host.event(about, StepEvent::Started),
            Err(e) => host.event(
                about,
                StepEvent::StartFailed {
                    message: e.to_string(),
                },
            ),
        }
        Ok(())
    }

    /// The container's preStop hook (from the spec it was made from), then the stop signal
    /// with the grace left.
    fn stop_container(&self, key: &str, id: &str, pod: PodState<'_>) -> Result<(), StepError> {
        let grace = self.host.kill_grace(id).unwrap_or_else(|| {
            pod.desired
                .map(|s| s.termination_grace_period)
                .unwrap_or(DEFAULT_GRACE)
        });
        let uid = pod
            .observed
            .map(|o| o.uid.as_str())
            .or(pod.desired.map(|d| d.uid.as_str()))
            .unwrap_or_default();
        let about = About {
            key,
            uid,
            container: None,
        };
        self.host
            .event(about, StepEvent::StoppingContainer { id: id.to_string() });
        let made_from = pod.observed.and_then(|o| {
            let name = &o.containers.iter().find(|c| c.id == id)?.name;
            Some((&o.spec, o.spec.all_containers().find(|c| &c.name == name)?))
        });
        let grace = match made_from {
            Some((spec, container)) => self.host.pre_stop(&self.rt, spec, container, id, grace),
            None => grace,
        };
        self.rt.stop(id, grace)?;
        Ok(())
    }
}
