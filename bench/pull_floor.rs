//! The least work any pull of these gzip layers must do, whatever it writes: read each blob,
//! hash it (its digest), inflate it and hash the tar (its diff_id), one thread per layer as
//! layerlet pulls layers, from the page cache, writing nothing. bench/pull_real.sh prints it
//! beside the pulls: no pull of an image can take less than this on the machine.
//!
//! Usage: pull_floor BLOB...   (prints "SECONDS LAYER_BYTES_UNPACKED" for all of them)

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};

fn verify(path: &PathBuf) -> std::io::Result<u64> {
    let data = std::fs::read(path)?;
    let blob_digest = Sha256::digest(&data);
    let mut tar = flate2::read::MultiGzDecoder::new(&data[..]);
    let mut diff_id = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut unpacked = 0u64;
    loop {
        let n = tar.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        diff_id.update(&buffer[..n]);
        unpacked += n as u64;
    }
    // Kept alive to the end so neither hash can be optimised away.
    std::hint::black_box((blob_digest, diff_id.finalize()));
    Ok(unpacked)
}

fn main() -> std::process::ExitCode {
    let blobs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if blobs.is_empty() {
        eprintln!("usage: pull_floor BLOB... (gzip layer blobs)");
        return std::process::ExitCode::from(2);
    }
    // Read once first: the floor is CPU work, not the disk.
    for blob in &blobs {
        if let Err(e) = std::fs::read(blob) {
            eprintln!("pull_floor: {}: {e}", blob.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    let start = Instant::now();
    let workers: Vec<_> = blobs
        .into_iter()
        .map(|blob| std::thread::spawn(move || verify(&blob).map_err(|e| (blob, e))))
        .collect();
    let mut unpacked = 0;
    for worker in workers {
        match worker.join() {
            Ok(Ok(n)) => unpacked += n,
            Ok(Err((blob, e))) => {
                eprintln!("pull_floor: {}: {e}", blob.display());
                return std::process::ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("pull_floor: a worker panicked");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    println!("{:.3} {unpacked}", start.elapsed().as_secs_f64());
    std::process::ExitCode::SUCCESS
}
