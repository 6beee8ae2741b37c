//! Thin wrappers over the system calls the rest of layerlet needs: durable file writes, locks,
//! size walks and mounts. Everything above this module deals in paths and values.

pub mod bpf;
pub mod clone;
pub mod exe;
pub mod fs;
pub mod lock;
pub mod mount;
mod mount_table;
pub mod mount_tree;
pub mod process;
