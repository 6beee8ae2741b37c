//! Pure: the manifest directory's desired state merged with what the API server says is
//! bound to this node. Which pods run, which the API server must be told are refused, and
//! which are being deleted there.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::host_ports::HostPortBook;
use super::manifests::Desired;
use crate::pod::spec::PodSpec;
use crate::pod::{ConfigMapObject, SecretObject, Warning};

/// What the API server last said.
#[derive(Debug, Clone, Default)]
pub struct ApiView {
    /// Pods bound to this node, by `namespace/name`.
    pub pods: BTreeMap<String, Pod>,
    /// A full list has completed since the agent started: until then a pod missing from
    /// `pods` may only be unseen, not deleted.
    pub synced: bool,
    /// ConfigMaps and Secrets those pods reference, by `namespace/name`.
    pub config_maps: BTreeMap<String, ConfigMapObject>,
    pub secrets: BTreeMap<String, SecretObject>,
    /// Uids of the pods whose referenced objects and tokens have been read at least once.
    pub objects_read: std::collections::BTreeSet<String>,
    /// Moves at every change, so the agent merges again only when something changed.
    pub generation: u64,
}

/// A pod of the API server that this node does not run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub message: String,
}

/// A pod the API server is deleting gracefully (its deletionTimestamp is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminating {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// deletionGracePeriodSeconds: the stop may not take longer.
    pub grace: Option<Duration>,
}

/// What the agent owes the API server after a merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiDuties {
    /// Pods from the API that run here: key -> uid. Their status is reported.
    pub running: BTreeMap<String, String>,
    pub refused: BTreeMap<String, Refused>,
    pub terminating: BTreeMap<String, Terminating>,
    /// Pods the API server has as Succeeded or Failed: never started again on this node
    /// (a node that lost its record of one must not run it twice).
    pub finished: BTreeMap<String, String>,
    /// The view this was merged from had completed a list.
    pub synced: bool,
}

/// The manifest directory's pods and objects plus the API server's. A static pod wins over
/// an API pod of the same name; an API pod that fails validation is refused, unless it was
/// admitted before (in `admitted`, the API pods of the last merge): then an update that
/// cannot be applied leaves it running on the spec it was admitted with, as kubelet does.
pub fn merge(
    files: &Desired,
    view: &ApiView,
    admitted: &BTreeMap<String, PodSpec>,
) -> (Desired, ApiDuties) {
    let mut desired = files.clone();
    let mut duties = ApiDuties {
        synced: view.synced,
        ..ApiDuties::default()
    };
    // Static pods and API pods admitted before hold their host ports; a new API pod that
    // asks for a held one is refused (the scheduler does not see static pods' ports).
    let mut ports = HostPortBook::default();
    for (key, pod) in files.pods.iter().chain(admitted) {
        ports.hold(key, pod);
    }
    for (key, pod) in &view.pods {
        let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let refuse = |message: String| Refused {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.clone(),
            message,
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .map(|s| Duration::from_secs(s.max(0) as u64));
            duties.terminating.insert(
                key.clone(),
                Terminating {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    uid,
                    grace,
                },
            );
            continue;
        }
        if let Some(file) = files.origin.get(key) {
            let message = format!(
                "pod {key} is also defined in the static pod file {}, which wins",
                file.display()
            );
            duties.refused.insert(key.clone(), refuse(message));
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            // Its status is final: nothing more is reported, and a node without its
            // record does not run it (see ApiLink::hold_back).
            duties.finished.insert(key.clone(), uid.clone());
            if let Ok((spec, _)) = crate::pod::api::pod(pod) {
                desired.pods.insert(key.clone(), spec);
            }
            continue;
        }
        match crate::pod::api::pod(pod) {
            Ok((spec, warnings)) => {
                let known = admitted.get(key).is_some_and(|a| a.uid == uid);
                if !known {
                    if let Err(clash) = ports.claim(key, &spec) {
                        duties
                            .refused
                            .insert(key.clone(), refuse(clash.to_string()));
                        continue;
                    }
                }
                // The scheduler placed the pod by its tolerations, selectors and affinity
                // (the API server adds default tolerations to every pod): nothing to tell.
                desired.warnings.extend(
                    warnings
                        .into_iter()
                        .filter(|w| !w.scheduling_only())
                        .map(|w| (key.clone(), w)),
                );
                desired.pods.insert(key.clone(), spec);
                duties.running.insert(key.clone(), uid.clone());
            }
            Err(e) => match admitted.get(key).filter(|a| a.uid == uid) {
                Some(spec) => {
                    desired.warnings.push((
                        key.clone(),
                        Warning {
                            field: String::new(),
                            message: format!(
                                "an update of the pod was not applied ({e}); it keeps running on the spec it was admitted with"
                            ),
                        },
                    ));
                    desired.pods.insert(key.clone(), spec.clone());
                    duties.running.insert(key.clone(), uid.clone());
                }
                None => {
                    duties.refused.insert(key.clone(), refuse(e.to_string()));
                }
            },
        }
    }
    for (key, cm) in &view.config_maps {
        desired
            .config_maps
            .entry(key.clone())
            .or_insert_with(|| cm.clone());
    }
    for (key, secret) in &view.secrets {
        desired
            .secrets
            .entry(key.clone())
            .or_insert_with(|| secret.clone());
    }
    (desired, duties)
}

