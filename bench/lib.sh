# Shared set-up of the benchmarks that compare layerlet with containerd and podman
# (sourced by run.sh and agent.sh, which define REPO_DIR, REF, TOOLS, PODMAN_ULIMITS, die and
# log first, and BENCH_NAME for the temp dir's name): a temp dir with a copied layerlet
# binary, the busybox image made offline and imported into each tool's private store, a
# private containerd, process/memory/cgroup helpers, leftover checks and a cleanup trap that
# removes everything of this run.
# shellcheck shell=bash

BASE=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/layerlet-${BENCH_NAME:-bench}.XXXXXX")
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
SEALED_MONITOR=""            # and of the monitor binary beside it (where there is one)

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

def cmd_pct(args):
    # pct P SECONDS...: the P-th percentile (nearest rank) in ms
    p, ts = float(args[0]), sorted(float(x) * 1000 for x in args[1:])
    print(f"{ts[max(0, -(-int(len(ts) * p) // 100) - 1)]:.1f}")

def cmd_phases(args):
    # phases FILE...: one JSON line {"phase","ms"} per timed phase (LAYERLET_PHASE_TIMES,
    # src/phases.rs); per phase, in the order first seen: "name median p90 count" in ms
    import json
    seen = {}
    for path in args:
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            seen.setdefault(rec["phase"], []).append(float(rec["ms"]))
    for name, ms in seen.items():
        ms.sort()
        p90 = ms[max(0, -(-len(ms) * 9 // 10) - 1)]
        print(f"{name} {statistics.median(ms):.2f} {p90:.2f} {len(ms)}")

{"procs": cmd_procs, "pss": cmd_pss, "cgroups": cmd_cgroups,
 "stats": cmd_stats, "pct": cmd_pct, "phases": cmd_phases}[sys.argv[1]](sys.argv[2:])
EOF

helper() { python3 "$HELPER" "$@"; }

# --- cleanup -----------------------------------------------------------------------------
# shellcheck source=bench/util.sh
source "$REPO_DIR/bench/util.sh"

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
        while read -r pid _; do left+=("$pid"); done < <(helper procs "$BASE" ${SEALED:+"$SEALED"} ${SEALED_MONITOR:+"$SEALED_MONITOR"})
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
    local copy dir
    for copy in "$SEALED" "$SEALED_MONITOR"; do
        [[ $copy == /run/layerlet-exe/*/layerlet* ]] || continue
        dir=${copy%/*}
        while awk -v m="$copy" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; do
            umount "$copy" 2>/dev/null || umount -l "$copy" 2>/dev/null || break
        done
        rm -rf "$dir" "$dir.lock"
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    # A benchmark's own processes (an agent) go first.
    [[ $(type -t before_cleanup) != function ]] || before_cleanup
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

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

# --- layerlet binary ---------------------------------------------------------------------
LAYERLET_SET=${LAYERLET:-}
find_layerlet
mkdir -p "$BASE/bin"
cp "$LAYERLET" "$BASE/bin/layerlet"
LL=$BASE/bin/layerlet
# Helpers run from a read-only copy keyed by the binary's dev-ino-size-mtime
# (src/sys/exe.rs); where it will be, so that its processes can be found and it removed.
sealed_copy_of() {
    echo "/run/layerlet-exe/$(stat -c '%d %i %s %Y' "$1" | awk '{ printf "%x-%x-%x-%x", $1, $2, $3, $4 }')/${1##*/}"
}
SEALED=$(sealed_copy_of "$LL")
# Monitors run from the monitor binary installed beside layerlet, where there is one.
if [[ -x ${LAYERLET%/*}/layerlet-monitor ]]; then
    cp "${LAYERLET%/*}/layerlet-monitor" "$BASE/bin/layerlet-monitor"
    SEALED_MONITOR=$(sealed_copy_of "$BASE/bin/layerlet-monitor")
fi

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

# shellcheck source=bench/containerd.sh
source "$REPO_DIR/bench/containerd.sh"

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
        procs_of layerlet "$LL_ROOT" "$LL_RUN" "$LL" "$SEALED" ${SEALED_MONITOR:+"$SEALED_MONITOR"}
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

