//! run, ps, inspect, diff, logs, stop, rm: pods and containers from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use layerlet::image::digest::Digest;
use layerlet::image::pull::{pull as pull_image, PullOptions};
use layerlet::image::registry::RegistryOptions;
use layerlet::image::report::human_size;
use layerlet::image::store::{Store, StoreOptions};
use layerlet::pod::objects::ConfigObjects;
use layerlet::pod::spec::{ContainerSpec, PodSpec, PullPolicy, RestartPolicy};
use layerlet::runtime::container::{namespace_ids, Runtime};
use layerlet::runtime::logs::{join_partial, read_all, Stream};
use layerlet::runtime::pods::{
    create_pod, find_container, find_pod, pod_containers, remove_pod, stop_pod,
};
use layerlet::runtime::records::ContainerRecord;
use layerlet::runtime::sandbox::Sandbox;
use layerlet::runtime::state::Status;
use layerlet::runtime::storage::projected::sync_pod;
use layerlet::runtime::storage::rootfs::diff;
use layerlet::runtime::storage::volumes::PodVolumes;
use layerlet::sys::fs::apparent_size;

use super::output::{print_json, print_table, Output};
use super::{runtime as tokio_runtime, Context};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pod YAML (one Pod).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Remove the pod and everything it left once it finishes.
    #[arg(long)]
    pub rm: bool,
    /// Start the pod and return (restarts need the agent).
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    #[arg(long, value_name = "PATH")]
    pub auth_file: Option<PathBuf>,
}

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

pub fn node_runtime(ctx: &Context) -> anyhow::Result<Runtime> {
    Ok(Runtime {
        root: ctx.root.clone(),
        run_root: ctx.run_root.clone(),
        exe: layerlet::sys::exe::sealed_exe()?,
        node_name: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into()),
        cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        pids_limit: ctx.pids_limit,
    })
}

fn open_store(ctx: &Context) -> anyhow::Result<Store> {
    Ok(Store::open(&ctx.root, StoreOptions::default())?)
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_interrupts() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Resolves each container's image as its pull policy says, pulling where needed.
fn ensure_images(store: &Store, pod: &PodSpec, args: &RunArgs) -> anyhow::Result<Vec<Digest>> {
    let options = PullOptions {
        registry: RegistryOptions {
            insecure: args.insecure_registries.clone(),
            auth_file: args.auth_file.clone(),
        },
        platform: None,
    };
    let mut runtime = None;
    let mut digests = Vec::new();
    for c in pod.all_containers() {
        let present = store.resolve(&c.image).ok();
        let digest = match (c.image_pull_policy, present) {
            (PullPolicy::Never, Some(d)) | (PullPolicy::IfNotPresent, Some(d)) => d,
            (PullPolicy::Never, None) => anyhow::bail!(
                "pod {} container {}: image {} is not present and imagePullPolicy is Never; pull or import it first",
                pod.key(),
                c.name,
                c.image
            ),
            _ => {
                if runtime.is_none() {
                    runtime = Some(tokio_runtime()?);
                }
                let rt = runtime.as_ref().context("runtime")?;
                let installed = rt
                    .block_on(pull_image(store, &c.image, &options))
                    .with_context(|| format!("pod {} container {}: pull {}", pod.key(), c.name, c.image))?;
                installed.digest
            }
        };
        digests.push(digest);
    }
    Ok(digests)
}

const NO_OBJECTS: &str = "`layerlet run` has no ConfigMaps or Secrets; run pods that need them with `layerlet agent`, next to the objects in its manifest directory";

/// What every container of one pod is launched with.
struct PodContext<'a> {
    rt: &'a Runtime,
    store: &'a Store,
    pod: &'a PodSpec,
    sandbox: &'a Sandbox,
    volumes: &'a PodVolumes,
}

