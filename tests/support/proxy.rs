//! A TCP proxy that cuts blob downloads short, to test interrupted-pull recovery.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::http::find;

/// Forwards `127.0.0.1:<port>` to an upstream address, both ways, on plain std threads (so it
/// works the same from sync and async tests).
///
/// The first `drops` blob downloads (responses to `GET /v2/<name>/blobs/sha256:...` with
/// status 200 or 206 and a body longer than `drop_after_bytes`) are cut: the proxy forwards
/// the response head and then exactly `drop_after_bytes` bytes of the body, and closes both
/// the client and the upstream connection. The client sees a premature EOF. Later blob
/// downloads, and everything else, pass through untouched.
///
/// It understands HTTP/1.1 just enough for keep-alive connections of a non-pipelining client
/// (reqwest/hyper): each request's head is parsed and a `Content-Length` body skipped. A
/// request with a chunked body turns inspection off for the rest of that connection.
pub struct DroppingProxy {
    port: u16,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: String,
    drop_after: usize,
    drops_wanted: usize,
    /// Drops promised to a request whose response has not been cut yet, plus drops done.
    claimed: AtomicUsize,
    done: AtomicUsize,
    blob_gets: AtomicUsize,
    stop: AtomicBool,
    /// Clones of every socket, shut down when the proxy is dropped so no thread lingers.
    sockets: Mutex<Vec<TcpStream>>,
}

impl DroppingProxy {
    pub fn start(upstream_addr: &str, drop_after_bytes: usize, drops: usize) -> DroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: binding 127.0.0.1:0 failed");
        let port = listener
            .local_addr()
            .expect("proxy: reading bound address failed")
            .port();
        let shared = Arc::new(Shared {
            upstream: upstream_addr.to_string(),
            drop_after: drop_after_bytes,
            drops_wanted: drops,
            claimed: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            blob_gets: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let accept_thread = std::thread::Builder::new()
            .name(format!("dropping-proxy-{port}"))
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("proxy: spawning accept thread failed");
        DroppingProxy {
            port,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// "127.0.0.1:PORT": use it as the registry address instead of the upstream's.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Blob downloads cut so far.
    pub fn drops_done(&self) -> usize {
        self.shared.done.load(Ordering::SeqCst)
    }

    /// Blob GET requests seen so far (cut or not).
    pub fn blob_gets(&self) -> usize {
        self.shared.blob_gets.load(Ordering::SeqCst)
    }
}

impl Drop for DroppingProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the loop sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for s in self.shared.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(upstream) = TcpStream::connect(&shared.upstream) else {
            // Upstream down: the client sees a closed connection, as it would without us.
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        if let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) {
            shared.sockets.lock().unwrap().extend([c, u]);
        }
        let conn = Arc::new(Conn {
            armed: AtomicBool::new(false),
        });
        let (c2, u2) = match (client.try_clone(), upstream.try_clone()) {
            (Ok(c), Ok(u)) => (c, u),
            _ => continue,
        };
        let (s1, s2) = (shared.clone(), shared.clone());
        let (k1, k2) = (conn.clone(), conn);
        std::thread::spawn(move || forward_requests(client, upstream, s1, k1));
        std::thread::spawn(move || forward_responses(u2, c2, s2, k2));
    }
}

/// Per-connection flag from the request side to the response side: "the next response on
/// this connection is a blob download to cut". Setting it before forwarding the request is
/// race-free because a non-pipelining client only sends a request once it has read the
/// whole previous response, so the response thread is idle between responses.
struct Conn {
    armed: AtomicBool,
}

enum ReqState {
    Head(Vec<u8>),
    Body(u64),
    Opaque,
}

fn forward_requests(
    mut client: TcpStream,
    mut upstream: TcpStream,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
) {
    let mut state = ReqState::Head(Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        inspect_requests(&buf[..n], &mut state, &shared, &conn);
        if upstream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = upstream.shutdown(Shutdown::Write);
}

/// Walks request bytes, arming `conn` for each blob GET that gets one of the drops.
fn inspect_requests(mut data: &[u8], state: &mut ReqState, shared: &Shared, conn: &Conn) {
    while !data.is_empty() {
        match state {
            ReqState::Opaque => return,
            ReqState::Body(remaining) => {
                let take = (*remaining).min(data.len() as u64);
                *remaining -= take;
                data = &data[take as usize..];
                if *remaining == 0 {
                    *state = ReqState::Head(Vec::new());
                }
            }
            ReqState::Head(head) => {
                let old_len = head.len();
                head.extend_from_slice(data);
                let Some(end) = find(head, b"\r\n\r\n") else {
                    if head.len() > 64 * 1024 {
                        *state = ReqState::Opaque;
                    }
                    return;
                };
                let consumed = end + 4 - old_len;
                data = &data[consumed..];
                let text = String::from_utf8_lossy(&head[..end]).into_owned();
                let mut lines = text.split("\r\n");
                let mut words = lines.next().unwrap_or_default().split_whitespace();
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let (mut length, mut chunked) = (0u64, false);
                for line in lines {
                    let Some((k, v)) = line.split_once(':') else {
                        continue;
                    };
                    let (k, v) = (k.trim(), v.trim());
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.parse().unwrap_or(0);
                    } else if k.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = !v.eq_ignore_ascii_case("identity");
                    }
                }
                if method == "GET"
                    && target.starts_with("/v2/")
                    && target.contains("/blobs/sha256:")
                {
                    shared.blob_gets.fetch_add(1, Ordering::SeqCst);
                    let claimed =
                        shared
                            .claimed
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                                (c < shared.drops_wanted).then_some(c + 1)
                            });
                    if claimed.is_ok() {
                        conn.armed.store(true, Ordering::SeqCst);
                    }
                }
                *state = if chunked {
                    ReqState::Opaque
                } else if length > 0 {
                    ReqState::Body(length)
                } else {
                    ReqState::Head(Vec::new())
                };
            }
        }
    }
}

