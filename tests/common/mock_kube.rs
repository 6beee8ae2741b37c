//! A scripted mock of the Kubernetes API server, for testing `layerlet agent` in kube mode.
//!
//! A threaded HTTP/1.1 server on `127.0.0.1:0` (std only, plus serde_json) that serves the
//! core/v1 endpoints a node agent uses: pods (list, get, watch, status patch, delete),
//! configmaps and secrets (get), events (create, patch; core/v1 and events.k8s.io/v1) and
//! serviceaccount tokens (TokenRequest), TokenReviews and SubjectAccessReviews (validated
//! as the real server validates them, answered from [`MockKube::add_token`] and
//! [`MockKube::allow`]). Everything else answers a 404 Status.
//!
//! The state (pods, configmaps, secrets, a global resourceVersion counter and the history
//! of pod changes) sits behind one mutex; the test scripts it with [`MockKube::add_pod`],
//! [`MockKube::update_pod`], [`MockKube::mark_deleted`], [`MockKube::remove_pod`],
//! [`MockKube::set_down`], [`MockKube::expire_watches`] and reads back what the client did
//! with [`MockKube::requests`] and [`MockKube::status_patches`].
//!
//! Watches are chunked streams of `{"type": ..., "object": ...}` lines, replayed from the
//! history after the requested resourceVersion, filtered by the request's fieldSelector and
//! labelSelector (a pod that stops matching is DELETED for that watcher, one that starts
//! matching is ADDED), and kept open until the mock is dropped, goes down, expires its
//! watches or the request's `timeoutSeconds` passes. After [`MockKube::expire_watches`] a
//! watch from an older resourceVersion gets `410 Gone` at once, as from an API server whose
//! history was compacted, so the client has to list again.
//!
//! Nodes and Leases are what the agent writes; a test plays the control plane's part with
//! [`MockKube::put_node`] and [`MockKube::allocate_pod_cidrs`] (the node IPAM controller).
//! [`MockKube::start_in_netns`] listens inside a network namespace, for an agent run there.
//!
//! `MOCK_KUBE_DUMP=1` prints every request the mock saw when it is dropped (bodies cut at
//! 300 bytes; `MOCK_KUBE_DUMP=full` prints them whole).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[path = "api_rules.rs"]
pub mod api_rules;

/// One request the mock received, as it was answered.
#[derive(Clone, Debug)]
pub struct Request {
    /// Arrival order, from 1.
    pub seq: u64,
    pub method: String,
    /// The path, still percent-encoded as sent.
    pub path: String,
    /// The raw query string (without `?`), still encoded.
    pub query: String,
    pub content_type: String,
    pub body: String,
    /// The status code it was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    /// A decoded query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn is_watch(&self) -> bool {
        self.param("watch").is_some_and(|w| w == "true" || w == "1")
    }

    /// `GET /api/v1/pods` or `GET /api/v1/namespaces/NS/pods` without `watch`.
    pub fn is_pod_list(&self) -> bool {
        self.method == "GET" && is_pod_collection(&self.path) && !self.is_watch()
    }

    /// A pod watch (`GET .../pods?watch=true`).
    pub fn is_pod_watch(&self) -> bool {
        self.method == "GET" && is_pod_collection(&self.path) && self.is_watch()
    }

    /// `METHOD path?query -> status`, for failure messages.
    pub fn line(&self) -> String {
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        let body = if self.body.is_empty() {
            String::new()
        } else {
            let mut b = self.body.replace('\n', " ");
            if b.len() > 300 && std::env::var("MOCK_KUBE_DUMP").as_deref() != Ok("full") {
                let mut end = 300;
                while !b.is_char_boundary(end) {
                    end -= 1;
                }
                b.truncate(end);
                b.push('…');
            }
            format!(" {b}")
        };
        format!(
            "#{} {} {}{} -> {}{}",
            self.seq, self.method, self.path, query, self.status, body
        )
    }
}

fn is_pod_collection(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        segs.as_slice(),
        ["api", "v1", "pods"] | ["api", "v1", "namespaces", _, "pods"]
    )
}

/// A recorded status patch.
#[derive(Clone, Debug)]
pub struct StatusPatch {
    pub namespace: String,
    pub name: String,
    pub content_type: String,
    pub body: Value,
    /// The status code it was answered with.
    pub status: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One change of one pod, at one resourceVersion.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    kind: ChangeKind,
    old: Option<Value>,
    new: Value,
}

enum WatchMsg {
    /// A watch event line to send.
    Event(Value),
    /// Send this ERROR event, end the stream cleanly and close.
    Expire(Value),
    /// Drop the connection without ending the stream (the server went away).
    Drop,
}

struct Watcher {
    id: u64,
    selector: Selector,
    tx: mpsc::Sender<WatchMsg>,
}

type Hook = Arc<dyn Fn(&Request) + Send + Sync>;

