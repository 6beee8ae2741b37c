//! The node agent: watches pod YAML, reconciles it with what runs, reports status.
//!
//! A pure planner ([`plan`]) decides; an [`executor`] carries its steps out, for the agent's
//! reconcile loop ([`daemon`], [`reconcile`]) as for a foreground `layerlet run`
//! ([`foreground`]), so both follow one pull policy, one restart policy and one backoff.

pub mod agent_host;
pub mod api;
pub mod config;
pub mod context;
pub mod daemon;
pub mod endpoints;
pub mod error;
pub mod eviction;
pub mod executor;
pub mod foreground;
pub mod image_gc;
mod kubelet;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod prober;
pub mod publish;
pub mod reconcile;
pub mod scan_report;
pub mod settings;
pub mod shared;
mod start_slots;
pub mod status;

pub use daemon::run;
pub use error::AgentError;
pub use settings::{AgentConfig, ImageGcConfig};
pub use shared::{Event, EventObject, Shared};
