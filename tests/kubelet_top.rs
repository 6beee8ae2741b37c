//! `kubectl top pod` and `kubectl top node` against the agent's kubelet API: the real kubectl
//! talks to the node-proxy stand-in (kubelet_support), which also plays metrics-server
//! (kubelet_support::metrics_server: two scrapes of `/metrics/resource` over the client
//! certificate TLS, CPU as the rise of the cumulative seconds over the time between them).
//! Real pods of the busybox test image; traffic on loopback only.

mod common;
mod kubelet_support;
mod support;

use std::collections::BTreeMap;

use common::{busybox_node, unique};
use kubelet_support::harness::{
    container, run_kubectl, setup, text, wait_running, write_pod_spec, DEADLINE,
};
use kubelet_support::metrics_server::{parse, usage, Point, Scrape};
use serde_json::Value;

#[test]
fn prometheus_text_parses_with_labels_escapes_and_timestamps() {
    let text = "# HELP container_cpu_usage_seconds_total Cumulative cpu time\n\
        # TYPE container_cpu_usage_seconds_total counter\n\
        container_cpu_usage_seconds_total{container=\"a\",namespace=\"ns\",pod=\"p\"} 1.5 1700000000123\n\
        container_memory_working_set_bytes{ container = \"a\" , pod=\"p\",namespace=\"ns\",} 2.097152e+07\n\
        odd{path=\"C:\\\\x \\\"y\\\"\\n,}\"} +Inf\n\
        node_cpu_usage_seconds_total 12.25\n";
    let samples = parse(text).unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[0].labels["pod"], "p");
    assert_eq!(samples[0].timestamp_ms, Some(1_700_000_000_123));
    assert_eq!(samples[1].labels["container"], "a");
    assert_eq!(samples[1].value, 20_971_520.0);
    assert_eq!(samples[1].timestamp_ms, None);
    assert_eq!(samples[2].labels["path"], "C:\\x \"y\"\n,}");
    assert!(samples[2].value.is_infinite());
    assert!(samples[3].labels.is_empty());
    assert!(parse("x{a=\"1\"\n").is_err());
    assert!(parse("x 1 2 3\n").is_err());
    // A missing timestamp is the scrape's request time, as metrics-server takes it.
    let s = Scrape::from_text(text, 1_700_000_000_999).unwrap();
    let key = ("ns".to_string(), "p".to_string(), "a".to_string());
    assert_eq!(s.containers[&key].ms, 1_700_000_000_123);
    assert_eq!(s.node.ms, 1_700_000_000_999);
    // 0.5 core-seconds over 2 s: a quarter of a core.
    let prev = Point {
        cpu_seconds: Some(1.0),
        working_set: Some(1.0),
        start: Some(5.0),
        ms: 1000,
    };
    let last = Point {
        cpu_seconds: Some(1.5),
        working_set: Some(4096.0),
        ms: 3000,
        ..prev
    };
    assert_eq!(usage(&prev, &last), Some((250_000_000, 4096, 3000, 2000)));
    // A restart in between, or a counter that went down: no figure.
    assert_eq!(
        usage(
            &prev,
            &Point {
                start: Some(6.0),
                ..last
            }
        ),
        None
    );
    assert_eq!(usage(&last, &prev), None);
}

/// `kubectl top ... --no-headers` rows as columns.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// `987m` (kubectl prints CPU in millicores) and `20Mi` (memory in MiB).
fn milli(cell: &str) -> u64 {
    cell.strip_suffix('m')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not millicores: {cell}"))
}

fn mebi(cell: &str) -> u64 {
    cell.strip_suffix("Mi")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not MiB: {cell}"))
}

