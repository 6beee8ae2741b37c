//! One server-side SPDY/3.1 connection: a reader task that decodes frames into events and
//! answers PINGs, a writer task that owns the socket's write half and the header
//! compressor, and per-stream send windows.
//!
//! Flow control: the receive side grants the client's window back (WINDOW_UPDATE) only as
//! the consumer takes data, so a client that honours windows is held back by a slow
//! consumer. On the send side, windows (64 KiB initial, SETTINGS and WINDOW_UPDATE) are
//! honoured once the peer shows it keeps them; the Go peers kubectl and the API server use
//! (spdystream) never send WINDOW_UPDATE and ignore windows, and against them TCP's own
//! back-pressure holds the sender. Every queue is bounded either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};

use super::frame::{self, Frame};
use super::headers::{Deflater, Headers, Inflater};

/// SPDY's initial stream window.
pub const INITIAL_WINDOW: i64 = 64 * 1024;
/// Largest DATA frame sent; largest frame of any kind accepted.
pub const MAX_SEND_FRAME: usize = 16 * 1024;
pub const MAX_RECV_FRAME: usize = 1024 * 1024;

#[derive(Debug)]
pub enum Event {
    Open {
        stream: u32,
        headers: Headers,
    },
    Data {
        stream: u32,
        data: Bytes,
    },
    /// The client half-closed the stream (FIN).
    End {
        stream: u32,
    },
    Reset {
        stream: u32,
    },
}

enum Command {
    Frame(Frame),
    Reply { stream: u32 },
    GoAway,
}

#[derive(Default)]
struct Windows {
    initial: Option<i64>,
    per_stream: HashMap<u32, i64>,
    /// Whether the peer has shown it keeps windows (a WINDOW_UPDATE or SETTINGS).
    peer_controls: bool,
    closed: bool,
}

struct Flow {
    windows: Mutex<Windows>,
    changed: Notify,
}

impl Flow {
    fn with<T>(&self, f: impl FnOnce(&mut Windows) -> T) -> T {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut w);
        drop(w);
        out
    }
}

/// Sends frames on the connection; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Command>,
    flow: Arc<Flow>,
}

impl Outbox {
    /// SYN_REPLY: the server accepts a stream the client opened.
    pub async fn reply(&self, stream: u32) -> bool {
        self.tx.send(Command::Reply { stream }).await.is_ok()
    }

