//! The pod-network flags every command that runs pods shares (`agent` and `run`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use layerlet::layout::NodeLayout;
use layerlet::runtime::network::{CniSetup, PodCidr, PodNetworking, DEFAULT_POD_CIDR};
use layerlet::runtime::sandbox::files::ClusterDns;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PodNetworkMode {
    /// Each pod joins the CNI network: an IP, routes, host ports.
    Cni,
    /// Pods keep a network namespace with loopback only.
    None,
}

#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// How pods are networked.
    #[arg(long, global = true, value_enum, env = "LAYERLET_POD_NETWORK", default_value_t = PodNetworkMode::Cni)]
    pub pod_network: PodNetworkMode,
    /// CNI configuration directory: its lexically first *.conflist (or *.conf) is the pods'
    /// network. Without one, pods join layerlet's default network: bridge `layerlet0` with
    /// host-local IPAM on --pod-cidr, plus portmap, written to ROOT/cni/layerlet.conflist.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/etc/cni/net.d"
    )]
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugins are looked for, in order (repeatable; default /opt/cni/bin, then
    /// /usr/lib/cni, where Debian's containernetworking-plugins puts them).
    #[arg(long = "cni-bin-dir", global = true, value_name = "DIR")]
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The default network's subnet, one per IP family (repeatable).
    #[arg(long = "pod-cidr", global = true, value_name = "CIDR", default_value = DEFAULT_POD_CIDR)]
    pub pod_cidrs: Vec<String>,
    /// The cluster DNS servers ClusterFirst pods use (repeatable). Without one, such pods get
    /// the node's resolv.conf and a warning event, as with kubelet.
    #[arg(long = "cluster-dns", global = true, value_name = "IP")]
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster's DNS domain: pods' search path and FQDNs.
    #[arg(
        long,
        global = true,
        value_name = "DOMAIN",
        default_value = "cluster.local"
    )]
    pub cluster_domain: String,
}

impl NetworkArgs {
    pub fn networking(&self, layout: &NodeLayout) -> anyhow::Result<Arc<PodNetworking>> {
        let dns = ClusterDns {
            servers: self.cluster_dns.clone(),
            domain: self.cluster_domain.clone(),
        };
        let cni = match self.pod_network {
            PodNetworkMode::None => None,
            PodNetworkMode::Cni => {
                let cidrs = self
                    .pod_cidrs
                    .iter()
                    .map(|c| PodCidr::parse(c).map_err(|e| anyhow::anyhow!("--pod-cidr {c}: {e}")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let mut setup = CniSetup::new(layout, self.cni_conf_dir.clone(), cidrs);
                if !self.cni_bin_dirs.is_empty() {
                    setup.bin_dirs = self.cni_bin_dirs.clone();
                }
                Some(setup)
            }
        };
        Ok(Arc::new(PodNetworking { cni, dns }))
    }
}
