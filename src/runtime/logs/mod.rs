//! Container logs in the CRI format that kubelet and `kubectl logs` read:
//! `<RFC3339Nano> <stdout|stderr> <F|P> <text>\n`, one record per line.
//!
//! A line longer than [`MAX_LINE_SIZE`] (containerd's default) is cut into `P` (partial)
//! records followed by one `F` (full) record, so a reader never needs unbounded memory per
//! record. The file rotates by size (`name.log` -> `name.log.1` -> ...) and a record is never
//! split across two files.

mod reader;
mod record;
mod writer;

#[cfg(test)]
mod tests;

pub use reader::*;
pub use record::*;
pub use writer::*;
