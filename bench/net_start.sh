#!/usr/bin/env bash
# Networked pod start (issue 16, benchmark): N sequential pods, each started to Running and
# removed, on layerlet's default bridge network (CNI bridge + host-local + portmap), beside
# the same with the network off (LAYERLET_POD_NETWORK=none) and beside `podman run --rm` on
# podman's default network (its bridge), when podman is installed.
#
# The whole benchmark runs inside a network namespace it creates (`ip netns add`, entered
# with nsenter --net, never `ip netns exec`, which remounts /sys): layerlet0, podman's
# bridge, every pod address, iptables rule and packet exist only there, and go with it. It
# runs in a private mount namespace as well, with a tmpfs on /run/containers/networks, where
# rootful podman keeps netavark's IPAM database whatever its --runroot.
#
# Set-up (untimed) as bench/run.sh's (bench/lib.sh): a busybox image made offline and
# imported into a fresh layerlet data root and a private podman store. Then N rounds, each
# running every variant once in turn (interleaved, so drift hits all alike), after one
# untimed warm-up per variant (the first networked start creates the bridge):
#   layerlet, bridge:      LAYERLET_POD_NETWORK=cni layerlet --cni-conf-dir EMPTY run --rm -f POD
#   layerlet, network off: LAYERLET_POD_NETWORK=none layerlet run --rm -f POD
#   podman, bridge:        podman ... run --rm example/busybox:1 /bin/true
# POD runs /bin/true (restartPolicy Never, imagePullPolicy Never); each command returns once
# the container ran and everything of it (for layerlet: the sandbox and its CNI DEL) is gone.
# Prints median/p90/min/max wall ms per variant, the median milliseconds layerlet spent in
# CNI plugins per pod (the agent's debug lines "CNI ADD chain finished ... ms=" and "CNI DEL
# chain finished ... ms=", src/runtime/network/attach.rs), what networking adds to
# layerlet's median (target <= 10 ms) and the ratio to podman (target <= 0.25).
#
# Environment: N=50, TOOLS="layerlet podman", LAYERLET=PATH, NO_BUILD=1, BENCH_TMP=DIR,
# KEEP=1, PODMAN_ULIMITS (as bench/run.sh).

set -Eeuo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "net_start.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (namespaces, overlay mounts, bridges)"

# --- the network namespace: this script again, inside it ----------------------------------
if [[ -z ${NET_START_NETNS:-} ]]; then
    for t in ip nsenter unshare; do
        command -v "$t" >/dev/null || die "$t is required"
    done
    NS=llnetbench-$$
    ip netns add "$NS" || die "ip netns add $NS failed"
    trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
    ip -n "$NS" link set lo up
    # A private mount namespace too: rootful podman keeps netavark's IPAM database at the
    # fixed /run/containers/networks (shared by every podman of the machine's namespace); a
    # tmpfs there keeps this run's out of the machine's.
    inner='if command -v podman >/dev/null; then
            mkdir -p /run/containers/networks &&
            mount -t tmpfs -o mode=0755 net-start-bench /run/containers/networks || exit 1
        fi
        exec bash "$0" "$@"'
    rc=0
    NET_START_NETNS=$NS nsenter --net="/run/netns/$NS" -- \
        unshare --mount --propagation private -- bash -c "$inner" "${BASH_SOURCE[0]}" "$@" || rc=$?
    exit "$rc"
fi

N=${N:-50}
TOOLS=${TOOLS:-"layerlet podman"}
PODMAN_ULIMITS=${PODMAN_ULIMITS-"--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"}
REF=example/busybox:1

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer"
[[ " $TOOLS " == *" layerlet "* ]] || die "TOOLS must include layerlet"
[[ " $TOOLS " != *" containerd "* ]] || die "TOOLS: containerd has no part here (layerlet, podman)"
for t in python3 tar awk; do
    command -v "$t" >/dev/null || die "$t is required"
done
[[ $(readlink /proc/self/ns/net) != "$(readlink /proc/1/ns/net)" ]] \
    || die "not inside a network namespace of its own"

# Short: podman refuses a runroot path over 50 characters.
BENCH_NAME=net-bench
# shellcheck source=bench/lib.sh
source "$REPO_DIR/bench/lib.sh"

