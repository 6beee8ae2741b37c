//! Pod status as kubelet reports it, computed purely from the spec, what runs and the pull
//! failures: phase, conditions and containerStatuses, as Kubernetes-shaped JSON.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::plan::{deadline_exceeded, ObservedContainer, ObservedPod, PullFailure};
use super::prober::Health;
use crate::pod::downward::NodeInfo;
use crate::pod::spec::{ContainerSpec, PodSpec, RestartPolicy};
use crate::runtime::state::Status;
use crate::time::format_rfc3339_nano;

fn time(ms: Option<u64>) -> Value {
    match ms {
        Some(ms) if ms > 0 => Value::String(format_rfc3339_nano(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )),
        _ => Value::Null,
    }
}

/// How a container instance ended, from its exit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitInfo {
    pub reason: String,
    /// The termination message (terminationMessagePath, or the log's tail).
    pub message: Option<String>,
}

fn state_of(c: &ObservedContainer, exit: Option<&ExitInfo>, health: Option<&Health>) -> Value {
    match c.status {
        Status::Running if health.is_some_and(|h| h.post_start) => {
            json!({"waiting": {"reason": "ContainerCreating"}})
        }
        Status::Running => json!({"running": {"startedAt": time(c.started_ms)}}),
        Status::Created => json!({"waiting": {"reason": "ContainerCreating"}}),
        Status::Exited => {
            let mut t = json!({
                "exitCode": c.exit_code.unwrap_or(-1),
                "reason": exit.map(|e| e.reason.as_str()).unwrap_or(if c.exit_code == Some(0) { "Completed" } else { "Error" }),
                "startedAt": time(c.started_ms),
                "finishedAt": time(c.finished_ms),
                "containerID": format!("layerlet://{}", c.id),
            });
            if let Some(message) = exit.and_then(|e| e.message.as_deref()) {
                t["message"] = Value::String(message.to_string());
            }
            json!({ "terminated": t })
        }
    }
}

