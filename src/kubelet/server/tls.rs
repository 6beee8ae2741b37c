//! The serving certificate and the TLS configuration: the operator's certificate and key
//! (`--tls-cert-file`/`--tls-private-key-file`), else a self-signed pair made once and kept
//! under the data root (as kubelet keeps `kubelet.crt` in its cert dir), with the node's
//! names and addresses as subject alternative names. A kept pair whose names no longer
//! match (the node's address moved) is made anew rather than served: the API server and
//! metrics-server would otherwise meet a certificate naming an address the node left.
//!
//! Client certificates are requested, not required, and not judged during the handshake:
//! a request without one may still carry a bearer token, and one signed by another CA is
//! answered 401 like kubelet's (see [`ClientCa::verify`]), not with a TLS alert.

use std::collections::BTreeSet;
use std::net::IpAddr;
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

/// Pure: the subject alternative names of a self-signed serving certificate: the node's
/// name, the host's name, the node's addresses, then `localhost` and `127.0.0.1`; each once,
/// DNS names in lower case. A name that is no DNS name (an odd host name with `_`) and an
/// unspecified address are left out, so neither can keep the API from starting.
pub fn subject_alt_names(
    node_name: &str,
    host_name: Option<&str>,
    addresses: &[IpAddr],
) -> Vec<String> {
    let dns = [Some(node_name), host_name]
        .into_iter()
        .flatten()
        .filter_map(dns_name);
    let ips = addresses
        .iter()
        .filter(|ip| !ip.is_unspecified())
        .map(IpAddr::to_string);
    let mut names = Vec::new();
    for name in dns
        .chain(ips)
        .chain(["localhost".to_string(), "127.0.0.1".to_string()])
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// `name` in lower case when it is a DNS name a certificate can carry (RFC 1123 labels).
fn dns_name(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then_some(name)
}

/// Pure: whether a kept self-signed certificate may be served again: it names exactly the
/// names wanted now, in any order. A stale extra name is a mismatch too: the certificate
/// would vouch for an address this node no longer has.
pub fn still_current(kept: &[String], wanted: &[String]) -> bool {
    kept.iter().collect::<BTreeSet<_>>() == wanted.iter().collect::<BTreeSet<_>>()
}

/// The subject alternative names of the certificate at `path`, written as
/// [`subject_alt_names`] writes them; None when the file is missing, unreadable or names
/// something else than DNS names and IP addresses (not a certificate this module made).
pub fn kept_names(path: &Path) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let der = CertificateDer::from_pem_file(path).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                _ => None,
            }
            .map(|ip| ip.to_string()),
            _ => None,
        })
        .collect()
}

