#!/usr/bin/env bash
# Start latency and per-container weight (issue 3, point 7): layerlet vs containerd (ctr)
# vs podman.
#
# Builds layerlet (release), makes a busybox OCI layout with scripts/make_image.py and
# imports it, untimed, into a fresh layerlet data root, a private containerd (own root,
# state and socket) and a private podman store.  Then:
#
#  1. Start latency: N sequential runs per tool (interleaved: layerlet, containerd, podman,
#     layerlet, ...) of a container running /bin/true, restartPolicy Never, each removed by
#     the command that ran it:
#       layerlet --root R --run-root RR run --rm -f POD.yaml      (imagePullPolicy: Never)
#       ctr -a SOCK run --rm --snapshotter overlayfs example/busybox:1 ID /bin/true
#       podman ... run --rm --network none example/busybox:1 /bin/true
#     One untimed warm-up run per tool first.  Prints median/p90/min/max wall time and the
#     ratio layerlet/containerd of the medians (target <= 0.1, issue 20).  Right after the loop it
#     checks that nothing of those containers remains (directories, mounts, processes,
#     cgroups, the tools' own listings), and for layerlet also right after every run.
#  2. Weight: per tool, IDLE detached containers running `sleep 100000`; prints the growth of
#     the total PSS (/proc/PID/smaps_rollup) of the per-container processes from 0 to IDLE
#     containers, divided by IDLE: layerlet's monitors (every process whose exe is the
#     layerlet or layerlet-monitor binary; target <= 512 kB per container, issue 20),
#     containerd-shim-runc-v2 (and, for
#     context, the containerd daemon's growth), podman's conmon.  Then removes them all and
#     checks leftovers again.
#
# Environment:
#   N=50              timed runs per tool (start latency)
#   IDLE=50           idle containers per tool (weight)
#   TOOLS="layerlet containerd podman"   subset/order of tools to run
#   LAYERLET=PATH     use this binary instead of building target/release/layerlet
#   NO_BUILD=1        do not run cargo build (use target/release/layerlet as it is)
#   BENCH_TMP=DIR     where the temp dir is made (default ${TMPDIR:-/tmp}); not on overlayfs
#   PODMAN_ULIMITS="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
#                     podman's default rlimits (nofile 1048576, nproc 32768) fail in
#                     sandboxes without CAP_SYS_RESOURCE; set to "" to keep podman's defaults
#   KEEP=1            keep the temp dir (roots, logs, per-run times) for inspection
#
# The layerlet binary is copied into the temp dir and run from there, so a `cargo build`
# running meanwhile cannot replace it under the benchmark, and "processes whose exe is the
# layerlet binary" are this benchmark's monitors only.
#
# Needs: root, python3, tar; skopeo to make the oci-archive for containerd (else tar);
# containerd+ctr and podman are optional (their rows say "not installed").

set -Eeuo pipefail

N=${N:-50}
IDLE=${IDLE:-50}
TOOLS=${TOOLS:-"layerlet containerd podman"}
PODMAN_ULIMITS=${PODMAN_ULIMITS-"--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REF=example/busybox:1

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, overlay mounts, containerd)"
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer"
[[ $IDLE =~ ^[1-9][0-9]*$ ]] || die "IDLE must be a positive integer"
for t in python3 tar awk; do
    command -v "$t" >/dev/null || die "$t is required"
done

BENCH_NAME=run-bench
# shellcheck source=bench/lib.sh
source "$REPO_DIR/bench/lib.sh"

pod_yaml() { # name command... -> path of a Pod YAML
    local name=$1 f=$BASE/layerlet/pods/$1.yaml arg
    shift
    {
        echo "apiVersion: v1"
        echo "kind: Pod"
        echo "metadata:"
        echo "  name: $name"
        echo "  uid: $ID_PREFIX-$name"
        echo "spec:"
        echo "  restartPolicy: Never"
        echo "  containers:"
        echo "  - name: main"
        echo "    image: $REF"
        echo "    imagePullPolicy: Never"
        echo "    command:"
        for arg in "$@"; do echo "    - \"$arg\""; done
    } >"$f"
    echo "$f"
}

