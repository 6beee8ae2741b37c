//! What the node has: pod records, their containers and the monitors' state files, as the
//! planner reads them. A pod's spec is parsed from its record once and kept while the
//! record's text stays the same (the agent observes every 200 ms).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::plan::{ObservedContainer, ObservedPod};
use super::status::ExitInfo;
use crate::image::store::Store;
use crate::pod::spec::PodSpec;
use crate::runtime::container::Runtime;
use crate::runtime::pods::{pod_spec, PodError};
use crate::runtime::records::{ContainerRecord, PodRecord};
use crate::runtime::state::Status;

/// The agent's pods as the node has them.
#[derive(Debug, Default)]
pub struct Observation {
    /// By `namespace/name`.
    pub pods: BTreeMap<String, ObservedPod>,
    /// Exit reasons by container ID.
    pub reasons: BTreeMap<String, ExitInfo>,
    /// Pod key -> container name -> the image digest its newest instance runs.
    pub image_ids: BTreeMap<String, BTreeMap<String, String>>,
    /// Pod key -> the addresses CNI gave the pod (none without a pod network).
    pub pod_ips: BTreeMap<String, Vec<std::net::IpAddr>>,
    /// Records whose stored spec no longer reads (written by an older build that accepted
    /// what this one refuses, such as a malformed image reference): removed, not run.
    pub unreadable: Vec<(PodRecord, String)>,
}

/// Parsed pod specs by uid, with the record text each was parsed from.
#[derive(Debug, Default)]
pub struct SpecCache {
    specs: HashMap<String, (String, Arc<PodSpec>)>,
    /// How many records were parsed.
    parses: u64,
}

impl SpecCache {
    /// The record's spec: parsed again only when its text changed.
    pub fn spec(&mut self, record: &PodRecord) -> Result<&Arc<PodSpec>, PodError> {
        let entry = match self.specs.entry(record.uid.clone()) {
            Entry::Occupied(e) if e.get().0 == record.spec => e.into_mut(),
            Entry::Occupied(mut e) => {
                e.insert((record.spec.clone(), Arc::new(pod_spec(record)?)));
                self.parses += 1;
                e.into_mut()
            }
            Entry::Vacant(e) => {
                let parsed = pod_spec(record)?;
                self.parses += 1;
                e.insert((record.spec.clone(), Arc::new(parsed)))
            }
        };
        Ok(&entry.1)
    }

    pub fn parses(&self) -> u64 {
        self.parses
    }

    /// Forgets the pods whose records are gone.
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        self.specs.retain(|uid, _| live(uid));
    }
}

/// One container instance as its monitor's files have it. A container whose monitor died
/// without a word is settled first (exit 255, reason Unknown).
pub fn observe_container(
    rt: &Runtime,
    c: &ContainerRecord,
) -> Result<(ObservedContainer, Option<ExitInfo>), PodError> {
    let state = rt.dirs(&c.id)?.state();
    // Three reads a round for a running container: no exit record, its start record, and
    // whether its monitor lives (a monitor that died without a word is settled here).
    let mut exited = state.exited().ok().flatten();
    let started = state.started().ok().flatten();
    if let (None, Some(s)) = (&exited, &started) {
        exited = Runtime::settle_if_lost(&state, s)?;
    }
    let status = if exited.is_some() {
        Status::Exited
    } else if started.is_some() {
        Status::Running
    } else {
        Status::Created
    };
    let observed = ObservedContainer {
        id: c.id.clone(),
        name: c.name.clone(),
        attempt: c.attempt,
        status,
        exit_code: exited.as_ref().map(|e| e.exit_code),
        started_ms: started
            .as_ref()
            .map(|s| s.started_unix_ms)
            .or(exited.as_ref().map(|e| e.finished_unix_ms)),
        finished_ms: exited.as_ref().map(|e| e.finished_unix_ms),
        unhealthy: false,
    };
    let exit = exited.map(|e| ExitInfo {
        reason: e.reason,
        message: e.message,
    });
    Ok((observed, exit))
}

