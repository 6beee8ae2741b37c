//! `layerlet run`: one pod from YAML, like `podman kube play`. The pod is driven by the
//! agent's planner and executor ([`ForegroundPod`]); this file keeps the arguments, the
//! log following and what is printed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use layerlet::agent::executor::{
    Executor, Host, ImageError, Images, PullRuntime, StepError, StepEvent,
};
use layerlet::agent::foreground::host::{OnEvent, PlainHost};
use layerlet::agent::foreground::{resolve_images, ForegroundPod};
use layerlet::agent::plan::{Backoff, Ending};
use layerlet::image::pull::PullOptions;
use layerlet::image::registry::RegistryOptions;
use layerlet::phases::timed;
use layerlet::pod::spec::PodSpec;
use layerlet::runtime::state::Status;

use super::context::{node_runtime, open_store, Context};
use super::follow::LogFollower;

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
    /// First CrashLoopBackOff delay in seconds, doubling to five minutes (kubelet's 10 s),
    /// as the agent's --backoff-seconds.
    #[arg(long, default_value_t = 10, hide = true)]
    pub backoff_seconds: u64,
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

const NO_OBJECTS: &str = "`layerlet run` has no ConfigMaps or Secrets; run pods that need them with `layerlet agent`, next to the objects in its manifest directory";

/// How long the foreground loop sleeps between looks at exits and logs: 1 ms while the pod
/// is young (a short-lived container's exit is seen at once), 5 ms after.
fn poll_pause(started: Instant) -> Duration {
    if started.elapsed() < Duration::from_millis(500) {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(5)
    }
}

/// What the executor tells of the pod: warnings (once each) and start errors.
fn print_event() -> OnEvent {
    let warned = Mutex::new(HashSet::new());
    Box::new(move |_, event| match event {
        StepEvent::VolumeWithoutMount { warning } => {
            let mut warned = warned.lock().unwrap_or_else(|p| p.into_inner());
            if warned.insert(warning.clone()) {
                eprintln!("warning: {warning}");
            }
        }
        StepEvent::StartFailed { message } => eprintln!("error: {message}"),
        _ => {}
    })
}

fn image_error(pod: &PodSpec, container: &str, error: ImageError) -> anyhow::Error {
    let at = format!("pod {} container {container}", pod.key());
    match error {
        ImageError::NotPresent { image } => anyhow::anyhow!(
            "{at}: image {image} is not present and imagePullPolicy is Never; pull or import it first"
        ),
        ImageError::Pull { image, source } => {
            anyhow::Error::new(*source).context(format!("{at}: pull {image}"))
        }
        e @ ImageError::Runtime { .. } => e.into(),
    }
}

pub fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<ExitCode> {
    let pod = timed("read_pod", || -> anyhow::Result<PodSpec> {
        let text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("read {}", args.file.display()))?;
        layerlet::pod::pod_from_yaml_str(&text).with_context(|| format!("{}", args.file.display()))
    })?;
    let store = Arc::new(timed("open_store", || open_store(ctx))?);
    let rt = timed("node_runtime", || node_runtime(ctx))?;
    let host: Arc<dyn Host> = Arc::new(PlainHost::new(&rt, print_event()));
    let options = PullOptions {
        registry: RegistryOptions {
            insecure: args.insecure_registries.clone(),
            auth_file: args.auth_file.clone(),
        },
        platform: None,
    };
    // The tokio runtime is made only if something is pulled.
    let mut images = Images::new(options, PullRuntime::Lazy(OnceLock::new()));
    timed("resolve_images", || {
        resolve_images(&mut images, &store, &*host, &pod)
    })
    .map_err(|(container, e)| image_error(&pod, &container, e))?;
    catch_interrupts();
    let exec = Executor {
        rt,
        store,
        owner: "cli",
        images,
        host,
    };
    let backoff = Backoff {
        initial_ms: args.backoff_seconds.saturating_mul(1000),
        ..Backoff::default()
    };
    let mut runner = ForegroundPod::new(&exec, pod.clone(), backoff);
    let code = match drive(&mut runner, &pod, args.detach) {
        Ok(code) => code,
        Err(e) => return Err(fail(&mut runner, e, args.rm)),
    };
    if args.detach {
        println!("{}", pod.key());
        return Ok(ExitCode::SUCCESS);
    }
    if args.rm {
        timed("remove", || runner.remove())?;
    }
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// A run that failed: the pod goes with `--rm` (and always when its volumes could not be
/// made, which only ConfigMaps and Secrets cause); the error says what to do.
fn fail(runner: &mut ForegroundPod<'_>, error: anyhow::Error, rm: bool) -> anyhow::Error {
    let step = error.downcast::<StepError>();
    if rm || matches!(step, Ok(StepError::Volumes(_))) {
        let _ = runner.remove();
    }
    match step {
        Ok(StepError::Volumes(e)) => anyhow::Error::new(e).context(NO_OBJECTS),
        Ok(StepError::Env { pod, source, .. }) => {
            anyhow::Error::new(*source).context(format!("pod {pod}: {NO_OBJECTS}"))
        }
        Ok(e) => e.into(),
        Err(e) => e,
    }
}

