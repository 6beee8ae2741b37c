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
#     ratio layerlet/containerd of the medians (target <= 0.25).  Right after the loop it
#     checks that nothing of those containers remains (directories, mounts, processes,
#     cgroups, the tools' own listings), and for layerlet also right after every run.
#  2. Weight: per tool, IDLE detached containers running `sleep 100000`; prints the growth of
#     the total PSS (/proc/PID/smaps_rollup) of the per-container processes from 0 to IDLE
#     containers, divided by IDLE: layerlet's monitors (every process whose exe is the
#     layerlet binary; target <= 1 MB per container), containerd-shim-runc-v2 (and, for
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

BASE=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/layerlet-run-bench.XXXXXX")
BASE=$(realpath "$BASE")
CONTAINERD_PID=""
ID_PREFIX="llb$$"            # ctr container IDs and layerlet pod uids: tells ours apart
HELPER=$BASE/helper.py
LL_ROOT=$BASE/layerlet/root
LL_RUN=$BASE/layerlet/run
CTR_DIR=$BASE/containerd
CTR_SOCK=$CTR_DIR/containerd.sock
PM_DIR=$BASE/podman
LL=""                        # the copied layerlet binary, set below
SEALED=""                    # layerlet's read-only copy of it under /run/layerlet-exe

# --- helper: process, memory, cgroup and statistics chores, in Python -------------------
cat >"$HELPER" <<'EOF'
import os, statistics, sys

ME = {os.getpid(), os.getppid()}

def pids():
    for d in os.listdir("/proc"):
        if d.isdigit():
            yield int(d)

def read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None

def state(pid):
    s = read(f"/proc/{pid}/stat")
    return s[s.rindex(")") + 2] if s else None

def cmdline(pid):
    c = read(f"/proc/{pid}/cmdline", "rb")
    return c.replace(b"\0", b" ").decode(errors="replace").strip() if c else ""

def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""

def mntns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None

def ours(dirs):
    """Live processes tied to these directories: the cmdline or exe names one of them, or
    the process lives in another mount namespace whose mounts name one of them (a container
    whose rootfs is an overlay of ours, even if its monitor or shim is gone)."""
    my_ns = mntns("self")
    found = []
    for pid in pids():
        if pid in ME or state(pid) in (None, "Z", "X"):
            continue
        c, e = cmdline(pid), exe(pid)
        if not c:  # kernel thread
            continue
        why = None
        if any(d in c for d in dirs) or any(e == d or e.startswith(d + "/") for d in dirs):
            why = "cmdline/exe"
        else:
            ns = mntns(pid)
            if ns and ns != my_ns:
                mi = read(f"/proc/{pid}/mountinfo") or ""
                if any(d in mi for d in dirs):
                    why = "container"
        if why:
            found.append((pid, why, c))
    return found

