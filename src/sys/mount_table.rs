//! The mount points of this process's mount namespace, read from /proc/self/mountinfo only
//! when the table changed. The kernel generates mountinfo line by line (1.6 ms for 1,500
//! mounts), and every tree removal asks whether anything is mounted inside it: on a node
//! with hundreds of pods that made each removal cost in proportion to the pods there.
//! The kernel flags a change to anyone polling an open mountinfo file (POLLPRI), so the table
//! read last stays valid until then. A process in another mount namespace than the one the
//! table came from (a clone with CLONE_NEWNS) reads its own.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;

struct Table {
    file: std::fs::File,
    /// The mount namespace (inode of /proc/self/ns/mnt) the file describes.
    namespace: u64,
    /// Mount points, octal escapes decoded, in the kernel's order.
    points: Vec<PathBuf>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn namespace() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/mnt").ok().map(|m| m.ino())
}

/// Whether the kernel flagged a change since the file was last polled.
fn changed(file: &std::fs::File) -> bool {
    let mut fds = [nix::poll::PollFd::new(
        file.as_fd(),
        nix::poll::PollFlags::POLLPRI,
    )];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => fds[0].revents().is_none_or(|r| {
            r.intersects(nix::poll::PollFlags::POLLPRI | nix::poll::PollFlags::POLLERR)
        }),
        // Unsure: read again.
        Err(_) => true,
    }
}

fn read_points(file: &mut std::fs::File) -> Option<Vec<PathBuf>> {
    file.seek(SeekFrom::Start(0)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(|escaped| PathBuf::from(super::mount::unescape_mountinfo(escaped)))
            .collect(),
    )
}

fn open_table(namespace: u64) -> Option<Table> {
    let mut file = std::fs::File::open("/proc/self/mountinfo").ok()?;
    let points = read_points(&mut file)?;
    Some(Table {
        file,
        namespace,
        points,
    })
}

/// Calls `with` on the current mount points; an unreadable table is empty.
pub fn with_mount_points<T>(with: impl FnOnce(&[PathBuf]) -> T) -> T {
    let Some(here) = namespace() else {
        // No namespace to key a table by: read it each time.
        let points = std::fs::File::open("/proc/self/mountinfo")
            .ok()
            .and_then(|mut f| read_points(&mut f))
            .unwrap_or_default();
        return with(&points);
    };
    let mut guard = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    let mut reopen = true;
    if let Some(table) = guard.as_mut().filter(|t| t.namespace == here) {
        // The poll resets the flag, and the read that follows sees at least that change;
        // one after the poll is flagged to the next caller.
        reopen = changed(&table.file)
            && match read_points(&mut table.file) {
                Some(points) => {
                    table.points = points;
                    false
                }
                None => true,
            };
    }
    if reopen {
        *guard = open_table(here);
    }
    match guard.as_ref() {
        Some(table) => with(&table.points),
        None => with(&[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn under(dir: &std::path::Path) -> Vec<PathBuf> {
        with_mount_points(|points| {
            points
                .iter()
                .filter(|p| p.starts_with(dir))
                .cloned()
                .collect()
        })
    }

    #[test]
    fn a_mount_and_an_unmount_are_seen_at_the_next_look() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a");
        std::fs::create_dir(&target).unwrap();
        assert!(under(dir.path()).is_empty());
        nix::mount::mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        assert_eq!(under(dir.path()), vec![target.clone()]);
        // Unchanged: the same table again.
        assert_eq!(under(dir.path()), vec![target.clone()]);
        nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert!(under(dir.path()).is_empty());
    }
}
