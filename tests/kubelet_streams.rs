//! The kubelet API's long-lived streams with real kubectl through the node-proxy stand-in
//! (kubelet_support): `kubectl port-forward` to a busybox httpd inside a pod's network
//! namespace, `kubectl attach` to the stdin of a container started with `stdin: true` (with
//! and without a terminal), both over SPDY and WebSockets; and 50 execs with 50 followed
//! logs at once while a static pod must still start. Pods keep loopback only
//! (LAYERLET_POD_NETWORK=none): every byte stays on loopback or inside a pod's namespace.

mod common;
mod kubelet_support;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{busybox_node, unique, Agent};
use kubelet_support::harness::{
    container, is_running, kubectl_cmd, setup, text, wait_running, write_pod, write_pod_spec, IMAGE,
};

/// A line of the file httpd serves; the test knows the whole file without reading the pod.
fn served_line(i: usize) -> String {
    format!("line {i} of the file the pod serves\n")
}

const SERVED_LINES: usize = 12_000;

/// `kubectl port-forward POD :8080`: the child and the local port it announced.
fn start_port_forward(kc: &std::path::Path, spdy: bool, pod: &str, remote: u16) -> (Child, u16) {
    let mut child = kubectl_cmd(kc, spdy)
        .args([
            "port-forward",
            "--address",
            "127.0.0.1",
            pod,
            &format!(":{remote}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    // "Forwarding from 127.0.0.1:PORT -> 8080"
    let port: Option<u16> = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok());
    let Some(port) = port else {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "kubectl port-forward said {line:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // Keep draining stdout ("Handling connection for ..."), so kubectl never blocks on it.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = lines.read_to_end(&mut sink);
    });
    (child, port)
}

fn curl_local(port: u16, path: &str) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl")
}

fn port_forward_suite(spdy: bool) {
    let node = busybox_node();
    let s = setup(&node);
    let pod = unique(if spdy { "pf-spdy" } else { "pf-ws" });
    let script = format!(
        "mkdir -p /www && i=0; while [ $i -lt {SERVED_LINES} ]; do echo \"line $i of the file the pod serves\"; i=$((i+1)); done > /www/data.txt && exec busybox httpd -f -p 127.0.0.1:8080 -h /www"
    );
    write_pod(&s.agent, &pod, &container("web", &script));
    wait_running(&s.agent, &pod);
    // httpd listens on the pod's own loopback only: the host cannot reach it, only a dial
    // from inside the pod's network namespace can.
    s.agent.wait_for(
        "httpd to serve inside the pod",
        Duration::from_secs(60),
        || {
            node.run(&[
                "exec",
                &format!("default/{pod}/web"),
                "--",
                "busybox",
                "timeout",
                "5",
                "busybox",
                "wget",
                "-q",
                "-O",
                "/dev/null",
                "http://127.0.0.1:8080/data.txt",
            ])
            .status
            .success()
            .then_some(())
        },
    );
    let want: String = (0..SERVED_LINES).map(served_line).collect();
    let proxy = s.proxy();
    let kc = proxy.kubeconfig(node.dir.path());
    let (mut pf, port) = start_port_forward(&kc, spdy, &pod, 8080);
    // Several connections, one after another and two at once: each is a stream pair of
    // its own; the file is many flow-control windows long.
    for round in 0..3 {
        let out = curl_local(port, "/data.txt");
        assert!(out.status.success(), "fetch {round}: {out:?}");
        assert_eq!(out.stdout.len(), want.len(), "fetch {round}");
        assert!(text(&out) == want, "fetch {round}: the content differs");
    }
    let both: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || curl_local(port, "/data.txt")))
        .collect();
    for t in both {
        let out = t.join().unwrap();
        assert!(
            out.status.success() && text(&out) == want,
            "{:?}",
            out.status
        );
    }
    let missing = curl_local(port, "/nosuch.txt");
    assert!(
        text(&missing).contains("404"),
        "httpd's own 404 comes back: {missing:?}"
    );
    assert!(
        pf.try_wait().unwrap().is_none(),
        "kubectl port-forward ended"
    );
    let _ = pf.kill();
    let _ = pf.wait();
    // kubectl falls back to SPDY when a WebSocket upgrade is refused: check what it used.
    let want_upgrade = if spdy { "spdy/3.1" } else { "websocket" };
    let used = proxy.upgrades_to("/portForward/");
    assert!(
        !used.is_empty() && used.iter().all(|u| u == want_upgrade),
        "{used:?}"
    );
    // A port nothing listens on in the pod: the connection fails and kubectl hears why.
    let (mut pf, port) = start_port_forward(&kc, spdy, &pod, 9);
    let out = curl_local(port, "/");
    assert!(
        !out.status.success() || out.stdout.is_empty(),
        "a closed port answered: {out:?}"
    );
    let _ = pf.kill();
    let out = pf.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:9"), "kubectl's error: {err}");
}

