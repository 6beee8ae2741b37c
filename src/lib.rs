//! layerlet: a Kubernetes-style node agent. Pod YAML in; containers out, each its image's
//! shared read-only layers plus one writable copy-on-write layer on overlayfs.

pub mod agent;
pub mod http;
pub mod image;
pub mod kubelet;
pub mod layout;
pub mod meta;
pub mod metrics;
pub mod phases;
pub mod pod;
pub mod reference;
pub mod runtime;
pub mod source;
pub mod sys;
pub mod time;
