//! `layerlet-monitor __monitor RUN_DIR`: the per-container monitor as a binary of its own. It links only
//! the monitor's code and is built without PIE (see build.rs), so what the loader relocates
//! in each process is small and the rest of its pages are shared by every monitor: the
//! weight of a container is what its monitor writes, not a copy of layerlet's relocations.
//! It also runs `__sandbox DIR HOSTNAME KINDS`, which pins a pod's namespaces: a small
//! binary execs in about half the time of layerlet's, and each pod start runs it once.
//! The agent falls back to `layerlet __monitor` / `__sandbox` where this binary is not
//! installed.

use std::path::Path;
use std::process::ExitCode;

use layerlet::runtime::{process::monitor, sandbox};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        // The same arguments as the helper it replaces, so tools that find monitors by
        // their command line (`__monitor RUN_DIR`) find these too.
        [command, run_dir] if command == "__monitor" => {
            ExitCode::from(monitor::detached_main(Path::new(run_dir)))
        }
        [command, dir, hostname, kinds] if command == "__sandbox" => {
            layerlet::sys::exe::make_non_dumpable();
            sandbox::helper_main(dir, hostname, kinds)
        }
        // Which build this is; layerlet finds the same stamp in the file before using it.
        [flag] if flag == "--source-stamp" => {
            println!("{}", layerlet::sys::exe::SOURCE_STAMP);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: layerlet-monitor __monitor RUN_DIR | __sandbox DIR HOSTNAME KINDS (layerlet runs these itself)"
            );
            ExitCode::from(2)
        }
    }
}
