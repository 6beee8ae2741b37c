//! Pods bound to this node through the Kubernetes API server (kubelet's "api" source), and
//! the node's answers to it: pod status, and the final delete of a gracefully deleted pod.
//!
//! A list-then-watch of `spec.nodeName=NODE` keeps an [`ApiView`]; the ConfigMaps and
//! Secrets those pods reference are read by name (at every pod change and every
//! [`OBJECT_REFRESH`]), as kubelet's TTL-cache strategy does, so no cluster-wide watch or
//! list permission on them is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};

use crate::source::backoff::{clock_jitter, ApiBackoff};
use kube::Client;
use tokio::sync::{mpsc, Notify};

use super::api_merge::{ApiView, Refused};
use super::status_patch::status_patch;
use crate::pod::spec::{ProjectedSource, VolumeSource};
use crate::pod::SecretObject;

/// ConfigMaps and Secrets are read again this often.
pub const OBJECT_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {source}; pass a readable kubeconfig with --kubeconfig, or --in-cluster inside a pod")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("in-cluster config: {0}; --in-cluster works only inside a pod with a service account")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("Kubernetes API client: {0}")]
    Client(#[source] kube::Error),
}

/// Where the API server is.
#[derive(Debug, Clone)]
pub enum KubeAccess {
    Kubeconfig(PathBuf),
    InCluster,
}

pub struct KubeSource {
    client: Client,
    node: String,
    view: Arc<Mutex<ApiView>>,
    pods_changed: Arc<Notify>,
}

impl KubeSource {
    pub async fn connect(access: &KubeAccess, node: &str) -> Result<KubeSource, KubeError> {
        let mut config = match access {
            KubeAccess::Kubeconfig(path) => kubeconfig(path).await?,
            KubeAccess::InCluster => kube::Config::incluster().map_err(KubeError::InCluster)?,
        };
        // kube's own retry layer answers a 503 with up to 15 quick retries of its own; every
        // caller here already retries on its period or with [`ApiBackoff`], so one layer of
        // backoff decides how hard an overloaded or starting API server is pressed.
        config.default_retry = false;
        Ok(KubeSource {
            client: Client::try_from(config).map_err(KubeError::Client)?,
            node: node.to_string(),
            view: Arc::new(Mutex::new(ApiView::default())),
            pods_changed: Arc::new(Notify::new()),
        })
    }

    /// Starts the pod watch and the object reader; `wake` gets a message at every change.
    pub fn start(&self, wake: mpsc::Sender<()>) {
        tokio::spawn(watch_pods(
            self.client.clone(),
            self.node.clone(),
            self.view.clone(),
            self.pods_changed.clone(),
            wake.clone(),
        ));
        tokio::spawn(read_objects(
            self.client.clone(),
            self.view.clone(),
            self.pods_changed.clone(),
            wake,
        ));
    }

    pub fn view(&self) -> ApiView {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The view's generation (see [`ApiView::generation`]), without copying it.
    pub fn generation(&self) -> u64 {
        self.view
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The shared view itself, for the reporter's read of what the server has.
    pub fn view_handle(&self) -> Arc<Mutex<ApiView>> {
        self.view.clone()
    }
}

/// The status the API server last showed for the pod `namespace/name` with `uid` (Null when
/// unknown): what a status patch is computed from until the node's own patch is accepted.
fn server_status(view: &Mutex<ApiView>, r: &PodReport) -> serde_json::Value {
    let view = view.lock().unwrap_or_else(|p| p.into_inner());
    view.pods
        .get(&format!("{}/{}", r.namespace, r.name))
        .filter(|p| p.metadata.uid.as_deref() == Some(r.uid.as_str()))
        .and_then(|p| p.status.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default()
}

async fn kubeconfig(path: &Path) -> Result<kube::Config, KubeError> {
    let err = |source| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let file = kube::config::Kubeconfig::read_from(path).map_err(err)?;
    kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(err)
}

fn key_of(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{namespace}/{name}"))
}

/// List, then watch, `spec.nodeName=NODE` for ever; relists (a new `Init`) after the watch
/// expires or the API server was away. Between failures it waits [`ApiBackoff`]'s delays,
/// reset only when the server answers with data (kube's own backoff is reset by the `Init`
/// event the watcher emits before every list, so a failing list was retried every second).
async fn watch_pods(
    client: Client,
    node: String,
    view: Arc<Mutex<ApiView>>,
    pods_changed: Arc<Notify>,
    wake: mpsc::Sender<()>,
) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut events = watcher::watcher(api, config).boxed();
    let mut listing: BTreeMap<String, Pod> = BTreeMap::new();
    let mut backoff = ApiBackoff::default();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                // One line when the server goes away and one when it is back, not one a try.
                if !backoff.failing() {
                    tracing::warn!(error = %e, node = %node, "the API server does not answer the watch of this node's pods; retrying with backoff up to {}s", crate::source::backoff::MAX.as_secs());
                } else {
                    tracing::debug!(error = %e, "watching pods still failing");
                }
                tokio::time::sleep(backoff.next_delay(clock_jitter())).await;
                continue;
            }
        };
        if !matches!(event, Event::Init) {
            if backoff.failing() {
                tracing::info!(node = %node, "the API server answers the watch again");
            }
            backoff.reset();
        }
        let mut view = view.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::Init => {
                listing.clear();
                continue;
            }
            Event::InitApply(pod) => {
                if let Some(key) = key_of(&pod) {
                    listing.insert(key, pod);
                }
                continue;
            }
            Event::InitDone => {
                view.pods = std::mem::take(&mut listing);
                if !view.synced {
                    tracing::info!(pods = view.pods.len(), "listed the pods bound to this node");
                }
                view.synced = true;
            }
            Event::Apply(pod) => {
                if let Some(key) = key_of(&pod) {
                    view.pods.insert(key, pod);
                }
            }
            Event::Delete(pod) => {
                if let Some(key) = key_of(&pod) {
                    view.pods.remove(&key);
                }
            }
        }
        view.generation += 1;
        drop(view);
        pods_changed.notify_one();
        let _ = wake.try_send(());
    }
}

