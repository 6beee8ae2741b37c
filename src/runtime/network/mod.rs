//! Pod networking through CNI, as libcni and kubelet do it, with the real plugins.
//!
//! Pure parts: `config` (finding and validating the conf file), `identity` (attachment ids,
//! `CNI_ARGS`), `runtime_config` (port mappings, bandwidth, DNS from a pod), `plugin_config`
//! (each plugin's stdin), `result` (results and pod IPs), `version`, and the default
//! network's conflist in `default_network`. Effectful edges: `exec` (one plugin process),
//! `netns` (work inside a namespace), `cache` (the durable attachment records), `counters`
//! (interface counters of a namespace). `attach` runs chains (ADD, DEL, CHECK) and `sweep`
//! cleans up after pods that are gone (and runs CNI 1.1's GC and STATUS).
//!
//! All calls block (they wait for plugin processes): async callers use `spawn_blocking`.

pub mod attach;
pub mod cache;
pub mod config;
pub mod counters;
pub mod default_network;
pub mod error;
pub mod exec;
pub mod identity;
pub mod masquerade;
pub mod netns;
pub mod plugin_config;
pub mod pod;
pub mod result;
pub mod runtime_config;
pub mod subnets;
pub mod sweep;
pub mod version;

pub use attach::{Attached, Attachment, Cni, CniOptions, DEFAULT_BIN_DIRS, DEFAULT_PLUGIN_TIMEOUT};
pub use config::{find_config_file, load_config_file, NetworkConfig};
pub use counters::{interface_counters, InterfaceCounters};
pub use default_network::{choose_network, PodCidr, DEFAULT_POD_CIDR};
pub use error::NetworkError;
pub use identity::{AttachmentId, PodRef, POD_IFNAME};
pub use pod::{attachment_for, CniSetup, PodNetworking};
pub use runtime_config::RuntimeConfig;
pub use sweep::SweepReport;
