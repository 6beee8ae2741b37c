//! Pod networking through CNI, as libcni and kubelet do it, with the real plugins.
//!
//! Pure parts: `config` (finding and validating the conf file), `identity` (attachment ids,
//! `CNI_ARGS`), `runtime_config` (port mappings, bandwidth, DNS from a pod), `plugin_config`
//! (each plugin's stdin), `result` (results and pod IPs), `version`.

pub mod config;
pub mod error;
pub mod identity;
pub mod plugin_config;
pub mod result;
pub mod runtime_config;
pub mod version;

pub use config::{find_config_file, load_config_file, NetworkConfig};
pub use error::NetworkError;
pub use identity::{AttachmentId, PodRef, POD_IFNAME};
pub use runtime_config::RuntimeConfig;
