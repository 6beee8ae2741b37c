//! The listening side: TCP, TLS (the serving certificate, client certificates requested),
//! then HTTP/1.1 with upgrades, bounded: request line and headers, connections at once,
//! time to finish a handshake or a request head.

pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::auth::{certificate_user, PeerCert};
use super::routes::{handle, App};
use tls::ClientCa;

/// Largest request line plus headers read (hyper answers 431 past it).
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 2048;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

fn peer_of(ca: Option<&ClientCa>, conn: &rustls::ServerConnection) -> PeerCert {
    let (Some(ca), Some(chain)) = (ca, conn.peer_certificates()) else {
        return PeerCert::None;
    };
    if chain.is_empty() {
        return PeerCert::None;
    }
    match ca.verify(chain) {
        Ok(()) => match certificate_user(chain[0].as_ref()) {
            Some(user) => PeerCert::Valid(user),
            None => PeerCert::Invalid("the certificate names no user (empty common name)".into()),
        },
        Err(why) => PeerCert::Invalid(why),
    }
}

/// Serves until the returned task is aborted.
pub fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    client_ca: Option<ClientCa>,
    app: Arc<App>,
) -> tokio::task::JoinHandle<()> {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let ca = client_ca.map(Arc::new);
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (tcp, remote): (tokio::net::TcpStream, SocketAddr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let app = app.clone();
            let ca = ca.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "kubelet API: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let peer = Arc::new(peer_of(ca.as_deref(), tls.get_ref().1));
                let service = service_fn(move |req| handle(app.clone(), peer.clone(), req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .max_buf_size(MAX_HEAD)
                    .max_headers(MAX_HEADERS)
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(%remote, error = %e, "kubelet API: connection ended");
                }
            });
        }
    })
}
