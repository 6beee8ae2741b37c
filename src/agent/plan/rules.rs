//! Kubelet's rules, each a pure function of the spec, an observed instance and the clock:
//! restart policy, CrashLoopBackOff, activeDeadlineSeconds, ImagePullBackOff and the retry
//! of pods whose steps fail.

use std::collections::BTreeMap;

use super::input::{Backoff, Failing, ObservedContainer, PullFailure};
use crate::pod::spec::{PodSpec, RestartPolicy};

/// Whether the pod has been active longer than its `activeDeadlineSeconds` (kubelet's
/// DeadlineExceeded): its containers are stopped and nothing starts again.
pub fn deadline_exceeded(spec: &PodSpec, created_ms: u64, now_ms: u64) -> bool {
    spec.active_deadline
        .is_some_and(|d| now_ms >= created_ms.saturating_add(d.as_millis() as u64))
}

/// Whether an app container that exited with `exit_code` runs again under `policy`.
pub fn should_restart(policy: RestartPolicy, exit_code: Option<i32>) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != Some(0),
        RestartPolicy::Never => false,
    }
}

/// When an exited instance may be followed by the next one: its backoff, started over for
/// an instance that ran at least `reset_after_ms`, has passed since it finished.
pub fn restart_due(c: &ObservedContainer, backoff: &Backoff, now_ms: u64) -> bool {
    let finished = c.finished_ms.unwrap_or(0);
    let ran = finished.saturating_sub(c.started_ms.unwrap_or(finished));
    let restarts = if ran >= backoff.reset_after_ms {
        0
    } else {
        c.attempt
    };
    now_ms >= finished.saturating_add(backoff.delay_ms(restarts))
}

/// Whether a container's image pull failed too recently to be tried again.
pub fn pull_blocked(
    pulls: &BTreeMap<(String, String), PullFailure>,
    uid: &str,
    name: &str,
    backoff: &Backoff,
    now_ms: u64,
) -> bool {
    pulls
        .get(&(uid.to_string(), name.to_string()))
        .is_some_and(|p| {
            now_ms
                < p.last_ms
                    .saturating_add(backoff.delay_ms(p.failures.saturating_sub(1)))
        })
}

/// Whether a pod whose steps failed waits before its next try.
pub fn retry_later(failing: Option<&Failing>, backoff: &Backoff, now_ms: u64) -> bool {
    failing.is_some_and(|f| {
        let delay = backoff
            .for_failing_pods()
            .delay_ms(f.failures.saturating_sub(1));
        now_ms < f.last_ms.saturating_add(delay)
    })
}