/// Names of the ConfigMaps and Secrets the viewed pods reference, by `namespace/name`.
fn referenced(view: &ApiView) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for (key, pod) in &view.pods {
        let namespace = key.split_once('/').map(|(ns, _)| ns).unwrap_or("default");
        let Ok((spec, _)) = crate::pod::api::pod(pod) else {
            continue;
        };
        let (cms, ss) = crate::pod::referenced_objects(&spec);
        config_maps.extend(cms.into_iter().map(|n| format!("{namespace}/{n}")));
        secrets.extend(ss.into_iter().map(|n| format!("{namespace}/{n}")));
    }
    (config_maps, secrets)
}

/// A service account token one pod's projected volume needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TokenWant {
    namespace: String,
    pod: String,
    pod_uid: String,
    service_account: String,
    audience: Option<String>,
    expiration_seconds: u32,
}

impl TokenWant {
    /// `namespace/name` of the node-local secret that holds it.
    fn key(&self) -> String {
        format!(
            "{}/{}",
            self.namespace,
            crate::pod::api::token_secret_name(
                &self.pod_uid,
                &self.service_account,
                self.audience.as_deref(),
                self.expiration_seconds
            )
        )
    }
}

fn wanted_tokens(view: &ApiView) -> BTreeSet<TokenWant> {
    let mut out = BTreeSet::new();
    for pod in view.pods.values() {
        let Ok((spec, _)) = crate::pod::api::pod(pod) else {
            continue;
        };
        for volume in &spec.volumes {
            let VolumeSource::Projected { sources, .. } = &volume.source else {
                continue;
            };
            for source in sources {
                if let ProjectedSource::ServiceAccountToken {
                    service_account,
                    audience,
                    expiration_seconds,
                    ..
                } = source
                {
                    out.insert(TokenWant {
                        namespace: spec.namespace.clone(),
                        pod: spec.name.clone(),
                        pod_uid: spec.uid.clone(),
                        service_account: service_account.clone(),
                        audience: audience.clone(),
                        expiration_seconds: *expiration_seconds,
                    });
                }
            }
        }
    }
    out
}

/// Asks the API server for a token bound to the pod (TokenRequest), as kubelet's token
/// manager does; the token is renewed after 80% of its life.
async fn request_token(
    client: &Client,
    want: &TokenWant,
) -> Result<(SecretObject, tokio::time::Instant), kube::Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &want.namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: want.audience.iter().cloned().collect(),
            expiration_seconds: Some(i64::from(want.expiration_seconds)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(want.pod.clone()),
                uid: Some(want.pod_uid.clone()),
            }),
        },
        ..TokenRequest::default()
    };
    let issued = api
        .create_token_request(&want.service_account, &PostParams::default(), &request)
        .await?;
    let Some(status) = issued.status.filter(|s| !s.token.is_empty()) else {
        return Err(kube::Error::Service(
            "the TokenRequest answer holds no token".into(),
        ));
    };
    let token = status.token;
    // 80% of the life the server granted (it may cap what was asked), else of the asked.
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let granted = status.expiration_timestamp.0.as_second() - now_secs;
    let life = u64::try_from(granted)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(u64::from(want.expiration_seconds)));
    let renew = tokio::time::Instant::now() + life * 8 / 10;
    let key = want.key();
    let name = key.split_once('/').map(|(_, n)| n).unwrap_or(&key);
    let secret = SecretObject {
        document: 0,
        namespace: want.namespace.clone(),
        name: name.to_string(),
        secret_type: "Opaque".into(),
        data: BTreeMap::from([(crate::pod::api::TOKEN_KEY.to_string(), token.into_bytes())]),
        immutable: false,
    };
    Ok((secret, renew))
}

