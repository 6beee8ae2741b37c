//! cgroups for pods and containers, in both layouts: v1 (one hierarchy per controller, as
//! these machines' hybrid layout has: cpu and cpuacct apart, memory, pids, devices) and v2
//! (unified). Layout is detected from the tree, so the v2 path runs against a fake cgroupfs
//! in tests. Limits come from the pod spec; usage and the OOM-kill counter are read back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pod::spec::Resources;
use crate::runtime::isolation::devices::{default_devices, DeviceRule};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {op}: {source}")]
    Io {
        op: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no usable cgroup hierarchy under {0} (need cgroup v2, or v1 with memory, cpu, pids and devices)")]
    NoHierarchy(PathBuf),
    #[error("cgroup {path}: device allow-list (eBPF filter): {source}")]
    DeviceFilter {
        path: PathBuf,
        #[source]
        source: crate::runtime::isolation::device_filter::DeviceFilterError,
    },
}

fn io(op: impl Into<String>, path: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Io {
        op: op.into(),
        path: path.to_path_buf(),
        source,
    }
}

pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;
/// v1 controllers layerlet uses; cpuacct for CPU time, devices for the allow-list.
const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "devices", "freezer"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    V1 { root: PathBuf },
    V2 { root: PathBuf },
}

/// v2 when the root is a unified hierarchy (it has `cgroup.controllers`), else v1 when the
/// per-controller hierarchies are there.
pub fn detect(root: &Path) -> Result<Layout, CgroupError> {
    if root.join("cgroup.controllers").is_file() {
        return Ok(Layout::V2 {
            root: root.to_path_buf(),
        });
    }
    if ["memory", "cpu", "pids", "devices"]
        .iter()
        .all(|c| root.join(c).join("cgroup.procs").is_file())
    {
        return Ok(Layout::V1 {
            root: root.to_path_buf(),
        });
    }
    Err(CgroupError::NoHierarchy(root.to_path_buf()))
}

/// The limits of one container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupLimits {
    pub memory_bytes: Option<u64>,
    /// CFS quota per period, from limits.cpu.
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    /// v1 cpu.shares from requests.cpu (kubelet's formula; 2 when unset).
    pub cpu_shares: u64,
    pub pids_max: Option<u64>,
    /// None: all devices (privileged).
    pub devices: Option<Vec<DeviceRule>>,
    /// Whether to write device rules at all: a pod's cgroup leaves them to its containers
    /// (v1 refuses "allow all" on a cgroup that has children).
    pub manage_devices: bool,
}

/// kubelet's conversions: shares = millicores * 1024 / 1000 (at least 2); quota =
/// millicores * period / 1000 (at least 1 ms).
pub fn limits_for(resources: &Resources, pids_max: Option<u64>, privileged: bool) -> CgroupLimits {
    let shares = resources
        .requests
        .cpu_millis
        .map(|m| (m * 1024 / 1000).max(2))
        .unwrap_or(2);
    let quota = resources
        .limits
        .cpu_millis
        .map(|m| (m * DEFAULT_CPU_PERIOD_US / 1000).max(1000));
    CgroupLimits {
        memory_bytes: resources.limits.memory,
        cpu_quota_us: quota,
        cpu_period_us: DEFAULT_CPU_PERIOD_US,
        cpu_shares: shares,
        pids_max,
        devices: (!privileged).then(default_devices),
        manage_devices: true,
    }
}

/// The pod's own cgroup: shares are the sum of its containers' requests (so pods weigh
/// against each other by what they request, as kubelet sets them), and memory and CPU
/// limits are the sums when every container has one.
pub fn pod_limits(pod: &crate::pod::spec::PodSpec) -> CgroupLimits {
    let containers = &pod.containers;
    let requested: u64 = containers
        .iter()
        .filter_map(|c| c.resources.requests.cpu_millis)
        .sum();
    let sum_if_all =
        |get: &dyn Fn(&crate::pod::spec::ContainerSpec) -> Option<u64>| -> Option<u64> {
            containers.iter().map(get).sum::<Option<u64>>()
        };
    CgroupLimits {
        memory_bytes: sum_if_all(&|c| c.resources.limits.memory),
        cpu_quota_us: sum_if_all(&|c| c.resources.limits.cpu_millis)
            .map(|m| (m * DEFAULT_CPU_PERIOD_US / 1000).max(1000)),
        cpu_period_us: DEFAULT_CPU_PERIOD_US,
        cpu_shares: (requested * 1024 / 1000).max(2),
        pids_max: None,
        devices: None,
        manage_devices: false,
    }
}

