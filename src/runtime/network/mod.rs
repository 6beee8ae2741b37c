//! Pod networking through CNI, as libcni and kubelet do it, with the real plugins.
//!
//! Pure parts: `config` (finding and validating the conf file), `identity` (attachment ids,
//! `CNI_ARGS`), `runtime_config` (port mappings, bandwidth, DNS from a pod), `plugin_config`
//! (each plugin's stdin), `result` (results and pod IPs), `version`. Effectful edges: `exec`
//! (one plugin process), `netns` (work inside a namespace), `cache` (the durable attachment
//! records), `counters` (interface counters of a namespace).

pub mod cache;
pub mod config;
pub mod counters;
pub mod error;
pub mod exec;
pub mod identity;
pub mod netns;
pub mod plugin_config;
pub mod result;
pub mod runtime_config;
pub mod version;

pub use config::{find_config_file, load_config_file, NetworkConfig};
pub use counters::{interface_counters, InterfaceCounters};
pub use error::NetworkError;
pub use identity::{AttachmentId, PodRef, POD_IFNAME};
pub use runtime_config::RuntimeConfig;
