//! The OCI distribution protocol, through `oci-client`: manifests, small blobs, and layer
//! streams handed to a blocking unpacker through a bounded channel.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tokio::sync::mpsc;

use super::auth::{credentials_for, AuthError};
use super::digest::Digest;
use super::manifest::ACCEPTED_MANIFESTS;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: {message}")]
    Request { reference: String, message: String },
    #[error("{reference}: the registry refused the credentials ({message}); check auths.{registry} in {auth_file}")]
    Unauthorized {
        reference: String,
        registry: String,
        auth_file: String,
        message: String,
    },
    #[error("{reference}: not found in the registry ({message}); check the name and tag")]
    NotFound { reference: String, message: String },
    #[error("{reference}: the registry answered manifest {what} with digest {actual}, not the {expected} asked for")]
    ManifestDigest {
        reference: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "{reference}: {what} is {size} bytes, more than the {limit} bytes layerlet accepts for it"
    )]
    TooLarge {
        reference: String,
        what: String,
        size: u64,
        limit: u64,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Manifests and configs are small; a registry answering gigabytes for one is hostile.
pub const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (HOST:PORT) reached over plain HTTP, as Docker's --insecure-registry.
    pub insecure: Vec<String>,
    /// Docker-style config.json with credentials.
    pub auth_file: Option<PathBuf>,
}

/// Loopback registries are reached over plain HTTP, as Docker does.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub struct RegistryClient {
    client: Client,
    reference: Reference,
    auth_file: String,
}

fn classify(reference: &Reference, auth_file: &str, e: OciDistributionError) -> RegistryError {
    let message = e.to_string();
    let whole = reference.whole();
    match e {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => RegistryError::Unauthorized {
            reference: whole,
            registry: reference.registry().to_string(),
            auth_file: auth_file.to_string(),
            message,
        },
        OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
            reference: whole,
            message,
        },
        OciDistributionError::ServerError { code: 404, .. } => RegistryError::NotFound {
            reference: whole,
            message,
        },
        OciDistributionError::ServerError { code: 401, .. }
        | OciDistributionError::ServerError { code: 403, .. } => RegistryError::Unauthorized {
            reference: whole,
            registry: reference.registry().to_string(),
            auth_file: auth_file.to_string(),
            message,
        },
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::Unauthorized
                        | oci_client::errors::OciErrorCode::Denied
                )
            }) =>
        {
            RegistryError::Unauthorized {
                reference: whole,
                registry: reference.registry().to_string(),
                auth_file: auth_file.to_string(),
                message,
            }
        }
        OciDistributionError::RegistryError { ref envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                        | oci_client::errors::OciErrorCode::BlobUnknown
                )
            }) =>
        {
            RegistryError::NotFound {
                reference: whole,
                message,
            }
        }
        _ => RegistryError::Request {
            reference: whole,
            message: full_chain(&e),
        },
    }
}

/// An error with its causes, so "connection closed before message completed" is not lost
/// behind "error sending request".
fn full_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl RegistryClient {
    /// A client for `reference`'s registry, authenticated with the credentials the auth file
    /// has for it (anonymous when none).
    pub async fn connect(
        reference: &Reference,
        options: &RegistryOptions,
    ) -> Result<Self, RegistryError> {
        let registry = reference.resolve_registry().to_string();
        let mut plain_http = options.insecure.clone();
        if is_loopback_registry(&registry) {
            plain_http.push(registry.clone());
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http),
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            user_agent: concat!("layerlet/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::new(config);
        let auth_path = options
            .auth_file
            .clone()
            .or_else(super::auth::default_auth_file);
        let auth_file = auth_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config.json".to_string());
        let auth = match &auth_path {
            Some(path) => match credentials_for(path, reference.registry())? {
                Some(c) => RegistryAuth::Basic(c.username, c.password),
                None => RegistryAuth::Anonymous,
            },
            None => RegistryAuth::Anonymous,
        };
        client
            .auth(reference, &auth, RegistryOperation::Pull)
            .await
            .map_err(|e| classify(reference, &auth_file, e))?;
        Ok(RegistryClient {
            client,
            reference: reference.clone(),
            auth_file,
        })
    }

    fn error(&self, e: OciDistributionError) -> RegistryError {
        classify(&self.reference, &self.auth_file, e)
    }

    /// Fetches a manifest (or index) by tag or digest; the bytes are checked against the digest
    /// when one was asked for.
    pub async fn manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(reference, &RegistryAuth::Anonymous, ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| self.error(e))?;
        if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(RegistryError::TooLarge {
                reference: reference.whole(),
                what: "the manifest".into(),
                size: bytes.len() as u64,
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let actual = Digest::of_bytes(&bytes);
        if let Some(expected) = reference.digest() {
            let expected = Digest::parse(expected).map_err(|e| RegistryError::Request {
                reference: reference.whole(),
                message: e.to_string(),
            })?;
            if expected != actual {
                return Err(RegistryError::ManifestDigest {
                    reference: reference.whole(),
                    what: "bytes".into(),
                    expected,
                    actual,
                });
            }
        }
        Ok((bytes.to_vec(), actual))
    }

    /// Fetches a small blob (a config) whole. Verification is the caller's, against the
    /// descriptor.
    pub async fn small_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>, RegistryError> {
        if size > MAX_DOCUMENT_BYTES {
            return Err(RegistryError::TooLarge {
                reference: self.reference.whole(),
                what: format!("blob {digest}"),
                size,
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let digest_text = digest.to_string();
        let stream = self
            .client
            .pull_blob_stream(&self.reference, digest_text.as_str())
            .await
            .map_err(|e| self.error(e))?;
        let mut out = Vec::with_capacity(size as usize);
        let mut stream = stream.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::Request {
                reference: self.reference.whole(),
                message: format!("blob {digest}: {}", full_chain(&e)),
            })?;
            if (out.len() + chunk.len()) as u64 > MAX_DOCUMENT_BYTES {
                return Err(RegistryError::TooLarge {
                    reference: self.reference.whole(),
                    what: format!("blob {digest}"),
                    size: (out.len() + chunk.len()) as u64,
                    limit: MAX_DOCUMENT_BYTES,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Starts streaming a layer blob; the returned reader is for a blocking thread.
    pub fn layer_reader(&self, digest: &Digest) -> (ChannelReader, TransferStatus) {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(64);
        let status = TransferStatus::default();
        let client = self.client.clone();
        let reference = self.reference.clone();
        let digest_text = digest.to_string();
        let task_status = status.clone();
        tokio::spawn(async move {
            let fail = |message: String| {
                task_status.set(message.clone());
                io::Error::new(io::ErrorKind::ConnectionAborted, message)
            };
            let stream = match client
                .pull_blob_stream(&reference, digest_text.as_str())
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(fail(full_chain(&e)))).await;
                    return;
                }
            };
            let mut stream = stream.stream;
            while let Some(chunk) = stream.next().await {
                let item = chunk.map_err(|e| fail(full_chain(&e)));
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        (
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
            status,
        )
    }
}

/// Set when a layer transfer failed on the network side (as opposed to bad content).
#[derive(Debug, Clone, Default)]
pub struct TransferStatus(Arc<Mutex<Option<String>>>);

impl TransferStatus {
    fn set(&self, message: String) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(message);
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

/// A blocking `Read` over chunks sent by an async task.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognised() {
        assert!(is_loopback_registry("localhost:5000"));
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("127.1.2.3"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("registry.example.com:5000"));
        assert!(!is_loopback_registry("10.0.0.1:5000"));
    }
}
