//! The PodList the agent publishes after each round (on /api/v1/pods, and to the API
//! server): each pod's status from the planner's view, the pull failures, the evictions
//! and the probes; plus the pod start latency metric once a pod runs.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use k8s_openapi::List;

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
    let inputs = status::StatusInputs {
        pulls: view.pulls,
        reasons: &view.observation.reasons,
        health: view.health,
        node: &ctx.config.node,
        now_ms: view.now,
    };
    for key in keys {
        let spec = desired
            .pods
            .get(key)
            .or(observed.get(key).map(|o| &*o.spec));
        let Some(spec) = spec else { continue };
        // What the node has under this name, if it is this pod: a pod deleted and created
        // again under its name must not show its predecessor's containers.
        let same = observed.get(key).filter(|o| o.uid == spec.uid);
        // startTime: set once, when the pod is first seen (its record's time after a restart).
        let created_ms = *start_times
            .entry(spec.uid.clone())
            .or_insert_with(|| same.map(|o| o.created_ms).unwrap_or(view.now));
        live.insert(spec.uid.clone());
        let facts = status::PodFacts {
            observed: same,
            image_ids: same
                .and(view.observation.image_ids.get(key))
                .unwrap_or(&no_images),
            attached: same
                .and(view.observation.pod_ips.get(key))
                .map(Vec::as_slice)
                .unwrap_or_default(),
            created_ms,
        };
        let mut item = status::pod_object(spec, &facts, &inputs);
        let pod_status = item.status.get_or_insert_with(Default::default);
        ctx.config.patch_status(&spec.uid, pod_status);
        if let Some(message) = view.evicted.get(&spec.uid) {
            pod_status.phase = Some("Failed".into());
            pod_status.reason = Some("Evicted".into());
            pod_status.message = Some(message.clone());
            status::stopped_for_good(pod_status);
        } else if !desired.pods.contains_key(key) {
            // On its way out (removed, or deleted through the API): no restart follows, and
            // once nothing runs the phase is final, as kubelet reports a deleted pod.
            status::stopped_for_good(pod_status);
            if let Some(phase) = status::final_phase(pod_status) {
                pod_status.phase = Some(phase.into());
            }
        } else if pod_status.phase.as_deref() == Some("Running") {
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
    let list = List::<Pod> {
        items,
        metadata: ListMeta::default(),
    };
    // Serializing API types cannot fail; an empty list would only hide pods for a round.
    let list = serde_json::to_value(&list).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not serialize the pod list");
        serde_json::Value::Null
    });
    *ctx.shared.pods.lock().unwrap_or_else(|p| p.into_inner()) = list;
    ctx.shared.ready.store(true, Ordering::Relaxed);
}
