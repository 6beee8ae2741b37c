#!/usr/bin/env bash
# Installs what `cargo build` needs beyond rustup's toolchain on a minimal Debian 12: rustup
# brings no C toolchain, and build scripts (proc-macro2, quote), the bundled SQLite, zstd and
# aws-lc (rustls' crypto) compile C code with `cc`.
#   gcc, libc6-dev   the C compiler, linker driver and libc headers the build scripts call
#   ca-certificates  lets cargo fetch crates from crates.io over HTTPS
set -euo pipefail
packages=(gcc libc6-dev ca-certificates)
source "$(dirname "${BASH_SOURCE[0]}")/apt-missing.sh"
install_missing "${packages[@]}"