enum RespState {
    Pass,
    /// Collecting the head of an armed response.
    Head(Vec<u8>),
    /// Cutting: this many more body bytes get through.
    Body(usize),
}

fn forward_responses(
    mut upstream: TcpStream,
    mut client: TcpStream,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
) {
    let mut state = RespState::Pass;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if matches!(state, RespState::Pass) && conn.armed.swap(false, Ordering::SeqCst) {
            state = RespState::Head(Vec::new());
        }
        let data = &buf[..n];
        let alive = match &mut state {
            RespState::Head(head) => {
                head.extend_from_slice(data);
                let Some(end) = find(head, b"\r\n\r\n") else {
                    continue;
                };
                let head = std::mem::take(head);
                let (head_part, body_part) = head.split_at(end + 4);
                if client.write_all(head_part).is_err() {
                    break;
                }
                state = if worth_cutting(head_part, shared.drop_after) {
                    RespState::Body(shared.drop_after)
                } else {
                    // Not worth a drop (error, redirect, tiny blob): give the drop back.
                    shared.claimed.fetch_sub(1, Ordering::SeqCst);
                    RespState::Pass
                };
                forward_body(&mut state, body_part, &mut client, &mut upstream, &shared)
            }
            _ => forward_body(&mut state, data, &mut client, &mut upstream, &shared),
        };
        if !alive {
            return;
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}

/// A response is cut if it is a successful blob response with more than `drop_after` body
/// bytes (or no Content-Length).
fn worth_cutting(head: &[u8], drop_after: usize) -> bool {
    let text = String::from_utf8_lossy(head);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: Option<u64> = text.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("content-length") {
            v.trim().parse().ok()
        } else {
            None
        }
    });
    matches!(status, 200 | 206) && length.is_none_or(|l| l > drop_after as u64)
}

/// Forwards `data` according to `state`. Returns false when the connection is finished
/// (cut or broken).
fn forward_body(
    state: &mut RespState,
    data: &[u8],
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    shared: &Shared,
) -> bool {
    match state {
        RespState::Pass | RespState::Head(_) => client.write_all(data).is_ok(),
        RespState::Body(allowed) => {
            let take = (*allowed).min(data.len());
            if client.write_all(&data[..take]).is_err() {
                return false;
            }
            *allowed -= take;
            if *allowed == 0 {
                shared.done.fetch_add(1, Ordering::SeqCst);
                let _ = client.flush();
                let _ = client.shutdown(Shutdown::Both);
                let _ = upstream.shutdown(Shutdown::Both);
                return false;
            }
            true
        }
    }
}
