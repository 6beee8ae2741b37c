//! Response bodies as kubelet sends them: plain text errors (go-restful's WriteError),
//! JSON objects, streamed text.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

fn with(status: u16, content_type: &str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

pub fn text(status: u16, body: impl Into<String>) -> Response<Body> {
    with(status, "text/plain; charset=utf-8", full(body.into()))
}

pub fn json<T: serde::Serialize>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with(200, "application/json", full(bytes)),
        Err(e) => text(500, format!("encode the answer: {e}")),
    }
}

pub fn prometheus(bytes: Vec<u8>) -> Response<Body> {
    with(200, "text/plain; version=0.0.4; charset=utf-8", full(bytes))
}

/// A body fed by a bounded queue; it ends when the sender is dropped.
pub fn streamed(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
            .map(|b| Ok::<_, std::io::Error>(Frame::data(b)));
    with(200, "text/plain", BodyExt::boxed(StreamBody::new(stream)))
}