/// The pods of `owner` on this node.
/// A container's `imageID` as containerd-backed kubelets report it: `REPO@DIGEST`, the
/// digest the registry serves the image under; the bare digest when the reference does
/// not parse (a record an older build wrote).
fn image_id(c: &ContainerRecord, served_as: &BTreeMap<String, String>) -> String {
    let manifest = c.image.to_string();
    let digest = served_as.get(&manifest).unwrap_or(&manifest);
    match crate::reference::ImageRef::parse(&c.image_ref) {
        Ok(reference) => reference.repo_digest(digest),
        Err(_) => digest.clone(),
    }
}

pub fn observe(
    rt: &Runtime,
    store: &Store,
    owner: &str,
    specs: &mut SpecCache,
) -> Result<Observation, PodError> {
    let records = store.db().pods()?;
    let containers = store.db().containers()?;
    // What the registry serves each image under: the index of a multi-platform image.
    let served_as: BTreeMap<String, String> = store
        .db()
        .images()?
        .into_iter()
        .filter_map(|i| Some((i.digest.to_string(), i.index_digest?.to_string())))
        .collect();
    // Grouped once: a scan of every container per pod grows with the square of the pods.
    let mut by_pod: HashMap<&str, Vec<&ContainerRecord>> = HashMap::new();
    for c in &containers {
        by_pod.entry(c.pod_uid.as_str()).or_default().push(c);
    }
    let mut out = Observation::default();
    for record in records.iter().filter(|r| r.owner == owner) {
        let spec = match specs.spec(record) {
            Ok(spec) => spec.clone(),
            Err(e) => {
                out.unreadable.push((record.clone(), e.to_string()));
                continue;
            }
        };
        let mut observed = Vec::new();
        let mut newest: BTreeMap<&str, &ContainerRecord> = BTreeMap::new();
        for &c in by_pod.get(record.uid.as_str()).into_iter().flatten() {
            let (container, exit) = observe_container(rt, c)?;
            if let Some(exit) = exit {
                out.reasons.insert(c.id.clone(), exit);
            }
            observed.push(container);
            if newest
                .get(c.name.as_str())
                .is_none_or(|n| c.attempt >= n.attempt)
            {
                newest.insert(&c.name, c);
            }
        }
        let key = spec.key();
        if let Ok(dir) = rt.layout.sandbox_dir(&record.uid) {
            out.pod_ips
                .insert(key.clone(), crate::runtime::sandbox::pod_ips(&dir));
        }
        out.image_ids.insert(
            key.clone(),
            newest
                .into_iter()
                .map(|(name, c)| (name.to_string(), image_id(c, &served_as)))
                .collect(),
        );
        out.pods.insert(
            key,
            ObservedPod {
                uid: record.uid.clone(),
                spec,
                containers: observed,
                created_ms: (record.created_at.max(0) as u64) * 1000,
            },
        );
    }
    let live: std::collections::HashSet<&str> = records.iter().map(|r| r.uid.as_str()).collect();
    specs.retain(|uid| live.contains(uid));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(spec: &PodSpec) -> PodRecord {
        PodRecord {
            uid: spec.uid.clone(),
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            owner: "agent".into(),
            spec: serde_json::to_string(spec).unwrap(),
            created_at: 0,
        }
    }

    #[test]
    fn an_unchanged_record_is_parsed_once_and_a_changed_one_again() {
        let mut spec = crate::pod::pod_from_yaml_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: x:1}]\n",
        )
        .unwrap();
        let mut cache = SpecCache::default();
        for _ in 0..3 {
            assert_eq!(**cache.spec(&record(&spec)).unwrap(), spec);
        }
        assert_eq!(cache.parses(), 1);
        spec.labels.insert("tier".into(), "web".into());
        assert_eq!(**cache.spec(&record(&spec)).unwrap(), spec);
        assert_eq!(cache.parses(), 2);
        let mut broken = record(&spec);
        broken.spec.push('x');
        assert!(
            cache.spec(&broken).is_err(),
            "a changed text is parsed again"
        );
        cache.retain(|_| false);
        cache.spec(&record(&spec)).unwrap();
        assert_eq!(cache.parses(), 3, "a forgotten pod is parsed again");
    }
}
