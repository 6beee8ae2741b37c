//! The pure heart of the agent: `plan(&PlanInput) -> steps`. Level-triggered and
//! idempotent: it is not told why it runs, and running it again after a crash, with the same
//! inputs, gives the same steps. Everything it needs is in its input (failed pulls,
//! evictions, the API server's holds, pods on their way out, pods whose steps keep failing),
//! so every lifecycle path is a table test. The agent and a foreground `layerlet run` both
//! follow it.

mod ending;
mod input;
mod rules;

use std::collections::BTreeSet;

pub use ending::{ending, Ending};
pub use input::{
    Backoff, Failing, ObservedContainer, ObservedPod, PlanInput, PullFailure, Step, Terminating,
};
pub use rules::deadline_exceeded;
use rules::{pull_blocked, restart_due, retry_later, should_restart};

use crate::pod::spec::{PodSpec, RestartPolicy};
use crate::runtime::state::Status;

/// Everything about the pod except its app containers and its labels and annotations: a
/// change here replaces the pod. Labels and annotations change in place, as in Kubernetes
/// (the record is updated, and downwardAPI volumes follow).
fn pod_level(spec: &PodSpec) -> PodSpec {
    let mut s = spec.clone();
    s.containers.clear();
    s.labels.clear();
    s.annotations.clear();
    s
}

pub fn plan(input: &PlanInput<'_>) -> Vec<Step> {
    let mut steps = Vec::new();
    // Keys whose pod goes in this round (or is on its way out): a successor under the same
    // key is created in a later round, once it is gone.
    let mut going = BTreeSet::new();
    for (key, pod) in input.observed {
        if let Some(t) = input.terminating(key, &pod.uid) {
            going.insert(key.as_str());
            let (key, uid, grace) = (key.clone(), pod.uid.clone(), t.grace);
            if pod.running().next().is_some() {
                steps.push(Step::StopPod { key, uid, grace });
            } else if t.reported_stopped {
                steps.push(Step::RemovePod { key, uid, grace });
            }
            continue;
        }
        let keep = input
            .desired
            .get(key)
            .is_some_and(|d| d.uid == pod.uid && pod_level(d) == pod_level(&pod.spec));
        if !keep {
            going.insert(key.as_str());
            steps.push(Step::RemovePod {
                key: key.clone(),
                uid: pod.uid.clone(),
                grace: None,
            });
        }
    }
    for (key, spec) in input.desired {
        // A pod on its way out never starts a container, whatever its policy says.
        if going.contains(key.as_str()) || input.terminating(key, &spec.uid).is_some() {
            continue;
        }
        match input.observed.get(key) {
            None if input.finished.contains(key) => {}
            None => {
                steps.push(Step::CreatePod { key: key.clone() });
                steps.extend(plan_containers(input, key, spec, None));
            }
            // Evicted: Failed for good. Whatever still runs is killed; nothing starts.
            Some(pod) if input.evicted.contains(&pod.uid) => {
                steps.extend(pod.running().map(|c| Step::KillContainer {
                    key: key.clone(),
                    id: c.id.clone(),
                }));
            }
            Some(pod) => steps.extend(plan_containers(input, key, spec, Some(pod))),
        }
    }
    steps.retain(|s| !retry_later(input.failing.get(s.pod_key()), &input.backoff, input.now_ms));
    steps
}