#[derive(Default)]
struct State {
    rv: u64,
    pods: BTreeMap<(String, String), Value>,
    config_maps: BTreeMap<(String, String), Value>,
    secrets: BTreeMap<(String, String), Value>,
    /// Events by (group path, namespace, name).
    events: BTreeMap<(String, String, String), Value>,
    history: Vec<Change>,
    watchers: Vec<Watcher>,
    next_watcher: u64,
    requests: Vec<Request>,
    status_patches: Vec<StatusPatch>,
    down: bool,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
    tokens: u64,
    names: u64,
    hooks: Vec<Hook>,
    /// Nodes and Leases, by their object path (`api/v1/nodes/NAME`, ...).
    objects: BTreeMap<String, Value>,
    /// What TokenReviews and SubjectAccessReviews answer.
    reviews: Reviews,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    seq: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not take the whole mock down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The mock API server. Dropping it closes every watch and stops accepting connections.
pub struct MockKube {
    shared: Arc<Shared>,
    addr: std::net::SocketAddr,
    accept: Option<std::thread::JoinHandle<()>>,
    /// The network namespace it listens in ([`MockKube::start_in_netns`]); None: the
    /// caller's.
    netns: Option<std::fs::File>,
}

/// Runs `f` on a thread of its own inside the network namespace `netns` (an open
/// `/run/netns/NAME`), so the sockets it makes belong to that namespace; the caller's
/// thread stays where it is.
pub fn in_netns<T: Send>(netns: &std::fs::File, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("setns into the network namespace");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

impl MockKube {
    /// Binds 127.0.0.1:0 and serves in background threads.
    pub fn start() -> MockKube {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the mock API server");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1000,
                ..State::default()
            }),
            stop: AtomicBool::new(false),
            seq: AtomicU64::new(0),
        });
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("mock-kube-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let conn_shared = accept_shared.clone();
                    let _ = std::thread::Builder::new()
                        .name("mock-kube-conn".into())
                        .spawn(move || serve_connection(conn_shared, stream));
                }
            })
            .expect("spawn the accept thread");
        MockKube {
            shared,
            addr,
            accept: Some(accept),
            netns: None,
        }
    }

    /// Binds 127.0.0.1:0 inside the network namespace at `netns` (`/run/netns/NAME`): an
    /// agent run in that namespace sees only its loopback, so its API server must listen
    /// there. A listening socket stays in the namespace it was made in, so the threads that
    /// serve it need not enter it.
    pub fn start_in_netns(netns: &Path) -> MockKube {
        let file =
            std::fs::File::open(netns).unwrap_or_else(|e| panic!("open {}: {e}", netns.display()));
        let mut mock = in_netns(&file, MockKube::start);
        mock.netns = Some(file);
        mock
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Writes `dir/kubeconfig` pointing at this server (token `test-token`, namespace
    /// default) and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mock\n  cluster:\n    server: \"{}\"\nusers:\n- name: u\n  user:\n    token: test-token\ncontexts:\n- name: c\n  context:\n    cluster: mock\n    user: u\n    namespace: default\ncurrent-context: c\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    // -- pods -------------------------------------------------------------------------------

    /// Creates a pod as the API server does: apiVersion/kind, namespace (default
    /// `default`), a fresh uid, creationTimestamp, resourceVersion, and `status.phase:
    /// Pending` when it has no status. An ADDED event. Returns the stored pod.
    /// Panics if the pod exists.
    pub fn add_pod(&self, pod: Value) -> Value {
        let mut st = self.shared.lock();
        let mut pod = pod;
        assert!(pod.is_object(), "a pod is a JSON object: {pod}");
        pod["apiVersion"] = json!("v1");
        pod["kind"] = json!("Pod");
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = pod["metadata"]["name"]
            .as_str()
            .expect("the pod has metadata.name")
            .to_string();
        assert!(
            !st.pods.contains_key(&(ns.clone(), name.clone())),
            "pod {ns}/{name} exists"
        );
        pod["metadata"]["namespace"] = json!(ns);
        if pod["metadata"]["uid"].as_str().is_none() {
            pod["metadata"]["uid"] = json!(new_uid());
        }
        pod["metadata"]["creationTimestamp"] = json!(rfc3339(SystemTime::now()));
        if pod["metadata"]["generation"].is_null() {
            pod["metadata"]["generation"] = json!(1);
        }
        if pod["status"].is_null() {
            pod["status"] = json!({"phase": "Pending"});
        }
        st.put_pod(&ns, &name, pod, ChangeKind::Added)
    }

    /// Changes a pod with `f` (a MODIFIED event); returns the stored pod. Panics if absent.
    pub fn update_pod(&self, ns: &str, name: &str, f: impl FnOnce(&mut Value)) -> Value {
        let mut st = self.shared.lock();
        let mut pod = st
            .pods
            .get(&(ns.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no pod {ns}/{name} to update"))
            .clone();
        f(&mut pod);
        if pod["metadata"]["generation"].is_i64() || pod["metadata"]["generation"].is_u64() {
            let g = pod["metadata"]["generation"].as_u64().unwrap_or(1);
            pod["metadata"]["generation"] = json!(g + 1);
        }
        st.put_pod(ns, name, pod, ChangeKind::Modified)
    }

    /// What the API server does on a graceful delete of a bound pod: sets
    /// metadata.deletionTimestamp (now + grace) and deletionGracePeriodSeconds; a MODIFIED
    /// event. The pod stays until the client deletes it with grace 0.
    pub fn mark_deleted(&self, ns: &str, name: &str, grace_seconds: i64) -> Value {
        let mut st = self.shared.lock();
        st.mark_deleted(ns, name, grace_seconds)
            .unwrap_or_else(|| panic!("no pod {ns}/{name} to delete"))
    }

    /// Removes a pod at once (a force delete): a DELETED event. Returns it if it was there.
    pub fn remove_pod(&self, ns: &str, name: &str) -> Option<Value> {
        let mut st = self.shared.lock();
        st.remove_pod(ns, name)
    }

    // -- nodes --------------------------------------------------------------------------------

    /// Creates a Node as the API server does (uid, resourceVersion, creationTimestamp, pod
    /// CIDRs kept in step), e.g. one registered before the agent starts. Returns it
    /// stored; panics if it exists or the API server would refuse it.
    pub fn put_node(&self, node: Value) -> Value {
        let mut st = self.shared.lock();
        let mut node = node;
        node["apiVersion"] = json!("v1");
        node["kind"] = json!("Node");
        let name = node["metadata"]["name"]
            .as_str()
            .expect("the node has metadata.name")
            .to_string();
        let path = format!("api/v1/nodes/{name}");
        assert!(!st.objects.contains_key(&path), "node {name} exists");
        if let Some(refusal) = api_rules::settle_pod_cidrs(&name, None, &mut node) {
            panic!("the API server refuses node {name}: {refusal}");
        }
        let rv = st.bump();
        node["metadata"]["uid"] = json!(new_uid());
        node["metadata"]["resourceVersion"] = json!(rv.to_string());
        node["metadata"]["creationTimestamp"] = json!(rfc3339(SystemTime::now()));
        st.objects.insert(path, node.clone());
        node
    }

    /// What the node IPAM controller does once a node registers: sets its
    /// `spec.podCIDRs` (and `spec.podCIDR`, their first). Returns the stored Node; panics if
    /// it is absent or the API server would refuse the change (pod CIDRs are set once).
    pub fn allocate_pod_cidrs(&self, node: &str, cidrs: &[&str]) -> Value {
        let mut st = self.shared.lock();
        let path = format!("api/v1/nodes/{node}");
        let old = st
            .objects
            .get(&path)
            .cloned()
            .unwrap_or_else(|| panic!("no node {node} to allocate pod CIDRs to"));
        let mut new = old.clone();
        new["spec"]["podCIDR"] = json!(cidrs.first());
        new["spec"]["podCIDRs"] = json!(cidrs);
        if let Some(refusal) = api_rules::settle_pod_cidrs(node, Some(&old), &mut new) {
            panic!("the API server refuses pod CIDRs {cidrs:?} for {node}: {refusal}");
        }
        let rv = st.bump();
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.objects.insert(path, new.clone());
        new
    }

    /// The stored pod.
    /// A Node or Lease the agent made, by object path: `api/v1/nodes/NAME` or
    /// `apis/coordination.k8s.io/v1/namespaces/NS/leases/NAME`.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.shared.lock().objects.get(path).cloned()
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .pods
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn pods(&self) -> Vec<Value> {
        self.shared.lock().pods.values().cloned().collect()
    }

    // -- configmaps, secrets ------------------------------------------------------------------

    /// Creates or replaces a ConfigMap (namespace default `default`); returns it stored.
    pub fn put_config_map(&self, cm: Value) -> Value {
        let mut st = self.shared.lock();
        let (key, obj) = st.prepare_object(cm, "ConfigMap");
        st.config_maps.insert(key, obj.clone());
        obj
    }

    pub fn remove_config_map(&self, ns: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .config_maps
            .remove(&(ns.to_string(), name.to_string()))
    }

    /// Creates or replaces a Secret (namespace default `default`); returns it stored.
    pub fn put_secret(&self, secret: Value) -> Value {
        let mut st = self.shared.lock();
        let (key, obj) = st.prepare_object(secret, "Secret");
        st.secrets.insert(key, obj.clone());
        obj
    }

    pub fn remove_secret(&self, ns: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .secrets
            .remove(&(ns.to_string(), name.to_string()))
    }

    // -- what the client did ------------------------------------------------------------------

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// The requests with `seq > after` (see [`MockKube::last_seq`]).
    pub fn requests_after(&self, after: u64) -> Vec<Request> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.seq > after)
            .cloned()
            .collect()
    }

    /// The seq of the latest request that arrived (0 if none): a marker for
    /// [`MockKube::requests_after`].
    pub fn last_seq(&self) -> u64 {
        self.shared.seq.load(Ordering::SeqCst)
    }

    /// Bodies of the status patches of one pod, in order.
    pub fn status_patches(&self, ns: &str, name: &str) -> Vec<Value> {
        self.status_patch_records(ns, name)
            .into_iter()
            .map(|p| p.body)
            .collect()
    }

    pub fn status_patch_records(&self, ns: &str, name: &str) -> Vec<StatusPatch> {
        self.shared
            .lock()
            .status_patches
            .iter()
            .filter(|p| p.namespace == ns && p.name == name)
            .cloned()
            .collect()
    }

    /// Events the client created (both APIs), in name order.
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock().events.values().cloned().collect()
    }

    /// Open watch streams.
    pub fn open_watches(&self) -> usize {
        self.shared.lock().watchers.len()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Runs `hook` on every request as it arrives, before it is answered (outside the
    /// state lock), e.g. to check what the node looks like when the client sends it.
    pub fn on_request(&self, hook: impl Fn(&Request) + Send + Sync + 'static) {
        self.shared.lock().hooks.push(Arc::new(hook));
    }

    /// Makes `token` valid for TokenReviews: it names `user` with `groups` (uid `uid-USER`).
    /// Every other token is not authenticated.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        self.shared.lock().reviews.tokens.insert(
            token.to_string(),
            (
                user.to_string(),
                groups.iter().map(|g| g.to_string()).collect(),
            ),
        );
    }

    /// Lets SubjectAccessReviews allow `verb` on `resource`/`subresource` to `user` (`*`
    /// matches anything). Nothing is allowed that no rule allows, as with RBAC.
    pub fn allow(&self, user: &str, verb: &str, resource: &str, subresource: &str) {
        self.shared.lock().reviews.rules.push(AccessRule {
            user: user.to_string(),
            verb: verb.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
        });
    }

    /// The bodies of the TokenReviews posted so far, as sent.
    pub fn token_reviews(&self) -> Vec<Value> {
        self.posted("/apis/authentication.k8s.io/v1/tokenreviews")
    }

    /// The bodies of the SubjectAccessReviews posted so far, as sent.
    pub fn access_reviews(&self) -> Vec<Value> {
        self.posted("/apis/authorization.k8s.io/v1/subjectaccessreviews")
    }

    fn posted(&self, path: &str) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .map(Request::json)
            .collect()
    }

    /// The last `n` requests, one per line, for failure messages.
    pub fn summary(&self, n: usize) -> String {
        let st = self.shared.lock();
        let skip = st.requests.len().saturating_sub(n);
        let mut out = format!(
            "mock API server: {} requests (last {}), rv {}, {} open watches, down {}\n",
            st.requests.len(),
            st.requests.len() - skip,
            st.rv,
            st.watchers.len(),
            st.down
        );
        for r in st.requests.iter().skip(skip) {
            out.push_str(&r.line());
            out.push('\n');
        }
        out
    }

    // -- failures -------------------------------------------------------------------------------

    /// While down, every request is answered 503, and going down drops every open watch
    /// (the connection is cut, as when the API server dies).
    pub fn set_down(&self, down: bool) {
        let mut st = self.shared.lock();
        st.down = down;
        if down {
            for w in st.watchers.drain(..) {
                let _ = w.tx.send(WatchMsg::Drop);
            }
        }
    }

    /// Ends every open watch with an ERROR event carrying a 410 Gone Status, and makes
    /// watches from any resourceVersion before now answer the same: the client must list
    /// again.
    pub fn expire_watches(&self) {
        let mut st = self.shared.lock();
        st.compacted = st.rv;
        let gone = gone_status(st.rv);
        for w in st.watchers.drain(..) {
            let _ = w.tx.send(WatchMsg::Expire(gone.clone()));
        }
    }

    /// The node lifecycle controller's view of node `name` now: healthy while its lease was
    /// renewed within its duration and its Ready condition is True with a heartbeat no
    /// older than the status report period (5 minutes) plus the 40 s monitor grace.
    pub fn node_health(&self, name: &str) -> Result<(), String> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let age = |t: &Value| -> Result<i64, String> {
            let text = t.as_str().ok_or(format!("no time in {t}"))?;
            let at: k8s_openapi::jiff::Timestamp =
                text.parse().map_err(|e| format!("{text}: {e}"))?;
            Ok(now.as_second() - at.as_second())
        };
        let lease = self
            .object(&format!(
                "apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
            ))
            .ok_or("no lease")?;
        let duration = lease["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(0);
        let renewed = age(&lease["spec"]["renewTime"])?;
        if renewed > duration {
            return Err(format!(
                "lease renewed {renewed} s ago, duration {duration} s"
            ));
        }
        let node = self
            .object(&format!("api/v1/nodes/{name}"))
            .ok_or("no node")?;
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .ok_or("no Ready condition")?;
        if ready["status"] != "True" {
            return Err(format!("Ready is {}", ready["status"]));
        }
        let heartbeat = age(&ready["lastHeartbeatTime"])?;
        if heartbeat > 300 + 40 {
            return Err(format!("status posted {heartbeat} s ago"));
        }
        Ok(())
    }

    /// Polls `check` every 25 ms until it gives a value; past `within`, panics with `what`
    /// and the recent requests.
    pub fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut(&MockKube) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "gave up after {within:?} waiting for {what}\n{}",
                    self.summary(60)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for MockKube {
    fn drop(&mut self) {
        if std::env::var_os("MOCK_KUBE_DUMP").is_some() {
            eprintln!("{}", self.summary(usize::MAX));
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let mut st = self.shared.lock();
            for w in st.watchers.drain(..) {
                let _ = w.tx.send(WatchMsg::Drop);
            }
            st.hooks.clear();
        }
        // Wake the accept loop, from the namespace it listens in.
        let addr = self.addr;
        match &self.netns {
            Some(netns) => in_netns(netns, || {
                let _ = TcpStream::connect(addr);
            }),
            None => {
                let _ = TcpStream::connect(addr);
            }
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// State changes
// ---------------------------------------------------------------------------------------

impl State {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Stores `pod` (new resourceVersion), records the change and tells the watchers.
    fn put_pod(&mut self, ns: &str, name: &str, mut pod: Value, kind: ChangeKind) -> Value {
        let rv = self.bump();
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = (ns.to_string(), name.to_string());
        let old = self.pods.insert(key, pod.clone());
        self.record_change(Change {
            rv,
            kind,
            old,
            new: pod.clone(),
        });
        pod
    }

    fn remove_pod(&mut self, ns: &str, name: &str) -> Option<Value> {
        let old = self.pods.remove(&(ns.to_string(), name.to_string()))?;
        let rv = self.bump();
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record_change(Change {
            rv,
            kind: ChangeKind::Deleted,
            old: Some(old),
            new: gone.clone(),
        });
        Some(gone)
    }

    fn mark_deleted(&mut self, ns: &str, name: &str, grace: i64) -> Option<Value> {
        let mut pod = self.pods.get(&(ns.to_string(), name.to_string()))?.clone();
        if pod["metadata"]["deletionTimestamp"].is_null() {
            let at = SystemTime::now() + Duration::from_secs(grace.max(0) as u64);
            pod["metadata"]["deletionTimestamp"] = json!(rfc3339(at));
        }
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        Some(self.put_pod(ns, name, pod, ChangeKind::Modified))
    }

    fn record_change(&mut self, change: Change) {
        self.watchers
            .retain(|w| match watch_event(&w.selector, &change) {
                Some(event) => w.tx.send(WatchMsg::Event(event)).is_ok(),
                None => true,
            });
        self.history.push(change);
    }

    /// apiVersion/kind, namespace, uid, creationTimestamp and a resourceVersion for a
    /// ConfigMap or Secret.
    fn prepare_object(&mut self, obj: Value, kind: &str) -> ((String, String), Value) {
        let mut obj = obj;
        assert!(obj.is_object(), "a {kind} is a JSON object: {obj}");
        obj["apiVersion"] = json!("v1");
        obj["kind"] = json!(kind);
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("the {kind} has metadata.name"))
            .to_string();
        obj["metadata"]["namespace"] = json!(ns);
        if obj["metadata"]["uid"].as_str().is_none() {
            obj["metadata"]["uid"] = json!(new_uid());
        }
        if obj["metadata"]["creationTimestamp"].is_null() {
            obj["metadata"]["creationTimestamp"] = json!(rfc3339(SystemTime::now()));
        }
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        ((ns, name), obj)
    }
}

/// The watch event one watcher gets for one change, if any.
fn watch_event(selector: &Selector, change: &Change) -> Option<Value> {
    let was = change.old.as_ref().is_some_and(|o| selector.matches(o));
    let is = selector.matches(&change.new);
    let kind = match change.kind {
        ChangeKind::Added => is.then_some("ADDED")?,
        ChangeKind::Deleted => (was || is).then_some("DELETED")?,
        ChangeKind::Modified => match (was, is) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
    };
    Some(json!({"type": kind, "object": change.new}))
}

// ---------------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------------

/// A fieldSelector, a labelSelector and a namespace, as one filter.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    namespace: Option<String>,
    /// (dotted field path, value, equal?)
    fields: Vec<(String, String, bool)>,
    /// (label, op, values): op is "=", "!=", "exists", "!exists", "in", "notin".
    labels: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    /// From decoded `fieldSelector` and `labelSelector` values.
    pub fn parse(
        namespace: Option<&str>,
        fields: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Selector, String> {
        let mut sel = Selector {
            namespace: namespace.map(str::to_string),
            ..Selector::default()
        };
        for term in fields.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
            let (key, value, eq) = if let Some((k, v)) = term.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, v, true)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, v, true)
            } else {
                return Err(format!("invalid field selector term {term:?}"));
            };
            sel.fields
                .push((key.trim().to_string(), value.trim().to_string(), eq));
        }
        for term in split_label_terms(labels.unwrap_or("")) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let parsed = if let Some((k, v)) = term.split_once("!=") {
                (k.to_string(), "!=".to_string(), vec![v.to_string()])
            } else if let Some((k, v)) = term.split_once("==") {
                (k.to_string(), "=".to_string(), vec![v.to_string()])
            } else if let Some((k, v)) = term.split_once('=') {
                (k.to_string(), "=".to_string(), vec![v.to_string()])
            } else if let Some(k) = term.strip_prefix('!') {
                (k.to_string(), "!exists".to_string(), vec![])
            } else if let Some((k, rest)) = term
                .split_once(" notin ")
                .map(|(k, r)| (k, ("notin", r)))
                .or_else(|| term.split_once(" in ").map(|(k, r)| (k, ("in", r))))
            {
                let values = rest
                    .1
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .collect();
                (k.to_string(), rest.0.to_string(), values)
            } else {
                (term.to_string(), "exists".to_string(), vec![])
            };
            sel.labels.push((
                parsed.0.trim().to_string(),
                parsed.1,
                parsed.2.into_iter().map(|v| v.trim().to_string()).collect(),
            ));
        }
        Ok(sel)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if obj["metadata"]["namespace"].as_str() != Some(ns.as_str()) {
                return false;
            }
        }
        let fields_ok = self.fields.iter().all(|(path, want, eq)| {
            let mut v = obj;
            for part in path.split('.') {
                v = &v[part];
            }
            let have = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == *want) == *eq
        });
        let labels = &obj["metadata"]["labels"];
        let labels_ok = self.labels.iter().all(|(key, op, values)| {
            let have = labels[key.as_str()].as_str();
            match op.as_str() {
                "=" => have == Some(values[0].as_str()),
                "!=" => have != Some(values[0].as_str()),
                "exists" => have.is_some(),
                "!exists" => have.is_none(),
                "in" => have.is_some_and(|h| values.iter().any(|v| v == h)),
                "notin" => !have.is_some_and(|h| values.iter().any(|v| v == h)),
                _ => false,
            }
        });
        fields_ok && labels_ok
    }
}

