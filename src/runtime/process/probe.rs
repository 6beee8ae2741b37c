//! The effectful edge of probes and lifecycle hooks: run one handler once and say whether it
//! passed. Blocking; the agent calls these from blocking tasks.
//!
//! - exec: `layerlet exec` re-executed in a process group of its own (it forks and joins the
//!   container's namespaces, which a threaded caller must not do itself); on timeout the whole
//!   group is SIGKILLed, the command in the container included.
//! - httpGet and tcpSocket: the socket is made on a fresh thread that joined the pod's pinned
//!   network namespace (or the host's for hostNetwork), so "127.0.0.1" is the pod's loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sched::{setns, CloneFlags};

use crate::pod::spec::{HttpGet, HttpScheme, PortRef};

/// Probe output kept in messages, as kubelet caps it.
const MAX_OUTPUT: usize = 10 * 1024;

/// One run's result: passed or not, and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
}

impl Outcome {
    fn fail(message: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            message: message.into(),
        }
    }
}

/// Where handlers of one container run.
#[derive(Debug, Clone)]
pub struct Target {
    /// The layerlet binary, and the roots it is told.
    pub exe: PathBuf,
    pub root: PathBuf,
    pub run_root: PathBuf,
    pub container_id: String,
    /// The pod's pinned network namespace; None: the host's.
    pub netns: Option<PathBuf>,
}

/// Runs `command` in the container; exit 0 passes. Past `timeout` the command (and
/// everything it started in its process group) is killed and the run fails. What a command
/// that finished in time left running (a hook starting a daemon) is left alone, as kubelet.
pub fn exec(target: &Target, command: &[String], timeout: Duration) -> Outcome {
    let (read, write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Outcome::fail(format!("pipe: {e}")),
    };
    let write2 = match write.try_clone() {
        Ok(w) => w,
        Err(e) => return Outcome::fail(format!("pipe: {e}")),
    };
    let mut cmd = Command::new(&target.exe);
    cmd.arg("--root")
        .arg(&target.root)
        .arg("--run-root")
        .arg(&target.run_root)
        .arg("--log-level")
        .arg("error")
        .arg("exec")
        .arg(&target.container_id)
        .arg("--")
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::fail(format!("run {}: {e}", target.exe.display())),
    };
    drop(cmd); // our copies of the write ends: the reader sees EOF when the group is done
    let output = read_output(read);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Outcome::fail(format!("wait for the probe: {e}")),
        }
    };
    let Some(status) = status else {
        // The whole group: `layerlet exec`, its fork in the container's namespaces and the
        // command. The child is not reaped yet, so the group id cannot have been reused.
        // SAFETY: kill(2) of the process group we created (its id is the child's pid).
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
        return Outcome::fail(format!(
            "command {:?} timed out after {}s",
            command.join(" "),
            timeout.as_secs_f64()
        ));
    };
    let text = output
        .recv_timeout(Duration::from_millis(500))
        .unwrap_or_default();
    match status.code() {
        Some(0) => Outcome {
            ok: true,
            message: text,
        },
        Some(code) => Outcome::fail(if text.is_empty() {
            format!("command {:?} exited with {code}", command.join(" "))
        } else {
            text
        }),
        None => Outcome::fail(format!("command {:?} was killed", command.join(" "))),
    }
}

/// Reads at most [`MAX_OUTPUT`] bytes of a pipe on a thread until EOF.
fn read_output(read: OwnedFd) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut file = std::fs::File::from(read);
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = MAX_OUTPUT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        let _ = tx.send(String::from_utf8_lossy(&kept).trim_end().to_string());
    });
    rx
}

/// Runs `f` on a new thread inside the network namespace `netns` (None: the caller's).
fn in_netns<T: Send + 'static>(
    netns: Option<&Path>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let ns = match netns {
        Some(path) => Some(
            std::fs::File::open(path)
                .map_err(|e| format!("open network namespace {}: {e}", path.display()))?,
        ),
        None => None,
    };
    // A thread of its own: it is the only one to switch namespaces, and it ends afterwards.
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("join the pod's network namespace: {e}"))?;
        }
        Ok(f())
    })
    .join()
    .map_err(|_| "probe thread panicked".to_string())?
}

