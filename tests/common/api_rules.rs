//! The API server's decoding rules that the mock applies to what the agent writes, so a body
//! the real server would refuse is refused here too: `MicroTime` with exactly six fractional
//! digits, `Time` per RFC 3339, the strategic merge of status lists by their merge keys,
//! and a Node's pod CIDRs (kept in step, set once).
//! A refusal is the real server's `422 Invalid` Status naming the field. Fields the typed
//! object does not have are refused as under `fieldValidation=Strict` (`400 BadRequest`,
//! "strict decoding error: unknown field"): the real server's default only warns and drops
//! them, which would hide a field the agent means to set.

use serde_json::{json, Value};

/// `2006-01-02T15:04:05` followed by `rest`, which `tail` must accept.
fn date_time_then(s: &str, tail: impl Fn(&str) -> bool) -> bool {
    let b = s.as_bytes();
    if b.len() < 19 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && tail(&s[19..])
}

/// `Z` or `+07:00`.
fn zone(s: &str) -> bool {
    let b = s.as_bytes();
    s == "Z"
        || (b.len() == 6
            && (b[0] == b'+' || b[0] == b'-')
            && b[1..3].iter().all(u8::is_ascii_digit)
            && b[3] == b':'
            && b[4..6].iter().all(u8::is_ascii_digit))
}

/// metav1.MicroTime: Go's `2006-01-02T15:04:05.000000Z07:00`, exactly six digits.
pub fn is_micro_time(s: &str) -> bool {
    date_time_then(s, |rest| {
        rest.len() >= 8
            && rest.as_bytes()[0] == b'.'
            && rest.as_bytes()[1..7].iter().all(u8::is_ascii_digit)
            && zone(&rest[7..])
    })
}

/// metav1.Time: RFC 3339 as Go's time.Parse reads it (fractional seconds allowed).
pub fn is_time(s: &str) -> bool {
    date_time_then(s, |rest| match rest.strip_prefix('.') {
        Some(frac) => {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            (1..=9).contains(&n) && zone(&frac[n..])
        }
        None => zone(rest),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeKind {
    Time,
    MicroTime,
}

/// Every time field the agent writes, by kind, as paths (`[]` walks a list).
fn time_fields(kind: &str) -> &'static [(&'static str, TimeKind)] {
    use TimeKind::*;
    match kind {
        "leases" => &[
            ("spec.renewTime", MicroTime),
            ("spec.acquireTime", MicroTime),
        ],
        "nodes" => &[
            ("status.conditions[].lastHeartbeatTime", Time),
            ("status.conditions[].lastTransitionTime", Time),
        ],
        "events" => &[
            ("firstTimestamp", Time),
            ("lastTimestamp", Time),
            ("eventTime", MicroTime),
            ("series.lastObservedTime", MicroTime),
        ],
        "pods" => &[
            ("status.startTime", Time),
            ("status.conditions[].lastProbeTime", Time),
            ("status.conditions[].lastTransitionTime", Time),
            ("status.containerStatuses[].state.running.startedAt", Time),
            (
                "status.containerStatuses[].state.terminated.startedAt",
                Time,
            ),
            (
                "status.containerStatuses[].state.terminated.finishedAt",
                Time,
            ),
            (
                "status.containerStatuses[].lastState.terminated.startedAt",
                Time,
            ),
            (
                "status.containerStatuses[].lastState.terminated.finishedAt",
                Time,
            ),
            (
                "status.initContainerStatuses[].state.running.startedAt",
                Time,
            ),
            (
                "status.initContainerStatuses[].state.terminated.startedAt",
                Time,
            ),
            (
                "status.initContainerStatuses[].state.terminated.finishedAt",
                Time,
            ),
        ],
        _ => &[],
    }
}

/// The values at `path` with their field paths (`status.conditions[2].lastTransitionTime`).
fn values_at<'v>(v: &'v Value, path: &str, prefix: String, out: &mut Vec<(String, &'v Value)>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let join = |p: &str| {
        if prefix.is_empty() {
            p.to_string()
        } else {
            format!("{prefix}.{p}")
        }
    };
    if let Some(list) = head.strip_suffix("[]") {
        for (i, item) in v[list].as_array().into_iter().flatten().enumerate() {
            let here = join(&format!("{list}[{i}]"));
            match rest {
                Some(r) => values_at(item, r, here, out),
                None => out.push((here, item)),
            }
        }
        return;
    }
    let Some(next) = v.get(head) else { return };
    match rest {
        Some(r) => values_at(next, r, join(head), out),
        None => out.push((join(head), next)),
    }
}

