#!/usr/bin/env bash
# Cost of one exec probe (issue 7): an exec probe or hook is `layerlet exec ID -- CMD`,
# re-executed by the agent in a process group of its own. This times N sequential runs of
# exactly that command against a running busybox pod (`true` as the probe command) and
# prints median/p90/min/max wall milliseconds. httpGet and tcpSocket probes run inside the
# agent (a thread that joins the pod's network namespace) and are not timed here.
#
# Environment:
#   N=100          timed runs
#   LAYERLET=PATH  binary to use (default: target/release/layerlet, built unless NO_BUILD=1)
#   NO_BUILD=1     do not run cargo build
set -euo pipefail
# Pods keep loopback only: no bridge or pod address in this machine's namespace.
export LAYERLET_POD_NETWORK=${LAYERLET_POD_NETWORK:-none}
REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-100}
if [[ -z "${LAYERLET:-}" ]]; then
    [[ -n "${NO_BUILD:-}" ]] || cargo build --release --manifest-path "$REPO_DIR/Cargo.toml" >&2
    LAYERLET="$REPO_DIR/target/release/layerlet"
fi
BASE=$(mktemp -d "${TMPDIR:-/tmp}/layerlet-probe-bench.XXXXXX")
ll() { "$LAYERLET" --root "$BASE/root" --run-root "$BASE/run" "$@"; }
cleanup() {
    ll rm -t 0 probe-bench >/dev/null 2>&1 || true
    rm -rf "$BASE"
}
trap cleanup EXIT
python3 "$REPO_DIR/scripts/make_image.py" -q --out "$BASE/img" --ref example/busybox:1 --busybox
ll image import "$BASE/img" >/dev/null
cat >"$BASE/pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: probe-bench}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: app, image: example/busybox:1, imagePullPolicy: Never, command: [sleep, "3600"]}
YAML
ll run --detach -f "$BASE/pod.yaml" >/dev/null
ll exec probe-bench/app -- true # warm-up
for _ in $(seq "$N"); do
    start=$(date +%s%N)
    ll exec probe-bench/app -- true
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
done | python3 -c '
import statistics, sys
us = sorted(int(l) for l in sys.stdin)
ms = [u / 1000 for u in us]
p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
print(f"exec probe (layerlet exec ID -- true), {len(ms)} runs: median {statistics.median(ms):.2f} ms, p90 {p90:.2f} ms, min {ms[0]:.2f} ms, max {ms[-1]:.2f} ms")
'
