//! The agent's link to the Kubernetes API server: the merged desired state, the grace of pods
//! being deleted there, and what is reported back after each reconcile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::plan::{ObservedPod, Terminating};
use super::shared::{Event, Shared};
use crate::pod::downward::NodeInfo;
use crate::pod::spec::PodSpec;
use crate::source::api_merge::{keep_unseen_api_pods, merge, ApiDuties};
use crate::source::kube::{
    report, Accepted, KubeAccess, KubeError, KubeSource, PodReport, Reports,
};
use crate::source::kube_events::{post_events, ApiEvent, Involved};
use crate::source::manifests::Desired;
use crate::source::node::{keep_registered, NodeSettings};

pub struct ApiLink {
    source: KubeSource,
    duties: Arc<Mutex<ApiDuties>>,
    /// The API pods of the last merge, as admitted.
    admitted: Mutex<BTreeMap<String, PodSpec>>,
    /// Uids of the API pods whose ConfigMaps, Secrets and tokens have been read once.
    objects_read: Mutex<BTreeSet<String>>,
    /// The view generation of the last merge.
    merged: std::sync::atomic::AtomicU64,
    /// Events straight to the API server (refusals, which no agent event names).
    to_post: mpsc::Sender<ApiEvent>,
    /// Refusals already told, by (uid, message).
    refusals_told: Mutex<BTreeSet<(String, String)>>,
    /// What the API server has accepted of each pod's status.
    accepted: Accepted,
    reports: watch::Sender<Reports>,
}

impl ApiLink {
    /// The kube client (the kubelet API's TokenReviews and SubjectAccessReviews).
    pub fn client(&self) -> kube::Client {
        self.source.client()
    }

    /// Connects (reading the kubeconfig; the server itself may still be away) and starts
    /// the watch, the object reader and the reporter. `wake` hears of every change.
    pub async fn start(
        access: &KubeAccess,
        node: &NodeInfo,
        register: Option<NodeSettings>,
        shared: &Shared,
        wake: mpsc::Sender<()>,
    ) -> Result<ApiLink, KubeError> {
        let source = KubeSource::connect(access, &node.node_name).await?;
        source.start(wake);
        let (reports, latest) = watch::channel(Reports::default());
        let accepted = Accepted::default();
        tokio::spawn(report(
            source.client(),
            source.view_handle(),
            latest,
            accepted.clone(),
        ));
        let duties = Arc::new(Mutex::new(ApiDuties::default()));
        let (tap, events) = mpsc::channel(1000);
        let (to_post, posting) = mpsc::channel(1000);
        if let Some(settings) = register {
            tokio::spawn(keep_registered(
                source.client(),
                node.clone(),
                settings,
                to_post.clone(),
            ));
        }
        *shared.event_tap.lock().unwrap_or_else(|p| p.into_inner()) = Some(tap);
        tokio::spawn(select_events(
            events,
            duties.clone(),
            node.node_name.clone(),
            to_post.clone(),
        ));
        tokio::spawn(post_events(
            source.client(),
            node.node_name.clone(),
            posting,
        ));
        Ok(ApiLink {
            source,
            duties,
            admitted: Mutex::new(BTreeMap::new()),
            objects_read: Mutex::new(BTreeSet::new()),
            merged: std::sync::atomic::AtomicU64::new(u64::MAX),
            to_post,
            refusals_told: Mutex::new(BTreeSet::new()),
            accepted,
            reports,
        })
    }

