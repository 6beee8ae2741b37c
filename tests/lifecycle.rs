//! Pod lifecycle through the real `layerlet agent`, as root: probes (httpGet against busybox
//! httpd inside the pod, tcpSocket, exec and its timeout) with their restart and Ready
//! effects, postStart and preStop hooks, termination messages and activeDeadlineSeconds.
//!
//! Probes run with one-second periods in real time; every wait polls with a generous
//! deadline and stops as soon as its condition holds. Pod names carry a per-process suffix
//! (a static pod's uid, hence its cgroup, comes from its name).

mod common;
mod support;

use common::{busybox_node, condition, container_status as cstatus, quoted, unique};

use std::path::Path;
use std::time::{Duration, Instant};

use common::Agent;
use serde_json::Value;

const IMAGE: &str = "example.com/test/busybox:1";
const DEADLINE: Duration = Duration::from_secs(90);

/// [`Agent::wait_for`] with this suite's deadline.
fn wait_for<T>(agent: &Agent, what: &str, check: impl FnMut() -> Option<T>) -> T {
    agent.wait_for(what, DEADLINE, check)
}

fn pod(agent: &Agent, name: &str) -> Option<Value> {
    agent.pod(name)
}

/// One entry of `spec.containers` running `sh -c script`, then `extra` lines (indented by
/// four spaces).
fn sh(name: &str, script: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [sh, -c, {}]\n{extra}",
        quoted(script)
    )
}

/// A Pod manifest; `spec_extra` lines (indented by two spaces) precede the containers.
fn pod_yaml(
    name: &str,
    policy: &str,
    grace: u32,
    spec_extra: &str,
    containers: &[String],
) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: {grace}\n{spec_extra}  containers:\n{}",
        containers.concat()
    )
}

