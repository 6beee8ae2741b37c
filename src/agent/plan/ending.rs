//! When a pod is over: nothing of it runs and, by the same rules the planner follows,
//! nothing of it will start again. A foreground `layerlet run` returns then.

use super::input::ObservedPod;
use super::rules::{deadline_exceeded, should_restart};
use crate::pod::spec::{PodSpec, RestartPolicy};
use crate::runtime::state::Status;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It was on its way out (interrupted) and nothing of it runs any more.
    Stopped,
    /// An init container failed and the restart policy is Never.
    InitFailed { name: String, exit_code: i32 },
    /// Every app container exited for good: the first one that failed, if any.
    Exited { failed: Option<(String, i32)> },
}

/// How the pod ended, or None while something runs or is still to start or restart.
pub fn ending(spec: &PodSpec, pod: &ObservedPod, terminating: bool, now_ms: u64) -> Option<Ending> {
    if pod.containers.iter().any(|c| c.status != Status::Exited) {
        return None;
    }
    if terminating {
        return Some(Ending::Stopped);
    }
    let deadline = deadline_exceeded(spec, pod.created_ms, now_ms);
    for init in &spec.init_containers {
        match pod.latest(&init.name) {
            Some(c) if c.exit_code == Some(0) => continue,
            Some(c) if deadline || spec.restart_policy == RestartPolicy::Never => {
                return Some(Ending::InitFailed {
                    name: init.name.clone(),
                    exit_code: c.exit_code.unwrap_or(-1),
                })
            }
            _ if deadline => return Some(Ending::Exited { failed: None }),
            _ => return None,
        }
    }
    let mut failed: Option<(u64, &str, i32)> = None;
    for container in &spec.containers {
        let Some(c) = pod.latest(&container.name) else {
            if deadline {
                continue;
            }
            return None;
        };
        if !deadline && should_restart(spec.restart_policy, c.exit_code) {
            return None;
        }
        let code = c.exit_code.unwrap_or(-1);
        let finished = c.finished_ms.unwrap_or(u64::MAX);
        // The first to fail; spec order among those that finished at the same moment.
        if code != 0 && failed.is_none_or(|(f, _, _)| finished < f) {
            failed = Some((finished, &container.name, code));
        }
    }
    Some(Ending::Exited {
        failed: failed.map(|(_, name, code)| (name.to_string(), code)),
    })
}