/// Splits a label selector at the commas outside parentheses.
fn split_label_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers.
enum Reply {
    Json(u16, Value),
    /// Stream watch events from this channel (registered under `id`, 0 if not registered),
    /// after the `initial` ones, until `deadline`; `close_after_initial` ends it at once.
    Watch {
        id: u64,
        initial: Vec<Value>,
        rx: Option<mpsc::Receiver<WatchMsg>>,
        deadline: Instant,
        expire_after_initial: Option<Value>,
    },
}

fn serve_connection(shared: Arc<Shared>, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let raw = match read_request(&shared, &mut stream, &mut buf) {
            Some(r) => r,
            None => return,
        };
        let client_close = raw
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let keep = handle(&shared, &mut stream, raw);
        if !keep || client_close || shared.stop.load(Ordering::SeqCst) {
            let _ = stream.flush();
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Reads one request (head and body) from the connection; None at EOF, on an error or when
/// the mock stops.
fn read_request(shared: &Shared, stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RawRequest> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        fill(shared, stream, buf)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split_whitespace();
    let method = start.next()?.to_string();
    let target = start.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                fill(shared, stream, buf)?;
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    let end = loop {
                        if let Some(i) = find(buf, b"\r\n") {
                            break i;
                        }
                        fill(shared, stream, buf)?;
                    };
                    buf.drain(..end + 2);
                    if end == 0 {
                        break;
                    }
                }
                break body;
            }
            while buf.len() < size + 2 {
                fill(shared, stream, buf)?;
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    } else {
        let len: usize = header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            fill(shared, stream, buf)?;
        }
        buf.drain(..len).collect()
    };
    Some(RawRequest {
        method,
        target,
        headers,
        body,
    })
}