def smaps(pid):
    out = {}
    for line in (read(f"/proc/{pid}/smaps_rollup") or "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1])
    return out

def cmd_procs(args):
    # procs DIR...: one line per live process tied to the dirs; containers first, so
    # killing in this order takes the workload before its monitor/shim.
    found = ours(args)
    found.sort(key=lambda t: t[1] != "container")
    for pid, why, c in found:
        print(pid, why, c[:200])

def cmd_pss(args):
    # pss exe PATH... | pss shim SOCK | pss conmon DIR | pss pid PID:
    # "count pss_kB uss_kB rss_kB"
    kind, arg = args[0], args[1]
    n = pss = uss = rss = 0
    for pid in pids():
        if state(pid) in (None, "Z", "X"):
            continue
        e = exe(pid)
        if kind == "exe":
            hit = e in args[1:]
        elif kind == "shim":
            hit = os.path.basename(e).startswith("containerd-shim") and arg in cmdline(pid)
        elif kind == "conmon":
            hit = os.path.basename(e) == "conmon" and arg in cmdline(pid)
        else:
            hit = pid == int(arg)
        if not hit:
            continue
        s = smaps(pid)
        n += 1
        pss += s.get("Pss", 0)
        uss += s.get("Private_Clean", 0) + s.get("Private_Dirty", 0)
        rss += s.get("Rss", 0)
    print(n, pss, uss, rss)

def cmd_cgroups(args):
    # every cgroup directory of every hierarchy, one per line (cgroup v1 or v2)
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        for d in dirnames:
            print(os.path.join(dirpath, d))

def cmd_stats(args):
    # stats SECONDS...: "median p90 min max mean" in ms (p90: nearest rank)
    ts = sorted(float(x) * 1000 for x in args)
    p90 = ts[max(0, -(-len(ts) * 9 // 10) - 1)]
    print(f"{statistics.median(ts):.1f} {p90:.1f} {ts[0]:.1f} {ts[-1]:.1f} "
          f"{statistics.fmean(ts):.1f}")

{"procs": cmd_procs, "pss": cmd_pss, "cgroups": cmd_cgroups,
 "stats": cmd_stats}[sys.argv[1]](sys.argv[2:])
EOF

helper() { python3 "$HELPER" "$@"; }

# --- cleanup -----------------------------------------------------------------------------
# Unmount everything mounted at or below a directory, deepest first.
umount_under() {
    local dir=$1 m
    # /proc/self/mountinfo field 5 is the mount point (octal escapes; our paths have none).
    while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

ll() { "$LL" --root "$LL_ROOT" --run-root "$LL_RUN" "$@"; }
ctrc() { ctr --address "$CTR_SOCK" "$@"; }
pm() {
    TMPDIR=$PM_DIR/tmp podman --root "$PM_DIR/root" --runroot "$PM_DIR/runroot" \
        --tmpdir "$PM_DIR/tmp" --network-config-dir "$PM_DIR/net" \
        --storage-driver overlay --events-backend none --cgroup-manager cgroupfs "$@"
}

# The tools' own removal first (each bounded), then SIGKILL whatever is still tied to the
# temp dir (containers before their monitors/shims), unmount, drop the per-container cgroups
# this run created, delete the temp dir.
remove_all_layerlet() {
    [[ -n $LL && -d $LL_ROOT ]] || return 0
    local pods
    pods=$(ll ps -a --output json 2>/dev/null | python3 -c '
import json, sys
try:
    rows = json.load(sys.stdin)
except Exception:
    rows = []
print(" ".join(sorted({r["namespace"] + "/" + r["pod"] for r in rows})))') || pods=""
    # One pod per call: `rm` stops at its first error (before a8e46fd a pod whose monitor
    # had died failed after 10 s, every time); what rm cannot remove, kill_ours and
    # umount_under take.
    local pod
    for pod in $pods; do
        timeout 60 "$LL" --root "$LL_ROOT" --run-root "$LL_RUN" rm -t 0 "$pod" >/dev/null \
            || echo "# layerlet rm -t 0 $pod failed" >&2
    done
}

remove_all_containerd() {
    [[ -n $CONTAINERD_PID ]] || return 0
    local id
    for id in $(ctrc containers ls -q 2>/dev/null); do
        timeout 20 ctr --address "$CTR_SOCK" tasks kill -s SIGKILL "$id" >/dev/null 2>&1
    done
    for id in $(ctrc containers ls -q 2>/dev/null); do
        timeout 20 ctr --address "$CTR_SOCK" tasks rm -f "$id" >/dev/null 2>&1
        timeout 20 ctr --address "$CTR_SOCK" containers rm "$id" >/dev/null 2>&1
    done
    return 0
}

remove_all_podman() {
    [[ -d $PM_DIR/root ]] || return 0
    timeout 120 env TMPDIR="$PM_DIR/tmp" podman --root "$PM_DIR/root" \
        --runroot "$PM_DIR/runroot" --tmpdir "$PM_DIR/tmp" \
        --network-config-dir "$PM_DIR/net" --storage-driver overlay --events-backend none \
        --cgroup-manager cgroupfs rm -f -a -t 0 >/dev/null 2>&1
}

kill_ours() {
    local i pid
    for i in 1 2 3 4 5; do
        local left=()
        while read -r pid _; do left+=("$pid"); done < <(helper procs "$BASE" ${SEALED:+"$SEALED"})
        ((${#left[@]})) || return 0
        kill -KILL "${left[@]}" 2>/dev/null
        sleep 0.2
    done
}

CGROUPS_AT_START=$BASE/cgroups-start
helper cgroups >"$CGROUPS_AT_START"

# This run's per-pod/per-container cgroups: layerlet's layerlet/<data root hash>[/<pod uid>
# [/<id>]] (the hash is the first 12 hex of sha256 of the --root path, src/runtime/container.rs;
# our pods' uids also start with ID_PREFIX), ctr's default/<ID_PREFIX>-..., podman's
# (cgroupfs) libpod_parent/libpod-<64 hex> that were not there at the start.
LL_CGROUP=$(printf '%s' "$LL_ROOT" | sha256sum | cut -c1-12)
CG_LAYERLET="/layerlet/($LL_CGROUP(/|\$)|([^/]+/)?$ID_PREFIX-)"
CG_CONTAINERD="/default/$ID_PREFIX-"
CG_PODMAN="/libpod_parent/libpod-[0-9a-f]{64}(/|\$)"
our_cgroups() {
    helper cgroups | grep -E "$CG_LAYERLET|$CG_CONTAINERD|$CG_PODMAN" \
        | grep -vxF -f "$CGROUPS_AT_START" || true
}

remove_our_cgroups() {
    # deepest first; rmdir refuses a cgroup that still has processes or children
    local d
    while read -r d; do
        rmdir "$d" 2>/dev/null || true
    done < <(our_cgroups | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
}

# layerlet keeps one read-only bind-mounted copy per binary under /run/layerlet-exe; the
# one of our private copy of the binary goes with the temp dir.
remove_sealed_copy() {
    [[ $SEALED == /run/layerlet-exe/*/layerlet ]] || return 0
    local dir=${SEALED%/layerlet}
    while awk -v m="$SEALED" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; do
        umount "$SEALED" 2>/dev/null || umount -l "$SEALED" 2>/dev/null || break
    done
    rm -rf "$dir" "$dir.lock"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    remove_all_layerlet
    remove_all_containerd
    remove_all_podman
    stop_pid "$CONTAINERD_PID"
    kill_ours
    umount_under "$BASE"
    remove_our_cgroups
    remove_sealed_copy
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

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

# --- layerlet binary ---------------------------------------------------------------------
LAYERLET_SET=${LAYERLET:-}
if [[ -n ${LAYERLET:-} ]]; then
    [[ -x $LAYERLET ]] || die "LAYERLET=$LAYERLET is not executable"
elif [[ ${NO_BUILD:-0} == 1 ]]; then
    LAYERLET=$REPO_DIR/target/release/layerlet
else
    log "cargo build --release"
    (cd "$REPO_DIR" && cargo build --release --quiet) || die "cargo build --release failed"
    LAYERLET=$REPO_DIR/target/release/layerlet
fi
[[ -x $LAYERLET ]] || die "$LAYERLET not found"
mkdir -p "$BASE/bin"
cp "$LAYERLET" "$BASE/bin/layerlet"
LL=$BASE/bin/layerlet
# Helpers (monitors) run from a read-only copy keyed by the binary's dev-ino-size-mtime
# (src/sys/exe.rs); where it will be, so that its processes can be found and it removed.
SEALED=/run/layerlet-exe/$(stat -c '%d %i %s %Y' "$LL" | awk '{ printf "%x-%x-%x-%x", $1, $2, $3, $4 }')/layerlet

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the image ---------------------------------------------------------------------------
IMG=$BASE/image
log "making the busybox image $REF"
python3 "$REPO_DIR/scripts/make_image.py" -q --out "$IMG" --ref "$REF" --busybox \
    || die "make_image.py failed"
ARCHIVE=$BASE/image.tar   # oci-archive for ctr and podman
if command -v skopeo >/dev/null; then
    skopeo copy -q "oci:$IMG" "oci-archive:$ARCHIVE:$REF" >"$BASE/skopeo.log" 2>&1 \
        || { cat "$BASE/skopeo.log" >&2; die "skopeo copy failed"; }
else
    # make_image.py already wrote the ref into index.json; an oci-archive is the layout tarred.
    tar -C "$IMG" -cf "$ARCHIVE" .
fi

# --- tools -------------------------------------------------------------------------------
have() {
    case $1 in
    layerlet) return 0 ;;
    containerd) command -v containerd >/dev/null && command -v ctr >/dev/null ;;
    podman) command -v podman >/dev/null ;;
    *) die "unknown tool $1 (TOOLS=\"layerlet containerd podman\")" ;;
    esac
}

declare -A STATUS TIMES FAILS
for tool in $TOOLS; do
    if have "$tool"; then STATUS[$tool]=ok; else STATUS[$tool]="not installed"; fi
    TIMES[$tool]=""
done
failed() { # tool what logfile
    STATUS[$1]="failed: $2"
    log "$1 FAILED: $2"
    [[ -z ${3:-} ]] || tail -20 "$3" | sed 's/^/#   /' >&2
}

# A private containerd: own root, state, sockets; nothing but content + overlayfs.
containerd_start() {
    local i
    mkdir -p "$CTR_DIR/root" "$CTR_DIR/state"
    cat >"$CTR_DIR/config.toml" <<EOF
version = 2
root = "$CTR_DIR/root"
state = "$CTR_DIR/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.native",
]
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$CTR_SOCK.ttrpc"
[debug]
  address = ""
  level = "warn"
[metrics]
  address = ""
EOF
    rm -f "$CTR_SOCK" "$CTR_SOCK.ttrpc"
    containerd --config "$CTR_DIR/config.toml" >"$CTR_DIR/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    for i in $(seq 1 100); do
        ctrc version >/dev/null 2>&1 && return 0
        kill -0 "$CONTAINERD_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$CTR_DIR/containerd.log" >&2
    return 1
}

# Untimed set-up: each tool gets the image into its own fresh store.
setup_layerlet() {
    mkdir -p "$LL_ROOT" "$LL_RUN" "$BASE/layerlet/pods"
    ll image import "$IMG" >"$BASE/layerlet/import.log" 2>&1
}
setup_containerd() {
    containerd_start || return 1
    ctrc image import --snapshotter overlayfs "$ARCHIVE" >"$CTR_DIR/import.log" 2>&1
}
setup_podman() {
    mkdir -p "$PM_DIR/root" "$PM_DIR/runroot" "$PM_DIR/tmp" "$PM_DIR/net" "$PM_DIR/logs"
    pm load -q -i "$ARCHIVE" >"$PM_DIR/load.log" 2>&1
}
declare -A SETUP_LOG=([layerlet]="$BASE/layerlet/import.log"
    [containerd]="$CTR_DIR/import.log" [podman]="$PM_DIR/load.log")
for tool in $TOOLS; do
    [[ ${STATUS[$tool]} == ok ]] || continue
    log "$tool: importing $REF (untimed)"
    "setup_$tool" || failed "$tool" "image import" "${SETUP_LOG[$tool]}"
done

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
    T0=$(now)
    ll run --rm -f "$f" >>"$BASE/layerlet/run.log" 2>&1 || return 1
    T1=$(now)
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

# --- leftovers ---------------------------------------------------------------------------
# Each prints one "; "-separated list of what remains of that tool's containers, or nothing.
count_lines() { grep -c . || true; }
dirs_in() { # [-d] dir...: "n entries in DIR" for each non-empty one (-d: directories only)
    local d n type=() what=entries
    [[ $1 != -d ]] || { type=(-type d); what=directories; shift; }
    for d in "$@"; do
        [[ -d $d ]] || continue
        n=$(find "$d" -mindepth 1 -maxdepth 1 "${type[@]}" | count_lines)
        ((n == 0)) || echo "$n $what in ${d#"$BASE"/}"
    done
}
mounts_under() { # dir...
    local d n
    for d in "$@"; do
        n=$(awk -v d="$d" '$5 == d || index($5, d "/") == 1' /proc/self/mountinfo | count_lines)
        ((n == 0)) || echo "$n mounts under ${d#"$BASE"/}"
    done
}
procs_of() { # label dir...
    local label=$1 n
    shift
    n=$(helper procs "$@" | count_lines)
    ((n == 0)) || echo "$n $label processes"
}
join_lines() { paste -sd';' - | sed 's/;/; /g'; }

leftovers_layerlet() {
    {
        dirs_in "$LL_ROOT/containers" "$LL_RUN/pods" "$LL_RUN/containers"
        mounts_under "$LL_ROOT" "$LL_RUN"
        procs_of layerlet "$LL_ROOT" "$LL_RUN" "$LL" "$SEALED"
        cgroups_of "$CG_LAYERLET"
        local n
        n=$(ll ps -a --output json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' || echo "?")
        [[ $n == 0 ]] || echo "$n containers in layerlet ps -a"
    } | join_lines
}
leftovers_containerd() {
    {
        local n
        n=$(ctrc containers ls -q | count_lines)
        ((n == 0)) || echo "$n containers in ctr containers ls"
        n=$(ctrc tasks ls -q | count_lines)
        ((n == 0)) || echo "$n tasks in ctr tasks ls"
        n=$(ctrc snapshots --snapshotter overlayfs ls | awk 'NR > 1 && $NF == "Active"' | count_lines)
        ((n == 0)) || echo "$n active snapshots"
        dirs_in -d "$CTR_DIR/state/io.containerd.runtime.v2.task/default"
        mounts_under "$CTR_DIR"
        procs_of "shim/container" "$CTR_SOCK" "$CTR_DIR/root" "$CTR_DIR/state"
        cgroups_of "$CG_CONTAINERD"
    } | join_lines
}
leftovers_podman() {
    {
        local n
        n=$(pm ps -aq | count_lines)
        ((n == 0)) || echo "$n containers in podman ps -a"
        dirs_in -d "$PM_DIR/root/overlay-containers"
        mounts_under "$PM_DIR"
        procs_of "conmon/container" "$PM_DIR"
        cgroups_of "$CG_PODMAN"
    } | join_lines
}
cgroups_of() { # ERE: "n cgroup directories (first...)" of ours that match
    local all n
    all=$(our_cgroups | grep -E "$1" || true)
    n=$(grep -c . <<<"$all" || true)
    ((n == 0)) || echo "$n cgroup directories ($(head -1 <<<"$all") ...)"
}

declare -A LEFT
report_leftovers() { # phase
    local tool what
    for tool in $TOOLS; do
        if [[ ${STATUS[$tool]} == "not installed" ]]; then continue; fi
        what=$("leftovers_$tool") || true
        LEFT[$1,$tool]=${what:-none}
    done
}

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
    layerlet) helper pss exe "$LL" "$SEALED" ;;
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
                if (p == "containerd") note = "  (target <= 0.25)" (r <= 0.25 ? "  OK" : "  MISSED")
                printf "ratio layerlet/%s (medians): %.2f%s\n", p, r, note }'
        else
            echo "ratio layerlet/$peer: n/a ($peer ${STATUS[$peer]})"
        fi
    done
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
    echo "layerlet PSS growth per container: $growth kB  (target <= 1024 kB)  $( ((growth <= 1024)) && echo OK || echo MISSED)"
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
