//! `layerlet agent` in kube mode, end to end, against a scripted mock API server
//! (`tests/common/mock_kube.rs`): the agent lists and watches the Pods bound to its node
//! (`spec.nodeName`), runs them, patches their status, stops and finally deletes pods the
//! API deletes gracefully, removes force-deleted ones, keeps its pods through an agent
//! restart while the API is down, refuses invalid pods with a Failed status, reads the
//! ConfigMaps and Secrets its pods use from the API, lets a manifest-file pod win over an
//! API pod of the same name, and relists after a watch expires with 410 Gone.
//!
//! The mock's own behaviour (selectors, merge patches, DELETE preconditions, watch streams,
//! 410, 503, keep-alive) is checked first, with a raw TCP client.
//!
//! Every agent runs under a [`common::Agent`] guard that kills it and removes every pod of
//! its node when the test ends, pass or fail. Waits poll with deadlines and stop as soon as
//! their condition holds. Pod names carry a per-process suffix and every API pod gets a
//! fresh uid from the mock, so concurrent tests do not collide.

mod common;
#[path = "common/mock_kube.rs"]
mod mock_kube;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{alive, busybox_node, condition, process_of, ps_all, ps_rows_of, unique, Agent, Node};
use mock_kube::{merge_patch, MockKube, Request};
use serde_json::{json, Value};

/// The busybox image every node imports (`imagePullPolicy: Never`: nothing is pulled).
const IMAGE: &str = common::BUSYBOX_IMAGE;
const NS: &str = "default";
/// Generous: every wait stops as soon as its condition holds.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client for the mock's own tests
// ---------------------------------------------------------------------------------------

/// One keep-alive connection to the mock.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect to the mock");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends a request with a Content-Length body (if any).
    fn send(&mut self, method: &str, target: &str, content_type: &str, body: &str) {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: mock\r\nAccept: application/json\r\nConnection: keep-alive\r\n");
        if !body.is_empty() {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes()).unwrap();
        self.stream.write_all(body.as_bytes()).unwrap();
    }

    /// Sends a request whose body is chunked (in two chunks).
    fn send_chunked(&mut self, method: &str, target: &str, content_type: &str, body: &str) {
        let (a, b) = body.split_at(body.len() / 2);
        let text = format!(
            "{method} {target} HTTP/1.1\r\nHost: mock\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Status and lower-cased headers of the next response.
    fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.line().expect("a status line");
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line().expect("a header line");
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("a header");
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        (status, headers)
    }

    /// The next chunk of a chunked body; None at the last chunk or when the connection ends.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        let size = usize::from_str_radix(self.line()?.trim(), 16).ok()?;
        if size == 0 {
            self.line();
            return None;
        }
        while self.buf.len() < size + 2 {
            if !self.fill() {
                return None;
            }
        }
        let data = self.buf[..size].to_vec();
        self.buf.drain(..size + 2);
        Some(data)
    }

    /// A whole response: status and JSON body (Content-Length or chunked).
    fn response(&mut self) -> (u16, Value) {
        let (status, headers) = self.head();
        let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            let mut body = Vec::new();
            while let Some(c) = self.chunk() {
                body.extend(c);
            }
            body
        } else {
            let len: usize = header("content-length")
                .expect("Content-Length")
                .parse()
                .unwrap();
            while self.buf.len() < len {
                assert!(self.fill(), "the body ended early");
            }
            self.buf.drain(..len).collect()
        };
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
        (status, json)
    }

    fn call(&mut self, method: &str, target: &str, content_type: &str, body: &str) -> (u16, Value) {
        self.send(method, target, content_type, body);
        self.response()
    }

    /// Opens a watch on this connection; the next watch events come from [`Conn::event`].
    fn watch(addr: &str, target: &str) -> Conn {
        let mut conn = Conn::open(addr);
        conn.send("GET", target, "", "");
        let (status, headers) = conn.head();
        assert_eq!(status, 200, "watch {target}");
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "transfer-encoding" && v == "chunked"),
            "{headers:?}"
        );
        conn
    }

    /// The next watch event, or None when the stream ends.
    fn event(&mut self) -> Option<Value> {
        let chunk = self.chunk()?;
        let text = String::from_utf8(chunk).unwrap();
        assert!(
            text.ends_with('\n'),
            "one JSON object and a newline: {text:?}"
        );
        Some(serde_json::from_str(text.trim_end()).unwrap())
    }
}

fn get(addr: &str, target: &str) -> (u16, Value) {
    Conn::open(addr).call("GET", target, "", "")
}

fn bound_pod(name: &str, node: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
    })
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------
// 0. The mock itself
// ---------------------------------------------------------------------------------------