/// The `422 Invalid` body for an object of `kind` (resource name, plural) whose time
/// fields do not decode, or None when they all do.
pub fn refuse_bad_times(kind: &str, name: &str, object: &Value) -> Option<Value> {
    let mut causes = Vec::new();
    for (path, expected) in time_fields(kind) {
        let mut found = Vec::new();
        values_at(object, path, String::new(), &mut found);
        for (field, value) in found {
            let ok = match (value.as_str(), expected) {
                (None, _) => value.is_null(),
                (Some(s), TimeKind::Time) => is_time(s),
                (Some(s), TimeKind::MicroTime) => is_micro_time(s),
            };
            if !ok {
                let layout = match expected {
                    TimeKind::Time => "2006-01-02T15:04:05Z07:00",
                    TimeKind::MicroTime => "2006-01-02T15:04:05.000000Z07:00",
                };
                causes.push(json!({
                    "reason": "FieldValueInvalid",
                    "field": field,
                    "message": format!("Invalid value: {value}: parsing time as \"{layout}\""),
                }));
            }
        }
    }
    invalid(kind, name, causes)
}

/// `value` decoded as `T` and encoded again: what the server keeps of it. None when it does
/// not decode at all (other rules answer for that).
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> Option<Value> {
    let typed: T = serde_json::from_value(value.clone()).ok()?;
    serde_json::to_value(typed).ok()
}

