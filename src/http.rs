//! The agent's HTTP endpoints (/metrics, /healthz, /readyz, /api/v1/pods, /api/v1/events):
//! a small HTTP/1.1 server on tokio for GET requests, with keep-alive, so scrapes cost a
//! read of prepared data and nothing else.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("listen on {addr}: {source}; pick another address with --listen")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// An answer: status code, content type, body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    pub fn not_found() -> Self {
        Response {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: b"not found\n".to_vec(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Binds `addr` and serves `handler(path)` until the returned future is dropped.
pub async fn serve<H>(
    addr: &str,
    handler: Arc<H>,
) -> Result<(SocketAddr, impl Future<Output = ()>), HttpError>
where
    H: Fn(&str) -> Response + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let fut = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut request_line = String::new();
                    match reader.read_line(&mut request_line).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) if n > 8192 => return,
                        Ok(_) => {}
                    }
                    let mut close = false;
                    // Headers: only Connection matters here; bounded so a client cannot make
                    // us buffer without end.
                    let mut header_bytes = 0;
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => header_bytes += n,
                        }
                        if header_bytes > 65536 {
                            return;
                        }
                        if line == "\r\n" || line == "\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if lower.starts_with("connection:") && lower.contains("close") {
                            close = true;
                        }
                    }
                    let mut parts = request_line.split_whitespace();
                    let method = parts.next().unwrap_or("");
                    let target = parts.next().unwrap_or("/");
                    let path = target.split('?').next().unwrap_or("/");
                    let response = if method == "GET" || method == "HEAD" {
                        handler(path)
                    } else {
                        Response {
                            status: 405,
                            content_type: "text/plain; charset=utf-8",
                            body: b"only GET\n".to_vec(),
                        }
                    };
                    let head = format!(
                        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
                        response.status,
                        reason(response.status),
                        response.content_type,
                        response.body.len(),
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    if write.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    if method != "HEAD" && write.write_all(&response.body).await.is_err() {
                        return;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    };
    Ok((local, fut))
}
