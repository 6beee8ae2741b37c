//! ps, inspect, diff, logs, stop, rm: pods and containers from the command line.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use layerlet::image::report::human_size;
use layerlet::runtime::container::namespace_ids;
use layerlet::runtime::logs::{join_partial, read_all, Stream};
use layerlet::runtime::pods::{find_container, find_pod, pod_containers, remove_pod, stop_pod};
use layerlet::runtime::state::Status;
use layerlet::runtime::storage::rootfs::diff;
use layerlet::sys::fs::apparent_size;

use super::context::{node_runtime, open_store, Context};
use super::output::{print_json, print_table, Output};

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show exited and created containers too.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    /// [NAMESPACE/]POD[/CONTAINER] or a container ID prefix.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub name: String,
    /// Keep printing as the container writes.
    #[arg(short, long)]
    pub follow: bool,
    /// The previous instance of a restarted container.
    #[arg(short, long)]
    pub previous: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// [NAMESPACE/]POD
    pub pods: Vec<String>,
    /// Grace period in seconds (default: the pod's terminationGracePeriodSeconds).
    #[arg(short, long)]
    pub time: Option<u64>,
}

#[derive(serde::Serialize)]
struct PsRow {
    namespace: String,
    pod: String,
    container: String,
    id: String,
    state: String,
    exit_code: Option<i32>,
    image: String,
    cow_bytes: u64,
    restarts: u32,
    created_at: i64,
    /// The pod's addresses from CNI; empty without a pod network.
    pod_ips: Vec<String>,
}

fn pod_ips_of(rt: &layerlet::runtime::container::Runtime, uid: &str) -> Vec<String> {
    rt.layout
        .sandbox_dir(uid)
        .map(|dir| layerlet::runtime::sandbox::pod_ips(&dir))
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn age(created_at: i64) -> String {
    let secs = (layerlet::time::unix_secs_now() - created_at).max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub fn ps(ctx: &Context, args: PsArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    let db = store.db();
    let pods = db.pods()?;
    let containers = db.containers()?;
    drop(db);
    let mut rows = Vec::new();
    for pod in &pods {
        let mut names: Vec<&str> = containers
            .iter()
            .filter(|c| c.pod_uid == pod.uid)
            .map(|c| c.name.as_str())
            .collect();
        names.dedup();
        for name in names {
            let Some(latest) = containers
                .iter()
                .filter(|c| c.pod_uid == pod.uid && c.name == name)
                .max_by_key(|c| c.attempt)
            else {
                continue;
            };
            let state = rt.status(&latest.id)?;
            if !args.all && state != Status::Running {
                continue;
            }
            let exited = rt.dirs(&latest.id)?.state().exited()?;
            rows.push(PsRow {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                container: name.to_string(),
                id: latest.id.clone(),
                state: state.to_string(),
                exit_code: exited.as_ref().map(|e| e.exit_code),
                image: latest.image_ref.clone(),
                cow_bytes: apparent_size(&rt.dirs(&latest.id)?.layer().upper).unwrap_or(0),
                restarts: latest.attempt,
                created_at: latest.created_at,
                pod_ips: pod_ips_of(&rt, &pod.uid),
            });
        }
    }
    if ctx.output == Output::Json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("{}/{}", r.namespace, r.pod),
                r.container.clone(),
                r.id[..12].to_string(),
                match r.exit_code {
                    Some(code) => format!("exited ({code})"),
                    None => r.state.clone(),
                },
                r.image.clone(),
                human_size(r.cow_bytes),
                r.restarts.to_string(),
                age(r.created_at),
                if r.pod_ips.is_empty() {
                    "-".to_string()
                } else {
                    r.pod_ips.join(",")
                },
            ]
        })
        .collect();
    print_table(
        &[
            "POD",
            "CONTAINER",
            "ID",
            "STATE",
            "IMAGE",
            "COW",
            "RESTARTS",
            "AGE",
            "POD IP",
        ],
        &table,
    );
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(ctx: &Context, args: NameArg) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    let (pod, c) = find_container(&store.db(), &args.name)?;
    let dirs = rt.dirs(&c.id)?;
    let state = dirs.state();
    let started = state.started()?;
    let exited = state.exited()?;
    let status = state.status()?;
    let plan = rt.plan(&c.id)?;
    let layer = dirs.layer();
    let chain = store.db().image_chain(&c.image)?;
    let layers = store.db().layers()?;
    let rootfs_layers: Vec<String> = chain
        .iter()
        .filter_map(|ch| layers.iter().find(|l| &l.chain_id == ch))
        .map(|l| l.diff_id.to_string())
        .collect();
    let lower: Vec<String> = layer
        .lowerdirs(&store.image_lowerdirs(&c.image)?)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let namespaces: serde_json::Map<String, serde_json::Value> = match (&started, status) {
        (Some(s), Status::Running) => namespace_ids(s.pid)
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect(),
        _ => Default::default(),
    };
    let value = serde_json::json!({
        "Id": c.id,
        "Name": c.name,
        "Pod": format!("{}/{}", pod.namespace, pod.name),
        "PodUID": pod.uid,
        "PodIPs": pod_ips_of(&rt, &pod.uid),
        "Owner": pod.owner,
        "Attempt": c.attempt,
        "Image": c.image_ref,
        "ImageDigest": c.image,
        "RootFS": {"Type": "layers", "Layers": rootfs_layers},
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": lower.join(":"),
            "UpperDir": layer.upper,
            "WorkDir": layer.work,
            "MergedDir": layer.merged,
        }},
        "State": {
            "Status": status,
            "Pid": started.as_ref().filter(|_| status == Status::Running).map(|s| s.pid),
            "StartedAt": started.as_ref().map(|s| s.started_at.clone()),
            "FinishedAt": exited.as_ref().map(|e| e.finished_at.clone()),
            "ExitCode": exited.as_ref().map(|e| e.exit_code),
            "Reason": exited.as_ref().map(|e| e.reason.clone()),
            "Message": exited.as_ref().and_then(|e| e.message.clone()),
        },
        "Mounts": plan.as_ref().map(|p| p.mounts.clone()),
        "Namespaces": namespaces,
        "Config": plan.as_ref().map(|p| serde_json::json!({
            "Args": p.args, "Env": p.env, "WorkingDir": p.cwd, "User": format!("{}:{}", p.uid, p.gid),
            "AdditionalGids": p.additional_gids, "Hostname": p.hostname, "ReadOnlyRootfs": p.read_only_rootfs,
            "StopSignal": p.stop_signal,
        })),
        "Security": plan.as_ref().map(|p| serde_json::json!({
            "User": format!("{}:{}", p.uid, p.gid),
            "Groups": p.additional_gids,
            "Privileged": p.security.privileged,
            "Capabilities": if p.uid == 0 { p.security.capabilities.clone() } else { Vec::new() },
            "BoundingCapabilities": p.security.capabilities,
            "NoNewPrivileges": p.security.no_new_privileges,
            "Seccomp": p.security.seccomp.to_string(),
            "MaskedPaths": p.security.masked_paths,
            "ReadonlyPaths": p.security.readonly_paths,
            "ReadOnlyRootfs": p.read_only_rootfs,
        })),
        "LogPath": dirs.log(),
    });
    print_json(&value)?;
    Ok(ExitCode::SUCCESS)
}

