//! Containers on the node: what each one is made of and how it runs.
//!
//! - `spec/`: the pure plan of one container (process, mounts, environment, user) from the
//!   pod spec and the image config; written to the container's run directory.
//! - `process/`: the processes layerlet runs for a container: init (enters the namespaces,
//!   pivots into the rootfs, execs), the monitor (owns the exit code and the logs), exec, and
//!   the effectful edge of probes.
//! - `isolation/`: what confines a container: security context, seccomp, cgroups and the
//!   device filter.
//! - `storage/`: what a container sees as files: the overlay rootfs, volumes, projected
//!   (configMap, secret, downwardAPI) volumes, the termination-message file.
//! - `logs/`: CRI log files, written by the monitor and read by `logs` and status.
//! - `network/`: pod networking through CNI plugins: config, ADD/DEL chains, the
//!   attachment records, the default bridge network, interface counters.
//! - `container.rs`, `pods.rs`, `sandbox.rs`, `records.rs`, `state.rs`: the lifecycle of
//!   containers and pods, their records and their state machine.

pub mod container;
pub mod isolation;
pub mod logs;
pub mod network;
pub mod node;
pub mod pods;
pub mod process;
pub mod records;
pub mod sandbox;
pub mod spec;
pub mod state;
pub mod storage;