[[ ${STATUS[layerlet]} == ok ]] || die "layerlet set-up failed: ${STATUS[layerlet]}"
CNI_CONF=$BASE/layerlet/net.d   # empty: layerlet's default network, never /etc/cni/net.d's
mkdir -p "$CNI_CONF" "$BASE/layerlet/runs"

pod_yaml() { # name -> path of a Pod YAML running /bin/true
    local f=$BASE/layerlet/pods/$1.yaml
    printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  uid: %s\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: %s\n    imagePullPolicy: Never\n    command: ["/bin/true"]\n' \
        "$1" "$ID_PREFIX-$1" "$REF" >"$f"
    echo "$f"
}

# One run, timed: sets T0/T1 or returns 1 (output in the variant's log). layerlet's debug
# lines of the CNI chains go to a file per run.
run_ll() { # mode name
    local f out=$BASE/layerlet/runs/$2.log
    f=$(pod_yaml "$2")
    T0=$(now)
    LAYERLET_POD_NETWORK=$1 LAYERLET_LOG=warn,layerlet::runtime::network=debug \
        ll --cni-conf-dir "$CNI_CONF" run --rm -f "$f" >"$out" 2>&1 || { cat "$out" >>"$BASE/layerlet/run.log"; return 1; }
    T1=$(now)
}
run_net() { run_ll cni "net-$1"; }
run_none() { run_ll none "none-$1"; }
run_podman() {
    T0=$(now)
    # shellcheck disable=SC2086
    pm run --rm $PODMAN_ULIMITS "$REF" /bin/true >>"$PM_DIR/run.log" 2>&1 || return 1
    T1=$(now)
}

VARIANTS="net none"
[[ ${STATUS[podman]:-} == ok ]] && VARIANTS+=" podman"
declare -A LABEL=([net]="layerlet, bridge" [none]="layerlet, network off"
    [podman]="podman, bridge") VSTATUS VTIMES
declare -A VLOG=([net]="$BASE/layerlet/run.log" [none]="$BASE/layerlet/run.log"
    [podman]="$PM_DIR/run.log")
vfailed() { # variant what
    VSTATUS[$1]="failed: $2"
    log "${LABEL[$1]} FAILED: $2"
    tail -20 "${VLOG[$1]}" 2>/dev/null | sed 's/^/#   /' >&2
}
PODMAN_NOTE=""
for v in $VARIANTS; do
    VSTATUS[$v]=ok
    VTIMES[$v]=""
    log "${LABEL[$v]}: warm-up run (untimed)"
    if ! "run_$v" warmup; then
        vfailed "$v" "warm-up run"
        if [[ $v == podman ]]; then
            PODMAN_NOTE="podman could not start a container on its default network inside this
network namespace (its log, $PM_DIR/run.log, ends with:
$(tail -3 "$PM_DIR/run.log" | sed 's/^/    /'))"
        fi
    fi
done
[[ ${VSTATUS[net]} == ok ]] || die "layerlet's networked warm-up failed (log above)"

log "$N rounds of: $VARIANTS"
for ((i = 1; i <= N; i++)); do
    for v in $VARIANTS; do
        [[ ${VSTATUS[$v]} == ok ]] || continue
        if "run_$v" "$i"; then
            VTIMES[$v]+="$(elapsed "$T0" "$T1") "
        else
            vfailed "$v" "run $i"
        fi
    done
    ((i % 10)) || log "  $i/$N"
done

# Seconds layerlet's plugins took per networked pod: ADD, DEL and both, from each run's log.
cni_seconds() { # ADD|DEL|both -> seconds per run, space-separated
    local f
    for f in "$BASE"/layerlet/runs/net-[0-9]*.log; do
        awk -v want="$1" '
            /CNI (ADD|DEL) chain finished/ {
                cmd = ($0 ~ /CNI ADD/) ? "ADD" : "DEL"
                if (want != "both" && cmd != want) next
                if (match($0, / ms=[0-9.]+/)) ms += substr($0, RSTART + 4, RLENGTH - 4)
                seen = 1
            }
            END { if (seen) printf "%.6f ", ms / 1000 }' "$f"
    done
}
CNI_ADD=$(cni_seconds ADD)
CNI_DEL=$(cni_seconds DEL)
CNI_BOTH=$(cni_seconds both)

