//! The node's pod networking: which CNI network pods join (or none), and the cluster DNS
//! their resolvers name. The attachment a pod asks for is pure ([`attachment_for`]); the
//! network is chosen again at every ADD, so a conf file fixed or added is used at once,
//! while DEL always runs the chain recorded at ADD.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::attach::{
    Attached, Attachment, Cni, CniOptions, DEFAULT_BIN_DIRS, DEFAULT_PLUGIN_TIMEOUT,
};
use super::config::{parse_config, NetworkConfig};
use super::default_network::{choose_network, default_conflist, PodCidr};
use super::error::NetworkError;
use super::identity::{AttachmentId, PodRef};
use super::masquerade::Masquerade;
use super::runtime_config::{
    bandwidth, dns, port_mappings, HostPortInput, RuntimeConfig, EGRESS_BANDWIDTH_ANNOTATION,
    INGRESS_BANDWIDTH_ANNOTATION,
};
use super::subnets::NodeSubnets;
use super::sweep::SweepReport;
use crate::layout::NodeLayout;
use crate::pod::spec::{PodSpec, Protocol};
use crate::runtime::sandbox::files::ClusterDns;

/// Where the CNI network comes from and where its state lives.
#[derive(Debug, Clone)]
pub struct CniSetup {
    /// `--cni-conf-dir`: its lexically first config wins over the default network.
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    /// The default network's subnets (`--pod-cidr`).
    pub pod_cidrs: Vec<PodCidr>,
    /// In kube mode, the Node's `spec.podCIDRs`, which replace `pod_cidrs` as kubelet's do.
    pub node_subnets: NodeSubnets,
    /// The default network's node-wide masquerade rules.
    pub masquerade: Masquerade,
    pub timeout: Duration,
    pub attachments_dir: PathBuf,
    pub ipam_dir: PathBuf,
    pub default_file: PathBuf,
}

impl CniSetup {
    /// The defaults kubelet users expect, with the data root's places.
    pub fn new(layout: &NodeLayout, conf_dir: PathBuf, pod_cidrs: Vec<PodCidr>) -> CniSetup {
        CniSetup {
            conf_dir,
            bin_dirs: DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
            pod_cidrs,
            node_subnets: NodeSubnets::saved_at(layout.cni_node_pod_cidrs()),
            masquerade: Masquerade::default(),
            timeout: DEFAULT_PLUGIN_TIMEOUT,
            attachments_dir: layout.cni_attachments_dir(),
            ipam_dir: layout.cni_ipam_dir(),
            default_file: layout.cni_default_conflist(),
        }
    }

    fn options(&self) -> CniOptions {
        let mut options = CniOptions::new(&self.attachments_dir);
        options.bin_dirs = self.bin_dirs.clone();
        options.timeout = self.timeout;
        options
    }

    /// The default network's subnets for a pod attached now.
    fn subnets(&self) -> Vec<PodCidr> {
        self.node_subnets
            .for_new_pods(&self.pod_cidrs, &self.default_file, &self.attachments_dir)
    }

    /// The network new pods join now.
    fn cni(&self) -> Result<Cni, NetworkError> {
        Ok(Cni::new(self.network()?.0, self.options()))
    }

    /// The network new pods join now, with the default network's subnets when it is that.
    fn network(&self) -> Result<(NetworkConfig, Option<Vec<PodCidr>>), NetworkError> {
        let subnets = self.subnets();
        let network = choose_network(&self.conf_dir, &self.default_file, &subnets, &self.ipam_dir)?;
        let default = network.file == self.default_file;
        Ok((network, default.then_some(subnets)))
    }

    /// The network a pod is attached to now: on the default network, the node's masquerade
    /// rules are made sure of first.
    fn for_attach(&self) -> Result<Cni, NetworkError> {
        let (network, default_subnets) = self.network()?;
        if let Some(subnets) = default_subnets {
            self.masquerade.ensure(&subnets)?;
        }
        Ok(Cni::new(network, self.options()))
    }

