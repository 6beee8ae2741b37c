//! Hidden helper entry points that layerlet re-executes itself as: `__monitor` (one per
//! container), `__sandbox` (pins a pod's namespaces) and `__mount-base` (the agent's mount
//! base). Never forked from a threaded process.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use layerlet::runtime::{
    process::{monitor, mount_base},
    sandbox,
};

pub fn dispatch(argv: &[OsString]) -> Option<ExitCode> {
    let command = argv.get(1)?.to_str()?;
    if command.starts_with("__") {
        // Helpers may be seen by host-PID containers: keep their /proc files closed.
        layerlet::sys::exe::make_non_dumpable();
    }
    match (command, &argv[2..]) {
        ("__monitor", [run_dir]) => Some(monitor(Path::new(run_dir))),
        ("__sandbox", [dir, hostname, kinds]) => Some(sandbox::helper_main(dir, hostname, kinds)),
        ("__mount-base", roots) => Some(mount_base::helper_main(roots)),
        _ => None,
    }
}

fn monitor(run_dir: &Path) -> ExitCode {
    ExitCode::from(monitor::detached_main(run_dir))
}
