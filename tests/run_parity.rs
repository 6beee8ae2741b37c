//! `layerlet run` and `layerlet agent` share one planner and one executor: the same pod,
//! failing twice under restartPolicy OnFailure, is restarted by both at the same
//! CrashLoopBackOff delays (1 s, then 2 s with a 1 s backoff) and ends the same way.
//!
//! Each attempt appends the host's uptime (10 ms resolution; /proc/uptime is not
//! namespaced) to a file in the pod's /dev/shm, which outlives the container's restarts;
//! the last attempt prints the list. The gaps are bounded below by the backoff (a restart
//! never comes early) and above by twice it (it is this step of the doubling, not the next).

mod common;
mod support;

use std::time::Duration;

use common::{busybox_node, ps_rows_of, unique, Agent, Node, BUSYBOX_IMAGE};

/// Fails on its first two attempts, succeeds on the third and prints when each started.
/// (`$$` is a literal `$` in a pod's command.)
const SCRIPT: &str =
    "n=$$(cat /dev/shm/n 2>/dev/null || echo 0); n=$$((n+1)); echo $$n > /dev/shm/n; \
    cut -d' ' -f1 /proc/uptime >> /dev/shm/starts; \
    [ $$n -ge 3 ] && { cat /dev/shm/starts; exit 0; }; exit 1";

fn manifest(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": {
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app",
                "image": BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", SCRIPT],
            }],
        },
    })
    .to_string()
}

/// What a finished run of the pod left: its restarts, the gaps between its attempts' starts
/// (seconds), and how many container instances the node keeps.
#[derive(Debug)]
struct Restarts {
    restarts: u64,
    exit_code: i64,
    gaps: Vec<f64>,
    instances_kept: usize,
}

fn restarts_of(node: &Node, name: &str) -> Restarts {
    let rows = ps_rows_of(node, name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let starts: Vec<f64> = node
        .ok(&["logs", &format!("{name}/app")])
        .lines()
        .map(|l| l.trim().parse().unwrap_or_else(|_| panic!("uptime {l:?}")))
        .collect();
    Restarts {
        restarts: rows[0]["restarts"].as_u64().unwrap(),
        exit_code: rows[0]["exit_code"].as_i64().unwrap(),
        gaps: starts.windows(2).map(|w| w[1] - w[0]).collect(),
        instances_kept: node.entries("containers").len(),
    }
}

fn assert_crash_loop_backoff(who: &str, r: &Restarts) {
    eprintln!("{who}: {r:?}");
    assert_eq!((r.restarts, r.exit_code), (2, 0), "{who}: {r:?}");
    assert_eq!(
        r.instances_kept, 2,
        "{who}: the last instance and the one before it stay: {r:?}"
    );
    assert_eq!(r.gaps.len(), 2, "{who}: three attempts: {r:?}");
    // 10 ms of slack below: the uptime's resolution.
    for (gap, backoff) in r.gaps.iter().zip([1.0, 2.0]) {
        assert!(
            *gap >= backoff - 0.01 && *gap < 2.0 * backoff,
            "{who}: restart after {gap:.2} s, the backoff being {backoff} s: {r:?}"
        );
    }
}

#[test]
fn layerlet_run_and_the_agent_restart_a_failing_container_at_the_same_backoff_delays() {
    let node = busybox_node();
    let name = unique("parity-run");
    let file = node.dir.path().join("parity.json");
    std::fs::write(&file, manifest(&name)).unwrap();
    let out = node.run(&[
        "run",
        "--backoff-seconds",
        "1",
        "-f",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "run: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let by_run = restarts_of(&node, &name);
    node.ok(&["rm", &name]);
    assert_crash_loop_backoff("layerlet run", &by_run);

    let agent = Agent::start(&node, &["--backoff-seconds", "1"]);
    let name = unique("parity-agent");
    std::fs::write(agent.manifests.join("parity.json"), manifest(&name)).unwrap();
    agent.wait_for("the pod to succeed", Duration::from_secs(60), || {
        agent
            .pod(&name)
            .filter(|p| p["status"]["phase"] == "Succeeded")
    });
    let by_agent = restarts_of(&node, &name);
    assert_crash_loop_backoff("the agent", &by_agent);
}
