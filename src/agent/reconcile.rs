//! One reconcile round: observe the node, ask the planner, hand each pod's steps to a
//! blocking task of its own (so a pod stopping for its grace period holds up no other pod;
//! starting pods take a slot of a few per core, see start_slots.rs), publish the status. The state that rounds carry over (failed pulls, failing pods,
//! evictions, pods in flight) lives here, owned by the loop: the tasks report back through
//! a channel and the next round's planner reads it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::context::Context;
use super::error::AgentError;
use super::eviction::record_evictions;
use super::executor::{Applied, PodState, StepError};
use super::observe::{observe, Observation, SpecCache};
use super::plan::{plan, Failing, PlanInput, PullFailure, Step};
use super::publish::{publish, RoundView};
use super::shared::Shared;
use super::start_slots::StartSlots;
use crate::runtime::records::PodRecord;
use crate::source::manifests::Desired;
use crate::time::unix_ms_now;

/// A pod task's report: what its steps came to.
#[derive(Debug)]
pub struct PodDone {
    pub key: String,
    /// The uid of the desired pod the steps were for.
    pub uid: Option<String>,
    pub applied: Applied,
}

pub struct Reconciler {
    /// Failed pulls by (pod uid, container).
    pulls: BTreeMap<(String, String), PullFailure>,
    /// Pods whose last steps failed, by key.
    failing: BTreeMap<String, Failing>,
    /// Evicted pods by uid: the message their status shows.
    evicted: BTreeMap<String, String>,
    /// Pods whose steps are being carried out.
    busy: HashSet<String>,
    /// Slots for starting pods (see start_slots.rs).
    starting: StartSlots,
    /// Pod uid -> its startTime (ms), fixed when first published.
    start_times: BTreeMap<String, u64>,
    specs: SpecCache,
    done: mpsc::UnboundedSender<PodDone>,
}

impl Reconciler {
    pub fn new(done: mpsc::UnboundedSender<PodDone>) -> Reconciler {
        Reconciler {
            pulls: BTreeMap::new(),
            failing: BTreeMap::new(),
            evicted: BTreeMap::new(),
            busy: HashSet::new(),
            starting: StartSlots::for_this_node(),
            start_times: BTreeMap::new(),
            specs: SpecCache::default(),
            done,
        }
    }

    /// No pod's steps are being carried out.
    pub fn idle(&self) -> bool {
        self.busy.is_empty()
    }

    /// Takes a task's report into the state the next round plans from: pull failures
    /// (ErrImagePull, then ImagePullBackOff) and failed steps (FailedSync, retried with
    /// backoff), each with its event.
    pub fn absorb(&mut self, shared: &Shared, done: PodDone) {
        self.busy.remove(&done.key);
        let now = unix_ms_now();
        let (ns, name) = done.key.split_once('/').unwrap_or(("default", &done.key));
        if let Some(uid) = &done.uid {
            for (container, failure) in done.applied.pulls {
                let id = (uid.clone(), container.clone());
                let Some(error) = failure else {
                    self.pulls.remove(&id);
                    continue;
                };
                let entry = self.pulls.entry(id).or_insert(PullFailure {
                    failures: 0,
                    last_ms: 0,
                    message: String::new(),
                });
                entry.failures += 1;
                entry.last_ms = now;
                entry.message = error.to_string();
                let reason = if entry.failures > 1 {
                    "BackOff"
                } else {
                    "Failed"
                };
                let message = format!(
                    "Failed to pull image {:?}: {}",
                    error.image(),
                    entry.message
                );
                shared.event("Warning", ns, name, Some(&container), reason, message);
            }
        }
        match done.applied.failed {
            Some((step, error)) => {
                shared.reconcile_errors.fetch_add(1, Ordering::Relaxed);
                shared
                    .metrics
                    .reconcile_step_errors
                    .with_label_values(&[step.name()])
                    .inc();
                let reason = error.event_reason();
                shared.event("Warning", ns, name, None, reason, error.to_string());
                let entry = self.failing.entry(done.key).or_insert(Failing {
                    failures: 0,
                    last_ms: 0,
                });
                entry.failures = if error.network_not_ready() {
                    1
                } else {
                    entry.failures + 1
                };
                entry.last_ms = now;
            }
            None => {
                self.failing.remove(&done.key);
            }
        }
    }

