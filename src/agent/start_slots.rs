//! How many pods may be starting at once. Starting a pod is a chain of short system calls
//! and process starts that take kernel-wide locks (mount and namespace creation): beyond a
//! few pods per core, more at once only wait on each other, and every one holds a blocking
//! thread with its stack and malloc arena. Pods over the limit are planned again in the next
//! round, which a finishing pod triggers. Stops and removals never wait for a slot: a grace
//! period may last minutes, and a node must be able to stop everything at once.

use std::collections::HashSet;

#[derive(Debug)]
pub struct StartSlots {
    limit: usize,
    taken: HashSet<String>,
}

impl StartSlots {
    pub fn new(limit: usize) -> StartSlots {
        StartSlots {
            limit: limit.max(1),
            taken: HashSet::new(),
        }
    }

    /// Four per core, at least eight: enough to keep the cores busy while some starts wait
    /// on a child process or the disk.
    pub fn for_this_node() -> StartSlots {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        StartSlots::new((cores * 4).max(8))
    }

    /// Takes a slot for `pod`; false when all are taken.
    pub fn take(&mut self, pod: &str) -> bool {
        if self.taken.contains(pod) {
            return true;
        }
        if self.taken.len() >= self.limit {
            return false;
        }
        self.taken.insert(pod.to_string());
        true
    }

    pub fn release(&mut self, pod: &str) {
        self.taken.remove(pod);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_beyond_the_limit_wait_until_a_slot_is_released() {
        let mut slots = StartSlots::new(2);
        assert!(slots.take("default/a"));
        assert!(slots.take("default/b"));
        assert!(!slots.take("default/c"), "a third pod starts beside two");
        assert!(slots.take("default/a"), "a pod holding a slot keeps it");
        slots.release("default/a");
        assert!(slots.take("default/c"));
        assert!(!slots.take("default/a"));
        slots.release("default/unknown");
        assert!(
            !slots.take("default/a"),
            "releasing a pod without a slot frees none"
        );
    }

    #[test]
    fn there_is_always_at_least_one_slot() {
        let mut slots = StartSlots::new(0);
        assert!(slots.take("default/a"));
        assert!(!slots.take("default/b"));
        assert!(StartSlots::for_this_node().limit >= 8);
    }
}
