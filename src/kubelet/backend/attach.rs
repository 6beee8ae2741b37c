//! attach: the container's own output from now on, read from its CRI log as it is written
//! (both streams arrive on stdout); the session ends with the container, with its exit
//! code. The container's stdin is not reachable: the monitor gives init /dev/null and
//! keeps no socket for it, so an attach asking for stdin is refused.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::kubelet::logs::{follow, LogOptions};
use crate::kubelet::node::{ByteReader, ContainerRef, NodeError, Session, StreamOptions};
use crate::runtime::container::Runtime;
use crate::runtime::state::Status;

pub fn attach(rt: &Runtime, c: &ContainerRef, opts: &StreamOptions) -> Result<Session, NodeError> {
    if opts.stdin {
        return Err(NodeError::Unsupported(format!(
            "attaching to the stdin of container {} in pod {}/{} is not supported by layerlet: its monitor does not keep a container's stdin",
            c.container, c.namespace, c.pod
        )));
    }
    let (tx, rx) = mpsc::channel(8);
    let running = {
        let rt = rt.clone();
        let id = c.id.clone();
        move || rt.status(&id).is_ok_and(|s| s == Status::Running)
    };
    let log_opts = LogOptions {
        follow: true,
        tail_lines: Some(0),
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
        stdin: None,
        stdout: opts.stdout.then_some(stdout),
        stderr: None,
        resize: None,
        exit,
        kill: Box::new(|| {}),
    })
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
