#!/usr/bin/env bash
# Cold-pull benchmark (issue 2, point 7): layerlet vs containerd (ctr) vs podman.
#
# Builds layerlet (release), makes a ~200 MB image of 5 gzip layers of incompressible data
# with scripts/make_image.py, serves it from a private docker-registry on 127.0.0.1, and
# times, RUNS times per tool, a cold pull into an empty data root followed by `sync`
# (so every tool ends with everything durable).  Tools run interleaved within each round.
# Prints median/min/max seconds, containerd/layerlet and podman/layerlet ratios, and
# layerlet's unpacked store size against the image's unpacked size (apparent bytes).
#
# Environment:
#   RUNS=3            timed pulls per tool
#   LAYERS=5          random layers in the image
#   LAYER_MB=40       MiB of incompressible data per layer
#   GZIP_LEVEL=6      gzip level of the layers
#   DATA=random       random: incompressible layers (the issue's benchmark; deflate stores
#                     them, so inflate costs little); compressible: data gzip halves, which
#                     makes the inflate backend work
#   TOOLS="layerlet containerd podman"   subset/order of tools to run
#   LAYERLET=PATH     use this binary instead of building target/release/layerlet
#   NO_BUILD=1        do not run cargo build (use target/release/layerlet as it is)
#   BENCH_TMP=DIR     where the temp dir is made (default ${TMPDIR:-/tmp}); keep it on a
#                     disk file system (overlay upperdirs cannot live on overlay)
#   KEEP=1            keep the temp dir (registry storage, roots, logs) for inspection
#
# Needs: root, python3, docker-registry, skopeo, curl, tar, du; containerd+ctr and podman
# are optional (their rows say "not installed").

set -Eeuo pipefail

RUNS=${RUNS:-3}
LAYERS=${LAYERS:-5}
LAYER_MB=${LAYER_MB:-40}
GZIP_LEVEL=${GZIP_LEVEL:-6}
DATA=${DATA:-random}
TOOLS=${TOOLS:-"layerlet containerd podman"}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "pull.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (overlay mounts, containerd)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $DATA == random || $DATA == compressible ]] || die "DATA must be random or compressible"
for t in python3 docker-registry skopeo curl tar du; do
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

# --- layerlet binary -------------------------------------------------------------------
find_layerlet

# --- the image ---------------------------------------------------------------------------
IMG=$BASE/image
layer_args=()
for ((i = 0; i < LAYERS; i++)); do layer_args+=("--layer-$DATA-mb" "$LAYER_MB"); done
log "making the image: $LAYERS gzip layers x $LAYER_MB MiB of $DATA data (level $GZIP_LEVEL)"
python3 "$REPO_DIR/scripts/make_image.py" -q --out "$IMG" --ref bench/img:1 \
    --compression gzip --gzip-level "$GZIP_LEVEL" --seed 1 "${layer_args[@]}" \
    || die "make_image.py failed"

# The image's unpacked size, apparent bytes: every layer extracted into its own directory,
# as a layer store keeps them (du -sb counts the directories too), and the file bytes alone.
mkdir -p "$BASE/unpacked"
i=0
COMPRESSED=0
while read -r digest size; do
    mkdir -p "$BASE/unpacked/$i"
    tar --numeric-owner -xzf "$IMG/blobs/sha256/${digest#sha256:}" -C "$BASE/unpacked/$i"
    COMPRESSED=$((COMPRESSED + size))
    i=$((i + 1))