/// cgroup v2 cpu.weight from v1 shares (the conversion runc and crun use).
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// Where one cgroup lives: the same relative path in each hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub layout: Layout,
    /// Relative to each hierarchy root, e.g. `layerlet/<pod uid>/<container id>`.
    pub path: String,
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value).map_err(|e| io(format!("write {value:?}"), &path, e))
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

impl Cgroup {
    pub fn new(layout: Layout, path: &str) -> Self {
        Cgroup {
            layout,
            path: path.trim_matches('/').to_string(),
        }
    }

    /// Every directory of this cgroup (one per v1 controller, one in v2).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1 { root } => V1_CONTROLLERS
                .iter()
                .map(|c| root.join(c))
                .filter(|c| c.is_dir())
                .map(|c| c.join(&self.path))
                .collect(),
            Layout::V2 { root } => vec![root.join(&self.path)],
        }
    }

    /// In hybrid mode, this cgroup's directory in the unified hierarchy: it carries the
    /// eBPF device filter, which the kernel enforces there too.
    pub fn hybrid_dir(&self) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { root } => hybrid_unified(root).map(|u| u.join(&self.path)),
            Layout::V2 { .. } => None,
        }
    }

    /// Where the eBPF device filter goes: the v2 directory, or in hybrid mode the unified
    /// hierarchy's. None for a tree that is not cgroup2 (v1 only, or a test's fake tree).
    pub fn bpf_dir(&self) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { .. } => self.hybrid_dir(),
            Layout::V2 { root } => crate::sys::bpf::is_cgroup2(root).then(|| root.join(&self.path)),
        }
    }

    /// Hybrid mode: the cgroup in the unified hierarchy too, with the allow-list as an eBPF
    /// filter (defense in depth). Best effort: the v1 devices cgroup enforces the same list,
    /// and a host whose unified hierarchy is read-only, or without BPF, must still run
    /// containers.
    fn create_hybrid(&self, limits: &CgroupLimits) {
        let Some(dir) = self.hybrid_dir() else {
            return;
        };
        let made = std::fs::create_dir_all(&dir)
            .map_err(|e| io("create", &dir, e))
            .and_then(|()| match limits.manage_devices {
                true => self.filter_devices(limits.devices.as_deref()),
                false => Ok(()),
            });
        if let Err(e) = made {
            tracing::warn!(
                "{e} (hybrid mode: the v1 devices cgroup still enforces the allow-list)"
            );
        }
    }

    /// Attaches the allow-list's eBPF program (or, for all devices, removes any).
    fn filter_devices(&self, devices: Option<&[DeviceRule]>) -> Result<(), CgroupError> {
        let Some(dir) = self.bpf_dir() else {
            return Ok(());
        };
        match devices {
            Some(rules) => crate::runtime::isolation::device_filter::apply(&dir, rules),
            None => crate::runtime::isolation::device_filter::clear(&dir),
        }
        .map_err(|source| CgroupError::DeviceFilter { path: dir, source })
    }

    fn controller(&self, name: &str) -> PathBuf {
        match &self.layout {
            Layout::V1 { root } => root.join(name).join(&self.path),
            Layout::V2 { root } => root.join(&self.path),
        }
    }

    /// Creates the cgroup (and its parents) and writes the limits.
    pub fn create(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1 { .. } => {
                for dir in self.dirs() {
                    std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
                }
                let memory = self.controller("memory");
                if let Some(bytes) = limits.memory_bytes {
                    write(&memory, "memory.limit_in_bytes", &bytes.to_string())?;
                    // Swap is bounded too, as kubelet does: a node with swap must not let the
                    // container page out instead of being OOM-killed.
                    if memory.join("memory.memsw.limit_in_bytes").exists() {
                        write(&memory, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
                    }
                }
                let cpu = self.controller("cpu");
                write(&cpu, "cpu.shares", &limits.cpu_shares.to_string())?;
                if let Some(quota) = limits.cpu_quota_us {
                    write(&cpu, "cpu.cfs_period_us", &limits.cpu_period_us.to_string())?;
                    write(&cpu, "cpu.cfs_quota_us", &quota.to_string())?;
                }
                if let Some(max) = limits.pids_max {
                    write(&self.controller("pids"), "pids.max", &max.to_string())?;
                }
                let devices = self.controller("devices");
                match &limits.devices {
                    _ if !limits.manage_devices => {}
                    Some(rules) => {
                        write(&devices, "devices.deny", "a")?;
                        for r in rules {
                            write(&devices, "devices.allow", &r.v1())?;
                        }
                    }
                    None => write(&devices, "devices.allow", "a")?,
                }
                self.create_hybrid(limits);
            }
            Layout::V2 { root } => {
                let dir = root.join(&self.path);
                std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
                // Controllers must be enabled in every ancestor's subtree_control.
                let mut ancestor = root.clone();
                for part in Path::new(&self.path)
                    .parent()
                    .into_iter()
                    .flat_map(|p| p.components())
                {
                    let _ = write(&ancestor, "cgroup.subtree_control", "+memory +cpu +pids");
                    ancestor.push(part);
                }
                let _ = write(&ancestor, "cgroup.subtree_control", "+memory +cpu +pids");
                if let Some(bytes) = limits.memory_bytes {
                    write(&dir, "memory.max", &bytes.to_string())?;
                }
                let quota = limits
                    .cpu_quota_us
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "max".into());
                write(
                    &dir,
                    "cpu.max",
                    &format!("{quota} {}", limits.cpu_period_us),
                )?;
                write(
                    &dir,
                    "cpu.weight",
                    &shares_to_weight(limits.cpu_shares).to_string(),
                )?;
                if let Some(max) = limits.pids_max {
                    write(&dir, "pids.max", &max.to_string())?;
                }
                // v2 has no devices controller: the allow-list is an eBPF program.
                if limits.manage_devices {
                    self.filter_devices(limits.devices.as_deref())?;
                }
            }
        }
        Ok(())
    }

    /// The cgroup2 directory a process can be cloned straight into (CLONE_INTO_CGROUP): the
    /// v2 directory, or in hybrid mode the unified one (made at create unless the unified
    /// hierarchy refused it). None for v1 only, or a fake tree.
    pub fn clone_target(&self) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { .. } => self.hybrid_dir().filter(|d| d.is_dir()),
            Layout::V2 { .. } => self.bpf_dir(),
        }
    }

    /// Moves the calling process, which must be single-threaded, into the cgroup ("0" names
    /// the writer). `in_clone_target` says it was born in [`Self::clone_target`] already.
    ///
    /// In v1 hierarchies it writes `tasks`, not `cgroup.procs`: moving only the calling
    /// thread is the one attach the kernel does without its global threadgroup lock, whose
    /// first taker after a quiet spell waits out an RCU grace period (8 ms here) while every
    /// fork on the machine waits too. For a single-threaded caller it moves the whole process.
    pub fn join_self(&self, in_clone_target: bool) -> Result<(), CgroupError> {
        let procs_file = match self.layout {
            Layout::V1 { .. } => "tasks",
            Layout::V2 { .. } => "cgroup.procs",
        };
        if !(in_clone_target && matches!(self.layout, Layout::V2 { .. })) {
            for dir in self.dirs() {
                write(&dir, procs_file, "0")?;
            }
        }
        if !in_clone_target {
            if let Some(dir) = self.hybrid_dir().filter(|d| d.is_dir()) {
                write(&dir, "cgroup.procs", "0")?;
            }
        }
        Ok(())
    }

    /// Pids in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        read(
            &self.controller(match self.layout {
                Layout::V1 { .. } => "pids",
                Layout::V2 { .. } => "",
            }),
            "cgroup.procs",
        )
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let (dir, file) = match self.layout {
            Layout::V1 { .. } => (self.controller("memory"), "memory.oom_control"),
            Layout::V2 { .. } => (self.controller(""), "memory.events"),
        };
        read(&dir, file)
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
            })
            .is_some_and(|n| n > 0)
    }

    pub fn usage(&self) -> Usage {
        let num =
            |dir: PathBuf, file: &str| read(&dir, file).and_then(|s| s.trim().parse::<u64>().ok());
        match self.layout {
            Layout::V1 { .. } => Usage {
                memory_bytes: num(self.controller("memory"), "memory.usage_in_bytes"),
                cpu_nanos: num(self.controller("cpuacct"), "cpuacct.usage"),
                pids: num(self.controller("pids"), "pids.current"),
            },
            Layout::V2 { .. } => {
                let dir = self.controller("");
                Usage {
                    memory_bytes: num(dir.clone(), "memory.current"),
                    cpu_nanos: read(&dir, "cpu.stat").and_then(|s| {
                        s.lines()
                            .find_map(|l| {
                                l.strip_prefix("usage_usec ")
                                    .and_then(|n| n.trim().parse::<u64>().ok())
                            })
                            .map(|us| us * 1000)
                    }),
                    pids: num(dir, "pids.current"),
                }
            }
        }
    }

    /// Removes the cgroup; its processes must be gone. A cgroup already gone is fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for dir in self.dirs().into_iter().chain(self.hybrid_dir()) {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &dir, e)),
            }
        }
        Ok(())
    }
}

