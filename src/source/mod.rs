//! Desired state: where pods come from. Today the static-pod manifest directory.

pub mod api_merge;
pub mod backoff;
pub mod host_ports;
pub mod kube;
pub mod kube_events;
pub mod manifests;
pub mod node;
pub mod status_patch;
