//! A pod's shared environment, with no pause process: network, IPC and UTS namespaces pinned
//! by bind mounts of their nsfs files, one /dev/shm (a tmpfs), and the pod's /etc/hosts,
//! /etc/hostname and /etc/resolv.conf. The network namespace is attached to the node's pod
//! network (CNI) before any container starts, and its addresses kept in `ips`. Everything
//! lives under `RUN_ROOT/pods/<uid>/` and goes when the pod goes.

pub mod files;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use std::net::IpAddr;

use crate::layout::{LayoutError, NodeLayout};
use crate::pod::spec::PodSpec;
use crate::runtime::network::{NetworkError, PodNetworking};
use crate::runtime::spec::mounts::BindMount;
use crate::runtime::spec::NamespacePlan;
use crate::sys::fs::{create_private_dir, remove_tree, replace_file, FsError};
use crate::sys::mount::{mounts_under, unmount, unmount_under, MountError};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("pod {pod}: uid {uid:?} may only contain letters, digits and '-' (at most 64)")]
    BadUid { pod: String, uid: String },
    #[error("pod {pod}: create namespaces: {reason}")]
    Namespaces { pod: String, reason: String },
    #[error("pod {pod}: mount /dev/shm tmpfs: {source}")]
    Shm {
        pod: String,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// CNI could not attach the pod (kubelet's FailedCreatePodSandBox).
    #[error("pod {pod}: failed to set up its network: {source}")]
    Network {
        pod: String,
        #[source]
        source: Box<NetworkError>,
    },
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    pub dir: PathBuf,
    /// ClusterFirst fell back to the node's resolver: there is no `--cluster-dns`.
    pub missing_cluster_dns: bool,
}

const IPS_FILE: &str = "ips";

/// The addresses CNI gave the pod whose sandbox is `dir`, IPv4 first; none without a
/// network (or before it was attached).
pub fn pod_ips(dir: &Path) -> Vec<IpAddr> {
    std::fs::read_to_string(dir.join(IPS_FILE))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The directory of a pod's sandbox; the uid is checked because it comes from YAML.
pub fn sandbox_dir(layout: &NodeLayout, pod: &PodSpec) -> Result<PathBuf, SandboxError> {
    let ok = !pod.uid.is_empty()
        && pod.uid.len() <= 64
        && pod
            .uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(SandboxError::BadUid {
            pod: pod.key(),
            uid: pod.uid.clone(),
        });
    }
    Ok(layout.sandbox_dir(&pod.uid)?)
}

/// More mounts stacked on one path than creation retries could ever leave.
const MAX_STACKED_MOUNTS: usize = 8;

impl Sandbox {
    /// Creates the pod's namespaces, shm and files; `exe` is the layerlet binary, re-executed
    /// as `__sandbox` to unshare (never a fork of a possibly multi-threaded caller).
    pub fn create(
        exe: &Path,
        layout: &NodeLayout,
        pod: &PodSpec,
        networking: &PodNetworking,
    ) -> Result<Sandbox, SandboxError> {
        let dir = sandbox_dir(layout, pod)?;
        // Only a creation interrupted before the pod was recorded (the agent killed) leaves
        // a directory here: its pinned namespaces and shm would refuse a second pinning.
        if dir.exists() {
            if let Err(e) = networking.detach(&pod.uid) {
                tracing::warn!(pod = %pod.key(), error = %e, "the network of an interrupted sandbox could not be detached");
            }
            Sandbox::destroy_dir(&dir)?;
        }
        create_private_dir(&dir.join("ns"))?;
        // Containers' users must read these files: they are bind-mounted into the rootfs.
        set_mode(&dir, 0o711)?;
        let node_hosts = std::fs::read_to_string("/etc/hosts").ok();
        let domain = &networking.dns.domain;
        let hosts = |ip| files::hosts_file(pod, ip, domain, node_hosts.as_deref());
        replace_file(&dir.join("hosts"), hosts(None).as_bytes())?;
        replace_file(
            &dir.join("hostname"),
            format!("{}\n", pod.hostname).as_bytes(),
        )?;
        let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = files::resolv_conf(pod, &networking.dns, &node_resolv);
        replace_file(&dir.join("resolv.conf"), resolv.text.as_bytes())?;
        let sandbox = Sandbox {
            dir,
            missing_cluster_dns: resolv.missing_cluster_dns,
        };
        let made = crate::phases::timed("pod_namespaces", || sandbox.create_shared(exe, pod));
        let made = made.and_then(|()| {
            if pod.host_network {
                return Ok(());
            }
            let netns = sandbox.dir.join("ns").join("net");
            let attached = crate::phases::timed("pod_network", || networking.attach(pod, &netns))
                .map_err(|source| SandboxError::Network {
                pod: pod.key(),
                source: Box::new(source),
            })?;
            if let Some(attached) = attached {
                let ips: String = attached.ips.iter().map(|ip| format!("{ip}\n")).collect();
                replace_file(&sandbox.dir.join(IPS_FILE), ips.as_bytes())?;
                replace_file(
                    &sandbox.dir.join("hosts"),
                    hosts(attached.ips.first().copied()).as_bytes(),
                )?;
            }
            Ok(())
        });
        if let Err(e) = made {
            let _ = networking.detach(&pod.uid);
            let _ = Sandbox::destroy_dir(&sandbox.dir);
            return Err(e);
        }
        Ok(sandbox)
    }

