//! Desired state: where pods come from. Today the static-pod manifest directory.

pub mod manifests;
pub mod api_merge;
pub mod kube;
