#!/usr/bin/env bash
# Installs what `cargo build` needs beyond rustup's toolchain on a minimal Debian 12: rustup
# brings no C toolchain, and build scripts (proc-macro2, quote), the bundled SQLite, zstd and
# aws-lc (rustls' crypto) compile C code with `cc`.
#   gcc, libc6-dev   the C compiler, linker driver and libc headers the build scripts call
#   ca-certificates  lets cargo fetch crates from crates.io over HTTPS
set -euo pipefail
packages=(gcc libc6-dev ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing build dependencies: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