done < <(python3 - "$IMG" <<'EOF'
import json, sys
d = sys.argv[1]
idx = json.load(open(f"{d}/index.json"))
m = json.load(open(f"{d}/blobs/sha256/" + idx["manifests"][0]["digest"].split(":")[1]))
for l in m["layers"]:
    print(l["digest"], l["size"])
EOF
)
IMAGE_DU=$(du -sb "$BASE/unpacked" | cut -f1)
IMAGE_DU=$((IMAGE_DU - $(stat -c %s "$BASE/unpacked")))   # not the parent directory
IMAGE_FILES=$(find "$BASE/unpacked" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
rm -rf "$BASE/unpacked"

# --- registry ----------------------------------------------------------------------------
registry_start "$BASE"
REF=$REGISTRY/bench/img:1
log "pushing to $REF"
registry_push "$IMG" "$REF"

# --- tools -------------------------------------------------------------------------------
have() {
    case $1 in
    layerlet) return 0 ;;
    containerd) command -v containerd >/dev/null && command -v ctr >/dev/null ;;
    podman) command -v podman >/dev/null ;;
    *) die "unknown tool $1 (TOOLS=\"layerlet containerd podman\")" ;;
    esac
}

CTR_DIR=$BASE/containerd
CTR_SOCK=$CTR_DIR/containerd.sock
# shellcheck source=bench/containerd.sh
source "$REPO_DIR/bench/containerd.sh"

containerd_stop() {
    stop_pid "$CONTAINERD_PID"
    CONTAINERD_PID=""
}

# Per tool: prepare an empty root (untimed), then the timed pull + sync.  Each sets T0/T1
# (no subshell, so the cleanup trap always knows containerd's pid), or returns 1.
pull_layerlet() {
    local run=$1 root=$BASE/layerlet/root-$run
    mkdir -p "$root" "$BASE/layerlet/run-$run"
    sync
    T0=$(now)
    "$LAYERLET" --root "$root" --run-root "$BASE/layerlet/run-$run" pull "$REF" \
        >"$BASE/layerlet/pull-$run.log" 2>&1 || return 1
    sync
    T1=$(now)
}

pull_containerd() {
    local run=$1
    containerd_start "$run" || return 1
    sync
    T0=$(now)
    ctr --address "$CTR_SOCK" image pull --plain-http --snapshotter overlayfs "$REF" \
        >"$CTR_DIR/pull-$run.log" 2>&1 || { containerd_stop; return 1; }
    sync
    T1=$(now)
    containerd_stop
    umount_under "$CTR_DIR"
}

pull_podman() {
    local run=$1 d=$BASE/podman
    mkdir -p "$d/root-$run" "$d/runroot-$run" "$d/tmp-$run" "$d/net-$run"
    sync
    T0=$(now)
    TMPDIR=$d/tmp-$run podman --root "$d/root-$run" --runroot "$d/runroot-$run" \
        --tmpdir "$d/tmp-$run" --network-config-dir "$d/net-$run" \
        --storage-driver overlay --events-backend none \
        --cgroup-manager cgroupfs pull --quiet --tls-verify=false "$REF" \
        >"$d/pull-$run.log" 2>&1 || return 1
    sync
    T1=$(now)
    umount_under "$d"
}

declare -A TIMES STATUS STORE
for tool in $TOOLS; do
    if have "$tool"; then STATUS[$tool]=ok; else STATUS[$tool]="not installed"; fi
    TIMES[$tool]=""
done

for ((run = 1; run <= RUNS; run++)); do
    for tool in $TOOLS; do
        [[ ${STATUS[$tool]} == ok ]] || continue
        if "pull_$tool" "$run"; then
            secs=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.3f", b - a }')
            TIMES[$tool]+="$secs "
            log "run $run $tool: ${secs}s"
            # Store sizes from the first run, then free the space.
            root=$(
                case $tool in
                layerlet) echo "$BASE/layerlet/root-$run" ;;
                containerd) echo "$CTR_DIR/root-$run" ;;
                podman) echo "$BASE/podman/root-$run" ;;
                esac
            )
            if [[ $run == 1 ]]; then
                case $tool in
                layerlet) STORE[$tool]=$(du -sb "$root/layers" | cut -f1) ;;
                containerd) STORE[$tool]=$(du -sb "$root/io.containerd.snapshotter.v1.overlayfs/snapshots" | cut -f1) ;;
                podman) STORE[$tool]=$(du -sb "$root/overlay" | cut -f1) ;;
                esac
            fi
            [[ ${KEEP:-0} == 1 && $run == 1 ]] || rm -rf "$root"
        else
            STATUS[$tool]="failed (log above)"
            log "run $run $tool: FAILED"
            case $tool in
            layerlet) tail -20 "$BASE/layerlet/pull-$run.log" >&2 ;;
            containerd) tail -20 "$CTR_DIR/pull-$run.log" "$CTR_DIR/containerd-$run.log" >&2 2>/dev/null ;;
            podman) tail -20 "$BASE/podman/pull-$run.log" >&2 ;;
            esac
        fi
    done
