//! A real OCI distribution registry (`docker-registry serve`, distribution v2.8) per test.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, http};

/// Path of the Debian `docker-registry` package's binary.
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// How long to wait for `GET /v2/` to answer after starting the process.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry on `127.0.0.1:<free port>`, with its own storage, config and log in a
/// temporary directory. Dropping it kills and reaps the process and removes the directory.
pub struct Registry {
    child: Child,
    port: u16,
    auth: Option<(String, String)>,
    // Removed when the struct's fields drop, i.e. after Drop::drop has reaped the process.
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts an anonymous (no auth) registry.
    pub fn start() -> Registry {
        Self::start_inner(None)
    }

    /// Starts a registry that demands HTTP basic auth for every `/v2/` request.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Self::start_inner(Some((user.to_string(), password.to_string())))
    }

    fn start_inner(auth: Option<(String, String)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("layerlet-registry-")
            .tempdir()
            .expect("registry: creating its temp dir failed");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("registry: creating storage dir failed");

        let auth_yaml = match &auth {
            None => String::new(),
            Some((user, password)) => {
                let htpasswd = dir.path().join("htpasswd");
                write_htpasswd(&htpasswd, user, password);
                format!(
                    "auth:\n  htpasswd:\n    realm: layerlet-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
        };

        let port = free_port();
        // `redirect.disable` is explicit although the filesystem driver cannot redirect anyway:
        // blob GETs must be answered by the registry itself (200 + body), never with a 307 to
        // some storage backend, so that DroppingProxy sees the blob bytes.
        // `http.secret` is fixed to silence the "No HTTP secret provided" warning.
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: layerlet-test-secret\n\
             {auth_yaml}",
            storage = storage.display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("registry: writing config.yml failed");

        let log_path = dir.path().join("registry.log");
        let log = File::create(&log_path).expect("registry: creating registry.log failed");
        let log_err = log
            .try_clone()
            .expect("registry: cloning log handle failed");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("registry: spawning `{REGISTRY_BIN} serve` failed: {e} (is the docker-registry package installed?)")
            });

        let mut registry = Registry {
            child,
            port,
            auth,
            dir,
        };
        registry.wait_ready();
        registry
    }

    /// Polls `GET /v2/` until it answers 200 (anonymous) or 401 (auth required).
    fn wait_ready(&mut self) {
        let addr = self.addr();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "registry on {addr} exited during startup with {status}; its log:\n{}",
                    self.log()
                );
            }
            let last = match http::get(&addr, "/v2/", &[]) {
                Ok(resp) if resp.status == 200 || resp.status == 401 => return,
                Ok(resp) => format!("GET /v2/ answered {}", resp.status),
                Err(e) => format!("GET /v2/ failed: {e}"),
            };
            if Instant::now() > deadline {
                panic!(
                    "registry on {addr} not ready after {START_TIMEOUT:?} (last: {last}); its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// "127.0.0.1:PORT", usable as the registry part of an image reference.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `addr()/repo:tag`, a full image reference.
    pub fn image_ref(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.addr())
    }

    /// The (user, password) this registry was started with, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's temp dir (config.yml, registry.log, storage/, htpasswd).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Root of the registry's filesystem storage (to inspect or corrupt stored blobs).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Path of the stored blob `digest` ("sha256:..."), following distribution's layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("registry.blob_path: {digest:?} is not a sha256 digest"));
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's log so far (stdout + stderr, including its access log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log"))
            .unwrap_or_else(|e| format!("<cannot read registry.log: {e}>"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL; the registry holds no state worth a graceful shutdown.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes an htpasswd file with a bcrypt entry (`htpasswd -Bbn`); distribution only accepts
/// bcrypt hashes.
fn write_htpasswd(path: &Path, user: &str, password: &str) {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .expect("registry: running `htpasswd` failed (is apache2-utils installed?)");
    assert!(
        out.status.success(),
        "registry: `htpasswd -Bbn` failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path, &out.stdout).expect("registry: writing htpasswd file failed");
}