    pub async fn round(&mut self, ctx: &Context, desired: &Desired) -> Result<(), AgentError> {
        let (rt, store) = (ctx.exec.rt.clone(), ctx.exec.store.clone());
        let mut specs = std::mem::take(&mut self.specs);
        let (observation, specs) = tokio::task::spawn_blocking(move || {
            let observation =
                crate::phases::timed("observe", || observe(&rt, &store, "agent", &mut specs));
            (observation, specs)
        })
        .await?;
        self.specs = specs;
        let mut observation = observation?;
        remove_unreadable(ctx, std::mem::take(&mut observation.unreadable)).await;
        let kept;
        let desired = match &ctx.api {
            Some(api) => {
                let mut d = desired.clone();
                api.keep_unseen(&mut d, &observation.pods);
                kept = d;
                &kept
            }
            None => desired,
        };
        ctx.prober.sync(&observation.pods, &desired.pods);
        let health = ctx.prober.health();
        for c in observation
            .pods
            .values_mut()
            .flat_map(|p| p.containers.iter_mut())
        {
            c.unhealthy = health.get(&c.id).is_some_and(|h| h.kill);
        }
        let now = unix_ms_now();
        record_evictions(&ctx.shared, &mut self.evicted, &observation.pods);
        let evicted: BTreeSet<String> = self.evicted.keys().cloned().collect();
        let holds = ctx.api.as_ref().map(|a| a.holds()).unwrap_or_default();
        let steps = plan(&PlanInput {
            desired: &desired.pods,
            observed: &observation.pods,
            pulls: &self.pulls,
            evicted: &evicted,
            held: &holds.held,
            finished: &holds.finished,
            terminating: &holds.terminating,
            failing: &self.failing,
            backoff: ctx.cfg.backoff,
            now_ms: now,
        });
        ctx.shared.reconciles.fetch_add(1, Ordering::Relaxed);
        let uids: HashSet<&str> = desired.pods.values().map(|p| p.uid.as_str()).collect();
        for uid in &uids {
            ctx.shared.metrics.start.seen(uid);
        }
        ctx.shared.metrics.start.retain(&|uid| uids.contains(uid));
        self.dispatch(ctx, steps, desired, &observation);
        let view = RoundView {
            desired,
            observation: &observation,
            pulls: &self.pulls,
            evicted: &self.evicted,
            health: &health,
            now,
        };
        publish(ctx, &view, &mut self.start_times);
        if let Some(api) = &ctx.api {
            let pods = ctx.shared.pods.lock().unwrap_or_else(|p| p.into_inner());
            api.report(&pods, &observation.pods);
        }
        Ok(())
    }

    /// Hands each pod's steps to a blocking task of its own, unless the pod's last ones are
    /// still being carried out (the next round sees their result).
    fn dispatch(
        &mut self,
        ctx: &Context,
        steps: Vec<Step>,
        desired: &Desired,
        observation: &Observation,
    ) {
        let mut by_pod: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for step in steps {
            by_pod
                .entry(step.pod_key().to_string())
                .or_default()
                .push(step);
        }
        for (key, steps) in by_pod {
            if !self.busy.insert(key.clone()) {
                continue;
            }
            let slots = steps
                .iter()
                .any(Step::is_start)
                .then(|| self.starting.clone());
            let exec = ctx.exec.clone();
            let done = self.done.clone();
            let desired = desired.pods.get(&key).cloned();
            let observed = observation.pods.get(&key).cloned();
            tokio::spawn(async move {
                // Held until the steps are done; None for a pod that only stops.
                let _slot = match slots {
                    Some(slots) => slots.take().await,
                    None => None,
                };
                let steps_done = tokio::task::spawn_blocking(move || {
                    let first = steps.first().cloned();
                    let pod = PodState {
                        desired: desired.as_ref(),
                        observed: observed.as_ref(),
                    };
                    let applied =
                        std::panic::catch_unwind(AssertUnwindSafe(|| exec.apply(steps, pod)))
                            .unwrap_or_else(|_| Applied {
                                pulls: Vec::new(),
                                failed: first
                                    .map(|s| (s, StepError::Panicked { pod: key.clone() })),
                            });
                    let uid = desired.map(|d| d.uid);
                    // The loop is gone only when the agent stops: nothing to report to then.
                    let _ = done.send(PodDone { key, uid, applied });
                });
                // A panic is caught inside; a join error means the runtime is going away.
                let _ = steps_done.await;
            });
        }
    }
}

/// Pods whose records this build cannot read are removed with a warning: they could never
/// run here (their spec fails today's validation), and keeping them would hold their names.
async fn remove_unreadable(ctx: &Context, records: Vec<(PodRecord, String)>) {
    for (record, reason) in records {
        ctx.shared.event(
            "Warning",
            &record.namespace,
            &record.name,
            None,
            "FailedValidation",
            format!("removing a pod whose stored spec this layerlet cannot read: {reason}"),
        );
        let (rt, store) = (ctx.exec.rt.clone(), ctx.exec.store.clone());
        let removed = tokio::task::spawn_blocking(move || {
            crate::runtime::pods::remove_pod_within(&rt, &store, &record, std::time::Duration::ZERO)
        })
        .await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(error = %e, "removing an unreadable pod record failed");
        }
    }
}
