//! Which subnets the default network hands out. kubelet takes the pod CIDR from the
//! `--pod-cidr` flag on a standalone node and from the Node's `spec.podCIDRs` in a cluster
//! (the control plane allocates one per node); so does layerlet. A bridge holds one gateway
//! per IPv4 subnet, so a new subnet is taken up only while no pod is attached: pods keep
//! the addresses they have and never share the bridge with a second gateway.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::default_network::PodCidr;
use super::error::NetworkError;

/// The Node's `spec.podCIDRs`, once the API server has given them.
#[derive(Debug, Clone, Default)]
pub struct NodeSubnets {
    assigned: Arc<Mutex<Option<Vec<PodCidr>>>>,
    /// The last deferral told, so it is logged once.
    told: Arc<Mutex<Option<String>>>,
    /// Set while a registering node has not yet read its Node (kube mode): the control
    /// plane's CIDR may be on its way, and a pod attached meanwhile would keep the flag's
    /// subnet in use for as long as it lives.
    awaiting_node: Arc<AtomicBool>,
    /// Where the assigned CIDRs are kept across restarts; none in unit tests.
    saved: Option<PathBuf>,
}

impl NodeSubnets {
    /// Takes the Node's `spec.podCIDRs`; true when they differ from the ones known. Empty:
    /// not allocated (yet), the flag's subnets stay.
    /// Subnets whose assignments are kept in `saved` across restarts.
    pub fn saved_at(saved: PathBuf) -> NodeSubnets {
        NodeSubnets {
            saved: Some(saved),
            ..Default::default()
        }
    }

