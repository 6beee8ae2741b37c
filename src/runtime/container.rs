//! Container operations on the node: create (rootfs + plan + record), start (a detached
//! monitor), stop (stop signal, grace period, SIGKILL), delete (unmount, destroy the writable
//! layer, forget). The effectful edge over the pure pieces of this module's siblings.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::image::digest::Digest;
use crate::image::store::{Store, StoreError};
use crate::layout::{LayoutError, NodeLayout};
use crate::meta::MetaError;
use crate::phases::timed;
use crate::pod::spec::{ContainerSpec, PodSpec};
use crate::runtime::process::monitor::plan_path;
use crate::runtime::records::ContainerRecord;
use crate::runtime::sandbox::Sandbox;
use crate::runtime::spec::{
    check_mount_destinations, plan_container, ContainerPlan, PlanInputs, SpecError,
};
use crate::runtime::state::{
    check, Action, Exited, Started, StateError, StateFiles, Status, Verdict,
};
use crate::runtime::storage::rootfs::{ContainerLayer, RootfsError};
use crate::runtime::storage::volumes::{
    container_mounts, unmounted_image_volumes, PodVolumes, VolumeError,
};
use crate::sys::fs::{
    create_private_dir, random_id, read_in_root, remove_tree, replace_file, FsError,
};
use crate::sys::process::{PidFd, ProcessError};
use crate::time::unix_secs_now as now;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] MetaError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error(transparent)]
    Seccomp(#[from] crate::runtime::isolation::seccomp::SeccompError),
    #[error(transparent)]
    Cgroup(#[from] crate::runtime::isolation::cgroup::CgroupError),
    #[error("container {container}: start the monitor ({exe}): {reason}")]
    Monitor {
        container: String,
        exe: String,
        reason: String,
    },
    #[error("{container} failed to start: {reason}")]
    StartFailed { container: String, reason: String },
    #[error(
        "container {container}: no exit status after SIGKILL; its monitor may be gone (see {log})"
    )]
    Lost { container: String, log: String },
}

/// A container just created, and the warnings its plan raised (the data-loss guard).
#[derive(Debug, Clone)]
pub struct Created {
    pub record: ContainerRecord,
    pub warnings: Vec<String>,
}

/// Where layerlet keeps things, and the binary it re-executes for helpers.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub layout: NodeLayout,
    pub exe: PathBuf,
    /// The sealed monitor binary; None runs monitors and sandbox helpers as `exe __monitor`
    /// and `exe __sandbox`.
    pub monitor: Option<PathBuf>,
    pub node_name: String,
    /// Where cgroup hierarchies are mounted (/sys/fs/cgroup).
    pub cgroup_root: PathBuf,
    /// pids.max of every container (a node default), None for no limit.
    pub pids_limit: Option<u64>,
    /// How pods are networked (CNI or loopback only) and the cluster DNS they name.
    pub networking: std::sync::Arc<crate::runtime::network::PodNetworking>,
    /// The mount namespace containers are cloned from (the agent's); None clones the
    /// caller's (see [`crate::runtime::process::mount_base`]).
    pub mount_base: Option<std::sync::Arc<crate::runtime::process::mount_base::MountBase>>,
}

/// The directories of one container: data (writable layer, log) and run state.
#[derive(Debug, Clone)]
pub struct ContainerDirs {
    pub data: PathBuf,
    pub run: PathBuf,
}

impl ContainerDirs {
    pub fn layer(&self) -> ContainerLayer {
        ContainerLayer::under(&self.data)
    }

    pub fn state(&self) -> StateFiles {
        StateFiles::new(&self.run)
    }

    pub fn log(&self) -> PathBuf {
        self.data.join("container.log")
    }
}

const PASSWD_LIMIT: u64 = 4 * 1024 * 1024;

impl Runtime {
    /// The binary helpers run as: the sealed monitor binary (small, static, quick to exec)
    /// where it is installed, else layerlet itself.
    pub fn helper_program(&self) -> &Path {
        self.monitor.as_deref().unwrap_or(&self.exe)
    }

    pub fn dirs(&self, id: &str) -> Result<ContainerDirs, LayoutError> {
        Ok(ContainerDirs {
            data: self.layout.container_dir(id)?,
            run: self.layout.container_run_dir(id)?,
        })
    }

    /// The pod's cgroup, relative to each hierarchy: unique per data root, so two data roots
    /// on one node (or two test suites) never share one.
    pub fn pod_cgroup_path(&self, pod_uid: &str) -> String {
        let root = Digest::of_bytes(self.layout.root().as_os_str().as_encoded_bytes());
        format!("layerlet/{}/{pod_uid}", &root.hex()[..12])
    }

