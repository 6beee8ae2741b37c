//! The agent's HTTP endpoints: liveness, readiness, its pods and events as the Kubernetes
//! API shapes them, and /metrics.

use std::sync::atomic::Ordering;

use super::shared::{Event, Shared};
use crate::http::Response;

/// Answers one GET.
pub fn handle(shared: &Shared, path: &str) -> Response {
    match path {
        "/healthz" => Response::ok("text/plain; charset=utf-8", "ok\n"),
        "/readyz" => {
            if shared.ready.load(Ordering::Relaxed) {
                Response::ok("text/plain; charset=utf-8", "ok\n")
            } else {
                Response {
                    status: 503,
                    content_type: "text/plain; charset=utf-8",
                    body: b"starting\n".to_vec(),
                }
            }
        }
        "/api/v1/pods" => {
            let pods = shared
                .pods
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            Response::ok(
                "application/json",
                serde_json::to_vec_pretty(&pods).unwrap_or_default(),
            )
        }
        "/api/v1/events" => {
            let events: Vec<Event> = shared
                .events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect();
            let list =
                serde_json::json!({"apiVersion": "v1", "kind": "EventList", "items": events});
            Response::ok(
                "application/json",
                serde_json::to_vec_pretty(&list).unwrap_or_default(),
            )
        }
        "/metrics" => match shared.metrics.render() {
            Ok(body) => Response::ok("text/plain; version=0.0.4; charset=utf-8", body),
            Err(e) => Response {
                status: 500,
                content_type: "text/plain; charset=utf-8",
                body: format!("{e}\n").into_bytes(),
            },
        },
        _ => Response::not_found(),
    }
}