    /// A Cni for what is recorded: DEL and the sweep run each attachment's own recorded
    /// chain, so they work even while the conf dir holds a broken file.
    fn recorded(&self) -> Result<Cni, NetworkError> {
        let bytes = default_conflist(&self.subnets(), &self.ipam_dir);
        let network = parse_config(&self.default_file, &bytes)?;
        Ok(Cni::new(network, self.options()))
    }
}

/// How the node's pods are networked.
#[derive(Debug, Clone, Default)]
pub struct PodNetworking {
    /// None: pods keep a network namespace with loopback only (`--pod-network none`).
    pub cni: Option<CniSetup>,
    pub dns: ClusterDns,
}

/// Pure: the attachment a pod asks for: its host ports, bandwidth annotations and the
/// cluster DNS as runtime config, keyed by the pod's uid (its sandbox).
pub fn attachment_for(
    pod: &PodSpec,
    netns: &Path,
    dns_servers: &[IpAddr],
    searches: &[String],
) -> Result<Attachment, NetworkError> {
    let ports: Vec<HostPortInput<'_>> = pod
        .containers
        .iter()
        .chain(&pod.init_containers)
        .flat_map(|c| &c.ports)
        .map(|p| HostPortInput {
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            protocol: match p.protocol {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
                Protocol::Sctp => "SCTP",
            },
            host_ip: p.host_ip.as_deref(),
        })
        .collect();
    let servers: Vec<String> = dns_servers.iter().map(IpAddr::to_string).collect();
    Ok(Attachment {
        id: AttachmentId::pod(&pod.uid)?,
        pod: PodRef {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        },
        netns: netns.to_path_buf(),
        runtime_config: RuntimeConfig {
            port_mappings: port_mappings(&ports)?,
            bandwidth: bandwidth(
                pod.annotations
                    .get(INGRESS_BANDWIDTH_ANNOTATION)
                    .map(String::as_str),
                pod.annotations
                    .get(EGRESS_BANDWIDTH_ANNOTATION)
                    .map(String::as_str),
            )?,
            dns: dns(&servers, searches, &["ndots:5".to_string()]),
        },
    })
}

impl PodNetworking {
    /// Attaches a pod whose network namespace is pinned at `netns`; None without CNI.
    pub fn attach(&self, pod: &PodSpec, netns: &Path) -> Result<Option<Attached>, NetworkError> {
        let Some(setup) = &self.cni else {
            return Ok(None);
        };
        let searches = if self.dns.servers.is_empty() {
            Vec::new()
        } else {
            let domain = &self.dns.domain;
            vec![
                format!("{}.svc.{domain}", pod.namespace),
                format!("svc.{domain}"),
                domain.clone(),
            ]
        };
        let attachment = attachment_for(pod, netns, &self.dns.servers, &searches)?;
        setup.for_attach()?.add(&attachment).map(Some)
    }

    /// The Node's `spec.podCIDRs` (kube mode); true when they changed. Without CNI, or
    /// with a conf dir config of its own, they change nothing.
    pub fn use_node_pod_cidrs(&self, cidrs: &[String]) -> Result<bool, NetworkError> {
        match &self.cni {
            Some(setup) => setup.node_subnets.assign(cidrs),
            None => Ok(false),
        }
    }

    /// A registering node: pods wait for the Node to be read before they join the default
    /// network (see [`NodeSubnets::ready_for_attach`]).
    pub fn await_node_pod_cidrs(&self) {
        if let Some(setup) = &self.cni {
            setup.node_subnets.await_node(&setup.attachments_dir);
        }
    }

    /// Whether `pod` may be attached now: refused while a registering node waits for its
    /// Node and the pod would join the default network. Asked before a sandbox is made, so
    /// a waiting pod costs no sandbox each time it is retried.
    pub fn ready_for(&self, pod: &PodSpec) -> Result<(), NetworkError> {
        let Some(setup) = &self.cni else {
            return Ok(());
        };
        if pod.host_network || setup.node_subnets.ready_for_attach().is_ok() {
            return Ok(());
        }
        match setup.network()?.1 {
            Some(_) => setup.node_subnets.ready_for_attach(),
            None => Ok(()),
        }
    }

