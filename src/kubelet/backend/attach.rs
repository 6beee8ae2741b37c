//! attach: the container's own output from now on, read from its CRI log as it is written
//! (both streams arrive on stdout); the session ends with the container, with its exit
//! code. A container started with `stdin: true` reads a FIFO in its run directory (with
//! `tty: true` its monitor copies that FIFO into the terminal), and the session's stdin is
//! written there; the FIFO stays open after a session, as kubelet keeps stdin open.
//! Attaching to the stdin of any other container is refused.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::kubelet::logs::{follow, LogOptions};
use crate::kubelet::node::{
    ByteReader, ByteWriter, ContainerRef, NodeError, Session, StreamOptions,
};
use crate::runtime::container::Runtime;
use crate::runtime::state::Status;

pub fn attach(rt: &Runtime, c: &ContainerRef, opts: &StreamOptions) -> Result<Session, NodeError> {
    let stdin = if opts.stdin {
        Some(open_stdin(rt, c)?)
    } else {
        None
    };
    let (tx, rx) = mpsc::channel(8);
    let running = {
        let rt = rt.clone();
        let id = c.id.clone();
        move || rt.status(&id).is_ok_and(|s| s == Status::Running)
    };
    // From this moment, fixed before the session's stdin can flow: the follower's thread
    // may reach the log after the container has answered the first line.
    let log_opts = LogOptions {
        follow: true,
        since: Some(crate::time::format_rfc3339_nano(
            std::time::SystemTime::now(),
        )),
        ..Default::default()
    };
    follow::stream(c.log.clone(), log_opts, running, tx);
    let stdout: ByteReader = Box::new(ChannelReader::new(rx));
    let rt = rt.clone();
    let id = c.id.clone();
    let exit = Box::pin(async move {
        loop {
            let exited = rt
                .dirs(&id)
                .ok()
                .and_then(|d| d.state().exited().ok().flatten());
            if let Some(exited) = exited {
                return Ok(exited.exit_code);
            }
            if !rt.status(&id).is_ok_and(|s| s == Status::Running) {
                return Ok(0);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    Ok(Session {
        stdin,
        stdout: opts.stdout.then_some(stdout),
        stderr: None,
        resize: None,
        exit,
        kill: Box::new(|| {}),
    })
}

/// The writing end of the container's stdin FIFO. Opening it never blocks: it fails
/// (ENXIO) when no one reads it, and does not exist for a container without `stdin: true`.
fn open_stdin(rt: &Runtime, c: &ContainerRef) -> Result<ByteWriter, NodeError> {
    let refused = |why: String| {
        NodeError::Unsupported(format!(
            "cannot attach to the stdin of container {} in pod {}/{}: {why}",
            c.container, c.namespace, c.pod
        ))
    };
    let dirs = rt
        .dirs(&c.id)
        .map_err(|e| NodeError::Failed(e.to_string()))?;
    let path = crate::runtime::process::monitor::stdin_path(&dirs.run);
    if !path.exists() {
        return Err(refused(
            "it was not started with stdin: true (set it in the pod spec)".into(),
        ));
    }
    let sender = tokio::net::unix::pipe::OpenOptions::new()
        .open_sender(&path)
        .map_err(|e| refused(format!("open {}: {e}", path.display())))?;
    Ok(Box::new(sender))
}

/// Bytes from a queue, read as a stream.
struct ChannelReader {
    rx: mpsc::Receiver<bytes::Bytes>,
    pending: bytes::Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<bytes::Bytes>) -> ChannelReader {
        ChannelReader {
            rx,
            pending: bytes::Bytes::new(),
        }
    }
}

impl tokio::io::AsyncRead for ChannelReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        while self.pending.is_empty() {
            match self.rx.poll_recv(cx) {
                std::task::Poll::Ready(Some(b)) => self.pending = b,
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ok(())),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending.split_to(n));
        std::task::Poll::Ready(Ok(()))
    }
}
