//! The processes of a container: init (namespaces, pivot_root, exec), the monitor that owns
//! its exit code and logs, `exec` into a running container, and probe handlers. Each is a
//! re-exec of the layerlet binary, never a fork of the threaded agent.

pub mod exec;
pub mod init;
pub mod monitor;
pub mod mount_base;
pub mod probe;
