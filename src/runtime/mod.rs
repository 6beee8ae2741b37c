//! Containers: rootfs, process plan, logs, lifecycle. The pieces are pure where they can be
//! and the effectful edges stay thin.

pub mod logs;
pub mod process;
pub mod rootfs;
pub mod spec;
pub mod state;