#[test]
fn mock_lists_the_pods_of_a_node_by_field_selector_and_gets_one_or_a_404_status() {
    let mock = MockKube::start();
    let a1 = mock.add_pod(bound_pod("a1", "node-a"));
    mock.add_pod(bound_pod("a2", "node-a"));
    mock.add_pod(bound_pod("b1", "node-b"));
    let mut other_ns = bound_pod("a3", "node-a");
    other_ns["metadata"]["namespace"] = json!("kube-system");
    mock.add_pod(other_ns);

    assert_eq!(a1["metadata"]["namespace"], "default");
    assert_eq!(a1["status"]["phase"], "Pending");
    let uid = a1["metadata"]["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36, "{uid}");
    assert_eq!(uid.split('-').count(), 5, "{uid}");
    let created = a1["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    let uids: std::collections::BTreeSet<String> = mock
        .pods()
        .iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(uids.len(), 4, "unique uids");

    // As kube-rs's watcher lists: limit, resourceVersion=0, resourceVersionMatch ignored.
    let (status, list) = get(
        &mock.addr(),
        "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500&resourceVersion=0&resourceVersionMatch=NotOlderThan",
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(names(&list), ["a1", "a2", "a3"]);
    assert_eq!(
        list["metadata"]["resourceVersion"],
        mock.resource_version().to_string()
    );
    let (_, list) = get(
        &mock.addr(),
        "/api/v1/pods?fieldSelector=spec.nodeName%3D%3Dnode-b",
    );
    assert_eq!(names(&list), ["b1"]);
    let (_, list) = get(
        &mock.addr(),
        "/api/v1/pods?fieldSelector=spec.nodeName%21%3Dnode-b%2Cmetadata.namespace%3Ddefault",
    );
    assert_eq!(names(&list), ["a1", "a2"]);
    let (_, list) = get(&mock.addr(), "/api/v1/namespaces/kube-system/pods");
    assert_eq!(names(&list), ["a3"]);
    let (_, list) = get(
        &mock.addr(),
        "/api/v1/pods?labelSelector=app%20in%20(a1%2Cb1)",
    );
    assert_eq!(names(&list), ["a1", "b1"]);
    let (_, list) = get(&mock.addr(), "/api/v1/pods");
    assert_eq!(names(&list).len(), 4);

    let (status, pod) = get(&mock.addr(), "/api/v1/namespaces/default/pods/a1");
    assert_eq!(status, 200);
    assert_eq!(pod["metadata"]["uid"], uid);
    let (status, missing) = get(&mock.addr(), "/api/v1/namespaces/default/pods/nope");
    assert_eq!(status, 404);
    assert_eq!(missing["kind"], "Status");
    assert_eq!(missing["reason"], "NotFound");
    assert_eq!(missing["code"], 404);
    let (status, other) = get(&mock.addr(), "/api/v1/nodes/node-a");
    assert_eq!(status, 404);
    assert_eq!(other["kind"], "Status");

    let requests = mock.requests();
    assert_eq!(requests.len(), 9, "every request is recorded");
    assert_eq!(
        requests[0].param("fieldSelector").as_deref(),
        Some("spec.nodeName=node-a")
    );
    assert!(requests[0].is_pod_list() && !requests[0].is_pod_watch());
    assert_eq!(requests[8].status, 404);
}

#[test]
fn mock_merges_status_patches_into_the_status_only_and_bumps_the_resource_version() {
    let mock = MockKube::start();
    let pod = mock.add_pod(bound_pod("p", "n"));
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let rv0: u64 = pod["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut conn = Conn::open(&mock.addr());
    let target = "/api/v1/namespaces/default/pods/p/status";

    let first = json!({"metadata": {"uid": uid}, "status": {
        "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.0.0.2",
        "conditions": [{"type": "Ready", "status": "True"}],
    }});
    let (status, patched) = conn.call(
        "PATCH",
        target,
        "application/merge-patch+json",
        &first.to_string(),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["status"]["phase"], "Running");
    let rv1: u64 = patched["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv1 > rv0);

    // A strategic merge patch is applied as a merge patch; null removes; spec is ignored.
    let second = json!({"spec": {"nodeName": "elsewhere"}, "status": {
        "podIP": null,
        "$setElementOrder/conditions": [{"type": "Ready"}],
        "conditions": [{"type": "Ready", "status": "False"}],
    }});
    let (status, patched) = conn.call(
        "PATCH",
        target,
        "application/strategic-merge-patch+json",
        &second.to_string(),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["status"],
        json!({"phase": "Running", "hostIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "False"}]})
    );
    assert_eq!(patched["spec"]["nodeName"], "n");
    assert_eq!(mock.pod(NS, "p").unwrap(), patched);

    let (status, conflict) = conn.call(
        "PATCH",
        target,
        "application/merge-patch+json",
        r#"{"metadata":{"uid":"another"},"status":{"phase":"Failed"}}"#,
    );
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["reason"], "Conflict");
    let (status, _) = conn.call(
        "PATCH",
        "/api/v1/namespaces/default/pods/absent/status",
        "application/merge-patch+json",
        r#"{"status":{"phase":"Failed"}}"#,
    );
    assert_eq!(status, 404);
    let (status, _) = conn.call("PATCH", target, "application/json-patch+json", "[]");
    assert_eq!(status, 415);

    let patches = mock.status_patches(NS, "p");
    assert_eq!(patches.len(), 4, "{patches:?}");
    assert_eq!(patches[0], first);
    assert_eq!(mock.pod(NS, "p").unwrap()["status"]["phase"], "Running");

    let mut doc = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
    merge_patch(
        &mut doc,
        &json!({"a": {"b": null, "c": [3], "e": {"f": 1}}, "d": "x"}),
    );
    assert_eq!(doc, json!({"a": {"c": [3], "e": {"f": 1}}, "d": "x"}));
}

#[test]
fn mock_delete_honours_the_uid_precondition() {
    let mock = MockKube::start();
    let pod = mock.add_pod(bound_pod("p", "n"));
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let mut conn = Conn::open(&mock.addr());
    let target = "/api/v1/namespaces/default/pods/p";

    let wrong = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "0000"}});
    let (status, body) = conn.call("DELETE", target, "application/json", &wrong.to_string());
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Conflict");
    assert!(
        mock.pod(NS, "p").is_some(),
        "a failed precondition deletes nothing"
    );

    let right = json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
    let (status, body) = conn.call("DELETE", target, "application/json", &right.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["uid"], uid);
    assert!(mock.pod(NS, "p").is_none());
    let (status, body) = conn.call("DELETE", target, "application/json", &right.to_string());
    assert_eq!(status, 404, "{body}");

    // Without a body too.
    mock.add_pod(bound_pod("q", "n"));
    let (status, _) = conn.call("DELETE", "/api/v1/namespaces/default/pods/q", "", "");
    assert_eq!(status, 200);
    assert!(mock.pod(NS, "q").is_none());
}

#[test]
fn mock_watch_streams_changes_after_the_resource_version_by_selector_then_expires_with_410() {
    let mock = MockKube::start();
    mock.add_pod(bound_pod("before", "n"));
    let (_, list) = get(&mock.addr(), "/api/v1/pods?fieldSelector=spec.nodeName%3Dn");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // A change between the list and the watch is replayed from the history.
    mock.add_pod(bound_pod("between", "n"));

    let target = format!(
        "/api/v1/pods?&watch=true&timeoutSeconds=290&fieldSelector=spec.nodeName%3Dn&allowWatchBookmarks=true&resourceVersion={rv}"
    );
    let mut watch = Conn::watch(&mock.addr(), &target);
    let event = watch.event().unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "between");
    mock.wait_for("the watch to register", DEADLINE, |m| {
        (m.open_watches() == 1).then_some(())
    });

    mock.add_pod(bound_pod("elsewhere", "other"));
    mock.add_pod(bound_pod("after", "n"));
    let event = watch.event().unwrap();
    assert_eq!(
        (
            event["type"].as_str(),
            event["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("after")),
        "the other node's pod is not sent"
    );
    mock.update_pod(NS, "after", |p| p["metadata"]["labels"]["x"] = json!("y"));
    let event = watch.event().unwrap();
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(event["object"]["metadata"]["labels"]["x"], "y");
    assert_eq!(
        event["object"]["metadata"]["resourceVersion"],
        mock.resource_version().to_string()
    );
    mock.update_pod(NS, "elsewhere", |p| p["spec"]["nodeName"] = json!("n"));
    let event = watch.event().unwrap();
    assert_eq!(
        (
            event["type"].as_str(),
            event["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("elsewhere")),
        "a pod moving into the selector is ADDED"
    );
    mock.update_pod(NS, "before", |p| p["spec"]["nodeName"] = json!("other"));
    let event = watch.event().unwrap();
    assert_eq!(
        (
            event["type"].as_str(),
            event["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("before")),
        "a pod moving out of the selector is DELETED"
    );
    let grace = mock.mark_deleted(NS, "after", 5);
    assert_eq!(grace["metadata"]["deletionGracePeriodSeconds"], 5);
    let event = watch.event().unwrap();
    assert_eq!(event["type"], "MODIFIED");
    assert!(event["object"]["metadata"]["deletionTimestamp"].is_string());
    mock.remove_pod(NS, "after");
    let event = watch.event().unwrap();
    assert_eq!(event["type"], "DELETED");
    assert_eq!(event["object"]["metadata"]["name"], "after");

    mock.expire_watches();
    let event = watch.event().unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["kind"], "Status");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    assert!(watch.event().is_none(), "the stream ends after the ERROR");

    // A watch from before the expiry is refused with 410; a fresh list works.
    let mut stale = Conn::watch(&mock.addr(), &target);
    assert_eq!(stale.event().unwrap()["object"]["code"], 410);
    assert!(stale.event().is_none());
    let (_, list) = get(&mock.addr(), "/api/v1/pods?fieldSelector=spec.nodeName%3Dn");
    assert_eq!(names(&list), ["between", "elsewhere"]);
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();

    // Going down drops the watch and answers 503.
    let mut fresh = Conn::watch(
        &mock.addr(),
        &format!("/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dn&resourceVersion={rv}"),
    );
    mock.wait_for("the fresh watch", DEADLINE, |m| {
        (m.open_watches() == 1).then_some(())
    });
    mock.set_down(true);
    assert!(fresh.event().is_none(), "the watch is cut");
    let (status, body) = get(&mock.addr(), "/api/v1/pods");
    assert_eq!(status, 503, "{body}");
    mock.set_down(false);
    let (status, _) = get(&mock.addr(), "/api/v1/pods");
    assert_eq!(status, 200);

    // timeoutSeconds ends a watch cleanly.
    let mut short = Conn::watch(
        &mock.addr(),
        &format!("/api/v1/pods?watch=true&timeoutSeconds=1&resourceVersion={rv}"),
    );
    let started = Instant::now();
    assert!(short.event().is_none());
    assert!(started.elapsed() < Duration::from_secs(5));

    // watch with resourceVersion=0 and a streaming list start with the current pods.
    let mut any = Conn::watch(
        &mock.addr(),
        "/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dn&resourceVersion=0",
    );
    let mut seen = [any.event().unwrap(), any.event().unwrap()];
    seen.sort_by_key(|e| {
        e["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    });
    assert_eq!(seen[0]["type"], "ADDED");
    assert_eq!(seen[1]["object"]["metadata"]["name"], "elsewhere");
    let mut streaming = Conn::watch(
        &mock.addr(),
        "/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&fieldSelector=spec.nodeName%3Dn",
    );
    let types: Vec<Value> = (0..3)
        .map(|_| streaming.event().unwrap()["type"].clone())
        .collect();
    assert_eq!(types, [json!("ADDED"), json!("ADDED"), json!("BOOKMARK")]);
}

#[test]
fn mock_keeps_connections_alive_and_serves_config_maps_secrets_events_and_tokens() {
    let mock = MockKube::start();
    mock.put_config_map(json!({"metadata": {"name": "cm"}, "data": {"k": "v"}}));
    mock.put_secret(
        json!({"metadata": {"name": "s", "namespace": "other"}, "data": {"k": "dg=="}}),
    );
    let mut conn = Conn::open(&mock.addr());
    let (status, cm) = conn.call("GET", "/api/v1/namespaces/default/configmaps/cm", "", "");
    assert_eq!(status, 200);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["data"]["k"], "v");
    let (status, missing) = conn.call("GET", "/api/v1/namespaces/other/configmaps/cm", "", "");
    assert_eq!(status, 404);
    assert_eq!(missing["reason"], "NotFound");
    assert_eq!(missing["status"], "Failure");
    let (status, secret) = conn.call("GET", "/api/v1/namespaces/other/secrets/s", "", "");
    assert_eq!(status, 200);
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["data"]["k"], "dg==");

    let token_request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["api"], "expirationSeconds": 3600}});
    conn.send_chunked(
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        "application/json",
        &token_request.to_string(),
    );
    let (status, token) = conn.response();
    assert_eq!(status, 201, "{token}");
    assert_eq!(token["status"]["token"], "mock-token-1");
    assert_eq!(token["spec"]["audiences"], json!(["api"]));
    let expiry = token["status"]["expirationTimestamp"].as_str().unwrap();
    assert!(expiry > mock_kube::rfc3339(std::time::SystemTime::now()).as_str());

    let event = json!({"metadata": {"generateName": "p."}, "reason": "Started", "involvedObject": {"name": "p"}});
    let (status, created) = conn.call(
        "POST",
        "/api/v1/namespaces/default/events",
        "application/json",
        &event.to_string(),
    );
    assert_eq!(status, 201, "{created}");
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("p."), "{name}");
    let (status, patched) = conn.call(
        "PATCH",
        &format!("/api/v1/namespaces/default/events/{name}"),
        "application/merge-patch+json",
        r#"{"count":2}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(patched["count"], 2);
    let (status, _) = conn.call(
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        "application/json",
        r#"{"metadata":{"name":"e1"},"reason":"Killing"}"#,
    );
    assert_eq!(status, 201);
    assert_eq!(mock.events().len(), 2);

    let requests = mock.requests();
    assert_eq!(requests.len(), 7, "one connection carried every request");
    assert_eq!(
        requests[3].json(),
        token_request,
        "the chunked body was read"
    );
    assert_eq!(requests[3].content_type, "application/json");
}

// ---------------------------------------------------------------------------------------
// Helpers for the agent tests
// ---------------------------------------------------------------------------------------

/// Starts `layerlet agent --kubeconfig ... --node-name NODE_NAME EXTRA...` against `mock`.
fn start_agent<'n>(node: &'n Node, mock: &MockKube, node_name: &str, extra: &[&str]) -> Agent<'n> {
    let kubeconfig = mock.kubeconfig(node.dir.path());
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--node-name",
        node_name,
        "--backoff-seconds",
        "1",
        // Kube mode would serve the kubelet API on 0.0.0.0:10250: parallel agents share it.
        "--kubelet-listen",
        "off",
    ];
    args.extend_from_slice(extra);
    Agent::start(node, &args)
}

/// A container of [`IMAGE`] (pull policy Never) running `command`.
fn container(name: &str, command: &[&str]) -> Value {
    json!({"name": name, "image": IMAGE, "imagePullPolicy": "Never", "command": command})
}

/// A container running `sh -c script`.
fn sh(name: &str, script: &str) -> Value {
    container(name, &["sh", "-c", script])
}

/// A container that sleeps for an hour. `sleep` as PID 1 ignores SIGTERM, so it stops at
/// the end of the grace period.
fn sleeper(name: &str) -> Value {
    container(name, &["sleep", "3600"])
}

/// A Pod bound to `node_name` in [`NS`] with a 1 s grace period, restartPolicy Always and
/// `containers`; `spec_extra` is merged into the spec.
fn api_pod(name: &str, node_name: &str, containers: Vec<Value>, spec_extra: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "nodeName": node_name,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 1,
            "containers": containers,
        },
    });
    merge_patch(&mut pod["spec"], &spec_extra);
    pod
}