/// The fields of `input` that `kept` lacks, as strict decoding names them
/// (`spec.renewTimes`, `status.conditions[0].reasons`). Nulls are absent fields.
fn dropped(input: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (input, kept) {
        (Value::Object(fields), Value::Object(kept_fields)) => {
            for (key, value) in fields.iter().filter(|(_, v)| !v.is_null()) {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept_fields.get(key) {
                    Some(kept_value) => dropped(value, kept_value, &at, out),
                    None => out.push(at),
                }
            }
        }
        (Value::Array(items), Value::Array(kept_items)) => {
            for (n, (item, kept_item)) in items.iter().zip(kept_items).enumerate() {
                dropped(item, kept_item, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Every field path of `v`, list indices left out (a strategic merge moves list entries).
fn field_paths(v: &Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(fields) => {
            for (key, value) in fields {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(at.clone());
                field_paths(value, &at, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|i| field_paths(i, &format!("{path}[]"), out)),
        _ => {}
    }
}

fn without_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => {
                in_index = false;
                out.push_str("[]");
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// The `400 BadRequest` body for `object` (the object as the write would leave it; `kind` a
/// resource name, plural, or `events.k8s.io`) when a field the request `body` sent is not a
/// field of the typed object; None when every field is known.
pub fn refuse_unknown_fields(
    kind: &str,
    name: &str,
    object: &Value,
    body: &Value,
) -> Option<Value> {
    use k8s_openapi::api::{coordination::v1::Lease, core::v1, events::v1 as events};
    let kept = match kind {
        "pods" => round_trip::<v1::Pod>(object),
        "nodes" => round_trip::<v1::Node>(object),
        "leases" => round_trip::<Lease>(object),
        "events" => round_trip::<v1::Event>(object),
        "events.k8s.io" => round_trip::<events::Event>(object),
        _ => None,
    }?;
    let mut unknown = Vec::new();
    dropped(object, &kept, "", &mut unknown);
    // Only what this request sent: a field an earlier writer left is not this write's fault.
    let mut sent = std::collections::BTreeSet::new();
    field_paths(body, "", &mut sent);
    unknown.retain(|path| sent.contains(&without_indices(path)));
    if unknown.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{kind} \"{name}\" could not be decoded: strict decoding error: {}",
            unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ")),
        "reason": "BadRequest", "code": 400,
        "details": {"name": name, "kind": kind, "causes": unknown.iter().map(|f| json!({
            "reason": "FieldValueInvalid", "field": f, "message": "unknown field",
        })).collect::<Vec<_>>()},
    }))
}

/// The `422 Invalid` Status for `causes` (each with `reason`, `field`, `message`), or None
/// when there are none.
fn invalid(kind: &str, name: &str, causes: Vec<Value>) -> Option<Value> {
    if causes.is_empty() {
        return None;
    }
    let message = format!(
        "{kind} \"{name}\" is invalid: {}",
        causes
            .iter()
            .map(|c| format!(
                "{}: {}",
                c["field"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Some(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Invalid", "code": 422,
        "details": {"name": name, "kind": kind, "causes": causes},
    }))
}

/// Whether `s` is a CIDR as the API's validation parses it (host bits allowed); Some(true)
/// for IPv4.
fn cidr_family(s: &str) -> Option<bool> {
    let (addr, prefix) = s.split_once('/')?;
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some(addr.is_ipv4())
}

/// A Node's pod CIDRs as the API server keeps them, applied to `node` (stored over `old`,
/// if any): v1's `spec.podCIDR` and `spec.podCIDRs` are one field inside the server, so
/// `podCIDRs` is filled from `podCIDR` when only that is given and `podCIDR` is always
/// `podCIDRs[0]`. Refused (`422 Invalid`): a value that is not a CIDR, more than one CIDR
/// of an IP family, and any change of pod CIDRs once set (only the node IPAM controller's
/// first assignment is allowed).
pub fn settle_pod_cidrs(name: &str, old: Option<&Value>, node: &mut Value) -> Option<Value> {
    let listed = |n: &Value| -> Vec<String> {
        let list: Vec<String> = n["spec"]["podCIDRs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        match n["spec"]["podCIDR"].as_str() {
            Some(one) if list.is_empty() && !one.is_empty() => vec![one.to_string()],
            _ => list,
        }
    };
    let cidrs = listed(node);
    let mut causes = Vec::new();
    let families: Vec<Option<bool>> = cidrs.iter().map(|c| cidr_family(c)).collect();
    for (i, (cidr, family)) in cidrs.iter().zip(&families).enumerate() {
        if family.is_none() {
            causes.push(json!({
                "reason": "FieldValueInvalid",
                "field": format!("spec.podCIDRs[{i}]"),
                "message": format!("Invalid value: {cidr:?}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
            }));
        }
    }
    if cidrs.len() > 2 || (cidrs.len() == 2 && families[0] == families[1]) {
        causes.push(json!({
            "reason": "FieldValueInvalid",
            "field": "spec.podCIDRs",
            "message": format!("Invalid value: {cidrs:?}: may specify no more than one CIDR for each IP family"),
        }));
    }
    if let Some(old) = old {
        let before = listed(old);
        if !before.is_empty() && before != cidrs {
            causes.push(json!({
                "reason": "FieldValueForbidden",
                "field": "spec.podCIDRs",
                "message": "Forbidden: node updates may not change podCIDR except from \"\" to valid",
            }));
        }
    }
    if let Some(refusal) = invalid("nodes", name, causes) {
        return Some(refusal);
    }
    if let (Some(first), Some(spec)) = (cidrs.first(), node["spec"].as_object_mut()) {
        spec.insert("podCIDR".into(), json!(first));
        spec.insert("podCIDRs".into(), json!(cidrs));
    }
    None
}

/// The merge key of a list of a pod's or node's status, as the API's strategic merge
/// patch knows it.
fn merge_key(path: &str) -> Option<&'static str> {
    match path {
        "status.conditions" | "status.addresses" => Some("type"),
        "status.containerStatuses"
        | "status.initContainerStatuses"
        | "status.ephemeralContainerStatuses" => Some("name"),
        "status.podIPs" | "status.hostIPs" => Some("ip"),
        _ => None,
    }
}

/// A strategic merge patch as the API server applies it to a status: lists with a merge
/// key merge item by item (`$patch: delete` removes one), other lists and scalars replace,
/// `null` removes, `$patch: replace` replaces a map, other directives are dropped.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    merge_at(target, patch, "");
}

fn merge_at(target: &mut Value, patch: &Value, path: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        if let Some(o) = replaced.as_object_mut() {
            o.retain(|k, _| !k.starts_with('$'));
        }
        *target = replaced;
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        let t = target.as_object_mut().expect("made an object above");
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(&here), v.as_array()) {
            (Some(key), Some(items)) => {
                let list = t.entry(k.clone()).or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                let list = list.as_array_mut().expect("made a list above");
                for item in items {
                    let id = &item[key];
                    let at = list.iter().position(|have| &have[key] == id);
                    if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                        if let Some(i) = at {
                            list.remove(i);
                        }
                        continue;
                    }
                    match at {
                        Some(i) => merge_at(&mut list[i], item, &here),
                        None => {
                            let mut new = Value::Null;
                            merge_at(&mut new, item, &here);
                            list.push(new);
                        }
                    }
                }
            }
            _ => merge_at(t.entry(k.clone()).or_insert(Value::Null), v, &here),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_the_typed_object_lacks_are_refused_when_this_write_sent_them() {
        let lease = json!({"metadata": {"name": "n1"},
            "spec": {"holderIdentity": "n1", "renewTimes": "2026-12-04T17:17:22.668661Z"}});
        let refusal = refuse_unknown_fields("leases", "n1", &lease, &lease).unwrap();
        assert_eq!(
            (refusal["code"].as_u64(), refusal["reason"].as_str()),
            (Some(400), Some("BadRequest"))
        );
        assert_eq!(refusal["details"]["causes"][0]["field"], "spec.renewTimes");
        assert!(refusal["message"]
            .as_str()
            .unwrap()
            .contains("strict decoding error: unknown field \"spec.renewTimes\""));
        let good = json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}});
        assert_eq!(refuse_unknown_fields("leases", "n1", &good, &good), None);

        let status = |extra: Value| {
            let mut c = json!({"name": "c", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"running": {}}});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "other", "image": "y",
                    "imageID": "", "ready": true, "restartCount": 0}, c]}})
        };
        // The patch names the entry by its merge key; the merged list has it second.
        let pod = status(json!({"stat": {}}));
        let patch = json!({"status": {"containerStatuses": [{"name": "c", "stat": {}}]}});
        let refusal = refuse_unknown_fields("pods", "p", &pod, &patch).unwrap();
        assert_eq!(
            refusal["details"]["causes"][0]["field"],
            "status.containerStatuses[1].stat"
        );
        // A field an earlier writer left is not this write's to answer for.
        let unrelated = json!({"status": {"phase": "Running"}});
        assert_eq!(refuse_unknown_fields("pods", "p", &pod, &unrelated), None);
        assert_eq!(
            refuse_unknown_fields("pods", "p", &status(json!({})), &patch),
            None
        );
    }

    #[test]
    fn micro_time_needs_exactly_six_digits_and_time_takes_rfc3339() {
        assert!(is_micro_time("2026-12-04T17:17:22.668661Z"));
        assert!(is_micro_time("2026-12-04T17:17:22.668661+01:00"));
        assert!(!is_micro_time("2026-12-04T17:17:22.668661377Z"));
        assert!(!is_micro_time("2026-12-04T17:17:22Z"));
        assert!(is_time("2026-12-04T17:17:22Z"));
        assert!(is_time("2026-12-04T17:17:22.668661377Z"));
        assert!(!is_time("2026-12-04 17:17:22Z"));
        assert!(!is_time("2026-12-04T17:17:22"));
    }

    #[test]
    fn a_lease_with_nine_digits_is_refused_naming_the_field() {
        let lease = json!({"spec": {"renewTime": "2026-12-04T17:17:22.668661377Z"}});
        let refusal = refuse_bad_times("leases", "n1", &lease).unwrap();
        assert_eq!(refusal["code"], 422);
        assert_eq!(refusal["details"]["causes"][0]["field"], "spec.renewTime");
        let good = json!({"spec": {"renewTime": "2026-12-04T17:17:22.668661Z"}});
        assert!(refuse_bad_times("leases", "n1", &good).is_none());
    }

    #[test]
    fn pod_cidrs_are_kept_in_step_checked_and_set_once() {
        let mut node = json!({"spec": {"podCIDR": "10.244.7.0/24"}});
        assert!(settle_pod_cidrs("n1", None, &mut node).is_none());
        assert_eq!(node["spec"]["podCIDRs"], json!(["10.244.7.0/24"]));
        let mut both = json!({"spec": {"podCIDR": "10.9.0.0/24", "podCIDRs": ["10.244.7.0/24", "fd00:7::/64"]}});
        assert!(settle_pod_cidrs("n1", None, &mut both).is_none());
        assert_eq!(both["spec"]["podCIDR"], "10.244.7.0/24", "podCIDRs wins");
        let mut none = json!({"spec": {"taints": []}});
        assert!(settle_pod_cidrs("n1", None, &mut none).is_none());
        assert!(none["spec"].get("podCIDRs").is_none(), "{none}");

        let mut bad = json!({"spec": {"podCIDRs": ["10.244.7.0"]}});
        let refusal = settle_pod_cidrs("n1", None, &mut bad).unwrap();
        assert_eq!(refusal["code"], 422);
        assert_eq!(refusal["details"]["causes"][0]["field"], "spec.podCIDRs[0]");
        let mut two_v4 = json!({"spec": {"podCIDRs": ["10.244.7.0/24", "10.244.8.0/24"]}});
        let refusal = settle_pod_cidrs("n1", None, &mut two_v4).unwrap();
        assert_eq!(refusal["details"]["causes"][0]["field"], "spec.podCIDRs");

        // The first assignment is allowed; a change or a removal afterwards is not.
        let unset = json!({"spec": {}});
        let mut first = json!({"spec": {"podCIDRs": ["10.244.7.0/24"]}});
        assert!(settle_pod_cidrs("n1", Some(&unset), &mut first).is_none());
        let mut same = first.clone();
        assert!(settle_pod_cidrs("n1", Some(&first), &mut same).is_none());
        for change in [json!(["10.244.9.0/24"]), json!([])] {
            let mut changed = json!({"spec": {"podCIDRs": change}});
            let refusal = settle_pod_cidrs("n1", Some(&first), &mut changed).unwrap();
            let message = refusal["message"].as_str().unwrap();
            assert!(message.contains("may not change podCIDR"), "{message}");
        }
    }

    #[test]
    fn status_lists_merge_by_their_keys() {
        let mut pod = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "example.com/Gate", "status": "True"},
        ], "containerStatuses": [{"name": "a", "ready": false}]}});
        strategic_merge(
            &mut pod,
            &json!({"status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "a", "ready": true}, {"name": "b", "ready": false}],
                "$setElementOrder/conditions": [{"type": "Ready"}],
            }}),
        );
        assert_eq!(
            pod["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(pod["status"]["conditions"][1]["type"], "example.com/Gate");
        assert_eq!(
            pod["status"]["containerStatuses"].as_array().unwrap().len(),
            2
        );
        assert_eq!(pod["status"]["containerStatuses"][0]["ready"], true);
    }
}
