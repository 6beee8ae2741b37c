# Helpers shared by the benchmarks (sourced by bench/lib.sh, bench/pull.sh and
# bench/metrics.sh, which define REPO_DIR, die and log first). Defines functions only, and
# one setting: layerlet's pods keep loopback only unless a benchmark asks for networking in a
# namespace of its own, so no bridge or pod address ever appears in this machine's namespace.
export LAYERLET_POD_NETWORK=${LAYERLET_POD_NETWORK:-none}

# Unmount everything mounted at or below a directory, deepest first.
umount_under() {
    local dir=$1 m
    # /proc/self/mountinfo field 5 is the mount point (octal escapes; our paths have none).
    while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

# SIGTERM, then SIGKILL after 5 s; reaps it.
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

now() { echo "$EPOCHREALTIME"; }

# Sets LAYERLET: the binary given in $LAYERLET, else target/release/layerlet, built first
# unless NO_BUILD=1. A failed build ends the benchmark (never a stale binary).
find_layerlet() {
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
}