    /// Whether the API server's side changed since the last merge.
    pub fn moved(&self) -> bool {
        self.source.generation() != self.merged.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The files' desired state with the API server's pods and objects merged in.
    pub fn merge(&self, files: &Desired) -> Desired {
        // One snapshot for the pods, the objects and `synced`, which keep_unseen uses.
        let view = self.source.view();
        self.merged
            .store(view.generation, std::sync::atomic::Ordering::Release);
        let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        let (desired, duties) = merge(files, &view, &admitted);
        *admitted = duties
            .running
            .keys()
            .filter_map(|k| desired.pods.get(k).map(|p| (k.clone(), p.clone())))
            .collect();
        self.tell_refusals(&duties);
        *self.duties.lock().unwrap_or_else(|p| p.into_inner()) = duties;
        *self.objects_read.lock().unwrap_or_else(|p| p.into_inner()) = view.objects_read;
        desired
    }

    /// A Warning event on each pod newly refused (its status says Failed too), as kubelet
    /// reports a pod it does not admit.
    fn tell_refusals(&self, duties: &ApiDuties) {
        let mut told = self.refusals_told.lock().unwrap_or_else(|p| p.into_inner());
        let now: BTreeSet<(String, String)> = duties
            .refused
            .values()
            .map(|r| (r.uid.clone(), r.message.clone()))
            .collect();
        for r in duties.refused.values() {
            if told.contains(&(r.uid.clone(), r.message.clone())) {
                continue;
            }
            let _ = self.to_post.try_send(ApiEvent {
                involved: Involved::Pod {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    uid: r.uid.clone(),
                    field_path: None,
                },
                kind: "Warning".into(),
                reason: "FailedValidation".into(),
                message: r.message.clone(),
                time: crate::time::format_rfc3339_nano(std::time::SystemTime::now()),
            });
        }
        *told = now;
    }

    /// Before the first full list, pods that came from the API stay as recorded.
    pub fn keep_unseen(&self, desired: &mut Desired, observed: &BTreeMap<String, ObservedPod>) {
        let synced = self.duties.lock().unwrap_or_else(|p| p.into_inner()).synced;
        keep_unseen_api_pods(desired, observed.iter().map(|(k, o)| (k, &*o.spec)), synced);
    }

    /// What the API server's state holds back this round, for the planner.
    pub fn holds(&self) -> ApiHolds {
        let duties = self.duties.lock().unwrap_or_else(|p| p.into_inner());
        let read = self.objects_read.lock().unwrap_or_else(|p| p.into_inner());
        let accepted = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
        holds(&duties, &read, |uid| {
            accepted.get(uid).is_some_and(nothing_runs)
        })
    }

    /// Hands the reporter this round's statuses (from the published PodList) and the
    /// deletions that are complete on the node.
    pub fn report(&self, pod_list: &serde_json::Value, observed: &BTreeMap<String, ObservedPod>) {
        let duties = self
            .duties
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let reports = reports(&duties, pod_list, observed);
        self.reports.send_replace(reports);
    }
}

/// The planner's inputs from the API server's side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiHolds {
    /// API pods whose ConfigMaps, Secrets and tokens were not read once yet (starting a
    /// container would fail for a moment with CreateContainerConfigError).
    pub held: BTreeSet<String>,
    /// Pods the API has as finished.
    pub finished: BTreeSet<String>,
    /// Pods being deleted there: stopped first, removed (and then deleted there) once the
    /// API server has their containers as terminated, as kubelet reports them before its
    /// final delete.
    pub terminating: BTreeMap<String, Terminating>,
}

/// Pure: the holds of a merge's duties, given the uids whose objects were read and whether
/// the API server has a pod's containers as terminated.
fn holds(
    duties: &ApiDuties,
    objects_read: &BTreeSet<String>,
    reported_stopped: impl Fn(&str) -> bool,
) -> ApiHolds {
    ApiHolds {
        held: duties
            .running
            .iter()
            .filter(|(_, uid)| !objects_read.contains(*uid))
            .map(|(key, _)| key.clone())
            .collect(),
        finished: duties.finished.keys().cloned().collect(),
        terminating: duties
            .terminating
            .iter()
            .map(|(key, t)| {
                let going = Terminating {
                    uid: t.uid.clone(),
                    grace: t.grace,
                    reported_stopped: reported_stopped(&t.uid),
                };
                (key.clone(), going)
            })
            .collect(),
    }
}

/// Whether a reported status shows no running container.
fn nothing_runs(status: &serde_json::Value) -> bool {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| status[k].as_array())
        .flatten()
        .all(|c| c["state"]["running"].is_null())
}

/// Whether a status says the pod is still being set up: Pending, or a container waiting
/// to be created.
fn claims_creation(status: &serde_json::Value) -> bool {
    status["phase"] == "Pending"
        || ["initContainerStatuses", "containerStatuses"]
            .iter()
            .filter_map(|k| status[k].as_array())
            .flatten()
            .any(|c| c["state"]["waiting"]["reason"] == "ContainerCreating")
}

