//! What metrics-server serves for `kubectl top`: the `metrics.k8s.io/v1beta1` API, computed
//! as metrics-server computes it from the kubelet's `/metrics/resource`. metrics-server keeps
//! the last two of its periodic scrapes; here each request takes two, a second apart. CPU is
//! the rise of the cumulative CPU seconds over the time between the two samples, memory the
//! working set of the later one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The group in `/apis`.
pub fn group() -> Value {
    let version = json!({"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"});
    json!({"name": "metrics.k8s.io", "versions": [version], "preferredVersion": version})
}

pub fn api_group() -> Value {
    let mut g = group();
    g["kind"] = "APIGroup".into();
    g["apiVersion"] = "v1".into();
    g
}

pub const RESOURCES: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"metrics.k8s.io/v1beta1","resources":[{"name":"nodes","singularName":"","namespaced":false,"kind":"NodeMetrics","verbs":["get","list"]},{"name":"pods","singularName":"","namespaced":true,"kind":"PodMetrics","verbs":["get","list"]}]}"#;

/// One sample of a Prometheus text exposition.
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// Milliseconds since the epoch, when the line carries one.
    pub timestamp_ms: Option<i64>,
}

/// Parses the text format (version 0.0.4): comments skipped, label values unescaped.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).ok_or_else(|| format!("bad sample line: {line}"))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Option<Sample> {
    let end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let (name, mut rest) = line.split_at(end);
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (key, r) = rest.split_once('=')?;
            let mut chars = r.trim_start().strip_prefix('"')?.char_indices();
            let mut value = String::new();
            let close = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.trim().to_string(), value);
            rest = r.trim_start()[1 + close + 1..].trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next()?.parse().ok()?;
    let timestamp_ms = match fields.next() {
        Some(t) => Some(t.parse().ok()?),
        None => None,
    };
    fields.next().is_none().then(|| Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// A node's or a container's figures in one scrape, as metrics-server's `MetricsPoint`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    pub cpu_seconds: Option<f64>,
    pub working_set: Option<f64>,
    pub start: Option<f64>,
    /// When the CPU figure was taken: its timestamp, else when the scrape was asked for.
    pub ms: i64,
}

/// `(namespace, pod, container)`.
pub type Key = (String, String, String);

#[derive(Debug, Default)]
pub struct Scrape {
    pub node: Point,
    pub containers: BTreeMap<Key, Point>,
}

impl Scrape {
    /// The series metrics-server reads; `asked_ms` stands in for a missing timestamp, as
    /// metrics-server takes its request time.
    pub fn from_text(text: &str, asked_ms: i64) -> Result<Scrape, String> {
        let mut s = Scrape::default();
        for sample in parse(text)? {
            let ms = sample.timestamp_ms.unwrap_or(asked_ms);
            let point = if sample.name.starts_with("node_") {
                &mut s.node
            } else if sample.name.starts_with("container_") {
                let label = |k: &str| sample.labels.get(k).cloned();
                let (Some(ns), Some(pod), Some(c)) =
                    (label("namespace"), label("pod"), label("container"))
                else {
                    continue;
                };
                s.containers.entry((ns, pod, c)).or_default()
            } else {
                continue;
            };
            match sample.name.as_str() {
                "node_cpu_usage_seconds_total" | "container_cpu_usage_seconds_total" => {
                    point.cpu_seconds = Some(sample.value);
                    point.ms = ms;
                }
                "node_memory_working_set_bytes" | "container_memory_working_set_bytes" => {
                    point.working_set = Some(sample.value);
                }
                "container_start_time_seconds" => point.start = Some(sample.value),
                _ => {}
            }
        }
        Ok(s)
    }
}

/// Usage between two points: nanocores, working-set bytes, the later point's time and the
/// window, in ms. None where metrics-server drops the point: a zero or missing figure (not
/// yet complete), a restart in between, a counter that went down.
pub fn usage(prev: &Point, last: &Point) -> Option<(u64, u64, i64, i64)> {
    let (before, after) = (prev.cpu_seconds?, last.cpu_seconds?);
    let memory = last.working_set?;
    let window = last.ms - prev.ms;
    if after <= 0.0 || memory <= 0.0 || after < before || window <= 0 || prev.start != last.start {
        return None;
    }
    let nanocores = (after - before) * 1e9 / (window as f64 / 1e3);
    Some((nanocores as u64, memory as u64, last.ms, window))
}

/// Quantities as metrics-server writes them: CPU in nanocores, memory in Ki when whole.
fn quantities(nanocores: u64, bytes: u64) -> Value {
    let memory = if bytes.is_multiple_of(1024) {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    };
    json!({"cpu": format!("{nanocores}n"), "memory": memory})
}

fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    layerlet::time::format_rfc3339_nano(t)
}

/// A Go duration string, which `metav1.Duration` parses.
fn window(ms: i64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A 404 Status as the API server words it; `group` empty for the core group.
fn not_found(group: &str, resource: &str, name: &str) -> (u16, String) {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": "NotFound", "code": 404,
        "details": {"name": name, "group": group, "kind": resource},
        "message": format!("{qualified} \"{name}\" not found")});
    (404, status.to_string())
}

fn unavailable(message: &str) -> (u16, String) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": "ServiceUnavailable", "code": 503, "message": message});
    (503, status.to_string())
}

