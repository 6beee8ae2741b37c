#!/usr/bin/env bash
# ConfigMap update latency through the agent: from the ConfigMap's file being renamed into
# the manifest directory to the new value readable in a running pod's configMap volume.
#
# Builds layerlet (release) unless LAYERLET is set, makes a busybox OCI layout with
# scripts/make_image.py, imports it into a fresh data root, starts `layerlet agent` on a
# fresh manifest directory with one ConfigMap and one pod mounting it, and waits until the
# pod runs. Then N times: write the ConfigMap with a new value (a dotfile renamed over the
# real name, as editors and `kubectl cp` do) and poll the file as the container sees it
# (the volume directory on the host is the one bind-mounted into the container, so the
# same inode) until it holds the new value. Prints p50/p99/max in milliseconds and checks
# that the container (exec) reads the last value. Removes everything at the end.
#
# Environment:
#   N=50            updates
#   LAYERLET=PATH   use this binary instead of building target/release/layerlet
set -euo pipefail
# Pods keep loopback only: no bridge or pod address in this machine's namespace.
export LAYERLET_POD_NETWORK=${LAYERLET_POD_NETWORK:-none}
cd "$(dirname "$0")/.."

N=${N:-50}
if [ -z "${LAYERLET:-}" ]; then
  cargo build --release --quiet
  LAYERLET=target/release/layerlet
fi
work=$(mktemp -d /tmp/layerlet-cmbench.XXXXXX)
L=("$LAYERLET" --root "$work/root" --run-root "$work/run")
agent_pid=
cleanup() {
  set +e
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  "${L[@]}" rm -t 0 default/cmbench >/dev/null 2>&1
  if grep -q " $work/" /proc/self/mountinfo; then
    echo "LEFTOVER mounts under $work" >&2
  fi
  rm -rf "$work"
  return 0
}
trap cleanup EXIT

python3 scripts/make_image.py --out "$work/img" --ref example/cmbench:1 --busybox \
  --compression none -q >/dev/null
"${L[@]}" image import "$work/img" >/dev/null
mkdir -p "$work/manifests"
write_cm() {
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cmbench}\ndata: {value: "%s"}\n' "$1" \
    >"$work/manifests/.cm.yaml.tmp"
  mv "$work/manifests/.cm.yaml.tmp" "$work/manifests/cm.yaml"
}
write_cm start
cat >"$work/manifests/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: cmbench}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: example/cmbench:1
    imagePullPolicy: Never
    command: [sleep, "3600"]
    volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes:
  - {name: cfg, configMap: {name: cmbench}}
YAML
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${L[@]}" agent --manifests "$work/manifests" --listen "127.0.0.1:$port" >"$work/agent.log" 2>&1 &
agent_pid=$!

python3 - "$work" "$N" "$port" <<'PY'
import json, os, sys, time, urllib.request

work, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.time() + 60
uid = None
while time.time() < deadline:
    try:
        pods = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/pods"))
        for p in pods["items"]:
            st = p["status"]["containerStatuses"]
            if st and "running" in st[0]["state"]:
                uid = p["metadata"]["uid"]
    except Exception:
        pass
    if uid:
        break
    time.sleep(0.05)
if not uid:
    sys.exit("the pod did not run within 60 s; see " + work + "/agent.log")
path = os.path.join(work, "root", "pods", uid, "volumes", "cfg", "value")
manifests = os.path.join(work, "manifests")
times = []
for i in range(n):
    value = f"v{i}"
    tmp = os.path.join(manifests, ".cm.yaml.tmp")
    with open(tmp, "w") as f:
        f.write(f'apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cmbench}}\ndata: {{value: "{value}"}}\n')
    t0 = time.perf_counter()
    os.rename(tmp, os.path.join(manifests, "cm.yaml"))
    while True:
        try:
            with open(path) as f:
                if f.read() == value:
                    break
        except OSError:
            pass
        if time.perf_counter() - t0 > 30:
            sys.exit(f"update {i} not seen within 30 s")
        time.sleep(0.0002)
    times.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.05)
times.sort()
pct = lambda q: times[min(len(times) - 1, int(round(q * (len(times) - 1))))]
print(f"configmap update -> file in the pod's volume, {n} updates: "
      f"p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {times[-1]:.1f} ms")
PY
seen=$("${L[@]}" exec cmbench -- cat /cfg/value)
[ "$seen" = "v$((N - 1))" ] || { echo "the container reads $seen, not v$((N - 1))" >&2; exit 1; }
echo "the container reads the last value ($seen)"