/// Polls `check` until it gives a value; past `within`, panics with `what`, the agent's
/// pods and the mock's recent requests (the agent guard prints the agent's log).
fn wait<T>(
    agent: &Agent,
    mock: &MockKube,
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            let pods = common::http_get(&agent.addr, "/api/v1/pods")
                .map(|(_, body)| body)
                .unwrap_or_else(|e| format!("(no answer: {e})"));
            panic!(
                "gave up after {within:?} waiting for {what}\nagent pods: {pods}\n{}\nmock pods: {}",
                mock.summary(80),
                serde_json::to_string(&mock.pods()).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The container statuses of a pod object (empty when none).
fn statuses(pod: &Value) -> Vec<Value> {
    pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The container ID in a containerStatuses entry, without its `layerlet://` scheme.
fn container_id(status: &Value) -> String {
    status["containerID"]
        .as_str()
        .and_then(|s| s.strip_prefix("layerlet://"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("no layerlet:// containerID in {status}"))
        .to_string()
}

/// Waits until the API's copy of the pod (what the agent patched) is Running with every
/// container running and a container ID; returns it.
fn wait_api_running(agent: &Agent, mock: &MockKube, name: &str) -> Value {
    wait(
        agent,
        mock,
        &format!("the API status of {name} to be Running"),
        DEADLINE,
        || {
            let pod = mock.pod(NS, name)?;
            let cs = statuses(&pod);
            (pod["status"]["phase"] == "Running"
                && !cs.is_empty()
                && cs.iter().all(|c| {
                    c["state"]["running"].is_object()
                        && c["containerID"]
                            .as_str()
                            .is_some_and(|id| id.len() > "layerlet://".len())
                }))
            .then_some(pod)
        },
    )
}

/// Whether a `ps` row names the container `id` (ps may print a prefix).
fn row_is(row: &Value, id: &str) -> bool {
    row["id"]
        .as_str()
        .is_some_and(|r| !r.is_empty() && id.starts_with(r))
}

/// The agent's own `/api/v1/pods` entry of `name`.
fn agent_pod(agent: &Agent, name: &str) -> Option<Value> {
    agent.pod(name)
}

/// The pod's cgroups that exist under /sys/fs/cgroup (any hierarchy).
fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("layerlet").join(uid))
        .filter(|p| p.exists())
        .collect()
}

fn pod_path(name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/pods/{name}")
}

fn deletes_of(mock: &MockKube, name: &str) -> Vec<Request> {
    mock.requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path == pod_path(name))
        .collect()
}

/// Waits until `ps -a` has no row of `name`, its process is dead and its cgroups are gone.
fn wait_pod_gone(agent: &Agent, mock: &MockKube, name: &str, uid: &str, process: (i64, u64)) {
    wait(
        agent,
        mock,
        &format!("{name} to leave ps -a, its process and its cgroups"),
        DEADLINE,
        || {
            (ps_rows_of(agent.node, name).is_empty()
                && !alive(process)
                && pod_cgroups(uid).is_empty()
                && agent_pod(agent, name).is_none())
            .then_some(())
        },
    );
}

/// `layerlet logs TARGET` (what the container printed).
fn logs(node: &Node, target: &str) -> String {
    let out = node.run(&["logs", target]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a manifest as an editor does: a dotfile, then a rename over the real name.
fn write_manifest(agent: &Agent, file: &str, content: &str) {
    let tmp = agent.manifests.join(format!(".{file}.swp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, agent.manifests.join(file)).unwrap();
}

/// Waits until the agent has tried to list pods from the API (down since request
/// `down_at`) at least twice, then writes a manifest pod and waits until it runs: proof that
/// the agent reconciles while the API is away. Returns that pod's status.
fn witness_while_down(agent: &Agent, mock: &MockKube, down_at: u64) -> Value {
    wait(
        agent,
        mock,
        "the agent to try the API while it is down",
        DEADLINE,
        || {
            (mock
                .requests_after(down_at)
                .iter()
                .filter(|r| r.is_pod_list() && r.status == 503)
                .count()
                >= 2)
                .then_some(())
        },
    );
    let witness = unique("witness");
    write_manifest(
        agent,
        &format!("{witness}.yaml"),
        &sleeper_manifest(&witness),
    );
    wait_agent_running(agent, mock, &witness)
}

fn sleeper_manifest(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {IMAGE}\n    imagePullPolicy: Never\n    command: [sleep, '3600']\n"
    )
}

/// Waits until the agent's own status shows `name` Running with its containers running.
fn wait_agent_running(agent: &Agent, mock: &MockKube, name: &str) -> Value {
    wait(
        agent,
        mock,
        &format!("{name} to run (agent status)"),
        DEADLINE,
        || {
            agent_pod(agent, name).filter(|p| {
                let cs = statuses(p);
                p["status"]["phase"] == "Running"
                    && !cs.is_empty()
                    && cs.iter().all(|c| c["state"]["running"].is_object())
            })
        },
    )
}

// ---------------------------------------------------------------------------------------
// 1. Listing, watching, status
// ---------------------------------------------------------------------------------------

#[test]
fn a_pod_listed_at_start_runs_and_its_running_status_is_patched_to_the_api() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("listed");
    let elsewhere = unique("elsewhere");
    let added = mock.add_pod(api_pod(&name, &node_name, vec![sleeper("app")], json!({})));
    mock.add_pod(api_pod(
        &elsewhere,
        "some-other-node",
        vec![sleeper("app")],
        json!({}),
    ));
    let uid = added["metadata"]["uid"].as_str().unwrap().to_string();
    let agent = start_agent(&node, &mock, &node_name, &[]);

    let pod = wait_api_running(&agent, &mock, &name);
    let status = &pod["status"];
    let cs = statuses(&pod);
    assert_eq!(cs.len(), 1, "{status}");
    let app = &cs[0];
    assert_eq!(app["name"], "app", "{app}");
    assert!(app["state"]["running"]["startedAt"].is_string(), "{app}");
    assert_eq!(app["ready"], true, "{app}");
    assert_eq!(app["started"], true, "{app}");
    assert_eq!(app["restartCount"], 0, "{app}");
    assert_eq!(app["image"], IMAGE, "{app}");
    let id = container_id(app);
    assert_eq!(condition(&pod, "Ready"), "True", "{status}");
    assert!(
        status["hostIP"].as_str().is_some_and(|h| !h.is_empty()),
        "hostIP: {status}"
    );
    assert!(status["startTime"].is_string(), "startTime: {status}");
    assert_eq!(pod["metadata"]["uid"], uid.as_str(), "the same pod");

    // The container the status names is the one running.
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(row_is(&rows[0], &id), "ps {rows:?} vs status {id}");
    assert_eq!(rows[0]["state"], "running", "{rows:?}");
    assert_eq!(rows[0]["namespace"], NS);
    let process = process_of(&node, &id);
    assert!(alive(process));

    // Every status patch was a merge patch of .status on the status subresource.
    let patches = mock.status_patch_records(NS, &name);
    assert!(!patches.is_empty());
    for p in &patches {
        assert!(
            p.content_type.starts_with("application/merge-patch+json")
                || p.content_type
                    .starts_with("application/strategic-merge-patch+json"),
            "content type {:?}",
            p.content_type
        );
        assert!(p.body["status"].is_object(), "{}", p.body);
        assert_eq!(p.status, 200, "{}", p.body);
    }

    // The agent's own status shows it, marked as coming from the API.
    let mine = wait(&agent, &mock, "the agent to list the pod", DEADLINE, || {
        agent_pod(&agent, &name)
    });
    assert_eq!(
        mine["metadata"]["annotations"]["kubernetes.io/config.source"], "api",
        "{mine}"
    );
    assert_eq!(mine["metadata"]["uid"], uid.as_str(), "{mine}");
    assert_eq!(container_id(&statuses(&mine)[0]), id);

    // The other node's pod is not run, listed or patched.
    assert!(agent_pod(&agent, &elsewhere).is_none());
    assert!(ps_rows_of(&node, &elsewhere).is_empty());
    assert!(mock.status_patches(NS, &elsewhere).is_empty());

    let lists: Vec<Request> = mock
        .requests()
        .into_iter()
        .filter(|r| r.is_pod_list() && r.status == 200)
        .collect();
    assert!(!lists.is_empty(), "{}", mock.summary(40));
    for l in &lists {
        assert_eq!(l.path, "/api/v1/pods", "all namespaces: {}", l.line());
        assert_eq!(
            l.param("fieldSelector"),
            Some(format!("spec.nodeName={node_name}")),
            "{}",
            l.line()
        );
    }

    // Last, as the contract's least essential field: the image's ID, `REPO@DIGEST` as
    // containerd-backed kubelets report it.
    let app = &statuses(&mock.pod(NS, &name).unwrap())[0];
    let image_id = app["imageID"].as_str().unwrap_or_default();
    let digest = image_id
        .strip_prefix("example.com/test/busybox@sha256:")
        .unwrap_or_else(|| panic!("imageID: {app}"));
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "imageID: {app}"
    );
    assert_calls_in_table(&mock);
}

#[test]
fn a_pod_added_through_the_watch_starts_and_list_and_watch_select_the_node() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &[]);
    wait(&agent, &mock, "a pod watch to open", DEADLINE, || {
        (mock.open_watches() > 0
            && mock
                .requests()
                .iter()
                .any(|r| r.is_pod_watch() && r.status == 200))
        .then_some(())
    });
    let before = mock.last_seq();

    // Pods of other nodes are never seen; the pod of this node starts.
    let other = unique("other");
    mock.add_pod(api_pod(
        &other,
        &format!("{node_name}-not"),
        vec![sleeper("app")],
        json!({}),
    ));
    let name = unique("watched");
    mock.add_pod(api_pod(&name, &node_name, vec![sleeper("app")], json!({})));
    let pod = wait_api_running(&agent, &mock, &name);
    let id = container_id(&statuses(&pod)[0]);
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        row_is(&rows[0], &id) && rows[0]["state"] == "running",
        "{rows:?}"
    );
    assert!(
        !mock.requests_after(before).iter().any(|r| r.is_pod_list()),
        "the pod came through the open watch, not a relist:\n{}",
        mock.summary(40)
    );

    // A change through the watch (a new label) keeps the same container.
    mock.update_pod(NS, &name, |p| {
        p["metadata"]["labels"]["touched"] = json!("yes")
    });
    wait(
        &agent,
        &mock,
        "the agent to see the new label",
        DEADLINE,
        || agent_pod(&agent, &name).filter(|p| p["metadata"]["labels"]["touched"] == "yes"),
    );
    let pod = mock.pod(NS, &name).unwrap();
    assert_eq!(container_id(&statuses(&pod)[0]), id, "not restarted");

    assert!(agent_pod(&agent, &other).is_none());
    assert!(ps_rows_of(&node, &other).is_empty());
    assert!(mock.status_patches(NS, &other).is_empty());
    let requests = mock.requests();
    let selecting: Vec<&Request> = requests
        .iter()
        .filter(|r| r.is_pod_list() || r.is_pod_watch())
        .collect();
    assert!(selecting.iter().any(|r| r.is_pod_list()), "a list");
    assert!(selecting.iter().any(|r| r.is_pod_watch()), "a watch");
    for r in selecting {
        assert_eq!(
            r.param("fieldSelector"),
            Some(format!("spec.nodeName={node_name}")),
            "{}",
            r.line()
        );
    }
    assert_calls_in_table(&mock);
}

// ---------------------------------------------------------------------------------------
// 2. Deletion
// ---------------------------------------------------------------------------------------

/// What the node looked like when the agent's DELETE of a pod arrived.
#[derive(Debug, Clone)]
struct AtDelete {
    body: Value,
    process_alive: bool,
    container_dir: bool,
    ps_rows: Vec<Value>,
    after_mark: Duration,
}

