//! What the planner reads and what it returns: the observed pods, the conditions that hold
//! steps back (failed pulls, evictions, the API server's holds, pods on their way out, pods
//! whose steps keep failing) and the steps themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::pod::spec::PodSpec;
use crate::runtime::state::Status;

/// One container instance as the node has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// A liveness or startup probe failed (or its postStart hook did): stop it.
    pub unhealthy: bool,
}

/// A pod the agent owns, as recorded: the spec its containers were made from, and every
/// container instance it still has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPod {
    pub uid: String,
    /// Shared with the agent's cache of parsed specs: a round observes every pod, and a
    /// copy of each spec per round was most of what a round allocated.
    pub spec: std::sync::Arc<PodSpec>,
    pub containers: Vec<ObservedContainer>,
    /// When the pod record was made: the start of `activeDeadlineSeconds`.
    pub created_ms: u64,
}

impl ObservedPod {
    /// The newest instance of a container.
    pub fn latest(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| c.attempt)
    }

    pub fn running(&self) -> impl Iterator<Item = &ObservedContainer> {
        self.containers
            .iter()
            .filter(|c| c.status == Status::Running)
    }
}

/// Failed pulls of one container's image (kubelet's ErrImagePull, then ImagePullBackOff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullFailure {
    pub failures: u32,
    pub last_ms: u64,
    /// What the status shows.
    pub message: String,
}

/// A pod whose last steps failed: it is retried with backoff rather than every round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    pub failures: u32,
    pub last_ms: u64,
}

/// A pod on its way out: deleted through the API server (its deletionTimestamp is set), or
/// a foreground `layerlet run` interrupted. Nothing of it starts again; it only goes down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminating {
    pub uid: String,
    /// deletionGracePeriodSeconds: the stop may not take longer.
    pub grace: Option<Duration>,
    /// The API server has its containers as terminated: its records may go (kubelet reports
    /// the final states before its final delete).
    pub reported_stopped: bool,
}

/// Backoff settings; kubelet's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
    /// A container that ran at least this long starts its backoff over.
    pub reset_after_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 10_000,
            max_ms: 300_000,
            reset_after_ms: 600_000,
        }
    }
}

impl Backoff {
    /// Delay before the restart that follows `restarts` earlier ones: 10 s doubling to 300 s.
    pub fn delay_ms(&self, restarts: u32) -> u64 {
        let factor = 1u64.checked_shl(restarts.min(32)).unwrap_or(u64::MAX);
        self.initial_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// Between retries of a pod whose steps fail: 1 s doubling to the same maximum.
    pub fn for_failing_pods(&self) -> Backoff {
        Backoff {
            initial_ms: 1_000,
            ..*self
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Sandbox, volumes and the pod record.
    CreatePod {
        key: String,
    },
    /// Stop every container within the grace period (`grace` when the API server's deletion
    /// gives one), then delete everything of the pod.
    RemovePod {
        key: String,
        uid: String,
        grace: Option<Duration>,
    },
    /// A pod on its way out: stop every container (preStop hooks first) within the grace
    /// period and keep the records, so its containers' final states can be reported.
    StopPod {
        key: String,
        uid: String,
        grace: Option<Duration>,
    },
    /// Pull the image as the policy says, create and start one instance.
    StartContainer {
        key: String,
        name: String,
        init: bool,
        attempt: u32,
    },
    /// preStop hook, stop signal, grace period, SIGKILL.
    StopContainer {
        key: String,
        id: String,
    },
    /// SIGKILL at once, no hook (an evicted pod).
    KillContainer {
        key: String,
        id: String,
    },
    DeleteContainer {
        key: String,
        id: String,
    },
    /// Record the desired spec as the pod's current one (after replacing containers).
    UpdateSpec {
        key: String,
    },
}

impl Step {
    /// Work that brings a pod or a container up (as opposed to stopping or removing).
    pub fn is_start(&self) -> bool {
        matches!(self, Step::CreatePod { .. } | Step::StartContainer { .. })
    }

    pub fn pod_key(&self) -> &str {
        match self {
            Step::CreatePod { key }
            | Step::RemovePod { key, .. }
            | Step::StopPod { key, .. }
            | Step::StartContainer { key, .. }
            | Step::StopContainer { key, .. }
            | Step::KillContainer { key, .. }
            | Step::DeleteContainer { key, .. }
            | Step::UpdateSpec { key } => key,
        }
    }

    /// The step's name in metrics labels and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Step::CreatePod { .. } => "create_pod",
            Step::RemovePod { .. } => "remove_pod",
            Step::StopPod { .. } => "stop_pod",
            Step::StartContainer { .. } => "start_container",
            Step::StopContainer { .. } => "stop_container",
            Step::KillContainer { .. } => "kill_container",
            Step::DeleteContainer { .. } => "delete_container",
            Step::UpdateSpec { .. } => "update_spec",
        }
    }
}

static NO_PULLS: BTreeMap<(String, String), PullFailure> = BTreeMap::new();
static NO_KEYS: BTreeSet<String> = BTreeSet::new();
static NO_TERMINATING: BTreeMap<String, Terminating> = BTreeMap::new();
static NO_FAILING: BTreeMap<String, Failing> = BTreeMap::new();

/// Everything the planner decides from. The agent fills every field each round; a
/// foreground `layerlet run` has one pod and only `terminating` once interrupted.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The pods that should run, by `namespace/name`.
    pub desired: &'a BTreeMap<String, PodSpec>,
    /// The pods the node has, by `namespace/name`.
    pub observed: &'a BTreeMap<String, ObservedPod>,
    /// Failed pulls by (pod uid, container): no new try before their backoff ends.
    pub pulls: &'a BTreeMap<(String, String), PullFailure>,
    /// Uids of pods evicted for their ephemeral storage: killed, never started again.
    pub evicted: &'a BTreeSet<String>,
    /// Keys of API pods held back: their ConfigMaps, Secrets and tokens have not been read
    /// once yet, so no container of theirs starts (it would fail for a moment).
    pub held: &'a BTreeSet<String>,
    /// Keys of pods the API server has as Succeeded or Failed: a node that no longer has
    /// one does not run it twice.
    pub finished: &'a BTreeSet<String>,
    /// Pods on their way out, by key.
    pub terminating: &'a BTreeMap<String, Terminating>,
    /// Pods whose last steps failed, by key.
    pub failing: &'a BTreeMap<String, Failing>,
    pub backoff: Backoff,
    pub now_ms: u64,
}

impl<'a> PlanInput<'a> {
    /// Desired and observed pods with nothing holding steps back.
    pub fn new(
        desired: &'a BTreeMap<String, PodSpec>,
        observed: &'a BTreeMap<String, ObservedPod>,
        backoff: Backoff,
        now_ms: u64,
    ) -> PlanInput<'a> {
        PlanInput {
            desired,
            observed,
            pulls: &NO_PULLS,
            evicted: &NO_KEYS,
            held: &NO_KEYS,
            finished: &NO_KEYS,
            terminating: &NO_TERMINATING,
            failing: &NO_FAILING,
            backoff,
            now_ms,
        }
    }

    /// The pod under `key` with this uid is on its way out.
    pub fn terminating(&self, key: &str, uid: &str) -> Option<&'a Terminating> {
        self.terminating.get(key).filter(|t| t.uid == uid)
    }
}