/// Passes on the events of API pods and of the node; file pods' stay on the node.
async fn select_events(
    mut events: mpsc::Receiver<Event>,
    duties: Arc<Mutex<ApiDuties>>,
    node: String,
    to_post: mpsc::Sender<ApiEvent>,
) {
    while let Some(event) = events.recv().await {
        let involved = {
            let duties = duties.lock().unwrap_or_else(|p| p.into_inner());
            involved(&duties, &event, &node)
        };
        if let Some(involved) = involved {
            let _ = to_post.try_send(ApiEvent {
                involved,
                kind: event.kind.to_string(),
                reason: event.reason,
                message: event.message,
                time: event.time,
            });
        }
    }
}

/// Pure: what an agent event is about on the API server, or None for a file pod's.
fn involved(duties: &ApiDuties, event: &Event, node: &str) -> Option<Involved> {
    if event.object.kind == "Node" {
        return Some(Involved::Node {
            name: node.to_string(),
        });
    }
    let key = format!("{}/{}", event.object.namespace, event.object.name);
    let uid = duties
        .running
        .get(&key)
        .or(duties.terminating.get(&key).map(|t| &t.uid))?;
    Some(Involved::Pod {
        namespace: event.object.namespace.clone(),
        name: event.object.name.clone(),
        uid: uid.clone(),
        field_path: event.object.field_path.clone(),
    })
}

