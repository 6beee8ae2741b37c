//! Events about API pods and this node, posted to the API server as kubelet posts them
//! (core/v1 Events, `source.component: layerlet`), so `kubectl describe` and `kubectl get
//! events` show them. An event repeated within [`AGGREGATE_WINDOW`] bumps the count of the
//! first one (a patch) instead of making a new object, as kubelet's event correlator does.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio::sync::mpsc;

pub const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);
/// Distinct events remembered for aggregation; the oldest is forgotten first.
const REMEMBERED: usize = 4096;

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Involved {
    Pod {
        namespace: String,
        name: String,
        uid: String,
        field_path: Option<String>,
    },
    Node {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiEvent {
    pub involved: Involved,
    /// Normal or Warning.
    pub kind: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub time: String,
}

/// One call to make.
#[derive(Debug, Clone, PartialEq)]
pub enum EventCall {
    Create {
        namespace: String,
        body: serde_json::Value,
    },
    Patch {
        namespace: String,
        name: String,
        body: serde_json::Value,
    },
}

struct Seen {
    namespace: String,
    name: String,
    count: u32,
    first_at: std::time::Instant,
}

/// Pure apart from the clock it is given: turns events into creates and count patches.
#[derive(Default)]
pub struct Correlator {
    seen: BTreeMap<(Involved, String, String, String), Seen>,
    made: u64,
}

impl Correlator {
    pub fn call(&mut self, event: &ApiEvent, now: std::time::Instant, node: &str) -> EventCall {
        let key = (
            event.involved.clone(),
            event.kind.clone(),
            event.reason.clone(),
            event.message.clone(),
        );
        if let Some(seen) = self.seen.get_mut(&key) {
            if now.duration_since(seen.first_at) < AGGREGATE_WINDOW {
                seen.count += 1;
                return EventCall::Patch {
                    namespace: seen.namespace.clone(),
                    name: seen.name.clone(),
                    body: json!({"count": seen.count, "lastTimestamp": event.time}),
                };
            }
        }
        if self.seen.len() >= REMEMBERED {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.first_at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.seen.remove(&k);
            }
        }
        self.made += 1;
        let (namespace, object_name, involved) = match &event.involved {
            Involved::Pod {
                namespace,
                name,
                uid,
                field_path,
            } => (
                namespace.clone(),
                name.clone(),
                json!({"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": name, "uid": uid, "fieldPath": field_path}),
            ),
            Involved::Node { name } => (
                "default".to_string(),
                name.clone(),
                json!({"kind": "Node", "name": name, "uid": name}),
            ),
        };
        // Unique per agent run: the object's name, a nanosecond stamp and a counter.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("{object_name}.{stamp:x}{:x}", self.made);
        self.seen.insert(
            key,
            Seen {
                namespace: namespace.clone(),
                name: name.clone(),
                count: 1,
                first_at: now,
            },
        );
        EventCall::Create {
            namespace: namespace.clone(),
            body: json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": involved,
                "type": event.kind,
                "reason": event.reason,
                "message": event.message,
                "source": {"component": "layerlet", "host": node},
                "reportingComponent": "layerlet",
                "reportingInstance": node,
                "firstTimestamp": event.time,
                "lastTimestamp": event.time,
                "count": 1,
            }),
        }
    }
}

/// Posts events until the channel closes. A failed call is logged and dropped: events are
/// best effort, as kubelet's are.
pub async fn post_events(client: Client, node: String, mut events: mpsc::Receiver<ApiEvent>) {
    let mut correlator = Correlator::default();
    while let Some(event) = events.recv().await {
        let call = correlator.call(&event, std::time::Instant::now(), &node);
        let result = match &call {
            EventCall::Create { namespace, body } => {
                let api: Api<Event> = Api::namespaced(client.clone(), namespace);
                match serde_json::from_value::<Event>(body.clone()) {
                    Ok(object) => api
                        .create(&PostParams::default(), &object)
                        .await
                        .map(|_| ()),
                    Err(e) => Err(kube::Error::SerdeError(e)),
                }
            }
            EventCall::Patch {
                namespace,
                name,
                body,
            } => {
                let api: Api<Event> = Api::namespaced(client.clone(), namespace);
                api.patch(name, &PatchParams::default(), &Patch::Merge(body))
                    .await
                    .map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::debug!(reason = %event.reason, error = %e, "posting an event to the API server failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str) -> ApiEvent {
        ApiEvent {
            involved: Involved::Pod {
                namespace: "shop".into(),
                name: "web".into(),
                uid: "u1".into(),
                field_path: Some("spec.containers{app}".into()),
            },
            kind: "Warning".into(),
            reason: reason.into(),
            message: "Back-off restarting failed container app".into(),
            time: "2026-11-26T10:00:00Z".into(),
        }
    }

    #[test]
    fn a_repeated_event_bumps_the_count_of_the_first_within_the_window() {
        let mut c = Correlator::default();
        let t0 = std::time::Instant::now();
        let EventCall::Create { namespace, body } = c.call(&event("BackOff"), t0, "n1") else {
            panic!("the first is created");
        };
        assert_eq!(namespace, "shop");
        assert_eq!(body["involvedObject"]["uid"], "u1");
        assert_eq!(body["involvedObject"]["fieldPath"], "spec.containers{app}");
        assert_eq!(body["source"]["component"], "layerlet");
        serde_json::from_value::<Event>(body.clone()).expect("a valid Event");
        let first_name = body["metadata"]["name"].as_str().unwrap().to_string();
        assert!(first_name.starts_with("web."), "{first_name}");
        let again = c.call(&event("BackOff"), t0 + Duration::from_secs(30), "n1");
        assert_eq!(
            again,
            EventCall::Patch {
                namespace: "shop".into(),
                name: first_name.clone(),
                body: json!({"count": 2, "lastTimestamp": "2026-11-26T10:00:00Z"}),
            }
        );
        assert!(matches!(
            c.call(&event("Killing"), t0, "n1"),
            EventCall::Create { .. }
        ));
        let late = c.call(&event("BackOff"), t0 + AGGREGATE_WINDOW, "n1");
        assert!(
            matches!(&late, EventCall::Create { body, .. } if body["metadata"]["name"] != first_name.as_str()),
            "after the window a new event starts: {late:?}"
        );
    }
}
