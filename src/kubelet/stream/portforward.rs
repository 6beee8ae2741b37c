//! port-forward over SPDY/3.1 (`portforward.k8s.io`): for each forwarded connection the
//! client opens a pair of streams with the same `requestID` and `port` headers, `error`
//! and `data`; the server connects to the port on the pod's loopback, inside its network
//! namespace, and copies bytes both ways; a failure is written as text on `error`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy::{self, Event, Outbox};

/// Connects to a port of the pod; the error is the text the client sees.
pub type Dial = Arc<
    dyn Fn(u16) -> Pin<Box<dyn Future<Output = Result<tokio::net::TcpStream, String>> + Send>>
        + Send
        + Sync,
>;

#[derive(Default)]
struct Pair {
    port: Option<u16>,
    error: Option<u32>,
    data: Option<u32>,
}

/// Most forwarded connections open at once on one client connection.
const MAX_PAIRS: usize = 128;

pub async fn serve<IO>(io: IO, pod: String, idle: std::time::Duration, dial: Dial)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let spdy::Conn {
        mut events,
        out,
        done,
    } = spdy::start(io, idle);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Client data on each data stream, to its connection's task.
    let mut inputs: HashMap<u32, mpsc::Sender<Option<Bytes>>> = HashMap::new();
    let mut tasks = Vec::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Open { stream, headers } => {
                let get = |n| spdy::headers::get(&headers, n).map(str::to_string);
                let (Some(kind), Some(request)) = (get("streamtype"), get("requestid")) else {
                    out.reset(stream, spdy::frame::PROTOCOL_ERROR).await;
                    continue;
                };
                if pairs.len() >= MAX_PAIRS && !pairs.contains_key(&request) {
                    out.reset(stream, spdy::frame::REFUSED_STREAM).await;
                    continue;
                }
                out.reply(stream).await;
                let pair = pairs.entry(request.clone()).or_default();
                pair.port = get("port")
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|p| *p > 0);
                match kind.as_str() {
                    "error" => pair.error = Some(stream),
                    "data" => pair.data = Some(stream),
                    _ => {
                        out.reset(stream, spdy::frame::PROTOCOL_ERROR).await;
                        continue;
                    }
                }
                if let (Some(error), Some(data)) = (pair.error, pair.data) {
                    let port = pair.port;
                    pairs.remove(&request);
                    let (tx, rx) = mpsc::channel(16);
                    inputs.insert(data, tx);
                    tasks.push(tokio::spawn(forward(
                        out.clone(),
                        error,
                        data,
                        port,
                        pod.clone(),
                        dial.clone(),
                        rx,
                    )));
                }
            }
            Event::Data { stream, data } => {
                if let Some(tx) = inputs.get(&stream) {
                    if tx.send(Some(data)).await.is_err() {
                        inputs.remove(&stream);
                    }
                }
            }
            Event::End { stream } | Event::Reset { stream } => {
                if let Some(tx) = inputs.remove(&stream) {
                    let _ = tx.send(None).await;
                }
            }
        }
        tasks.retain(|t| !t.is_finished());
    }
    for t in tasks {
        t.abort();
    }
    out.go_away().await;
    let _ = done.await;
}

async fn forward(
    out: Outbox,
    error: u32,
    data: u32,
    port: Option<u16>,
    pod: String,
    dial: Dial,
    mut input: mpsc::Receiver<Option<Bytes>>,
) {
    let Some(port) = port else {
        let msg = format!("invalid port for pod {pod}");
        out.data(error, Bytes::from(msg)).await;
        out.fin(error).await;
        out.fin(data).await;
        return;
    };
    let socket = match dial(port).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {pod}: {e}");
            tracing::info!("kubelet API: {msg}");
            out.data(error, Bytes::from(msg)).await;
            out.fin(error).await;
            out.fin(data).await;
            return;
        }
    };
    let (mut read, mut write) = socket.into_split();
    let to_pod = async {
        while let Some(Some(chunk)) = input.recv().await {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    };
    let from_pod = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !out.data(data, Bytes::copy_from_slice(&buf[..n])).await {
                        return;
                    }
                }
            }
        }
        out.fin(data).await;
    };
    tokio::join!(to_pod, from_pod);
    out.fin(error).await;
}
