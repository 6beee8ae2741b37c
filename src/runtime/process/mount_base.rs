//! The mount base: a mount namespace without the pods' mounts, from which every container's
//! own is cloned. Cloning a mount namespace copies each of its mounts under the kernel's
//! global namespace lock, so cloned from the host's, a container start cost in proportion to
//! the mounts of every pod on the node (five each: `unshare -m` took 2.6 ms at 50 pods and
//! 11.7 ms at 1,000). The agent makes one base when it starts: a helper unshares, makes its
//! copy private and detaches everything under layerlet's roots, and the agent keeps the
//! namespace open. A monitor enters the base only to clone init, then returns to the host's.
//! What the container needs of the host's namespace (its rootfs, its volume sources, its
//! pod's namespace pins) the monitor opens before it switches and hands to init as fds.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::runtime::spec::ContainerPlan;
use crate::sys::mount_tree::clone_tree;

/// How the agent tells a monitor where its mount base is (a /proc path to the agent's fd).
pub const MOUNT_BASE_ENV: &str = "LAYERLET_MOUNT_BASE";

#[derive(Debug, thiserror::Error)]
pub enum MountBaseError {
    #[error("start the mount base helper {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the mount base helper {exe} failed: {reason}")]
    Helper { exe: PathBuf, reason: String },
    #[error("{what} {path}: {source}")]
    Open {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: {1}")]
    Switch(&'static str, #[source] nix::Error),
}

/// The agent's handle on the base namespace; it lives as long as the agent.
#[derive(Debug)]
pub struct MountBase {
    namespace: OwnedFd,
}

impl MountBase {
    /// Runs `exe __mount-base ROOT...` and keeps its mount namespace.
    pub fn create(exe: &Path, roots: &[&Path]) -> Result<Self, MountBaseError> {
        let helper_failed = |reason: String| MountBaseError::Helper {
            exe: exe.to_path_buf(),
            reason,
        };
        let mut child = Command::new(exe)
            .arg("__mount-base")
            .args(roots)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| MountBaseError::Spawn {
                exe: exe.to_path_buf(),
                source,
            })?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let namespace = if line.trim_end() == "ready" {
            let path = PathBuf::from(format!("/proc/{}/ns/mnt", child.id()));
            File::open(&path)
                .map(OwnedFd::from)
                .map_err(|source| MountBaseError::Open {
                    what: "open the mount base",
                    path,
                    source,
                })
        } else {
            Err(helper_failed(String::new()))
        };
        // Closing its stdin lets the helper exit; the namespace lives on through our fd.
        drop(child.stdin.take());
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let _ = child.wait();
        match namespace {
            Err(MountBaseError::Helper { .. }) => Err(helper_failed(stderr.trim().to_string())),
            other => other.map(|namespace| MountBase { namespace }),
        }
    }

    /// The path through which another process (a monitor) opens the base: this process's fd.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.namespace.as_raw_fd()
        ))
    }
}

/// `layerlet __mount-base ROOT...`: a new mount namespace, private, without any mount below
/// the ROOTs; says "ready" and stays until its stdin closes, so the caller can open it.
pub fn helper_main(roots: &[OsString]) -> std::process::ExitCode {
    match make_base(roots) {
        Ok(()) => {
            let mut out = io::stdout();
            let _ = writeln!(out, "ready");
            let _ = out.flush();
            let _ = io::stdin().read_to_end(&mut Vec::new());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn make_base(roots: &[OsString]) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare the mount namespace: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make the mount namespace private: {e}"))?;
    for root in roots {
        let root = Path::new(root);
        // The roots themselves stay (they may be mounts of their own); what is below them
        // belongs to pods, and reaches a container only as a tree its monitor hands over.
        for point in crate::sys::mount::mounts_under(root) {
            if point != root {
                let _ = umount2(&point, MntFlags::MNT_DETACH);
            }
        }
    }
    Ok(())
}

/// Detached copies of a container's rootfs and of every bind source (in the plan's order),
/// taken where the host's mounts are visible. The rootfs is copied first, so its mount is the
/// oldest in the container and /proc/self/mountinfo lists it first, as under runc.
#[derive(Debug)]
pub struct MountTrees {
    pub rootfs: OwnedFd,
    pub mounts: Vec<OwnedFd>,
}

impl MountTrees {
    pub fn take(plan: &ContainerPlan) -> Result<Self, MountBaseError> {
        Ok(MountTrees {
            rootfs: tree("copy the rootfs mount", &plan.rootfs, true)?,
            mounts: plan
                .mounts
                .iter()
                .map(|m| tree("copy the mount source", &m.source, m.directory))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What a container's init needs of the host's mount namespace, opened there by the monitor
/// before it enters the base: the mount trees and the pod's namespace pins.
#[derive(Debug)]
pub struct HostHandles {
    pub trees: MountTrees,
    pub ipc: Option<OwnedFd>,
    pub uts: Option<OwnedFd>,
    pub net: Option<OwnedFd>,
    host: OwnedFd,
    base: OwnedFd,
}

fn open_fd(what: &'static str, path: &Path) -> Result<OwnedFd, MountBaseError> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| MountBaseError::Open {
            what,
            path: path.to_path_buf(),
            source,
        })
}

fn tree(what: &'static str, path: &Path, recursive: bool) -> Result<OwnedFd, MountBaseError> {
    clone_tree(path, recursive).map_err(|source| MountBaseError::Open {
        what,
        path: path.to_path_buf(),
        source,
    })
}

impl HostHandles {
    pub fn open(base: &Path, plan: &ContainerPlan) -> Result<Self, MountBaseError> {
        let base = open_fd("open the mount base", base)?;
        let host = open_fd(
            "open the host's mount namespace",
            Path::new("/proc/self/ns/mnt"),
        )?;
        let pin = |path: &Option<PathBuf>| {
            path.as_deref()
                .map(|p| open_fd("open the pod's namespace", p))
                .transpose()
        };
        Ok(HostHandles {
            trees: MountTrees::take(plan)?,
            ipc: pin(&plan.namespaces.ipc)?,
            uts: pin(&plan.namespaces.uts)?,
            net: pin(&plan.namespaces.net)?,
            host,
            base,
        })
    }

    /// The calling thread's process enters the base (it must be single-threaded).
    pub fn enter_base(&self) -> Result<(), MountBaseError> {
        setns(self.base.as_fd(), CloneFlags::CLONE_NEWNS)
            .map_err(|e| MountBaseError::Switch("enter the mount base", e))
    }

    pub fn leave_base(&self) -> Result<(), MountBaseError> {
        setns(self.host.as_fd(), CloneFlags::CLONE_NEWNS)
            .map_err(|e| MountBaseError::Switch("return to the host's mount namespace", e))
    }

    /// Every descriptor, for init to close once it has used them: none may reach the
    /// container (a workingDir of /proc/self/fd/N would reach it before exec).
    pub fn raw_fds(&self) -> Vec<RawFd> {
        let pins = [&self.ipc, &self.uts, &self.net];
        [&self.trees.rootfs, &self.host, &self.base]
            .into_iter()
            .chain(self.trees.mounts.iter())
            .chain(pins.into_iter().flatten())
            .map(|fd| fd.as_raw_fd())
            .collect()
    }
}