/// One entry of containerStatuses / initContainerStatuses.
#[allow(clippy::too_many_arguments)]
fn container_status(
    spec: &ContainerSpec,
    pod: Option<&ObservedPod>,
    pull: Option<&PullFailure>,
    policy: RestartPolicy,
    reasons: &BTreeMap<String, ExitInfo>,
    health: &BTreeMap<String, Health>,
    image_id: Option<&str>,
    init: bool,
    now_ms: u64,
) -> (Value, bool, bool, bool) {
    let mut instances: Vec<&ObservedContainer> = pod
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
    let exit = |c: &ObservedContainer| reasons.get(&c.id);
    let health_of = |c: &ObservedContainer| health.get(&c.id);
    let waiting = |reason: &str, message: Option<&str>| json!({"waiting": {"reason": reason, "message": message}});
    let restart_expected = latest.is_some_and(|c| {
        c.status == Status::Exited
            && match policy {
                RestartPolicy::Always => !init,
                RestartPolicy::OnFailure => c.exit_code != Some(0),
                RestartPolicy::Never => false,
            }
            || (init
                && c.status == Status::Exited
                && c.exit_code != Some(0)
                && policy != RestartPolicy::Never)
    });
    let (state, last_state) = match (latest, pull) {
        (None, Some(p)) => {
            let backoff = now_ms < p.last_ms + 10_000;
            (
                waiting(
                    if backoff && p.failures > 1 {
                        "ImagePullBackOff"
                    } else {
                        "ErrImagePull"
                    },
                    Some(&p.message),
                ),
                json!({}),
            )
        }
        (None, None) => (waiting("ContainerCreating", None), json!({})),
        (Some(c), _) if restart_expected => (
            waiting(
                "CrashLoopBackOff",
                Some(&format!(
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
                .unwrap_or_else(|| json!({})),
        ),
    };
    let h = latest.and_then(health_of);
    let running =
        latest.is_some_and(|c| c.status == Status::Running) && !h.is_some_and(|h| h.post_start);
    // Without an entry in the health table the container has no probes (or its worker has
    // not reported yet): started once running, ready too unless a probe must say so.
    let started = running && h.map_or(spec.startup_probe.is_none(), |h| h.started);
    let ready =
        running && !init && h.map_or(started && spec.readiness_probe.is_none(), |h| h.ready);
    let succeeded = latest.is_some_and(|c| c.status == Status::Exited && c.exit_code == Some(0));
    let value = json!({
        "name": spec.name,
        "image": spec.image,
        "imageID": image_id.unwrap_or(""),
        "containerID": latest.map(|c| format!("layerlet://{}", c.id)),
        "state": state,
        "lastState": last_state,
        "ready": ready,
        "started": started,
        "restartCount": latest.map(|c| c.attempt).unwrap_or(0),
    });
    (value, running, succeeded, ready)
}

/// The whole pod object, as `kubectl get pod -o json` shows it.
#[allow(clippy::too_many_arguments)]
pub fn pod_json(
    spec: &PodSpec,
    pod: Option<&ObservedPod>,
    pulls: &BTreeMap<(String, String), PullFailure>,
    reasons: &BTreeMap<String, ExitInfo>,
    health: &BTreeMap<String, Health>,
    image_ids: &BTreeMap<String, String>,
    node: &NodeInfo,
    attached: &[std::net::IpAddr],
    created_ms: u64,
    now_ms: u64,
) -> Value {
    let pull = |name: &str| pulls.get(&(spec.uid.clone(), name.to_string()));
    let pod_ips = crate::pod::downward::pod_ips(spec, node, attached);
    let deadline = pod.is_some_and(|p| deadline_exceeded(spec, p.created_ms, now_ms));
    // Past the deadline nothing restarts, as under restartPolicy Never.
    let policy = if deadline {
        RestartPolicy::Never
    } else {
        spec.restart_policy
    };
    let mut init_statuses = Vec::new();
    let mut initialized = true;
    let mut init_failed = false;
    let mut init_done = 0;
    for c in &spec.init_containers {
        let (v, _, ok, _) = container_status(
            c,
            pod,
            pull(&c.name),
            policy,
            reasons,
            health,
            image_ids.get(&c.name).map(String::as_str),
            true,
            now_ms,
        );
        if ok {
            init_done += 1;
        } else {
            initialized = false;
            if v["state"]["terminated"]["exitCode"]
                .as_i64()
                .is_some_and(|c| c != 0)
            {
                init_failed = true;
            }
        }
        init_statuses.push(v);
    }
    let mut statuses = Vec::new();
    let (mut running, mut terminated, mut failed, mut ready) = (0, 0, 0, 0);
    for c in &spec.containers {
        let (v, is_running, _, is_ready) = container_status(
            c,
            pod,
            pull(&c.name),
            policy,
            reasons,
            health,
            image_ids.get(&c.name).map(String::as_str),
            false,
            now_ms,
        );
        if is_running {
            running += 1;
        }
        if is_ready {
            ready += 1;
        }
        if let Some(code) = v["state"]["terminated"]["exitCode"].as_i64() {
            terminated += 1;
            if code != 0 {
                failed += 1;
            }
        }
        statuses.push(v);
    }
    let all = spec.containers.len();
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
    } else if running > 0 {
        "Running"
    } else {
        "Pending"
    };
    let ready = initialized && ready == all && all > 0 && !deadline;
    let condition = |kind: &str, status: bool| json!({"type": kind, "status": if status { "True" } else { "False" }});
    let reason_summary = if deadline {
        Some("DeadlineExceeded".to_string())
    } else if !initialized && !spec.init_containers.is_empty() {
        let crash = init_statuses
            .iter()
            .any(|s| s["state"]["waiting"]["reason"] == "CrashLoopBackOff");
        if crash {
            Some("Init:CrashLoopBackOff".to_string())
        } else if init_failed {
            Some("Init:Error".to_string())
        } else {
            Some(format!("Init:{init_done}/{}", spec.init_containers.len()))
        }
    } else {
        None
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "uid": spec.uid,
            "labels": spec.labels,
            "annotations": spec.annotations,
            "creationTimestamp": time(Some(created_ms)),
        },
        "spec": {
            "nodeName": node.node_name,
            "restartPolicy": format!("{:?}", spec.restart_policy),
            "containers": spec.containers.iter().map(|c| json!({"name": c.name, "image": c.image})).collect::<Vec<_>>(),
            "initContainers": spec.init_containers.iter().map(|c| json!({"name": c.name, "image": c.image})).collect::<Vec<_>>(),
        },
        "status": {
            "phase": phase,
            "reason": reason_summary,
            "message": deadline.then_some("Pod was active on the node longer than the specified deadline"),
            "hostIP": node.host_ip,
            "hostIPs": [{"ip": node.host_ip}],
            "podIP": pod_ips[0],
            "podIPs": pod_ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
            "startTime": time(Some(created_ms)),
            "conditions": [
                condition("PodScheduled", true),
                condition("Initialized", initialized),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "initContainerStatuses": init_statuses,
            "containerStatuses": statuses,
        },
    })
}

/// A pod stopped for good (evicted, removed): a container's last state is its state, not a
/// back-off before a restart that will not come.
pub fn stopped_for_good(status: &mut Value) {
    for key in ["initContainerStatuses", "containerStatuses"] {
        for c in status[key].as_array_mut().into_iter().flatten() {
            if c["state"]["waiting"].is_object() && c["lastState"]["terminated"].is_object() {
                c["state"] = c["lastState"].take();
                c["lastState"] = serde_json::json!({});
            }
        }
    }
}

/// The phase of a pod stopped for good once every app container has terminated: Succeeded
/// when all exited 0, else Failed. None while one still runs or never ran.
pub fn final_phase(status: &Value) -> Option<&'static str> {
    let containers = status["containerStatuses"].as_array()?;
    let codes: Option<Vec<i64>> = containers
        .iter()
        .map(|c| c["state"]["terminated"]["exitCode"].as_i64())
        .collect();
    let codes = codes.filter(|c| !c.is_empty())?;
    Some(if codes.iter().all(|c| *c == 0) {
        "Succeeded"
    } else {
        "Failed"
    })
}

