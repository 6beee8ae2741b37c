#!/usr/bin/env bash
# Cost and freshness of layerlet's CoW metrics (issue 8, point 6).
#
# Starts a release `layerlet agent` on a fresh data root with PODS pods (default 100), each one
# container that writes FILES files (default 1000) into /d of its writable layer and sleeps.
# Once every container is accounted, it prints:
#
#  1. scrape latency of /metrics: SCRAPES (default 1000) GETs over ONE persistent HTTP/1.1
#     connection (python3 http.client, keep-alive), p50/p99/max in ms, and the body size;
#  2. staleness: PROBES (default 10) times, a 4 KiB file is written into a container with
#     `layerlet exec`; the time from the exec returning (the write is done) to the figure in
#     /metrics changing, polled every 10 ms; median and max;
#  3. accounting CPU while idle (no scrapes) over IDLE_SECONDS (default 30): the CPU of the
#     agent's accounting threads (layerlet-accounting, layerlet-big-walks), of the whole agent
#     and of all monitors, from /proc/PID[/task/TID]/stat utime+stime deltas, as % of one core;
#  4. beside it, the same figure computed by walking: wall time of one `du -s` over the same
#     PODS upper directories, and `podman ps --size` over PODS podman containers doing the
#     same writes (when podman is installed and PODMAN=1, the default; private store).
#
# Targets: scrape p99 <= 10 ms; accounting <= 2% of one core; staleness <= 5 s.
#
# With BIG=N (e.g. 1000000), one more container then creates N files and keeps rewriting one
# file every second, and 1-3 are measured again: its walks run on the big-walk worker. The
# files are all in one directory, or with BIG_DIRS=D spread over D subdirectories (the
# rewritten file stays at the top, so only that small directory is re-read).
#
# Environment: PODS, FILES, SCRAPES, PROBES, IDLE_SECONDS, BIG, BIG_DIRS, BIG_SETTLE, PODMAN=0|1, LAYERLET=PATH (use this
# binary), NO_BUILD=1 (use target/release/layerlet as it is), BENCH_TMP=DIR, KEEP=1.
# Needs: root, python3.

set -Eeuo pipefail

PODS=${PODS:-100}
FILES=${FILES:-1000}
SCRAPES=${SCRAPES:-1000}
PROBES=${PROBES:-10}
IDLE_SECONDS=${IDLE_SECONDS:-30}
PODMAN=${PODMAN:-1}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REF=example/busybox:1

die() { echo "metrics.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }
# shellcheck source=bench/util.sh
source "$REPO_DIR/bench/util.sh"

[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, overlay mounts)"
command -v python3 >/dev/null || die "python3 is required"

find_layerlet

BASE=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/layerlet-metrics-bench.XXXXXX")
BASE=$(realpath "$BASE")
LL_ROOT=$BASE/root
LL_RUN=$BASE/run
MANIFESTS=$BASE/manifests
PM_DIR=$BASE/podman
HELPER=$BASE/helper.py
AGENT_PID=""
mkdir -p "$BASE/bin" "$LL_ROOT" "$LL_RUN" "$MANIFESTS"
cp "$LAYERLET" "$BASE/bin/layerlet"
LL=$BASE/bin/layerlet
# Monitors run from a read-only copy keyed by the binary's dev-ino-size-mtime (src/sys/exe.rs).
SEALED=/run/layerlet-exe/$(stat -c '%d %i %s %Y' "$LL" | awk '{ printf "%x-%x-%x-%x", $1, $2, $3, $4 }')/layerlet

ll() { "$LL" --root "$LL_ROOT" --run-root "$LL_RUN" "$@"; }
pm() {
    TMPDIR=$PM_DIR/tmp podman --root "$PM_DIR/root" --runroot "$PM_DIR/runroot" \
        --tmpdir "$PM_DIR/tmp" --network-config-dir "$PM_DIR/net" \
        --storage-driver overlay --events-backend none --cgroup-manager cgroupfs "$@"
}

cat >"$HELPER" <<'EOF'
import http.client, os, statistics, subprocess, sys, time

def scrape(conn):
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, r.status
    return body.decode()

def samples(text, name):
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) + 1:].rsplit("} ", 1)
            cid = labels.split('container_id="', 1)[1].split('"', 1)[0]
            out[cid] = float(value)
    return out

def connect(addr):
    host, port = addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)