async fn get(
    kubelet: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<String, String> {
    match super::kubelet_fetch(kubelet, tls.clone(), path).await {
        Ok((200, body)) => Ok(body),
        Ok((code, body)) => Err(format!("{path}: {code} {body}")),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

async fn scrape(kubelet: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<Scrape, String> {
    let asked = now_ms();
    Scrape::from_text(&get(kubelet, tls, "/metrics/resource").await?, asked)
}

/// `rest` is the path below `/apis/metrics.k8s.io/v1beta1/`. The kubelet is read with
/// `tls`, the client certificate metrics-server would have.
pub async fn serve(
    kubelet: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    rest: &[&str],
    query: &str,
) -> (u16, String) {
    // Only what kubectl top sends; a selector would be ignored silently otherwise.
    if query
        .split('&')
        .any(|p| p.contains("Selector=") && !p.ends_with('='))
    {
        return (400, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"BadRequest","code":400,"message":"selectors are not supported by the stand-in"}"#.into());
    }
    answer(kubelet, &tls, rest)
        .await
        .unwrap_or_else(|e| unavailable(&e))
}

async fn answer(
    kubelet: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    rest: &[&str],
) -> Result<(u16, String), String> {
    let first = scrape(kubelet, tls).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = scrape(kubelet, tls).await?;
    let list_of = |kind: &str, items: Vec<Value>| {
        json!({"kind": kind, "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items})
            .to_string()
    };
    if let ["nodes", name @ ..] = rest {
        let node = node_name(kubelet, tls).await?;
        let item = usage(&first.node, &last.node).map(|(cpu, mem, ms, win)| {
            json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": node, "labels": {}, "creationTimestamp": time(now_ms())},
                "timestamp": time(ms), "window": window(win), "usage": quantities(cpu, mem)})
        });
        return Ok(match (name, item) {
            ([], item) => (200, list_of("NodeMetricsList", item.into_iter().collect())),
            ([n], Some(item)) if *n == node => (200, item.to_string()),
            ([n], _) => not_found("metrics.k8s.io", "nodes", n),
            _ => (404, "{}".into()),
        });
    }
    let (namespace, name) = match rest {
        ["pods"] => (None, None),
        ["namespaces", ns, "pods"] => (Some(*ns), None),
        ["namespaces", ns, "pods", pod] => (Some(*ns), Some(*pod)),
        _ => return Ok((404, "{}".into())),
    };
    // metrics-server answers for the API's Running pods only.
    let pods: Value = serde_json::from_str(&get(kubelet, tls, "/pods").await?)
        .map_err(|e| format!("/pods: {e}"))?;
    let mut items = Vec::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let (ns, pod_name) = (
            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
            pod["metadata"]["name"].as_str().unwrap_or_default(),
        );
        if namespace.is_some_and(|n| n != ns)
            || name.is_some_and(|n| n != pod_name)
            || pod["status"]["phase"] != "Running"
        {
            continue;
        }
        if let Some(item) = pod_metrics(ns, pod_name, &first, &last) {
            items.push(item);
        }
    }
    items.sort_by_key(|i| {
        let m = &i["metadata"];
        (m["namespace"].to_string(), m["name"].to_string())
    });
    Ok(match name {
        None => (200, list_of("PodMetricsList", items)),
        Some(n) => match items.pop() {
            Some(item) => (200, item.to_string()),
            None => not_found("metrics.k8s.io", "pods", n),
        },
    })
}

/// A pod's metrics when every container of the later scrape was in the first (as
/// metrics-server's storage requires); a container whose usage cannot be computed is left
/// out; the pod's time is its containers' earliest.
fn pod_metrics(ns: &str, pod: &str, first: &Scrape, last: &Scrape) -> Option<Value> {
    let mut containers = Vec::new();
    let mut earliest: Option<(i64, i64)> = None;
    for ((n, p, c), point) in &last.containers {
        if n != ns || p != pod {
            continue;
        }
        let prev = first.containers.get(&(n.clone(), p.clone(), c.clone()))?;
        let Some((cpu, mem, ms, win)) = usage(prev, point) else {
            continue;
        };
        containers.push(json!({"name": c, "usage": quantities(cpu, mem)}));
        if earliest.is_none_or(|(t, _)| ms < t) {
            earliest = Some((ms, win));
        }
    }
    let (ms, win) = earliest?;
    Some(
        json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": pod, "namespace": ns, "creationTimestamp": time(now_ms())},
        "timestamp": time(ms), "window": window(win), "containers": containers}),
    )
}

async fn node_name(kubelet: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<String, String> {
    let summary: Value = serde_json::from_str(&get(kubelet, tls, "/stats/summary").await?)
        .map_err(|e| format!("/stats/summary: {e}"))?;
    summary["node"]["nodeName"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no node name in /stats/summary".to_string())
}

/// `/api/v1/nodes[/NAME]`: the Node as the API server would hold it (the agent registers it
/// with `--register-node`), since `kubectl top node` reads its allocatable for the
/// percentages. Made from this host's cores and memory, which are the agent's.
pub async fn core_nodes(
    kubelet: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    rest: &[&str],
) -> (u16, String) {
    let name = match node_name(kubelet, &tls).await {
        Ok(name) => name,
        Err(e) => return unavailable(&e),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("0");
    let resources = json!({"cpu": cores.to_string(), "memory": format!("{kib}Ki"), "pods": "110"});
    let node = json!({"kind": "Node", "apiVersion": "v1", "metadata": {"name": name},
        "status": {"capacity": resources, "allocatable": resources}});
    match rest {
        [] => {
            let list =
                json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [node]});
            (200, list.to_string())
        }
        [n] if *n == name => (200, node.to_string()),
        [n] => not_found("", "nodes", n),
        _ => (404, "{}".into()),
    }
}
