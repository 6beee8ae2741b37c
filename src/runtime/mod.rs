//! Containers: rootfs, process plan, logs, lifecycle. The pieces are pure where they can be
//! and the effectful edges stay thin.

pub mod bpf_devices;
pub mod cgroup;
pub mod container;
pub mod exec;
pub mod init;
pub mod logs;
pub mod monitor;
pub mod node;
pub mod pods;
pub mod probe;
pub mod process;
pub mod projected;
pub mod records;
pub mod rootfs;
pub mod sandbox;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod state;
pub mod termination;
pub mod volumes;
