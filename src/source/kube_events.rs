//! Events about API pods and this node, posted to the API server as kubelet posts them
//! (core/v1 Events, `source.component: layerlet`), so `kubectl describe` and `kubectl get
//! events` show them. An event repeated within [`AGGREGATE_WINDOW`] bumps the count of the
//! first one (a patch) instead of making a new object, as kubelet's event correlator does.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
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
        body: Box<Event>,
    },
    /// A merge patch: only the count and lastTimestamp are set.
    Patch {
        namespace: String,
        name: String,
        body: Box<Event>,
    },
}

/// The event's time as the API's Time; an unreadable one (never made by the agent) is now.
fn api_time(text: &str) -> Time {
    Time(
        text.parse::<Timestamp>()
            .unwrap_or_else(|_| Timestamp::now()),
    )
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
                    body: Box::new(Event {
                        count: Some(i32::try_from(seen.count).unwrap_or(i32::MAX)),
                        last_timestamp: Some(api_time(&event.time)),
                        ..Event::default()
                    }),
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
                ObjectReference {
                    api_version: Some("v1".to_string()),
                    kind: Some("Pod".to_string()),
                    namespace: Some(namespace.clone()),
                    name: Some(name.clone()),
                    uid: Some(uid.clone()),
                    field_path: field_path.clone(),
                    ..ObjectReference::default()
                },
            ),
            // kubelet names its node by name as the uid too.
            Involved::Node { name } => (
                "default".to_string(),
                name.clone(),
                ObjectReference {
                    kind: Some("Node".to_string()),
                    name: Some(name.clone()),
                    uid: Some(name.clone()),
                    ..ObjectReference::default()
                },
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
        let time = api_time(&event.time);
        EventCall::Create {
            namespace: namespace.clone(),
            body: Box::new(Event {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(namespace),
                    ..ObjectMeta::default()
                },
                involved_object: involved,
                type_: Some(event.kind.clone()),
                reason: Some(event.reason.clone()),
                message: Some(event.message.clone()),
                source: Some(EventSource {
                    component: Some("layerlet".to_string()),
                    host: Some(node.to_string()),
                }),
                reporting_component: Some("layerlet".to_string()),
                reporting_instance: Some(node.to_string()),
                first_timestamp: Some(time.clone()),
                last_timestamp: Some(time),
                count: Some(1),
                ..Event::default()
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
                api.create(&PostParams::default(), body).await.map(|_| ())
            }
            EventCall::Patch {
                namespace,
                name,
                body,
            } => {
                let api: Api<Event> = Api::namespaced(client.clone(), namespace);
                api.patch(name, &PatchParams::default(), &Patch::Merge(body.as_ref()))
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
        let body = serde_json::to_value(&body).unwrap();
        assert_eq!(body["involvedObject"]["uid"], "u1");
        assert_eq!(body["involvedObject"]["fieldPath"], "spec.containers{app}");
        assert_eq!(body["source"]["component"], "layerlet");
        assert_eq!(body["firstTimestamp"], "2026-11-26T10:00:00Z");
        assert_eq!(body["count"], 1);
        let first_name = body["metadata"]["name"].as_str().unwrap().to_string();
        assert!(first_name.starts_with("web."), "{first_name}");
        let again = c.call(&event("BackOff"), t0 + Duration::from_secs(30), "n1");
        let EventCall::Patch {
            namespace,
            name,
            body,
        } = again
        else {
            panic!("a repeat is a patch: {again:?}");
        };
        assert_eq!(
            (namespace.as_str(), name.as_str()),
            ("shop", first_name.as_str())
        );
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"apiVersion": "v1", "kind": "Event", "involvedObject": {}, "metadata": {}, "count": 2, "lastTimestamp": "2026-11-26T10:00:00Z"}),
            "a merge patch of the count and time only"
        );
        assert!(matches!(
            c.call(&event("Killing"), t0, "n1"),
            EventCall::Create { .. }
        ));
        let late = c.call(&event("BackOff"), t0 + AGGREGATE_WINDOW, "n1");
        assert!(
            matches!(&late, EventCall::Create { body, .. } if body.metadata.name.as_deref() != Some(first_name.as_str())),
            "after the window a new event starts: {late:?}"
        );
    }
}
