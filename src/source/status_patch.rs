//! The strategic merge patch that turns the status the API server has into the status the
//! node reports, as kubelet computes it (a two-way patch): fields that went away are sent
//! as `null`, so a container that moved from `waiting` to `running` does not keep both, and
//! a pod reason that no longer applies is cleared. Lists the API merges by key (container
//! statuses by name, conditions by type, IPs by ip) carry only the entries that changed,
//! with `$patch: delete` for the ones that went away; conditions other controllers own
//! (readiness gates) are never touched.

use serde_json::{Map, Value};

/// The merge key of a status list, as the API's strategic merge uses it.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses" => {
            Some("name")
        }
        "conditions" => Some("type"),
        "podIPs" | "hostIPs" => Some("ip"),
        _ => None,
    }
}

/// Conditions the node reports; others belong to other controllers and are left alone.
const NODE_CONDITIONS: [&str; 5] = [
    "PodScheduled",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodReadyToStartContainers",
];

/// Top-level status fields the node reports; the API server and other controllers set the
/// rest (qosClass, nominatedNodeName, resize...), so their absence here clears nothing.
const NODE_FIELDS: [&str; 11] = [
    "phase",
    "reason",
    "message",
    "hostIP",
    "hostIPs",
    "podIP",
    "podIPs",
    "startTime",
    "conditions",
    "initContainerStatuses",
    "containerStatuses",
];

/// The patch of `.status` from `old` (what the server has; Null when unknown) to `new`.
/// None when nothing changed.
pub fn status_patch(old: &Value, new: &Value) -> Option<Value> {
    let mut patch = diff_maps(old.as_object(), new.as_object()?);
    patch.retain(|key, value| !value.is_null() || NODE_FIELDS.contains(&key.as_str()));
    (!patch.is_empty()).then_some(Value::Object(patch))
}

fn diff_maps(old: Option<&Map<String, Value>>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    let empty = Map::new();
    let old = old.unwrap_or(&empty);
    for (key, value) in new {
        match (old.get(key), value) {
            (Some(before), after) if before == after => {}
            (Some(Value::Object(before)), Value::Object(after)) => {
                let inner = diff_maps(Some(before), after);
                if !inner.is_empty() {
                    patch.insert(key.clone(), Value::Object(inner));
                }
            }
            (before, Value::Array(after)) if merge_key(key).is_some() => {
                let before = before
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                let entries = diff_keyed_list(key, before, after);
                if !entries.is_empty() {
                    patch.insert(key.clone(), Value::Array(entries));
                }
            }
            _ => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    for key in old.keys() {
        if !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    patch
}

/// The entries of a list merged by key that changed, and deletes for the ones gone.
fn diff_keyed_list(list: &str, old: &[Value], new: &[Value]) -> Vec<Value> {
    let Some(field) = merge_key(list) else {
        return new.to_vec();
    };
    let key_of = |entry: &Value| entry.get(field).cloned();
    let mut out = Vec::new();
    for entry in new {
        let Some(key) = key_of(entry) else {
            continue;
        };
        let before = old.iter().find(|o| key_of(o).as_ref() == Some(&key));
        if before == Some(entry) {
            continue;
        }
        match entry.as_object() {
            Some(after) => {
                let mut inner = diff_maps(before.and_then(Value::as_object), after);
                inner.insert(field.to_string(), key);
                out.push(Value::Object(inner));
            }
            None => out.push(entry.clone()),
        }
    }
    for entry in old {
        let Some(key) = key_of(entry) else {
            continue;
        };
        let gone = !new.iter().any(|n| key_of(n).as_ref() == Some(&key));
        let ours =
            list != "conditions" || key.as_str().is_some_and(|k| NODE_CONDITIONS.contains(&k));
        if gone && ours {
            let mut delete = Map::new();
            delete.insert(field.to_string(), key);
            delete.insert("$patch".to_string(), Value::String("delete".to_string()));
            out.push(Value::Object(delete));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_state_that_moved_is_cleared_and_unchanged_fields_stay_out() {
        let old = json!({"phase": "Pending", "hostIP": "10.0.0.5", "containerStatuses": [
            {"name": "app", "ready": false, "state": {"waiting": {"reason": "ContainerCreating"}}},
            {"name": "side", "ready": true, "state": {"running": {"startedAt": "2026-12-05T10:00:00Z"}}},
        ]});
        let new = json!({"phase": "Running", "hostIP": "10.0.0.5", "containerStatuses": [
            {"name": "app", "ready": true, "state": {"running": {"startedAt": "2026-12-05T10:00:01Z"}}},
            {"name": "side", "ready": true, "state": {"running": {"startedAt": "2026-12-05T10:00:00Z"}}},
        ]});
        let patch = status_patch(&old, &new).unwrap();
        assert_eq!(
            patch,
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true,
                 "state": {"running": {"startedAt": "2026-12-05T10:00:01Z"}, "waiting": null}},
            ]})
        );
        assert_eq!(status_patch(&new, &new), None, "nothing changed");
    }

    #[test]
    fn a_reason_that_no_longer_applies_is_removed_and_unknown_old_sends_everything() {
        let old = json!({"phase": "Pending", "reason": "Init:0/1", "qosClass": "BestEffort"});
        let new = json!({"phase": "Running"});
        assert_eq!(
            status_patch(&old, &new).unwrap(),
            json!({"phase": "Running", "reason": null}),
            "the server's qosClass stays"
        );
        assert_eq!(status_patch(&Value::Null, &new).unwrap(), new);
    }

    #[test]
    fn conditions_merge_by_type_and_other_controllers_conditions_stay() {
        let old = json!({"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "example.com/gate", "status": "True"},
            {"type": "PodReadyToStartContainers", "status": "True"},
        ]});
        let new = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(
            status_patch(&old, &new).unwrap(),
            json!({"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "PodReadyToStartContainers", "$patch": "delete"},
            ]})
        );
    }

    #[test]
    fn a_container_gone_from_the_list_is_deleted_by_its_name() {
        let old = json!({"podIPs": [{"ip": "10.89.0.2"}], "containerStatuses": [{"name": "a"}, {"name": "b"}]});
        let new = json!({"podIPs": [{"ip": "10.89.0.3"}], "containerStatuses": [{"name": "a"}]});
        assert_eq!(
            status_patch(&old, &new).unwrap(),
            json!({
                "podIPs": [{"ip": "10.89.0.3"}, {"ip": "10.89.0.2", "$patch": "delete"}],
                "containerStatuses": [{"name": "b", "$patch": "delete"}],
            })
        );
    }
}
