//! What confines a container: its security context (users, capabilities, no_new_privs),
//! seccomp, cgroups and the device allow-list enforced by v1 `devices` or a v2 eBPF filter.

pub mod cgroup;
pub mod device_filter;
pub mod devices;
pub mod seccomp;
pub mod security;