#[test]
fn kubectl_port_forward_over_spdy_reaches_httpd_in_the_pods_namespace() {
    port_forward_suite(true);
}

#[test]
fn kubectl_port_forward_over_websockets_reaches_httpd_in_the_pods_namespace() {
    port_forward_suite(false);
}

/// Reads a child's stdout on a thread: every chunk goes to `tx`.
fn pump_stdout(child: &mut Child) -> mpsc::Receiver<Vec<u8>> {
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Collects from `rx` into `got` until it contains `want`; panics after `within`.
fn read_until(rx: &mpsc::Receiver<Vec<u8>>, got: &mut Vec<u8>, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !String::from_utf8_lossy(got).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => got.extend_from_slice(&chunk),
            Err(_) => panic!(
                "no {want:?} within {within:?}; got {:?}",
                String::from_utf8_lossy(got)
            ),
        }
    }
}

/// The container answers each line of its stdin with `TERMINAL:LINE` or `PIPE:LINE`, upper
/// case: the answer cannot be a terminal's echo of the input, and says whether stdin is a
/// terminal.
const ANSWER: &str =
    "while read l; do if [ -t 0 ]; then t=terminal; else t=pipe; fi; echo \"$t:$l\" | tr a-z A-Z; done";

fn attach_pod(agent: &Agent, name: &str, tty: bool) {
    write_pod_spec(
        agent,
        name,
        &format!(
            "  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {IMAGE}\n    imagePullPolicy: Never\n    stdin: true\n    tty: {tty}\n    command: [\"sh\", \"-c\", {}]\n",
            common::quoted(ANSWER)
        ),
    );
}