#[test]
fn graceful_deletion_stops_the_pod_within_the_deletion_grace_period_then_deletes_it_with_a_uid_precondition(
) {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("graceful");
    // The pod's own grace period is long; the API's deletionGracePeriodSeconds is short.
    let added = mock.add_pod(api_pod(
        &name,
        &node_name,
        vec![sleeper("app")],
        json!({"terminationGracePeriodSeconds": 120}),
    ));
    let uid = added["metadata"]["uid"].as_str().unwrap().to_string();
    let agent = start_agent(&node, &mock, &node_name, &[]);
    let pod = wait_api_running(&agent, &mock, &name);
    let id = container_id(&statuses(&pod)[0]);
    let process = process_of(&node, &id);
    let container_dir = node.root().join("containers").join(&id);
    assert!(container_dir.is_dir(), "{container_dir:?}");

    // Look at the node the moment the DELETE arrives.
    let seen: Arc<Mutex<Vec<AtDelete>>> = Arc::default();
    let marked: Arc<Mutex<Option<Instant>>> = Arc::default();
    {
        let (seen, marked, path) = (seen.clone(), marked.clone(), pod_path(&name));
        let (root, run_root, dir) = (node.root(), node.run_root(), container_dir.clone());
        let home = node.dir.path().to_path_buf();
        let pod_name = name.clone();
        mock.on_request(move |r| {
            if r.method != "DELETE" || r.path != path {
                return;
            }
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_layerlet"))
                .arg("--root")
                .arg(&root)
                .arg("--run-root")
                .arg(&run_root)
                .args(["--output", "json", "ps", "-a"])
                .env("HOME", &home)
                .output()
                .expect("layerlet ps");
            let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
            seen.lock().unwrap().push(AtDelete {
                body: r.json(),
                process_alive: alive(process),
                container_dir: dir.exists(),
                ps_rows: rows
                    .into_iter()
                    .filter(|row| row["pod"] == pod_name)
                    .collect(),
                after_mark: marked
                    .lock()
                    .unwrap()
                    .map(|t| t.elapsed())
                    .unwrap_or_default(),
            });
        });
    }

    *marked.lock().unwrap() = Some(Instant::now());
    let grace = 2;
    mock.mark_deleted(NS, &name, grace);
    // Well within the pod's own 120 s: the deletion grace period rules.
    let delete = wait(
        &agent,
        &mock,
        "the agent's final DELETE",
        Duration::from_secs(60),
        || deletes_of(&mock, &name).into_iter().next(),
    );
    let at = seen
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("the hook saw the DELETE");
    assert_eq!(
        delete.json(),
        json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}),
        "kubelet's final delete: {}",
        delete.line()
    );
    assert_eq!(at.body, delete.json());
    assert_eq!(delete.status, 200, "{}", delete.line());
    assert!(
        !at.process_alive,
        "the container still ran when the DELETE came: {at:?}"
    );
    assert!(
        !at.container_dir,
        "the container's files were still there when the DELETE came: {at:?}"
    );
    assert!(
        at.ps_rows.is_empty(),
        "ps -a still listed the pod at DELETE: {at:?}"
    );
    assert!(
        at.after_mark >= Duration::from_secs(1),
        "sleep ignores SIGTERM: the agent gave it the grace period first ({:?})",
        at.after_mark
    );
    assert!(
        at.after_mark < Duration::from_secs(60),
        "stopped within deletionGracePeriodSeconds ({grace} s), not the pod's 120 s: {:?}",
        at.after_mark
    );
    assert!(mock.pod(NS, &name).is_none());
    // As kubelet, the node reported the container terminated before its final delete.
    let status_path = format!("{}/status", pod_path(&name));
    let terminated_first = mock.requests().iter().any(|r| {
        r.method == "PATCH"
            && r.path == status_path
            && r.status == 200
            && r.seq < delete.seq
            && r.json()["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
    });
    assert!(
        terminated_first,
        "no status patch with the container terminated before the DELETE: {:?}",
        mock.status_patches(NS, &name)
    );

    wait_pod_gone(&agent, &mock, &name, &uid, process);
    assert!(ps_all(&node).is_empty(), "nothing left in ps -a");
    assert!(!container_dir.exists());
    assert_eq!(
        deletes_of(&mock, &name).len(),
        1,
        "one DELETE:\n{}",
        mock.summary(40)
    );
    assert_calls_in_table(&mock);
}

#[test]
fn a_pod_deleted_gracefully_is_never_started_again_over_fifty_deletions() {
    // restartPolicy Always and a PID 1 that ignores SIGTERM (sleep): when the grace period
    // ends the container is killed, and a pod with a deletionTimestamp must only go down.
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &[]);
    const BATCH: usize = 5;
    const ROUNDS: usize = 10;
    for round in 0..ROUNDS {
        let names: Vec<String> = (0..BATCH)
            .map(|i| unique(&format!("race{round}-{i}")))
            .collect();
        for name in &names {
            mock.add_pod(api_pod(name, &node_name, vec![sleeper("app")], json!({})));
        }
        let started: Vec<(String, Value)> = names
            .iter()
            .map(|name| {
                let status = statuses(&wait_api_running(&agent, &mock, name))[0].clone();
                (container_id(&status), status)
            })
            .collect();
        let marked_at = mock.last_seq();
        for name in &names {
            mock.mark_deleted(NS, name, 1);
        }
        for (name, (id, before)) in names.iter().zip(&started) {
            wait(
                &agent,
                &mock,
                "the final DELETE",
                Duration::from_secs(60),
                || deletes_of(&mock, name).into_iter().next(),
            );
            let status_path = format!("{}/status", pod_path(name));
            for r in mock.requests_after(marked_at) {
                if r.method != "PATCH" || r.path != status_path {
                    continue;
                }
                let body = r.json();
                for c in body["status"]["containerStatuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let state = &c["state"];
                    assert_ne!(
                        state["waiting"]["reason"], "ContainerCreating",
                        "round {round}: {name} was being created again after its deletion: {body}"
                    );
                    if let Some(running) = c["containerID"]
                        .as_str()
                        .filter(|_| state["running"].is_object())
                    {
                        assert!(
                            running.ends_with(id.as_str()),
                            "round {round}: a new container {running} of {name} ran after its deletion: {body}"
                        );
                    }
                    assert!(
                        c["restartCount"].as_i64() <= before["restartCount"].as_i64(),
                        "round {round}: {name} restarted after its deletion: {body}"
                    );
                }
                assert_ne!(body["status"]["phase"], "Pending", "round {round}: {body}");
            }
        }
    }
    assert!(ps_all(&node).is_empty(), "nothing left in ps -a");
}

#[test]
fn a_force_deleted_pod_is_stopped_and_removed_locally() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("forced");
    let keep = unique("kept");
    let added = mock.add_pod(api_pod(&name, &node_name, vec![sleeper("app")], json!({})));
    mock.add_pod(api_pod(&keep, &node_name, vec![sleeper("app")], json!({})));
    let uid = added["metadata"]["uid"].as_str().unwrap().to_string();
    let agent = start_agent(&node, &mock, &node_name, &[]);
    let pod = wait_api_running(&agent, &mock, &name);
    let kept = wait_api_running(&agent, &mock, &keep);
    let id = container_id(&statuses(&pod)[0]);
    let kept_id = container_id(&statuses(&kept)[0]);
    let process = process_of(&node, &id);
    let kept_process = process_of(&node, &kept_id);

    assert!(mock.remove_pod(NS, &name).is_some());
    wait_pod_gone(&agent, &mock, &name, &uid, process);
    assert!(!node.root().join("containers").join(&id).exists());
    assert!(mock.pod(NS, &name).is_none(), "not recreated");

    // The other pod is untouched; once it is force-deleted too, nothing is left.
    assert!(alive(kept_process), "the other pod was not touched");
    let rows = ps_rows_of(&node, &keep);
    assert!(rows.len() == 1 && row_is(&rows[0], &kept_id), "{rows:?}");
    let kept_uid = kept["metadata"]["uid"].as_str().unwrap().to_string();
    mock.remove_pod(NS, &keep);
    wait_pod_gone(&agent, &mock, &keep, &kept_uid, kept_process);
    assert!(ps_all(&node).is_empty(), "nothing left in ps -a");
}

// ---------------------------------------------------------------------------------------
// 3. The API down across an agent restart
// ---------------------------------------------------------------------------------------

#[test]
fn an_agent_restarted_while_the_api_is_down_keeps_its_pods_and_resumes_patching_once_it_answers() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let keep = unique("keep");
    let crash = unique("crash");
    mock.add_pod(api_pod(&keep, &node_name, vec![sleeper("app")], json!({})));
    mock.add_pod(api_pod(&crash, &node_name, vec![sleeper("app")], json!({})));
    let mut agent = start_agent(&node, &mock, &node_name, &[]);
    let keep_id = container_id(&statuses(&wait_api_running(&agent, &mock, &keep))[0]);
    let crash_id = container_id(&statuses(&wait_api_running(&agent, &mock, &crash))[0]);
    let keep_process = process_of(&node, &keep_id);
    let crash_process = process_of(&node, &crash_id);

    let status = agent.signal(libc::SIGKILL);
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    mock.set_down(true);
    let down_at = mock.last_seq();
    agent.restart();

    // The new agent tries the API and gets 503s, and has reconciled (a manifest pod written
    // now runs) without touching the API pods.
    witness_while_down(&agent, &mock, down_at);
    for (name, id, process) in [
        (&keep, &keep_id, keep_process),
        (&crash, &crash_id, crash_process),
    ] {
        assert!(alive(process), "{name} was stopped while the API was down");
        let rows = ps_rows_of(&node, name);
        assert_eq!(rows.len(), 1, "{name}: {rows:?}");
        assert!(row_is(&rows[0], id), "{name} has a new container: {rows:?}");
        assert_eq!(rows[0]["state"], "running", "{rows:?}");
        assert_eq!(rows[0]["restarts"], 0, "{rows:?}");
    }

    // A container that dies while the API is down is restarted locally.
    // SAFETY: kill(2) of the container's own process, found through inspect.
    unsafe { libc::kill(crash_process.0 as libc::pid_t, libc::SIGKILL) };
    let restarted_id = wait(
        &agent,
        &mock,
        "crash to be restarted while the API is down",
        DEADLINE,
        || {
            let rows = ps_rows_of(&node, &crash);
            let row = rows
                .iter()
                .find(|r| r["state"] == "running" && r["restarts"].as_u64() >= Some(1))?;
            Some(row["id"].as_str()?.to_string())
        },
    );
    assert!(alive(keep_process), "keep is untouched");

    // The API returns: a list succeeds, the status of both pods is patched again.
    let up_at = mock.last_seq();
    mock.set_down(false);
    wait(
        &agent,
        &mock,
        "a successful list after the API returned",
        DEADLINE,
        || {
            mock.requests_after(up_at)
                .into_iter()
                .find(|r| r.is_pod_list() && r.status == 200)
        },
    );
    let crash_pod = wait(
        &agent,
        &mock,
        "crash's restart to be patched",
        DEADLINE,
        || {
            let pod = mock.pod(NS, &crash)?;
            let cs = statuses(&pod);
            (cs.len() == 1
                && cs[0]["restartCount"].as_u64() >= Some(1)
                && cs[0]["state"]["running"].is_object()
                && cs[0]["containerID"]
                    .as_str()
                    .is_some_and(|c| c.ends_with(&restarted_id) || c.contains(&restarted_id)))
            .then_some(pod)
        },
    );
    assert!(
        crash_pod["status"]["containerStatuses"][0]["lastState"]["terminated"].is_object(),
        "lastState shows the killed container: {}",
        crash_pod["status"]
    );
    let keep_pod = mock.pod(NS, &keep).unwrap();
    assert_eq!(container_id(&statuses(&keep_pod)[0]), keep_id);
    assert_eq!(statuses(&keep_pod)[0]["restartCount"], 0);
    assert!(alive(keep_process));
    assert!(
        mock.requests().iter().all(|r| r.method != "DELETE"),
        "no pod was deleted:\n{}",
        mock.summary(60)
    );

    // The watch works again: a new pod starts.
    let late = unique("late");
    mock.add_pod(api_pod(&late, &node_name, vec![sleeper("app")], json!({})));
    wait_api_running(&agent, &mock, &late);
}

