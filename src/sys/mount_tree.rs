//! Detached mount trees (`open_tree`/`move_mount`, kernel 5.2+): a copy of a mount taken in
//! one mount namespace and attached in another. A container's mount namespace is cloned from
//! a small base that lacks the pods' mounts; what it needs of the host's (its rootfs, its
//! volumes) travels as these trees.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// A detached copy of the mount at `path`, as a bind mount would make, with the mounts below
/// it when `recursive` (a recursive bind); closed on exec. A file has nothing below it, and
/// the recursive copy of a path that is not a mount root walks every mount of the mount it
/// is on (a file under the data root: every pod's mounts), so files are copied alone.
pub fn clone_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree with a NUL-terminated path; returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c_path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Attaches a detached tree onto `target` (an fd of the mount point, O_PATH will do), in the
/// caller's mount namespace.
pub fn attach_tree(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    let empty = c"";
    // SAFETY: move_mount between two open fds with empty paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_cloned_tree_attached_elsewhere_shows_the_source_and_leaves_it_mounted() {
        let tmp = tempfile::tempdir().unwrap();
        let (source, target) = (tmp.path().join("source"), tmp.path().join("target"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::create_dir_all(&target).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &source,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        std::fs::write(source.join("file"), b"from the source").unwrap();
        let tree = clone_tree(&source, true).unwrap();
        let at = std::fs::File::open(&target).unwrap();
        attach_tree(tree.as_fd(), at.as_fd()).unwrap();
        let seen = std::fs::read(target.join("file"));
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&source, nix::mount::MntFlags::MNT_DETACH);
        assert_eq!(seen.unwrap(), b"from the source");
    }

    #[test]
    fn a_file_is_copied_alone_and_attached_over_another_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (source, target) = (tmp.path().join("hosts"), tmp.path().join("target"));
        std::fs::write(&source, b"127.0.0.1 localhost").unwrap();
        std::fs::write(&target, b"").unwrap();
        let tree = clone_tree(&source, false).unwrap();
        let at = std::fs::File::open(&target).unwrap();
        attach_tree(tree.as_fd(), at.as_fd()).unwrap();
        let seen = std::fs::read(&target);
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        assert_eq!(seen.unwrap(), b"127.0.0.1 localhost");
    }

    #[test]
    fn cloning_a_missing_path_fails() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(clone_tree(&tmp.path().join("missing"), false).is_err());
    }
}
