//! What the HTTP side and the API link read and the reconcile loop and its tasks write:
//! the published pods, the recent events, readiness, counters and the metrics registry.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::time::format_rfc3339_nano;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "lastTimestamp")]
    pub time: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub reason: String,
    pub message: String,
    #[serde(rename = "involvedObject")]
    pub object: EventObject,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventObject {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    #[serde(rename = "fieldPath", skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// What the HTTP side reads and the loop and tasks write.
#[derive(Default)]
pub struct Shared {
    pub pods: Mutex<serde_json::Value>,
    pub events: Mutex<VecDeque<Event>>,
    pub ready: AtomicBool,
    pub manifest_errors: AtomicU64,
    pub reconcile_errors: AtomicU64,
    pub reconciles: AtomicU64,
    /// The registry /metrics serves, and what the agent feeds into it.
    pub metrics: crate::metrics::Metrics,
    /// In kube mode, where events also go (to be posted to the API server).
    pub event_tap: Mutex<Option<mpsc::Sender<Event>>>,
}

const MAX_EVENTS: usize = 1000;

impl Shared {
    /// An event about the node rather than a pod (disk pressure, image GC).
    pub fn node_event(&self, kind: &'static str, reason: &str, message: String) {
        if kind == "Warning" {
            tracing::warn!(reason, "{message}");
        } else {
            tracing::info!(reason, "{message}");
        }
        self.push_event(Event {
            time: format_rfc3339_nano(std::time::SystemTime::now()),
            kind,
            reason: reason.to_string(),
            message,
            object: EventObject {
                kind: "Node",
                namespace: String::new(),
                name: String::new(),
                field_path: None,
            },
        });
    }

    fn push_event(&self, event: Event) {
        if let Some(tap) = self
            .event_tap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            // Full: the API server is slow or away; events there are best effort.
            let _ = tap.try_send(event.clone());
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() >= MAX_EVENTS {
            events.pop_front();
        }
        events.push_back(event);
    }

    pub fn event(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
        container: Option<&str>,
        reason: &str,
        message: String,
    ) {
        if kind == "Warning" {
            tracing::warn!(pod = %format!("{namespace}/{name}"), container, reason, "{message}");
        } else {
            tracing::info!(pod = %format!("{namespace}/{name}"), container, reason, "{message}");
        }
        self.push_event(Event {
            time: format_rfc3339_nano(std::time::SystemTime::now()),
            kind,
            reason: reason.to_string(),
            message,
            object: EventObject {
                kind: "Pod",
                namespace: namespace.to_string(),
                name: name.to_string(),
                field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            },
        });
    }
}