    /// Sends `data` on `stream` in frames of at most [`MAX_SEND_FRAME`], within the
    /// stream's window where the peer keeps windows. False once the connection is gone.
    pub async fn data(&self, stream: u32, mut data: Bytes) -> bool {
        while !data.is_empty() {
            let take = loop {
                let notified = self.flow.changed.notified();
                let grant = self.flow.with(|w| {
                    if w.closed {
                        return Some(0);
                    }
                    if !w.peer_controls {
                        return Some(data.len().min(MAX_SEND_FRAME));
                    }
                    let initial = w.initial.unwrap_or(INITIAL_WINDOW);
                    let window = w.per_stream.entry(stream).or_insert(initial);
                    if *window <= 0 {
                        return None;
                    }
                    let n = data.len().min(MAX_SEND_FRAME).min(*window as usize);
                    *window -= n as i64;
                    Some(n)
                });
                match grant {
                    Some(0) => return false,
                    Some(n) => break n,
                    None => notified.await,
                }
            };
            let chunk = data.split_to(take);
            let frame = Frame::Data {
                stream,
                fin: false,
                data: chunk,
            };
            if self.tx.send(Command::Frame(frame)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Half-closes `stream` from the server's side (an empty DATA frame with FIN).
    pub async fn fin(&self, stream: u32) -> bool {
        let frame = Frame::Data {
            stream,
            fin: true,
            data: Bytes::new(),
        };
        self.tx.send(Command::Frame(frame)).await.is_ok()
    }

    pub async fn reset(&self, stream: u32, status: u32) -> bool {
        let frame = Frame::RstStream { stream, status };
        self.tx.send(Command::Frame(frame)).await.is_ok()
    }

    /// GOAWAY, then the socket is closed once everything queued before it is written.
    pub async fn go_away(&self) {
        let _ = self.tx.send(Command::GoAway).await;
    }
}

/// A started connection: events from the client (None once it is gone) and the outbox.
pub struct Conn {
    pub events: mpsc::Receiver<Event>,
    pub out: Outbox,
    /// Ends when the writer has flushed and closed the socket.
    pub done: tokio::task::JoinHandle<()>,
}

fn now_ms(start: &tokio::time::Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// Starts serving SPDY/3.1 on `io` (after the HTTP upgrade). The connection is dropped when
/// neither side has sent anything for `idle`.
pub fn start<IO>(io: IO, idle: Duration) -> Conn
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>(64);
    let (ev_tx, ev_rx) = mpsc::channel::<Event>(64);
    let flow = Arc::new(Flow {
        windows: Mutex::new(Windows::default()),
        changed: Notify::new(),
    });
    let clock = tokio::time::Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let out = Outbox {
        tx: cmd_tx.clone(),
        flow: flow.clone(),
    };
    let done = tokio::spawn(write_loop(write, cmd_rx, last.clone(), clock));
    tokio::spawn(read_loop(read, ev_tx, out.clone(), flow, last, clock, idle));
    Conn {
        events: ev_rx,
        out,
        done,
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut commands: mpsc::Receiver<Command>,
    last: Arc<AtomicU64>,
    clock: tokio::time::Instant,
) {
    let mut deflater = Deflater::default();
    let mut buf = Vec::with_capacity(MAX_SEND_FRAME + 64);
    while let Some(cmd) = commands.recv().await {
        buf.clear();
        let end = matches!(cmd, Command::GoAway);
        match cmd {
            Command::Frame(f) => frame::encode(&f, &mut buf),
            Command::Reply { stream } => {
                let block = Bytes::from(deflater.block(&Vec::new()));
                frame::encode(
                    &Frame::SynReply {
                        stream,
                        fin: false,
                        block,
                    },
                    &mut buf,
                );
            }
            Command::GoAway => frame::encode(
                &Frame::GoAway {
                    last_good: 0,
                    status: 0,
                },
                &mut buf,
            ),
        }
        // Write what is queued together, then flush once.
        if write.write_all(&buf).await.is_err() {
            break;
        }
        if (commands.is_empty() || end) && write.flush().await.is_err() {
            break;
        }
        last.store(now_ms(&clock), Ordering::Relaxed);
        if end {
            break;
        }
    }
    let _ = write.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    events: mpsc::Sender<Event>,
    out: Outbox,
    flow: Arc<Flow>,
    last: Arc<AtomicU64>,
    clock: tokio::time::Instant,
    idle: Duration,
) {
    let mut inflater = Inflater::default();
    loop {
        let mut head = [0u8; 8];
        let got = loop {
            match tokio::time::timeout(idle, read.read_exact(&mut head)).await {
                Ok(r) => break r.is_ok(),
                Err(_) => {
                    let quiet = now_ms(&clock).saturating_sub(last.load(Ordering::Relaxed));
                    if quiet >= idle.as_millis() as u64 {
                        tracing::info!("kubelet API: closing an idle streaming connection");
                        break false;
                    }
                }
            }
        };
        if !got {
            break;
        }
        last.store(now_ms(&clock), Ordering::Relaxed);
        let Ok(h) = frame::parse_head(&head) else {
            break;
        };
        if h.length > MAX_RECV_FRAME {
            break;
        }
        let mut body = vec![0u8; h.length];
        if read.read_exact(&mut body).await.is_err() {
            break;
        }
        let Ok(f) = frame::decode(h, Bytes::from(body)) else {
            break;
        };
        let sent = match f {
            Frame::SynStream {
                stream, fin, block, ..
            } => {
                let Ok(headers) = inflater.block(&block) else {
                    break;
                };
                let open = events.send(Event::Open { stream, headers }).await.is_ok();
                open && (!fin || events.send(Event::End { stream }).await.is_ok())
            }
            Frame::SynReply { block, .. } | Frame::Headers { block, .. } => {
                // Decoded only to keep the decompression context in step.
                inflater.block(&block).is_ok()
            }
            Frame::Data { stream, fin, data } => {
                let n = data.len() as u32;
                let mut ok = true;
                if n > 0 {
                    ok = events.send(Event::Data { stream, data }).await.is_ok();
                    // Taken by the consumer: the client may send that much more.
                    let grant = Frame::WindowUpdate { stream, delta: n };
                    let _ = out.tx.send(Command::Frame(grant)).await;
                }
                ok && (!fin || events.send(Event::End { stream }).await.is_ok())
            }
            Frame::RstStream { stream, .. } => events.send(Event::Reset { stream }).await.is_ok(),
            Frame::Settings { entries } => {
                for (id, value) in entries {
                    if id == frame::SETTINGS_INITIAL_WINDOW {
                        flow.with(|w| {
                            w.initial = Some(value as i64);
                            w.peer_controls = true;
                        });
                        flow.changed.notify_waiters();
                    }
                }
                true
            }
            Frame::WindowUpdate { stream, delta } => {
                flow.with(|w| {
                    let initial = w.initial.unwrap_or(INITIAL_WINDOW);
                    *w.per_stream.entry(stream).or_insert(initial) += delta as i64;
                    w.peer_controls = true;
                });
                flow.changed.notify_waiters();
                true
            }
            Frame::Ping { id } => out
                .tx
                .send(Command::Frame(Frame::Ping { id }))
                .await
                .is_ok(),
            Frame::GoAway { .. } => false,
            Frame::Other { .. } => true,
        };
        if !sent {
            break;
        }
    }
    flow.with(|w| w.closed = true);
    flow.changed.notify_waiters();
}
