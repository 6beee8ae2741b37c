//! One pod in the foreground (`layerlet run`): the agent's observe → plan → apply for this
//! pod alone, with the same planner and executor, so restarts follow the same restart
//! policy and backoff. An interrupt makes the pod terminating: it only goes down.

pub mod host;

use std::collections::BTreeMap;

use super::executor::{About, Executor, Host, ImageError, Images, PodState, StepError};
use super::observe::observe_container;
use super::plan::{ending, plan, Backoff, Ending, ObservedPod, PlanInput, Step, Terminating};
use super::status::ExitInfo;
use crate::image::store::Store;
use crate::pod::spec::PodSpec;
use crate::runtime::pods::{pod_containers, PodError};
use crate::runtime::records::ContainerRecord;
use crate::time::unix_ms_now;

/// Resolves (pulls, as each container's policy says) every image of the pod before
/// anything of it is made, and pins the results: a foreground run pulls once, up front.
pub fn resolve_images(
    images: &mut Images,
    store: &Store,
    host: &dyn Host,
    spec: &PodSpec,
) -> Result<(), (String, ImageError)> {
    let key = spec.key();
    let mut resolved = Vec::new();
    for c in spec.all_containers() {
        let about = About {
            key: &key,
            uid: &spec.uid,
            container: Some(&c.name),
        };
        let digest = images
            .ensure(store, host, about, c)
            .map_err(|e| (c.name.clone(), e))?;
        resolved.push((c.name.clone(), digest));
    }
    for (name, digest) in resolved {
        images.pin(&name, digest);
    }
    Ok(())
}

pub struct ForegroundPod<'e> {
    exec: &'e Executor,
    key: String,
    uid: String,
    backoff: Backoff,
    /// The one pod, by key, as the planner reads it.
    desired: BTreeMap<String, PodSpec>,
    /// Empty until this run created the pod.
    observed: BTreeMap<String, ObservedPod>,
    /// Its container records, read again after each round that carried out steps.
    records: Vec<ContainerRecord>,
    reasons: BTreeMap<String, ExitInfo>,
    terminating: BTreeMap<String, Terminating>,
}

impl<'e> ForegroundPod<'e> {
    pub fn new(exec: &'e Executor, spec: PodSpec, backoff: Backoff) -> ForegroundPod<'e> {
        let (key, uid) = (spec.key(), spec.uid.clone());
        ForegroundPod {
            exec,
            desired: BTreeMap::from([(key.clone(), spec)]),
            key,
            uid,
            backoff,
            observed: BTreeMap::new(),
            records: Vec::new(),
            reasons: BTreeMap::new(),
            terminating: BTreeMap::new(),
        }
    }

    /// The pod as last observed; None until this run created it.
    pub fn observed(&self) -> Option<&ObservedPod> {
        self.observed.get(&self.key)
    }

    /// How a container instance ended, from its exit record.
    pub fn exit_info(&self, id: &str) -> Option<&ExitInfo> {
        self.reasons.get(id)
    }

    /// Where a container instance's log is.
    pub fn log_path(&self, id: &str) -> Result<std::path::PathBuf, StepError> {
        Ok(self.exec.rt.dirs(id).map_err(PodError::from)?.log())
    }

    /// Every app container has been started once.
    pub fn started(&self) -> bool {
        let Some(pod) = self.observed() else {
            return false;
        };
        pod.spec
            .containers
            .iter()
            .all(|c| pod.latest(&c.name).is_some())
    }

    pub fn interrupted(&self) -> bool {
        !self.terminating.is_empty()
    }

    /// From now on the pod only goes down (it is stopped within its grace period).
    pub fn interrupt(&mut self) {
        let going = Terminating {
            uid: self.uid.clone(),
            grace: None,
            reported_stopped: false,
        };
        self.terminating.insert(self.key.clone(), going);
    }

    /// One round: what runs now, the planner's steps, carried out. A step that fails ends
    /// the run: its error.
    pub fn round(&mut self) -> Result<(), StepError> {
        self.observe()?;
        let input = PlanInput {
            terminating: &self.terminating,
            ..PlanInput::new(&self.desired, &self.observed, self.backoff, unix_ms_now())
        };
        let steps = plan(&input);
        if steps.is_empty() {
            return Ok(());
        }
        let creating = steps.iter().any(|s| matches!(s, Step::CreatePod { .. }));
        let pod = PodState {
            desired: self.desired.get(&self.key),
            observed: self.observed.get(&self.key),
        };
        let applied = self.exec.apply(steps, pod);
        let create_failed = matches!(&applied.failed, Some((Step::CreatePod { .. }, _)));
        if creating && !create_failed {
            self.created()?;
        }
        self.records = match self.observed.contains_key(&self.key) {
            true => pod_containers(&self.exec.store.db(), &self.uid)?,
            false => Vec::new(),
        };
        if let Some((_, e)) = applied.failed {
            return Err(e);
        }
        if let Some(e) = applied.pulls.into_iter().find_map(|(_, e)| e) {
            return Err(e.into());
        }
        self.observe()
    }

    /// The pod's record exists now: it is observed from here on.
    fn created(&mut self) -> Result<(), StepError> {
        let records = self.exec.store.db().pods().map_err(PodError::from)?;
        let created_at = records
            .iter()
            .find(|r| r.uid == self.uid)
            .map(|r| r.created_at)
            .unwrap_or_default();
        if let Some(spec) = self.desired.get(&self.key) {
            let pod = ObservedPod {
                uid: self.uid.clone(),
                spec: std::sync::Arc::new(spec.clone()),
                containers: Vec::new(),
                created_ms: (created_at.max(0) as u64) * 1000,
            };
            self.observed.insert(self.key.clone(), pod);
        }
        Ok(())
    }

    fn observe(&mut self) -> Result<(), StepError> {
        let Some(pod) = self.observed.get_mut(&self.key) else {
            return Ok(());
        };
        pod.containers.clear();
        for record in &self.records {
            let (container, exit) = observe_container(&self.exec.rt, record)?;
            if let Some(exit) = exit {
                self.reasons.insert(record.id.clone(), exit);
            }
            pod.containers.push(container);
        }
        Ok(())
    }

    /// How the pod ended, once nothing of it runs or will start again.
    pub fn ending(&self) -> Option<Ending> {
        let Some(pod) = self.observed() else {
            return self.interrupted().then_some(Ending::Stopped);
        };
        ending(&pod.spec, pod, self.interrupted(), unix_ms_now())
    }

    /// Stops and deletes everything of the pod, if this run created it (`--rm`).
    pub fn remove(&mut self) -> Result<(), StepError> {
        if self.observed().is_none() {
            return Ok(());
        }
        let step = Step::RemovePod {
            key: self.key.clone(),
            uid: self.uid.clone(),
            grace: None,
        };
        let pod = PodState {
            desired: self.desired.get(&self.key),
            observed: self.observed.get(&self.key),
        };
        let applied = self.exec.apply(vec![step], pod);
        self.observed.clear();
        match applied.failed {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}