// ---------------------------------------------------------------------------------------
// 4. Invalid pods, name clashes
// ---------------------------------------------------------------------------------------

#[test]
fn a_pod_that_fails_validation_gets_a_failed_status_naming_the_field_and_other_pods_run() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let bad = unique("gce");
    let good = unique("good");
    let mut disk = sleeper("app");
    disk["volumeMounts"] = json!([{"name": "disk", "mountPath": "/data"}]);
    mock.add_pod(api_pod(
        &bad,
        &node_name,
        vec![disk],
        json!({"volumes": [{"name": "disk", "gcePersistentDisk": {"pdName": "disk-1", "fsType": "ext4"}}]}),
    ));
    mock.add_pod(api_pod(&good, &node_name, vec![sleeper("app")], json!({})));
    let agent = start_agent(&node, &mock, &node_name, &[]);

    let failed = wait(
        &agent,
        &mock,
        "a Failed status for the invalid pod",
        DEADLINE,
        || {
            mock.pod(NS, &bad)
                .filter(|p| p["status"]["phase"] == "Failed")
        },
    );
    let status = &failed["status"];
    assert_eq!(status["reason"], "FailedValidation", "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.volumes[0]"),
        "the message names the field: {message:?}"
    );
    assert!(
        mock.status_patches(NS, &bad)
            .iter()
            .any(|p| p["status"]["phase"] == "Failed"),
        "sent as a status patch"
    );

    wait_api_running(&agent, &mock, &good);
    assert!(
        ps_rows_of(&node, &bad).is_empty(),
        "nothing of the invalid pod runs"
    );
    assert!(
        deletes_of(&mock, &bad).is_empty(),
        "a Failed pod is not deleted by the node"
    );
    // `kubectl describe` shows why: one Warning event on the pod.
    let told = wait(
        &agent,
        &mock,
        "a FailedValidation event for the pod",
        DEADLINE,
        || {
            events_about(&mock, &bad)
                .into_iter()
                .find(|e| e["reason"] == "FailedValidation")
        },
    );
    assert_eq!(told["type"], "Warning");
    assert!(
        told["message"]
            .as_str()
            .unwrap()
            .contains("spec.volumes[0]"),
        "{told}"
    );
    assert_eq!(
        told["involvedObject"]["uid"],
        mock.pod(NS, &bad).unwrap()["metadata"]["uid"]
    );
}

#[test]
fn a_manifest_pod_and_an_api_pod_with_the_same_name_the_file_pod_wins_and_the_api_pod_fails() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &[]);
    let name = unique("clash");
    write_manifest(&agent, &format!("{name}.yaml"), &sleeper_manifest(&name));
    let file_pod = wait_agent_running(&agent, &mock, &name);
    let file_id = container_id(&statuses(&file_pod)[0]);
    let file_process = process_of(&node, &file_id);

    mock.add_pod(api_pod(&name, &node_name, vec![sleeper("app")], json!({})));
    let failed = wait(
        &agent,
        &mock,
        "a Failed status for the clashing API pod",
        DEADLINE,
        || {
            mock.pod(NS, &name)
                .filter(|p| p["status"]["phase"] == "Failed")
        },
    );
    assert!(
        failed["status"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "says why: {}",
        failed["status"]
    );

    // A later API pod runs: by then the clash has been reconciled.
    let witness = unique("witness");
    mock.add_pod(api_pod(
        &witness,
        &node_name,
        vec![sleeper("app")],
        json!({}),
    ));
    wait_api_running(&agent, &mock, &witness);
    assert!(alive(file_process), "the file pod kept running");
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "only the file pod's container: {rows:?}");
    assert!(row_is(&rows[0], &file_id), "{rows:?}");
    let mine = agent_pod(&agent, &name).expect("the agent lists the file pod");
    assert_ne!(
        mine["metadata"]["annotations"]["kubernetes.io/config.source"], "api",
        "the agent's pod is the file pod: {mine}"
    );
    assert_eq!(container_id(&statuses(&mine)[0]), file_id);
}

// ---------------------------------------------------------------------------------------
// 5. ConfigMaps and Secrets from the API
// ---------------------------------------------------------------------------------------

#[test]
fn a_config_map_key_and_a_secret_volume_from_the_api_reach_the_container() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("cfg");
    let cm = format!("{name}-cm");
    let secret = format!("{name}-secret");
    mock.put_config_map(
        json!({"metadata": {"name": cm}, "data": {"greeting": "hello-from-the-api"}}),
    );
    // base64("s3cret")
    mock.put_secret(
        json!({"metadata": {"name": secret}, "type": "Opaque", "data": {"token": "czNjcmV0"}}),
    );
    let mut app = sh("app", "echo greeting=$GREETING; exec sleep 3600");
    app["env"] = json!([{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "greeting"}}}]);
    app["volumeMounts"] = json!([{"name": "creds", "mountPath": "/s"}]);
    mock.add_pod(api_pod(
        &name,
        &node_name,
        vec![app],
        json!({"volumes": [{"name": "creds", "secret": {"secretName": secret}}]}),
    ));
    let agent = start_agent(&node, &mock, &node_name, &[]);

    wait_api_running(&agent, &mock, &name);
    let target = format!("{name}/app");
    wait(
        &agent,
        &mock,
        "the container to log the ConfigMap value",
        DEADLINE,
        || (logs(&node, &target).trim() == "greeting=hello-from-the-api").then_some(()),
    );
    let out = node.run(&["exec", &target, "--", "cat", "/s/token"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "s3cret");

    let requests = mock.requests();
    for path in [
        format!("/api/v1/namespaces/{NS}/configmaps/{cm}"),
        format!("/api/v1/namespaces/{NS}/secrets/{secret}"),
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.method == "GET" && r.path == path && r.status == 200),
            "GET {path}:\n{}",
            mock.summary(60)
        );
    }
    // The secret's value stays out of the status sent to the API.
    for patch in mock.status_patches(NS, &name) {
        assert!(!patch.to_string().contains("s3cret"), "{patch}");
    }
    assert_calls_in_table(&mock);
}

#[test]
fn a_config_map_missing_from_the_api_holds_the_container_in_create_container_config_error_until_it_appears(
) {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("late-cfg");
    let cm = format!("{name}-cm");
    let mut app = sh("app", "echo greeting=$GREETING; exec sleep 3600");
    app["env"] = json!([{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "greeting"}}}]);
    mock.add_pod(api_pod(&name, &node_name, vec![app], json!({})));
    let agent = start_agent(&node, &mock, &node_name, &[]);

    let waiting = wait(
        &agent,
        &mock,
        "CreateContainerConfigError in the API status",
        DEADLINE,
        || {
            let pod = mock.pod(NS, &name)?;
            let cs = statuses(&pod);
            let c = cs.first()?;
            (c["state"]["waiting"]["reason"] == "CreateContainerConfigError").then(|| c.clone())
        },
    );
    assert!(
        waiting["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&cm)),
        "the message names the ConfigMap: {waiting}"
    );
    assert_ne!(mock.pod(NS, &name).unwrap()["status"]["phase"], "Running");
    let path = format!("/api/v1/namespaces/{NS}/configmaps/{cm}");
    assert!(
        mock.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == path && r.status == 404),
        "the agent asked the API:\n{}",
        mock.summary(60)
    );
    assert!(
        ps_rows_of(&node, &name).is_empty(),
        "no container was created"
    );

    // It appears; the agent re-reads it within its period (at most 60 s) and the pod runs.
    let put_at = mock.last_seq();
    mock.put_config_map(json!({"metadata": {"name": cm}, "data": {"greeting": "late-but-here"}}));
    let pod = wait(
        &agent,
        &mock,
        "the pod to run once the ConfigMap exists",
        Duration::from_secs(100),
        || {
            let pod = mock.pod(NS, &name)?;
            let cs = statuses(&pod);
            (pod["status"]["phase"] == "Running"
                && cs
                    .first()
                    .is_some_and(|c| c["state"]["running"].is_object()))
            .then_some(pod)
        },
    );
    assert!(
        mock.requests_after(put_at)
            .iter()
            .any(|r| r.method == "GET" && r.path == path && r.status == 200),
        "read from the API"
    );
    let target = format!("{name}/app");
    wait(
        &agent,
        &mock,
        "the container to log the late value",
        DEADLINE,
        || (logs(&node, &target).trim() == "greeting=late-but-here").then_some(()),
    );
    let id = container_id(&statuses(&pod)[0]);
    let rows = ps_rows_of(&node, &name);
    assert!(rows.len() == 1 && row_is(&rows[0], &id), "{rows:?}");
}

// ---------------------------------------------------------------------------------------
// 6. A watch that expires
// ---------------------------------------------------------------------------------------

#[test]
fn a_watch_expired_with_410_gone_is_followed_by_a_relist_and_new_pods_still_start() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let first = unique("first");
    mock.add_pod(api_pod(&first, &node_name, vec![sleeper("app")], json!({})));
    let agent = start_agent(&node, &mock, &node_name, &[]);
    let first_id = container_id(&statuses(&wait_api_running(&agent, &mock, &first))[0]);
    let first_process = process_of(&node, &first_id);
    wait(&agent, &mock, "a pod watch to open", DEADLINE, || {
        (mock.open_watches() > 0).then_some(())
    });

    let expired_at = mock.last_seq();
    mock.expire_watches();
    // Added after the expiry: the old watch is gone and a watch from its resourceVersion
    // gets 410 too, so only a relist can find this pod.
    let during = unique("during");
    mock.add_pod(api_pod(
        &during,
        &node_name,
        vec![sleeper("app")],
        json!({}),
    ));
    let relist = wait(&agent, &mock, "a relist after the 410", DEADLINE, || {
        mock.requests_after(expired_at)
            .into_iter()
            .find(|r| r.is_pod_list() && r.status == 200)
    });
    assert_eq!(
        relist.param("fieldSelector"),
        Some(format!("spec.nodeName={node_name}"))
    );
    wait_api_running(&agent, &mock, &during);

    // A new watch from the relist's resourceVersion; a pod added now comes through it.
    wait(
        &agent,
        &mock,
        "a new watch after the relist",
        DEADLINE,
        || {
            (mock.open_watches() > 0
                && mock
                    .requests_after(relist.seq)
                    .iter()
                    .any(|r| r.is_pod_watch() && r.status == 200))
            .then_some(())
        },
    );
    let after = unique("after");
    mock.add_pod(api_pod(&after, &node_name, vec![sleeper("app")], json!({})));
    wait_api_running(&agent, &mock, &after);

    // The relist did not restart the pod that was already running.
    assert!(alive(first_process), "first was restarted by the relist");
    let pod = mock.pod(NS, &first).unwrap();
    assert_eq!(container_id(&statuses(&pod)[0]), first_id);
    assert_eq!(statuses(&pod)[0]["restartCount"], 0);
    assert!(agent_pod(&agent, &first).is_some());
}