fn write_atomic(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.swp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// `(reason, message)` of the events about pod `name`, oldest first.
fn events_of(agent: &Agent, name: &str) -> Vec<(String, String)> {
    let list = agent.get_json("/api/v1/events");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn has_event(agent: &Agent, name: &str, reason: &str, message: &str) -> bool {
    events_of(agent, name)
        .iter()
        .any(|(r, m)| r == reason && m.contains(message))
}

fn restarts(p: &Value, container: &str) -> u64 {
    cstatus(p, container)["restartCount"].as_u64().unwrap_or(0)
}

/// A hostPath volume `out` for files the containers leave for the test.
fn out_volume(dir: &Path) -> String {
    format!(
        "  volumes:\n  - name: out\n    hostPath: {{path: {}, type: Directory}}\n",
        dir.display()
    )
}

const OUT_MOUNT: &str = "    volumeMounts:\n    - {name: out, mountPath: /out}\n";

// ---------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------

/// busybox httpd serving /www on 8080, with /www/healthz and /www/ready present.
const HTTPD: &str = "mkdir -p /www && echo ok > /www/healthz && echo ok > /www/ready && exec /bin/busybox httpd -f -p 8080 -h /www";

#[test]
fn http_get_probes_drive_ready_and_a_failing_liveness_probe_restarts_the_container() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("http");
    let probes = "    ports: [{name: http, containerPort: 8080}]\n    livenessProbe:\n      httpGet: {path: /healthz, port: http, httpHeaders: [{name: X-Probe, value: live}]}\n      periodSeconds: 1\n      failureThreshold: 2\n    readinessProbe:\n      httpGet: {path: /ready, port: 8080}\n      periodSeconds: 1\n";
    write_atomic(
        &agent.manifests,
        "http.yaml",
        &pod_yaml(&name, "Always", 1, "", &[sh("web", HTTPD, probes)]),
    );
    let p = wait_for(&agent, "Ready", || {
        pod(&agent, &name).filter(|p| condition(p, "Ready") == "True")
    });
    assert_eq!(cstatus(&p, "web")["ready"], true);
    assert_eq!(cstatus(&p, "web")["started"], true);
    assert_eq!(condition(&p, "ContainersReady"), "True");

    // Readiness failing: not ready, not restarted.
    let target = format!("{name}/web");
    node.ok(&["exec", &target, "--", "rm", "/www/ready"]);
    let p = wait_for(&agent, "not Ready", || {
        pod(&agent, &name).filter(|p| condition(p, "Ready") == "False")
    });
    let c = cstatus(&p, "web");
    assert_eq!(c["ready"], false, "{c}");
    assert!(c["state"]["running"].is_object(), "{c}");
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(condition(&p, "ContainersReady"), "False");
    assert!(has_event(
        &agent,
        &name,
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 404"
    ));
    assert_eq!(restarts(&p, "web"), 0);

    // Liveness failing twice: Unhealthy, Killing, and a restart (counted).
    node.ok(&["exec", &target, "--", "rm", "/www/healthz"]);
    let p = wait_for(&agent, "a restart after the liveness failure", || {
        pod(&agent, &name).filter(|p| restarts(p, "web") >= 1 && condition(p, "Ready") == "True")
    });
    let events = events_of(&agent, &name);
    let unhealthy = events
        .iter()
        .position(|(r, m)| {
            r == "Unhealthy" && m == "Liveness probe failed: HTTP probe failed with statuscode: 404"
        })
        .unwrap_or_else(|| panic!("{events:?}"));
    let killing = events
        .iter()
        .position(|(r, m)| {
            r == "Killing" && m == "Container web failed liveness probe, will be restarted"
        })
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(unhealthy < killing, "{events:?}");
    let c = cstatus(&p, "web");
    assert!(c["lastState"]["terminated"].is_object(), "{c}");
    // The new instance serves again (its command recreated the files).
    assert!(c["state"]["running"].is_object(), "{c}");
}

#[test]
fn probes_of_a_host_network_pod_reach_it_on_the_host() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("hostnet");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "mkdir -p /www && echo ok > /www/ready && exec /bin/busybox httpd -f -p 127.0.0.1:{port} -h /www"
    );
    let probes = format!(
        "    readinessProbe:\n      httpGet: {{path: /ready, port: {port}}}\n      periodSeconds: 1\n    livenessProbe:\n      tcpSocket: {{port: {port}}}\n      periodSeconds: 1\n"
    );
    write_atomic(
        &agent.manifests,
        "hostnet.yaml",
        &pod_yaml(
            &name,
            "Always",
            1,
            "  hostNetwork: true\n",
            &[sh("web", &script, &probes)],
        ),
    );
    let p = wait_for(&agent, "Ready", || {
        pod(&agent, &name).filter(|p| condition(p, "Ready") == "True")
    });
    assert_eq!(restarts(&p, "web"), 0);
    // The server is the host's to reach too: the probes went where the test can go.
    let (status, _) = common::http_get(&format!("127.0.0.1:{port}"), "/ready").unwrap();
    assert_eq!(status, 200);
}

#[test]
fn tcp_socket_and_exec_probes_pass_and_fail_per_container() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("tcp");
    let ready_on = |port: u16| {
        format!("    readinessProbe:\n      tcpSocket: {{port: {port}}}\n      periodSeconds: 1\n")
    };
    let exec_probes = "    livenessProbe:\n      exec: {command: [cat, /etc/passwd]}\n      periodSeconds: 1\n    readinessProbe:\n      exec: {command: [sh, -c, 'exit 3']}\n      periodSeconds: 1\n";
    write_atomic(
        &agent.manifests,
        "tcp.yaml",
        &pod_yaml(
            &name,
            "Always",
            1,
            "",
            &[
                sh("web", HTTPD, ""),
                sh("tcp-ok", "sleep 3600", &ready_on(8080)),
                sh("tcp-bad", "sleep 3600", &ready_on(9)),
                sh("exec", "sleep 3600", exec_probes),
            ],
        ),
    );
    let p = wait_for(&agent, "tcp-ok ready and failures reported", || {
        pod(&agent, &name).filter(|p| {
            cstatus(p, "tcp-ok")["ready"] == true
                && has_event(
                    &agent,
                    &name,
                    "Unhealthy",
                    "Readiness probe failed: dial tcp 127.0.0.1:9: ",
                )
                && has_event(
                    &agent,
                    &name,
                    "Unhealthy",
                    "Readiness probe failed: command \"sh -c exit 3\" exited with 3",
                )
        })
    });
    assert_eq!(
        cstatus(&p, "web")["ready"],
        true,
        "no probes: ready once running"
    );
    assert_eq!(cstatus(&p, "tcp-bad")["ready"], false);
    assert_eq!(cstatus(&p, "exec")["ready"], false);
    assert_eq!(condition(&p, "Ready"), "False");
    assert_eq!(p["status"]["phase"], "Running");
    // The passing exec liveness probe never restarts its container; a failing readiness
    // probe never restarts anything.
    std::thread::sleep(Duration::from_secs(3));
    let p = pod(&agent, &name).unwrap();
    for c in ["web", "tcp-ok", "tcp-bad", "exec"] {
        assert_eq!(restarts(&p, c), 0, "{c}: {p}");
    }
    assert!(!has_event(
        &agent,
        &name,
        "Unhealthy",
        "Liveness probe failed"
    ));
}

