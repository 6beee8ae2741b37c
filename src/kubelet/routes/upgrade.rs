//! exec, attach and port-forward: the protocol is negotiated and the target looked up
//! while the request is still plain HTTP (so refusals are HTTP answers), then the
//! connection is switched and served on a task of its own.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::path::Target;
use super::respond::{self, Body};
use super::{blocking, node_error, query, App};
use crate::kubelet::logs::parse_bool;
use crate::kubelet::node::{ContainerRef, NodeError, StreamOptions};
use crate::kubelet::stream::{self, portforward, remotecommand, websocket};

/// A refusal sent instead of switching protocols.
type Refused = Box<Response<Body>>;

fn refuse(status: u16, msg: impl Into<String>) -> Refused {
    Box::new(respond::text(status, msg))
}

/// A negotiated upgrade.
enum Proto {
    Spdy(&'static str),
    WebSocket { version: &'static str, key: String },
}

fn header_values<'a>(req: &'a Request<Incoming>, name: &str) -> Vec<&'a str> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn negotiate(
    req: &Request<Incoming>,
    spdy: &[&'static str],
    ws: &[&'static str],
) -> Result<Proto, Refused> {
    let upgrade = header_values(req, "upgrade").join(",").to_ascii_lowercase();
    if upgrade.contains("spdy/3.1") && !spdy.is_empty() {
        let offered = stream::list(&header_values(req, "x-stream-protocol-version"));
        if offered.is_empty() {
            // A client from before protocol negotiation: the first version.
            return Ok(Proto::Spdy(spdy[spdy.len() - 1]));
        }
        return stream::negotiate(&offered, spdy).map(Proto::Spdy).ok_or_else(|| {
            refuse(
                403,
                format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {spdy:?}"
                ),
            )
        });
    }
    if upgrade.contains("websocket") && !ws.is_empty() {
        let key = header_values(req, "sec-websocket-key")
            .first()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| refuse(400, "WebSocket upgrade without Sec-WebSocket-Key"))?;
        let offered = stream::list(&header_values(req, "sec-websocket-protocol"));
        let version = stream::negotiate(&offered, ws).ok_or_else(|| {
            refuse(
                400,
                format!("unable to upgrade: no WebSocket subprotocol in common: client supports {offered:?}, server accepts {ws:?}"),
            )
        })?;
        return Ok(Proto::WebSocket { version, key });
    }
    Err(refuse(
        400,
        "unable to upgrade: missing upgrade headers in request (Upgrade: SPDY/3.1 or websocket)",
    ))
}

fn switching(proto: &Proto) -> Response<Body> {
    let mut r = Response::new(respond::empty());
    *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    match proto {
        Proto::Spdy(v) => {
            h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            h.insert("X-Stream-Protocol-Version", HeaderValue::from_static(v));
        }
        Proto::WebSocket { version, key } => {
            h.insert(UPGRADE, HeaderValue::from_static("websocket"));
            h.insert("Sec-WebSocket-Protocol", HeaderValue::from_static(version));
            if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                h.insert("Sec-WebSocket-Accept", v);
            }
        }
    }
    r
}

fn flag(q: &[(String, String)], names: &[&str]) -> Result<bool, Refused> {
    for name in names {
        if let Some(v) = query::first(q, name) {
            return parse_bool(name, v).map_err(|m| refuse(400, m));
        }
    }
    Ok(false)
}