// ---------------------------------------------------------------------------------------
// 7. More deletion and restart cases
// ---------------------------------------------------------------------------------------

#[test]
fn a_pod_deleted_from_the_api_while_the_agent_was_down_runs_until_the_first_list_then_goes() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let gone = unique("gone");
    let stays = unique("stays");
    let gone_uid = mock.add_pod(api_pod(&gone, &node_name, vec![sleeper("app")], json!({})))
        ["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    mock.add_pod(api_pod(&stays, &node_name, vec![sleeper("app")], json!({})));
    let mut agent = start_agent(&node, &mock, &node_name, &[]);
    let gone_id = container_id(&statuses(&wait_api_running(&agent, &mock, &gone))[0]);
    let stays_id = container_id(&statuses(&wait_api_running(&agent, &mock, &stays))[0]);
    let gone_process = process_of(&node, &gone_id);
    let stays_process = process_of(&node, &stays_id);

    agent.signal(libc::SIGKILL);
    // Force-deleted while no agent watches; then the API goes down before the agent returns.
    mock.remove_pod(NS, &gone);
    mock.set_down(true);
    let down_at = mock.last_seq();
    agent.restart();
    let witness_pod = witness_while_down(&agent, &mock, down_at);
    let witness_process = process_of(&node, &container_id(&statuses(&witness_pod)[0]));
    assert!(
        alive(gone_process),
        "without a successful list the agent cannot know the pod is gone: it keeps it"
    );
    let rows = ps_rows_of(&node, &gone);
    assert!(rows.len() == 1 && row_is(&rows[0], &gone_id), "{rows:?}");

    // The first successful list no longer has it: it is stopped and removed.
    mock.set_down(false);
    wait_pod_gone(&agent, &mock, &gone, &gone_uid, gone_process);
    assert!(!node.root().join("containers").join(&gone_id).exists());
    assert!(
        alive(stays_process),
        "the pod still in the API was not touched"
    );
    assert!(alive(witness_process), "the manifest pod was not touched");
    let rows = ps_rows_of(&node, &stays);
    assert!(rows.len() == 1 && row_is(&rows[0], &stays_id), "{rows:?}");
    assert!(mock.pod(NS, &gone).is_none(), "not recreated");
}

#[test]
fn a_pod_listed_with_a_deletion_timestamp_is_not_started_and_is_finally_deleted() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("doomed");
    let uid = mock.add_pod(api_pod(
        &name,
        &node_name,
        vec![sleeper("app")],
        json!({"terminationGracePeriodSeconds": 30}),
    ))["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    mock.mark_deleted(NS, &name, 30);
    let witness = unique("witness");
    mock.add_pod(api_pod(
        &witness,
        &node_name,
        vec![sleeper("app")],
        json!({}),
    ));
    let agent = start_agent(&node, &mock, &node_name, &[]);

    let delete = wait(&agent, &mock, "the final DELETE", DEADLINE, || {
        deletes_of(&mock, &name).into_iter().next()
    });
    assert_eq!(
        delete.json(),
        json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}),
        "{}",
        delete.line()
    );
    assert_eq!(delete.status, 200);
    wait_api_running(&agent, &mock, &witness);
    assert!(ps_rows_of(&node, &name).is_empty(), "nothing of it is left");
    assert!(
        mock.status_patches(NS, &name)
            .iter()
            .all(|p| p["status"]["phase"] != "Running"),
        "it never ran: {:?}",
        mock.status_patches(NS, &name)
    );
    let started: Vec<Value> = agent.get_json("/api/v1/events")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e["involvedObject"]["name"] == name.as_str()
                && matches!(e["reason"].as_str(), Some("Created" | "Started"))
        })
        .collect();
    assert!(started.is_empty(), "no container was started: {started:?}");
}

// ---------------------------------------------------------------------------------------
// 8. What a real API server adds to every pod
// ---------------------------------------------------------------------------------------

/// Adds what the ServiceAccount admission plugin adds to a pod on create: a
/// `kube-api-access-*` projected volume (a bound token, the cluster CA from the
/// `kube-root-ca.crt` ConfigMap, the namespace) mounted read-only in every container.
fn with_service_account_volume(mut pod: Value) -> Value {
    let volume = "kube-api-access-x7k2p";
    pod["spec"]["serviceAccountName"] = json!("default");
    pod["spec"]["serviceAccount"] = json!("default");
    let mut volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    volumes.push(json!({
        "name": volume,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }));
    pod["spec"]["volumes"] = json!(volumes);
    for c in pod["spec"]["containers"].as_array_mut().unwrap() {
        let mut mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        mounts.push(json!({
            "name": volume,
            "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }));
        c["volumeMounts"] = json!(mounts);
    }
    pod
}

#[test]
fn the_service_account_volume_an_api_server_injects_gets_a_bound_token_the_ca_and_the_namespace() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("sa");
    let ca = "-----BEGIN CERTIFICATE-----\nMOCK\n-----END CERTIFICATE-----\n";
    mock.put_config_map(json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca}}));
    let uid = mock.add_pod(with_service_account_volume(api_pod(
        &name,
        &node_name,
        vec![sleeper("app")],
        json!({}),
    )))["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = start_agent(&node, &mock, &node_name, &[]);
    wait_api_running(&agent, &mock, &name);

    let token_requests: Vec<Request> = mock
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.path == format!("/api/v1/namespaces/{NS}/serviceaccounts/default/token")
        })
        .collect();
    assert!(
        !token_requests.is_empty(),
        "a TokenRequest:\n{}",
        mock.summary(60)
    );
    let spec = &token_requests[0].json()["spec"];
    assert_eq!(spec["expirationSeconds"], 3607, "{spec}");
    assert_eq!(spec["boundObjectRef"]["kind"], "Pod", "{spec}");
    assert_eq!(spec["boundObjectRef"]["name"], name.as_str(), "{spec}");
    assert_eq!(spec["boundObjectRef"]["uid"], uid.as_str(), "{spec}");
    let issued: Vec<String> = (1..=token_requests.len())
        .map(|n| format!("mock-token-{n}"))
        .collect();

    let target = format!("{name}/app");
    let read = |file: &str| {
        let out = node.run(&[
            "exec",
            &target,
            "--",
            "cat",
            &format!("/var/run/secrets/kubernetes.io/serviceaccount/{file}"),
        ]);
        assert!(
            out.status.success(),
            "cat {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let token = read("token");
    assert!(
        issued.contains(&token),
        "token {token:?}, issued {issued:?}"
    );
    assert_eq!(read("ca.crt"), ca);
    assert_eq!(read("namespace"), NS);
    for patch in mock.status_patches(NS, &name) {
        assert!(!patch.to_string().contains("mock-token-"), "{patch}");
    }
    assert_calls_in_table(&mock);
}

#[test]
fn status_patches_carry_changes_only_and_keep_the_start_time_once_reported() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("steady");
    // Exits after a moment and is restarted: several real status changes.
    let mut pod = api_pod(
        &name,
        &node_name,
        vec![sh("app", "sleep 1; exit 3")],
        json!({}),
    );
    pod["spec"]["restartPolicy"] = json!("Always");
    mock.add_pod(pod);
    let agent = start_agent(&node, &mock, &node_name, &[]);
    wait(&agent, &mock, "a restart to be patched", DEADLINE, || {
        let pod = mock.pod(NS, &name)?;
        (statuses(&pod).first()?["restartCount"].as_u64()? >= 1).then_some(())
    });

    // Replay the patches as the API server applied them: each one changes the status, and
    // status.startTime, once set, never moves (kubelet sets it once).
    let patches = mock.status_patches(NS, &name);
    assert!(patches.len() >= 2, "{patches:?}");
    let mut status = json!({"phase": "Pending"});
    let mut start_time: Option<Value> = None;
    for (i, patch) in patches.iter().enumerate() {
        let before = status.clone();
        mock_kube::api_rules::strategic_merge(&mut status, &patch["status"]);
        assert_ne!(before, status, "patch {i} changed nothing: {patch}");
        if let Some(t) = status.get("startTime").filter(|t| !t.is_null()) {
            match &start_time {
                None => start_time = Some(t.clone()),
                Some(first) => assert_eq!(first, t, "patch {i} moved status.startTime"),
            }
        }
    }
    assert!(start_time.is_some(), "startTime was reported");
    assert_calls_in_table(&mock);
}

/// The keys of a container status's `state` (or `lastState`) on the server.
fn state_keys(status: &Value, field: &str) -> Vec<String> {
    status[field]
        .as_object()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn fields_that_went_away_are_cleared_on_the_server_so_a_running_container_is_only_running() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let name = unique("initfirst");
    mock.add_pod(api_pod(
        &name,
        &node_name,
        vec![sleeper("app")],
        json!({"initContainers": [sh("init", "sleep 2")]}),
    ));
    let agent = start_agent(&node, &mock, &node_name, &[]);
    // First the init phase reaches the server, with its reason and a waiting app.
    wait(
        &agent,
        &mock,
        "the Init reason to be patched",
        DEADLINE,
        || {
            let pod = mock.pod(NS, &name)?;
            let reason = pod["status"]["reason"].as_str()?;
            reason.starts_with("Init:").then_some(())
        },
    );
    let pod = wait_api_running(&agent, &mock, &name);
    let status = &pod["status"];
    assert!(
        status.get("reason").is_none(),
        "the Init reason is cleared: {status}"
    );
    let app = &statuses(&pod)[0];
    assert_eq!(state_keys(app, "state"), ["running"], "{app}");
    let init = &status["initContainerStatuses"][0];
    assert_eq!(state_keys(init, "state"), ["terminated"], "{init}");
    assert_eq!(init["state"]["terminated"]["exitCode"], 0, "{init}");
    // The server merged patches, so only explicit nulls could have cleared the old fields.
    let nulls = mock
        .status_patches(NS, &name)
        .iter()
        .any(|p| p["status"]["reason"].is_null() && p["status"].get("reason").is_some());
    assert!(nulls, "a two-way patch cleared the reason");
    assert_calls_in_table(&mock);
}

