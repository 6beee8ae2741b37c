//! The kubelet API of `layerlet agent --kubelet-listen`, with real clients: kubectl (through
//! a stand-in for the API server's node proxy, see kubelet_support) for logs and exec over
//! SPDY and WebSocket, curl for refusals, stats and metrics, promtool for the metrics text.
//! Real pods of the busybox test image; traffic on loopback only.

mod common;
mod kubelet_support;
#[path = "common/mock_kube.rs"]
mod mock_kube;
mod support;

use std::process::{Command, Stdio};

use common::{busybox_node, unique, Agent};
use kubelet_support::harness::{
    container, run_kubectl, setup, setup_with, text, wait_running, write_pod, Cred, DEADLINE,
};
use kubelet_support::kubectl;
use mock_kube::MockKube;
use serde_json::Value;

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
    // A literal `..` segment (curl sends it as it is): 400, and the exec it hides never runs.
    let (code, _) = s.curl_as(
        Cred::Cert(&s.pki),
        "GET",
        &format!("/containerLogs/../{pod}/app"),
        &["--path-as-is"],
    );
    assert_eq!(code, 400);
    let (code, _) = s.curl_as(
        Cred::Cert(&s.pki),
        "POST",
        &format!("/exec/default/{pod}/../app?command=touch&command={marker}&output=1"),
        &["--path-as-is"],
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
    // kubectl falls back to SPDY when a WebSocket upgrade is refused: check what it used.
    let want_upgrade = if spdy { "spdy/3.1" } else { "websocket" };
    let used = proxy.upgrades_to("/exec/");
    assert!(
        used.len() >= 6 && used.iter().all(|u| u == want_upgrade),
        "{used:?}"
    );
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

/// The webhook mode against the mock API server's TokenReview and SubjectAccessReview:
/// kubectl's exec forwarded with a bearer token the API server does not know (401), with
/// one whose user may not create nodes/proxy (403), and with one allowed (it runs); a marker
/// file the exec would create proves nothing ran before. Then kubelet's mapping of paths and
/// methods to node subresources and verbs, read from the reviews the mock received, and
/// their caching.
#[test]
fn webhook_mode_asks_the_api_server_and_refuses_before_anything_runs() {
    let node = busybox_node();
    let mock = MockKube::start();
    let kubeconfig = mock.kubeconfig(node.dir.path());
    let node_name = unique("webhook-node");
    let s = setup_with(
        &node,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--node-name",
            &node_name,
            "--authorization-mode",
            "Webhook",
        ],
    );
    mock.add_token("alice-token", "alice", &["devs"]);
    mock.add_token("bob-token", "bob", &["devs"]);
    // The API server's certificate may do everything on nodes (the proxy's pod lookups);
    // bob may only read through nodes/proxy; alice may read everything and create
    // nodes/proxy (exec over SPDY is a POST), but not delete.
    mock.allow("kube-apiserver-kubelet-client", "*", "nodes", "*");
    mock.allow("bob", "get", "nodes", "proxy");
    for sub in ["stats", "metrics", "log", "proxy"] {
        mock.allow("alice", "get", "nodes", sub);
    }
    mock.allow("alice", "create", "nodes", "proxy");
    let pod = unique("webhook");
    write_pod(&s.agent, &pod, &container("app", "sleep 3600"));
    wait_running(&s.agent, &pod);
    let marker = "/tmp/executed";
    let executed = || {
        node.run(&["exec", &format!("default/{pod}/app"), "--", "ls", marker])
            .status
            .success()
    };
    let touch = ["exec", &pod, "-c", "app", "--", "touch", marker];

    // An unknown token: 401 from the TokenReview, no access review, nothing run.
    let proxy = s.token_proxy("mallory-token");
    let kc = proxy.kubeconfig(node.dir.path());
    let out = run_kubectl(&kc, true, &touch, None);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Unauthorized"), "{err}");
    assert!(!executed(), "the exec of an unknown token ran");
    let reviews = mock.token_reviews();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(reviews[0]["kind"], "TokenReview");
    assert_eq!(reviews[0]["spec"]["token"], "mallory-token");
    assert!(mock
        .access_reviews()
        .iter()
        .all(|r| r["spec"]["user"] != "mallory"));
    // The failed review is cached as kubelet caches it: no second TokenReview.
    assert_eq!(
        s.curl_as(Cred::Token("mallory-token"), "GET", "/pods", &[]),
        (401, "Unauthorized".to_string())
    );
    assert_eq!(mock.token_reviews().len(), 1);

    // bob is authenticated but may not create nodes/proxy: 403 with kubelet's message.
    let proxy = s.token_proxy("bob-token");
    let kc = proxy.kubeconfig(node.dir.path());
    let out = run_kubectl(&kc, true, &touch, None);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Forbidden (user=bob, verb=create, resource=nodes, subresource=proxy)"),
        "{err}"
    );
    assert!(!executed(), "the exec of a forbidden user ran");
    let bob: Vec<Value> = mock
        .access_reviews()
        .into_iter()
        .filter(|r| r["spec"]["user"] == "bob")
        .collect();
    assert_eq!(bob.len(), 1, "{bob:?}");
    let spec = &bob[0]["spec"];
    assert_eq!(spec["uid"], "uid-bob");
    let groups: Vec<&str> = spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        groups.contains(&"devs") && groups.contains(&"system:authenticated"),
        "{spec}"
    );
    let ra = &spec["resourceAttributes"];
    assert_eq!(
        (
            &ra["verb"],
            &ra["resource"],
            &ra["subresource"],
            &ra["name"]
        ),
        (
            &Value::from("create"),
            &Value::from("nodes"),
            &Value::from("proxy"),
            &Value::from(node_name.as_str())
        ),
        "{spec}"
    );

    // alice may: the exec runs.
    let proxy = s.token_proxy("alice-token");
    let kc = proxy.kubeconfig(node.dir.path());
    let out = run_kubectl(&kc, true, &touch, None);
    assert!(out.status.success(), "{out:?}");
    assert!(executed(), "the allowed exec did not run");

    // kubelet's mapping: the path picks the subresource, the method the verb.
    let pod_path = format!("/exec/default/{pod}/app?command=true&output=1");
    let cases: [(&str, &str, u16, &str, &str); 7] = [
        ("GET", "/stats/summary", 200, "get", "stats"),
        ("GET", "/metrics/cadvisor", 200, "get", "metrics"),
        ("GET", "/metrics/resource", 200, "get", "metrics"),
        ("GET", "/logs/", 404, "get", "log"),
        ("GET", "/pods", 200, "get", "proxy"),
        ("DELETE", "/pods", 403, "delete", "proxy"),
        ("PUT", &pod_path, 403, "update", "proxy"),
    ];
    for (method, path, code, verb, sub) in cases {
        let before = mock.access_reviews().len();
        let (got, body) = s.curl_as(Cred::Token("alice-token"), method, path, &[]);
        assert_eq!(got, code, "{method} {path}: {body}");
        let after = mock.access_reviews();
        let asked: Vec<(String, String)> = after[before..]
            .iter()
            .map(|r| {
                let ra = &r["spec"]["resourceAttributes"];
                (
                    ra["verb"].as_str().unwrap_or_default().to_string(),
                    ra["subresource"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        // GET /metrics/resource shares its attributes with /metrics/cadvisor: cached.
        let want = if path == "/metrics/resource" {
            vec![]
        } else {
            vec![(verb.to_string(), sub.to_string())]
        };
        assert_eq!(asked, want, "{method} {path}");
        if code == 403 {
            assert_eq!(
                body,
                format!("Forbidden (user=alice, verb={verb}, resource=nodes, subresource={sub})")
            );
        }
    }
    // alice's exec above was a POST: create nodes/proxy, asked once and cached since.
    let alice_creates = mock
        .access_reviews()
        .iter()
        .filter(|r| {
            r["spec"]["user"] == "alice" && r["spec"]["resourceAttributes"]["verb"] == "create"
        })
        .count();
    assert_eq!(alice_creates, 1);
    let tokens = mock.token_reviews();
    let alice_tokens = tokens
        .iter()
        .filter(|r| r["spec"]["token"] == "alice-token")
        .count();
    assert_eq!(alice_tokens, 1, "the TokenReview of alice is cached");
    // A certificate of another CA is refused before any review is asked for.
    let (before_t, before_a) = (mock.token_reviews().len(), mock.access_reviews().len());
    assert_eq!(
        s.curl(Some(&s.other), "GET", "/pods"),
        (401, "Unauthorized".to_string())
    );
    assert_eq!(
        (mock.token_reviews().len(), mock.access_reviews().len()),
        (before_t, before_a)
    );
}