# One run, timed: sets T0/T1 or returns 1 (output in the tool's run log).
run_layerlet() {
    local f
    f=$(pod_yaml "true-$1" /bin/true)
    mkdir -p "$BASE/layerlet/phases"
    T0=$(now)
    LAYERLET_PHASE_TIMES=$BASE/layerlet/phases/$1.jsonl ll run --rm -f "$f" \
        >>"$BASE/layerlet/run.log" 2>&1 || return 1
    T1=$(now)
    # The whole command, beside its phases: what no phase covers is process start and exit.
    printf '{"phase":"whole_command","ms":%s}\n' "$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.3f", (b - a) * 1000 }')" \
        >>"$BASE/layerlet/phases/$1.jsonl"
}
run_containerd() {
    T0=$(now)
    ctrc run --rm --snapshotter overlayfs "$REF" "$ID_PREFIX-true-$1" /bin/true \
        >>"$CTR_DIR/run.log" 2>&1 || return 1
    T1=$(now)
}
run_podman() {
    T0=$(now)
    # shellcheck disable=SC2086
    pm run --rm --network none $PODMAN_ULIMITS "$REF" /bin/true >>"$PM_DIR/run.log" 2>&1 \
        || return 1
    T1=$(now)
}
declare -A RUN_LOG=([layerlet]="$BASE/layerlet/run.log" [containerd]="$CTR_DIR/run.log"
    [podman]="$PM_DIR/run.log")

# --- 1. start latency --------------------------------------------------------------------
for tool in $TOOLS; do
    [[ ${STATUS[$tool]} == ok ]] || continue
    log "$tool: warm-up run (untimed)"
    "run_$tool" warmup || failed "$tool" "warm-up run" "${RUN_LOG[$tool]}"
done
LL_DIRTY=0          # layerlet runs after which something was left when the command returned
LL_DIRTY_FIRST=""
log "start latency: $N runs per tool, interleaved"
for ((i = 1; i <= N; i++)); do
    for tool in $TOOLS; do
        [[ ${STATUS[$tool]} == ok ]] || continue
        if "run_$tool" "$i"; then
            TIMES[$tool]+="$(elapsed "$T0" "$T1") "
        else
            failed "$tool" "run $i" "${RUN_LOG[$tool]}"
            continue
        fi
        if [[ $tool == layerlet ]]; then
            what=$(leftovers_layerlet) || true
            if [[ -n $what ]]; then
                LL_DIRTY=$((LL_DIRTY + 1))
                [[ -n $LL_DIRTY_FIRST ]] || LL_DIRTY_FIRST="run $i: $what"
            fi
        fi
    done
    ((i % 10)) || log "  $i/$N"
done
report_leftovers start

# --- 2. weight ---------------------------------------------------------------------------
declare -A W_BEFORE W_AFTER W_START_S
CTRD_BEFORE="" CTRD_AFTER=""

running_layerlet() {
    ll ps --output json 2>/dev/null | python3 -c '
import json, sys
print(sum(r["state"] == "running" for r in json.load(sys.stdin)))' || echo 0
}
running_containerd() { ctrc tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING"' | count_lines; }
running_podman() { pm ps -q 2>/dev/null | count_lines; }

start_idle_layerlet() { ll run -d -f "$(pod_yaml "idle-$1" sleep 100000)" >>"$BASE/layerlet/idle.log" 2>&1; }
start_idle_containerd() {
    ctrc run -d --snapshotter overlayfs --log-uri "file://$CTR_DIR/idle-$1.log" "$REF" \
        "$ID_PREFIX-idle-$1" sleep 100000 >>"$CTR_DIR/idle.log" 2>&1
}
start_idle_podman() {
    # shellcheck disable=SC2086
    pm run -d --network none $PODMAN_ULIMITS --log-driver k8s-file "$REF" sleep 100000 \
        >>"$PM_DIR/idle.log" 2>&1
}
declare -A IDLE_LOG=([layerlet]="$BASE/layerlet/idle.log" [containerd]="$CTR_DIR/idle.log"
    [podman]="$PM_DIR/idle.log")
pss_of() {
    case $1 in
    layerlet) helper pss exe "$LL" "$SEALED" ${SEALED_MONITOR:+"$SEALED_MONITOR"} ;;
    containerd) helper pss shim "$CTR_SOCK" ;;
    podman) helper pss conmon "$PM_DIR" ;;
    esac
}
stop_idle() {
    case $1 in
    layerlet) remove_all_layerlet ;;
    containerd) remove_all_containerd ;;
    podman) remove_all_podman ;;
    esac
}

