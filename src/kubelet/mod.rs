//! The kubelet API: what the API server calls on a node for `kubectl logs`, `exec`,
//! `attach`, `port-forward` and `top`, with kubelet's paths, parameters, JSON shapes,
//! streaming protocols and security (x509 client certificates, TokenReview,
//! SubjectAccessReview). It sees the node only through [`node::NodeView`];
//! [`backend::LocalNode`] is that view of this node's runtime.

pub mod auth;
pub mod backend;
pub mod logs;
pub mod node;
pub mod routes;
pub mod server;
pub mod stats;
pub mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth::review::Reviewer;
use auth::{Auth, AuthorizationMode};
use node::NodeView;
use routes::App;
use server::tls::{ClientCa, ServingCert, TlsError};

/// kubelet's default `--streaming-connection-idle-timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("kubelet API: listen on {addr}: {source}; pick another address with --kubelet-listen")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kubelet API: {0}")]
    Tls(#[from] TlsError),
    #[error("kubelet API: --authorization-mode Webhook asks the API server (SubjectAccessReview): pass --kubeconfig or --in-cluster, or use --authorization-mode AlwaysAllow")]
    WebhookWithoutApi,
}

/// The flags of the kubelet API, as kubelet names them.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    pub listen: String,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub anonymous_auth: bool,
    pub authorization_mode: AuthorizationMode,
    pub idle_timeout: Duration,
}

impl KubeletOptions {
    /// The port `--kubelet-listen` names (none for port 0, which only the OS knows).
    pub fn port(&self) -> Option<u16> {
        let port = self.listen.rsplit_once(':')?.1.parse::<u16>().ok()?;
        (port != 0).then_some(port)
    }
}

/// A running kubelet API server.
pub struct Kubelet {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds and serves the kubelet API. `names` are the node's names and addresses (the
/// self-signed certificate's SANs); `cert_dir` keeps that certificate.
pub async fn start(
    opts: &KubeletOptions,
    node_name: &str,
    names: Vec<String>,
    cert_dir: PathBuf,
    node: Arc<dyn NodeView>,
    reviewer: Option<Arc<dyn Reviewer>>,
) -> Result<Kubelet, KubeletError> {
    if opts.authorization_mode == AuthorizationMode::Webhook && reviewer.is_none() {
        return Err(KubeletError::WebhookWithoutApi);
    }
    let serving = ServingCert {
        cert_file: opts.tls_cert_file.clone(),
        key_file: opts.tls_private_key_file.clone(),
        cert_dir,
        names,
    };
    let client_ca = opts
        .client_ca_file
        .as_deref()
        .map(ClientCa::load)
        .transpose()?;
    let tls = server::tls::server_config(&serving, client_ca.as_ref())?;
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|source| KubeletError::Bind {
            addr: opts.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| KubeletError::Bind {
        addr: opts.listen.clone(),
        source,
    })?;
    let app = Arc::new(App {
        auth: Auth::new(opts.anonymous_auth, opts.authorization_mode, reviewer),
        node,
        node_name: node_name.to_string(),
        idle: opts.idle_timeout,
    });
    let task = server::serve(listener, tls, client_ca, app);
    tracing::info!(%addr, "kubelet API serving");
    Ok(Kubelet { addr, task })
}
