//! exec: `layerlet exec` re-executed as a child in a process group of its own (it forks
//! and joins the container's namespaces, which the agent's threaded process must not do),
//! with the client's argv as it came (no shell). Without a terminal its streams are pipes;
//! with one, the agent holds the pty's master (so it can resize it) and the child is told
//! that its stdin is the terminal to give the command.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use tokio::process::Command;

use super::pty;
use crate::kubelet::node::{ByteReader, ByteWriter, NodeError, Session, StreamOptions};
use crate::runtime::container::Runtime;

fn io_err(what: &str) -> impl Fn(std::io::Error) -> NodeError + '_ {
    move |source| NodeError::Io {
        what: what.to_string(),
        source,
    }
}

pub fn exec(
    rt: &Runtime,
    id: &str,
    argv: &[String],
    opts: &StreamOptions,
) -> Result<Session, NodeError> {
    let mut cmd = Command::new(&rt.exe);
    cmd.arg("--root")
        .arg(rt.layout.root())
        .arg("--run-root")
        .arg(rt.layout.run_root())
        .args(["--log-level", "error", "exec"]);
    if opts.stdin {
        cmd.arg("--interactive");
    }
    let mut master = None;
    if opts.tty {
        cmd.arg("--stdin-tty");
        let pair = nix::pty::openpty(None, None).map_err(|e| NodeError::Io {
            what: "open a pseudo-terminal".into(),
            source: e.into(),
        })?;
        let slave = std::fs::File::from(pair.slave);
        let dup = |f: &std::fs::File| f.try_clone().map_err(io_err("duplicate the terminal"));
        cmd.stdin(dup(&slave)?).stdout(dup(&slave)?).stderr(slave);
        master = Some(pty::Master::new(pair.master).map_err(io_err("set up the terminal"))?);
    } else {
        let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        cmd.stdin(pipe(opts.stdin))
            .stdout(pipe(opts.stdout))
            .stderr(pipe(opts.stderr));
    }
    cmd.arg(id).arg("--").args(argv).process_group(0);
    let mut child = cmd.spawn().map_err(io_err("start layerlet exec"))?;
    // Our copies of the slave are gone with `cmd`; the master sees EOF when the command's are.
    drop(cmd);
    let pid = child.id().map(|p| p as i32);
    let (stdin, stdout, stderr, resize): (
        Option<ByteWriter>,
        Option<ByteReader>,
        Option<ByteReader>,
        _,
    ) = match master {
        Some(m) => (
            opts.stdin
                .then(|| Box::new(pty::Writer(m.clone())) as ByteWriter),
            Some(Box::new(pty::Reader(m.clone())) as ByteReader),
            None,
            Some(Box::new(pty::WindowSize(m)) as Box<dyn crate::kubelet::node::Resize>),
        ),
        None => (
            child.stdin.take().map(|s| Box::new(s) as ByteWriter),
            child.stdout.take().map(|s| Box::new(s) as ByteReader),
            child.stderr.take().map(|s| Box::new(s) as ByteReader),
            None,
        ),
    };
    let exit = Box::pin(async move {
        let status = child
            .wait()
            .await
            .map_err(io_err("wait for layerlet exec"))?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    });
    let kill = Box::new(move || {
        if let Some(pid) = pid {
            // The whole group: `layerlet exec`, its forks and a command without a terminal.
            // SAFETY: kill(2) of the process group we created; not yet reaped, so not reused.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    });
    Ok(Session {
        stdin,
        stdout,
        stderr,
        resize,
        exit,
        kill,
    })
}
