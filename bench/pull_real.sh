#!/usr/bin/env bash
# Pulls of real images (issue 19, point 1): layerlet vs containerd (ctr) vs podman on images
# made of real files, many of them small, the way a node meets them.
#
# Two images are built once from trees of this machine with scripts/make_image.py
# --layer-tree (cached under $CACHE, rebuilt only when missing):
#   A  5 gzip layers: python + perl + i18n, /usr/include, /usr/share/doc, /usr/share/man,
#      /usr/share/locale (about 600 MB unpacked, tens of thousands of files)
#   B  3 gzip layers holding most of A's files again, arranged in other layers (so no layer
#      of B is a layer of A), plus a layer of files A does not have (/usr/lib/gcc)
# Both are pushed to a private docker-registry on 127.0.0.1. In each of RUNS rounds, every
# tool (interleaved) starts from an empty root and pulls A, then B into the same root; each
# pull is timed with a trailing `sync` (so everything is durable). For each pull it reports
# the time, the growth of the tool's store (du --block-size=1, an inode counted once
# however many links it has) and the inodes created in it.
#
# Environment:
#   RUNS=3            rounds
#   TOOLS="layerlet containerd podman"   subset/order
#   CACHE=/var/tmp/layerlet-bench-real   where the two OCI layouts are kept between runs
#   LAYERLET=PATH, NO_BUILD=1, BENCH_TMP=DIR, KEEP=1   as in bench/pull.sh
#
# Needs: root, python3, docker-registry, skopeo, curl, du; containerd+ctr and podman are
# optional (their rows say "not installed").

set -Eeuo pipefail

RUNS=${RUNS:-3}
TOOLS=${TOOLS:-"layerlet containerd podman"}
CACHE=${CACHE:-/var/tmp/layerlet-bench-real}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "pull_real.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (overlay mounts, containerd)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
for t in python3 docker-registry skopeo curl du; do
    command -v "$t" >/dev/null || die "$t is required"
done

BASE=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/layerlet-bench.XXXXXX")
REGISTRY_PID=""
CONTAINERD_PID=""

# shellcheck source=bench/util.sh
source "$REPO_DIR/bench/util.sh"
# shellcheck source=bench/registry.sh
source "$REPO_DIR/bench/registry.sh"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    stop_pid "$CONTAINERD_PID"
    stop_pid "$REGISTRY_PID"
    umount_under "$BASE"
    if [[ ${KEEP:-0} == 1 ]]; then echo "# kept $BASE" >&2; else rm -rf "$BASE"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

find_layerlet

# --- the images ----------------------------------------------------------------------------
PY=/usr/lib/python3.11
for d in "$PY" /usr/share/perl /usr/share/i18n /usr/include /usr/share/doc /usr/share/man \
    /usr/share/locale /usr/lib/gcc; do
    [[ -d $d ]] || die "$d is missing: the images are made of this machine's trees"
done
make_real_image() {
    local out=$1 ref=$2
    shift 2
    [[ -f $out/index.json ]] && return 0
    log "building $ref in $out (once; cached)"
    python3 "$REPO_DIR/scripts/make_image.py" -q --force --out "$out" --ref "$ref" "$@" \
        || die "make_image.py failed for $ref"
}
mkdir -p "$CACHE"
make_real_image "$CACHE/a" bench/real-a:1 \
    --layer-tree "$PY=usr/lib/python3,/usr/share/perl=usr/share/perl,/usr/share/i18n=usr/share/i18n" \
    --layer-tree /usr/include=usr/include \
    --layer-tree /usr/share/doc=usr/share/doc \
    --layer-tree /usr/share/man=usr/share/man \
    --layer-tree /usr/share/locale=usr/share/locale
make_real_image "$CACHE/b" bench/real-b:1 \
    --layer-tree /usr/include=usr/include,/usr/share/doc=usr/share/doc \
    --layer-tree /usr/share/man=usr/share/man,/usr/share/locale=usr/share/locale,$PY=usr/lib/python3 \
    --layer-tree /usr/lib/gcc=usr/lib/gcc

