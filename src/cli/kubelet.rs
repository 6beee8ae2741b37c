//! The kubelet API's flags on `layerlet agent`, named as kubelet names them.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use layerlet::kubelet::auth::AuthorizationMode;
use layerlet::kubelet::KubeletOptions;

/// Spelled as kubelet spells them (`--authorization-mode Webhook`); the kebab-case forms
/// are kept as aliases.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuthzMode {
    #[value(name = "AlwaysAllow", alias = "always-allow")]
    AlwaysAllow,
    #[value(name = "Webhook", alias = "webhook")]
    Webhook,
}

#[derive(Debug, Args)]
pub struct KubeletArgs {
    /// Serve the kubelet API (logs, exec, attach, port-forward, stats) over HTTPS on
    /// ADDR:PORT; off unless given (kubelet: --address and --port, 10250).
    #[arg(long, value_name = "ADDR:PORT")]
    pub kubelet_listen: Option<String>,
    /// The serving certificate (PEM); without it a self-signed one is made once under the
    /// data root (pki/kubelet.crt).
    #[arg(long, value_name = "PATH", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    #[arg(long, value_name = "PATH", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA bundle that client certificates must chain to (the API server's kubelet client
    /// certificate); without it client certificates are not asked for.
    #[arg(long, value_name = "PATH")]
    pub client_ca_file: Option<PathBuf>,
    /// Let requests without credentials through as system:anonymous (then authorized).
    #[arg(long)]
    pub anonymous_auth: bool,
    /// AlwaysAllow, or Webhook: a SubjectAccessReview per request (needs an API server).
    #[arg(long, value_enum, default_value_t = AuthzMode::AlwaysAllow)]
    pub authorization_mode: AuthzMode,
    /// Close exec/attach/port-forward connections idle this long (kubelet's default 4h).
    #[arg(long, value_name = "SECONDS", default_value_t = 4 * 3600)]
    pub streaming_connection_idle_timeout: u64,
}

impl KubeletArgs {
    pub fn options(&self) -> Option<KubeletOptions> {
        let listen = self.kubelet_listen.clone()?;
        Some(KubeletOptions {
            listen,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_private_key_file: self.tls_private_key_file.clone(),
            client_ca_file: self.client_ca_file.clone(),
            anonymous_auth: self.anonymous_auth,
            authorization_mode: match self.authorization_mode {
                AuthzMode::AlwaysAllow => AuthorizationMode::AlwaysAllow,
                AuthzMode::Webhook => AuthorizationMode::Webhook,
            },
            idle_timeout: std::time::Duration::from_secs(
                self.streaming_connection_idle_timeout.max(1),
            ),
        })
    }
}