/// Runs the pod until it is over (or, detached, until every app container started once),
/// following the app containers' logs. Returns the exit code: the first failed
/// container's, 130 when interrupted, or 0.
fn drive(runner: &mut ForegroundPod<'_>, pod: &PodSpec, detach: bool) -> anyhow::Result<i32> {
    let started = Instant::now();
    let mut running_since = None;
    let mut followers: Vec<(String, LogFollower)> = Vec::new();
    let mut last_pump = Instant::now();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) && !runner.interrupted() {
            if runner.observed().is_some() {
                eprintln!(
                    "stopping pod {} (grace period {}s)",
                    pod.key(),
                    pod.termination_grace_period.as_secs()
                );
            }
            runner.interrupt();
        }
        runner.round()?;
        if detach && runner.started() {
            return started_cleanly(runner, pod);
        }
        if !detach {
            follow_new(runner, pod, &mut followers);
            let due = last_pump.elapsed() >= Duration::from_millis(50);
            pump(runner, &mut followers, due);
            if due {
                last_pump = Instant::now();
            }
        }
        if runner.started() && running_since.is_none() {
            running_since = Some(Instant::now());
        }
        if let Some(end) = runner.ending() {
            if let Some(since) = running_since {
                layerlet::phases::since("wait_exit", since);
            }
            // The exits may have been seen after this round's reads: read what is left.
            for (_, follower) in followers.iter_mut().filter(|(_, f)| !f.done) {
                follower.pump();
            }
            return Ok(match end {
                Ending::Stopped => 130,
                Ending::InitFailed { name, exit_code } => {
                    eprintln!("init container {name} failed with exit code {exit_code}");
                    exit_code
                }
                Ending::Exited { failed } => failed.map(|(_, code)| code).unwrap_or(0),
            });
        }
        std::thread::sleep(poll_pause(started));
    }
}

/// A detached run fails when a container could not start.
fn started_cleanly(runner: &ForegroundPod<'_>, pod: &PodSpec) -> anyhow::Result<i32> {
    let Some(observed) = runner.observed() else {
        return Ok(0);
    };
    for c in &pod.containers {
        let Some(latest) = observed.latest(&c.name) else {
            continue;
        };
        if let Some(exit) = runner.exit_info(&latest.id) {
            if exit.reason == "StartError" {
                anyhow::bail!(
                    "pod {} container {} failed to start: {}",
                    pod.key(),
                    c.name,
                    exit.message.clone().unwrap_or_default()
                );
            }
        }
    }
    Ok(0)
}

/// Starts following the first instance of each app container, once it is there.
fn follow_new(
    runner: &ForegroundPod<'_>,
    pod: &PodSpec,
    followers: &mut Vec<(String, LogFollower)>,
) {
    let Some(observed) = runner.observed() else {
        return;
    };
    for c in &observed.containers {
        let app = pod.containers.iter().any(|a| a.name == c.name);
        if app && c.attempt == 0 && !followers.iter().any(|(id, _)| *id == c.id) {
            // The ID came from our own records: a path for it always exists.
            if let Ok(log) = runner.log_path(&c.id) {
                followers.push((c.id.clone(), LogFollower::new(log)));
            }
        }
    }
}

/// Prints what the followed containers wrote: every 50 ms (`due`), and once more, for the
/// last time, when one has exited (the monitor writes the exit after the last line).
fn pump(runner: &ForegroundPod<'_>, followers: &mut [(String, LogFollower)], due: bool) {
    let Some(observed) = runner.observed() else {
        return;
    };
    for (id, follower) in followers.iter_mut().filter(|(_, f)| !f.done) {
        let exited = observed
            .containers
            .iter()
            .any(|c| &c.id == id && c.status == Status::Exited);
        if due || exited {
            follower.pump();
            follower.done = exited;
        }
    }
}