fn address(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Opens a TCP connection to `host:port` (default host: the pod's IP, its loopback here).
pub fn tcp(netns: Option<&Path>, host: Option<&str>, port: u16, timeout: Duration) -> Outcome {
    let host = host.unwrap_or("127.0.0.1").to_string();
    let result = in_netns(netns, move || -> Result<(), String> {
        let addr = address(&host, port)?;
        TcpStream::connect_timeout(&addr, timeout)
            .map(drop)
            .map_err(|e| format!("dial tcp {addr}: {e}"))
    });
    match result.and_then(|r| r) {
        Ok(()) => Outcome {
            ok: true,
            message: String::new(),
        },
        Err(e) => Outcome::fail(e),
    }
}

/// GETs the URL that `get` describes, on `port` (resolved); 200-399 passes.
/// HTTPS as kubelet does it: encrypted, the server's certificate not verified.
pub fn http_get(netns: Option<&Path>, get: &HttpGet, port: u16, timeout: Duration) -> Outcome {
    let get = get.clone();
    let result = in_netns(netns, move || request(&get, port, timeout));
    match result.and_then(|r| r) {
        Ok(code) if (200..400).contains(&code) => Outcome {
            ok: true,
            message: String::new(),
        },
        Ok(code) => Outcome::fail(format!("HTTP probe failed with statuscode: {code}")),
        Err(e) => Outcome::fail(e),
    }
}

fn request(get: &HttpGet, port: u16, timeout: Duration) -> Result<u16, String> {
    let deadline = Instant::now() + timeout;
    let host = get.host.clone().unwrap_or_else(|| "127.0.0.1".to_string());
    let path = if get.path.starts_with('/') {
        get.path.clone()
    } else {
        format!("/{}", get.path)
    };
    let https = get.scheme == HttpScheme::Https;
    let url = format!(
        "{}://{host}:{port}{path}",
        if https { "https" } else { "http" }
    );
    let fail = |e: &dyn std::fmt::Display| format!("Get {url:?}: {e}");
    let addr = address(&host, port).map_err(|e| fail(&e))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| fail(&format!("dial tcp {addr}: {e}")))?;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(1))
    };
    // One budget for the whole exchange, TLS handshake included.
    tcp.set_read_timeout(Some(remaining()))
        .and_then(|_| tcp.set_write_timeout(Some(remaining())))
        .map_err(|e| fail(&e))?;
    let mut stream: Box<dyn ReadWrite> = if https {
        Box::new(tls::connect(&host, tcp).map_err(|e| fail(&e))?)
    } else {
        Box::new(tcp)
    };
    let mut head = format!("GET {path} HTTP/1.1\r\n");
    let has = |name: &str| {
        get.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    if !has("host") {
        head.push_str(&format!("Host: {host}:{port}\r\n"));
    }
    if !has("user-agent") {
        head.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        head.push_str("Accept: */*\r\n");
    }
    for h in &get.headers {
        // Validation refused names with separators; values lose any line break.
        let value: String = h
            .value
            .chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .collect();
        head.push_str(&format!("{}: {value}\r\n", h.name));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.flush())
        .map_err(|e| fail(&e))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.contains(&b'\n') && got.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(fail(&format!(
                    "timed out after {} awaiting headers",
                    secs(timeout)
                )))
            }
            Err(e) => return Err(fail(&e)),
        }
    }
    status_code(&got).ok_or_else(|| fail(&"malformed HTTP response"))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// TLS for HTTPS probes: kubelet does not verify the server's certificate (probes reach pods
