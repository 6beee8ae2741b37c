//! The pure heart of the agent: `plan(desired, observed, now) -> steps`. Level-triggered and
//! idempotent: it is not told why it runs, and running it again after a crash, with the same
//! inputs, gives the same steps. Everything it needs is in its arguments, so every lifecycle
//! path is a table test.

use std::collections::BTreeMap;

use crate::pod::spec::{PodSpec, RestartPolicy};
use crate::runtime::state::Status;

/// One container instance as the node has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// A liveness or startup probe failed (or its postStart hook did): stop it.
    pub unhealthy: bool,
}

/// A pod the agent owns, as recorded: the spec its containers were made from, and every
/// container instance it still has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPod {
    pub uid: String,
    pub spec: PodSpec,
    pub containers: Vec<ObservedContainer>,
    /// When the pod record was made: the start of `activeDeadlineSeconds`.
    pub created_ms: u64,
}

impl ObservedPod {
    /// The newest instance of a container.
    pub fn latest(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| c.attempt)
    }
}

/// Whether the pod has been active longer than its `activeDeadlineSeconds` (kubelet's
/// DeadlineExceeded): its containers are stopped and nothing starts again.
pub fn deadline_exceeded(spec: &PodSpec, created_ms: u64, now_ms: u64) -> bool {
    spec.active_deadline
        .is_some_and(|d| now_ms >= created_ms.saturating_add(d.as_millis() as u64))
}

/// Failed pulls of one container's image (kubelet's ErrImagePull, then ImagePullBackOff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullFailure {
    pub failures: u32,
    pub last_ms: u64,
    pub message: String,
}

/// Backoff settings; kubelet's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
    /// A container that ran at least this long starts its backoff over.
    pub reset_after_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 10_000,
            max_ms: 300_000,
            reset_after_ms: 600_000,
        }
    }
}

impl Backoff {
    /// Delay before the restart that follows `restarts` earlier ones: 10 s doubling to 300 s.
    pub fn delay_ms(&self, restarts: u32) -> u64 {
        let factor = 1u64.checked_shl(restarts.min(32)).unwrap_or(u64::MAX);
        self.initial_ms.saturating_mul(factor).min(self.max_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Sandbox, volumes and the pod record.
    CreatePod {
        key: String,
    },
    /// Stop every container within the grace period, then delete everything of the pod.
    RemovePod {
        key: String,
        uid: String,
    },
    /// Pull the image as the policy says, create and start one instance.
    StartContainer {
        key: String,
        name: String,
        init: bool,
        attempt: u32,
    },
    StopContainer {
        key: String,
        id: String,
    },
    DeleteContainer {
        key: String,
        id: String,
    },
    /// Record the desired spec as the pod's current one (after replacing containers).
    UpdateSpec {
        key: String,
    },
}

impl Step {
    pub fn pod_key(&self) -> &str {
        match self {
            Step::CreatePod { key }
            | Step::RemovePod { key, .. }
            | Step::StartContainer { key, .. }
            | Step::StopContainer { key, .. }
            | Step::DeleteContainer { key, .. }
            | Step::UpdateSpec { key } => key,
        }
    }
}

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

fn should_restart(policy: RestartPolicy, exit_code: Option<i32>) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != Some(0),
        RestartPolicy::Never => false,
    }
}

/// When an exited instance may be followed by the next one.
fn restart_due(c: &ObservedContainer, backoff: &Backoff, now_ms: u64) -> bool {
    let finished = c.finished_ms.unwrap_or(0);
    let ran = finished.saturating_sub(c.started_ms.unwrap_or(finished));
    let restarts = if ran >= backoff.reset_after_ms {
        0
    } else {
        c.attempt
    };
    now_ms >= finished.saturating_add(backoff.delay_ms(restarts))
}

