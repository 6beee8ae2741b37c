//! Hidden helper entry points that layerlet re-executes itself as: `__monitor` (one per
//! container) and `__sandbox` (pins a pod's namespaces). Never forked from a threaded process.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use layerlet::runtime::{process::monitor, sandbox};
use nix::unistd::{fork, setsid, ForkResult};

pub fn dispatch(argv: &[OsString]) -> Option<ExitCode> {
    let command = argv.get(1)?.to_str()?;
    if command.starts_with("__") {
        // Helpers may be seen by host-PID containers: keep their /proc files closed.
        layerlet::sys::exe::make_non_dumpable();
    }
    match (command, &argv[2..]) {
        ("__monitor", [run_dir]) => Some(monitor(Path::new(run_dir))),
        ("__sandbox", [dir, hostname, kinds]) => {
            let result = sandbox::sandbox_main(
                Path::new(dir),
                &hostname.to_string_lossy(),
                &kinds.to_string_lossy(),
            );
            Some(match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            })
        }
        _ => None,
    }
}

fn monitor(run_dir: &Path) -> ExitCode {
    // A monitor lives as long as its container: it must not keep whatever its caller left
    // open (a pipe the caller reads would never close). 0-2 are set up by the caller.
    // SAFETY: closes descriptors above stderr; nothing in this process uses them.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // A session of its own, then a fork whose parent exits at once: the caller reaps that
    // parent immediately and the monitor lives on, reparented, whatever happens to the caller.
    let _ = setsid();
    // SAFETY: this process is single-threaded (nothing has started a thread yet).
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => ExitCode::SUCCESS,
        Ok(ForkResult::Child) => ExitCode::from(monitor::monitor_main(run_dir) as u8),
        Err(e) => {
            println!("failed fork the monitor: {e}");
            ExitCode::from(1)
        }
    }
}