pub fn diff_cmd(ctx: &Context, args: NameArg) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    let (_, c) = find_container(&store.db(), &args.name)?;
    let layer = rt.dirs(&c.id)?.layer();
    let changes = diff(
        &layer.upper,
        &layer.lowerdirs(&store.image_lowerdirs(&c.image)?),
    )?;
    if ctx.output == Output::Json {
        print_json(&changes)?;
    } else {
        for change in changes {
            println!("{} {}", change.kind.letter(), change.path);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn logs(ctx: &Context, args: LogsArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    let (pod, mut c) = find_container(&store.db(), &args.name)?;
    if args.previous {
        c = pod_containers(&store.db(), &pod.uid)?
            .into_iter()
            .filter(|x| x.name == c.name && x.attempt < c.attempt)
            .max_by_key(|x| x.attempt)
            .with_context(|| format!("container {} has no previous instance", args.name))?;
    }
    let path = rt.dirs(&c.id)?.log();
    let mut printed = 0usize;
    loop {
        let records = if path.exists() {
            read_all(&path)?
        } else {
            Vec::new()
        };
        let lines = join_partial(&records);
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for (stream, line) in lines.iter().skip(printed) {
            match stream {
                Stream::Stdout => {
                    out.write_all(line)?;
                    out.write_all(b"\n")?;
                }
                Stream::Stderr => {
                    err.write_all(line)?;
                    err.write_all(b"\n")?;
                }
            }
        }
        out.flush()?;
        printed = lines.len().max(printed);
        if !args.follow || rt.status(&c.id)? != Status::Running {
            if args.follow {
                // One last read after the exit, for lines written just before it.
                let lines = join_partial(&if path.exists() {
                    read_all(&path)?
                } else {
                    Vec::new()
                });
                for (stream, line) in lines.iter().skip(printed) {
                    let sink: &mut dyn Write = match stream {
                        Stream::Stdout => &mut out,
                        Stream::Stderr => &mut err,
                    };
                    sink.write_all(line)?;
                    sink.write_all(b"\n")?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        drop(out);
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn stop(ctx: &Context, args: StopArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    for name in &args.pods {
        let pod = match find_pod(&store.db(), name) {
            Ok(p) => p,
            Err(layerlet::runtime::pods::PodError::UnknownPod(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let grace = match args.time {
            Some(t) => Duration::from_secs(t),
            None => layerlet::runtime::pods::pod_spec(&pod)?.termination_grace_period,
        };
        stop_pod(&rt, &store, &pod, grace)?;
        println!("{}/{}", pod.namespace, pod.name);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn rm(ctx: &Context, args: StopArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    for name in &args.pods {
        let pod = match find_pod(&store.db(), name) {
            Ok(p) => p,
            Err(layerlet::runtime::pods::PodError::UnknownPod(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        if let Some(t) = args.time {
            stop_pod(&rt, &store, &pod, Duration::from_secs(t))?;
        }
        remove_pod(&rt, &store, &pod)?;
        println!("{}/{}", pod.namespace, pod.name);
    }
    Ok(ExitCode::SUCCESS)
}
