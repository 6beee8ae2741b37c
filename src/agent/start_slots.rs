//! How many pods may be starting at once. Starting a pod is a chain of short system calls
//! and process starts that take kernel-wide locks (mount and namespace creation): beyond a
//! few pods per core, more at once only wait on each other, and every one holds a blocking
//! thread with its stack and malloc arena. A starting pod's task waits for a slot before it
//! takes a thread, and takes the next free one at once, without waiting for a reconcile
//! round. Stops and removals never wait for a slot: a grace period may last minutes, and a
//! node must be able to stop everything at once.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct StartSlots {
    slots: Arc<Semaphore>,
}

impl StartSlots {
    pub fn new(limit: usize) -> StartSlots {
        StartSlots {
            slots: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// Four per core, at least eight: enough to keep the cores busy while some starts wait
    /// on a child process or the disk.
    pub fn for_this_node() -> StartSlots {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        StartSlots::new((cores * 4).max(8))
    }

    /// Waits for a free slot; it is free again when the permit is dropped.
    pub async fn take(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed, so this only fails if that changes.
        self.slots.clone().acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_limit_run_at_once_and_every_one_runs() {
        let slots = StartSlots::new(3);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (slots, running, most) = (slots.clone(), running.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.take().await.expect("a slot");
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(20)))
                    .await
                    .unwrap();
                running.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 3, "starts at once");
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn there_is_always_at_least_one_slot() {
        assert_eq!(StartSlots::new(0).slots.available_permits(), 1);
        assert!(StartSlots::for_this_node().slots.available_permits() >= 8);
    }
}