/// by IP, with whatever certificate they serve), and neither does this.
mod tls {
    use std::net::TcpStream;
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AnyCertificate(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    pub fn connect(
        host: &str,
        tcp: TcpStream,
    ) -> Result<rustls::StreamOwned<ClientConnection, TcpStream>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("TLS server name {host:?}: {e}"))?;
        let conn =
            ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
        Ok(rustls::StreamOwned::new(conn, tcp))
    }
}

/// The status code of an HTTP/1.x response's first line.
fn status_code(response: &[u8]) -> Option<u16> {
    let line = response.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// A port given by number or by the name of one of the container's ports.
pub fn resolve_port(port: &PortRef, ports: &[crate::pod::spec::ContainerPort]) -> Option<u16> {
    match port {
        PortRef::Number(n) => Some(*n),
        PortRef::Name(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn get(path: &str) -> HttpGet {
        HttpGet {
            path: path.into(),
            port: PortRef::Number(0),
            host: None,
            scheme: HttpScheme::Http,
            headers: vec![crate::pod::spec::HttpHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            }],
        }
    }

    /// A one-shot server answering `status`; returns the request it saw.
    fn serve(status: u16) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            write!(s, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").unwrap();
            String::from_utf8(req).unwrap()
        });
        (port, handle)
    }

    #[test]
    fn http_get_passes_on_2xx_3xx_and_sends_path_and_headers() {
        for (status, ok) in [
            (200, true),
            (302, true),
            (399, true),
            (404, false),
            (500, false),
        ] {
            let (port, server) = serve(status);
            let out = http_get(None, &get("/healthz"), port, Duration::from_secs(2));
            assert_eq!(out.ok, ok, "{status}: {out:?}");
            let req = server.join().unwrap();
            assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
            assert!(req.contains("\r\nX-Probe: yes\r\n"), "{req}");
            if !ok {
                assert_eq!(
                    out.message,
                    format!("HTTP probe failed with statuscode: {status}")
                );
            }
        }
    }

    #[test]
    fn tcp_and_http_fail_with_the_dial_error_when_nothing_listens() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = tcp(None, None, port, Duration::from_secs(1));
        assert!(!out.ok);
        assert!(out
            .message
            .starts_with(&format!("dial tcp 127.0.0.1:{port}: ")));
        let out = http_get(None, &get("/"), port, Duration::from_secs(1));
        assert!(!out.ok && out.message.contains("dial tcp"), "{out:?}");
    }

    #[test]
    fn an_http_server_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let started = Instant::now();
        let out = http_get(None, &get("/"), port, Duration::from_millis(300));
        assert!(!out.ok && out.message.contains("timed out"), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }

    #[test]
    fn https_is_spoken_without_verifying_the_certificate() {
        // A self-signed certificate, served by the real `openssl s_server` (its -www page
        // answers every GET with 200).
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=probe.invalid", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(made.status.success(), "{made:?}");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
            .arg("-key")
            .arg(&key)
            .arg("-cert")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let mut https = get("/");
        https.scheme = HttpScheme::Https;
        let deadline = Instant::now() + Duration::from_secs(10);
        let out = loop {
            let out = http_get(None, &https, port, Duration::from_secs(2));
            if out.ok || Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Plain HTTP to the TLS port gets no HTTP status line.
        let plain = http_get(None, &get("/"), port, Duration::from_secs(2));
        let _ = server.kill();
        let _ = server.wait();
        assert!(out.ok, "{out:?}");
        assert!(!plain.ok, "{plain:?}");
    }

    #[test]
    fn status_codes_are_read_from_http_1_status_lines_only() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[test]
    fn named_ports_resolve_through_the_containers_ports() {
        let ports = vec![crate::pod::spec::ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            protocol: Default::default(),
            host_port: None,
            host_ip: None,
        }];
        assert_eq!(
            resolve_port(&PortRef::Name("http".into()), &ports),
            Some(8080)
        );
        assert_eq!(resolve_port(&PortRef::Name("grpc".into()), &ports), None);
        assert_eq!(resolve_port(&PortRef::Number(9), &ports), Some(9));
    }
}
