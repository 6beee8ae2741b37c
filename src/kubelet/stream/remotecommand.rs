//! exec and attach over SPDY/3.1: the client opens one stream per channel, named by its
//! `streamType` header (error, stdin, stdout, stderr, resize); the server answers each,
//! waits until all it expects are there, then runs the session.

use std::collections::HashMap;
use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::session::{self, Chan, In, Out};
use super::spdy::{self, Event};
use super::{has_resize, status_style, STREAM_CREATION_TIMEOUT};
use crate::kubelet::node::{NodeError, Session, StreamOptions};

fn chan_of(stream_type: &str) -> Option<Chan> {
    match stream_type {
        "stdin" => Some(Chan::Stdin),
        "stdout" => Some(Chan::Stdout),
        "stderr" => Some(Chan::Stderr),
        "error" => Some(Chan::Error),
        "resize" => Some(Chan::Resize),
        _ => None,
    }
}

/// The channels a client must open for `opts` (kubelet: no stderr with a terminal, resize
/// only with one and from v3).
pub fn expected(opts: &StreamOptions, version: &str) -> Vec<Chan> {
    let mut chans = vec![Chan::Error];
    if opts.stdin {
        chans.push(Chan::Stdin);
    }
    if opts.stdout {
        chans.push(Chan::Stdout);
    }
    if opts.stderr && !opts.tty {
        chans.push(Chan::Stderr);
    }
    if opts.tty && has_resize(version) {
        chans.push(Chan::Resize);
    }
    chans
}

/// Serves one exec or attach on an upgraded connection. `start` begins the process once
/// the streams are there (so nothing runs for a client that never opens them).
pub async fn serve<IO, F>(
    io: IO,
    version: &'static str,
    opts: StreamOptions,
    idle: std::time::Duration,
    start: F,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    F: Future<Output = Result<Session, NodeError>> + Send,
{
    let mut conn = spdy::start(io, idle);
    let want = expected(&opts, version);
    let mut streams: HashMap<Chan, u32> = HashMap::new();
    let mut early: Vec<Event> = Vec::new();
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while !want.iter().all(|c| streams.contains_key(c)) {
        let event = match tokio::time::timeout_at(deadline, conn.events.recv()).await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(_) => {
                tracing::info!("kubelet API: a streaming client did not open its streams in time");
                conn.out.go_away().await;
                return;
            }
        };
        match event {
            Event::Open { stream, headers } => {
                let kind = spdy::headers::get(&headers, "streamtype").and_then(chan_of);
                match kind {
                    Some(chan) if want.contains(&chan) && !streams.contains_key(&chan) => {
                        streams.insert(chan, stream);
                        conn.out.reply(stream).await;
                    }
                    _ => {
                        conn.out.reset(stream, spdy::frame::PROTOCOL_ERROR).await;
                    }
                }
            }
            // Data may come before the last stream is open (stdin typed at once).
            other if early.len() < 64 => early.push(other),
            _ => {}
        }
    }
    let by_id: HashMap<u32, Chan> = streams.iter().map(|(c, id)| (*id, *c)).collect();
    let spdy::Conn {
        mut events,
        out: outbox,
        done,
    } = conn;
    let (in_tx, in_rx) = mpsc::channel::<In>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(16);
    let pump = tokio::spawn(async move {
        let mut next = early.into_iter();
        loop {
            let event = match next.next() {
                Some(e) => e,
                None => match events.recv().await {
                    Some(e) => e,
                    None => return,
                },
            };
            let msg = match event {
                Event::Data { stream, data } => by_id.get(&stream).map(|c| In::Data(*c, data)),
                Event::End { stream } | Event::Reset { stream } => {
                    by_id.get(&stream).map(|c| In::Eof(*c))
                }
                Event::Open { .. } => None,
            };
            if let Some(msg) = msg {
                if in_tx.send(msg).await.is_err() {
                    return;
                }
            }
        }
    });
    let ids = streams.clone();
    let sender = outbox.clone();
    let writer = tokio::spawn(async move {
        let outbox = sender;
        while let Some(msg) = out_rx.recv().await {
            let ok = match msg {
                Out::Data(chan, data) => match ids.get(&chan) {
                    Some(id) => outbox.data(*id, data).await,
                    None => true,
                },
                Out::Eof(chan) => match ids.get(&chan) {
                    Some(id) => outbox.fin(*id).await,
                    None => true,
                },
            };
            if !ok {
                break;
            }
        }
    });
    let style = status_style(version);
    session::start_and_run(start, in_rx, out_tx, style).await;
    let _ = writer.await;
    pump.abort();
    outbox.go_away().await;
    let _ = done.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_session_expects_resize_and_no_stderr() {
        let opts = StreamOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: true,
        };
        assert_eq!(
            expected(&opts, "v4.channel.k8s.io"),
            vec![Chan::Error, Chan::Stdin, Chan::Stdout, Chan::Resize]
        );
        assert_eq!(
            expected(&opts, "v2.channel.k8s.io"),
            vec![Chan::Error, Chan::Stdin, Chan::Stdout]
        );
        let plain = StreamOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        assert_eq!(
            expected(&plain, "v4.channel.k8s.io"),
            vec![Chan::Error, Chan::Stdout, Chan::Stderr]
        );
    }
}
