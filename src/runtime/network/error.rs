//! The one error type of the network module: every variant names the file, plugin or
//! attachment it is about, and what to do where there is something to do.

use std::path::PathBuf;
use std::time::Duration;

use crate::sys::fs::FsError;

/// Which plugin call failed: the plugin, the CNI command and the config file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSite {
    pub plugin: String,
    pub command: &'static str,
    pub config: PathBuf,
}

impl std::fmt::Display for PluginSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CNI plugin {:?} ({} with {})",
            self.plugin,
            self.command,
            self.config.display()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("the pod network is not ready: the node waits to read its spec.podCIDRs from the API server (it registered moments ago, or the API server has not answered since the agent started); the pod is attached once the Node is read")]
    AwaitingNodePodCidrs,
    #[error("read CNI config dir {}: {source}", dir.display())]
    ConfigDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read CNI config {}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI config {}: not valid JSON: {source}", path.display())]
    ConfigSyntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("CNI config {}: {field}: {reason}", path.display())]
    ConfigField {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error(
        "CNI plugin {plugin:?} named in {} is in none of the plugin dirs {dirs:?}: install it \
         (Debian: containernetworking-plugins) or point --cni-bin-dir at it",
        config.display()
    )]
    PluginMissing {
        plugin: String,
        config: PathBuf,
        dirs: Vec<PathBuf>,
    },
    #[error("{site}: start {}: {source}", binary.display())]
    PluginSpawn {
        site: PluginSite,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{site} failed: code {code}: {msg}{}", details_suffix(details))]
    PluginFailed {
        site: PluginSite,
        code: u64,
        msg: String,
        details: String,
    },
    #[error("{site} exited with {status} and no CNI error on stdout; stderr: {stderr:?}")]
    PluginExit {
        site: PluginSite,
        status: String,
        stderr: String,
    },
    #[error("{site} did not finish within {timeout:?} and was killed; stderr: {stderr:?}")]
    PluginTimeout {
        site: PluginSite,
        timeout: Duration,
        stderr: String,
    },
    #[error("{site} answered something that is not a CNI result: {reason}")]
    PluginOutput { site: PluginSite, reason: String },
    #[error("CNI attachment {id}: none is recorded (was it added?)")]
    NotAttached { id: String },
    #[error("{field} {value:?}: {reason}")]
    InvalidId {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{field} {value:?}: {reason}")]
    InvalidInput {
        field: String,
        value: String,
        reason: String,
    },
    #[error("CNI attachment record {}: {source}", path.display())]
    CacheRecord {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("network namespace {}: {source}", path.display())]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fs(#[from] FsError),
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}