/// Reads more bytes into `buf`, waiting through read timeouts; None at EOF, on an error
/// or when the mock stops.
fn fill(shared: &Shared, stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16384];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Some(());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return None,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Handles one request; false when the connection must close.
fn handle(shared: &Shared, stream: &mut TcpStream, raw: RawRequest) -> bool {
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst) + 1;
    let (path, query) = match raw.target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (raw.target.clone(), String::new()),
    };
    let mut request = Request {
        seq,
        method: raw.method.clone(),
        path,
        query,
        content_type: raw.header("content-type").unwrap_or("").to_string(),
        body: String::from_utf8_lossy(&raw.body).into_owned(),
        status: 0,
        at: Instant::now(),
    };
    let hooks: Vec<Hook> = shared.lock().hooks.clone();
    for hook in &hooks {
        hook(&request);
    }
    let reply = {
        let mut st = shared.lock();
        let reply = if st.down {
            Reply::Json(
                503,
                status_json(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                ),
            )
        } else {
            route(&mut st, &request)
        };
        request.status = match &reply {
            Reply::Json(code, _) => *code,
            Reply::Watch { .. } => 200,
        };
        insert_sorted(&mut st.requests, request);
        reply
    };
    match reply {
        Reply::Json(code, body) => {
            let body = serde_json::to_vec(&body).unwrap();
            let head = format!(
                "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                reason_phrase(code),
                body.len()
            );
            stream.write_all(head.as_bytes()).is_ok()
                && stream.write_all(&body).is_ok()
                && stream.flush().is_ok()
        }
        Reply::Watch {
            id,
            initial,
            rx,
            deadline,
            expire_after_initial,
        } => {
            stream_watch(shared, stream, initial, rx, deadline, expire_after_initial);
            if id != 0 {
                shared.lock().watchers.retain(|w| w.id != id);
            }
            false
        }
    }
}

