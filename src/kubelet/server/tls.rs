//! The serving certificate and the TLS configuration: the operator's certificate and key
//! (`--tls-cert-file`/`--tls-private-key-file`), else a self-signed pair made once and kept
//! under the data root (as kubelet keeps `kubelet.crt` in its cert dir), with the node's
//! names and addresses as subject alternative names.
//!
//! Client certificates are requested, not required, and not judged during the handshake:
//! a request without one may still carry a bearer token, and one signed by another CA is
//! answered 401 like kubelet's (see [`ClientCa::verify`]), not with a TLS alert.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {what} {path}: {source}; check the file named by {flag}")]
    Read {
        what: &'static str,
        path: PathBuf,
        flag: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate; {flag} needs a PEM file with one or more")]
    NoCertificate { path: PathBuf, flag: &'static str },
    #[error("--tls-cert-file and --tls-private-key-file go together: pass both or neither")]
    HalfPair,
    #[error("make the self-signed serving certificate: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("keep the self-signed serving certificate: {0}")]
    Keep(#[source] crate::sys::fs::FsError),
    #[error("client CA bundle {path}: {source}")]
    Ca {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client CA bundle {path}: {source}")]
    Verifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub struct ServingCert {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Where a self-signed pair is kept (`<root>/pki`).
    pub cert_dir: PathBuf,
    /// Names and addresses of the node: the subject alternative names of a self-signed pair.
    pub names: Vec<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_certs(path: &Path, flag: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |source| TlsError::Read {
        what: "certificates",
        path: path.to_path_buf(),
        flag,
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
            flag,
        });
    }
    Ok(certs)
}

/// The certificate chain and key to serve with; a self-signed pair is made on first use.
pub fn serving_pair(
    cfg: &ServingCert,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let (cert, key) = match (&cfg.cert_file, &cfg.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => self_signed(cfg)?,
        _ => return Err(TlsError::HalfPair),
    };
    let certs = read_certs(&cert, "--tls-cert-file")?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|source| TlsError::Read {
        what: "private key",
        path: key.clone(),
        flag: "--tls-private-key-file",
        source,
    })?;
    Ok((certs, key))
}

/// `<cert_dir>/kubelet.crt` and `kubelet.key`, made once: the key 0600 in a 0700 directory,
/// each written whole (temp file, fsync, rename) so a crash never leaves half a pair.
fn self_signed(cfg: &ServingCert) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = cfg.cert_dir.join("kubelet.crt");
    let key = cfg.cert_dir.join("kubelet.key");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    crate::sys::fs::create_private_dir(&cfg.cert_dir).map_err(TlsError::Keep)?;
    let pair = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let mut params =
        rcgen::CertificateParams::new(cfg.names.clone()).map_err(TlsError::Generate)?;
    let common_name = cfg.names.first().cloned().unwrap_or_default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{common_name}@layerlet"));
    let made = params.self_signed(&pair).map_err(TlsError::Generate)?;
    // The key first: a certificate without its key is never left behind.
    crate::sys::fs::atomic_write_private(&key, pair.serialize_pem().as_bytes())
        .map_err(TlsError::Keep)?;
    crate::sys::fs::atomic_write(&cert, made.pem().as_bytes()).map_err(TlsError::Keep)?;
    Ok((cert, key))
}

/// The CA bundle client certificates are checked against (`--client-ca-file`).
#[derive(Debug, Clone)]
pub struct ClientCa {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCa {
    pub fn load(path: &Path) -> Result<ClientCa, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(path, "--client-ca-file")? {
            roots.add(cert).map_err(|source| TlsError::Ca {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|source| TlsError::Verifier {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(ClientCa { verifier })
    }

    /// Whether the chain a client presented leads to this CA and is valid now.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let Some((end, intermediates)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        self.verifier
            .verify_client_cert(end, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Asks for a client certificate, proves the client holds its key, and leaves the chain's
/// judgement to the request (see the module's comment).
#[derive(Debug)]
struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server's TLS configuration: HTTP/1.1 only (upgrades to SPDY and WebSocket need it).
pub fn server_config(
    serving: &ServingCert,
    client_ca: Option<&ClientCa>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = serving_pair(serving)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(Arc::new(RequestClientCert {
            hints: ca.verifier.root_hint_subjects().to_vec(),
            algorithms: provider.signature_verification_algorithms,
        })),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_is_made_once_with_a_private_key_and_the_node_names() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServingCert {
            cert_file: None,
            key_file: None,
            cert_dir: dir.path().join("pki"),
            names: vec!["node-a".into(), "127.0.0.1".into()],
        };
        let (certs, _) = serving_pair(&cfg).unwrap();
        let first = std::fs::read(dir.path().join("pki/kubelet.crt")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("pki/kubelet.key"), 0o600);
        assert_eq!(mode("pki"), 0o700);
        serving_pair(&cfg).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("pki/kubelet.crt")).unwrap(),
            first
        );
        // Both names are in the certificate (DER holds DNS names and IPs as raw bytes).
        let der = certs[0].as_ref();
        assert!(der.windows(6).any(|w| w == b"node-a"));
        assert!(der.windows(4).any(|w| w == [127, 0, 0, 1]));
    }

    #[test]
    fn only_half_of_a_pair_is_refused() {
        let cfg = ServingCert {
            cert_file: Some("/nonexistent.crt".into()),
            key_file: None,
            cert_dir: "/nonexistent".into(),
            names: vec![],
        };
        assert!(matches!(serving_pair(&cfg), Err(TlsError::HalfPair)));
    }
}