#[test]
fn kubectl_attach_reaches_the_stdin_of_a_container_started_with_stdin_with_and_without_a_tty() {
    let node = busybox_node();
    let s = setup(&node);
    let plain = unique("attach-plain");
    let tty = unique("attach-tty");
    attach_pod(&s.agent, &plain, false);
    attach_pod(&s.agent, &tty, true);
    wait_running(&s.agent, &plain);
    wait_running(&s.agent, &tty);
    let proxy = s.proxy();
    let kc = proxy.kubeconfig(node.dir.path());
    let within = Duration::from_secs(30);
    for spdy in [true, false] {
        let before = proxy.upgrades_to("/attach/").len();
        // Without a terminal: kubectl attach -i with a pipe for stdin.
        let word = if spdy { "spdy" } else { "websocket" };
        let mut attach = kubectl_cmd(&kc, spdy)
            .args(["attach", "-i", &plain, "-c", "app"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = pump_stdout(&mut attach);
        let mut stdin = attach.stdin.take().unwrap();
        let mut got = Vec::new();
        // kubectl may connect after the first line was written: the stdin pipe holds it
        // until then, and the container answers once it arrives.
        for n in 0..2 {
            writeln!(stdin, "hello-{word}-{n}").unwrap();
            stdin.flush().unwrap();
            read_until(
                &rx,
                &mut got,
                &format!("PIPE:HELLO-{}-{n}", word.to_uppercase()),
                within,
            );
        }
        let _ = attach.kill();
        let _ = attach.wait();
        // With a terminal: kubectl asks for one only when its own stdin is a terminal, and
        // `script` gives it one; the container's stdin is then the terminal.
        let line = format!(
            "{} --kubeconfig {} attach -it {tty} -c app",
            kubelet_support::kubectl().display(),
            kc.display()
        );
        let ws = if spdy { "false" } else { "true" };
        let mut script = Command::new("script")
            .args(["-qefc", &line, "/dev/null"])
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", ws)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = pump_stdout(&mut script);
        let mut stdin = script.stdin.take().unwrap();
        let mut got = Vec::new();
        // kubectl prints its hint once attached; only then is its terminal in raw mode.
        read_until(&rx, &mut got, "If you don't see a command prompt", within);
        writeln!(stdin, "over-{word}").unwrap();
        stdin.flush().unwrap();
        read_until(
            &rx,
            &mut got,
            &format!("TERMINAL:OVER-{}", word.to_uppercase()),
            within,
        );
        let _ = script.kill();
        let _ = script.wait();
        let want_upgrade = if spdy { "spdy/3.1" } else { "websocket" };
        let used = proxy.upgrades_to("/attach/");
        assert!(
            used.len() > before && used[before..].iter().all(|u| u == want_upgrade),
            "{used:?}"
        );
    }
    // What came in through stdin went where the container's output goes: its log.
    let log = kubectl_cmd(&kc, true)
        .args(["logs", &plain, "-c", "app"])
        .output()
        .unwrap();
    assert_eq!(
        text(&log),
        "PIPE:HELLO-SPDY-0\nPIPE:HELLO-SPDY-1\nPIPE:HELLO-WEBSOCKET-0\nPIPE:HELLO-WEBSOCKET-1\n"
    );
    // Attaching to stdin of a container without `stdin: true` is refused, as by kubelet.
    let closed = unique("attach-closed");
    write_pod(&s.agent, &closed, &container("app", "sleep 3600"));
    wait_running(&s.agent, &closed);
    let out = kubectl_cmd(&kc, true)
        .args(["attach", "-i", &closed, "-c", "app"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
}

/// How many processes run `marker` in their command line.
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .count()
}

/// 50 `kubectl exec -i` sessions and 50 `kubectl logs -f` streams, all open at once (each
/// exec waits for a line of stdin, each follower for a container that has not finished),
/// and meanwhile a static pod is written to the manifest directory. It must start while
/// every stream is still open: if streams starved the reconciler it would not start until
/// they closed, which here is never before it runs. The bound is twenty times the idle
/// start of the same pod measured first, at least 10 s: on 2 cores both take ~0.1 s
/// (53 ms idle, 106 ms in the storm when written), so 10 s leaves room for other load on
/// the machine while a starved reconciler still fails it; the numbers are printed. Then every exec answers its own line with exit 0
/// and every follower gets the whole log and ends with the container.
#[test]
fn fifty_execs_and_fifty_followed_logs_at_once_do_not_starve_reconciliation() {
    const N: usize = 50;
    const LINES: usize = 200;
    let node = busybox_node();
    let s = setup(&node);
    // The idle start time of the static pod shape used under load.
    let idle = unique("idle");
    let started = Instant::now();
    write_pod(&s.agent, &idle, &container("app", "sleep 3600"));
    wait_running(&s.agent, &idle);
    let idle_start = started.elapsed();
    let pod = unique("storm");
    let talk = format!(
        "echo ready; while [ ! -e /tmp/go ]; do sleep 0.2; done; i=0; while [ $i -lt {LINES} ]; do echo \"line $i\"; i=$((i+1)); done"
    );
    write_pod_spec(
        &s.agent,
        &pod,
        &format!(
            "  terminationGracePeriodSeconds: 1\n  restartPolicy: Never\n  containers:\n{}{}",
            container("talker", &talk),
            container("shell", "sleep 3600")
        ),
    );
    wait_running(&s.agent, &pod);
    let proxy = s.proxy();
    let kc = proxy.kubeconfig(node.dir.path());
    let marker = format!("storm-{}", std::process::id());
    let mut followers: Vec<(Child, mpsc::Receiver<Vec<u8>>, Vec<u8>)> = (0..N)
        .map(|_| {
            let mut c = kubectl_cmd(&kc, true)
                .args(["logs", "-f", &pod, "-c", "talker"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let rx = pump_stdout(&mut c);
            (c, rx, Vec::new())
        })
        .collect();
    let mut execs: Vec<Child> = (0..N)
        .map(|i| {
            // Half over SPDY, half over WebSockets.
            kubectl_cmd(&kc, i % 2 == 0)
                .args([
                    "exec",
                    "-i",
                    &pod,
                    "-c",
                    "shell",
                    "--",
                    "sh",
                    "-c",
                    &format!("read x; echo \"{marker} $x\""),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let within = Duration::from_secs(120);
    for (_, rx, got) in followers.iter_mut() {
        read_until(rx, got, "ready\n", within);
    }
    s.agent.wait_for("50 exec sessions in the pod", within, || {
        (processes_with(&format!("echo \"{marker} $x\"")) >= N).then_some(())
    });
    // Every stream is open now; a static pod arrives.
    let late = unique("late");
    let started = Instant::now();
    write_pod(&s.agent, &late, &container("app", "sleep 3600"));
    let bound = (idle_start * 20).max(Duration::from_secs(10));
    s.agent
        .wait_for("the static pod written during the storm", bound, || {
            s.agent.pod(&late).filter(is_running)
        });
    let loaded_start = started.elapsed();
    eprintln!(
        "static pod start: idle {idle_start:?}, during {N} execs + {N} followed logs {loaded_start:?} (bound {bound:?})"
    );
    for (i, (c, _, _)) in followers.iter_mut().enumerate() {
        assert!(c.try_wait().unwrap().is_none(), "follower {i} ended early");
    }
    for (i, c) in execs.iter_mut().enumerate() {
        assert!(c.try_wait().unwrap().is_none(), "exec {i} ended early");
    }
    // Each exec answers its own line.
    let waits: Vec<_> = execs
        .drain(..)
        .enumerate()
        .map(|(i, mut c)| {
            let mut stdin = c.stdin.take().unwrap();
            writeln!(stdin, "n{i}").unwrap();
            drop(stdin);
            std::thread::spawn(move || (i, c.wait_with_output().unwrap()))
        })
        .collect();
    for w in waits {
        let (i, out) = w.join().unwrap();
        assert!(out.status.success(), "exec {i}: {out:?}");
        assert_eq!(text(&out), format!("{marker} n{i}\n"), "exec {i}");
    }
    // The talker writes its lines and ends: every follower gets them all, then ends too.
    node.ok(&[
        "exec",
        &format!("default/{pod}/talker"),
        "--",
        "touch",
        "/tmp/go",
    ]);
    let want: String = std::iter::once("ready\n".to_string())
        .chain((0..LINES).map(|i| format!("line {i}\n")))
        .collect();
    for (i, (mut c, rx, mut got)) in followers.into_iter().enumerate() {
        read_until(&rx, &mut got, &format!("line {}\n", LINES - 1), within);
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "follower {i} did not end");
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(5)) {
            got.extend_from_slice(&chunk);
        }
        assert!(status.success(), "follower {i}: {status}");
        assert_eq!(String::from_utf8_lossy(&got), want, "follower {i}");
    }
}

/// A followed log of a container whose pipeline ends by SIGPIPE (`yes | head`): the
/// container must start with default signal dispositions and nothing blocked (its
/// monitor blocks SIGCHLD and Rust ignores SIGPIPE), or `yes` never ends and neither does
/// the follow.
#[test]
fn a_followed_log_of_yes_piped_to_head_ends_with_the_container() {
    let node = busybox_node();
    let s = setup(&node);
    let pod = unique("yes");
    let script =
        "grep -E '^Sig(Blk|Ign)' /proc/self/status; busybox yes y | head -n 1000; echo END";
    write_pod_spec(
        &s.agent,
        &pod,
        &format!(
            "  terminationGracePeriodSeconds: 1\n  restartPolicy: Never\n  containers:\n{}",
            container("app", script)
        ),
    );
    let proxy = s.proxy();
    let kc = proxy.kubeconfig(node.dir.path());
    s.agent
        .wait_for("the container to start", Duration::from_secs(60), || {
            s.agent.pod(&pod).filter(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"].is_null()
                    && p["status"]["containerStatuses"].is_array()
            })
        });
    let mut follow = kubectl_cmd(&kc, true)
        .args(["logs", "-f", &pod, "-c", "app"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = pump_stdout(&mut follow);
    let mut got = Vec::new();
    read_until(&rx, &mut got, "END\n", Duration::from_secs(30));
    let want = format!(
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n{}END\n",
        "y\n".repeat(1000)
    );
    assert_eq!(String::from_utf8_lossy(&got), want);
    let deadline = Instant::now() + Duration::from_secs(30);
    while follow.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "kubectl logs -f did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}