/// Event objects the agent posted (and patched) about `name`, from the mock's store.
fn events_about(mock: &MockKube, name: &str) -> Vec<Value> {
    mock.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/events") && r.status == 201)
        .map(|r| r.json())
        .filter(|e| e["involvedObject"]["name"] == name)
        .collect()
}

#[test]
fn events_of_api_pods_are_posted_with_their_uid_and_repeats_are_counted_while_file_pods_stay_local()
{
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &[]);
    // Exits at once: restarted with a 1 s backoff, so "Started" repeats.
    let name = unique("crashing");
    mock.add_pod(api_pod(
        &name,
        &node_name,
        vec![sh("app", "exit 3")],
        json!({}),
    ));
    let file_pod = unique("local");
    write_manifest(
        &agent,
        &format!("{file_pod}.yaml"),
        &sleeper_manifest(&file_pod),
    );

    let started = wait(
        &agent,
        &mock,
        "a Started event posted for the API pod",
        DEADLINE,
        || {
            events_about(&mock, &name)
                .into_iter()
                .find(|e| e["reason"] == "Started")
        },
    );
    let uid = mock.pod(NS, &name).unwrap()["metadata"]["uid"].clone();
    assert_eq!(started["involvedObject"]["uid"], uid, "{started}");
    assert_eq!(started["involvedObject"]["kind"], "Pod");
    assert_eq!(
        started["involvedObject"]["fieldPath"],
        "spec.containers{app}"
    );
    assert_eq!(started["source"]["component"], "layerlet");
    assert_eq!(started["source"]["host"], node_name.as_str());
    assert_eq!(started["message"], "Started container app");
    let event_name = started["metadata"]["name"].as_str().unwrap().to_string();
    // The restarts bump the first event's count instead of posting new ones.
    wait(
        &agent,
        &mock,
        "a count patch of the Started event",
        DEADLINE,
        || {
            mock.requests()
                .iter()
                .filter(|r| {
                    r.method == "PATCH" && r.path.ends_with(&format!("/events/{event_name}"))
                })
                .map(|r| r.json())
                .find(|p| p["count"].as_u64().is_some_and(|c| c >= 2))
        },
    );
    let posted_started = events_about(&mock, &name)
        .into_iter()
        .filter(|e| e["reason"] == "Started")
        .count();
    assert_eq!(posted_started, 1, "one Started object, its count patched");

    // The file pod runs, and its events stay on the node.
    wait_agent_running(&agent, &mock, &file_pod);
    assert!(
        events_about(&mock, &file_pod).is_empty(),
        "a static pod's events are not posted: {:?}",
        events_about(&mock, &file_pod)
    );
    assert_calls_in_table(&mock);
}

#[test]
fn mock_refuses_times_the_api_server_cannot_decode_and_merges_status_lists_by_key() {
    let mock = MockKube::start();
    let mut conn = Conn::open(&mock.addr());
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    let lease = |renew: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": renew}})
    };
    // Nine fractional digits, as a nanosecond formatter writes them: the API server's
    // MicroTime parses exactly six, so the write is Invalid and names the field.
    let (status, refusal) = conn.call(
        "POST",
        leases,
        "application/json",
        &lease("2026-12-04T17:17:22.668661377Z").to_string(),
    );
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["reason"], "Invalid");
    assert_eq!(refusal["details"]["causes"][0]["field"], "spec.renewTime");
    let (status, made) = conn.call(
        "POST",
        leases,
        "application/json",
        &lease("2026-12-04T17:17:22.668661Z").to_string(),
    );
    assert_eq!(status, 201, "{made}");
    // A field the Lease does not have is refused as strict decoding refuses it, not dropped.
    let (status, refusal) = conn.call(
        "PATCH",
        &format!("{leases}/n1"),
        "application/merge-patch+json",
        &json!({"spec": {"renewTimes": "2026-12-04T17:17:32.000000Z"}}).to_string(),
    );
    assert_eq!(status, 400, "{refusal}");
    assert_eq!(refusal["reason"], "BadRequest");
    assert_eq!(refusal["details"]["causes"][0]["field"], "spec.renewTimes");
    let (status, _) = conn.call(
        "PATCH",
        &format!("{leases}/n1"),
        "application/merge-patch+json",
        &json!({"spec": {"renewTime": "2026-12-04T17:17:32.1Z"}}).to_string(),
    );
    assert_eq!(status, 422);
    assert_eq!(
        mock.object("apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1")
            .unwrap()["spec"]["renewTime"],
        "2026-12-04T17:17:22.668661Z",
        "a refused renewal leaves the lease as it was"
    );

    // pods/status: a strategic merge patch merges conditions by type, so a condition
    // another controller owns stays.
    mock.add_pod(json!({
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
        "status": {"conditions": [{"type": "example.com/Gate", "status": "True"}]},
    }));
    let (status, patched) = conn.call(
        "PATCH",
        "/api/v1/namespaces/default/pods/p/status",
        "application/strategic-merge-patch+json",
        &json!({"status": {"conditions": [{"type": "Ready", "status": "True",
            "lastTransitionTime": "2026-12-04T17:17:22Z"}]}})
        .to_string(),
    );
    assert_eq!(status, 200, "{patched}");
    let types: Vec<&str> = patched["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["example.com/Gate", "Ready"]);
    let (status, _) = conn.call(
        "PATCH",
        "/api/v1/namespaces/default/pods/p/status",
        "application/strategic-merge-patch+json",
        &json!({"status": {"startTime": "yesterday"}}).to_string(),
    );
    assert_eq!(status, 422);
}

