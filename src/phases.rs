//! Phase timings for the benchmarks and for slow-start triage. Off unless the environment
//! variable `LAYERLET_PHASE_TIMES` names a file; then every timed phase appends one line
//! `{"phase":"NAME","ms":MS}` to it (one append per line, so the phases of concurrent pods
//! never mix). bench/run.sh and bench/agent.sh print the medians beside the totals.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Instant;

const ENV: &str = "LAYERLET_PHASE_TIMES";

fn sink() -> Option<&'static std::fs::File> {
    static SINK: OnceLock<Option<std::fs::File>> = OnceLock::new();
    SINK.get_or_init(|| {
        let path = std::env::var_os(ENV)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    })
    .as_ref()
}

/// Runs `work` and records how long it took as `phase`.
pub fn timed<T>(phase: &'static str, work: impl FnOnce() -> T) -> T {
    if sink().is_none() {
        return work();
    }
    let started = Instant::now();
    let out = work();
    since(phase, started);
    out
}

/// Records the time since `started` as `phase` (a phase that spans a loop).
pub fn since(phase: &'static str, started: Instant) {
    if let Some(mut file) = sink() {
        let ms = started.elapsed().as_secs_f64() * 1e3;
        // Phase names are this crate's constants: nothing in them needs escaping.
        let _ = file.write_all(format!("{{\"phase\":\"{phase}\",\"ms\":{ms:.3}}}\n").as_bytes());
    }
}