#[test]
fn kubectl_top_shows_a_busy_container_cpu_and_a_sleeper_memory() {
    let node = busybox_node();
    let s = setup(&node);
    let pod = unique("top");
    // The sleeper fills 20 MiB of a memory-backed emptyDir: tmpfs pages are charged to its
    // cgroup and are not inactive file cache, so they stay in its working set.
    let sleeper =
        "dd if=/dev/zero of=/mem/fill bs=1M count=20 2>/dev/null && touch /tmp/filled; sleep 3600";
    let spec = format!(
        "  terminationGracePeriodSeconds: 1\n  volumes:\n  - name: mem\n    emptyDir:\n      medium: Memory\n      sizeLimit: 64Mi\n  containers:\n{}{}    volumeMounts:\n    - name: mem\n      mountPath: /mem\n",
        container("busy", "while :; do :; done"),
        container("sleeper", sleeper),
    );
    write_pod_spec(&s.agent, &pod, &spec);
    wait_running(&s.agent, &pod);
    s.agent.wait_for("the sleeper's 20 MiB", DEADLINE, || {
        let target = format!("default/{pod}/sleeper");
        let out = node.run(&["exec", &target, "--", "ls", "/tmp/filled"]);
        out.status.success().then_some(())
    });
    let proxy = s.proxy();
    let kc = proxy.kubeconfig(node.dir.path());
    let top_pod = ["top", "pod", &pod, "--containers", "--no-headers"];
    // A new container's series appear once the agent's accounting has seen it (a second or
    // two; kubelet's cAdvisor takes longer): until then metrics-server has nothing and kubectl
    // says NotFound, as in a cluster. The figures are checked on the first answer.
    let table = s.agent.wait_for("kubectl top pod to answer", DEADLINE, || {
        let out = run_kubectl(&kc, true, &top_pod, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || err.contains("NotFound"), "{out:?}");
        out.status.success().then(|| text(&out))
    });
    eprintln!("kubectl top pod:\n{table}");
    let by_name: BTreeMap<String, (u64, u64)> = rows(&table)
        .into_iter()
        .map(|r| {
            assert_eq!((r.len(), r[0].as_str()), (4, pod.as_str()), "{table}");
            (r[1].clone(), (milli(&r[2]), mebi(&r[3])))
        })
        .collect();
    assert_eq!(by_name.len(), 2, "{table}");
    let (busy_cpu, _) = by_name["busy"];
    let (sleeper_cpu, sleeper_mem) = by_name["sleeper"];
    // A shell spinning: a core's worth (1000m) when it has one of the two to itself. Other
    // test runs share the machine; the agent's cgroup tree weighs as one ordinary task
    // (cpu.shares 1024) against every process of the root cgroup, so with up to five other
    // busy processes it still gets 2/6 of the cores, over 300m (500m measured with both
    // cores at 100% from other builds). An idle container shows a few millicores at most.
    assert!(busy_cpu >= 300, "busy container at {busy_cpu}m:\n{table}");
    assert!(sleeper_cpu < 50, "sleeper at {sleeper_cpu}m:\n{table}");
    assert!(sleeper_mem >= 20, "sleeper at {sleeper_mem}Mi:\n{table}");

    // What kubectl read: metrics-server's quantities (nanocores, Ki) over a window of the
    // second between the two scrapes.
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{pod}");
    let out = run_kubectl(&kc, true, &["get", "--raw", &path], None);
    let metrics: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    assert_eq!(metrics["kind"], "PodMetrics", "{metrics}");
    let window: f64 = metrics["window"]
        .as_str()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!((1.0..3.0).contains(&window), "{metrics}");
    for c in metrics["containers"].as_array().unwrap() {
        assert!(
            c["usage"]["cpu"].as_str().unwrap().ends_with('n'),
            "{metrics}"
        );
        assert!(
            c["usage"]["memory"].as_str().unwrap().ends_with("Ki"),
            "{metrics}"
        );
    }
    // The namespace's list has the pod; a pod the node does not run is NotFound.
    let out = run_kubectl(&kc, true, &["top", "pod", "--no-headers"], None);
    assert!(
        text(&out)
            .lines()
            .any(|l| l.starts_with(&format!("{pod} "))),
        "{out:?}"
    );
    let out = run_kubectl(&kc, true, &["top", "pod", "nosuch"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("NotFound"), "{out:?}");

    let out = run_kubectl(&kc, true, &["top", "node", "--no-headers"], None);
    assert!(out.status.success(), "{out:?}");
    let table = text(&out);
    eprintln!("kubectl top node:\n{table}");
    let r = &rows(&table)[0];
    // NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%); the node's CPU includes the busy loop.
    assert_eq!(r.len(), 5, "{table}");
    assert!(milli(&r[1]) >= busy_cpu.min(300), "{table}");
    assert!(mebi(&r[3]) >= sleeper_mem, "{table}");
    assert!(
        r[2].ends_with('%') && r[4].ends_with('%') && r[4] != "0%",
        "{table}"
    );
    let out = run_kubectl(&kc, true, &["top", "node", &r[0], "--no-headers"], None);
    assert!(text(&out).starts_with(&format!("{} ", r[0])), "{out:?}");
}
