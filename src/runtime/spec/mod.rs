//! The plan of one container: everything its monitor needs to start it, computed purely from
//! the pod spec, the image config and the files read from the image (/etc/passwd,
//! /etc/group). Written as JSON into the container's run directory; printed by `inspect`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod command;
pub mod mounts;

use crate::image::manifest::ImageConfig;
use crate::pod::spec::{ContainerSpec, PodSpec};
use crate::runtime::spec::command::{
    build_env, expand_vars, merge_command, resolve_user, ProcessError, ResolvedUser,
};
use mounts::BindMount;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("pod {pod} container {container}: {source}")]
    Process {
        pod: String,
        container: String,
        #[source]
        source: ProcessError,
    },
    #[error("pod {pod} container {container}: image STOPSIGNAL {value:?} is not a signal name or number")]
    StopSignal {
        pod: String,
        container: String,
        value: String,
    },
    #[error(transparent)]
    Security(#[from] crate::runtime::isolation::security::SecurityError),
    #[error("pod {pod} container {container}: a volume cannot be mounted on {destination}: the runtime owns it")]
    ReservedMount {
        pod: String,
        container: String,
        destination: String,
    },
    #[error("pod {pod} container {container}: workingDir {value:?} must be an absolute path inside the container, not under /proc")]
    WorkingDir {
        pod: String,
        container: String,
        value: String,
    },
}

/// Namespaces the container joins (a path to a pinned namespace) or shares with the host
/// (None). Mount and PID namespaces are always new unless `host_pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePlan {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub host_pid: bool,
}