/// Keeps `requests` in seq order even when connection threads race.
fn insert_sorted(requests: &mut Vec<Request>, request: Request) {
    let at = requests
        .iter()
        .rposition(|r| r.seq < request.seq)
        .map_or(0, |i| i + 1);
    requests.insert(at, request);
}

fn stream_watch(
    shared: &Shared,
    stream: &mut TcpStream,
    initial: Vec<Value>,
    rx: Option<mpsc::Receiver<WatchMsg>>,
    deadline: Instant,
    expire_after_initial: Option<Value>,
) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    for event in &initial {
        if write_chunk(stream, event).is_err() {
            return;
        }
    }
    if let Some(status) = expire_after_initial {
        let _ = write_chunk(stream, &json!({"type": "ERROR", "object": status}));
        let _ = stream.write_all(b"0\r\n\r\n");
        return;
    }
    let Some(rx) = rx else {
        let _ = stream.write_all(b"0\r\n\r\n");
        return;
    };
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = stream.write_all(b"0\r\n\r\n");
            return;
        }
        match rx.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
            Ok(WatchMsg::Event(event)) => {
                if write_chunk(stream, &event).is_err() {
                    return;
                }
            }
            Ok(WatchMsg::Expire(status)) => {
                let _ = write_chunk(stream, &json!({"type": "ERROR", "object": status}));
                let _ = stream.write_all(b"0\r\n\r\n");
                return;
            }
            Ok(WatchMsg::Drop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

fn write_chunk(stream: &mut TcpStream, event: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).unwrap();
    line.push(b'\n');
    stream.write_all(format!("{:x}\r\n", line.len()).as_bytes())?;
    stream.write_all(&line)?;
    stream.write_all(b"\r\n")?;
    stream.flush()
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

// ---------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------

fn route(st: &mut State, req: &Request) -> Reply {
    let segs: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match (m, segs.as_slice()) {
        ("GET", ["api", "v1", "pods"]) => pods_get_collection(st, req, None),
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) => pods_get_collection(st, req, Some(ns)),
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match st.pods.get(&(ns.to_string(), name.to_string())) {
                Some(p) => Reply::Json(200, p.clone()),
                None => not_found("pods", name),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name, "status"]) => {
            match st.pods.get(&(ns.to_string(), name.to_string())) {
                Some(p) => Reply::Json(200, p.clone()),
                None => not_found("pods", name),
            }
        }
        ("PATCH", ["api", "v1", "namespaces", ns, "pods", name, "status"]) => {
            patch_status(st, req, ns, name)
        }
        ("DELETE", ["api", "v1", "namespaces", ns, "pods", name]) => delete_pod(st, req, ns, name),
        ("GET", ["api", "v1", "namespaces", ns, "configmaps", name]) => {
            match st.config_maps.get(&(ns.to_string(), name.to_string())) {
                Some(o) => Reply::Json(200, o.clone()),
                None => not_found("configmaps", name),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "secrets", name]) => {
            match st.secrets.get(&(ns.to_string(), name.to_string())) {
                Some(o) => Reply::Json(200, o.clone()),
                None => not_found("secrets", name),
            }
        }
        ("POST", ["api", "v1", "namespaces", ns, "events"]) => create_event(st, req, "v1", ns),
        ("POST", ["apis", "events.k8s.io", "v1", "namespaces", ns, "events"]) => {
            create_event(st, req, "events.k8s.io/v1", ns)
        }
        ("PATCH", ["api", "v1", "namespaces", ns, "events", name]) => {
            patch_event(st, req, "v1", ns, name)
        }
        ("PATCH", ["apis", "events.k8s.io", "v1", "namespaces", ns, "events", name]) => {
            patch_event(st, req, "events.k8s.io/v1", ns, name)
        }
        ("POST", ["api", "v1", "namespaces", ns, "serviceaccounts", sa, "token"]) => {
            token_request(st, req, ns, sa)
        }
        ("POST", ["apis", "authentication.k8s.io", "v1", "tokenreviews"]) => token_review(st, req),
        ("POST", ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"]) => {
            access_review(st, req)
        }
        (_, ["api", "v1", "nodes", ..])
        | (_, ["apis", "coordination.k8s.io", "v1", "namespaces", _, "leases", ..]) => {
            plain_object(st, req, &segs)
        }
        _ => Reply::Json(
            404,
            status_json(
                404,
                "NotFound",
                &format!(
                    "the server could not find the requested resource ({m} {})",
                    req.path
                ),
            ),
        ),
    }
}