# What the runs left: the tools' own leftovers, IPs host-local still holds, veths.
report_leftovers start
IPS_LEFT=$(find "$LL_ROOT/cni" -path '*/ipam/*' -type f -regex '.*/[0-9a-f.:]+' 2>/dev/null | count_lines)
VETHS_LEFT=$(ip -o link show type veth | count_lines)

# --- report ------------------------------------------------------------------------------
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r), $(findmnt -n -o FSTYPE -T "$BASE") under $BASE"
vers="layerlet $("$LL" --version 2>/dev/null | awk '{ print $NF }')"
git -C "$REPO_DIR" rev-parse --short HEAD >/dev/null 2>&1 \
    && vers+=" (git $(git -C "$REPO_DIR" rev-parse --short HEAD))"
have podman && vers+=", podman $(podman --version | awk '{ print $3 }') ($(pm info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo '?') backend)"
vers+=", containernetworking-plugins $(dpkg-query -W -f '${Version}' containernetworking-plugins 2>/dev/null || echo '?')"
echo "$vers"
echo "load average (1/5/15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "inside network namespace $NET_START_NETNS (made for this run, deleted after it)"
echo
echo "$N sequential pods per variant (interleaved, after 1 untimed warm-up each), each"
echo "/bin/true in busybox started and removed by one command; wall ms per pod"
echo
printf '%-24s%10s%10s%10s%10s\n' variant median p90 min max
declare -A MEDIAN
for v in net none podman; do
    if [[ $v == podman && ${STATUS[podman]:-} != ok ]]; then
        printf '%-24s%s\n' "${LABEL[$v]}" "${STATUS[podman]:-not run}"
        continue
    fi
    if [[ ${VSTATUS[$v]} == ok && -n ${VTIMES[$v]} ]]; then
        # shellcheck disable=SC2086
        read -r med p90 min max _ < <(helper stats ${VTIMES[$v]})
        MEDIAN[$v]=$med
        printf '%-24s%10s%10s%10s%10s\n' "${LABEL[$v]}" "$med" "$p90" "$min" "$max"
    else
        printf '%-24s%s\n' "${LABEL[$v]}" "${VSTATUS[$v]}"
    fi
done
echo
if [[ -n $CNI_BOTH ]]; then
    # shellcheck disable=SC2086
    echo "layerlet's time in CNI plugins per networked pod (median ms): ADD $(helper stats $CNI_ADD | cut -d' ' -f1)," \
        "DEL $(helper stats $CNI_DEL | cut -d' ' -f1), both $(helper stats $CNI_BOTH | cut -d' ' -f1)" \
        "(p90 of both $(helper stats $CNI_BOTH | cut -d' ' -f2))"
else
    echo "layerlet's time in CNI plugins: no 'CNI ADD chain finished' line in the runs' logs"
fi
if [[ -n ${MEDIAN[net]:-} && -n ${MEDIAN[none]:-} ]]; then
    awk -v a="${MEDIAN[net]}" -v b="${MEDIAN[none]}" 'BEGIN {
        d = a - b; printf "networking adds %.1f ms to layerlet'"'"'s median start  (target <= 10 ms)  %s\n", d, (d <= 10 ? "OK" : "MISSED") }'
fi
if [[ -n ${MEDIAN[net]:-} && -n ${MEDIAN[podman]:-} ]]; then
    awk -v a="${MEDIAN[net]}" -v b="${MEDIAN[podman]}" 'BEGIN {
        r = a / b; printf "ratio layerlet/podman, both networked (medians): %.2f  (target <= 0.25)  %s\n", r, (r <= 0.25 ? "OK" : "MISSED") }'
else
    echo "ratio layerlet/podman: n/a (podman ${VSTATUS[podman]:-${STATUS[podman]:-not run}})"
fi
[[ -z $PODMAN_NOTE ]] || { echo; echo "note: $PODMAN_NOTE"; }
echo
echo "left after the loop: layerlet: ${LEFT[start,layerlet]}; host-local IPs held: $IPS_LEFT; veths in the namespace: $VETHS_LEFT"
[[ ${STATUS[podman]:-} != ok ]] || echo "  podman: ${LEFT[start,podman]}"
for v in $VARIANTS; do
    [[ ${VSTATUS[$v]} == ok ]] || exit 1
done
