//! Shared support code for layerlet's integration tests.
//!
//! Every test binary includes this with `mod support;`. Not every binary uses every item, so
//! dead-code and unused-import lints are silenced for the whole module tree.
//!
//! - [`registry`]: a real `docker-registry` (distribution v2) process on a loopback port.
//! - [`layer`]: in-memory tar layer building, including hostile entries.
//! - [`image`]: image configs/manifests, pushing to a registry, OCI layouts and archives.
//! - [`proxy`]: a TCP proxy that cuts blob downloads short, to test resumption.
//! - [`http`]: a tiny raw HTTP/1.1 client for poking at servers without extra crates.
#![allow(dead_code, unused_imports)]

pub mod http;
pub mod image;
pub mod layer;
pub mod proxy;
pub mod registry;

pub use image::{
    block_on, push_image, push_image_with_auth, push_index, push_index_with, write_oci_archive,
    write_oci_layout, ImageSpec, IndexKind, PushedImage,
};
pub use layer::{Compression, Layer, LayerBuilder};
pub use proxy::DroppingProxy;
pub use registry::Registry;

/// `sha256:<hex>` of `data`, the digest form used throughout OCI.
pub fn sha256_digest(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Binds port 0 on 127.0.0.1, reads the port the kernel chose and releases it.
///
/// There is a small window in which another process could take the port before the caller
/// binds it; on a test machine that is acceptable.
pub fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("free_port: binding 127.0.0.1:0 failed");
    listener
        .local_addr()
        .expect("free_port: reading the bound address failed")
        .port()
}

/// Incompressible bytes (xorshift), so compressed blobs are as large as their content.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
