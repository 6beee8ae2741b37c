//! The WebSocket side: remotecommand channels (each binary message's first byte names its
//! channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255, a client's
//! "this channel is closed"), and a byte-stream view of a WebSocket for SPDY tunnelled in
//! binary messages (kubectl's port-forward).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::session::{self, Chan, In, Out};
use super::status_style;
use crate::kubelet::node::{NodeError, Session};

/// A close frame with status 1000: clients read it as the end of every channel (one
/// without a status is an error to them).
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// Largest message accepted from a client.
const MAX_MESSAGE: usize = 1024 * 1024;

pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

pub async fn accept<IO>(io: IO) -> WebSocketStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await
}

fn chan_number(chan: Chan) -> u8 {
    match chan {
        Chan::Stdin => 0,
        Chan::Stdout => 1,
        Chan::Stderr => 2,
        Chan::Error => 3,
        Chan::Resize => 4,
    }
}

fn chan_of(n: u8) -> Option<Chan> {
    match n {
        0 => Some(Chan::Stdin),
        4 => Some(Chan::Resize),
        _ => None,
    }
}

/// Serves one exec or attach over an upgraded WebSocket connection.
pub async fn serve<IO, F>(io: IO, version: &'static str, idle: Duration, start: F)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: std::future::Future<Output = Result<Session, NodeError>> + Send,
{
    let ws = accept(io).await;
    let (mut sink, mut stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel::<In>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(16);
    let v5 = version.starts_with("v5.");
    let reader = tokio::spawn(async move {
        loop {
            let msg = match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(m))) => m,
                _ => return,
            };
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => return,
                _ => continue,
            };
            let Some((&first, rest)) = data.split_first() else {
                continue;
            };
            let msg = if v5 && first == 255 {
                rest.first().and_then(|c| chan_of(*c)).map(In::Eof)
            } else {
                chan_of(first).map(|c| In::Data(c, data.slice(1..)))
            };
            if let Some(m) = msg {
                if in_tx.send(m).await.is_err() {
                    return;
                }
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if let Out::Data(chan, data) = msg {
                let mut framed = Vec::with_capacity(data.len() + 1);
                framed.push(chan_number(chan));
                framed.extend_from_slice(&data);
                if sink
                    .send(Message::Binary(Bytes::from(framed)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    });
    let style = status_style(version);
    session::start_and_run(start, in_rx, out_tx, style).await;
    let _ = writer.await;
    reader.abort();
}

/// A byte stream carried in a WebSocket's binary messages (both ways), for a protocol
/// tunnelled through it. The returned end is read and written as a socket.
pub fn tunnel<IO>(ws: WebSocketStream<IO>, idle: Duration) -> tokio::io::DuplexStream
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut sink, mut stream) = ws.split();
    let (mut read, mut write) = tokio::io::split(ours);
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    if write.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
                Ok(Some(Ok(_))) => {}
            }
        }
        let _ = write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    });
    theirs
}
