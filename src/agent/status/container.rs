//! One entry of a pod's containerStatuses / initContainerStatuses, as kubelet reports it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus,
};

use super::time;
use crate::agent::plan::{ObservedContainer, ObservedPod, PullFailure};
use crate::agent::prober::Health;
use crate::pod::spec::{ContainerSpec, RestartPolicy};
use crate::runtime::state::Status;

/// How a container instance ended, from its exit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitInfo {
    pub reason: String,
    /// The termination message (terminationMessagePath, or the log's tail).
    pub message: Option<String>,
}

/// What the pod-level summary needs of one container besides its status entry.
pub struct ContainerView {
    pub status: ContainerStatus,
    pub running: bool,
    pub succeeded: bool,
    pub ready: bool,
}

impl ContainerView {
    /// The exit code of the current state when it is terminated.
    pub fn exit_code(&self) -> Option<i32> {
        terminated_code(&self.status)
    }
}

pub fn terminated_code(status: &ContainerStatus) -> Option<i32> {
    status
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// What the container's inputs are: everything known of it this round.
pub struct ContainerInputs<'a> {
    pub pod: Option<&'a ObservedPod>,
    pub pull: Option<&'a PullFailure>,
    pub policy: RestartPolicy,
    pub reasons: &'a BTreeMap<String, ExitInfo>,
    pub health: &'a BTreeMap<String, Health>,
    pub image_id: Option<&'a str>,
    pub init: bool,
    pub now_ms: u64,
}

fn container_id(c: &ObservedContainer) -> String {
    format!("layerlet://{}", c.id)
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn state_of(
    c: &ObservedContainer,
    exit: Option<&ExitInfo>,
    health: Option<&Health>,
) -> ContainerState {
    match c.status {
        Status::Running if health.is_some_and(|h| h.post_start) => {
            waiting("ContainerCreating", None)
        }
        Status::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(c.started_ms),
            }),
            ..ContainerState::default()
        },
        Status::Created => waiting("ContainerCreating", None),
        Status::Exited => {
            let fallback = if c.exit_code == Some(0) {
                "Completed"
            } else {
                "Error"
            };
            ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: c.exit_code.unwrap_or(-1),
                    reason: Some(exit.map_or(fallback, |e| e.reason.as_str()).to_string()),
                    message: exit.and_then(|e| e.message.clone()),
                    started_at: time(c.started_ms),
                    finished_at: time(c.finished_ms),
                    container_id: Some(container_id(c)),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }
        }
    }
}

/// Whether the latest instance ended and the restart policy brings it back.
fn restart_expected(c: &ObservedContainer, policy: RestartPolicy, init: bool) -> bool {
    if c.status != Status::Exited {
        return false;
    }
    let failed = c.exit_code != Some(0);
    match policy {
        RestartPolicy::Always => !init || failed,
        RestartPolicy::OnFailure => failed,
        RestartPolicy::Never => false,
    }
}

pub fn container_status(spec: &ContainerSpec, inputs: &ContainerInputs<'_>) -> ContainerView {
    let mut instances: Vec<&ObservedContainer> = inputs
        .pod
        .map(|p| {
            p.containers
                .iter()
                .filter(|c| c.name == spec.name)
                .collect()
        })
        .unwrap_or_default();
    instances.sort_by_key(|c| std::cmp::Reverse(c.attempt));
    let latest = instances.first().copied();
    let previous = instances.get(1).copied();
    let exit = |c: &ObservedContainer| inputs.reasons.get(&c.id);
    let health_of = |c: &ObservedContainer| inputs.health.get(&c.id);
    let (state, last_state) = match (latest, inputs.pull) {
        (None, Some(p)) => {
            let backoff = inputs.now_ms < p.last_ms + 10_000;
            let reason = if backoff && p.failures > 1 {
                "ImagePullBackOff"
            } else {
                "ErrImagePull"
            };
            (
                waiting(reason, Some(p.message.clone())),
                ContainerState::default(),
            )
        }
        (None, None) => (
            waiting("ContainerCreating", None),
            ContainerState::default(),
        ),
        (Some(c), _) if restart_expected(c, inputs.policy, inputs.init) => (
            waiting(
                "CrashLoopBackOff",
                Some(format!(
                    "back-off restarting failed container {}",
                    spec.name
                )),
            ),
            state_of(c, exit(c), None),
        ),
        (Some(c), _) => (
            state_of(c, exit(c), health_of(c)),
            previous
                .map(|p| state_of(p, exit(p), None))
                .unwrap_or_default(),
        ),
    };
    let h = latest.and_then(health_of);
    let running =
        latest.is_some_and(|c| c.status == Status::Running) && !h.is_some_and(|h| h.post_start);
    // Without an entry in the health table the container has no probes (or its worker has
    // not reported yet): started once running, ready too unless a probe must say so.
    let started = running && h.map_or(spec.startup_probe.is_none(), |h| h.started);
    let ready =
        running && !inputs.init && h.map_or(started && spec.readiness_probe.is_none(), |h| h.ready);
    let succeeded = latest.is_some_and(|c| c.status == Status::Exited && c.exit_code == Some(0));
    let status = ContainerStatus {
        name: spec.name.clone(),
        image: spec.image.to_string(),
        image_id: inputs.image_id.unwrap_or_default().to_string(),
        container_id: latest.map(container_id),
        state: Some(state),
        last_state: Some(last_state),
        ready,
        started: Some(started),
        restart_count: latest.map_or(0, |c| i32::try_from(c.attempt).unwrap_or(i32::MAX)),
        ..ContainerStatus::default()
    };
    ContainerView {
        status,
        running,
        succeeded,
        ready,
    }
}