fn plan_containers(
    input: &PlanInput<'_>,
    key: &str,
    spec: &PodSpec,
    pod: Option<&ObservedPod>,
) -> Vec<Step> {
    let (backoff, now_ms) = (&input.backoff, input.now_ms);
    let mut steps = Vec::new();
    // Built only for a pod the node does not have yet: a copy of every spec each round
    // showed in profiles at 1,000 pods.
    let empty;
    let pod = match pod {
        Some(pod) => pod,
        None => {
            empty = ObservedPod {
                uid: spec.uid.clone(),
                spec: std::sync::Arc::new(spec.clone()),
                containers: Vec::new(),
                created_ms: now_ms,
            };
            &empty
        }
    };
    if deadline_exceeded(spec, pod.created_ms, now_ms) {
        for c in pod.running() {
            steps.push(Step::StopContainer {
                key: key.to_string(),
                id: c.id.clone(),
            });
        }
        return steps;
    }
    let held = input.held.contains(key);
    let start = |name: &str, init: bool, attempt: u32, steps: &mut Vec<Step>| {
        if !held && !pull_blocked(input.pulls, &spec.uid, name, backoff, now_ms) {
            steps.push(Step::StartContainer {
                key: key.to_string(),
                name: name.to_string(),
                init,
                attempt,
            });
        }
    };
    // Starting instance N: instances older than N-1 go (N-1 stays for `logs --previous`).
    let prune = |name: &str, new_attempt: u32, steps: &mut Vec<Step>| {
        for c in pod
            .containers
            .iter()
            .filter(|c| c.name == name && c.attempt + 1 < new_attempt)
        {
            if c.status != Status::Running {
                steps.push(Step::DeleteContainer {
                    key: key.to_string(),
                    id: c.id.clone(),
                });
            }
        }
    };

    // Init containers, one after another, each to success.
    for init in &spec.init_containers {
        match pod.latest(&init.name) {
            None => {
                start(&init.name, true, 0, &mut steps);
                return steps;
            }
            Some(c) if c.status != Status::Exited => return steps,
            Some(c) if c.exit_code == Some(0) => continue,
            Some(c) => {
                if spec.restart_policy != RestartPolicy::Never && restart_due(c, backoff, now_ms) {
                    prune(&init.name, c.attempt + 1, &mut steps);
                    start(&init.name, true, c.attempt + 1, &mut steps);
                }
                return steps;
            }
        }
    }

    let mut spec_changed =
        pod.spec.labels != spec.labels || pod.spec.annotations != spec.annotations;
    for container in &spec.containers {
        let before = pod
            .spec
            .containers
            .iter()
            .find(|c| c.name == container.name);
        let instances: Vec<&ObservedContainer> = pod
            .containers
            .iter()
            .filter(|c| c.name == container.name)
            .collect();
        if before.is_some_and(|b| b != container) && !instances.is_empty() {
            // A changed container spec replaces that container: graceful stop, new writable layer.
            for c in instances {
                stop_and_delete(key, c, &mut steps);
            }
            spec_changed = true;
            start(&container.name, false, 0, &mut steps);
            continue;
        }
        if before.is_none() {
            spec_changed = true;
        }
        match pod.latest(&container.name) {
            None => start(&container.name, false, 0, &mut steps),
            Some(c) if c.status == Status::Running && c.unhealthy => {
                steps.push(Step::StopContainer {
                    key: key.to_string(),
                    id: c.id.clone(),
                });
            }
            Some(c) if c.status != Status::Exited => {}
            Some(c) => {
                if should_restart(spec.restart_policy, c.exit_code)
                    && restart_due(c, backoff, now_ms)
                {
                    prune(&container.name, c.attempt + 1, &mut steps);
                    start(&container.name, false, c.attempt + 1, &mut steps);
                }
            }
        }
    }
    // Containers no longer in the spec.
    for c in &pod.containers {
        if !spec.containers.iter().any(|d| d.name == c.name)
            && !spec.init_containers.iter().any(|d| d.name == c.name)
        {
            stop_and_delete(key, c, &mut steps);
            spec_changed = true;
        }
    }
    if spec_changed {
        steps.push(Step::UpdateSpec {
            key: key.to_string(),
        });
    }
    steps
}

/// A container instance that goes: stopped gracefully if it runs, then deleted.
fn stop_and_delete(key: &str, c: &ObservedContainer, steps: &mut Vec<Step>) {
    if c.status == Status::Running {
        steps.push(Step::StopContainer {
            key: key.to_string(),
            id: c.id.clone(),
        });
    }
    steps.push(Step::DeleteContainer {
        key: key.to_string(),
        id: c.id.clone(),
    });
}

#[cfg(test)]
mod tests;
