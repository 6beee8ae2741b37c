use std::collections::{BTreeMap, BTreeSet};

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

fn observed(spec: &PodSpec, containers: Vec<ObservedContainer>) -> BTreeMap<String, ObservedPod> {
    [(
        spec.key(),
        ObservedPod {
            uid: spec.uid.clone(),
            spec: spec.clone().into(),
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
    plan(&PlanInput::new(d, o, Backoff::default(), NOW))
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
            uid: s.uid.clone(),
            grace: None,
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
            uid: old.uid.clone(),
            grace: None,
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
        plan(&PlanInput {
            pulls: &pulls,
            ..PlanInput::new(&desired(&s), &o, Backoff::default(), NOW)
        })
        .is_empty(),
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
        plan(&PlanInput {
            pulls: &pulls,
            ..PlanInput::new(&desired(&s), &o, Backoff::default(), NOW)
        }),
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

fn terminating(s: &PodSpec, reported_stopped: bool) -> BTreeMap<String, Terminating> {
    BTreeMap::from([(
        s.key(),
        Terminating {
            uid: s.uid.clone(),
            grace: Some(std::time::Duration::from_secs(3)),
            reported_stopped,
        },
    )])
}

#[test]
fn a_terminating_pod_never_starts_a_container_whatever_its_policy_and_exit() {
    let exits = [
        (Status::Exited, Some(0)),
        (Status::Exited, Some(1)),
        (Status::Exited, Some(137)),
        (Status::Running, None),
    ];
    for policy in ["Always", "OnFailure", "Never"] {
        for init in [false, true] {
            let s = if init {
                with_init(policy)
            } else {
                spec(policy, "a")
            };
            for (status, exit) in exits {
                for reported_stopped in [false, true] {
                    // Long exited: any restart would be due.
                    let o = observed(&s, vec![c("app", 0, status, exit, 600_000, 10)]);
                    let t = terminating(&s, reported_stopped);
                    for desired in [desired(&s), BTreeMap::new()] {
                        let steps = plan(&PlanInput {
                            terminating: &t,
                            ..PlanInput::new(&desired, &o, Backoff::default(), NOW)
                        });
                        let expected = match (status, reported_stopped) {
                            (Status::Running, _) => vec![Step::StopPod {
                                key: s.key(),
                                uid: s.uid.clone(),
                                grace: Some(std::time::Duration::from_secs(3)),
                            }],
                            (_, true) => vec![Step::RemovePod {
                                key: s.key(),
                                uid: s.uid.clone(),
                                grace: Some(std::time::Duration::from_secs(3)),
                            }],
                            (_, false) => vec![],
                        };
                        assert_eq!(
                            steps, expected,
                            "{policy} init {init} {status:?} {exit:?} reported {reported_stopped}"
                        );
                    }
                    // Not created either when the node does not have it.
                    let none = plan(&PlanInput {
                        terminating: &t,
                        ..PlanInput::new(&desired(&s), &BTreeMap::new(), Backoff::default(), NOW)
                    });
                    assert_eq!(none, vec![], "{policy}: a terminating pod is not created");
                }
            }
        }
    }
}

#[test]
fn a_pod_created_again_under_the_name_of_a_terminating_one_waits_until_it_is_gone() {
    let old = spec("Always", "a");
    let mut new = old.clone();
    new.uid = "new-uid".into();
    let o = observed(&old, vec![c("app", 0, Status::Exited, Some(0), 1_000, 10)]);
    let t = terminating(&old, false);
    let d = desired(&new);
    let input = PlanInput {
        terminating: &t,
        ..PlanInput::new(&d, &o, Backoff::default(), NOW)
    };
    assert_eq!(
        plan(&input),
        vec![],
        "the old pod's final state is not reported yet"
    );
    let t = terminating(&old, true);
    assert_eq!(
        plan(&PlanInput {
            terminating: &t,
            ..input
        }),
        vec![Step::RemovePod {
            key: old.key(),
            uid: old.uid.clone(),
            grace: Some(std::time::Duration::from_secs(3)),
        }]
    );
    assert_eq!(
        run(&desired(&new), &BTreeMap::new()),
        vec![Step::CreatePod { key: new.key() }, start("app", false, 0)],
        "once it is gone"
    );
}

#[test]
fn an_evicted_pod_is_killed_and_never_started_again() {
    let s = spec("Always", "a");
    let evicted = BTreeSet::from([s.uid.clone()]);
    let o = observed(
        &s,
        vec![
            c("app", 1, Status::Running, None, 0, 5_000),
            c("app", 0, Status::Exited, Some(1), 60_000, 10),
        ],
    );
    let d = desired(&s);
    let input = PlanInput {
        evicted: &evicted,
        ..PlanInput::new(&d, &o, Backoff::default(), NOW)
    };
    assert_eq!(
        plan(&input),
        vec![Step::KillContainer {
            key: s.key(),
            id: "app-1".into()
        }]
    );
    let killed = observed(&s, vec![c("app", 1, Status::Exited, Some(137), 60_000, 10)]);
    assert_eq!(
        plan(&PlanInput {
            observed: &killed,
            ..input
        }),
        vec![],
        "restartPolicy Always, backoff over: still not restarted"
    );
    assert_eq!(
        plan(&PlanInput {
            observed: &killed,
            desired: &BTreeMap::new(),
            ..input
        }),
        vec![Step::RemovePod {
            key: s.key(),
            uid: s.uid.clone(),
            grace: None
        }],
        "removed from the sources, it goes"
    );
}

#[test]
fn an_api_pod_whose_objects_were_not_read_is_created_but_starts_nothing() {
    let s = spec("Always", "a");
    let held = BTreeSet::from([s.key()]);
    let none = BTreeMap::new();
    let d = desired(&s);
    let input = PlanInput {
        held: &held,
        ..PlanInput::new(&d, &none, Backoff::default(), NOW)
    };
    assert_eq!(plan(&input), vec![Step::CreatePod { key: s.key() }]);
    let o = observed(&s, vec![c("app", 0, Status::Exited, Some(1), 60_000, 10)]);
    assert_eq!(
        plan(&PlanInput {
            observed: &o,
            ..input
        }),
        vec![],
        "a restart waits too"
    );
    assert_eq!(run(&d, &o), vec![start("app", false, 1)], "once read");
}

#[test]
fn a_pod_the_api_has_as_finished_is_not_run_again_by_a_node_without_it() {
    let s = spec("OnFailure", "a");
    let finished = BTreeSet::from([s.key()]);
    let d = desired(&s);
    let none = BTreeMap::new();
    let input = PlanInput {
        finished: &finished,
        ..PlanInput::new(&d, &none, Backoff::default(), NOW)
    };
    assert_eq!(plan(&input), vec![]);
    let o = observed(&s, vec![c("app", 0, Status::Exited, Some(1), 60_000, 10)]);
    assert_eq!(
        plan(&PlanInput {
            observed: &o,
            ..input
        }),
        vec![start("app", false, 1)],
        "a node that still has it plans it as usual"
    );
}

#[test]
fn a_pod_whose_steps_failed_is_retried_after_one_second_doubling() {
    let s = spec("Always", "a");
    let d = desired(&s);
    let none = BTreeMap::new();
    let table = [
        (1, 999, false),
        (1, 1_000, true),
        (2, 1_999, false),
        (2, 2_000, true),
        (3, 3_999, false),
        (3, 4_000, true),
        (40, 299_999, false),
        (40, 300_000, true),
    ];
    for (failures, ago, retried) in table {
        let failing = BTreeMap::from([(
            s.key(),
            Failing {
                failures,
                last_ms: NOW - ago,
            },
        )]);
        let steps = plan(&PlanInput {
            failing: &failing,
            ..PlanInput::new(&d, &none, Backoff::default(), NOW)
        });
        assert_eq!(
            !steps.is_empty(),
            retried,
            "{failures} failures {ago} ms ago"
        );
    }
}

#[test]
fn a_pod_is_over_once_nothing_runs_and_nothing_will_start_again() {
    let over = |s: &PodSpec, containers, terminating| {
        let o = observed(s, containers);
        ending(s, &o[&s.key()], terminating, NOW)
    };
    let on_failure = spec("OnFailure", "a");
    assert_eq!(
        over(
            &on_failure,
            vec![c("app", 0, Status::Running, None, 0, 10)],
            false
        ),
        None
    );
    assert_eq!(
        over(
            &on_failure,
            vec![c("app", 0, Status::Exited, Some(1), 0, 10)],
            false
        ),
        None,
        "a restart is to come"
    );
    assert_eq!(
        over(
            &on_failure,
            vec![c("app", 1, Status::Exited, Some(0), 0, 10)],
            false
        ),
        Some(Ending::Exited { failed: None })
    );
    assert_eq!(
        over(
            &on_failure,
            vec![c("app", 0, Status::Exited, Some(1), 0, 10)],
            true
        ),
        Some(Ending::Stopped),
        "interrupted: over once nothing runs"
    );
    assert_eq!(
        over(
            &on_failure,
            vec![c("app", 0, Status::Running, None, 0, 10)],
            true
        ),
        None
    );
    let never = spec("Never", "a");
    assert_eq!(
        over(
            &never,
            vec![c("app", 0, Status::Exited, Some(4), 0, 10)],
            false
        ),
        Some(Ending::Exited {
            failed: Some(("app".into(), 4))
        })
    );
    let init = with_init("Never");
    assert_eq!(
        over(
            &init,
            vec![c("setup", 0, Status::Exited, Some(3), 0, 10)],
            false
        ),
        Some(Ending::InitFailed {
            name: "setup".into(),
            exit_code: 3
        })
    );
    assert_eq!(
        over(
            &with_init("OnFailure"),
            vec![c("setup", 0, Status::Exited, Some(3), 0, 10)],
            false
        ),
        None,
        "the init container is retried"
    );
    assert_eq!(
        over(
            &init,
            vec![c("setup", 0, Status::Exited, Some(0), 0, 10)],
            false
        ),
        None,
        "the app container is still to start"
    );
}

#[test]
fn the_first_container_to_fail_gives_the_pods_exit_code() {
    let mut s = spec("Never", "a");
    let mut second = s.containers[0].clone();
    second.name = "second".into();
    s.containers.push(second);
    let o = observed(
        &s,
        vec![
            c("app", 0, Status::Exited, Some(4), 1_000, 10),
            c("second", 0, Status::Exited, Some(5), 2_000, 10),
        ],
    );
    assert_eq!(
        ending(&s, &o[&s.key()], false, NOW),
        Some(Ending::Exited {
            failed: Some(("second".into(), 5))
        }),
        "second finished 2 s ago, app 1 s ago"
    );
}