#[test]
fn an_exec_probe_past_its_timeout_fails_and_its_process_is_killed() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("slow");
    // A 60 s period: after the first run times out, no second run is under way.
    let probe = "    readinessProbe:\n      exec: {command: [sleep, '37']}\n      timeoutSeconds: 1\n      periodSeconds: 60\n";
    write_atomic(
        &agent.manifests,
        "slow.yaml",
        &pod_yaml(&name, "Always", 1, "", &[sh("app", "sleep 3600", probe)]),
    );
    wait_for(&agent, "the timeout", || {
        has_event(
            &agent,
            &name,
            "Unhealthy",
            "Readiness probe failed: command \"sleep 37\" timed out after 1s",
        )
        .then_some(())
    });
    // Nothing of the probe is left in the container's PID namespace.
    let target = format!("{name}/app");
    let ps = node.ok(&["exec", &target, "--", "/bin/busybox", "ps", "-o", "args"]);
    assert!(ps.contains("sleep 3600"), "{ps}");
    assert!(
        !ps.contains("sleep 37"),
        "the timed-out probe still runs:\n{ps}"
    );
    let p = pod(&agent, &name).unwrap();
    assert_eq!(cstatus(&p, "app")["ready"], false);
}

#[test]
fn a_probe_kill_uses_the_probes_own_termination_grace_period() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("probegrace");
    // `sleep` as PID 1 ignores SIGTERM: it ends only at SIGKILL, when the grace is over.
    // The pod's 300 s would outlast every wait here; the probe's 1 s does not.
    let probe = "    livenessProbe:\n      exec: {command: [sh, -c, 'exit 1']}\n      periodSeconds: 1\n      failureThreshold: 1\n      terminationGracePeriodSeconds: 1\n";
    write_atomic(
        &agent.manifests,
        "probegrace.yaml",
        &pod_yaml(&name, "Always", 300, "", &[sh("app", "sleep 3600", probe)]),
    );
    let p = wait_for(&agent, "a restart", || {
        pod(&agent, &name).filter(|p| restarts(p, "app") >= 1)
    });
    let last = &cstatus(&p, "app")["lastState"]["terminated"];
    assert_eq!(
        last["exitCode"], 137,
        "SIGKILLed after the probe's grace: {p}"
    );
}

#[test]
fn a_startup_probe_holds_back_liveness_and_readiness_until_it_passes() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("startup");
    // Started once /tmp/up exists (after about 3 s); liveness would fail before that.
    let probes = "    startupProbe:\n      exec: {command: [cat, /tmp/up]}\n      periodSeconds: 1\n      failureThreshold: 30\n    livenessProbe:\n      exec: {command: [cat, /tmp/up]}\n      periodSeconds: 1\n      failureThreshold: 1\n";
    write_atomic(
        &agent.manifests,
        "startup.yaml",
        &pod_yaml(
            &name,
            "Always",
            1,
            "",
            &[sh("app", "sleep 3; touch /tmp/up; sleep 3600", probes)],
        ),
    );
    let early = wait_for(&agent, "running, not started", || {
        pod(&agent, &name).filter(|p| cstatus(p, "app")["state"]["running"].is_object())
    });
    assert_eq!(cstatus(&early, "app")["started"], false, "{early}");
    assert_eq!(cstatus(&early, "app")["ready"], false, "{early}");
    let p = wait_for(&agent, "started and ready", || {
        pod(&agent, &name)
            .filter(|p| cstatus(p, "app")["started"] == true && condition(p, "Ready") == "True")
    });
    assert_eq!(restarts(&p, "app"), 0, "liveness waited for startup: {p}");
    assert!(has_event(
        &agent,
        &name,
        "Unhealthy",
        "Startup probe failed: "
    ));
    assert!(!has_event(
        &agent,
        &name,
        "Unhealthy",
        "Liveness probe failed"
    ));
}