for tool in $TOOLS; do
    [[ ${STATUS[$tool]} == ok ]] || continue
    W_BEFORE[$tool]=$(pss_of "$tool")
    [[ $tool != containerd ]] || CTRD_BEFORE=$(helper pss pid "$CONTAINERD_PID")
    log "$tool: starting $IDLE idle containers"
    t0=$(now)
    ok=1
    for ((i = 1; i <= IDLE; i++)); do
        "start_idle_$tool" "$i" || { failed "$tool" "idle container $i" "${IDLE_LOG[$tool]}"; ok=0; break; }
    done
    t1=$(now)
    if ((ok)); then
        W_START_S[$tool]=$(elapsed "$t0" "$t1")
        for ((w = 0; w < 100; w++)); do
            [[ $("running_$tool") -ge $IDLE ]] && break
            sleep 0.1
        done
        r=$("running_$tool")
        if [[ $r -lt $IDLE ]]; then
            failed "$tool" "only $r of $IDLE idle containers running" "${IDLE_LOG[$tool]}"
        else
            sleep 2   # let start-up transients settle
            W_AFTER[$tool]=$(pss_of "$tool")
            [[ $tool != containerd ]] || CTRD_AFTER=$(helper pss pid "$CONTAINERD_PID")
        fi
    fi
    log "$tool: removing the idle containers"
    stop_idle "$tool"
done
report_leftovers weight

# --- report ------------------------------------------------------------------------------
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r), $(findmnt -n -o FSTYPE -T "$BASE") under $BASE"
vers="layerlet $("$LL" --version 2>/dev/null | awk '{ print $NF }')"
if [[ -z ${LAYERLET_SET:-} ]] && git -C "$REPO_DIR" rev-parse --short HEAD >/dev/null 2>&1; then
    vers+=" (git $(git -C "$REPO_DIR" rev-parse --short HEAD)"
    [[ -z $(git -C "$REPO_DIR" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] \
        || vers+=" + uncommitted changes in src/"
    vers+=")"
fi
have containerd && vers+=", containerd $(containerd --version | awk '{ print $3 }')"
have podman && vers+=", podman $(podman --version | awk '{ print $3 }')"
command -v runc >/dev/null && vers+=", runc $(runc --version | awk 'NR == 1 { print $3 }')"
command -v conmon >/dev/null && vers+=", conmon $(conmon --version | awk 'NR == 1 { print $3 }')"
echo "$vers"
echo "load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
echo "start latency: $N sequential runs per tool (interleaved, after 1 untimed warm-up) of"
echo "/bin/true in busybox, restartPolicy Never, removed by the command itself; wall ms per run"
echo
printf '%-12s%10s%10s%10s%10s%10s\n' tool median p90 min max mean
declare -A MED
for tool in $TOOLS; do
    if [[ -n ${TIMES[$tool]} ]]; then
        # shellcheck disable=SC2086
        read -r med p90 min max mean < <(helper stats ${TIMES[$tool]})
        MED[$tool]=$med
        n=$(wc -w <<<"${TIMES[$tool]}")
        extra=""
        [[ ${STATUS[$tool]} == ok ]] || extra="   (${STATUS[$tool]}; $n runs)"
        printf '%-12s%10s%10s%10s%10s%10s%s\n' "$tool" "$med" "$p90" "$min" "$max" "$mean" "$extra"
    else
        printf '%-12s%s\n' "$tool" "${STATUS[$tool]}"
    fi
done
echo
if [[ -n ${MED[layerlet]:-} ]]; then
    for peer in containerd podman; do
        [[ " $TOOLS " == *" $peer "* ]] || continue
        if [[ -n ${MED[$peer]:-} ]]; then
            awk -v a="${MED[layerlet]}" -v b="${MED[$peer]}" -v p="$peer" 'BEGIN {
                r = a / b; note = ""
                if (p == "containerd") note = "  (target <= 0.1, issue 20)" (r <= 0.1 ? "  OK" : "  MISSED")
                printf "ratio layerlet/%s (medians): %.2f%s\n", p, r, note }'
        else
            echo "ratio layerlet/$peer: n/a ($peer ${STATUS[$peer]})"
        fi
    done
fi
if [[ -n ${TIMES[layerlet]:-} ]]; then
    echo
    echo "layerlet's phases (src/phases.rs), ms over the timed runs; an indented phase is part of"
    echo "the one below it (create_pod holds pod_namespaces and pod_network, start_container"
    echo "holds create_container and start_process, remove holds remove_pod):"
    printf '  %-18s%10s%10s%7s\n' phase median p90 runs
    while read -r name med p90 count; do
        case $name in
        pod_namespaces | pod_network | create_container | start_process | remove_pod) indent="  " ;;
        *) indent="" ;;
        esac
        printf '  %-18s%10s%10s%7s\n' "$indent$name" "$med" "$p90" "$count"
    done < <(helper phases "$BASE"/layerlet/phases/[0-9]*.jsonl)