/// kubelet's names (input, output, error) and the API server's (stdin, stdout, stderr).
fn stream_options(q: &[(String, String)]) -> Result<StreamOptions, Refused> {
    let opts = StreamOptions {
        stdin: flag(q, &["input", "stdin"])?,
        stdout: flag(q, &["output", "stdout"])?,
        stderr: flag(q, &["error", "stderr"])?,
        tty: flag(q, &["tty"])?,
    };
    if !(opts.stdin || opts.stdout || opts.stderr) {
        return Err(refuse(
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(opts)
}

async fn find(app: &Arc<App>, t: Target) -> Result<ContainerRef, Refused> {
    let node = app.node.clone();
    let c = blocking(move || node.container(&t.namespace, &t.pod, t.uid.as_deref(), &t.container))
        .await
        .map_err(|e| Box::new(node_error(&e)))?;
    if !c.running {
        return Err(Box::new(node_error(&NodeError::NotRunning {
            namespace: c.namespace,
            pod: c.pod,
            container: c.container,
        })));
    }
    Ok(c)
}

/// Switches the connection and serves a remotecommand session whose process `start` makes.
fn serve_session<F>(
    app: &Arc<App>,
    mut req: Request<Incoming>,
    proto: Proto,
    opts: StreamOptions,
    start: F,
) -> Response<Body>
where
    F: std::future::Future<Output = Result<crate::kubelet::node::Session, NodeError>>
        + Send
        + 'static,
{
    let response = switching(&proto);
    let idle = app.idle;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::info!(error = %e, "kubelet API: upgrade failed");
                return;
            }
        };
        match proto {
            Proto::Spdy(v) => remotecommand::serve(io, v, opts, idle, start).await,
            Proto::WebSocket { version, .. } => websocket::serve(io, version, idle, start).await,
        }
    });
    response
}

/// Options, protocol and a running target container: what exec and attach both need.
async fn prepare(
    app: &Arc<App>,
    req: &Request<Incoming>,
    t: Target,
    q: &[(String, String)],
) -> Result<(StreamOptions, Proto, ContainerRef), Refused> {
    let opts = stream_options(q)?;
    let proto = negotiate(
        req,
        stream::SPDY_REMOTECOMMAND,
        stream::WEBSOCKET_REMOTECOMMAND,
    )?;
    let c = find(app, t).await?;
    Ok((opts, proto, c))
}

pub async fn exec(
    app: &Arc<App>,
    req: Request<Incoming>,
    t: Target,
    q: &[(String, String)],
) -> Response<Body> {
    let argv: Vec<String> = query::all(q, "command")
        .into_iter()
        .map(str::to_string)
        .collect();
    if argv.is_empty() || argv[0].is_empty() {
        return respond::text(400, "you must specify a command (the command parameter)");
    }
    let (opts, proto, c) = match prepare(app, &req, t, q).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let node = app.node.clone();
    let o = opts.clone();
    let start = async move { blocking(move || node.exec(&c, &argv, &o)).await };
    serve_session(app, req, proto, opts, start)
}

pub async fn attach(
    app: &Arc<App>,
    req: Request<Incoming>,
    t: Target,
    q: &[(String, String)],
) -> Response<Body> {
    let (opts, proto, c) = match prepare(app, &req, t, q).await {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let node = app.node.clone();
    let o = opts.clone();
    let start = async move { blocking(move || node.attach(&c, &o)).await };
    serve_session(app, req, proto, opts, start)
}

pub async fn port_forward(
    app: &Arc<App>,
    mut req: Request<Incoming>,
    namespace: String,
    pod: String,
    uid: Option<String>,
) -> Response<Body> {
    let proto = match negotiate(&req, &[stream::PORTFORWARD], &[stream::PORTFORWARD_TUNNEL]) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let node = app.node.clone();
    let (ns, name) = (namespace.clone(), pod.clone());
    let pod_uid = match blocking(move || node.pod_uid(&ns, &name, uid.as_deref())).await {
        Ok(u) => u,
        Err(e) => return node_error(&e),
    };
    let node = app.node.clone();
    let uid_for_dial = pod_uid.clone();
    let dial: portforward::Dial = Arc::new(move |port| {
        let node = node.clone();
        let uid = uid_for_dial.clone();
        Box::pin(async move {
            let socket = blocking(move || node.dial(&uid, port))
                .await
                .map_err(|e| e.to_string())?;
            socket.set_nonblocking(true).map_err(|e| e.to_string())?;
            tokio::net::TcpStream::from_std(socket).map_err(|e| e.to_string())
        })
    });
    let response = switching(&proto);
    let idle = app.idle;
    let label = format!("{namespace}/{pod}, uid {pod_uid}");
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::info!(error = %e, "kubelet API: upgrade failed");
                return;
            }
        };
        match proto {
            Proto::Spdy(_) => portforward::serve(io, label, idle, dial).await,
            Proto::WebSocket { .. } => {
                let ws = websocket::accept(io).await;
                let tunnel = websocket::tunnel(ws, idle);
                portforward::serve(tunnel, label, idle, dial).await
            }
        }
    });
    response
}