/// One container instance started (or recorded as failed to start).
fn launch(
    ctx: &PodContext<'_>,
    c: &ContainerSpec,
    image: &Digest,
    attempt: u32,
) -> anyhow::Result<ContainerRecord> {
    let rt = ctx.rt;
    let node = layerlet::runtime::node::node_info(&rt.node_name, &rt.root);
    let env = layerlet::pod::env::resolve_env(ctx.pod, c, &ConfigObjects::default(), &node)
        .with_context(|| format!("pod {}: {NO_OBJECTS}", ctx.pod.key()))?;
    let created = rt.create(
        ctx.store,
        ctx.pod,
        ctx.sandbox,
        ctx.volumes,
        c,
        image,
        attempt,
        &env.vars,
    )?;
    if attempt == 0 {
        for w in &created.warnings {
            eprintln!("warning: {w}");
        }
    }
    let record = created.record;
    if let Err(e) = rt.start(&record.id) {
        eprintln!("error: {e}");
    }
    Ok(record)
}

fn exit_of(rt: &Runtime, id: &str) -> Option<i32> {
    rt.dirs(id)
        .state()
        .exited()
        .ok()
        .flatten()
        .map(|e| e.exit_code)
}

/// Kubelet's CrashLoopBackOff: 10 s doubling to 5 minutes.
/// How long the foreground loop sleeps between looks at exits and logs: 1 ms while the pod
/// is young (a short-lived container's exit is seen at once), 5 ms after.
fn poll_pause(started: Instant) -> Duration {
    if started.elapsed() < Duration::from_millis(500) {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(5)
    }
}

fn backoff(restarts: u32) -> Duration {
    Duration::from_secs((10u64 << restarts.min(5)).min(300))
}

pub fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("read {}", args.file.display()))?;
    let pod = layerlet::pod::pod_from_yaml_str(&text)
        .with_context(|| format!("{}", args.file.display()))?;
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    let images = ensure_images(&store, &pod, &args)?;
    catch_interrupts();
    let (sandbox, volumes) = create_pod(&rt, &store, &pod, "cli")?;
    let record = find_pod(&store.db(), &pod.key())?;
    // downwardAPI volumes work here; configMap and secret ones only when optional.
    let node = layerlet::runtime::node::node_info(&rt.node_name, &rt.root);
    if let Err(e) = sync_pod(&pod, &volumes.sources, &ConfigObjects::default(), &node) {
        let _ = remove_pod(&rt, &store, &record);
        return Err(anyhow::Error::new(e).context(NO_OBJECTS));
    }
    let outcome = run_pod(&rt, &store, &pod, &sandbox, &volumes, &images, args.detach);
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            if args.rm {
                let _ = remove_pod(&rt, &store, &record);
            }
            return Err(e);
        }
    };
    if args.detach {
        println!("{}", pod.key());
        return Ok(ExitCode::SUCCESS);
    }
    if args.rm {
        remove_pod(&rt, &store, &record)?;
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Runs init containers to completion, starts the app containers, and in the foreground
/// follows the restart policy until the pod finishes or is interrupted. Returns the exit
/// code of the first failed container, or 0.
fn run_pod(
    rt: &Runtime,
    store: &Store,
    pod: &PodSpec,
    sandbox: &Sandbox,
    volumes: &PodVolumes,
    images: &[Digest],
    detach: bool,
) -> anyhow::Result<i32> {
    let grace = pod.termination_grace_period;
    let started = Instant::now();
    let pctx = PodContext {
        rt,
        store,
        pod,
        sandbox,
        volumes,
    };
    let mut image_of = images.iter();
    for init in &pod.init_containers {
        let image = image_of.next().context("image list")?;
        let mut attempt = 0;
        loop {
            let record = launch(&pctx, init, image, attempt)?;
            let code = loop {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    rt.stop(&record.id, grace)?;
                    return Ok(130);
                }
                if let Some(code) = exit_of(rt, &record.id) {
                    break code;
                }
                std::thread::sleep(poll_pause(started));
            };
            if code == 0 {
                break;
            }
            if pod.restart_policy == RestartPolicy::Never {
                eprintln!("init container {} failed with exit code {code}", init.name);
                return Ok(code);
            }
            attempt += 1;
            wait_or_interrupt(backoff(attempt - 1));
        }
    }
    let mut running: Vec<(usize, ContainerRecord, Option<Instant>)> = Vec::new();
    for (i, c) in pod.containers.iter().enumerate() {
        let image = image_of.next().context("image list")?;
        running.push((i, launch(&pctx, c, image, 0)?, None));
    }
    if detach {
        // A container that could not start fails a detached run too.
        for (_, record, _) in &running {
            if let Some(exited) = rt.dirs(&record.id).state().exited()? {
                if exited.reason == "StartError" {
                    anyhow::bail!(
                        "pod {} container {} failed to start: {}",
                        pod.key(),
                        record.name,
                        exited.message.unwrap_or_default()
                    );
                }
            }
        }
        return Ok(0);
    }
    let app_images: Vec<Digest> = images[pod.init_containers.len()..].to_vec();
    let mut failed: Option<i32> = None;
    let mut followers: Vec<(String, LogFollower)> = running
        .iter()
        .map(|(_, r, _)| (r.id.clone(), LogFollower::new(rt.dirs(&r.id).log())))
        .collect();
    let mut last_pump = Instant::now();
    loop {
        let due = last_pump.elapsed() >= Duration::from_millis(50);
        for (id, follower) in followers.iter_mut() {
            if follower.done {
                continue;
            }
            let exited = exit_of(rt, id).is_some();
            if due || exited {
                follower.pump();
                // The monitor writes the exit record after the last log line: one final read.
                follower.done = exited;
            }
        }
        if due {
            last_pump = Instant::now();
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!(
                "stopping pod {} (grace period {}s)",
                pod.key(),
                grace.as_secs()
            );
            let record = find_pod(&store.db(), &pod.key())?;
            stop_pod(rt, store, &record, grace)?;
            return Ok(130);
        }
        let mut done = 0;
        for (i, record, restart_at) in running.iter_mut() {
            let Some(code) = exit_of(rt, &record.id) else {
                continue;
            };
            let restart = match pod.restart_policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => code != 0,
                RestartPolicy::Never => false,
            };
            if !restart {
                if code != 0 && failed.is_none() {
                    failed = Some(code);
                }
                done += 1;
                continue;
            }
            let at = *restart_at.get_or_insert_with(|| Instant::now() + backoff(record.attempt));
            if Instant::now() >= at {
                let c = &pod.containers[*i];
                // Keep the previous instance (for `logs --previous`), drop older ones.
                let previous = pod_containers(&store.db(), &pod.uid)?;
                for old in previous {
                    if old.name == c.name
                        && old.attempt + 1 < record.attempt + 1
                        && old.id != record.id
                    {
                        rt.delete(store, &old.id)?;
                    }
                }
                *record = launch(&pctx, c, &app_images[*i], record.attempt + 1)?;
                *restart_at = None;
            }
        }
        if done == running.len() {
            // The exits may have been seen after this round's reads: read what is left.
            for (_, follower) in followers.iter_mut().filter(|(_, f)| !f.done) {
                follower.pump();
            }
            return Ok(failed.unwrap_or(0));
        }
        std::thread::sleep(poll_pause(started));
    }
}