def wait_accounted(addr, pods, files):
    conn, deadline = connect(addr), time.time() + 900
    while time.time() < deadline:
        inodes = samples(scrape(conn), "layerlet_container_cow_inodes")
        done = sum(1 for v in inodes.values() if v >= files + 2)
        if done >= pods:
            return
        time.sleep(1)
    sys.exit(f"only {done} of {pods} containers accounted with {files} files")

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def latency(addr, n):
    conn = connect(addr)
    scrape(conn)  # warm the connection
    times, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        size = len(scrape(conn))
        times.append((time.perf_counter() - t) * 1000)
    print(f"scrape latency ({n} GETs, one keep-alive connection, {size} bytes): "
          f"p50 {pct(times, 50):.2f} ms  p99 {pct(times, 99):.2f} ms  max {max(times):.2f} ms")

def staleness(addr, ll, probes):
    conn = connect(addr)
    cow = samples(scrape(conn), "layerlet_container_cow_bytes")
    pods = sorted(p for p in ll_pods(ll) if not p.endswith("/bench-big"))
    delays = []
    for k in range(probes):
        pod = pods[(k * 7) % len(pods)]
        cid = pod_container(ll, pod)
        before = samples(scrape(conn), "layerlet_container_cow_bytes")[cid]
        subprocess.run(ll + ["exec", pod + "/app", "--", "sh", "-c",
                             f"head -c 4096 /dev/zero > /probe-{time.time_ns()}"], check=True)
        t = time.perf_counter()
        while samples(scrape(conn), "layerlet_container_cow_bytes").get(cid) == before:
            if time.perf_counter() - t > 60:
                sys.exit(f"no change of {cid} within 60 s")
            time.sleep(0.01)
        delays.append(time.perf_counter() - t)
    print(f"staleness ({probes} writes through exec): median {statistics.median(delays):.2f} s  "
          f"max {max(delays):.2f} s")

def ll_pods(ll):
    import json
    rows = json.loads(subprocess.run(ll + ["--output", "json", "ps"], check=True,
                                     capture_output=True).stdout)
    return {r["namespace"] + "/" + r["pod"] for r in rows}

def pod_container(ll, pod):
    import json
    out = subprocess.run(ll + ["--output", "json", "inspect", pod + "/app"], check=True,
                         capture_output=True).stdout
    return json.loads(out)["Id"]

def ticks(path):
    try:
        s = open(path).read()
    except OSError:
        return 0
    f = s[s.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12])

def cpu(agent, exes, seconds):
    hz = os.sysconf("SC_CLK_TCK")
    def accounting_tids():
        out = []
        for tid in os.listdir(f"/proc/{agent}/task"):
            comm = open(f"/proc/{agent}/task/{tid}/comm").read().strip()
            if comm.startswith("layerlet-accoun") or comm.startswith("layerlet-big-wa"):
                out.append(tid)
        return out
    def monitors():
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != agent:
                try:
                    if os.readlink(f"/proc/{d}/exe") in exes:
                        out.append(d)
                except OSError:
                    pass
        return out
    tids, mons = accounting_tids(), monitors()
    def snap():
        return (sum(ticks(f"/proc/{agent}/task/{t}/stat") for t in tids),
                ticks(f"/proc/{agent}/stat"),
                sum(ticks(f"/proc/{m}/stat") for m in mons))
    a0, t0 = snap(), time.time()
    time.sleep(seconds)
    a1, t1 = snap(), time.time()
    share = lambda i: (a1[i] - a0[i]) / hz / (t1 - t0) * 100
    print(f"idle CPU over {t1 - t0:.0f} s, % of one core: accounting threads {share(0):.2f}%  "
          f"whole agent {share(1):.2f}%  {len(mons)} monitors together {share(2):.2f}%")