/// Reads the objects named (`namespace/name`) and checks them as manifests' are. A missing
/// one is left out; one that cannot be read keeps its last good version (`last`).
async fn read_named<K, O>(
    client: &Client,
    keys: &BTreeSet<String>,
    check: fn(K) -> Result<O, crate::pod::PodError>,
    last: &BTreeMap<String, O>,
) -> BTreeMap<String, O>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
    O: Clone,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let mut out = BTreeMap::new();
    for key in keys {
        let (ns, name) = key.split_once('/').unwrap_or(("default", key));
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        match call(api.get_opt(name)).await {
            Ok(Some(object)) => match check(object) {
                Ok(object) => {
                    out.insert(key.clone(), object);
                }
                Err(e) => tracing::warn!(object = %key, kind = %kind, error = %e, "object refused"),
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(object = %key, kind = %kind, error = %e, "reading the object failed; its last version stays");
                if let Some(previous) = last.get(key) {
                    out.insert(key.clone(), previous.clone());
                }
            }
        }
    }
    out
}

/// Reads the referenced objects at every pod change and every [`OBJECT_REFRESH`]. An object
/// that is missing (or unreadable) is left out, so its pods wait in CreateContainerConfigError
/// as kubelet's do; one that cannot be read keeps its last good version.
async fn read_objects(
    client: Client,
    view: Arc<Mutex<ApiView>>,
    pods_changed: Arc<Notify>,
    wake: mpsc::Sender<()>,
) {
    let mut tokens: BTreeMap<TokenWant, (SecretObject, tokio::time::Instant)> = BTreeMap::new();
    loop {
        let (want_cms, want_secrets, want_tokens, pods_seen) = {
            let v = view.lock().unwrap_or_else(|p| p.into_inner());
            let (cms, secrets) = referenced(&v);
            let uids: BTreeSet<String> = v
                .pods
                .values()
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            (cms, secrets, wanted_tokens(&v), uids)
        };
        let old = view.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let config_maps = read_named::<ConfigMap, _>(
            &client,
            &want_cms,
            crate::pod::api::config_map,
            &old.config_maps,
        )
        .await;
        let mut secrets = read_named::<Secret, _>(
            &client,
            &want_secrets,
            crate::pod::api::secret,
            &old.secrets,
        )
        .await;
        tokens.retain(|want, _| want_tokens.contains(want));
        let now = tokio::time::Instant::now();
        for want in &want_tokens {
            if tokens.get(want).is_some_and(|(_, renew)| now < *renew) {
                continue;
            }
            match request_token(&client, want).await {
                Ok(issued) => {
                    tokens.insert(want.clone(), issued);
                }
                // The last token stays until it can be renewed.
                Err(e) => {
                    tracing::warn!(pod = %format!("{}/{}", want.namespace, want.pod), service_account = %want.service_account, error = %e, "service account token request failed")
                }
            }
        }
        for (want, (secret, _)) in &tokens {
            secrets.insert(want.key(), secret.clone());
        }
        let changed = {
            let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
            let changed =
                v.config_maps != config_maps || v.secrets != secrets || v.objects_read != pods_seen;
            v.config_maps = config_maps;
            v.secrets = secrets;
            v.objects_read = pods_seen;
            if changed {
                v.generation += 1;
            }
            changed
        };
        if changed {
            let _ = wake.try_send(());
        }
        let _ = tokio::time::timeout(OBJECT_REFRESH, pods_changed.notified()).await;
    }
}

/// The status of one pod as the API server should have it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub status: serde_json::Value,
}

impl PodReport {
    /// kubelet's answer to a pod it will not run: Failed, with the reason.
    pub fn refused(refused: &Refused) -> PodReport {
        PodReport {
            namespace: refused.namespace.clone(),
            name: refused.name.clone(),
            uid: refused.uid.clone(),
            status: serde_json::to_value(PodStatus {
                phase: Some("Failed".to_string()),
                reason: Some("FailedValidation".to_string()),
                message: Some(refused.message.clone()),
                ..PodStatus::default()
            })
            .unwrap_or_default(),
        }
    }
}

/// What the node tells the API server after one reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reports {
    pub statuses: Vec<PodReport>,
    /// Gracefully deleted pods that have nothing left on the node: (namespace, name, uid).
    pub finished_deletions: Vec<(String, String, String)>,
}

/// The last status the API server accepted, by pod uid.
pub type Accepted = Arc<Mutex<BTreeMap<String, serde_json::Value>>>;