/// Until the first full list, the pods the node already runs from the API stay desired as
/// they were recorded: an agent restarted while the API server is away must not remove them
/// (kubelet waits for all sources to be ready before it deletes anything).
pub fn keep_unseen_api_pods<'a>(
    desired: &mut Desired,
    observed: impl IntoIterator<Item = (&'a String, &'a PodSpec)>,
    view_synced: bool,
) {
    if view_synced {
        return;
    }
    for (key, spec) in observed {
        if crate::pod::api::is_from_api(spec) && !desired.pods.contains_key(key) {
            desired.pods.insert(key.clone(), spec.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn api_pod(name: &str, extra_meta: serde_json::Value) -> Pod {
        let mut meta =
            serde_json::json!({"name": name, "namespace": "default", "uid": format!("uid-{name}")});
        if let (Some(m), Some(extra)) = (meta.as_object_mut(), extra_meta.as_object()) {
            m.extend(extra.clone());
        }
        serde_json::from_value(serde_json::json!({
            "metadata": meta,
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x:1"}]},
        }))
        .unwrap()
    }

    fn view(pods: Vec<Pod>) -> ApiView {
        ApiView {
            pods: pods
                .into_iter()
                .map(|p| {
                    let key = format!(
                        "{}/{}",
                        p.metadata.namespace.clone().unwrap(),
                        p.metadata.name.clone().unwrap()
                    );
                    (key, p)
                })
                .collect(),
            synced: true,
            ..ApiView::default()
        }
    }

    fn with_host_port(mut pod: Pod, port: i32) -> Pod {
        if let Some(c) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
            c.ports = Some(vec![k8s_openapi::api::core::v1::ContainerPort {
                container_port: 80,
                host_port: Some(port),
                ..Default::default()
            }]);
        }
        pod
    }

    #[test]
    fn an_api_pod_asking_for_a_host_port_a_static_pod_holds_is_refused_naming_it() {
        let mut files = Desired::default();
        let static_pod = crate::pod::pod_from_yaml_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: proxy}\nspec:\n  containers:\n  - name: app\n    image: x:1\n    ports: [{containerPort: 80, hostPort: 8080}]\n",
        )
        .unwrap();
        files.pods.insert("default/proxy".into(), static_pod);
        let pods = vec![
            with_host_port(api_pod("web", serde_json::json!({})), 8080),
            with_host_port(api_pod("other", serde_json::json!({})), 9090),
        ];
        let (desired, duties) = merge(&files, &view(pods.clone()), &BTreeMap::new());
        assert!(!desired.pods.contains_key("default/web"));
        assert!(desired.pods.contains_key("default/other"));
        assert_eq!(
            duties.refused["default/web"].message,
            "host port TCP 8080 is already taken by pod default/proxy; pick another hostPort or remove one of the two pods"
        );
        // A pod admitted before keeps running where a clash appears later.
        let admitted: BTreeMap<String, PodSpec> = [(
            "default/web".to_string(),
            crate::pod::api::pod(&pods[0]).unwrap().0,
        )]
        .into_iter()
        .collect();
        let (desired, duties) = merge(&files, &view(pods), &admitted);
        assert!(desired.pods.contains_key("default/web"));
        assert!(duties.refused.is_empty());
    }

    #[test]
    fn api_pods_join_the_files_pods_marked_as_such() {
        let files = Desired::default();
        let (desired, duties) = merge(
            &files,
            &view(vec![api_pod("web", serde_json::json!({}))]),
            &BTreeMap::new(),
        );
        assert!(crate::pod::api::is_from_api(&desired.pods["default/web"]));
        assert_eq!(desired.pods["default/web"].uid, "uid-web");
        assert_eq!(
            duties.running,
            BTreeMap::from([("default/web".to_string(), "uid-web".to_string())])
        );
        assert!(duties.refused.is_empty() && duties.terminating.is_empty());
    }

    #[test]
    fn a_static_pod_wins_over_an_api_pod_of_the_same_name() {
        let mut files = Desired::default();
        let static_spec =
            crate::pod::pod_from_yaml_str("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: y:1}]\n").unwrap();
        files.pods.insert("default/web".into(), static_spec.clone());
        files
            .origin
            .insert("default/web".into(), PathBuf::from("/etc/m/web.yaml"));
        let (desired, duties) = merge(
            &files,
            &view(vec![api_pod("web", serde_json::json!({}))]),
            &BTreeMap::new(),
        );
        assert_eq!(desired.pods["default/web"], static_spec);
        assert_eq!(
            duties.refused["default/web"].message,
            "pod default/web is also defined in the static pod file /etc/m/web.yaml, which wins"
        );
        assert!(duties.running.is_empty());
    }

    #[test]
    fn an_invalid_api_pod_is_refused_with_its_field_and_others_run() {
        let mut bad = api_pod("bad", serde_json::json!({}));
        bad.spec.as_mut().unwrap().containers[0].image = Some(String::new());
        let (desired, duties) = merge(
            &Desired::default(),
            &view(vec![bad, api_pod("good", serde_json::json!({}))]),
            &BTreeMap::new(),
        );
        assert_eq!(
            desired.pods.keys().collect::<Vec<_>>(),
            vec!["default/good"]
        );
        let refused = &duties.refused["default/bad"];
        assert_eq!(refused.uid, "uid-bad");
        assert_eq!(refused.message, "spec.containers[0].image: required");
    }

    #[test]
    fn an_update_that_cannot_be_applied_keeps_the_admitted_spec() {
        let good = api_pod("web", serde_json::json!({}));
        let (first, _) = merge(
            &Desired::default(),
            &view(vec![good.clone()]),
            &BTreeMap::new(),
        );
        let mut updated = good;
        updated.spec.as_mut().unwrap().containers[0].image = Some(String::new());
        let (desired, duties) = merge(&Desired::default(), &view(vec![updated]), &first.pods);
        assert_eq!(desired.pods["default/web"], first.pods["default/web"]);
        assert!(duties.refused.is_empty(), "{duties:?}");
        assert!(
            desired.warnings[0]
                .1
                .message
                .contains("spec.containers[0].image: required"),
            "{:?}",
            desired.warnings
        );
    }

    #[test]
    fn scheduling_fields_of_an_api_pod_are_accepted_silently() {
        let mut pod = api_pod("web", serde_json::json!({}));
        let spec = pod.spec.as_mut().unwrap();
        spec.tolerations = Some(vec![k8s_openapi::api::core::v1::Toleration {
            key: Some("node.kubernetes.io/not-ready".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(300),
            ..Default::default()
        }]);
        spec.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
        let (desired, _) = merge(&Desired::default(), &view(vec![pod]), &BTreeMap::new());
        assert!(desired.pods.contains_key("default/web"));
        assert!(desired.warnings.is_empty(), "{:?}", desired.warnings);
    }

    #[test]
    fn a_pod_the_api_has_as_finished_is_marked() {
        let mut done = api_pod("job", serde_json::json!({}));
        done.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        let (_, duties) = merge(&Desired::default(), &view(vec![done]), &BTreeMap::new());
        assert_eq!(duties.finished["default/job"], "uid-job");
    }

    #[test]
    fn a_pod_being_deleted_leaves_the_desired_state_with_its_grace() {
        let pod = api_pod(
            "web",
            serde_json::json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 3}),
        );
        let (desired, duties) = merge(&Desired::default(), &view(vec![pod]), &BTreeMap::new());
        assert!(desired.pods.is_empty());
        assert_eq!(
            duties.terminating["default/web"],
            Terminating {
                namespace: "default".into(),
                name: "web".into(),
                uid: "uid-web".into(),
                grace: Some(Duration::from_secs(3)),
            }
        );
    }

    #[test]
    fn before_the_first_list_running_api_pods_are_kept_and_file_pods_are_not() {
        let (api_spec, _) = crate::pod::api::pod(&api_pod("web", serde_json::json!({}))).unwrap();
        let file_spec = crate::pod::pod_from_yaml_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: old}\nspec:\n  containers: [{name: app, image: y:1}]\n",
        )
        .unwrap();
        let observed: BTreeMap<String, PodSpec> = BTreeMap::from([
            ("default/web".to_string(), api_spec.clone()),
            ("default/old".to_string(), file_spec),
        ]);
        let mut desired = Desired::default();
        keep_unseen_api_pods(&mut desired, &observed, false);
        assert_eq!(desired.pods.keys().collect::<Vec<_>>(), vec!["default/web"]);
        let mut desired = Desired::default();
        keep_unseen_api_pods(&mut desired, &observed, true);
        assert!(
            desired.pods.is_empty(),
            "after a list, unseen means deleted"
        );
    }

    #[test]
    fn file_objects_win_over_api_objects_of_the_same_name() {
        let object = |value: &str| ConfigMapObject {
            document: 0,
            namespace: "default".into(),
            name: "cfg".into(),
            data: BTreeMap::from([("a".to_string(), value.to_string())]),
            binary_data: BTreeMap::new(),
            immutable: false,
        };
        let mut files = Desired::default();
        files
            .config_maps
            .insert("default/cfg".into(), object("file"));
        let mut api = view(vec![]);
        api.config_maps.insert("default/cfg".into(), object("api"));
        api.config_maps
            .insert("default/other".into(), object("api"));
        let (desired, _) = merge(&files, &api, &BTreeMap::new());
        assert_eq!(desired.config_maps["default/cfg"].data["a"], "file");
        assert!(desired.config_maps.contains_key("default/other"));
    }
}