    /// The Node was read: pods join the default network again.
    pub fn node_read(&self) {
        if let Some(setup) = &self.cni {
            setup.node_subnets.node_read();
        }
    }

    /// Detaches the pod of `uid`; true when it was attached. Idempotent, and it works when
    /// the namespace is already gone.
    pub fn detach(&self, uid: &str) -> Result<bool, NetworkError> {
        let Some(setup) = &self.cni else {
            return Ok(false);
        };
        let id = AttachmentId::pod(uid)?;
        // A record is all DEL needs; without one there is nothing to undo.
        if !setup.attachments_dir.join(id.file_name()).exists() {
            return Ok(false);
        }
        setup.recorded()?.del(&id)
    }

    /// Detaches every attachment whose pod is not in `live_uids` (what a crash left), then
    /// lets CNI 1.1 plugins collect what no attachment holds.
    pub fn sweep<'a>(
        &self,
        live_uids: impl IntoIterator<Item = &'a str>,
    ) -> Result<SweepReport, NetworkError> {
        let Some(setup) = &self.cni else {
            return Ok(SweepReport::default());
        };
        // A writer killed between its temp file and the rename leaves the temp file behind.
        let dirs = [
            Some(setup.attachments_dir.as_path()),
            setup.attachments_dir.parent(),
        ];
        for dir in dirs.into_iter().flatten() {
            let removed = crate::sys::fs::remove_dead_writers_temp_files(dir)?;
            if !removed.is_empty() {
                tracing::warn!(files = ?removed, "removed the temp files of writes a crash cut short");
            }
        }
        let live: HashSet<AttachmentId> = live_uids
            .into_iter()
            .filter_map(|uid| AttachmentId::pod(uid).ok())
            .collect();
        match setup.cni() {
            Ok(cni) => cni.sweep(&live),
            // A broken conf file must not keep the node's leaks: DEL by the records.
            Err(_) => setup.recorded()?.sweep(&live),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::pod_from_yaml_str;

    #[test]
    fn a_pods_host_ports_bandwidth_and_dns_become_its_runtime_config() {
        let pod = pod_from_yaml_str(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\n  uid: u-1\n  annotations: {kubernetes.io/ingress-bandwidth: 10M}\nspec:\n  containers:\n  - name: app\n    image: x:1\n    ports:\n    - {containerPort: 80, hostPort: 8080}\n    - {containerPort: 53, protocol: UDP}\n",
        )
        .unwrap();
        let a = attachment_for(
            &pod,
            Path::new("/run/layerlet/pods/u-1/ns/net"),
            &["10.96.0.10".parse().unwrap()],
            &["shop.svc.cluster.local".to_string()],
        )
        .unwrap();
        assert_eq!(a.id.container_id, "u-1");
        assert_eq!(a.id.ifname, "eth0");
        assert_eq!(
            (a.pod.namespace.as_str(), a.pod.name.as_str()),
            ("shop", "web")
        );
        let ports = &a.runtime_config.port_mappings;
        assert_eq!(ports.len(), 1, "only ports with a hostPort: {ports:?}");
        assert_eq!((ports[0].host_port, ports[0].container_port), (8080, 80));
        assert_eq!(ports[0].protocol, "tcp");
        assert_eq!(
            a.runtime_config.bandwidth.as_ref().map(|b| b.ingress_rate),
            Some(10_000_000)
        );
        let dns = a.runtime_config.dns.unwrap();
        assert_eq!(dns.servers, ["10.96.0.10"]);
    }

    #[test]
    fn without_cni_nothing_is_attached_or_detached() {
        let none = PodNetworking::default();
        let pod = pod_from_yaml_str(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web, uid: u-1}\nspec:\n  containers: [{name: app, image: x:1}]\n",
        )
        .unwrap();
        assert!(none
            .attach(&pod, Path::new("/nonexistent"))
            .unwrap()
            .is_none());
        assert!(!none.detach("u-1").unwrap());
        assert!(none.sweep(["u-1"]).unwrap().removed.is_empty());
    }
}