done

# --- report ------------------------------------------------------------------------------
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r), $(findmnt -n -o FSTYPE -T "$BASE") under $BASE"
vers="layerlet $("$LAYERLET" --version 2>/dev/null | awk '{ print $NF }')"
have containerd && vers+=", containerd $(containerd --version | awk '{ print $3 }')"
have podman && vers+=", podman $(podman --version | awk '{ print $3 }')"
echo "$vers, docker-registry $(docker-registry --version | awk '{ print $3 }')"
args=()
for tool in $TOOLS; do args+=("$tool" "${STATUS[$tool]}" "${TIMES[$tool]}" "${STORE[$tool]:-}"); done
python3 - "$RUNS" "$LAYERS" "$LAYER_MB" "$DATA" "$COMPRESSED" "$IMAGE_DU" "$IMAGE_FILES" "${args[@]}" <<'EOF'
import statistics, sys
runs, layers, layer_mb, data, compressed, image_du, image_files = sys.argv[1:8]
rest = sys.argv[8:]
rows = [rest[i:i + 4] for i in range(0, len(rest), 4)]
image_du, image_files, compressed = int(image_du), int(image_files), int(compressed)
print(f"cold pull of a {layers} x {layer_mb} MiB gzip image of {data} data "
      f"({compressed / 1e6:.1f} MB compressed, "
      f"{image_du / 1e6:.1f} MB unpacked), {runs} runs each, every pull followed by sync")
print()
print(f"{'tool':<12}{'median s':>10}{'min s':>10}{'max s':>10}   runs")
med = {}
for tool, status, times, _ in rows:
    ts = [float(t) for t in times.split()]
    if status == "ok" and ts:
        med[tool] = statistics.median(ts)
        print(f"{tool:<12}{med[tool]:>10.2f}{min(ts):>10.2f}{max(ts):>10.2f}   "
              + " ".join(f"{t:.2f}" for t in ts))
    else:
        print(f"{tool:<12}{status:>30}" + ("   " + " ".join(f"{t:.2f}" for t in ts) if ts else ""))
print()
if "layerlet" in med:
    for peer in ("containerd", "podman"):
        if peer in med:
            r = med[peer] / med["layerlet"]
            note = ""
            if peer == "containerd":
                note = "  (target >= 1.5)" + ("  OK" if r >= 1.5 else "  MISSED")
            print(f"ratio {peer}/layerlet: {r:.2f}{note}")
        else:
            print(f"ratio {peer}/layerlet: n/a ({peer} not measured)")
else:
    print("ratio: n/a (layerlet not measured)")
print()
print(f"image unpacked size (du -sb of each layer extracted): {image_du} B"
      f"  (file bytes only: {image_files} B)")
for tool, status, _, store in rows:
    if not store:
        continue
    where = {"layerlet": "ROOT/layers", "containerd": "overlayfs snapshots",
             "podman": "ROOT/overlay"}[tool]
    diff = (int(store) - image_du) / image_du * 100
    note = ""
    if tool == "layerlet":
        note = "  (target within 1%)" + ("  OK" if abs(diff) <= 1 else "  MISSED")
    print(f"{tool + ' store (' + where + ')':<46}{int(store):>13} B  {diff:+.2f}%{note}")
if any(status.startswith("failed") for _, status, _, _ in rows):
    sys.exit(1)
EOF