/// Refuses mounts over what the runtime owns (/proc, /sys, /dev) and paths with `..`.
pub fn check_mount_destinations(
    pod: &PodSpec,
    container: &ContainerSpec,
    mounts: &[BindMount],
) -> Result<(), SpecError> {
    for m in mounts {
        let d = m.destination.trim_end_matches('/');
        let reserved = d.is_empty()
            || d == "/proc"
            || d.starts_with("/proc/")
            || d == "/sys"
            || d.starts_with("/sys/")
            || d == "/dev";
        if reserved || d.split('/').any(|c| c == "..") || !d.starts_with('/') {
            return Err(SpecError::ReservedMount {
                pod: pod.key(),
                container: container.name.clone(),
                destination: m.destination.clone(),
            });
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPlan {
    pub id: String,
    pub pod: String,
    pub name: String,
    /// The mounted overlay (MergedDir).
    pub rootfs: PathBuf,
    pub read_only_rootfs: bool,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub namespaces: NamespacePlan,
    pub mounts: Vec<BindMount>,
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: usize,
    pub stop_signal: i32,
    pub security: crate::runtime::isolation::security::SecurityPlan,
    /// The container's cgroup (created before start, removed on delete).
    pub cgroup: Option<crate::runtime::isolation::cgroup::Cgroup>,
    /// Where the monitor finds the termination message when the container exits.
    #[serde(default)]
    pub termination_message: Option<crate::runtime::storage::termination::TerminationMessage>,
    /// `stdin: true`: stdin is a FIFO in the run directory that stays open (attach writes
    /// to it), not /dev/null.
    #[serde(default)]
    pub stdin: bool,
    /// `tty: true`: stdin, stdout and stderr are a terminal whose other end the monitor
    /// holds (output to the log as stdout, the stdin FIFO's bytes as input).
    #[serde(default)]
    pub tty: bool,
}

/// What the plan needs from outside the pod spec.
pub struct PlanInputs<'a> {
    pub id: String,
    pub rootfs: PathBuf,
    pub image: &'a ImageConfig,
    pub passwd: Option<String>,
    pub group: Option<String>,
    pub namespaces: NamespacePlan,
    pub mounts: Vec<BindMount>,
    pub log_path: PathBuf,
    /// The pod's env for this container (`pod::env::resolve_env`).
    pub pod_env: Vec<(String, String)>,
}

/// Collapses repeated slashes and `.` components (not `..`, which is refused separately).
fn normalise_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Signal numbers by the names images use in STOPSIGNAL.
pub fn parse_signal(value: &str) -> Option<i32> {
    let name = value.trim().to_ascii_uppercase();
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        _ => {
            let rt = name.strip_prefix("RTMIN+")?.parse::<i32>().ok()?;
            libc::SIGRTMIN() + rt
        }
    };
    Some(n)
}

pub fn plan_container(
    pod: &PodSpec,
    container: &ContainerSpec,
    inputs: PlanInputs<'_>,
) -> Result<ContainerPlan, SpecError> {
    let process_err = |source| SpecError::Process {
        pod: pod.key(),
        container: container.name.clone(),
        source,
    };
    let image = inputs.image.config.clone().unwrap_or_default();

    // The pod's variables, resolved from objects and the downward API by `pod::env`;
    // literals are expanded here against what came before.
    let resolved = &inputs.pod_env;
    let env = build_env(
        image.env.as_deref().unwrap_or(&[]),
        resolved,
        Some(&pod.hostname),
    )
    .map_err(process_err)?;
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());

    let command = (!container.command.is_empty()).then_some(container.command.as_slice());
    let args = (!container.args.is_empty()).then_some(container.args.as_slice());
    let merged = merge_command(
        image.entrypoint.as_deref(),
        image.cmd.as_deref(),
        command,
        args,
    )
    .map_err(process_err)?;
    // $(VAR) expansion applies to what the pod wrote, not to the image's own Entrypoint/Cmd.
    let args: Vec<String> = if command.is_some() || args.is_some() {
        merged.iter().map(|a| expand_vars(a, &lookup)).collect()
    } else {
        merged
    };

    let cwd = container
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    // `//proc/self/fd/7` is `/proc/self/fd/7`: checks see the normalised path.
    let cwd = normalise_path(&cwd);
    if !cwd.starts_with('/') {
        return Err(SpecError::WorkingDir {
            pod: pod.key(),
            container: container.name.clone(),
            value: cwd,
        });
    }

    let image_user = image.user.clone().unwrap_or_default();
    let user = user_for(pod, container, &image_user, &inputs).map_err(process_err)?;
    let origin = if container
        .security_context
        .run_as_user
        .or(pod.security_context.run_as_user)
        .is_some()
    {
        ", from runAsUser".to_string()
    } else if image_user.is_empty() {
        ", the image sets no User".to_string()
    } else {
        format!(", from the image's User {image_user:?}")
    };
    let security =
        crate::runtime::isolation::security::plan_security(pod, container, user.uid, &origin)?;
    if cwd.split('/').any(|c| c == "..") || cwd.starts_with("/proc/") || cwd == "/proc" {
        return Err(SpecError::WorkingDir {
            pod: pod.key(),
            container: container.name.clone(),
            value: cwd,
        });
    }
    check_mount_destinations(pod, container, &inputs.mounts)?;
    let mut env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }

    let stop_signal = match image.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        None => libc::SIGTERM,
        Some(s) => parse_signal(s).ok_or_else(|| SpecError::StopSignal {
            pod: pod.key(),
            container: container.name.clone(),
            value: s.to_string(),
        })?,
    };

    Ok(ContainerPlan {
        id: inputs.id,
        pod: pod.key(),
        name: container.name.clone(),
        rootfs: inputs.rootfs,
        read_only_rootfs: container.security_context.read_only_root_filesystem,
        args,
        env,
        cwd,
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids,
        hostname: pod.hostname.clone(),
        namespaces: inputs.namespaces,
        mounts: inputs.mounts,
        log_path: inputs.log_path,
        log_max_bytes: crate::runtime::logs::DEFAULT_MAX_BYTES,
        log_max_files: crate::runtime::logs::DEFAULT_MAX_FILES,
        stop_signal,
        security,
        cgroup: None,
        termination_message: None,
        stdin: container.stdin,
        tty: container.tty,
    })
}

