//! Overlay mounts. The new mount API (`fsopen`/`fsconfig` with one `lowerdir+` per layer,
//! kernel 6.8+) has no limit on the number or length of lower directories; the legacy
//! `mount(2)` data string is limited to one page, which 128 layers with absolute paths exceed.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{step} for overlay on {target}: {source}{detail}")]
    Overlay {
        step: &'static str,
        target: PathBuf,
        detail: String,
        #[source]
        source: std::io::Error,
    },
    #[error("path {0} contains a byte that a mount option cannot carry (',', ':' or NUL)")]
    BadPath(PathBuf),
    #[error("unmount {target}: {source}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// An overlay mount as data: printed by `inspect`, applied by [`mount_overlay`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OverlaySpec {
    /// Lower directories, topmost first (the order overlayfs wants).
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub read_only: bool,
    /// No syncs of the upper directory (overlayfs `volatile`, kernel 5.10+): a container's
    /// writable layer dies with the container and no container survives a reboot, so the
    /// sync at unmount (~9 ms of every container's teardown here) buys nothing.
    pub volatile: bool,
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cstring(path: &Path) -> Result<CString, MountError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| MountError::BadPath(path.to_path_buf()))
}

/// Reads the messages the kernel attached to a filesystem context: they say *why* a
/// `fsconfig` failed ("overlay: failed to resolve ...").
fn context_messages(fs_fd: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: reading into a valid buffer from an fd we own.
        let n = unsafe { libc::read(fs_fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.push_str(" (");
        out.push_str(String::from_utf8_lossy(&buf[..n as usize]).trim());
        out.push(')');
    }
    out
}

fn fsconfig_string(fs_fd: &OwnedFd, key: &str, value: &CString) -> std::io::Result<()> {
    let key = CString::new(key).map_err(std::io::Error::other)?;
    // SAFETY: fsconfig with valid NUL-terminated strings on an fd we own.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Mounts `spec` on `target`.
pub fn mount_overlay(spec: &OverlaySpec, target: &Path) -> Result<(), MountError> {
    match mount_overlay_new_api(spec, target) {
        Err(MountError::Overlay { step, source, .. })
            if (step == "fsopen" && source.raw_os_error() == Some(libc::ENOSYS))
                || (step == "fsconfig lowerdir+"
                    && source.raw_os_error() == Some(libc::EINVAL)) =>
        {
            mount_overlay_legacy(spec, target)
        }
        other => other,
    }
}

fn overlay_error(step: &'static str, target: &Path, detail: String) -> MountError {
    MountError::Overlay {
        step,
        target: target.to_path_buf(),
        detail,
        source: std::io::Error::last_os_error(),
    }
}

fn mount_overlay_new_api(spec: &OverlaySpec, target: &Path) -> Result<(), MountError> {
    let fstype = CString::new("overlay").map_err(|_| MountError::BadPath(target.into()))?;
    // SAFETY: fsopen returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    if raw < 0 {
        return Err(overlay_error("fsopen", target, String::new()));
    }
    // SAFETY: raw is a fresh fd owned by nobody else.
    let fs_fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let fail = |step: &'static str, fs_fd: &OwnedFd| {
        let source = std::io::Error::last_os_error();
        MountError::Overlay {
            step,
            target: target.to_path_buf(),
            detail: context_messages(fs_fd),
            source,
        }
    };
    for lower in &spec.lower {
        let value = cstring(lower)?;
        if fsconfig_string(&fs_fd, "lowerdir+", &value).is_err() {
            return Err(fail("fsconfig lowerdir+", &fs_fd));
        }
    }
    if fsconfig_string(&fs_fd, "upperdir", &cstring(&spec.upper)?).is_err() {
        return Err(fail("fsconfig upperdir", &fs_fd));
    }
    if fsconfig_string(&fs_fd, "workdir", &cstring(&spec.work)?).is_err() {
        return Err(fail("fsconfig workdir", &fs_fd));
    }
    if spec.volatile {
        let key = CString::new("volatile").map_err(|_| MountError::BadPath(target.into()))?;
        // SAFETY: fsconfig with a valid NUL-terminated key on an fd we own.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs_fd.as_raw_fd(),
                FSCONFIG_SET_FLAG,
                key.as_ptr(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        };
        if rc < 0 {
            return Err(fail("fsconfig volatile", &fs_fd));
        }
    }
    // SAFETY: plain syscall on our fd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if rc < 0 {
        return Err(fail("fsconfig create", &fs_fd));
    }
    let attrs = if spec.read_only { MOUNT_ATTR_RDONLY } else { 0 };
    // SAFETY: fsmount returns a new fd or -1.
    let raw =
        unsafe { libc::syscall(libc::SYS_fsmount, fs_fd.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if raw < 0 {
        return Err(fail("fsmount", &fs_fd));
    }
    // SAFETY: raw is a fresh fd owned by nobody else.
    let mnt_fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let empty = CString::default();
    let target_c = cstring(target)?;
    // SAFETY: move_mount with valid strings and fds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt_fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(overlay_error("move_mount", target, String::new()));
    }
    Ok(())
}

/// Kernels before 6.8: one `lowerdir=` option string, limited to a page.
fn mount_overlay_legacy(spec: &OverlaySpec, target: &Path) -> Result<(), MountError> {
    let mut lowers = Vec::with_capacity(spec.lower.len());
    for lower in &spec.lower {
        let s = lower.to_string_lossy();
        if s.contains([',', ':']) {
            return Err(MountError::BadPath(lower.clone()));
        }
        lowers.push(s.into_owned());
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        lowers.join(":"),
        spec.upper.display(),
        spec.work.display(),
        if spec.volatile { ",volatile" } else { "" }
    );
    let flags = if spec.read_only {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| MountError::Overlay {
        step: "mount",
        target: target.to_path_buf(),
        detail: format!(" (option string of {} bytes)", data.len()),
        source: std::io::Error::from(e),
    })
}

/// Unmounts `target`; a target that is not mounted is not an error.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    match umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(nix::Error::EBUSY) => umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
            .map_err(|source| MountError::Unmount {
                target: target.to_path_buf(),
                source,
            }),
        Err(source) => Err(MountError::Unmount {
            target: target.to_path_buf(),
            source,
        }),
    }
}

/// Mount points at or below `dir`, deepest first, read from /proc/self/mountinfo (octal
/// escapes decoded).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = super::mount_table::with_mount_points(|points| {
        points
            .iter()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect()
    });
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

pub(super) fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything mounted at or below `dir`, deepest first: before a tree is removed,
/// so removal can never descend into a volume or the host.
pub fn unmount_under(dir: &Path) -> Result<(), MountError> {
    for target in mounts_under(dir) {
        unmount(&target)?;
    }
    Ok(())
}
