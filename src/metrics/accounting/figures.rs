//! What scrapes read: each container's figures and the sharing figures, published whole by
//! the accounting thread.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::metrics::eviction::Eviction;
use crate::metrics::network::PodNetwork;
use crate::metrics::sharing::Sharing;
use crate::metrics::walk::LayerUsage;

/// One container's figures as scrapes see them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerFigures {
    pub id: String,
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    /// The image reference as the pod names it.
    pub image: String,
    /// `/` + the cgroup path (cAdvisor's `id`).
    pub cgroup: String,
    pub usage: LayerUsage,
    /// Image VOLUME paths without a mount, in the order of `usage.volume_bytes`.
    pub unmounted_volumes: Vec<String>,
    pub log_bytes: u64,
    pub memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    /// `created`, `running` or `exited`.
    pub state: &'static str,
    pub started_unix: Option<f64>,
    pub restarts: u32,
    /// Whether this is the newest instance of its pod's container (restarts are its).
    pub latest: bool,
}

/// Everything a scrape shows of the accounting, refreshed by the thread.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub containers: Vec<ContainerFigures>,
    pub sharing: Sharing,
    pub evictions: Vec<Eviction>,
    /// Each networked pod's interfaces, by pod uid order.
    pub networks: Vec<PodNetwork>,
    /// The filesystem of the data root (cAdvisor's `device`).
    pub device: String,
    pub walks: u64,
    pub walk_seconds: f64,
    /// When the figures were last published.
    pub updated: Option<Instant>,
}

/// The figures, swapped whole by the thread; a scrape takes a reference and lets go.
#[derive(Debug, Default)]
pub struct Cache {
    figures: Mutex<Arc<Figures>>,
}

impl Cache {
    pub fn get(&self) -> Arc<Figures> {
        self.figures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn set(&self, figures: Figures) {
        *self.figures.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(figures);
    }

    /// Pods to evict for their ephemeral storage.
    pub fn evictions(&self) -> Vec<Eviction> {
        self.get().evictions.clone()
    }
}