/// The image's `User`, overridden by runAsUser/runAsGroup (container settings win over the
/// pod's), plus the pod's supplemental groups.
fn user_for(
    pod: &PodSpec,
    container: &ContainerSpec,
    image_user: &str,
    inputs: &PlanInputs<'_>,
) -> Result<ResolvedUser, ProcessError> {
    let sc = &container.security_context;
    let ps = &pod.security_context;
    let run_as_user = sc.run_as_user.or(ps.run_as_user);
    let run_as_group = sc.run_as_group.or(ps.run_as_group);
    let spec = match (run_as_user, run_as_group) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        (Some(u), None) => u.to_string(),
        (None, Some(g)) => {
            let name = image_user.split(':').next().unwrap_or("");
            format!("{}:{g}", if name.is_empty() { "0" } else { name })
        }
        (None, None) => image_user.to_string(),
    };
    let mut user = resolve_user(&spec, inputs.passwd.as_deref(), inputs.group.as_deref())?;
    for g in &ps.supplemental_groups {
        if !user.additional_gids.contains(g) {
            user.additional_gids.push(*g);
        }
    }
    if let Some(fs_group) = ps.fs_group {
        if !user.additional_gids.contains(&fs_group) {
            user.additional_gids.push(fs_group);
        }
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::pod_from_yaml_str;

    /// Inputs for the pod's first container, its env resolved as the agent does.
    fn inputs<'a>(image: &'a ImageConfig, pod: &PodSpec) -> PlanInputs<'a> {
        let node = crate::pod::downward::NodeInfo {
            node_name: "node1".into(),
            host_ip: "10.0.0.1".into(),
            cpu_millis: 1000,
            memory: 1 << 30,
            ephemeral_storage: 1 << 30,
        };
        let env = crate::pod::env::resolve_env(
            pod,
            &pod.containers[0],
            &crate::pod::objects::ConfigObjects::default(),
            &node,
            &[],
        )
        .unwrap();
        PlanInputs {
            id: "c1".into(),
            rootfs: "/r".into(),
            image,
            passwd: Some(
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".into(),
            ),
            group: Some("root:x:0:\napp:x:1000:\nextra:x:2000:app\n".into()),
            namespaces: NamespacePlan {
                net: None,
                ipc: None,
                uts: None,
                host_pid: false,
            },
            mounts: vec![],
            log_path: "/l".into(),
            pod_env: env.vars,
        }
    }

    fn image(json: &str) -> ImageConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plan_merges_command_env_user_and_stop_signal() {
        let pod = pod_from_yaml_str(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: shop}}
spec:
  containers:
  - name: main
    image: example/web:1
    args: ["--greet", "$(GREETING)", "$$(GREETING)"]
    env:
    - {name: GREETING, value: "hello $(NAME)"}
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: APP
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
"#,
        )
        .unwrap();
        let img = image(
            r#"{"rootfs":{"diff_ids":[]},"config":{"Entrypoint":["/bin/web"],"Cmd":["--default"],
                "Env":["NAME=world"],"User":"app","WorkingDir":"/srv","StopSignal":"SIGQUIT"}}"#,
        );
        let plan = plan_container(&pod, &pod.containers[0], inputs(&img, &pod)).unwrap();
        assert_eq!(
            plan.args,
            vec!["/bin/web", "--greet", "hello world", "$(GREETING)"]
        );
        assert!(plan.env.contains(&"POD=web".to_string()));
        assert!(plan.env.contains(&"APP=shop".to_string()));
        assert!(
            plan.env.iter().any(|e| e.starts_with("PATH=")),
            "default PATH added"
        );
        assert!(plan.env.contains(&"HOME=/home/app".to_string()));
        assert_eq!((plan.uid, plan.gid), (1000, 1000));
        assert_eq!(plan.additional_gids, vec![2000]);
        assert_eq!(plan.cwd, "/srv");
        assert_eq!(plan.stop_signal, libc::SIGQUIT);
        assert_eq!(plan.hostname, "web");
    }

    #[test]
    fn run_as_user_overrides_the_image_user() {
        let pod = pod_from_yaml_str(
            r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {runAsUser: 1000, supplementalGroups: [5]}
  containers:
  - {name: c, image: x:1, command: ["sh"], securityContext: {runAsGroup: 3000}}
"#,
        )
        .unwrap();
        let img = image(r#"{"rootfs":{"diff_ids":[]},"config":{"User":"root"}}"#);
        let plan = plan_container(&pod, &pod.containers[0], inputs(&img, &pod)).unwrap();
        assert_eq!((plan.uid, plan.gid), (1000, 3000));
        assert!(plan.additional_gids.contains(&5));
    }

    #[test]
    fn stop_signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("quit"), Some(libc::SIGQUIT));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("SIGRTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse_signal("BOGUS"), None);
    }
}