# Unpacked size and file count of each image, from its layers (what an unshared store holds).
image_facts() {
    python3 - "$1" <<'EOF'
import json, sys, tarfile
d = sys.argv[1]
idx = json.load(open(f"{d}/index.json"))
m = json.load(open(f"{d}/blobs/sha256/" + idx["manifests"][0]["digest"].split(":")[1]))
size = files = packed = 0
for l in m["layers"]:
    packed += l["size"]
    with tarfile.open(f"{d}/blobs/sha256/" + l["digest"].split(":")[1], "r|gz") as t:
        for e in t:
            if e.isfile():
                files += 1
                size += e.size
print(packed, size, files)
EOF
}
# The least work a pull of an image must do (bench/pull_floor.rs): hash, inflate and hash
# every layer blob, one thread per layer, writing nothing. Median of three.
FLOOR=$REPO_DIR/target/release/examples/pull_floor
if [[ ${NO_BUILD:-0} != 1 ]]; then
    (cd "$REPO_DIR" && cargo build --release --quiet --example pull_floor) || die "cargo build --example pull_floor failed"
fi
floor_of() {
    local blobs
    mapfile -t blobs < <(python3 - "$1" <<'EOF'
import json, sys
d = sys.argv[1]
idx = json.load(open(f"{d}/index.json"))
m = json.load(open(f"{d}/blobs/sha256/" + idx["manifests"][0]["digest"].split(":")[1]))
for l in m["layers"]:
    print(f"{d}/blobs/sha256/" + l["digest"].split(":")[1])
EOF
    )
    for _ in 1 2 3; do "$FLOOR" "${blobs[@]}" | cut -d' ' -f1; done | sort -n | sed -n 2p
}
A_FLOOR=none
B_FLOOR=none
if [[ -x $FLOOR ]]; then
    A_FLOOR=$(floor_of "$CACHE/a")
    B_FLOOR=$(floor_of "$CACHE/b")
fi

read -r A_PACKED A_BYTES A_FILES < <(image_facts "$CACHE/a")
read -r B_PACKED B_BYTES B_FILES < <(image_facts "$CACHE/b")

registry_start "$BASE"
REF_A=$REGISTRY/bench/real-a:1
REF_B=$REGISTRY/bench/real-b:1
log "pushing $REF_A and $REF_B"
registry_push "$CACHE/a" "$REF_A"
registry_push "$CACHE/b" "$REF_B"

# --- tools ---------------------------------------------------------------------------------
have() {
    case $1 in
    layerlet) return 0 ;;
    containerd) command -v containerd >/dev/null && command -v ctr >/dev/null ;;
    podman) command -v podman >/dev/null ;;
    *) die "unknown tool $1" ;;
    esac
}
CTR_DIR=$BASE/containerd
CTR_SOCK=$CTR_DIR/containerd.sock
# shellcheck source=bench/containerd.sh
source "$REPO_DIR/bench/containerd.sh"

# The store each tool writes into, for a round.
store_of() {
    case $1 in
    layerlet) echo "$BASE/layerlet/root-$2" ;;
    containerd) echo "$CTR_DIR/root-$2" ;;
    podman) echo "$BASE/podman/root-$2" ;;
    esac
}

# pull TOOL ROUND REF: one timed pull + sync into the round's store; sets T0/T1.
pull() {
    local tool=$1 run=$2 ref=$3 log=$BASE/$1-$2-$(basename "${3%%:*}").log
    sync
    T0=$(now)
    case $tool in
    layerlet)
        "$LAYERLET" --root "$(store_of layerlet "$run")" --run-root "$BASE/layerlet/run-$run" \
            pull "$ref" >"$log" 2>&1 || { tail -20 "$log" >&2; return 1; } ;;
    containerd)
        ctr --address "$CTR_SOCK" image pull --plain-http --snapshotter overlayfs "$ref" \
            >"$log" 2>&1 || { tail -20 "$log" >&2; return 1; } ;;
    podman)
        TMPDIR=$BASE/podman/tmp-$run podman --root "$(store_of podman "$run")" \
            --runroot "$BASE/podman/runroot-$run" --tmpdir "$BASE/podman/tmp-$run" \
            --network-config-dir "$BASE/podman/net-$run" --storage-driver overlay \
            --events-backend none --cgroup-manager cgroupfs pull --quiet --tls-verify=false \
            "$ref" >"$log" 2>&1 || { tail -20 "$log" >&2; return 1; } ;;
    esac
    sync
    T1=$(now)
}

# Bytes and inodes a store holds (each inode once, whatever its links).
usage() {
    local bytes inodes
    bytes=$(du -s --block-size=1 "$1" | cut -f1)
    inodes=$(find "$1" -xdev -printf '%i\n' | sort -u | wc -l)
    echo "$bytes $inodes"
}

RESULTS=$BASE/results.txt
: >"$RESULTS"
declare -A STATUS
for tool in $TOOLS; do
    if have "$tool"; then STATUS[$tool]=ok; else STATUS[$tool]="not installed"; fi
done

