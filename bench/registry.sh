# A private docker-registry on a free 127.0.0.1 port, storage under a directory (sourced by
# bench/pull.sh and bench/pull_real.sh, which define die and log first).
# shellcheck shell=bash

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# registry_start DIR: serves DIR/registry; sets REGISTRY_PID and REGISTRY (host:port).
registry_start() {
    local dir=$1 port i
    port=$(free_port)
    mkdir -p "$dir/registry"
    cat >"$dir/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
    docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    REGISTRY_PID=$!
    for i in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
        kill -0 "$REGISTRY_PID" 2>/dev/null || { cat "$dir/registry.log" >&2; die "registry exited"; }
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null || die "registry not answering on port $port"
    REGISTRY=127.0.0.1:$port
}

# registry_push OCI_DIR REF: copies the OCI layout to the registry under REF.
registry_push() {
    skopeo copy -q --dest-tls-verify=false "oci:$1" "docker://$2" >"$1.push.log" 2>&1 \
        || { cat "$1.push.log" >&2; die "skopeo copy to $2 failed"; }
}
