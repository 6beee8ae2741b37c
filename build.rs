//! Two jobs for the binaries:
//! - The monitor binary is linked without PIE: a PIE's relocated data (about 0.6 MiB for
//!   layerlet's code) is a private copy in every process, while a fixed-address binary's stays
//!   shared with the file. layerlet itself keeps PIE (and with it ASLR) for everything that
//!   faces the network.
//! - Both carry a stamp of the sources they were built from, so layerlet runs only a monitor
//!   of its own build (see `sys::exe::sealed_monitor`).

use std::path::{Path, PathBuf};

/// FNV-1a, 64 bits: stable across toolchains, unlike std's hasher.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *hash ^= u64::from(*b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    println!("cargo:rustc-link-arg-bin=layerlet-monitor=-no-pie");
    let mut files = Vec::new();
    files_under(Path::new("src"), &mut files);
    files.extend(["Cargo.toml", "Cargo.lock", "build.rs"].map(PathBuf::from));
    files.sort();
    let mut stamp = 0xcbf2_9ce4_8422_2325_u64;
    for file in &files {
        fnv(&mut stamp, file.to_string_lossy().as_bytes());
        fnv(&mut stamp, &std::fs::read(file).unwrap_or_default());
    }
    println!("cargo:rustc-env=LAYERLET_SOURCE_STAMP={stamp:016x}");
    for watched in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={watched}");
    }
}