// ---------------------------------------------------------------------------------------
// Lifecycle hooks
// ---------------------------------------------------------------------------------------

#[test]
fn a_post_start_hook_finishes_before_the_container_counts_as_running() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("poststart");
    let hook = "    lifecycle:\n      postStart:\n        exec: {command: [sh, -c, 'sleep 2; echo hooked > /tmp/hooked']}\n";
    write_atomic(
        &agent.manifests,
        "poststart.yaml",
        &pod_yaml(&name, "Always", 1, "", &[sh("app", "sleep 3600", hook)]),
    );
    wait_for(&agent, "running", || {
        pod(&agent, &name).filter(|p| cstatus(p, "app")["state"]["running"].is_object())
    });
    // Running only once the hook is done: its file is already there.
    let target = format!("{name}/app");
    assert_eq!(
        node.ok(&["exec", &target, "--", "cat", "/tmp/hooked"])
            .trim(),
        "hooked"
    );
}

#[test]
fn a_failing_post_start_hook_kills_the_container_and_it_restarts_per_policy() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("hookfail");
    let hook =
        "    lifecycle:\n      postStart:\n        exec: {command: [sh, -c, 'echo no; exit 3']}\n";
    write_atomic(
        &agent.manifests,
        "hookfail.yaml",
        &pod_yaml(&name, "Always", 1, "", &[sh("app", "sleep 3600", hook)]),
    );
    let p = wait_for(&agent, "a restart after the hook failed", || {
        pod(&agent, &name).filter(|p| restarts(p, "app") >= 1)
    });
    let expected = format!(
        "Exec lifecycle hook ([sh -c echo no; exit 3]) for Container \"app\" in Pod \"default/{name}\" failed - error: no"
    );
    assert!(
        has_event(&agent, &name, "FailedPostStartHook", &expected),
        "{:?}",
        events_of(&agent, &name)
    );
    assert!(
        cstatus(&p, "app")["lastState"]["terminated"].is_object(),
        "{p}"
    );
    // Never Ready: every instance is killed by its hook.
    assert_eq!(condition(&p, "Ready"), "False");
}

#[test]
fn pre_stop_runs_before_the_stop_signal_and_its_time_counts_against_the_grace_period() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("prestop");
    let out = node.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // `graceful` logs its SIGTERM; `stubborn` (sleep as PID 1) ignores it and is SIGKILLed
    // when the grace is over. Both hooks take 4 s of the 6 s grace period.
    let hook = |tag: &str| {
        format!("    lifecycle:\n      preStop:\n        exec: {{command: [sh, -c, 'echo prestop >> /out/{tag}; sleep 4; echo prestop-done >> /out/{tag}']}}\n{OUT_MOUNT}")
    };
    write_atomic(
        &agent.manifests,
        "prestop.yaml",
        &pod_yaml(
            &name,
            "Always",
            6,
            &out_volume(&out),
            &[
                sh(
                    "graceful",
                    "echo start >> /out/graceful; trap 'echo term >> /out/graceful; exit 0' TERM; while true; do sleep 1; done",
                    &hook("graceful"),
                ),
                sh("stubborn", "sleep 3600", &hook("stubborn")),
            ],
        ),
    );
    wait_for(&agent, "both running", || {
        pod(&agent, &name).filter(|p| condition(p, "Ready") == "True")
    });
    let removed = Instant::now();
    std::fs::remove_file(agent.manifests.join("prestop.yaml")).unwrap();
    wait_for(&agent, "the pod gone", || {
        pod(&agent, &name).is_none().then_some(())
    });
    let took = removed.elapsed();
    let log = std::fs::read_to_string(out.join("graceful")).unwrap();
    assert_eq!(
        log, "start\nprestop\nprestop-done\nterm\n",
        "the hook ran before the signal"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("stubborn")).unwrap(),
        "prestop\nprestop-done\n"
    );
    // The stubborn container got the 2 s left of its grace (6 s - 4 s of hook), not a full
    // new grace period after the hook (which would make it 10 s).
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(9),
        "stopping took {took:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Termination messages
