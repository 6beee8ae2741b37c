//! Network namespaces by path: whether a path still is one, and running a little work in
//! one on a thread of its own (a net namespace is per thread; the caller's threads never
//! move).

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use super::error::NetworkError;

/// True when `path` is a namespace file (a pinned namespace, `/proc/PID/ns/net`); false for
/// a missing path or the empty file a pin leaves once unmounted.
pub fn is_namespace_file(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, FsType};
    statfs(path).is_ok_and(|s| s.filesystem_type() == FsType(libc::NSFS_MAGIC))
}

/// Runs `work` on a new thread that joined the network namespace at `netns`. Processes
/// that `work` spawns start in that namespace.
pub fn in_netns<T: Send>(netns: &Path, work: impl FnOnce() -> T + Send) -> Result<T, NetworkError> {
    let netns_error = |source| NetworkError::Netns {
        path: netns.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(netns)
        .map_err(netns_error)?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| netns_error(std::io::Error::from(e)))?;
                Ok(work())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(netns_error(std::io::Error::other(
                    "the thread working in the namespace panicked",
                )))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespace_files_count_as_namespaces() {
        assert!(is_namespace_file(Path::new("/proc/self/ns/net")));
        assert!(!is_namespace_file(Path::new("/proc/self/status")));
        assert!(!is_namespace_file(Path::new("/nonexistent/netns")));
    }

    #[test]
    fn work_runs_in_the_namespace_and_the_caller_stays_where_it_was() {
        let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let seen = in_netns(Path::new("/proc/self/ns/net"), || {
            std::fs::read_link("/proc/thread-self/ns/net").unwrap()
        })
        .unwrap();
        assert_eq!(seen, own);
        let err = in_netns(Path::new("/nonexistent/netns"), || ()).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("network namespace /nonexistent/netns"));
    }
}