fi
echo
echo "leftovers right after the loop (dirs, mounts, processes, cgroups, tool listings):"
for tool in $TOOLS; do
    [[ -n ${LEFT[start,$tool]:-} ]] || continue
    printf '  %-11s %s\n' "$tool:" "${LEFT[start,$tool]}"
done
if [[ -n ${TIMES[layerlet]:-} ]]; then
    n=$(wc -w <<<"${TIMES[layerlet]}")
    if ((LL_DIRTY == 0)); then
        echo "  layerlet, checked right after each of its $n runs returned: nothing left"
    else
        echo "  layerlet, checked right after each of its $n runs returned: something left after $LL_DIRTY (first: $LL_DIRTY_FIRST)"
    fi
fi
echo
echo "weight: $IDLE idle containers (sleep 100000) per tool, one tool at a time; PSS of the"
echo "per-container processes (smaps_rollup) at 0 and at $IDLE containers"
echo
printf '%-12s%-21s%8s%12s%12s%14s%14s%12s\n' tool processes "n at 0" "PSS at 0" "PSS at $IDLE" \
    "PSS/container" "USS/container" "start $IDLE"
declare -A PROC=([layerlet]="layerlet monitor" [containerd]="containerd-shim" [podman]="conmon")
for tool in $TOOLS; do
    if [[ -n ${W_AFTER[$tool]:-} ]]; then
        read -r n0 p0 u0 _ <<<"${W_BEFORE[$tool]}"
        read -r n1 p1 u1 _ <<<"${W_AFTER[$tool]}"
        printf '%-12s%-21s%8s%12s%12s%14s%14s%12s\n' "$tool" "${PROC[$tool]} x$n1" "$n0" \
            "$p0 kB" "$p1 kB" "$(((p1 - p0) / IDLE)) kB" "$(((u1 - u0) / IDLE)) kB" \
            "${W_START_S[$tool]%????}s"
    else
        printf '%-12s%s\n' "$tool" "${STATUS[$tool]}"
    fi
done
if [[ -n ${W_AFTER[layerlet]:-} ]]; then
    read -r _ p0 _ _ <<<"${W_BEFORE[layerlet]}"
    read -r _ p1 _ _ <<<"${W_AFTER[layerlet]}"
    growth=$(((p1 - p0) / IDLE))
    echo
    echo "layerlet PSS growth per container: $growth kB  (target <= 512 kB)  $( ((growth <= 512)) && echo OK || echo MISSED)"
fi
if [[ -n $CTRD_AFTER ]]; then
    read -r _ p0 _ _ <<<"$CTRD_BEFORE"
    read -r _ p1 _ _ <<<"$CTRD_AFTER"
    echo "containerd daemon PSS: $p0 kB at 0, $p1 kB at $IDLE ($(((p1 - p0) / IDLE)) kB per container, not in the table)"
fi
echo
echo "leftovers after removing the idle containers:"
for tool in $TOOLS; do
    [[ -n ${LEFT[weight,$tool]:-} ]] || continue
    printf '  %-11s %s\n' "$tool:" "${LEFT[weight,$tool]}"
done

rc=0
for tool in $TOOLS; do
    [[ ${STATUS[$tool]} == ok || ${STATUS[$tool]} == "not installed" ]] || rc=1
    for phase in start weight; do
        [[ ${LEFT[$phase,$tool]:-none} == none ]] || rc=1
    done
done
exit "$rc"