    pub fn status(&self, id: &str) -> Result<Status, ContainerError> {
        self.settle_lost(id)?;
        Ok(self.dirs(id)?.state().status()?)
    }

    /// A container whose monitor and process are both gone without an exit record (the
    /// monitor was killed) is recorded as exited with reason Unknown, so it can be stopped,
    /// removed and restarted instead of looking alive forever.
    pub fn settle_lost(&self, id: &str) -> Result<(), ContainerError> {
        let state = self.dirs(id)?.state();
        let Some(started) = state.started()? else {
            return Ok(());
        };
        if state.exited()?.is_some() {
            return Ok(());
        }
        Self::settle_if_lost(&state, &started)?;
        Ok(())
    }

    /// [`Runtime::settle_lost`] for a container whose start record was just read and whose
    /// exit record was not there: writes exit 255 if neither its monitor nor its process
    /// lives. Returns the exit record, if there is one now.
    pub fn settle_if_lost(
        state: &StateFiles,
        started: &Started,
    ) -> Result<Option<Exited>, ContainerError> {
        let alive = |pid: i32, ticks: u64| {
            let now = crate::sys::process::start_ticks(pid);
            now.is_some() && (ticks == 0 || now == Some(ticks))
        };
        if alive(started.monitor_pid, started.monitor_start_ticks)
            || alive(started.pid, started.pid_start_ticks)
        {
            return Ok(None);
        }
        // The monitor may have written its record since the caller looked.
        if let Some(exited) = state.exited()? {
            return Ok(Some(exited));
        }
        let now = crate::time::unix_ms_now();
        let exited = Exited {
            exit_code: 255,
            reason: "Unknown".into(),
            signal: None,
            finished_at: crate::time::format_rfc3339_nano(std::time::SystemTime::now()),
            finished_unix_ms: now,
            message: Some("the container's monitor process died; its exit code is unknown".into()),
        };
        state.write_exited(&exited)?;
        Ok(Some(exited))
    }