/// Each API call gets this long before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-pod retry state of failed calls: 1 s doubling to 16 s, and one log line per distinct
/// error, so an API server that is away costs neither a request storm nor a log flood.
#[derive(Default)]
struct Retries {
    by_uid: BTreeMap<String, (u32, tokio::time::Instant, String)>,
}

impl Retries {
    fn due(&self, uid: &str) -> bool {
        self.by_uid
            .get(uid)
            .is_none_or(|(_, next, _)| tokio::time::Instant::now() >= *next)
    }

    fn failed(&mut self, uid: &str, what: &str, pod: &str, error: String) {
        let entry = self.by_uid.entry(uid.to_string()).or_insert((
            0,
            tokio::time::Instant::now(),
            String::new(),
        ));
        entry.0 = entry.0.saturating_add(1);
        let delay = Duration::from_secs(1u64 << (entry.0.min(5) - 1));
        entry.1 = tokio::time::Instant::now() + delay;
        if entry.2 != error {
            tracing::warn!(pod = %pod, error = %error, "{what} failed; retrying with backoff");
            entry.2 = error;
        }
    }

    fn succeeded(&mut self, uid: &str) {
        self.by_uid.remove(uid);
    }

    fn retain(&mut self, live: &BTreeSet<&str>) {
        self.by_uid.retain(|uid, _| live.contains(uid.as_str()));
    }
}

async fn call<T>(
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

/// Sends status patches (only when a pod's status changed since the last accepted one) and
/// final deletes, from the latest [`Reports`]. The patch is a two-way strategic merge patch
/// from what the server has, as kubelet's (see [`status_patch`]).
pub async fn report(
    client: Client,
    view: Arc<Mutex<ApiView>>,
    mut latest: tokio::sync::watch::Receiver<Reports>,
    accepted: Accepted,
) {
    let mut sent: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut retries = Retries::default();
    let mut retry_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let reports = latest.borrow_and_update().clone();
        let mut live: BTreeSet<&str> = reports.statuses.iter().map(|r| r.uid.as_str()).collect();
        sent.retain(|uid, _| live.contains(uid.as_str()));
        accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|uid, _| live.contains(uid.as_str()));
        for r in &reports.statuses {
            if sent.get(&r.uid) == Some(&r.status) || !retries.due(&r.uid) {
                continue;
            }
            let base = match sent.get(&r.uid) {
                Some(accepted) => accepted.clone(),
                None => server_status(&view, r),
            };
            let Some(status) = status_patch(&base, &r.status) else {
                // The server has it already (an agent restart): nothing to send.
                sent.insert(r.uid.clone(), r.status.clone());
                accepted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(r.uid.clone(), r.status.clone());
                continue;
            };
            let api: Api<Pod> = Api::namespaced(client.clone(), &r.namespace);
            // The uid makes the patch conditional: it never lands on a newer pod of the name.
            let patch = serde_json::json!({ "metadata": { "uid": r.uid }, "status": status });
            let params = PatchParams::default();
            match call(api.patch_status(&r.name, &params, &Patch::Strategic(&patch))).await {
                Ok(_) => {
                    sent.insert(r.uid.clone(), r.status.clone());
                    accepted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(r.uid.clone(), r.status.clone());
                    retries.succeeded(&r.uid);
                }
                Err(e) => retries.failed(
                    &r.uid,
                    "status update",
                    &format!("{}/{}", r.namespace, r.name),
                    e,
                ),
            }
        }
        let done: BTreeSet<&str> = reports
            .finished_deletions
            .iter()
            .map(|(_, _, uid)| uid.as_str())
            .collect();
        deleted.retain(|uid| done.contains(uid.as_str()));
        live.extend(done.iter().copied());
        retries.retain(&live);
        for (namespace, name, uid) in &reports.finished_deletions {
            if deleted.contains(uid) || !retries.due(uid) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match tokio::time::timeout(CALL_TIMEOUT, api.delete(name, &params)).await {
                Ok(Ok(_)) => {
                    deleted.insert(uid.clone());
                    retries.succeeded(uid);
                }
                // Already gone, or a new pod of that name: nothing of ours to delete.
                Ok(Err(kube::Error::Api(e))) if e.code == 404 || e.code == 409 => {
                    deleted.insert(uid.clone());
                    retries.succeeded(uid);
                }
                Ok(Err(e)) => retries.failed(
                    uid,
                    "final delete",
                    &format!("{namespace}/{name}"),
                    e.to_string(),
                ),
                Err(_) => retries.failed(
                    uid,
                    "final delete",
                    &format!("{namespace}/{name}"),
                    format!("no answer within {CALL_TIMEOUT:?}"),
                ),
            }
        }
        // New reports come with every reconcile; retries wait for their time.
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { return },
            _ = retry_tick.tick() => {}
        }
    }
}