for ((run = 1; run <= RUNS; run++)); do
    for tool in $TOOLS; do
        [[ ${STATUS[$tool]} == ok ]] || continue
        store=$(store_of "$tool" "$run")
        mkdir -p "$store" "$BASE/layerlet/run-$run" "$BASE/podman/runroot-$run" \
            "$BASE/podman/tmp-$run" "$BASE/podman/net-$run"
        if [[ $tool == containerd ]]; then
            containerd_start "$run" || { STATUS[$tool]=failed; continue; }
        fi
        read -r b0 i0 < <(usage "$store")
        for which in A B; do
            ref=$REF_A
            [[ $which == B ]] && ref=$REF_B
            if ! pull "$tool" "$run" "$ref"; then
                STATUS[$tool]="failed (log above)"
                break
            fi
            read -r b1 i1 < <(usage "$store")
            secs=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.3f", b - a }')
            echo "$tool $which $run $secs $((b1 - b0)) $((i1 - i0))" >>"$RESULTS"
            log "run $run $tool $which: ${secs}s, +$((b1 - b0)) B, +$((i1 - i0)) inodes"
            b0=$b1
            i0=$i1
        done
        if [[ $tool == containerd ]]; then
            stop_pid "$CONTAINERD_PID"
            CONTAINERD_PID=""
        fi
        umount_under "$store"
        [[ ${KEEP:-0} == 1 && $run == 1 ]] || rm -rf "$store"
    done
done

# --- report --------------------------------------------------------------------------------
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r), $(findmnt -n -o FSTYPE -T "$BASE") under $BASE"
vers="layerlet $("$LAYERLET" --version 2>/dev/null | awk '{ print $NF }')"
have containerd && vers+=", containerd $(containerd --version | awk '{ print $3 }')"
have podman && vers+=", podman $(podman --version | awk '{ print $3 }')"
echo "$vers"
printf 'image A: %d MB compressed, %d MB of files, %d files\n' $((A_PACKED / 1000000)) $((A_BYTES / 1000000)) "$A_FILES"
printf 'image B: %d MB compressed, %d MB of files, %d files (most of them also in A, in other layers)\n' $((B_PACKED / 1000000)) $((B_BYTES / 1000000)) "$B_FILES"
echo "floor (hash + inflate + hash of every layer, one thread per layer, nothing written): A ${A_FLOOR} s, B ${B_FLOOR} s"
status_args=()
for tool in $TOOLS; do status_args+=("$tool=${STATUS[$tool]}"); done
python3 - "$RESULTS" "$RUNS" "$B_FLOOR" "${status_args[@]}" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tool, which, run, secs, grow, inodes = line.split()
    rows[(tool, which)].append((float(secs), int(grow), int(inodes)))
b_floor = None if sys.argv[3] == "none" else float(sys.argv[3])
status = dict(a.split("=", 1) for a in sys.argv[4:])
print(f"\ncold pull of A into an empty store, then B into the same store; {sys.argv[2]} rounds, "
      "medians, every pull followed by sync\n")
print(f"{'tool':<12}{'image':<7}{'median s':>10}{'min s':>9}{'max s':>9}{'store +MB':>11}{'inodes +':>10}")
med = {}
for tool in status:
    if status[tool] != "ok":
        print(f"{tool:<12}{status[tool]}")
        continue
    for which in ("A", "B"):
        r = rows.get((tool, which))
        if not r:
            continue
        t = [x[0] for x in r]
        med[(tool, which)] = (statistics.median(t), statistics.median(x[1] for x in r))
        print(f"{tool:<12}{which:<7}{statistics.median(t):>10.2f}{min(t):>9.2f}{max(t):>9.2f}"
              f"{statistics.median(x[1] for x in r) / 1e6:>11.1f}{statistics.median(x[2] for x in r):>10.0f}")
print()
if ("layerlet", "A") in med:
    a, a_bytes = med[("layerlet", "A")]
    for peer in ("containerd", "podman"):
        if (peer, "A") in med:
            r = a / med[(peer, "A")][0]
            note = "  (target <= 0.33)" if peer == "containerd" else ""
            print(f"layerlet/{peer} A: {r:.2f}{note}")
    if ("layerlet", "B") in med:
        b, b_bytes = med[("layerlet", "B")]
        print(f"layerlet B/A time: {b / a:.2f}  (target <= 0.33)")
        if b_floor is not None:
            print(f"  B's floor alone, nothing written: {b_floor:.2f} s = {b_floor / a:.2f} of A")
        print(f"layerlet B/A store growth: {b_bytes / a_bytes:.2f}  (target <= 0.25)")
if any(s.startswith("failed") for s in status.values()):
    sys.exit(1)
EOF