impl Cgroup {
    /// Removes the cgroup together with any child cgroups left under it (by containers of a
    /// data root deleted without `layerlet rm`, or records lost in a crash): processes still
    /// in a leftover are killed first. Returns the leftovers it removed, deepest first.
    pub fn remove_with_leftovers(&self) -> Result<Vec<PathBuf>, CgroupError> {
        let mut removed = Vec::new();
        for dir in self.dirs().into_iter().chain(self.hybrid_dir()) {
            for child in child_cgroups(&dir) {
                remove_leftover(&child)?;
                removed.push(child);
            }
        }
        self.remove()?;
        Ok(removed)
    }
}

/// Every cgroup below `dir`, deepest first (the order rmdir needs).
fn child_cgroups(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let child = entry.path();
            found.extend(child_cgroups(&child));
            found.push(child);
        }
    }
    found
}

/// Kills what is left in one leftover cgroup and removes it, giving the kernel a moment to
/// let go of the killed processes.
fn remove_leftover(dir: &Path) -> Result<(), CgroupError> {
    let mut attempt = 0;
    loop {
        // v1 hierarchies list tasks in both files; "cgroup.procs" exists in v1 and v2.
        let pids: Vec<i32> = read(dir, "cgroup.procs")
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default();
        for pid in &pids {
            // A pid that exited meanwhile is fine: the next round sees the cgroup empty.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if attempt < 200 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(io("remove leftover", dir, e)),
        }
    }
}