/// `<cert_dir>/kubelet.crt` and `kubelet.key`: kept while the certificate names exactly
/// `cfg.names`, else made anew. The key 0600 in a 0700 directory, each file written whole
/// (temp file, fsync, rename).
fn self_signed(cfg: &ServingCert) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = cfg.cert_dir.join("kubelet.crt");
    let key = cfg.cert_dir.join("kubelet.key");
    if key.is_file() {
        match kept_names(&cert) {
            Some(kept) if still_current(&kept, &cfg.names) => return Ok((cert, key)),
            Some(kept) => tracing::warn!(
                cert = %cert.display(), was = ?kept, now = ?cfg.names,
                "the node's names or addresses changed: making a new self-signed serving certificate"
            ),
            None if cert.exists() => tracing::warn!(
                cert = %cert.display(),
                "the kept serving certificate cannot be read: making a new one"
            ),
            None => {}
        }
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
    // The old certificate goes first, then the new key is written, then the new certificate:
    // a crash anywhere leaves no certificate beside a key it does not belong to, and the
    // next start makes a pair again.
    match std::fs::remove_file(&cert) {
        Ok(()) => crate::sys::fs::fsync_dir(&cfg.cert_dir).map_err(TlsError::Keep)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(TlsError::Keep(crate::sys::fs::FsError::io(
                "remove", &cert, e,
            )))
        }
    }
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_sans_are_the_node_and_host_names_the_addresses_and_loopback_each_once() {
        let sans = subject_alt_names(
            "layerlet-kind-worker",
            Some("Kind-Worker"),
            &[
                ip("172.18.0.3"),
                ip("0.0.0.0"),
                ip("172.18.0.3"),
                ip("fd00::3"),
            ],
        );
        assert_eq!(
            sans,
            names(&[
                "layerlet-kind-worker",
                "kind-worker",
                "172.18.0.3",
                "fd00::3",
                "localhost",
                "127.0.0.1"
            ])
        );
        // The host name is the node name (no --node-name), the address loopback (an offline
        // machine): each once. A host name no certificate can carry is left out rather than
        // failing the API.
        assert_eq!(
            subject_alt_names("node-a", Some("node-a"), &[ip("127.0.0.1")]),
            names(&["node-a", "127.0.0.1", "localhost"])
        );
        assert_eq!(
            subject_alt_names("node-a", Some("bad_host"), &[]),
            names(&["node-a", "localhost", "127.0.0.1"])
        );
        assert_eq!(
            dns_name("Host.Example.COM."),
            Some("host.example.com".into())
        );
        for bad in ["", "-a", "a-", "a..b", "a b", &"x".repeat(64)] {
            assert_eq!(dns_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_kept_certificate_is_current_only_with_exactly_the_wanted_names() {
        let wanted = names(&["n", "10.0.0.2", "localhost", "127.0.0.1"]);
        let reordered = names(&["127.0.0.1", "localhost", "10.0.0.2", "n"]);
        assert!(still_current(&reordered, &wanted));
        let moved = names(&["n", "10.0.0.9", "localhost", "127.0.0.1"]);
        assert!(!still_current(&moved, &wanted), "the address changed");
        let stale = names(&["n", "10.0.0.2", "10.0.0.9", "localhost", "127.0.0.1"]);
        assert!(!still_current(&stale, &wanted), "an address the node left");
        assert!(!still_current(&wanted[1..], &wanted), "a name is missing");
    }

    /// A TLS handshake on loopback with `pki/kubelet.crt` as the only root, checking the
    /// server under `server_name` as the API server or curl --resolve would.
    fn handshake(dir: &Path, serving: &ServingCert, server_name: &str) -> Result<(), String> {
        use std::io::{Read, Write};
        let config = server_config(serving, None).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(config).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut byte = [0u8; 1];
            // A failed handshake ends here with an error: fine, the client reports it.
            if tls.read_exact(&mut byte).is_ok() {
                let _ = tls.write_all(&byte);
            }
        });
        let mut roots = RootCertStore::empty();
        roots
            .add(read_certs(&dir.join("pki/kubelet.crt"), "-").unwrap()[0].clone())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let result = tls
            .write_all(b"x")
            .and_then(|()| {
                let mut byte = [0u8; 1];
                tls.read_exact(&mut byte)
            })
            .map_err(|e| e.to_string());
        drop(tls);
        server.join().unwrap();
        result
    }

    #[test]
    fn a_new_certificate_is_made_when_the_node_address_changes_and_clients_verify_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ServingCert {
            cert_file: None,
            key_file: None,
            cert_dir: dir.path().join("pki"),
            names: subject_alt_names("layerlet-w1", Some("w1"), &[ip("192.0.2.7")]),
        };
        let cert = dir.path().join("pki/kubelet.crt");
        let key = dir.path().join("pki/kubelet.key");
        serving_pair(&cfg).unwrap();
        assert_eq!(kept_names(&cert), Some(cfg.names.clone()));
        let (first_cert, first_key) = (std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap());
        // Clients reach the node by its name, host name or address (connecting to loopback
        // here, checking the certificate for that name); any other name is refused.
        for name in ["layerlet-w1", "w1", "192.0.2.7", "localhost", "127.0.0.1"] {
            handshake(dir.path(), &cfg, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let err = handshake(dir.path(), &cfg, "192.0.2.8").unwrap_err();
        assert!(err.contains("certificate"), "{err}");

        // The address moved: a new pair naming the new address, whose key goes with it.
        cfg.names = subject_alt_names("layerlet-w1", Some("w1"), &[ip("192.0.2.8")]);
        serving_pair(&cfg).unwrap();
        assert_eq!(kept_names(&cert), Some(cfg.names.clone()));
        assert_ne!(std::fs::read(&cert).unwrap(), first_cert);
        assert_ne!(std::fs::read(&key).unwrap(), first_key);
        handshake(dir.path(), &cfg, "192.0.2.8").unwrap();
        assert!(handshake(dir.path(), &cfg, "192.0.2.7").is_err());
        // Only the two files are left: no temporary file behind.
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("pki"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["kubelet.crt", "kubelet.key"]);

        // A certificate that cannot be read, or one without its key, is made anew too.
        std::fs::write(&cert, "not a certificate").unwrap();
        serving_pair(&cfg).unwrap();
        assert_eq!(kept_names(&cert), Some(cfg.names.clone()));
        let kept = std::fs::read(&cert).unwrap();
        std::fs::remove_file(&key).unwrap();
        serving_pair(&cfg).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), kept);
        handshake(dir.path(), &cfg, "layerlet-w1").unwrap();
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
