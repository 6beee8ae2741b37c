//! Pod start latency: from the agent first seeing a pod's manifest to the pod Running, with
//! whether an image was pulled for it on the way. Keyed by pod uid (a changed manifest is a
//! new uid, so a new start).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct Pending {
    seen: Instant,
    pulled: bool,
    /// Observed Running already (the histogram has it); kept so it is not counted again.
    done: bool,
}

#[derive(Debug, Default)]
pub struct StartTracker {
    pods: Mutex<HashMap<String, Pending>>,
}

impl StartTracker {
    /// The pod is desired; the first call starts its clock.
    pub fn seen(&self, uid: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        pods.entry(uid.to_string()).or_insert(Pending {
            seen: Instant::now(),
            pulled: false,
            done: false,
        });
    }

    /// An image was pulled for the pod.
    pub fn pulled(&self, uid: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pods.get_mut(uid) {
            p.pulled = true;
        }
    }

    /// The pod is Running: returns (seconds since seen, pulled) the first time only.
    pub fn running(&self, uid: &str) -> Option<(f64, bool)> {
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        let p = pods.get_mut(uid)?;
        if p.done {
            return None;
        }
        p.done = true;
        Some((p.seen.elapsed().as_secs_f64(), p.pulled))
    }

    /// Forgets pods no longer desired, so the map stays bounded.
    pub fn retain(&self, desired: &dyn Fn(&str) -> bool) {
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        pods.retain(|uid, _| desired(uid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_start_is_observed_once_with_its_pull() {
        let t = StartTracker::default();
        assert_eq!(t.running("u1"), None);
        t.seen("u1");
        t.pulled("u1");
        let (secs, pulled) = t.running("u1").unwrap();
        assert!(secs >= 0.0);
        assert!(pulled);
        assert_eq!(t.running("u1"), None);
        t.retain(&|_| false);
        t.seen("u1");
        assert_eq!(t.running("u1").map(|r| r.1), Some(false));
    }
}
