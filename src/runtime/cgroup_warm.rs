//! Keeps cgroup attaches fast while containers start.
//!
//! Moving a process into a cgroup takes the kernel's cgroup_threadgroup_rwsem for writing, and
//! the first writer after a quiet spell waits for an RCU grace period (6–16 ms measured here on
//! cgroup v1; the next writers within about 10 ms pay 0.1 ms). A container's init pays that
//! wait on the critical path of every start. So while starts are under way a background thread
//! re-writes this process's own pid into its own cgroup — a move to where it already is, which
//! changes nothing but takes the lock — every few milliseconds: the slow first write overlaps
//! the start's other work, and init's attach lands in a warm window.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Between writes: inside the ~10 ms in which the next writer finds the lock warm.
const PERIOD: Duration = Duration::from_millis(4);

struct Warmer {
    until: Mutex<Option<Instant>>,
    wake: Condvar,
}

static WARMER: OnceLock<Option<&'static Warmer>> = OnceLock::new();

/// Keeps attaches fast for `window` from now (extends a running window). Best effort: where
/// this process's cgroup cannot be written, nothing happens.
pub fn keep_attach_fast_for(window: Duration) {
    let Some(warmer) = WARMER.get_or_init(spawn) else {
        return;
    };
    let until = Instant::now() + window;
    let mut current = warmer.until.lock().unwrap_or_else(|p| p.into_inner());
    if current.is_none_or(|c| c < until) {
        *current = Some(until);
    }
    warmer.wake.notify_one();
}

fn spawn() -> Option<&'static Warmer> {
    let procs = own_cgroup_procs()?;
    let warmer: &'static Warmer = Box::leak(Box::new(Warmer {
        until: Mutex::new(None),
        wake: Condvar::new(),
    }));
    let pid = std::process::id().to_string();
    std::thread::Builder::new()
        .name("cgroup-warm".into())
        .spawn(move || loop {
            {
                let mut until = warmer.until.lock().unwrap_or_else(|p| p.into_inner());
                while until.is_none_or(|u| Instant::now() >= u) {
                    *until = None;
                    until = warmer.wake.wait(until).unwrap_or_else(|p| p.into_inner());
                }
            }
            if std::fs::write(&procs, &pid).is_err() {
                return; // not writable here: give up quietly, starts are only slower
            }
            std::thread::sleep(PERIOD);
        })
        .ok()?;
    Some(warmer)
}

/// `cgroup.procs` of this process's cgroup in the first hierarchy mounted under
/// /sys/fs/cgroup (a v1 controller, or the v2 tree).
fn own_cgroup_procs() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let base = match controllers {
            "" => PathBuf::from("/sys/fs/cgroup"),
            c if c.starts_with("name=") => return None,
            c => PathBuf::from("/sys/fs/cgroup").join(c.split(',').next()?),
        };
        let procs = base.join(path.trim_start_matches('/')).join("cgroup.procs");
        procs.exists().then_some(procs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_finds_its_own_cgroup_procs_file() {
        let procs = own_cgroup_procs().expect("a cgroup hierarchy under /sys/fs/cgroup");
        let members = std::fs::read_to_string(&procs).unwrap();
        assert!(
            members.lines().any(|p| p == std::process::id().to_string()),
            "{} does not list this process",
            procs.display()
        );
    }
}