cmd = sys.argv[1]
if cmd == "wait":
    wait_accounted(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif cmd == "latency":
    latency(sys.argv[2], int(sys.argv[3]))
elif cmd == "stale":
    staleness(sys.argv[2], sys.argv[4:], int(sys.argv[3]))
elif cmd == "cpu":
    cpu(int(sys.argv[2]), set(sys.argv[4:]), float(sys.argv[3]))
EOF

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [[ -n $AGENT_PID ]] && kill -KILL "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
    local pod
    for pod in $(ll --output json ps -a 2>/dev/null | python3 -c '
import json, sys
try: rows = json.load(sys.stdin)
except Exception: rows = []
print(" ".join(sorted({r["namespace"] + "/" + r["pod"] for r in rows})))'); do
        timeout 60 "$LL" --root "$LL_ROOT" --run-root "$LL_RUN" rm -t 0 "$pod" >/dev/null 2>&1 \
            || echo "# layerlet rm $pod failed" >&2
    done
    if [[ -d $PM_DIR/root ]]; then
        timeout 300 env TMPDIR="$PM_DIR/tmp" podman --root "$PM_DIR/root" \
            --runroot "$PM_DIR/runroot" --tmpdir "$PM_DIR/tmp" --network-config-dir "$PM_DIR/net" \
            --storage-driver overlay --events-backend none --cgroup-manager cgroupfs \
            rm -f -a -t 0 >/dev/null 2>&1
    fi
    # This data root's cgroups (layerlet/<first 12 hex of sha256 of --root>/...), deepest first.
    local hash
    hash=$(printf '%s' "$LL_ROOT" | sha256sum | cut -c1-12)
    find /sys/fs/cgroup/*/layerlet/"$hash" -depth -type d -exec rmdir {} \; 2>/dev/null
    # Anything left under the temp dir: deepest mount first.
    awk -v b="$BASE/" 'index($5, b) == 1 { print length($5), $5 }' /proc/self/mountinfo \
        | sort -rn | cut -d' ' -f2- | while read -r m; do umount -l "$m" 2>/dev/null; done
    if [[ $SEALED == /run/layerlet-exe/*/layerlet ]]; then
        while awk -v m="$SEALED" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; do
            umount "$SEALED" 2>/dev/null || umount -l "$SEALED" 2>/dev/null || break
        done
        rm -rf "${SEALED%/layerlet}" "${SEALED%/layerlet}.lock"
    fi
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "# kept $BASE" >&2
    else
        rm -rf "$BASE"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "making and importing $REF"
python3 "$REPO_DIR/scripts/make_image.py" -q --out "$BASE/image" --ref "$REF" --busybox \
    || die "make_image.py failed"
ll image import "$BASE/image" >"$BASE/import.log" 2>&1 || { cat "$BASE/import.log" >&2; die "import failed"; }

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
# Not through ll(): $! must be the agent itself, not a subshell running it.
"$LL" --root "$LL_ROOT" --run-root "$LL_RUN" --log-level warn agent --manifests "$MANIFESTS" \
    --listen "$ADDR" >"$BASE/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 300); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://$ADDR/readyz')" 2>/dev/null && break
    sleep 0.1
done