fn pods_get_collection(st: &mut State, req: &Request, ns: Option<&str>) -> Reply {
    let selector = match Selector::parse(
        ns,
        req.param("fieldSelector").as_deref(),
        req.param("labelSelector").as_deref(),
    ) {
        Ok(s) => s,
        Err(e) => return Reply::Json(400, status_json(400, "BadRequest", &e)),
    };
    if !req.is_watch() {
        let items: Vec<Value> = st
            .pods
            .values()
            .filter(|p| selector.matches(p))
            .cloned()
            .collect();
        return Reply::Json(
            200,
            json!({
                "apiVersion": "v1",
                "kind": "PodList",
                "metadata": {"resourceVersion": st.rv.to_string()},
                "items": items,
            }),
        );
    }
    let timeout = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let rv_param = req.param("resourceVersion").unwrap_or_default();
    let send_initial = req.param("sendInitialEvents").as_deref() == Some("true");
    let mut initial = Vec::new();
    if send_initial || rv_param.is_empty() || rv_param == "0" {
        // "Any" semantics: synthetic ADDED events for the current state.
        for pod in st.pods.values().filter(|p| selector.matches(p)) {
            initial.push(json!({"type": "ADDED", "object": pod}));
        }
        if send_initial {
            initial.push(json!({
                "type": "BOOKMARK",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "resourceVersion": st.rv.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                },
            }));
        }
    } else {
        let Ok(rv) = rv_param.parse::<u64>() else {
            return Reply::Json(
                400,
                status_json(
                    400,
                    "BadRequest",
                    &format!("invalid resourceVersion {rv_param:?}"),
                ),
            );
        };
        if rv < st.compacted {
            return Reply::Watch {
                id: 0,
                initial: Vec::new(),
                rx: None,
                deadline,
                expire_after_initial: Some(gone_status(rv)),
            };
        }
        for change in st.history.iter().filter(|c| c.rv > rv) {
            if let Some(e) = watch_event(&selector, change) {
                initial.push(e);
            }
        }
    }
    let (tx, rx) = mpsc::channel();
    st.next_watcher += 1;
    let id = st.next_watcher;
    st.watchers.push(Watcher { id, selector, tx });
    Reply::Watch {
        id,
        initial,
        rx: Some(rx),
        deadline,
        expire_after_initial: None,
    }
}

fn parse_body(req: &Request) -> Result<Value, Reply> {
    if req.body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&req.body).map_err(|e| {
        Reply::Json(
            400,
            status_json(400, "BadRequest", &format!("invalid JSON body: {e}")),
        )
    })
}

fn patch_status(st: &mut State, req: &Request, ns: &str, name: &str) -> Reply {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ct = req.content_type.split(';').next().unwrap_or("").trim();
    let supported = matches!(
        ct,
        "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/apply-patch+yaml"
    );
    let reply = if !supported {
        Reply::Json(
            415,
            status_json(
                415,
                "UnsupportedMediaType",
                &format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {ct:?})"),
            ),
        )
    } else if let Some(pod) = st.pods.get(&(ns.to_string(), name.to_string())).cloned() {
        let mut patch = body.clone();
        if ct == "application/strategic-merge-patch+json" {
            strip_directives(&mut patch);
        }
        let want_uid = patch["metadata"]["uid"].as_str();
        let want_rv = patch["metadata"]["resourceVersion"].as_str();
        let have_uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let have_rv = pod["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if want_uid.is_some_and(|u| u != have_uid) {
            conflict(
                name,
                &format!(
                    "Precondition failed: UID in precondition: {}, UID in object meta: {have_uid}",
                    want_uid.unwrap()
                ),
            )
        } else if want_rv.is_some_and(|r| r != have_rv) {
            conflict(
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        } else {
            let mut patched = pod.clone();
            if ct == "application/strategic-merge-patch+json" {
                api_rules::strategic_merge(&mut patched, &body);
            } else {
                merge_patch(&mut patched, &patch);
            }
            if let Some(refusal) = api_rules::refuse_unknown_fields("pods", name, &patched, &patch)
            {
                Reply::Json(400, refusal)
            } else if let Some(refusal) = api_rules::refuse_bad_times("pods", name, &patched) {
                Reply::Json(422, refusal)
            } else {
                let mut new = pod;
                // The status subresource changes the status only.
                match patched.get("status") {
                    Some(s) if !s.is_null() => new["status"] = s.clone(),
                    _ => {
                        new.as_object_mut().unwrap().remove("status");
                    }
                }
                Reply::Json(200, st.put_pod(ns, name, new, ChangeKind::Modified))
            }
        }
    } else {
        not_found("pods", name)
    };
    st.status_patches.push(StatusPatch {
        namespace: ns.to_string(),
        name: name.to_string(),
        content_type: req.content_type.clone(),
        body,
        status: match &reply {
            Reply::Json(c, _) => *c,
            Reply::Watch { .. } => 200,
        },
    });
    reply
}

fn delete_pod(st: &mut State, req: &Request, ns: &str, name: &str) -> Reply {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(pod) = st.pods.get(&(ns.to_string(), name.to_string())) else {
        return not_found("pods", name);
    };
    let have_uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let have_rv = pod["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if let Some(uid) = body["preconditions"]["uid"].as_str() {
        if uid != have_uid {
            return conflict(
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have_uid}"),
            );
        }
    }
    if let Some(rv) = body["preconditions"]["resourceVersion"].as_str() {
        if rv != have_rv {
            return conflict(
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have_rv}"),
            );
        }
    }
    match st.remove_pod(ns, name) {
        Some(p) => Reply::Json(200, p),
        None => not_found("pods", name),
    }
}

