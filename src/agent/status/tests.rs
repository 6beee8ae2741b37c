//! The status of pods in every state the planner can see, checked as the JSON the API
//! server and kubectl receive.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::agent::plan::ObservedContainer;
use crate::pod::pod_from_yaml_str;
use crate::runtime::state::Status;

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
    let typed = |v: &Value| -> PodStatus { serde_json::from_value(v.clone()).unwrap() };
    let mut status: PodStatus = typed(&json!({"phase": "Pending", "containerStatuses": [
        {"name": "a", "image": "x", "imageID": "", "ready": false, "restartCount": 1,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 0}}},
        {"name": "b", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
         "state": {"terminated": {"exitCode": 137}}, "lastState": {}},
    ]}));
    super::stopped_for_good(&mut status);
    let mut status = serde_json::to_value(&status).unwrap();
    assert_eq!(
        status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    assert_eq!(
        status["containerStatuses"][0]["lastState"],
        serde_json::json!({})
    );
    assert_eq!(super::final_phase(&typed(&status)), Some("Failed"));
    status["containerStatuses"][1]["state"]["terminated"]["exitCode"] = 0.into();
    assert_eq!(super::final_phase(&typed(&status)), Some("Succeeded"));
    status["containerStatuses"][1]["state"] = json!({"running": {}});
    assert_eq!(super::final_phase(&typed(&status)), None, "one still runs");
}

const NOW: u64 = 1_000_000_000;

fn pod(extra: &str) -> ObservedPod {
    let spec = pod_from_yaml_str(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n{extra}  containers:\n  - name: app\n    image: x:1\n    readinessProbe: {{tcpSocket: {{port: 80}}}}\n"
    ))
    .unwrap();
    ObservedPod {
        uid: spec.uid.clone(),
        spec: spec.into(),
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
    json_with(p, health, &BTreeMap::new())
}

fn json_with(
    p: &ObservedPod,
    health: &BTreeMap<String, Health>,
    reasons: &BTreeMap<String, ExitInfo>,
) -> Value {
    let (images, node) = (BTreeMap::new(), test_node());
    let facts = PodFacts {
        observed: Some(p),
        image_ids: &images,
        attached: &[],
        created_ms: p.created_ms,
    };
    let inputs = StatusInputs {
        pulls: &BTreeMap::new(),
        reasons,
        health,
        node: &node,
        now_ms: NOW,
    };
    serde_json::to_value(pod_object(&p.spec, &facts, &inputs)).unwrap()
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
    let v = json_with(&p, &BTreeMap::new(), &exits);
    let c = &v["status"]["containerStatuses"][0];
    // Restart policy Always: waiting to restart, the message in lastState.
    assert_eq!(c["lastState"]["terminated"]["message"], "disk full", "{c}");
}