    pub fn plan(&self, id: &str) -> Result<Option<ContainerPlan>, ContainerError> {
        let path = plan_path(&self.dirs(id)?.run);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FsError::io("read", &path, e).into()),
        }
    }

    /// Mounts the rootfs, plans the process and records the container (status created).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        store: &Store,
        pod: &PodSpec,
        sandbox: &Sandbox,
        volumes: &PodVolumes,
        container: &ContainerSpec,
        image: &Digest,
        attempt: u32,
        pod_env: &[(String, String)],
    ) -> Result<Created, ContainerError> {
        let id = random_id()?;
        let dirs = self.dirs(&id)?;
        let result = self.create_in(
            store, pod, sandbox, volumes, container, image, attempt, pod_env, &id, &dirs,
        );
        if result.is_err() {
            let _ = crate::sys::mount::unmount_under(&dirs.data.join("subpaths"));
            if let Ok(Some(plan)) = self.plan(&id) {
                if let Some(cg) = plan.cgroup {
                    let _ = cg.remove();
                }
            }
            let _ = dirs.layer().destroy();
            let _ = remove_tree(&dirs.data);
            let _ = remove_tree(&dirs.run);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn create_in(
        &self,
        store: &Store,
        pod: &PodSpec,
        sandbox: &Sandbox,
        volumes: &PodVolumes,
        container: &ContainerSpec,
        image: &Digest,
        attempt: u32,
        pod_env: &[(String, String)],
        id: &str,
        dirs: &ContainerDirs,
    ) -> Result<Created, ContainerError> {
        create_private_dir(&dirs.data)?;
        create_private_dir(&dirs.run)?;
        let layer = dirs.layer();
        let config = store.image_config(image)?;
        let mut mount_points: Vec<(&str, bool)> =
            vec![("/proc", true), ("/sys", true), ("/dev", true)];
        let sandbox_mounts = sandbox.mounts(pod);
        mount_points.extend(
            sandbox_mounts
                .iter()
                .filter(|m| !m.destination.starts_with("/dev/"))
                .map(|m| (m.destination.as_str(), m.directory)),
        );
        layer.mount(&store.image_lowerdirs(image)?, false, &mount_points)?;
        let text = |rel: &str| -> Result<Option<String>, ContainerError> {
            Ok(read_in_root(&layer.merged, rel, PASSWD_LIMIT)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()))
        };
        let plan = plan_container(
            pod,
            container,
            PlanInputs {
                id: id.to_string(),
                rootfs: layer.merged.clone(),
                image: &config,
                passwd: text("etc/passwd")?,
                group: text("etc/group")?,
                namespaces: sandbox.namespaces(pod),
                mounts: sandbox.mounts(pod),
                log_path: dirs.log(),
                pod_env: pod_env.to_vec(),
            },
        )?;
        let mut plan = plan;
        plan.security.seccomp_dir = self.layout.seccomp_dir();
        // Compiled now, so a bad Localhost profile fails the create with its reason.
        crate::runtime::isolation::seccomp::compile(
            &plan.security.seccomp,
            &plan.security.seccomp_dir,
            &plan.security.capabilities,
        )?;
        let volume_mounts = container_mounts(pod, container, volumes, &plan.env, &dirs.data)?;
        check_mount_destinations(pod, container, &volume_mounts)?;
        plan.mounts.extend(volume_mounts);
        // Last: it may lie in a volume mounted above.
        if let Some((mount, message)) =
            crate::runtime::storage::termination::prepare(container, &dirs.data)?
        {
            plan.mounts.push(mount);
            plan.termination_message = Some(message);
        }
        let image_volumes: Vec<String> = config
            .config
            .as_ref()
            .and_then(|c| c.volumes.as_ref())
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        let warnings: Vec<String> = unmounted_image_volumes(&image_volumes, &plan.mounts)
            .into_iter()
            .map(|path| format!("pod {} container {}: writes to {path} go into the writable layer and are lost when the container is deleted; mount a volume there", pod.key(), container.name))
            .collect();
        let layout = crate::runtime::isolation::cgroup::detect(&self.cgroup_root)?;
        let pod_cgroup = crate::runtime::isolation::cgroup::Cgroup::new(
            layout.clone(),
            &self.pod_cgroup_path(&pod.uid),
        );
        pod_cgroup.create(&crate::runtime::isolation::cgroup::pod_limits(pod))?;
        let cgroup = crate::runtime::isolation::cgroup::Cgroup::new(
            layout,
            &format!("{}/{id}", self.pod_cgroup_path(&pod.uid)),
        );
        cgroup.create(&crate::runtime::isolation::cgroup::limits_for(
            &container.resources,
            self.pids_limit,
            plan.security.privileged,
        ))?;
        plan.cgroup = Some(cgroup);
        let bytes = serde_json::to_vec_pretty(&plan).map_err(|e| {
            FsError::io(
                "encode plan",
                plan_path(&dirs.run),
                std::io::Error::other(e),
            )
        })?;
        replace_file(&plan_path(&dirs.run), &bytes)?;
        let record = ContainerRecord {
            id: id.to_string(),
            pod_uid: pod.uid.clone(),
            name: container.name.clone(),
            attempt,
            image_ref: container.image.to_string(),
            image: image.clone(),
            created_at: now(),
        };
        store.db().insert_container(&record)?;
        Ok(Created { record, warnings })
    }

    /// Starts a created container; returns once its process has been executed.
    pub fn start(&self, id: &str) -> Result<i32, ContainerError> {
        let dirs = self.dirs(id)?;
        check(id, dirs.state().status()?, Action::Start)?;
        let log = std::fs::File::create(dirs.run.join("monitor.log"))
            .map_err(|e| FsError::io("create", dirs.run.join("monitor.log"), e))?;
        let program = self.helper_program();
        let monitor_err = |reason: String| ContainerError::Monitor {
            container: id.to_string(),
            exe: program.display().to_string(),
            reason,
        };
        let mut command = Command::new(program);
        // Only the agent names a base; one in the caller's environment is not passed on.
        let base_env = crate::runtime::process::mount_base::MOUNT_BASE_ENV;
        match &self.mount_base {
            Some(base) => command.env(base_env, base.path()),
            None => command.env_remove(base_env),
        };
        let mut child = command
            .arg("__monitor")
            .arg(&dirs.run)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| monitor_err(e.to_string()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| monitor_err("no ready pipe".into()))?;
        // The process we spawned forks the monitor and exits at once: reap it now.
        let _ = child.wait();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| monitor_err(e.to_string()))?;
        let line = line.trim_end();
        if let Some(pid) = line.strip_prefix("started ") {
            return pid
                .parse()
                .map_err(|_| monitor_err(format!("bad report {line:?}")));
        }
        let reason = line.strip_prefix("failed ").unwrap_or(line);
        let reason = if reason.is_empty() {
            format!(
                "the monitor exited without a report; see {}",
                dirs.run.join("monitor.log").display()
            )
        } else {
            reason.to_string()
        };
        let container = match self.plan(id) {
            Ok(Some(plan)) => format!(
                "pod {} container {} ({})",
                plan.pod,
                plan.name,
                &id[..12.min(id.len())]
            ),
            _ => format!("container {id}"),
        };
        Err(ContainerError::StartFailed { container, reason })
    }

    /// Waits up to `timeout` for the exit record.
    pub fn wait_exited(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<Exited>, ContainerError> {
        let state = self.dirs(id)?.state();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(e) = state.exited()? {
                return Ok(Some(e));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stop = the stop signal, `grace` to exit, then SIGKILL. Idempotent.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<Option<Exited>, ContainerError> {
        let dirs = self.dirs(id)?;
        let state = dirs.state();
        self.settle_lost(id)?;
        if check(id, state.status()?, Action::Stop)? == Verdict::AlreadyDone {
            return Ok(state.exited()?);
        }
        let plan = self.plan(id)?;
        let signal = plan.map(|p| p.stop_signal).unwrap_or(libc::SIGTERM);
        if let Some(started) = state.started()? {
            if let Some(process) = PidFd::open_checked(started.pid, started.pid_start_ticks)? {
                process.signal(signal)?;
                if !process.wait_exit(grace) {
                    // PID 1 of the container's PID namespace: killing it kills every process
                    // in the namespace.
                    process.signal(libc::SIGKILL)?;
                    process.wait_exit(Duration::from_secs(10));
                }
            }
        }
        self.kill_leftovers(id)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Some(e) = state.exited()? {
                return Ok(Some(e));
            }
            self.settle_lost(id)?;
            std::thread::sleep(Duration::from_millis(5));
        }
        match state.exited()? {
            Some(e) => Ok(Some(e)),
            None => Err(ContainerError::Lost {
                container: id.to_string(),
                log: dirs.run.join("monitor.log").display().to_string(),
            }),
        }
    }

    /// SIGKILLs whatever is still in the container's cgroup (a host-PID container's init
    /// takes no children with it).
    fn kill_leftovers(&self, id: &str) -> Result<(), ContainerError> {
        if let Some(cg) = self.plan(id)?.and_then(|p| p.cgroup) {
            for pid in cg.pids() {
                if let Some(ticks) = crate::sys::process::start_ticks(pid) {
                    if let Some(p) = PidFd::open_checked(pid, ticks)? {
                        p.signal(libc::SIGKILL)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Unmounts and destroys the container's writable layer and records. Refuses a running
    /// container; a container already gone is fine.
    pub fn delete(&self, store: &Store, id: &str) -> Result<(), ContainerError> {
        let dirs = self.dirs(id)?;
        self.settle_lost(id)?;
        check(id, dirs.state().status()?, Action::Delete)?;
        if let Some(cg) = self.plan(id)?.and_then(|p| p.cgroup) {
            self.kill_leftovers(id)?;
            timed("remove_container_cgroup", || remove_cgroup(&cg))?;
        }
        timed(
            "destroy_container_layer",
            || -> Result<(), ContainerError> {
                dirs.layer().destroy()?;
                crate::sys::mount::unmount_under(&dirs.data).map_err(RootfsError::from)?;
                remove_tree(&dirs.data)?;
                Ok(remove_tree(&dirs.run)?)
            },
        )?;
        timed("remove_container_record", || {
            store.db().remove_container(id)
        })?;
        Ok(())
    }
}

impl ContainerError {
    pub fn from_mount(e: crate::sys::mount::MountError) -> Self {
        ContainerError::Rootfs(RootfsError::Mount(e))
    }
}

/// Namespaces of a running process, as `inspect` shows them (`net:[4026532]`).
pub fn namespace_ids(pid: i32) -> Vec<(String, String)> {
    ["mnt", "pid", "net", "ipc", "uts", "cgroup"]
        .iter()
        .filter_map(|kind| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
            Some((kind.to_string(), link.display().to_string()))
        })
        .collect()
}

/// Removes a cgroup, waiting briefly for the kernel to let go of processes just killed.
fn remove_cgroup(cg: &crate::runtime::isolation::cgroup::Cgroup) -> Result<(), ContainerError> {
    let mut attempt = 0;
    loop {
        match cg.remove() {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 100 => {
                let _ = e;
                attempt += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