SCRIPT="mkdir /d; i=0; while [ \$i -lt $FILES ]; do echo \$i > /d/f\$i; i=\$((i+1)); done; exec sleep 100000"
log "starting $PODS pods that each write $FILES files"
T0=$EPOCHREALTIME
for i in $(seq 1 "$PODS"); do
    cat >"$MANIFESTS/.p$i.tmp" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: bench-$i
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: $REF
    imagePullPolicy: Never
    command: ["sh", "-c", $(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$SCRIPT")]
YAML
    mv "$MANIFESTS/.p$i.tmp" "$MANIFESTS/p$i.yaml"
done
python3 "$HELPER" wait "$ADDR" "$PODS" "$FILES" || { tail -20 "$BASE/agent.log" >&2; die "containers not accounted"; }
log "all $PODS containers accounted after $(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
sleep 3  # let the start-up walks settle

echo "layerlet $("$LL" --version 2>/dev/null | awk '{ print $2 }'), $PODS containers x $FILES files, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HELPER" cpu "$AGENT_PID" "$IDLE_SECONDS" "$LL" "$SEALED"
python3 "$HELPER" latency "$ADDR" "$SCRAPES"
python3 "$HELPER" stale "$ADDR" "$PROBES" "$LL" --root "$LL_ROOT" --run-root "$LL_RUN"

if ((${BIG:-0} > 0)); then
    # One more container with BIG files that keeps writing (a tick file every second): its
    # walks run on the big-walk worker; the others' figures and the scrapes must not wait.
    log "a container with $BIG files that keeps writing"
    # BIG_DIRS=1: all in /big; more: spread over that many subdirectories of /big.
    BIG_DIRS=${BIG_DIRS:-1}
    if ((BIG_DIRS > 1)); then
        BIG_SCRIPT="mkdir /big; cd /big; for d in \$(seq 1 $BIG_DIRS); do mkdir \$d; (cd \$d; seq 1 $((BIG / BIG_DIRS)) | xargs touch); done; while true; do date > /big/tick; sleep 1; done"
    else
        BIG_SCRIPT="mkdir /big; cd /big; seq 1 $BIG | xargs touch; while true; do date > /big/tick; sleep 1; done"
    fi
    cat >"$MANIFESTS/.big.tmp" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: bench-big
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: $REF
    imagePullPolicy: Never
    command: ["sh", "-c", $(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$BIG_SCRIPT")]
YAML
    mv "$MANIFESTS/.big.tmp" "$MANIFESTS/big.yaml"
    python3 "$HELPER" wait "$ADDR" "$((PODS + 1))" "$FILES" >/dev/null
    python3 - "$ADDR" "$BIG" <<'PY'
import http.client, sys, time
host, port = sys.argv[1].rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))
deadline = time.time() + 900
while time.time() < deadline:
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    if any(l.startswith("layerlet_container_cow_inodes{") and 'pod="bench-big"' in l
           and float(l.rsplit(" ", 1)[1]) >= int(sys.argv[2]) for l in text.splitlines()):
        break
    time.sleep(1)
PY
    # BIG_SETTLE=S: wait S seconds more, so the creation's last events (and inotify queue
    # overflows, which force full re-reads) are behind the measurement.
    sleep "${BIG_SETTLE:-0}"
    echo "with one more container of $BIG files rewriting a file every second:"
    python3 "$HELPER" cpu "$AGENT_PID" "$IDLE_SECONDS" "$LL" "$SEALED"
    python3 "$HELPER" latency "$ADDR" "$SCRAPES"
    python3 "$HELPER" stale "$ADDR" "$PROBES" "$LL" --root "$LL_ROOT" --run-root "$LL_RUN"
    rm "$MANIFESTS/big.yaml"
    # Gone before anything below walks the upper directories.
    for _ in $(seq 1 600); do
        ll ps -a 2>/dev/null | grep -q bench-big || break
        sleep 0.5
    done
fi

UPPERS=("$LL_ROOT"/containers/*/upper)
T0=$EPOCHREALTIME
du -s "${UPPERS[@]}" >/dev/null
T1=$EPOCHREALTIME
DU_SB=$(du -sb "${UPPERS[@]}" | awk '{ s += $1 } END { print s }')
# layerlet's figures for the same containers (a container just removed may linger <= 2 s).
OURS=$(python3 - "$ADDR" "${UPPERS[@]}" <<'PY'
import os, sys, urllib.request
ids = {os.path.basename(os.path.dirname(u)) for u in sys.argv[2:]}
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics").read().decode()
total = 0
for line in text.splitlines():
    if line.startswith("layerlet_container_cow_bytes{"):
        cid = line.split('container_id="', 1)[1].split('"', 1)[0]
        if cid in ids:
            total += int(float(line.rsplit(" ", 1)[1]))
print(total)
PY
)
echo "du -s over the same ${#UPPERS[@]} upper dirs: $(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", (b - a) * 1000 }') ms per walk (du -sb total $DU_SB bytes; layerlet's sum ${OURS:-n/a})"

if [[ $PODMAN == 1 ]] && command -v podman >/dev/null; then
    log "podman: $PODS containers doing the same writes"
    mkdir -p "$PM_DIR/root" "$PM_DIR/runroot" "$PM_DIR/tmp" "$PM_DIR/net"
    tar -C "$BASE/image" -cf "$BASE/image.tar" .
    pm load -q -i "$BASE/image.tar" >"$PM_DIR/load.log" 2>&1 || die "podman load failed"
    for i in $(seq 1 "$PODS"); do
        pm run -d --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 \
            "$REF" sh -c "$SCRIPT" >>"$PM_DIR/run.log" 2>&1 || die "podman run failed (see $PM_DIR/run.log)"
    done
    sleep 5
    T0=$EPOCHREALTIME
    pm ps --size >"$PM_DIR/ps.txt" 2>&1
    T1=$EPOCHREALTIME
    echo "podman ps --size over $(($(wc -l <"$PM_DIR/ps.txt") - 1)) containers: $(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms per call"
else
    echo "podman ps --size: not run (podman not installed or PODMAN=0)"
fi
