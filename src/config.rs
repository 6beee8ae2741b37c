//! Paths and defaults shared by every command, in one place.

use std::path::PathBuf;

pub const DEFAULT_ROOT: &str = "/var/lib/layerlet";
pub const DEFAULT_RUN_ROOT: &str = "/run/layerlet";

/// Where layerlet keeps its data (`--root`) and its runtime state (`--run-root`).
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub run_root: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            root: PathBuf::from(DEFAULT_ROOT),
            run_root: PathBuf::from(DEFAULT_RUN_ROOT),
        }
    }
}