/// The cgroup2 hierarchy that hybrid mode mounts beside the v1 ones (no controllers, but
/// eBPF device programs attached there are enforced).
fn hybrid_unified(root: &Path) -> Option<PathBuf> {
    let unified = root.join("unified");
    crate::sys::bpf::is_cgroup2(&unified).then_some(unified)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    pub cpu_nanos: Option<u64>,
    pub pids: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::spec::ResourceList;

    fn resources(
        cpu_limit: Option<u64>,
        cpu_request: Option<u64>,
        memory: Option<u64>,
    ) -> Resources {
        Resources {
            limits: ResourceList {
                cpu_millis: cpu_limit,
                memory,
                ..Default::default()
            },
            requests: ResourceList {
                cpu_millis: cpu_request,
                ..Default::default()
            },
        }
    }

    #[test]
    fn cpu_and_memory_limits_convert_as_kubelet_does() {
        let l = limits_for(
            &resources(Some(500), Some(250), Some(64 << 20)),
            Some(100),
            false,
        );
        assert_eq!(l.cpu_quota_us, Some(50_000));
        assert_eq!(l.cpu_shares, 256);
        assert_eq!(l.memory_bytes, Some(64 << 20));
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        let none = limits_for(&resources(None, None, None), None, true);
        assert_eq!(
            (none.cpu_quota_us, none.cpu_shares, none.devices),
            (None, 2, None)
        );
    }

    #[test]
    fn v2_files_are_written_into_a_fake_unified_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids").unwrap();
        let layout = detect(root).unwrap();
        assert!(matches!(layout, Layout::V2 { .. }));
        let cg = Cgroup::new(layout, "layerlet/pod1/c1");
        let limits = limits_for(
            &resources(Some(1500), Some(1000), Some(128 << 20)),
            Some(4096),
            false,
        );
        cg.create(&limits).unwrap();
        let c = root.join("layerlet/pod1/c1");
        assert_eq!(
            std::fs::read_to_string(c.join("memory.max")).unwrap(),
            (128u64 << 20).to_string()
        );
        assert_eq!(
            std::fs::read_to_string(c.join("cpu.max")).unwrap(),
            "150000 100000"
        );
        assert_eq!(std::fs::read_to_string(c.join("cpu.weight")).unwrap(), "39");
        assert_eq!(std::fs::read_to_string(c.join("pids.max")).unwrap(), "4096");
        assert_eq!(
            std::fs::read_to_string(root.join("layerlet/cgroup.subtree_control")).unwrap(),
            "+memory +cpu +pids"
        );
        std::fs::write(
            c.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
        std::fs::write(c.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
        std::fs::write(c.join("memory.current"), "4096\n").unwrap();
        let usage = cg.usage();
        assert_eq!(
            (usage.cpu_nanos, usage.memory_bytes),
            (Some(2_500_000), Some(4096))
        );
    }

    #[test]
    fn a_tree_without_controllers_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(detect(dir.path()).is_err());
    }
}
