#!/usr/bin/env bash
# The agent at scale (issue 6, point 6): pods written as manifest files until Running in the
# agent's status, and removed until nothing of them is left; beside containerd (`ctr run -d`
# in a loop) and `podman kube play`, when installed, in the same run.
#
# Set-up (untimed) as in bench/run.sh (bench/lib.sh): a busybox image made offline, imported
# into a fresh layerlet data root, a private containerd and a private podman store. Then:
#
#  1. Single pod on an idle node: TRIES times, one manifest (sleep, grace period 0) is written
#     (temp file + rename) into the agent's --manifests directory; the time until the pod is
#     Running in /api/v1/pods (read over one persistent HTTP connection every 2 ms), then the
#     file is removed and the pod awaited gone. Prints p50/p99 (target: p99 <= 50 ms).
#  2. Burst: N manifests written at once; time until all N are Running, per-pod p50/p99 from
#     its file's write to Running, the agent's RSS and the monitors' PSS then.
#  3. Removal: all N files removed; time until the status lists no pod, and until no
#     container directory, mount, process or cgroup of them is left.
#  4. Peers: N `ctr run -d` one after another (each returns once its task runs) and their
#     removal; `podman kube play` of one file with the N pods and `podman kube down`.
#     Prints N-Running times side by side and the ratio layerlet/containerd (target <= 0.1, issue 20).
#
# Environment: N=100, TRIES=50, TOOLS="layerlet containerd podman", LAYERLET=PATH,
# NO_BUILD=1, BENCH_TMP=DIR, KEEP=1 (as bench/run.sh).

set -Eeuo pipefail