    fn create_shared(&self, exe: &Path, pod: &PodSpec) -> Result<(), SandboxError> {
        if !pod.host_ipc {
            let shm = self.dir.join("shm");
            create_private_dir(&shm)?;
            mount(
                Some("shm"),
                &shm,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("mode=1777,size=65536k"),
            )
            .map_err(|source| SandboxError::Shm {
                pod: pod.key(),
                source,
            })?;
        }
        let mut kinds = Vec::new();
        if !pod.host_network {
            kinds.push("net");
            // Kubernetes shares the host's UTS namespace with host networking.
            kinds.push("uts");
        }
        if !pod.host_ipc {
            kinds.push("ipc");
        }
        if kinds.is_empty() {
            return Ok(());
        }
        for kind in &kinds {
            std::fs::write(self.dir.join("ns").join(kind), b"")
                .map_err(|e| FsError::io("create", self.dir.join("ns").join(kind), e))?;
        }
        let out = Command::new(exe)
            .arg("__sandbox")
            .arg(&self.dir)
            .arg(&pod.hostname)
            .arg(kinds.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| SandboxError::Namespaces {
                pod: pod.key(),
                reason: format!("run {}: {e}", exe.display()),
            })?;
        if !out.status.success() {
            return Err(SandboxError::Namespaces {
                pod: pod.key(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    pub fn open(layout: &NodeLayout, pod: &PodSpec) -> Result<Sandbox, SandboxError> {
        Ok(Sandbox {
            dir: sandbox_dir(layout, pod)?,
            missing_cluster_dns: false,
        })
    }

    /// Where a container of this pod joins; None means the host's.
    pub fn namespaces(&self, pod: &PodSpec) -> NamespacePlan {
        let ns = |kind: &str, shared: bool| (!shared).then(|| self.dir.join("ns").join(kind));
        NamespacePlan {
            net: ns("net", pod.host_network),
            uts: ns("uts", pod.host_network),
            ipc: ns("ipc", pod.host_ipc),
            host_pid: pod.host_pid,
        }
    }

    /// The pod's files and shm, mounted into each of its containers.
    pub fn mounts(&self, pod: &PodSpec) -> Vec<BindMount> {
        let file = |name: &str, dest: &str| BindMount {
            source: self.dir.join(name),
            destination: dest.to_string(),
            read_only: false,
            directory: false,
            propagation: crate::runtime::spec::mounts::Propagation::Private,
        };
        let mut mounts = vec![
            file("hosts", "/etc/hosts"),
            file("hostname", "/etc/hostname"),
            file("resolv.conf", "/etc/resolv.conf"),
        ];
        mounts.push(BindMount {
            source: if pod.host_ipc {
                PathBuf::from("/dev/shm")
            } else {
                self.dir.join("shm")
            },
            destination: "/dev/shm".into(),
            read_only: false,
            directory: true,
            propagation: crate::runtime::spec::mounts::Propagation::Private,
        });
        mounts
    }

    /// Unmounts and removes everything of the sandbox; a sandbox already gone is fine.
    pub fn destroy_dir(dir: &Path) -> Result<(), SandboxError> {
        // By name first: mountinfo names a root reached through a symlink by its target.
        for path in ["ns/net", "ns/ipc", "ns/uts", "shm"] {
            let path = dir.join(path);
            if path.exists() {
                unmount(&path)?;
            }
        }
        // An interrupted create that was retried can leave mounts stacked on one path:
        // unmount until nothing is left below the directory.
        for _ in 0..MAX_STACKED_MOUNTS {
            if mounts_under(dir).is_empty() {
                break;
            }
            unmount_under(dir)?;
        }
        remove_tree(dir)?;
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), FsError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| FsError::io("chmod", path, e))
}

/// Brings the loopback interface of the current network namespace up.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket + ioctl on a zeroed ifreq naming "lo".
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let result = if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req) < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        libc::close(sock);
        result
    }
}

/// The `__sandbox DIR HOSTNAME KINDS` helper as a process's whole job (layerlet and the
/// monitor binary both answer it): the error, if any, goes to stderr for the caller.
pub fn helper_main(dir: &OsStr, hostname: &OsStr, kinds: &OsStr) -> std::process::ExitCode {
    match sandbox_main(
        Path::new(dir),
        &hostname.to_string_lossy(),
        &kinds.to_string_lossy(),
    ) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// `layerlet __sandbox DIR HOSTNAME KINDS`: moves itself into new namespaces of the listed
/// kinds, sets them up, and pins each with a bind mount of its nsfs file onto DIR/ns/KIND.
pub fn sandbox_main(dir: &Path, hostname: &str, kinds: &str) -> Result<(), String> {
    let mut flags = CloneFlags::empty();
    for kind in kinds.split(',') {
        flags |= match kind {
            "net" => CloneFlags::CLONE_NEWNET,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "uts" => CloneFlags::CLONE_NEWUTS,
            other => return Err(format!("unknown namespace kind {other:?}")),
        };
    }
    unshare(flags).map_err(|e| format!("unshare: {e}"))?;
    if flags.contains(CloneFlags::CLONE_NEWUTS) {
        nix::unistd::sethostname(hostname).map_err(|e| format!("sethostname {hostname:?}: {e}"))?;
    }
    if flags.contains(CloneFlags::CLONE_NEWNET) {
        loopback_up().map_err(|e| format!("bring up lo: {e}"))?;
    }
    for kind in kinds.split(',') {
        let target = dir.join("ns").join(kind);
        let source = format!("/proc/self/ns/{kind}");
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("pin {kind} namespace on {}: {e}", target.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroy_removes_a_directory_with_mounts_stacked_on_its_shm() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pod");
        let shm = dir.join("shm");
        std::fs::create_dir_all(&shm).unwrap();
        for _ in 0..3 {
            mount(
                Some("shm"),
                &shm,
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
        }
        std::fs::write(shm.join("left"), b"x").unwrap();
        Sandbox::destroy_dir(&dir).unwrap();
        assert!(!dir.exists());
        assert!(mounts_under(tmp.path()).is_empty());
    }
}
