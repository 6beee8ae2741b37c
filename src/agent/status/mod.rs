//! Pod status as kubelet reports it, computed purely from the spec, what runs and the pull
//! failures: phase, conditions and containerStatuses, built as k8s-openapi objects.

mod container;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, HostIP, Pod, PodCondition, PodIP, PodSpec as ApiPodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::plan::{deadline_exceeded, ObservedPod, PullFailure};
use super::prober::Health;
use crate::pod::downward::NodeInfo;
use crate::pod::spec::{ContainerSpec, PodSpec, RestartPolicy};
use container::{container_status, terminated_code, ContainerInputs};

pub use container::ExitInfo;

/// A time in ms since the epoch as the API's Time; None for unknown (0 or absent).
fn time(ms: Option<u64>) -> Option<Time> {
    let ms = i64::try_from(ms.filter(|ms| *ms > 0)?).ok()?;
    Timestamp::from_millisecond(ms).ok().map(Time)
}

/// Everything one round knows about the pods, shared by every pod's status.
pub struct StatusInputs<'a> {
    pub pulls: &'a BTreeMap<(String, String), PullFailure>,
    pub reasons: &'a BTreeMap<String, ExitInfo>,
    pub health: &'a BTreeMap<String, Health>,
    pub node: &'a NodeInfo,
    pub now_ms: u64,
}

/// What the node has of one pod.
pub struct PodFacts<'a> {
    pub observed: Option<&'a ObservedPod>,
    /// Container name -> the image ID it runs.
    pub image_ids: &'a BTreeMap<String, String>,
    /// The addresses CNI gave the pod.
    pub attached: &'a [std::net::IpAddr],
    /// The pod's startTime.
    pub created_ms: u64,
}

fn condition(kind: &str, holds: bool) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if holds { "True" } else { "False" }.to_string(),
        ..PodCondition::default()
    }
}

fn api_container(c: &ContainerSpec) -> Container {
    Container {
        name: c.name.clone(),
        image: Some(c.image.to_string()),
        ..Container::default()
    }
}

fn restart_policy(policy: RestartPolicy) -> String {
    match policy {
        RestartPolicy::Always => "Always",
        RestartPolicy::OnFailure => "OnFailure",
        RestartPolicy::Never => "Never",
    }
    .to_string()
}

/// The whole pod object, as `kubectl get pod -o json` shows it.
pub fn pod_object(spec: &PodSpec, facts: &PodFacts<'_>, inputs: &StatusInputs<'_>) -> Pod {
    let pod = facts.observed;
    let deadline = pod.is_some_and(|p| deadline_exceeded(spec, p.created_ms, inputs.now_ms));
    // Past the deadline nothing restarts, as under restartPolicy Never.
    let policy = if deadline {
        RestartPolicy::Never
    } else {
        spec.restart_policy
    };
    let view = |c: &ContainerSpec, init: bool| {
        container_status(
            c,
            &ContainerInputs {
                pod,
                pull: inputs.pulls.get(&(spec.uid.clone(), c.name.clone())),
                policy,
                reasons: inputs.reasons,
                health: inputs.health,
                image_id: facts.image_ids.get(&c.name).map(String::as_str),
                init,
                now_ms: inputs.now_ms,
            },
        )
    };
    let inits: Vec<_> = spec.init_containers.iter().map(|c| view(c, true)).collect();
    let apps: Vec<_> = spec.containers.iter().map(|c| view(c, false)).collect();

    let initialized = inits.iter().all(|v| v.succeeded);
    let init_failed = inits
        .iter()
        .any(|v| !v.succeeded && v.exit_code().is_some_and(|c| c != 0));
    let init_done = inits.iter().filter(|v| v.succeeded).count();
    let all = apps.len();
    let terminated = apps.iter().filter(|v| v.exit_code().is_some()).count();
    let failed = apps
        .iter()
        .filter(|v| v.exit_code().is_some_and(|c| c != 0))
        .count();
    let phase = if deadline || (init_failed && spec.restart_policy == RestartPolicy::Never) {
        "Failed"
    } else if !initialized {
        "Pending"
    } else if terminated == all && all > 0 {
        if failed > 0 {
            "Failed"
        } else {
            "Succeeded"
        }
    } else if apps.iter().any(|v| v.running) {
        "Running"
    } else {
        "Pending"
    };
    let ready = initialized && all > 0 && apps.iter().all(|v| v.ready) && !deadline;
    let reason = if deadline {
        Some("DeadlineExceeded".to_string())
    } else if !initialized && !spec.init_containers.is_empty() {
        let crash = inits.iter().any(|v| {
            v.status
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff")
        });
        Some(if crash {
            "Init:CrashLoopBackOff".to_string()
        } else if init_failed {
            "Init:Error".to_string()
        } else {
            format!("Init:{init_done}/{}", spec.init_containers.len())
        })
    } else {
        None
    };
    let pod_ips = crate::pod::downward::pod_ips(spec, inputs.node, facts.attached);
    let status = PodStatus {
        phase: Some(phase.to_string()),
        reason,
        message: deadline
            .then(|| "Pod was active on the node longer than the specified deadline".to_string()),
        host_ip: Some(inputs.node.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: inputs.node.host_ip.clone(),
        }]),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: Some(pod_ips.into_iter().map(|ip| PodIP { ip }).collect()),
        start_time: time(Some(facts.created_ms)),
        conditions: Some(vec![
            condition("PodScheduled", true),
            condition("Initialized", initialized),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ]),
        init_container_statuses: Some(inits.into_iter().map(|v| v.status).collect()),
        container_statuses: Some(apps.into_iter().map(|v| v.status).collect()),
        ..PodStatus::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(spec.namespace.clone()),
            uid: Some(spec.uid.clone()),
            labels: Some(spec.labels.clone()),
            annotations: Some(spec.annotations.clone()),
            creation_timestamp: time(Some(facts.created_ms)),
            ..ObjectMeta::default()
        },
        spec: Some(ApiPodSpec {
            node_name: Some(inputs.node.node_name.clone()),
            restart_policy: Some(restart_policy(spec.restart_policy)),
            containers: spec.containers.iter().map(api_container).collect(),
            init_containers: Some(spec.init_containers.iter().map(api_container).collect()),
            ..ApiPodSpec::default()
        }),
        status: Some(status),
    }
}

/// A pod stopped for good (evicted, removed): a container's last state is its state, not a
/// back-off before a restart that will not come.
pub fn stopped_for_good(status: &mut PodStatus) {
    let lists = [
        status.init_container_statuses.as_mut(),
        status.container_statuses.as_mut(),
    ];
    for c in lists.into_iter().flatten().flatten() {
        let waits = c.state.as_ref().is_some_and(|s| s.waiting.is_some());
        let ended = c
            .last_state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some());
        if waits && ended {
            c.state = c.last_state.take();
            c.last_state = Some(Default::default());
        }
    }
}

/// The phase of a pod stopped for good once every app container has terminated: Succeeded
/// when all exited 0, else Failed. None while one still runs or never ran.
pub fn final_phase(status: &PodStatus) -> Option<&'static str> {
    let containers = status.container_statuses.as_ref()?;
    let codes: Option<Vec<i32>> = containers.iter().map(terminated_code).collect();
    let codes = codes.filter(|c| !c.is_empty())?;
    Some(if codes.iter().all(|c| *c == 0) {
        "Succeeded"
    } else {
        "Failed"
    })
}