/// Pure: what to tell the API server, from the duties of the last merge, the PodList the
/// agent publishes and the pods the node still has.
fn reports(
    duties: &ApiDuties,
    pod_list: &serde_json::Value,
    observed: &BTreeMap<String, ObservedPod>,
) -> Reports {
    let mut out = Reports::default();
    for item in pod_list["items"].as_array().into_iter().flatten() {
        let meta = &item["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or("default");
        let name = meta["name"].as_str().unwrap_or_default();
        let key = format!("{namespace}/{name}");
        let uid = meta["uid"].as_str().unwrap_or_default();
        let terminating = duties.terminating.get(&key).is_some_and(|t| t.uid == uid);
        let running = duties.running.get(&key).is_some_and(|u| u == uid);
        // A pod on its way out only goes down: once its containers are removed the node
        // would describe it as not created yet, which must never reach the API server.
        if terminating && claims_creation(&item["status"]) {
            continue;
        }
        if running || terminating {
            let mut status = item["status"].clone();
            // A pod's own network namespace has loopback only: no address to publish
            // (Endpoints refuse loopback ones).
            if let Some(s) = status.as_object_mut() {
                let loopback = s
                    .get("podIP")
                    .and_then(|ip| ip.as_str())
                    .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|ip| ip.is_loopback());
                if loopback {
                    s.remove("podIP");
                    s.remove("podIPs");
                }
            }
            out.statuses.push(PodReport {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid: uid.to_string(),
                status,
            });
        }
    }
    out.statuses
        .extend(duties.refused.values().map(PodReport::refused));
    for (key, t) in &duties.terminating {
        if observed.get(key).is_none_or(|o| o.uid != t.uid) {
            out.finished_deletions
                .push((t.namespace.clone(), t.name.clone(), t.uid.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::api_merge::{Refused, Terminating as Deleting};

    fn observed(uid: &str) -> ObservedPod {
        ObservedPod {
            uid: uid.into(),
            spec: crate::pod::pod_from_yaml_str(
                "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: y:1}]\n",
            )
            .unwrap()
            .into(),
            containers: vec![],
            created_ms: 0,
        }
    }

    #[test]
    fn statuses_go_for_api_pods_only_and_deletions_once_the_node_is_clear() {
        let mut duties = ApiDuties::default();
        duties.running.insert("default/api".into(), "u-api".into());
        duties.refused.insert(
            "default/bad".into(),
            Refused {
                namespace: "default".into(),
                name: "bad".into(),
                uid: "u-bad".into(),
                message: "spec.volumes[0]: nope".into(),
            },
        );
        for (name, uid) in [("going", "u-going"), ("gone", "u-gone")] {
            duties.terminating.insert(
                format!("default/{name}"),
                Deleting {
                    namespace: "default".into(),
                    name: name.into(),
                    uid: uid.into(),
                    grace: None,
                },
            );
        }
        let item = |name: &str, uid: &str| serde_json::json!({"metadata": {"namespace": "default", "name": name, "uid": uid}, "status": {"phase": "Running"}});
        let list = serde_json::json!({"items": [item("api", "u-api"), item("file", "u-file"), item("going", "u-going")]});
        let observed = BTreeMap::from([("default/going".to_string(), observed("u-going"))]);
        let r = reports(&duties, &list, &observed);
        let names: Vec<&str> = r.statuses.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["api", "going", "bad"]);
        assert_eq!(r.statuses[2].status["phase"], "Failed");
        assert_eq!(r.statuses[2].status["reason"], "FailedValidation");
        assert_eq!(
            r.finished_deletions,
            vec![("default".into(), "gone".into(), "u-gone".into())]
        );
    }

    #[test]
    fn a_terminating_pod_whose_containers_are_gone_is_never_reported_as_being_created() {
        let mut duties = ApiDuties::default();
        duties.terminating.insert(
            "default/going".into(),
            Deleting {
                namespace: "default".into(),
                name: "going".into(),
                uid: "u-going".into(),
                grace: None,
            },
        );
        duties.running.insert("default/new".into(), "u-new".into());
        let creating = serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]});
        let list = serde_json::json!({"items": [
            {"metadata": {"namespace": "default", "name": "going", "uid": "u-going"}, "status": creating},
            {"metadata": {"namespace": "default", "name": "new", "uid": "u-new"}, "status": creating},
        ]});
        let observed = BTreeMap::from([("default/going".to_string(), observed("u-going"))]);
        let r = reports(&duties, &list, &observed);
        let names: Vec<&str> = r.statuses.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["new"],
            "a new pod is being created; a going one is not"
        );
    }

    #[test]
    fn only_api_pods_and_the_node_have_their_events_posted() {
        let mut duties = ApiDuties::default();
        duties.running.insert("default/api".into(), "u-api".into());
        let event = |kind: &'static str, name: &str| Event {
            time: "2026-11-26T00:00:00Z".into(),
            kind: "Normal",
            reason: "Started".into(),
            message: "Started container app".into(),
            object: crate::agent::shared::EventObject {
                kind,
                namespace: if kind == "Pod" {
                    "default".into()
                } else {
                    String::new()
                },
                name: name.into(),
                field_path: Some("spec.containers{app}".into()),
            },
        };
        assert_eq!(
            involved(&duties, &event("Pod", "api"), "n1"),
            Some(Involved::Pod {
                namespace: "default".into(),
                name: "api".into(),
                uid: "u-api".into(),
                field_path: Some("spec.containers{app}".into()),
            })
        );
        assert_eq!(involved(&duties, &event("Pod", "from-a-file"), "n1"), None);
        assert_eq!(
            involved(&duties, &event("Node", ""), "n1"),
            Some(Involved::Node { name: "n1".into() })
        );
    }

    #[test]
    fn api_pods_are_held_until_their_objects_are_read_and_deletions_carry_their_grace() {
        let mut duties = ApiDuties::default();
        duties.running.insert("default/new".into(), "u-new".into());
        duties
            .running
            .insert("default/read".into(), "u-read".into());
        duties
            .finished
            .insert("default/done".into(), "u-done".into());
        for (name, uid) in [("going", "u-going"), ("gone", "u-gone")] {
            duties.terminating.insert(
                format!("default/{name}"),
                Deleting {
                    namespace: "default".into(),
                    name: name.into(),
                    uid: uid.into(),
                    grace: Some(std::time::Duration::from_secs(2)),
                },
            );
        }
        let read = BTreeSet::from(["u-read".to_string()]);
        let h = holds(&duties, &read, |uid| uid == "u-gone");
        assert_eq!(h.held, BTreeSet::from(["default/new".to_string()]));
        assert_eq!(h.finished, BTreeSet::from(["default/done".to_string()]));
        assert_eq!(
            h.terminating["default/going"],
            Terminating {
                uid: "u-going".into(),
                grace: Some(std::time::Duration::from_secs(2)),
                reported_stopped: false,
            }
        );
        assert!(h.terminating["default/gone"].reported_stopped);
    }
}