fn create_event(st: &mut State, req: &Request, group: &str, ns: &str) -> Reply {
    let mut event = match parse_body(req) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(_) => return Reply::Json(400, status_json(400, "BadRequest", "an event is an object")),
        Err(r) => return r,
    };
    let name = match event["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            st.names += 1;
            let base = event["metadata"]["generateName"]
                .as_str()
                .unwrap_or("event.")
                .to_string();
            format!("{base}{:05x}", st.names)
        }
    };
    let key = (group.to_string(), ns.to_string(), name.clone());
    if st.events.contains_key(&key) {
        return Reply::Json(
            409,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("events \"{name}\" already exists"),
                "reason": "AlreadyExists", "details": {"name": name, "kind": "events"}, "code": 409,
            }),
        );
    }
    let typed_as = if group == "v1" {
        "events"
    } else {
        "events.k8s.io"
    };
    if let Some(refusal) = api_rules::refuse_unknown_fields(typed_as, &name, &event, &event) {
        return Reply::Json(400, refusal);
    }
    if let Some(refusal) = api_rules::refuse_bad_times("events", &name, &event) {
        return Reply::Json(422, refusal);
    }
    event["metadata"]["name"] = json!(name);
    event["metadata"]["namespace"] = json!(ns);
    event["metadata"]["uid"] = json!(new_uid());
    let rv = st.bump();
    event["metadata"]["resourceVersion"] = json!(rv.to_string());
    st.events.insert(key, event.clone());
    Reply::Json(201, event)
}

/// Nodes and Leases: create (POST to the collection), get, and merge-patch the object or its
/// status.
fn plain_object(st: &mut State, req: &Request, segs: &[&str]) -> Reply {
    let collection = matches!(segs.last(), Some(&"nodes") | Some(&"leases"));
    let (path, name) = if collection {
        let body = match parse_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (format!("{}/{name}", segs.join("/")), name)
    } else {
        let object = if segs.last() == Some(&"status") {
            &segs[..segs.len() - 1]
        } else {
            segs
        };
        (object.join("/"), object.last().unwrap_or(&"").to_string())
    };
    let status_only = segs.last() == Some(&"status");
    let kind = if collection {
        segs[segs.len() - 1]
    } else if status_only {
        segs[segs.len() - 3]
    } else {
        segs[segs.len() - 2]
    };
    match (req.method.as_str(), collection) {
        ("POST", true) => {
            if let Some(refusal) = parse_body(req)
                .ok()
                .and_then(|b| api_rules::refuse_unknown_fields(kind, &name, &b, &b))
            {
                return Reply::Json(400, refusal);
            }
            if let Some(refusal) = parse_body(req)
                .ok()
                .and_then(|b| api_rules::refuse_bad_times(kind, &name, &b))
            {
                return Reply::Json(422, refusal);
            }
            if st.objects.contains_key(&path) {
                return Reply::Json(
                    409,
                    status_json(409, "AlreadyExists", &format!("{name} already exists")),
                );
            }
            let mut body = parse_body(req).unwrap_or(Value::Null);
            if kind == "nodes" {
                if let Some(refusal) = api_rules::settle_pod_cidrs(&name, None, &mut body) {
                    return Reply::Json(422, refusal);
                }
            }
            let rv = st.bump();
            body["metadata"]["uid"] = json!(new_uid());
            body["metadata"]["resourceVersion"] = json!(rv.to_string());
            st.objects.insert(path, body.clone());
            Reply::Json(201, body)
        }
        ("GET", false) => match st.objects.get(&path) {
            Some(o) => Reply::Json(200, o.clone()),
            None => not_found(segs[segs.len() - 2], &name),
        },
        ("PATCH", false) => {
            let patch = match parse_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Some(have) = st.objects.get(&path).cloned() else {
                return not_found(kind, &name);
            };
            let mut patched = have.clone();
            merge_patch(&mut patched, &patch);
            if let Some(refusal) = api_rules::refuse_unknown_fields(kind, &name, &patched, &patch) {
                return Reply::Json(400, refusal);
            }
            if let Some(refusal) = api_rules::refuse_bad_times(kind, &name, &patched) {
                return Reply::Json(422, refusal);
            }
            // The status subresource changes the status only; the object itself keeps it.
            let mut new = have;
            if status_only {
                new["status"] = patched["status"].take();
            } else {
                let status = new["status"].take();
                new = patched;
                new["status"] = status;
                if new["status"].is_null() {
                    new.as_object_mut().map(|o| o.remove("status"));
                }
            }
            if kind == "nodes" {
                let old = st.objects.get(&path);
                if let Some(refusal) = api_rules::settle_pod_cidrs(&name, old, &mut new) {
                    return Reply::Json(422, refusal);
                }
            }
            let rv = st.bump();
            new["metadata"]["resourceVersion"] = json!(rv.to_string());
            st.objects.insert(path, new.clone());
            Reply::Json(200, new)
        }
        _ => Reply::Json(
            405,
            status_json(405, "MethodNotAllowed", "not supported by the mock"),
        ),
    }
}

fn patch_event(st: &mut State, req: &Request, group: &str, ns: &str, name: &str) -> Reply {
    let patch = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let rv = st.rv + 1;
    match st
        .events
        .get_mut(&(group.to_string(), ns.to_string(), name.to_string()))
    {
        Some(event) => {
            let mut patched = event.clone();
            merge_patch(&mut patched, &patch);
            let typed_as = if group == "v1" {
                "events"
            } else {
                "events.k8s.io"
            };
            if let Some(refusal) =
                api_rules::refuse_unknown_fields(typed_as, name, &patched, &patch)
            {
                return Reply::Json(400, refusal);
            }
            if let Some(refusal) = api_rules::refuse_bad_times("events", name, &patched) {
                return Reply::Json(422, refusal);
            }
            *event = patched;
            event["metadata"]["resourceVersion"] = json!(rv.to_string());
            let event = event.clone();
            st.rv = rv;
            Reply::Json(200, event)
        }
        None => not_found("events", name),
    }
}

fn token_request(st: &mut State, req: &Request, ns: &str, sa: &str) -> Reply {
    let mut body = match parse_body(req) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(Value::Null) => json!({}),
        Ok(_) => {
            return Reply::Json(
                400,
                status_json(400, "BadRequest", "a TokenRequest is an object"),
            )
        }
        Err(r) => return r,
    };
    st.tokens += 1;
    let seconds = body["spec"]["expirationSeconds"].as_u64().unwrap_or(3600);
    if body["apiVersion"].is_null() {
        body["apiVersion"] = json!("authentication.k8s.io/v1");
    }
    if body["kind"].is_null() {
        body["kind"] = json!("TokenRequest");
    }
    body["metadata"]["name"] = json!(sa);
    body["metadata"]["namespace"] = json!(ns);
    body["metadata"]["creationTimestamp"] = json!(rfc3339(SystemTime::now()));
    body["status"] = json!({
        "token": format!("mock-token-{}", st.tokens),
        "expirationTimestamp": rfc3339(SystemTime::now() + Duration::from_secs(seconds)),
    });
    Reply::Json(201, body)
}

