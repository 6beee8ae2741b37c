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

/// A detached copy of the mount tree at `path` (the mount and everything below it), as a
/// bind mount would make; closed on exec.
pub fn clone_tree(path: &Path) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
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
        let tree = clone_tree(&source).unwrap();
        let at = std::fs::File::open(&target).unwrap();
        attach_tree(tree.as_fd(), at.as_fd()).unwrap();
        let seen = std::fs::read(target.join("file"));
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&source, nix::mount::MntFlags::MNT_DETACH);
        assert_eq!(seen.unwrap(), b"from the source");
    }

    #[test]
    fn cloning_a_missing_path_fails() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(clone_tree(&tmp.path().join("missing")).is_err());
    }
}