fn pull_blocked(
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

pub fn plan(
    desired: &BTreeMap<String, PodSpec>,
    observed: &BTreeMap<String, ObservedPod>,
    pulls: &BTreeMap<(String, String), PullFailure>,
    backoff: &Backoff,
    now_ms: u64,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for (key, pod) in observed {
        let keep = desired
            .get(key)
            .is_some_and(|d| d.uid == pod.uid && pod_level(d) == pod_level(&pod.spec));
        if !keep {
            steps.push(Step::RemovePod {
                key: key.clone(),
                uid: pod.uid.clone(),
            });
        }
    }
    for (key, spec) in desired {
        match observed.get(key) {
            None => {
                steps.push(Step::CreatePod { key: key.clone() });
                steps.extend(plan_containers(key, spec, None, pulls, backoff, now_ms));
            }
            Some(pod)
                if steps
                    .iter()
                    .any(|s| matches!(s, Step::RemovePod { key: k, .. } if k == key)) =>
            {
                // Replaced: removed in this round, created afresh in the next.
                let _ = pod;
            }
            Some(pod) => steps.extend(plan_containers(
                key,
                spec,
                Some(pod),
                pulls,
                backoff,
                now_ms,
            )),
        }
    }
    steps
}

fn plan_containers(
    key: &str,
    spec: &PodSpec,
    pod: Option<&ObservedPod>,
    pulls: &BTreeMap<(String, String), PullFailure>,
    backoff: &Backoff,
    now_ms: u64,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let empty = ObservedPod {
        uid: spec.uid.clone(),
        spec: spec.clone(),
        containers: Vec::new(),
        created_ms: now_ms,
    };
    let pod = pod.unwrap_or(&empty);
    if deadline_exceeded(spec, pod.created_ms, now_ms) {
        for c in pod
            .containers
            .iter()
            .filter(|c| c.status == Status::Running)
        {
            steps.push(Step::StopContainer {
                key: key.to_string(),
                id: c.id.clone(),
            });
        }
        return steps;
    }
    let start = |name: &str, init: bool, attempt: u32, steps: &mut Vec<Step>| {
        if !pull_blocked(pulls, &spec.uid, name, backoff, now_ms) {
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
            for c in &instances {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::pod_from_yaml_str;

    const NOW: u64 = 1_000_000_000;

    fn spec(policy: &str, command: &str) -> PodSpec {
        pod_from_yaml_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  restartPolicy: {policy}\n  containers:\n  - {{name: app, image: x:1, command: [\"{command}\"]}}\n"
        ))
        .unwrap()
    }

    fn with_init(policy: &str) -> PodSpec {
        pod_from_yaml_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  restartPolicy: {policy}\n  initContainers:\n  - {{name: setup, image: x:1, command: [a]}}\n  containers:\n  - {{name: app, image: x:1, command: [b]}}\n"
        ))
        .unwrap()
    }

    fn c(
        name: &str,
        attempt: u32,
        status: Status,
        exit: Option<i32>,
        finished_ago_ms: u64,
        ran_ms: u64,
    ) -> ObservedContainer {
        let finished = NOW - finished_ago_ms;
        ObservedContainer {
            id: format!("{name}-{attempt}"),
            name: name.into(),
            attempt,
            status,
            exit_code: exit,
            started_ms: Some(finished - ran_ms),
            finished_ms: (status == Status::Exited).then_some(finished),
            unhealthy: false,
        }
    }

    fn observed(
        spec: &PodSpec,
        containers: Vec<ObservedContainer>,
    ) -> BTreeMap<String, ObservedPod> {
        [(
            spec.key(),
            ObservedPod {
                uid: spec.uid.clone(),
                spec: spec.clone(),
                containers,
                created_ms: NOW - 60_000,
            },
        )]
        .into_iter()
        .collect()
    }

    fn desired(spec: &PodSpec) -> BTreeMap<String, PodSpec> {
        [(spec.key(), spec.clone())].into_iter().collect()
    }

    fn run(d: &BTreeMap<String, PodSpec>, o: &BTreeMap<String, ObservedPod>) -> Vec<Step> {
        plan(d, o, &BTreeMap::new(), &Backoff::default(), NOW)
    }

    fn start(name: &str, init: bool, attempt: u32) -> Step {
        Step::StartContainer {
            key: "default/web".into(),
            name: name.into(),
            init,
            attempt,
        }
    }

    #[test]
    fn a_new_pod_is_created_and_its_containers_started() {
        let s = spec("Always", "a");
        assert_eq!(
            run(&desired(&s), &BTreeMap::new()),
            vec![Step::CreatePod { key: s.key() }, start("app", false, 0)]
        );
    }

    #[test]
    fn a_running_pod_needs_nothing_and_planning_is_idempotent() {
        let s = spec("Always", "a");
        let o = observed(&s, vec![c("app", 0, Status::Running, None, 0, 5_000)]);
        assert!(run(&desired(&s), &o).is_empty());
        assert!(run(&desired(&s), &o).is_empty());
    }

    #[test]
    fn a_pod_removed_from_the_sources_is_removed() {
        let s = spec("Always", "a");
        let o = observed(&s, vec![c("app", 0, Status::Running, None, 0, 5_000)]);
        assert_eq!(
            run(&BTreeMap::new(), &o),
            vec![Step::RemovePod {
                key: s.key(),
                uid: s.uid.clone()
            }]
        );
    }

    #[test]
    fn a_changed_container_spec_replaces_only_that_container() {
        let old = spec("Always", "a");
        let new = spec("Always", "b");
        let o = observed(
            &old,
            vec![
                c("app", 3, Status::Running, None, 0, 5_000),
                c("app", 2, Status::Exited, Some(1), 9_000, 10),
            ],
        );
        assert_eq!(
            run(&desired(&new), &o),
            vec![
                Step::StopContainer {
                    key: new.key(),
                    id: "app-3".into()
                },
                Step::DeleteContainer {
                    key: new.key(),
                    id: "app-3".into()
                },
                Step::DeleteContainer {
                    key: new.key(),
                    id: "app-2".into()
                },
                start("app", false, 0),
                Step::UpdateSpec { key: new.key() },
            ]
        );
    }

    #[test]
    fn new_labels_and_annotations_update_the_record_and_keep_the_containers() {
        let old = spec("Always", "a");
        let mut new = old.clone();
        new.labels.insert("tier".into(), "web".into());
        new.annotations.insert("note".into(), "x".into());
        let o = observed(&old, vec![c("app", 0, Status::Running, None, 0, 5_000)]);
        assert_eq!(
            run(&desired(&new), &o),
            vec![Step::UpdateSpec { key: new.key() }]
        );
        assert_eq!(
            run(&desired(&old), &o),
            vec![],
            "nothing when nothing changed"
        );
    }

    #[test]
    fn a_pod_level_change_replaces_the_pod() {
        let old = spec("Always", "a");
        let mut new = old.clone();
        new.host_network = true;
        let o = observed(&old, vec![c("app", 0, Status::Running, None, 0, 5_000)]);
        assert_eq!(
            run(&desired(&new), &o),
            vec![Step::RemovePod {
                key: old.key(),
                uid: old.uid.clone()
            }]
        );
    }

    #[test]
    fn restart_policy_decides_what_follows_an_exit() {
        let table = [
            ("Always", Some(0), true),
            ("Always", Some(1), true),
            ("OnFailure", Some(0), false),
            ("OnFailure", Some(2), true),
            ("Never", Some(1), false),
            ("Never", Some(0), false),
        ];
        for (policy, exit, restarts) in table {
            let s = spec(policy, "a");
            let o = observed(&s, vec![c("app", 0, Status::Exited, exit, 60_000, 10)]);
            let steps = run(&desired(&s), &o);
            assert_eq!(
                steps.contains(&start("app", false, 1)),
                restarts,
                "{policy} exit {exit:?}: {steps:?}"
            );
        }
    }

    #[test]
    fn crash_loop_backoff_doubles_from_ten_seconds_to_five_minutes() {
        let b = Backoff::default();
        assert_eq!(
            (
                b.delay_ms(0),
                b.delay_ms(1),
                b.delay_ms(2),
                b.delay_ms(4),
                b.delay_ms(5),
                b.delay_ms(40)
            ),
            (10_000, 20_000, 40_000, 160_000, 300_000, 300_000)
        );
        let s = spec("Always", "a");
        // Third restart (attempt 2 exited): 40 s after the exit, not before.
        let early = observed(&s, vec![c("app", 2, Status::Exited, Some(1), 39_000, 10)]);
        assert!(run(&desired(&s), &early).is_empty());
        let due = observed(
            &s,
            vec![
                c("app", 2, Status::Exited, Some(1), 40_000, 10),
                c("app", 1, Status::Exited, Some(1), 80_000, 10),
                c("app", 0, Status::Exited, Some(1), 99_000, 10),
            ],
        );
        // Only the last terminated instance (attempt 2) is kept, for `logs --previous`.
        assert_eq!(
            run(&desired(&s), &due),
            vec![
                Step::DeleteContainer {
                    key: s.key(),
                    id: "app-1".into()
                },
                Step::DeleteContainer {
                    key: s.key(),
                    id: "app-0".into()
                },
                start("app", false, 3)
            ]
        );
    }

    #[test]
    fn backoff_resets_after_ten_minutes_of_running() {
        let s = spec("Always", "a");
        let long_run = observed(
            &s,
            vec![c("app", 6, Status::Exited, Some(1), 10_000, 700_000)],
        );
        assert!(run(&desired(&s), &long_run).contains(&start("app", false, 7)));
        let short_run = observed(
            &s,
            vec![c("app", 6, Status::Exited, Some(1), 10_000, 1_000)],
        );
        assert!(run(&desired(&s), &short_run).is_empty());
    }

    #[test]
    fn pull_failures_back_off_before_the_next_try() {
        let s = spec("Always", "a");
        let o = observed(&s, vec![]);
        let mut pulls = BTreeMap::new();
        pulls.insert(
            (s.uid.clone(), "app".to_string()),
            PullFailure {
                failures: 2,
                last_ms: NOW - 15_000,
                message: "x".into(),
            },
        );
        assert!(
            plan(&desired(&s), &o, &pulls, &Backoff::default(), NOW).is_empty(),
            "20 s backoff after the second failure"
        );
        pulls.insert(
            (s.uid.clone(), "app".to_string()),
            PullFailure {
                failures: 2,
                last_ms: NOW - 21_000,
                message: "x".into(),
            },
        );
        assert_eq!(
            plan(&desired(&s), &o, &pulls, &Backoff::default(), NOW),
            vec![start("app", false, 0)]
        );
    }

    #[test]
    fn init_containers_run_in_order_to_success_before_app_containers() {
        let s = with_init("Always");
        assert_eq!(
            run(&desired(&s), &observed(&s, vec![])),
            vec![start("setup", true, 0)]
        );
        let running = observed(&s, vec![c("setup", 0, Status::Running, None, 0, 10)]);
        assert!(run(&desired(&s), &running).is_empty());
        let done = observed(&s, vec![c("setup", 0, Status::Exited, Some(0), 1, 10)]);
        assert_eq!(run(&desired(&s), &done), vec![start("app", false, 0)]);
        let failed = observed(&s, vec![c("setup", 0, Status::Exited, Some(1), 11_000, 10)]);
        assert_eq!(run(&desired(&s), &failed), vec![start("setup", true, 1)]);
        let never = with_init("Never");
        let failed = observed(
            &never,
            vec![c("setup", 0, Status::Exited, Some(1), 11_000, 10)],
        );
        assert!(run(&desired(&never), &failed).is_empty());
    }

    #[test]
    fn adoption_after_a_restart_of_the_agent_changes_nothing_that_runs() {
        // Same inputs as before the restart: observed comes from the records and the
        // monitors' files, so a running container is planned as running.
        let s = spec("Always", "a");
        let o = observed(
            &s,
            vec![
                c("app", 4, Status::Running, None, 0, 50_000),
                c("app", 3, Status::Exited, Some(1), 60_000, 10),
            ],
        );
        assert!(run(&desired(&s), &o).is_empty());
    }

    #[test]
    fn a_container_dropped_from_the_spec_is_stopped_and_deleted() {
        let s = spec("Always", "a");
        let o = observed(
            &s,
            vec![
                c("app", 0, Status::Running, None, 0, 10),
                c("old", 0, Status::Running, None, 0, 10),
            ],
        );
        assert_eq!(
            run(&desired(&s), &o),
            vec![
                Step::StopContainer {
                    key: s.key(),
                    id: "old-0".into()
                },
                Step::DeleteContainer {
                    key: s.key(),
                    id: "old-0".into()
                },
                Step::UpdateSpec { key: s.key() },
            ]
        );
    }

    #[test]
    fn an_unhealthy_running_container_is_stopped_then_restarted_with_backoff() {
        let s = spec("Always", "a");
        let mut sick = c("app", 0, Status::Running, None, 0, 5_000);
        sick.unhealthy = true;
        assert_eq!(
            run(&desired(&s), &observed(&s, vec![sick])),
            vec![Step::StopContainer {
                key: s.key(),
                id: "app-0".into()
            }]
        );
        // Killed by the stop: exit 137, then the usual crash backoff (10 s for attempt 0).
        let killed = |ago| observed(&s, vec![c("app", 0, Status::Exited, Some(137), ago, 5_000)]);
        assert!(run(&desired(&s), &killed(9_000)).is_empty());
        assert_eq!(
            run(&desired(&s), &killed(10_000)),
            vec![start("app", false, 1)]
        );
        // restartPolicy Never: killed and left so.
        let never = spec("Never", "a");
        let o = observed(
            &never,
            vec![c("app", 0, Status::Exited, Some(137), 60_000, 5_000)],
        );
        assert!(run(&desired(&never), &o).is_empty());
    }

    #[test]
    fn an_unhealthy_flag_on_an_exited_container_changes_nothing() {
        let s = spec("OnFailure", "a");
        let mut done = c("app", 0, Status::Exited, Some(0), 60_000, 5_000);
        done.unhealthy = true;
        assert!(run(&desired(&s), &observed(&s, vec![done])).is_empty());
    }

    #[test]
    fn active_deadline_stops_running_containers_and_starts_nothing_after_it() {
        let mut s = with_init("Always");
        s.active_deadline = Some(std::time::Duration::from_secs(30));
        let running = |created_ago: u64| {
            let mut o = observed(
                &s,
                vec![
                    c("setup", 0, Status::Exited, Some(0), 50_000, 10),
                    c("app", 0, Status::Running, None, 0, 5_000),
                ],
            );
            o.values_mut()
                .for_each(|p| p.created_ms = NOW - created_ago);
            o
        };
        assert!(run(&desired(&s), &running(29_999)).is_empty());
        assert_eq!(
            run(&desired(&s), &running(30_000)),
            vec![Step::StopContainer {
                key: s.key(),
                id: "app-0".into()
            }]
        );
        // Exited after the deadline: not restarted, whatever the policy; a missing init
        // container is not started either.
        let mut o = observed(&s, vec![c("app", 0, Status::Exited, Some(137), 60_000, 10)]);
        o.values_mut().for_each(|p| p.created_ms = NOW - 120_000);
        assert!(run(&desired(&s), &o).is_empty());
        assert!(deadline_exceeded(&s, NOW - 30_000, NOW));
        assert!(!deadline_exceeded(&spec("Always", "a"), 0, NOW));
    }
}