    pub fn assign(&self, cidrs: &[String]) -> Result<bool, NetworkError> {
        if cidrs.is_empty() {
            return Ok(false);
        }
        let parsed = cidrs
            .iter()
            .map(|c| PodCidr::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        let changed = assigned.as_ref() != Some(&parsed);
        *assigned = Some(parsed);
        if changed {
            if let Some(path) = &self.saved {
                // Losing this costs a restart its early start only: the Node is read again.
                let text: String = cidrs.iter().map(|c| format!("{c}\n")).collect();
                if let Err(e) = crate::sys::fs::replace_file(path, text.as_bytes()) {
                    tracing::warn!(error = %e, "the node's pod CIDRs could not be kept for the next start");
                }
            }
        }
        Ok(changed)
    }

    /// A registering node: new pods wait for the Node to be read, unless the CIDRs read at
    /// an earlier start were kept, or pods are attached (new ones share their subnet
    /// anyway). So a restart while the API server is away starts static pods at once.
    pub fn await_node(&self, attachments_dir: &Path) {
        let saved: Vec<String> = self
            .saved
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default();
        if matches!(self.assign(&saved), Ok(true)) {
            self.awaiting_node.store(false, Ordering::SeqCst);
            return;
        }
        let attached = std::fs::read_dir(attachments_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        self.awaiting_node.store(!attached, Ordering::SeqCst);
    }

    /// The Node was read (with or without pod CIDRs): new pods are attached again.
    pub fn node_read(&self) {
        self.awaiting_node.store(false, Ordering::SeqCst);
    }

    /// Whether a pod may join the default network now.
    pub fn ready_for_attach(&self) -> Result<(), NetworkError> {
        if self.awaiting_node.load(Ordering::SeqCst) {
            return Err(NetworkError::AwaitingNodePodCidrs);
        }
        Ok(())
    }

    fn assigned(&self) -> Option<Vec<PodCidr>> {
        self.assigned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The subnets a new pod gets its address from: the Node's when assigned, else
    /// `flag`; but while pods are attached, the ones they use (read from `default_file`).
    pub fn for_new_pods(
        &self,
        flag: &[PodCidr],
        default_file: &Path,
        attachments_dir: &Path,
    ) -> Vec<PodCidr> {
        let wanted = self.assigned().unwrap_or_else(|| flag.to_vec());
        let in_use = std::fs::read(default_file)
            .ok()
            .and_then(|bytes| subnets_of_default_conflist(&bytes));
        let attached = std::fs::read_dir(attachments_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        let chosen = choose(&wanted, in_use.as_deref(), attached);
        if chosen != wanted {
            let note = format!("{wanted:?}");
            let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
            if told.as_deref() != Some(note.as_str()) {
                tracing::warn!(
                    wanted = %list(&wanted),
                    in_use = %list(&chosen),
                    "the node's pod CIDR changed while pods are attached; new pods keep the subnet in use until the last attached pod is gone"
                );
                *told = Some(note);
            }
        }
        chosen
    }
}

fn list(cidrs: &[PodCidr]) -> String {
    cidrs
        .iter()
        .map(PodCidr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Pure: `wanted`, unless pods are attached to a bridge on other subnets (`in_use`).
pub fn choose(wanted: &[PodCidr], in_use: Option<&[PodCidr]>, attached: bool) -> Vec<PodCidr> {
    match in_use {
        Some(in_use) if attached && !in_use.is_empty() => in_use.to_vec(),
        _ => wanted.to_vec(),
    }
}

/// The subnets of a default conflist this node wrote (bridge, then host-local's ranges).
fn subnets_of_default_conflist(bytes: &[u8]) -> Option<Vec<PodCidr>> {
    let list: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    list["plugins"][0]["ipam"]["ranges"]
        .as_array()?
        .iter()
        .map(|range| PodCidr::parse(range[0]["subnet"].as_str()?).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::network::default_network::default_conflist;

    fn cidr(text: &str) -> PodCidr {
        PodCidr::parse(text).unwrap()
    }

    #[test]
    fn the_nodes_subnet_wins_over_the_flag_but_only_while_no_pod_is_attached() {
        let flag = [cidr("10.89.0.0/16")];
        let node = [cidr("10.244.3.0/24")];
        assert_eq!(choose(&node, Some(&flag), false), node);
        assert_eq!(
            choose(&node, Some(&flag), true),
            flag,
            "attached pods keep theirs"
        );
        assert_eq!(choose(&node, None, true), node, "nothing written yet");
    }

    #[test]
    fn the_subnets_in_use_are_read_back_from_the_default_conflist() {
        let dir = tempfile::tempdir().unwrap();
        let both = [cidr("10.244.3.0/24"), cidr("fd00:89::/64")];
        let bytes = default_conflist(&both, dir.path());
        assert_eq!(subnets_of_default_conflist(&bytes).unwrap(), both);
        assert_eq!(subnets_of_default_conflist(b"{not json"), None);
    }

    #[test]
    fn assigned_subnets_are_used_for_new_pods_once_nothing_is_attached() {
        let dir = tempfile::tempdir().unwrap();
        let (file, attachments) = (dir.path().join("default.conflist"), dir.path().join("att"));
        std::fs::create_dir_all(&attachments).unwrap();
        let flag = [cidr("10.89.0.0/16")];
        std::fs::write(&file, default_conflist(&flag, dir.path())).unwrap();
        let subnets = NodeSubnets::default();
        assert!(!subnets.assign(&[]).unwrap(), "not allocated yet");
        assert_eq!(subnets.for_new_pods(&flag, &file, &attachments), flag);
        assert!(subnets.assign(&["10.244.3.0/24".into()]).unwrap());
        assert!(
            !subnets.assign(&["10.244.3.0/24".into()]).unwrap(),
            "unchanged"
        );
        std::fs::write(attachments.join("pod-1"), "{}").unwrap();
        assert_eq!(subnets.for_new_pods(&flag, &file, &attachments), flag);
        std::fs::remove_file(attachments.join("pod-1")).unwrap();
        assert_eq!(
            subnets.for_new_pods(&flag, &file, &attachments),
            [cidr("10.244.3.0/24")]
        );
        let bad = subnets.assign(&["10.244.3.7/24".into()]).unwrap_err();
        assert!(bad.to_string().contains("host bits"), "{bad}");
    }

    #[test]
    fn a_registering_node_attaches_nothing_until_its_node_was_read_unless_it_knows_its_subnet() {
        let dir = tempfile::tempdir().unwrap();
        let (saved, attachments) = (dir.path().join("saved"), dir.path().join("att"));
        std::fs::create_dir_all(&attachments).unwrap();
        let subnets = NodeSubnets::saved_at(saved.clone());
        subnets.ready_for_attach().unwrap();
        subnets.await_node(&attachments);
        let waiting = subnets.ready_for_attach().unwrap_err();
        assert!(waiting.to_string().contains("spec.podCIDRs"), "{waiting}");
        subnets.node_read();
        subnets.ready_for_attach().unwrap();
        // A pod attached: new ones join its subnet whatever the Node says, so nothing waits.
        std::fs::write(attachments.join("pod-1"), "{}").unwrap();
        subnets.await_node(&attachments);
        subnets.ready_for_attach().unwrap();
        std::fs::remove_file(attachments.join("pod-1")).unwrap();
        // The Node's CIDRs read before are kept: a restart uses them without waiting.
        assert!(subnets.assign(&["10.244.3.0/24".into()]).unwrap());
        let restarted = NodeSubnets::saved_at(saved);
        restarted.await_node(&attachments);
        restarted.ready_for_attach().unwrap();
        let flag = [cidr("10.89.0.0/16")];
        let file = dir.path().join("default.conflist");
        assert_eq!(
            restarted.for_new_pods(&flag, &file, &attachments),
            [cidr("10.244.3.0/24")]
        );
    }

    #[test]
    fn a_damaged_saved_cidr_file_is_ignored_and_the_node_waits_for_its_node() {
        let dir = tempfile::tempdir().unwrap();
        let saved = dir.path().join("saved");
        std::fs::write(&saved, "10.244.3.7/24\nnot a cidr\n").unwrap();
        let subnets = NodeSubnets::saved_at(saved.clone());
        subnets.await_node(&dir.path().join("att"));
        assert!(subnets.ready_for_attach().is_err());
        assert_eq!(
            subnets.assigned(),
            None,
            "nothing taken from the damaged file"
        );
        assert!(saved.exists(), "left for the next read to replace");
    }
}