// ---------------------------------------------------------------------------------------
// TokenReview and SubjectAccessReview, as the API server answers them
// ---------------------------------------------------------------------------------------

/// One SubjectAccessReview rule of [`MockKube::allow`].
#[derive(Clone, Debug)]
struct AccessRule {
    user: String,
    verb: String,
    resource: String,
    subresource: String,
}

#[derive(Clone, Debug, Default)]
struct Reviews {
    /// token -> (user, groups).
    tokens: BTreeMap<String, (String, Vec<String>)>,
    rules: Vec<AccessRule>,
}

/// The body of a review POST: an object of `group/v1` `kind`, as the server decodes it
/// (a body naming another kind or version is refused with 400, as by the real decoder).
fn review_body(req: &Request, api_version: &str, kind: &str) -> Result<Value, Reply> {
    let body = match parse_body(req)? {
        Value::Object(o) => Value::Object(o),
        _ => {
            return Err(Reply::Json(
                400,
                status_json(
                    400,
                    "BadRequest",
                    &format!("a {kind} body is a JSON object"),
                ),
            ))
        }
    };
    for (field, want) in [("apiVersion", api_version), ("kind", kind)] {
        if let Some(have) = body[field].as_str() {
            if have != want {
                return Err(Reply::Json(
                    400,
                    status_json(
                        400,
                        "BadRequest",
                        &format!("the {field} in the data ({have}) does not match the expected {field} ({want})"),
                    ),
                ));
            }
        }
    }
    Ok(body)
}

/// A `422 Invalid` Status for one field of a review.
fn invalid_review(kind: &str, field: &str, message: &str) -> Reply {
    Reply::Json(
        422,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind}.{} \"\" is invalid: {field}: {message}",
                if kind == "TokenReview" { "authentication.k8s.io" } else { "authorization.k8s.io" }),
            "reason": "Invalid", "code": 422,
            "details": {"kind": kind, "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]},
        }),
    )
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`: the object back with `status`
/// filled (201), `authenticated` only for a token of [`MockKube::add_token`].
fn token_review(st: &mut State, req: &Request) -> Reply {
    let mut body = match review_body(req, "authentication.k8s.io/v1", "TokenReview") {
        Ok(b) => b,
        Err(r) => return r,
    };
    let token = body["spec"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if token.is_empty() {
        // The real server's check, before any authenticator runs.
        return Reply::Json(
            400,
            status_json(
                400,
                "BadRequest",
                "token is required for TokenReview in authentication",
            ),
        );
    }
    let audiences = body["spec"]["audiences"].clone();
    body["apiVersion"] = json!("authentication.k8s.io/v1");
    body["kind"] = json!("TokenReview");
    body["metadata"] = json!({"creationTimestamp": null});
    body["status"] = match st.reviews.tokens.get(&token) {
        Some((user, groups)) => {
            let mut status = json!({
                "authenticated": true,
                "user": {"username": user, "uid": format!("uid-{user}"), "groups": groups},
            });
            if audiences.is_array() {
                status["audiences"] = audiences;
            }
            status
        }
        None => json!({"user": {}}),
    };
    Reply::Json(201, body)
}

/// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: validated as the real server
/// validates it (a user or a group; exactly one of resourceAttributes and
/// nonResourceAttributes), answered with `status.allowed` by the rules of
/// [`MockKube::allow`] (201).
fn access_review(st: &mut State, req: &Request) -> Reply {
    const KIND: &str = "SubjectAccessReview";
    let mut body = match review_body(req, "authorization.k8s.io/v1", KIND) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let spec = body["spec"].clone();
    let user = spec["user"].as_str().unwrap_or_default().to_string();
    let groups = spec["groups"].as_array().map_or(0, Vec::len);
    if user.is_empty() && groups == 0 {
        return invalid_review(
            KIND,
            "spec.user",
            "Invalid value: \"\": at least one of user or group must be specified",
        );
    }
    let ra = &spec["resourceAttributes"];
    if ra.is_object() == spec["nonResourceAttributes"].is_object() {
        return invalid_review(
            KIND,
            "spec.resourceAttributes",
            "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        );
    }
    let field = |v: &Value, name: &str| v[name].as_str().unwrap_or_default().to_string();
    let (verb, resource, subresource) = if ra.is_object() {
        (
            field(ra, "verb"),
            field(ra, "resource"),
            field(ra, "subresource"),
        )
    } else {
        (
            field(&spec["nonResourceAttributes"], "verb"),
            String::new(),
            String::new(),
        )
    };
    let fits = |rule: &str, have: &str| rule == "*" || rule == have;
    let allowed = st.reviews.rules.iter().any(|r| {
        fits(&r.user, &user)
            && fits(&r.verb, &verb)
            && fits(&r.resource, &resource)
            && fits(&r.subresource, &subresource)
    });
    body["apiVersion"] = json!("authorization.k8s.io/v1");
    body["kind"] = json!(KIND);
    body["metadata"] = json!({"creationTimestamp": null});
    body["status"] = if allowed {
        json!({"allowed": true, "reason": "allowed by a mock rule"})
    } else {
        json!({"allowed": false})
    };
    Reply::Json(201, body)
}

fn not_found(kind: &str, name: &str) -> Reply {
    let mut status = status_json(404, "NotFound", &format!("{kind} \"{name}\" not found"));
    status["details"] = json!({"name": name, "kind": kind});
    Reply::Json(404, status)
}

fn conflict(name: &str, why: &str) -> Reply {
    let mut status = status_json(
        409,
        "Conflict",
        &format!("Operation cannot be fulfilled on pods \"{name}\": {why}"),
    );
    status["details"] = json!({"name": name, "kind": "pods"});
    Reply::Json(409, status)
}

/// A `Status` object.
pub fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn gone_status(rv: u64) -> Value {
    status_json(
        410,
        "Expired",
        &format!("too old resource version: {rv} (compacted)"),
    )
}

// ---------------------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------------------

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Drops strategic-merge-patch directives (`$patch`, `$setElementOrder/...`, ...).
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|k, _| !k.starts_with('$'));
            for v in o.values_mut() {
                strip_directives(v);
            }
        }
        Value::Array(a) => {
            for v in a {
                strip_directives(v);
            }
        }
        _ => {}
    }
}

/// Decoded `k=v` pairs of a query string (`+` is a space).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A random-looking RFC 4122 version-4 UUID, unique within this machine's test runs.
pub fn new_uid() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(n);
        h.write_usize(i);
        *part = h.finish();
    }
    let mut v = (u128::from(parts[0]) << 64) | u128::from(parts[1]);
    v = (v & !(0xf << 76)) | (0x4 << 76);
    v = (v & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
