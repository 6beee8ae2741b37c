# A private containerd for the benchmarks (sourced by bench/lib.sh and bench/pull.sh): own
# root, state and sockets under $CTR_DIR, socket $CTR_SOCK; nothing but content + overlayfs.
# shellcheck shell=bash

# containerd_start [SUFFIX]: root-SUFFIX, state-SUFFIX, config-SUFFIX.toml and
# containerd-SUFFIX.log (no suffix: root, state, config.toml, containerd.log); sets
# CONTAINERD_PID and waits until it answers.
containerd_start() {
    local sfx=${1:+-$1} i
    mkdir -p "$CTR_DIR/root$sfx" "$CTR_DIR/state$sfx"
    cat >"$CTR_DIR/config$sfx.toml" <<EOF
version = 2
root = "$CTR_DIR/root$sfx"
state = "$CTR_DIR/state$sfx"
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
    containerd --config "$CTR_DIR/config$sfx.toml" >"$CTR_DIR/containerd$sfx.log" 2>&1 &
    CONTAINERD_PID=$!
    for i in $(seq 1 100); do
        ctr --address "$CTR_SOCK" version >/dev/null 2>&1 && return 0
        kill -0 "$CONTAINERD_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$CTR_DIR/containerd$sfx.log" >&2
    return 1
}