N=${N:-100}
TRIES=${TRIES:-50}
TOOLS=${TOOLS:-"layerlet containerd podman"}
PODMAN_ULIMITS=${PODMAN_ULIMITS-"--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REF=example/busybox:1

die() { echo "agent.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, overlay mounts, containerd)"
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer"
[[ $TRIES =~ ^[1-9][0-9]*$ ]] || die "TRIES must be a positive integer"
[[ " $TOOLS " == *" layerlet "* ]] || die "TOOLS must include layerlet"
for t in python3 tar awk; do
    command -v "$t" >/dev/null || die "$t is required"
done

BENCH_NAME=agent-bench
# shellcheck source=bench/lib.sh
source "$REPO_DIR/bench/lib.sh"

DRIVER=$REPO_DIR/bench/agent_driver.py
MANIFESTS=$BASE/layerlet/manifests
AGENT_PID=""
stop_agent() { stop_pid "$AGENT_PID"; AGENT_PID=""; }
before_cleanup() { stop_agent; }

# --- layerlet ----------------------------------------------------------------------------
declare -A TOTAL REMOVE
[[ ${STATUS[layerlet]} == ok ]] || die "layerlet set-up failed: ${STATUS[layerlet]}"
mkdir -p "$MANIFESTS"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
# Phase timings (src/phases.rs): emptied before the burst, so they hold its pods only.
PHASES=$BASE/layerlet/phases.jsonl
LAYERLET_PHASE_TIMES=$PHASES "$LL" --root "$LL_ROOT" --run-root "$LL_RUN" agent \
    --manifests "$MANIFESTS" --listen "$ADDR" >"$BASE/layerlet/agent.log" 2>&1 &
AGENT_PID=$!
for ((i = 0; i < 300; i++)); do
    python3 -c "import urllib.request as u; u.urlopen('http://$ADDR/readyz', timeout=1)" 2>/dev/null && break
    kill -0 "$AGENT_PID" 2>/dev/null || { tail -20 "$BASE/layerlet/agent.log" >&2; die "the agent exited"; }
    sleep 0.1
done

log "layerlet: single pod, $TRIES tries"
SINGLE=$(python3 "$DRIVER" single "$ADDR" "$MANIFESTS" "$REF" "$ID_PREFIX" "$TRIES" | tr '\n' ' ') \
    || die "single-pod runs failed (log: $BASE/layerlet/agent.log)"

: >"$PHASES"
log "layerlet: $N pods at once"
BURST=$(python3 "$DRIVER" burst "$ADDR" "$MANIFESTS" "$REF" "$ID_PREFIX" "$N") \
    || die "burst failed (log: $BASE/layerlet/agent.log)"
AGENT_RSS_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status")
# Every container start copies the mount table into its new mount namespace: what one copy
# costs with the N pods' mounts in place (median of 5 `unshare -m true`).
MOUNTS=$(wc -l <"/proc/$AGENT_PID/mountinfo")
UNSHARE_MS=$(for _ in 1 2 3 4 5; do
    t0=$(now)
    unshare -m true
    awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f\n", (b - a) * 1000 }'
done | sort -n | sed -n 3p)
# Containers are cloned from the agent's mount base (src/runtime/process/mount_base.rs),
# which lacks the pods' mounts: its size and what one copy of it costs (nsenter's exec
# included).
BASE_NS=""
for fd in "/proc/$AGENT_PID/fd/"*; do
    [[ $(readlink "$fd" 2>/dev/null) == mnt:* ]] && BASE_NS=$fd
done
BASE_LINE="none (each start copies the agent's namespace)"
if [[ -n $BASE_NS ]]; then
    BASE_MOUNTS=$(nsenter --mount="$BASE_NS" cat /proc/self/mountinfo | wc -l)
    BASE_MS=$(for _ in 1 2 3 4 5; do
        t0=$(now)
        nsenter --mount="$BASE_NS" unshare -m true
        awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f\n", (b - a) * 1000 }'
    done | sort -n | sed -n 3p)
    BASE_LINE="$BASE_MOUNTS mounts; one copy (nsenter --mount=BASE unshare -m true): $BASE_MS ms"
fi
cp "$PHASES" "$BASE/layerlet/phases-burst.jsonl"
read -r MON_N MON_PSS _ _ < <(helper pss exe "$SEALED" ${SEALED_MONITOR:+"$SEALED_MONITOR"})
TOTAL[layerlet]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["total"])' "$BURST")
PER_POD=$(python3 -c 'import json,sys; print(" ".join(map(str, json.loads(sys.argv[1])["per_pod"])))' "$BURST")

log "layerlet: removing the $N pod files"
t0=$(now)
STATUS_EMPTY=$(python3 "$DRIVER" drain "$ADDR" "$MANIFESTS") || die "drain failed"
# What the pods leave: the per-data-root cgroup parent stays while the agent runs, so only
# cgroups below it count.
pods_left() {
    {
        dirs_in "$LL_ROOT/containers" "$LL_RUN/pods" "$LL_RUN/containers"
        mounts_under "$LL_ROOT/containers" "$LL_RUN/pods" "$LL_RUN/containers"
        procs_of container "$LL_ROOT/containers" "$LL_RUN/pods" "$LL_RUN/containers" "$SEALED" ${SEALED_MONITOR:+"$SEALED_MONITOR"}
        cgroups_of "/layerlet/$LL_CGROUP/"
    } | join_lines
}
left=""
for ((i = 0; i < 600; i++)); do
    left=$(pods_left) || true
    [[ -n $left ]] || break
    sleep 0.05
done
REMOVE[layerlet]=$(elapsed "$t0" "$(now)")
LL_LEFT=${left:-none}
stop_agent

# --- peers -------------------------------------------------------------------------------
if [[ ${STATUS[containerd]:-} == ok ]]; then
    log "containerd: $N x ctr run -d"
    t0=$(now)
    for ((i = 1; i <= N; i++)); do
        ctrc run -d --snapshotter overlayfs --log-uri "file://$CTR_DIR/burst-$i.log" "$REF" \
            "$ID_PREFIX-burst-$i" sleep 100000 >>"$CTR_DIR/burst.log" 2>&1 \
            || { failed containerd "ctr run $i" "$CTR_DIR/burst.log"; break; }
    done
    if [[ ${STATUS[containerd]} == ok ]]; then
        TOTAL[containerd]=$(elapsed "$t0" "$(now)")
        r=$(ctrc tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING"' | count_lines)
        [[ $r -ge $N ]] || failed containerd "only $r of $N running"
    fi
    t0=$(now)
    remove_all_containerd
    REMOVE[containerd]=$(elapsed "$t0" "$(now)")
fi
if [[ ${STATUS[podman]:-} == ok ]]; then
    KUBE=$PM_DIR/pods.yaml
    for ((i = 1; i <= N; i++)); do
        printf -- '---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: burst-%d\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: %s\n    imagePullPolicy: Never\n    command: [sleep, "100000"]\n' "$i" "localhost/$REF"
    done >"$KUBE"
    log "podman: kube play of $N pods"
    t0=$(now)
    # kube play takes no --ulimit: the same limits as bench/run.sh's PODMAN_ULIMITS go in
    # through a containers.conf of this run.
    CONF=$PM_DIR/containers.conf
    {
        echo "[containers]"
        printf 'default_ulimits = ['
        # shellcheck disable=SC2086
        set -- $PODMAN_ULIMITS
        sep=""
        while (($#)); do
            [[ $1 == --ulimit ]] && { printf '%s"%s"' "$sep" "$2"; sep=", "; shift; }
            shift
        done
        echo "]"
    } >"$CONF"
    if CONTAINERS_CONF=$CONF pm kube play --network none "$KUBE" >"$PM_DIR/play.log" 2>&1; then
        TOTAL[podman]=$(elapsed "$t0" "$(now)")
    else
        failed podman "kube play" "$PM_DIR/play.log"
    fi
    t0=$(now)
    pm kube down "$KUBE" >"$PM_DIR/down.log" 2>&1 || true
    remove_all_podman
    REMOVE[podman]=$(elapsed "$t0" "$(now)")
fi

# --- report ------------------------------------------------------------------------------
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), kernel $(uname -r)"
vers="layerlet $("$LL" --version 2>/dev/null | awk '{ print $NF }')"
git -C "$REPO_DIR" rev-parse --short HEAD >/dev/null 2>&1 \
    && vers+=" (git $(git -C "$REPO_DIR" rev-parse --short HEAD))"
have containerd && vers+=", containerd $(containerd --version | awk '{ print $3 }')"
have podman && vers+=", podman $(podman --version | awk '{ print $3 }')"
echo "$vers"
echo
# shellcheck disable=SC2086
echo "single pod on an idle node, file written -> Running in /api/v1/pods, $TRIES tries:" \
    "p50 $(helper pct 50 $SINGLE) ms, p99 $(helper pct 99 $SINGLE) ms (target: p99 <= 50 ms)"
echo
echo "$N pods at once (sleep, image present, grace period 0):"
printf '  %-12s%18s%18s\n' tool "all Running (s)" "all removed (s)"
for tool in $TOOLS; do
    if [[ -n ${TOTAL[$tool]:-} ]]; then
        printf '  %-12s%18.2f%18.2f\n' "$tool" "${TOTAL[$tool]}" "${REMOVE[$tool]:-0}"
    else
        printf '  %-12s%s\n' "$tool" "${STATUS[$tool]}"
    fi
done
# shellcheck disable=SC2086
echo "  layerlet per pod, file written -> Running: p50 $(helper pct 50 $PER_POD) ms," \
    "p99 $(helper pct 99 $PER_POD) ms"
echo "  layerlet status empty after $(awk -v s="$STATUS_EMPTY" 'BEGIN { printf "%.2f", s }') s;" \
    "containers, mounts, processes and cgroups gone after $(awk -v s="${REMOVE[layerlet]}" 'BEGIN { printf "%.2f", s }') s" \
    "(left: $LL_LEFT)"
echo "  agent RSS with $N pods: $((AGENT_RSS_KB / 1024)) MiB; $MON_N monitors, PSS $((MON_PSS / 1024)) MiB in all"
echo "  mounts in the agent's namespace with $N pods: $MOUNTS; one mount namespace copy (unshare -m true): $UNSHARE_MS ms"
echo "  the agent's mount base, which containers are cloned from: $BASE_LINE"
echo "  layerlet's phases during the burst (src/phases.rs), ms; steps per pod, observe per"
echo "  reconcile round (every pod's state read once), indented ones part of the step below:"
printf '    %-18s%10s%10s%8s\n' phase median p90 count
while read -r name med p90 count; do
    case $name in
    pod_namespaces | pod_network | create_container | start_process) indent="  " ;;
    *) indent="" ;;
    esac
    printf '    %-18s%10s%10s%8s\n' "$indent$name" "$med" "$p90" "$count"
done < <(helper phases "$BASE/layerlet/phases-burst.jsonl")
if [[ -n ${TOTAL[containerd]:-} ]]; then
    awk -v a="${TOTAL[layerlet]}" -v b="${TOTAL[containerd]}" 'BEGIN {
        r = a / b; printf "  ratio layerlet/containerd (all Running): %.2f  (target <= 0.1, issue 20)%s\n", r, (r <= 0.1 ? "  OK" : "  MISSED") }'
fi