// ---------------------------------------------------------------------------------------

#[test]
fn termination_messages_come_from_the_file_or_the_logs_tail_on_error() {
    let node = busybox_node();
    let agent = Agent::start(&node, &[]);
    let name = unique("message");
    let fallback = "    terminationMessagePolicy: FallbackToLogsOnError\n";
    write_atomic(
        &agent.manifests,
        "message.yaml",
        &pod_yaml(
            &name,
            "Never",
            1,
            "",
            &[
                sh(
                    "file",
                    "echo -n bye from file > /dev/termination-log; exit 0",
                    "",
                ),
                sh(
                    "custom",
                    "mkdir -p /var/msg; echo custom path > /var/msg/why; exit 1",
                    "    terminationMessagePath: /var/msg/why\n",
                ),
                sh("fallback", "echo line1; echo line2 >&2; exit 2", fallback),
                sh(
                    "fallback-file",
                    "echo in log; echo -n from file > /dev/termination-log; exit 2",
                    fallback,
                ),
                sh("fallback-ok", "echo fine; exit 0", fallback),
                sh("plain-error", "echo not a message; exit 4", ""),
                sh(
                    "non-root",
                    "echo -n written as 1000 > /dev/termination-log; exit 0",
                    "    securityContext: {runAsUser: 1000}\n",
                ),
            ],
        ),
    );
    let p = wait_for(&agent, "phase Failed", || {
        pod(&agent, &name).filter(|p| p["status"]["phase"] == "Failed")
    });
    let message = |c: &str| cstatus(&p, c)["state"]["terminated"]["message"].clone();
    assert_eq!(message("file"), "bye from file");
    assert_eq!(message("custom"), "custom path\n");
    assert_eq!(message("fallback"), "line1\nline2\n");
    assert_eq!(message("fallback-file"), "from file");
    assert_eq!(message("fallback-ok"), Value::Null);
    assert_eq!(message("plain-error"), Value::Null);
    assert_eq!(message("non-root"), "written as 1000");
}

// ---------------------------------------------------------------------------------------
// activeDeadlineSeconds and init containers
// ---------------------------------------------------------------------------------------

#[test]
fn active_deadline_stops_the_pod_and_fails_it_with_deadline_exceeded() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("deadline");
    write_atomic(
        &agent.manifests,
        "deadline.yaml",
        &pod_yaml(
            &name,
            "Always",
            1,
            "  activeDeadlineSeconds: 3\n",
            &[sh("app", "sleep 3600", "")],
        ),
    );
    let p = wait_for(&agent, "DeadlineExceeded", || {
        pod(&agent, &name).filter(|p| {
            p["status"]["reason"] == "DeadlineExceeded"
                && cstatus(p, "app")["state"]["terminated"].is_object()
        })
    });
    assert_eq!(p["status"]["phase"], "Failed");
    assert_eq!(
        p["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert_eq!(condition(&p, "Ready"), "False");
    // Restart policy Always and a 1 s backoff: still not restarted afterwards.
    std::thread::sleep(Duration::from_secs(3));
    let p = pod(&agent, &name).unwrap();
    assert_eq!(restarts(&p, "app"), 0, "{p}");
    assert!(cstatus(&p, "app")["state"]["running"].is_null(), "{p}");
}

#[test]
fn a_failing_init_container_is_retried_with_backoff_until_it_succeeds() {
    let node = busybox_node();
    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("init");
    let out = node.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let init = sh(
        "setup",
        "echo try >> /out/tries; [ -f /out/once ] && exit 0; touch /out/once; exit 1",
        OUT_MOUNT,
    );
    write_atomic(
        &agent.manifests,
        "init.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n{}  initContainers:\n{init}  containers:\n{}",
            out_volume(&out),
            sh("app", "sleep 3600", "")
        ),
    );
    let p = wait_for(&agent, "Running after one retry", || {
        pod(&agent, &name).filter(|p| p["status"]["phase"] == "Running")
    });
    assert_eq!(restarts(&p, "setup"), 1, "{p}");
    assert_eq!(
        std::fs::read_to_string(out.join("tries")).unwrap(),
        "try\ntry\n"
    );
    assert_eq!(cstatus(&p, "setup")["state"]["terminated"]["exitCode"], 0);
}