/// Every call the agent makes to the API server: verb, path (`*` is one segment), content
/// type of its body ("" without one) and the test that checks it against the mock's rules.
/// [`assert_calls_in_table`] fails a test whose agent made a call missing here.
const API_CALLS: &[(&str, &str, &str, &str)] = &[
    ("GET", "/api/v1/pods", "", "a_pod_listed_at_start_runs_and_its_running_status_is_patched_to_the_api"),
    ("GET", "/api/v1/pods?watch", "", "a_pod_added_through_the_watch_starts_and_list_and_watch_select_the_node"),
    ("PATCH", "/api/v1/namespaces/*/pods/*/status", "application/strategic-merge-patch+json", "status_patches_carry_changes_only_and_keep_the_start_time_once_reported"),
    ("DELETE", "/api/v1/namespaces/*/pods/*", "application/json", "graceful_deletion_stops_the_pod_within_the_deletion_grace_period_then_deletes_it_with_a_uid_precondition"),
    ("GET", "/api/v1/namespaces/*/configmaps/*", "", "a_config_map_key_and_a_secret_volume_from_the_api_reach_the_container"),
    ("GET", "/api/v1/namespaces/*/secrets/*", "", "a_config_map_key_and_a_secret_volume_from_the_api_reach_the_container"),
    ("POST", "/api/v1/namespaces/*/serviceaccounts/*/token", "application/json", "the_service_account_volume_an_api_server_injects_gets_a_bound_token_the_ca_and_the_namespace"),
    ("POST", "/api/v1/namespaces/*/events", "application/json", "events_of_api_pods_are_posted_with_their_uid_and_repeats_are_counted_while_file_pods_stay_local"),
    ("PATCH", "/api/v1/namespaces/*/events/*", "application/merge-patch+json", "events_of_api_pods_are_posted_with_their_uid_and_repeats_are_counted_while_file_pods_stay_local"),
    ("GET", "/api/v1/nodes/*", "", "register_node_makes_a_tainted_ready_node_at_its_address_and_renews_its_lease"),
    ("POST", "/api/v1/nodes", "application/json", "register_node_makes_a_tainted_ready_node_at_its_address_and_renews_its_lease"),
    ("PATCH", "/api/v1/nodes/*/status", "application/merge-patch+json", "register_node_makes_a_tainted_ready_node_at_its_address_and_renews_its_lease"),
    ("PATCH", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/*", "application/merge-patch+json", "register_node_makes_a_tainted_ready_node_at_its_address_and_renews_its_lease"),
    ("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", "application/json", "register_node_makes_a_tainted_ready_node_at_its_address_and_renews_its_lease"),
];

#[test]
fn every_test_the_api_call_table_names_exists() {
    let source = include_str!("kube_api.rs");
    for (verb, path, _, test) in API_CALLS {
        assert!(
            source.contains(&format!("fn {test}(")),
            "{verb} {path}: no test {test}"
        );
    }
}

/// Whether `path` (with its query) fits a table path: `*` is one segment, `?watch` asks
/// for a watch and a plain path for anything but one.
fn fits(pattern: &str, request: &Request) -> bool {
    let (pattern, watch) = match pattern.split_once('?') {
        Some((p, _)) => (p, true),
        None => (pattern, false),
    };
    let want: Vec<&str> = pattern.split('/').collect();
    let have: Vec<&str> = request.path.split('/').collect();
    want.len() == have.len()
        && want.iter().zip(&have).all(|(w, h)| *w == "*" || w == h)
        && request.is_watch() == watch
}

/// Every request the mock saw is a row of [`API_CALLS`].
fn assert_calls_in_table(mock: &MockKube) {
    let unknown: Vec<String> = mock
        .requests()
        .iter()
        .filter(|r| {
            let content_type = r.content_type.split(';').next().unwrap_or("").trim();
            !API_CALLS.iter().any(|(verb, path, ct, _)| {
                *verb == r.method && fits(path, r) && *ct == content_type
            })
        })
        .map(|r| format!("{} [{}]", r.line(), r.content_type))
        .collect();
    assert!(
        unknown.is_empty(),
        "calls missing from API_CALLS: {unknown:#?}"
    );
}

/// The node object once its status was posted.
fn registered_node(agent: &Agent, mock: &MockKube, node_name: &str) -> Value {
    wait(
        agent,
        mock,
        "the Node object with its status",
        DEADLINE,
        || {
            mock.object(&format!("api/v1/nodes/{node_name}"))
                .filter(|n| n["status"]["conditions"].is_array())
        },
    )
}

#[test]
fn register_node_makes_a_tainted_ready_node_at_its_address_and_renews_its_lease() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    // 127.0.0.1 is an address of every host, and not what the default route gives.
    let agent = start_agent(
        &node,
        &mock,
        &node_name,
        &[
            "--register-node",
            "--node-ip",
            "127.0.0.1",
            "--max-pods",
            "7",
        ],
    );
    let registered = registered_node(&agent, &mock, &node_name);
    let status = &registered["status"];
    let conditions: Vec<(&str, &str)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        conditions,
        [
            ("MemoryPressure", "False"),
            ("DiskPressure", "False"),
            ("PIDPressure", "False"),
            ("Ready", "True")
        ]
    );
    let ready = &status["conditions"][3];
    assert!(ready["lastTransitionTime"].is_string(), "{ready}");
    assert_eq!(
        status["addresses"],
        json!([{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": node_name}])
    );
    assert_eq!(status["capacity"]["pods"], "7");
    assert_eq!(status["allocatable"]["pods"], "7");
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(status["nodeInfo"]["architecture"], "amd64");
    }
    assert_eq!(
        registered["spec"]["taints"][0],
        json!({"key": "layerlet.io/agent", "value": "true", "effect": "NoSchedule"})
    );
    assert_eq!(
        registered["metadata"]["labels"]["kubernetes.io/hostname"],
        node_name.as_str()
    );
    // Starting and NodeReady, as kubelet posts them about its node.
    let reasons = wait(&agent, &mock, "the node's events", DEADLINE, || {
        let reasons: Vec<String> = mock
            .events()
            .iter()
            .filter(|e| {
                e["involvedObject"]["kind"] == "Node"
                    && e["involvedObject"]["name"] == node_name.as_str()
            })
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect();
        (reasons.len() >= 2).then_some(reasons)
    });
    assert_eq!(reasons, ["Starting", "NodeReady"]);

    // The lease, renewed every 10 s: three renewals in a row, each accepted under the
    // API server's six-digit MicroTime rule (the mock refuses any other form).
    let lease_path =
        format!("apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node_name}");
    let mut renewals = vec![wait(&agent, &mock, "the node's lease", DEADLINE, || {
        mock.object(&lease_path)
    })];
    assert_eq!(renewals[0]["spec"]["holderIdentity"], node_name.as_str());
    assert_eq!(renewals[0]["spec"]["leaseDurationSeconds"], 40);
    for _ in 0..3 {
        let last = renewals.last().unwrap()["spec"]["renewTime"].clone();
        renewals.push(wait(
            &agent,
            &mock,
            "a lease renewal",
            Duration::from_secs(30),
            || {
                mock.object(&lease_path)
                    .filter(|l| l["spec"]["renewTime"] != last)
            },
        ));
    }
    let times: Vec<&str> = renewals
        .iter()
        .map(|l| l["spec"]["renewTime"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(
        times.iter().all(|t| mock_kube::api_rules::is_micro_time(t)),
        "{times:?}"
    );
    let refused: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/leases") && r.status >= 400 && r.status != 404)
        .map(|r| r.line())
        .collect();
    assert!(refused.is_empty(), "lease writes refused: {refused:?}");

    // A pod on this node reports the node's address as its hostIP.
    let name = unique("here");
    mock.add_pod(api_pod(&name, &node_name, vec![sleeper("app")], json!({})));
    let pod = wait_api_running(&agent, &mock, &name);
    assert_eq!(pod["status"]["hostIP"], "127.0.0.1", "{}", pod["status"]);
    assert_eq!(pod["status"]["hostIPs"], json!([{"ip": "127.0.0.1"}]));
    assert_calls_in_table(&mock);
}

#[test]
fn a_failing_first_list_backs_off_from_one_second_and_the_outage_is_logged_once_each_way() {
    let mock = MockKube::start();
    mock.set_down(true);
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &[]);
    let lists = || mock.requests().iter().filter(|r| r.is_pod_list()).count();
    wait(&agent, &mock, "a first list", DEADLINE, || {
        (lists() > 0).then_some(())
    });
    // Delays 1, 2, 4 and 8 s (each up to a fifth longer): tries at about 0, 1, 3 and 7 s
    // of 12; a retry every second would have made 12.
    std::thread::sleep(Duration::from_secs(12));
    let tries = lists();
    assert!((3..=5).contains(&tries), "{tries} lists in 12 s of outage");
    mock.set_down(false);
    let name = unique("after");
    mock.add_pod(api_pod(&name, &node_name, vec![sleeper("app")], json!({})));
    wait_api_running(&agent, &mock, &name);
    let log = agent.log();
    let away = log
        .matches("the API server does not answer the watch")
        .count();
    let back = log
        .matches("the API server answers the watch again")
        .count();
    assert_eq!((away, back), (1, 1), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn a_registered_node_stays_ready_through_ten_minutes_of_node_lifecycle_rules() {
    // Longer than the status report period (5 minutes): the status must be posted again,
    // and the lease renewed all along, or a control plane would mark the node NotReady.
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &["--register-node"]);
    wait(&agent, &mock, "a healthy node", DEADLINE, || {
        mock.node_health(&node_name).ok()
    });
    let status_posts = || {
        mock.requests()
            .iter()
            .filter(|r| {
                r.method == "PATCH"
                    && r.path.ends_with(&format!("nodes/{node_name}/status"))
                    && r.status == 200
            })
            .count()
    };
    let until = Instant::now() + Duration::from_secs(600);
    while Instant::now() < until {
        if let Err(why) = mock.node_health(&node_name) {
            panic!("the node went unhealthy: {why}\n{}", agent.log());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        status_posts() >= 2,
        "{} status posts in 10 minutes",
        status_posts()
    );
}

#[test]
fn an_api_pod_with_the_api_servers_default_tolerations_gets_no_ignored_field_event() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &[]);
    let name = unique("tolerant");
    // What the DefaultTolerationSeconds admission plugin adds to every pod.
    let tolerations = json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]);
    mock.add_pod(api_pod(
        &name,
        &node_name,
        vec![sleeper("app")],
        json!({"tolerations": tolerations, "nodeSelector": {"kubernetes.io/os": "linux"}}),
    ));
    wait_api_running(&agent, &mock, &name);
    let ignored: Vec<Value> = events_about(&mock, &name)
        .into_iter()
        .filter(|e| e["reason"] == "IgnoredField")
        .collect();
    assert!(ignored.is_empty(), "{ignored:?}");
}

#[test]
fn an_update_the_node_cannot_apply_leaves_the_pod_running_on_its_admitted_spec() {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &[]);
    let name = unique("debugged");
    mock.add_pod(api_pod(&name, &node_name, vec![sleeper("app")], json!({})));
    let id = container_id(&statuses(&wait_api_running(&agent, &mock, &name))[0]);
    // What `kubectl debug` does: an ephemeral container, which layerlet does not run.
    mock.update_pod(NS, &name, |p| {
        p["spec"]["ephemeralContainers"] =
            json!([{"name": "debugger", "image": IMAGE, "command": ["sh"]}]);
    });
    let warning = wait(
        &agent,
        &mock,
        "an event saying the update was not applied",
        DEADLINE,
        || {
            events_about(&mock, &name).into_iter().find(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("was not applied"))
            })
        },
    );
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("spec.ephemeralContainers"),
        "{warning}"
    );
    let rows = ps_rows_of(&node, &name);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        row_is(&rows[0], &id) && rows[0]["state"] == "running",
        "{rows:?}"
    );
    assert!(
        mock.status_patches(NS, &name)
            .iter()
            .all(|p| p["status"]["phase"] != "Failed"),
        "never reported Failed: {:?}",
        mock.status_patches(NS, &name)
    );
}

#[test]
fn a_pod_the_api_has_as_finished_is_not_run_again_and_a_recreated_name_never_shows_the_old_containers(
) {
    let mock = MockKube::start();
    let node = busybox_node();
    let node_name = unique("node");
    let agent = start_agent(&node, &mock, &node_name, &[]);
    // A Job pod this node has no record of, already Succeeded: it must not run twice.
    let done = unique("done");
    let mut finished = api_pod(&done, &node_name, vec![sh("app", "exit 0")], json!({}));
    finished["status"] = json!({"phase": "Succeeded"});
    mock.add_pod(finished);

    // A pod deleted by force and created again under its name, while the old one stops.
    let name = unique("reborn");
    let mut slow = api_pod(&name, &node_name, vec![sleeper("app")], json!({}));
    slow["spec"]["terminationGracePeriodSeconds"] = json!(3);
    mock.add_pod(slow);
    let old_id = container_id(&statuses(&wait_api_running(&agent, &mock, &name))[0]);
    let old_uid = mock.pod(NS, &name).unwrap()["metadata"]["uid"].clone();
    mock.remove_pod(NS, &name);
    let new_uid = mock.add_pod(api_pod(&name, &node_name, vec![sleeper("app")], json!({})))
        ["metadata"]["uid"]
        .clone();
    assert_ne!(old_uid, new_uid);
    let new_id = container_id(&statuses(&wait_api_running(&agent, &mock, &name))[0]);
    assert_ne!(new_id, old_id);
    for patch in mock.status_patches(NS, &name) {
        if patch["metadata"]["uid"] == new_uid {
            assert!(
                !patch.to_string().contains(&old_id),
                "the new pod was shown its predecessor's container: {patch}"
            );
        }
    }

    assert!(
        ps_rows_of(&node, &done).is_empty(),
        "{:?}",
        ps_rows_of(&node, &done)
    );
    assert!(mock.status_patches(NS, &done).is_empty());
}

#[test]
fn bad_kube_arguments_are_refused_with_the_flag_or_file_named() {
    let node = busybox_node();
    let dir = node.dir.path();
    let refused = |args: &[&str]| {
        let out = node.run(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let listen = ["--listen", "127.0.0.1:0"];
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let err = refused(
        &[
            &["agent", "--node-ip", "198.51.100.254", "--manifests"][..],
            &[manifests.to_str().unwrap()][..],
            &listen[..],
        ]
        .concat(),
    );
    assert!(
        err.contains("--node-ip 198.51.100.254: not an address of any interface of this host"),
        "{err}"
    );
    let err = refused(&[&["agent", "--register-node"][..], &listen[..]].concat());
    assert!(
        err.contains("--register-node needs an API server: pass --kubeconfig PATH or --in-cluster"),
        "{err}"
    );

    let missing = dir.join("no-such-kubeconfig");
    let err = refused(
        &[
            &["agent", "--kubeconfig", missing.to_str().unwrap()][..],
            &listen[..],
        ]
        .concat(),
    );
    assert!(
        err.contains(&format!("kubeconfig {}", missing.display())),
        "{err}"
    );
    assert!(err.contains("pass a readable kubeconfig"), "{err}");

    let garbled = dir.join("garbled-kubeconfig");
    std::fs::write(&garbled, "clusters: [this is not: a kubeconfig").unwrap();
    let err = refused(
        &[
            &["agent", "--kubeconfig", garbled.to_str().unwrap()][..],
            &listen[..],
        ]
        .concat(),
    );
    assert!(
        err.contains(&format!("kubeconfig {}", garbled.display())),
        "{err}"
    );

    let mock = MockKube::start();
    let kubeconfig = mock.kubeconfig(dir);
    let err = refused(
        &[
            &[
                "agent",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--node-name",
                "Not_A_Node",
            ][..],
            &listen[..],
        ]
        .concat(),
    );
    assert!(
        err.contains("--node-name \"Not_A_Node\": invalid name"),
        "{err}"
    );
    // Nothing was asked of the API server by an agent that did not start.
    assert!(mock.requests().is_empty(), "{}", mock.summary(10));
}
