//! Pure: when the node posts its status, and since when each condition has held. kubelet
//! posts the status when something in it changes and at least every [`STATUS_MAX_AGE`];
//! the lease says "alive" in between.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::conditions::Verdict;
use super::object::PostedCondition;

/// The longest a posted status goes without being posted again (kubelet's
/// nodeStatusReportFrequency).
pub const STATUS_MAX_AGE: Duration = Duration::from_secs(300);

/// The conditions last decided, each with its transition time.
#[derive(Debug, Default)]
pub struct ConditionBook {
    held: Vec<PostedCondition>,
}

impl ConditionBook {
    /// Takes this round's verdicts; a condition keeps its transition time while its status
    /// stays. Returns whether a status (or reason) changed since the last round.
    pub fn update(&mut self, verdicts: Vec<Verdict>, now: Timestamp) -> bool {
        let mut changed = self.held.len() != verdicts.len();
        let held = verdicts
            .into_iter()
            .map(
                |verdict| match self.held.iter().find(|c| c.verdict.kind == verdict.kind) {
                    Some(before) if before.verdict == verdict => before.clone(),
                    Some(before) if before.verdict.holds == verdict.holds => {
                        changed = true;
                        PostedCondition {
                            verdict,
                            since: before.since,
                        }
                    }
                    _ => {
                        changed = true;
                        PostedCondition {
                            verdict,
                            since: now,
                        }
                    }
                },
            )
            .collect();
        self.held = held;
        changed
    }

    pub fn conditions(&self) -> &[PostedCondition] {
        &self.held
    }
}

/// Whether to post the status now: it changed, or the last post is [`STATUS_MAX_AGE`] old,
/// or none was accepted yet.
pub fn status_due(changed: bool, since_last_post: Option<Duration>) -> bool {
    changed || since_last_post.is_none_or(|age| age >= STATUS_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::node::conditions::{verdicts, NodeFigures, MEMORY_AVAILABLE_MIN};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_flips() {
        let mut book = ConditionBook::default();
        let calm = NodeFigures::default();
        assert!(book.update(verdicts(&calm), at("2026-12-05T10:00:00Z")));
        assert!(!book.update(verdicts(&calm), at("2026-12-05T10:00:10Z")));
        let mut tight = calm;
        tight.memory_available = Some(MEMORY_AVAILABLE_MIN / 2);
        assert!(book.update(verdicts(&tight), at("2026-12-05T10:00:20Z")));
        let since = |kind: &str| {
            book.conditions()
                .iter()
                .find(|c| c.verdict.kind == kind)
                .map(|c| c.since.to_string())
                .unwrap()
        };
        assert_eq!(since("MemoryPressure"), "2026-12-05T10:00:20Z");
        assert_eq!(since("Ready"), "2026-12-05T10:00:00Z");
    }

    #[test]
    fn the_status_is_posted_on_change_and_at_least_every_five_minutes() {
        assert!(status_due(false, None));
        assert!(status_due(true, Some(Duration::from_secs(10))));
        assert!(!status_due(false, Some(Duration::from_secs(290))));
        assert!(status_due(false, Some(STATUS_MAX_AGE)));
    }
}
