//! Evictions for ephemeral storage, as the CoW accounting finds them: told once (an event
//! and a count), then kept as an input of the planner, which kills what still runs of the
//! pod and starts nothing of it again (kubelet leaves it Failed).

use std::collections::BTreeMap;

use super::plan::ObservedPod;
use super::shared::Shared;

/// Takes new evictions of the agent's pods into `evicted` (uid -> the message their status
/// shows) and forgets pods the node no longer has.
pub fn record_evictions(
    shared: &Shared,
    evicted: &mut BTreeMap<String, String>,
    observed: &BTreeMap<String, ObservedPod>,
) {
    evicted.retain(|uid, _| observed.values().any(|p| &p.uid == uid));
    for e in shared.metrics.cache.evictions() {
        let Some(pod) = observed.values().find(|p| p.uid == e.pod_uid) else {
            continue;
        };
        if evicted.contains_key(&e.pod_uid) {
            continue;
        }
        evicted.insert(e.pod_uid.clone(), e.message.clone());
        shared.metrics.evictions.inc();
        shared.event(
            "Warning",
            &pod.spec.namespace,
            &pod.spec.name,
            None,
            "Evicted",
            e.message.clone(),
        );
    }
}