/// Streams what a container writes to its log onto our stdout and stderr, as `docker run`
/// attaches: reads the CRI file from where it stopped last time.
struct LogFollower {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
    done: bool,
}

impl LogFollower {
    fn new(path: PathBuf) -> Self {
        LogFollower {
            path,
            offset: 0,
            pending: Vec::new(),
            done: false,
        }
    }

    fn pump(&mut self) {
        use std::io::{Read, Seek, SeekFrom, Write};
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            self.offset = 0; // rotated
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut chunk = Vec::new();
        if let Ok(n) = file.read_to_end(&mut chunk) {
            self.offset += n as u64;
        }
        self.pending.extend_from_slice(&chunk);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(record) = layerlet::runtime::logs::parse_record(&line[..line.len() - 1]) {
                let newline: &[u8] = if record.partial { b"" } else { b"\n" };
                let _ = match record.stream {
                    Stream::Stdout => {
                        std::io::stdout().write_all(&[record.text.as_slice(), newline].concat())
                    }
                    Stream::Stderr => {
                        std::io::stderr().write_all(&[record.text.as_slice(), newline].concat())
                    }
                };
            }
        }
        let _ = std::io::stdout().flush();
    }
}

fn wait_or_interrupt(duration: Duration) {
    let end = Instant::now() + duration;
    while Instant::now() < end && !INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
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
            let exited = rt.dirs(&latest.id).state().exited()?;
            rows.push(PsRow {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                container: name.to_string(),
                id: latest.id.clone(),
                state: state.to_string(),
                exit_code: exited.as_ref().map(|e| e.exit_code),
                image: latest.image_ref.clone(),
                cow_bytes: apparent_size(&rt.dirs(&latest.id).layer().upper).unwrap_or(0),
                restarts: latest.attempt,
                created_at: latest.created_at,
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
        ],
        &table,
    );
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(ctx: &Context, args: NameArg) -> anyhow::Result<ExitCode> {
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    let (pod, c) = find_container(&store.db(), &args.name)?;
    let dirs = rt.dirs(&c.id);
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
    let layer = rt.dirs(&c.id).layer();
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
    let path = rt.dirs(&c.id).log();
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

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Standard input is already the terminal to give the command (the kubelet API's exec,
    /// which holds the terminal's other side).
    #[arg(long, hide = true, conflicts_with = "tty")]
    pub stdin_tty: bool,
    /// [NAMESPACE/]POD[/CONTAINER] or a container ID prefix.
    pub name: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs before any thread starts (the exec helper forks and joins namespaces).
pub fn exec(ctx: &Context, args: ExecArgs) -> anyhow::Result<ExitCode> {
    use layerlet::runtime::process::exec::{exec_in, spawn_in, wait_code, ExecStdio};
    use layerlet::runtime::state::{check, Action};
    let store = open_store(ctx)?;
    let rt = node_runtime(ctx)?;
    let (_, c) = find_container(&store.db(), &args.name)?;
    drop(store);
    let state = rt.dirs(&c.id).state();
    check(&args.name, state.status()?, Action::Exec)?;
    let started = state.started()?.context("container has no start record")?;
    let process =
        layerlet::sys::process::PidFd::open_checked(started.pid, started.pid_start_ticks)?
            .with_context(|| format!("container {} is no longer running", args.name))?;
    let plan = rt.plan(&c.id)?.context("container has no plan")?;
    if args.stdin_tty {
        let terminal = std::io::stdin().as_fd().try_clone_to_owned()?;
        let child = spawn_in(
            process.pid(),
            &plan,
            &args.command,
            ExecStdio::Tty(terminal),
        )?;
        let code = wait_code(child)?;
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    if !args.tty {
        let stdio = if args.interactive {
            ExecStdio::Inherit
        } else {
            ExecStdio::NoStdin
        };
        let code = exec_in(process.pid(), &plan, &args.command, stdio)?;
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    let pty = nix::pty::openpty(None, None)?;
    copy_window_size(pty.master.as_raw_fd());
    let child = spawn_in(
        process.pid(),
        &plan,
        &args.command,
        ExecStdio::Tty(pty.slave),
    )?;
    let raw = RawTerminal::enter();
    relay(pty.master, args.interactive);
    drop(raw);
    let code = wait_code(child)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

fn copy_window_size(master: i32) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize struct.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Puts our terminal in raw mode while the session runs; restores it on drop.
struct RawTerminal(Option<nix::sys::termios::Termios>);

impl RawTerminal {
    fn enter() -> RawTerminal {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawTerminal(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawTerminal(Some(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// Copies our stdin to the pty and the pty to our stdout until the session ends.
fn relay(master: OwnedFd, interactive: bool) {
    let mut buf = [0u8; 8192];
    let mut stdin_open = interactive;
    loop {
        let mut fds = vec![libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if stdin_open {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: valid pollfd array.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            // SAFETY: reading into our buffer from the master we own.
            let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return; // EIO: the slave side closed, the session is over
            }
            // SAFETY: writing what we read to stdout.
            unsafe { libc::write(1, buf.as_ptr().cast(), n as usize) };
        }
        if stdin_open && fds[1].revents != 0 {
            // SAFETY: reading into our buffer from stdin.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                stdin_open = false;
                // End of input: send the terminal's EOF character.
                // SAFETY: writing one byte to the master.
                unsafe { libc::write(master.as_raw_fd(), [4u8].as_ptr().cast(), 1) };
            } else {
                // SAFETY: writing what we read to the master.
                unsafe { libc::write(master.as_raw_fd(), buf.as_ptr().cast(), n as usize) };
            }
        }
    }
}
