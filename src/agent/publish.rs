//! The PodList the agent publishes after each round (on /api/v1/pods, and to the API
//! server): each pod's status from the planner's view, the pull failures, the evictions
//! and the probes; plus the pod start latency metric once a pod runs.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use super::context::Context;
use super::observe::Observation;
use super::plan::PullFailure;
use super::prober::Health;
use super::status;
use crate::source::manifests::Desired;

/// What one round saw.
pub struct RoundView<'a> {
    pub desired: &'a Desired,
    pub observation: &'a Observation,
    pub pulls: &'a BTreeMap<(String, String), PullFailure>,
    /// Evicted pods by uid: the message their status shows.
    pub evicted: &'a BTreeMap<String, String>,
    pub health: &'a BTreeMap<String, Health>,
    pub now: u64,
}

/// Builds and publishes the PodList. `start_times`: pod uid -> its startTime (ms), fixed
/// when the pod is first published.
pub fn publish(ctx: &Context, view: &RoundView<'_>, start_times: &mut BTreeMap<String, u64>) {
    let (desired, observed) = (view.desired, &view.observation.pods);
    let mut items = Vec::new();
    let mut live = HashSet::new();
    let mut keys: Vec<&String> = desired.pods.keys().collect();
    for k in observed.keys() {
        if !desired.pods.contains_key(k) {
            keys.push(k);
        }
    }
    let no_images = BTreeMap::new();
    for key in keys {
        let spec = desired.pods.get(key).or(observed.get(key).map(|o| &o.spec));
        let Some(spec) = spec else { continue };
        // What the node has under this name, if it is this pod: a pod deleted and created
        // again under its name must not show its predecessor's containers.
        let same = observed.get(key).filter(|o| o.uid == spec.uid);
        // startTime: set once, when the pod is first seen (its record's time after a restart).
        let created_ms = *start_times
            .entry(spec.uid.clone())
            .or_insert_with(|| same.map(|o| o.created_ms).unwrap_or(view.now));
        live.insert(spec.uid.clone());
        let image_ids = same.and(view.observation.image_ids.get(key));
        let mut item = status::pod_json(
            spec,
            same,
            view.pulls,
            &view.observation.reasons,
            view.health,
            image_ids.unwrap_or(&no_images),
            &ctx.config.node,
            same.and(view.observation.pod_ips.get(key))
                .map(Vec::as_slice)
                .unwrap_or_default(),
            created_ms,
            view.now,
        );
        ctx.config.patch_status(&spec.uid, &mut item);
        if let Some(message) = view.evicted.get(&spec.uid) {
            item["status"]["phase"] = "Failed".into();
            item["status"]["reason"] = "Evicted".into();
            item["status"]["message"] = message.clone().into();
            status::stopped_for_good(&mut item["status"]);
        } else if !desired.pods.contains_key(key) {
            // On its way out (removed, or deleted through the API): no restart follows, and
            // once nothing runs the phase is final, as kubelet reports a deleted pod.
            status::stopped_for_good(&mut item["status"]);
            if let Some(phase) = status::final_phase(&item["status"]) {
                item["status"]["phase"] = phase.into();
            }
        } else if item["status"]["phase"] == "Running" {
            if let Some((secs, pulled)) = ctx.shared.metrics.start.running(&spec.uid) {
                ctx.shared
                    .metrics
                    .pod_start_seconds
                    .with_label_values(&[if pulled { "true" } else { "false" }])
                    .observe(secs);
            }
        }
        items.push(item);
    }
    start_times.retain(|uid, _| live.contains(uid));
    *ctx.shared.pods.lock().unwrap_or_else(|p| p.into_inner()) = serde_json::json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "items": items,
    });
    ctx.shared.ready.store(true, Ordering::Relaxed);
}