#[cfg(test)]
mod tests {
    fn test_node() -> NodeInfo {
        NodeInfo {
            node_name: "node".into(),
            host_ip: "192.0.2.7".into(),
            cpu_millis: 1000,
            memory: 1 << 30,
            ephemeral_storage: 1 << 30,
        }
    }

    #[test]
    fn a_pod_stopped_for_good_shows_its_last_states_and_a_final_phase() {
        let mut status = serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 0}}},
            {"name": "b", "state": {"terminated": {"exitCode": 137}}, "lastState": {}},
        ]});
        super::stopped_for_good(&mut status);
        assert_eq!(
            status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        assert_eq!(
            status["containerStatuses"][0]["lastState"],
            serde_json::json!({})
        );
        assert_eq!(super::final_phase(&status), Some("Failed"));
        status["containerStatuses"][1]["state"]["terminated"]["exitCode"] = 0.into();
        assert_eq!(super::final_phase(&status), Some("Succeeded"));
        status["containerStatuses"][1]["state"] = serde_json::json!({"running": {}});
        assert_eq!(super::final_phase(&status), None, "one still runs");
    }

    use super::*;
    use crate::pod::pod_from_yaml_str;

    const NOW: u64 = 1_000_000_000;

    fn pod(extra: &str) -> ObservedPod {
        let spec = pod_from_yaml_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n{extra}  containers:\n  - name: app\n    image: x:1\n    readinessProbe: {{tcpSocket: {{port: 80}}}}\n"
        ))
        .unwrap();
        ObservedPod {
            uid: spec.uid.clone(),
            spec,
            containers: vec![ObservedContainer {
                id: "c1".into(),
                name: "app".into(),
                attempt: 0,
                status: Status::Running,
                exit_code: None,
                started_ms: Some(NOW - 5_000),
                finished_ms: None,
                unhealthy: false,
            }],
            created_ms: NOW - 10_000,
        }
    }

    #[test]
    fn host_ip_is_the_nodes_address_and_a_host_network_pod_has_it_too() {
        let v = json(&pod(""), &BTreeMap::new());
        assert_eq!(v["status"]["hostIP"], "192.0.2.7");
        assert_eq!(v["status"]["hostIPs"], json!([{"ip": "192.0.2.7"}]));
        assert_ne!(v["status"]["podIP"], "192.0.2.7");
        let host = pod("  hostNetwork: true\n");
        assert_eq!(
            json(&host, &BTreeMap::new())["status"]["podIP"],
            "192.0.2.7"
        );
    }

    fn json(p: &ObservedPod, health: &BTreeMap<String, Health>) -> Value {
        pod_json(
            &p.spec,
            Some(p),
            &BTreeMap::new(),
            &BTreeMap::new(),
            health,
            &BTreeMap::new(),
            &test_node(),
            &[],
            p.created_ms,
            NOW,
        )
    }

    fn health(started: bool, ready: bool, post_start: bool) -> BTreeMap<String, Health> {
        let h = Health {
            started,
            ready,
            kill: false,
            post_start,
            kill_grace: None,
        };
        [("c1".to_string(), h)].into_iter().collect()
    }

    fn conditions(v: &Value) -> (Value, Value) {
        let find = |t: &str| {
            v["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()["status"]
                .clone()
        };
        (find("ContainersReady"), find("Ready"))
    }

    #[test]
    fn readiness_comes_from_the_probes_and_is_false_until_they_report() {
        let p = pod("");
        let v = json(&p, &BTreeMap::new());
        assert_eq!(v["status"]["containerStatuses"][0]["ready"], false);
        assert_eq!(v["status"]["containerStatuses"][0]["started"], true);
        assert_eq!(conditions(&v), (json!("False"), json!("False")));
        let v = json(&p, &health(true, true, false));
        assert_eq!(v["status"]["containerStatuses"][0]["ready"], true);
        assert_eq!(conditions(&v), (json!("True"), json!("True")));
        assert_eq!(v["status"]["phase"], "Running");
    }

    #[test]
    fn a_container_in_its_post_start_hook_is_creating_not_running() {
        let v = json(&pod(""), &health(false, false, true));
        let c = &v["status"]["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "ContainerCreating", "{c}");
        assert_eq!(
            (c["started"].clone(), c["ready"].clone()),
            (json!(false), json!(false))
        );
        assert_eq!(v["status"]["phase"], "Pending");
    }

    #[test]
    fn a_pod_past_its_active_deadline_failed_with_deadline_exceeded() {
        let v = json(
            &pod("  activeDeadlineSeconds: 5\n"),
            &health(true, true, false),
        );
        assert_eq!(v["status"]["phase"], "Failed");
        assert_eq!(v["status"]["reason"], "DeadlineExceeded");
        assert_eq!(conditions(&v).1, json!("False"));
        let v = json(
            &pod("  activeDeadlineSeconds: 50\n"),
            &health(true, true, false),
        );
        assert_eq!(v["status"]["phase"], "Running");
        assert_eq!(v["status"]["reason"], Value::Null);
    }

    #[test]
    fn a_termination_message_shows_in_the_terminated_state() {
        let mut p = pod("");
        p.containers[0].status = Status::Exited;
        p.containers[0].exit_code = Some(1);
        p.containers[0].finished_ms = Some(NOW - 1_000);
        let exits = [(
            "c1".to_string(),
            ExitInfo {
                reason: "Error".into(),
                message: Some("disk full".into()),
            },
        )]
        .into_iter()
        .collect();
        let v = pod_json(
            &p.spec,
            Some(&p),
            &BTreeMap::new(),
            &exits,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &test_node(),
            &[],
            p.created_ms,
            NOW,
        );
        let c = &v["status"]["containerStatuses"][0];
        // Restart policy Always: waiting to restart, the message in lastState.
        assert_eq!(c["lastState"]["terminated"]["message"], "disk full", "{c}");
    }
}
