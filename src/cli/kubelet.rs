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
    /// ADDR:PORT (kubelet: --address and --port). Default: 0.0.0.0:10250 in kube mode
    /// (--kubeconfig or --in-cluster), off otherwise; `off` or an empty value turns it off.
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub kubelet_listen: Option<String>,
    /// The serving certificate (PEM); without it a self-signed one is kept under the data
    /// root (pki/kubelet.crt) naming the node, the host and the node's address, and made
    /// anew when those change.
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
    /// Default: Webhook in kube mode, where the API listens on all interfaces and any
    /// service account's token authenticates (as kubelet's config file defaults), else
    /// AlwaysAllow.
    #[arg(long, value_enum)]
    pub authorization_mode: Option<AuthzMode>,
    /// Close exec/attach/port-forward connections idle this long (kubelet's default 4h).
    #[arg(long, value_name = "SECONDS", default_value_t = 4 * 3600)]
    pub streaming_connection_idle_timeout: u64,
}

/// Where the kubelet API listens in kube mode unless told otherwise: kubelet's own port.
pub const KUBE_MODE_LISTEN: &str = "0.0.0.0:10250";

/// Pure: the address the kubelet API listens on, None when it is off. `kube_mode`: the
/// agent talks to an API server, which sends `kubectl logs/exec` to this port.
pub fn listen_address(flag: Option<&str>, kube_mode: bool) -> Option<String> {
    match flag.map(str::trim) {
        Some("" | "off") => None,
        Some(addr) => Some(addr.to_string()),
        None => kube_mode.then(|| KUBE_MODE_LISTEN.to_string()),
    }
}

impl KubeletArgs {
    pub fn options(&self, kube_mode: bool) -> Option<KubeletOptions> {
        let listen = listen_address(self.kubelet_listen.as_deref(), kube_mode)?;
        let authorization_mode = match self.authorization_mode {
            Some(AuthzMode::AlwaysAllow) => AuthorizationMode::AlwaysAllow,
            Some(AuthzMode::Webhook) => AuthorizationMode::Webhook,
            None if kube_mode => AuthorizationMode::Webhook,
            None => AuthorizationMode::AlwaysAllow,
        };
        Some(KubeletOptions {
            listen,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_private_key_file: self.tls_private_key_file.clone(),
            client_ca_file: self.client_ca_file.clone(),
            anonymous_auth: self.anonymous_auth,
            authorization_mode,
            idle_timeout: std::time::Duration::from_secs(
                self.streaming_connection_idle_timeout.max(1),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kubelet: KubeletArgs,
    }

    fn options(args: &[&str], kube_mode: bool) -> Option<KubeletOptions> {
        let cli = Cli::try_parse_from([&["agent"][..], args].concat()).unwrap();
        cli.kubelet.options(kube_mode)
    }

    #[test]
    fn the_api_listens_on_10250_in_kube_mode_and_is_off_otherwise_unless_given() {
        let on = options(&[], true).expect("on in kube mode");
        assert_eq!(on.listen, "0.0.0.0:10250");
        assert_eq!(on.port(), Some(10250), "published in daemonEndpoints");
        assert_eq!(on.authorization_mode, AuthorizationMode::Webhook);
        assert!(options(&[], false).is_none());

        let given = options(&["--kubelet-listen", "0.0.0.0:10350"], true).unwrap();
        assert_eq!(given.port(), Some(10350));
        let standalone = options(&["--kubelet-listen", "127.0.0.1:10250"], false).unwrap();
        assert_eq!(standalone.listen, "127.0.0.1:10250");
        assert_eq!(
            standalone.authorization_mode,
            AuthorizationMode::AlwaysAllow
        );
        for off in ["off", "", " "] {
            assert!(
                options(&["--kubelet-listen", off], true).is_none(),
                "{off:?}"
            );
        }
        let allow = options(&["--authorization-mode", "AlwaysAllow"], true).unwrap();
        assert_eq!(allow.authorization_mode, AuthorizationMode::AlwaysAllow);
        let webhook = options(
            &[
                "--kubelet-listen=127.0.0.1:0",
                "--authorization-mode",
                "Webhook",
            ],
            false,
        );
        assert_eq!(
            webhook.unwrap().authorization_mode,
            AuthorizationMode::Webhook
        );
    }
}
