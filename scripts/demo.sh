#!/usr/bin/env bash
# layerlet's main job on bundled examples, offline: builds layerlet, prepares two example
# images locally from Debian's static busybox (they share a base layer), serves them from a
# local OCI registry, pulls both into one shared layer store and shows what sharing saves;
# then runs the agent on the example pods in a network namespace of its own (pods get IPs
# from CNI, talk to each other, and a hostPort answers at the node address).
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${LAYERLET_DEMO_ROOT:-/var/lib/layerlet-demo}
PORT=${LAYERLET_DEMO_PORT:-5055}
packages=(docker-registry busybox-static skopeo python3 curl containernetworking-plugins iptables iproute2)
source "$(dirname "${BASH_SOURCE[0]}")/apt-missing.sh"
install_missing "${packages[@]}"

./scripts/install-build-deps.sh
cargo build --release --quiet
layerlet=target/release/layerlet
work=$(mktemp -d /tmp/layerlet-demo.XXXXXX)
registry_pid=
agent_pid=
# The demo's node lives in a network namespace of its own: its pod bridge, the pod
# addresses and the host port exist there only, never in this machine's own namespace.
NETNS=layerlet-demo-$$
NODE_IP=10.255.255.1
in_node() { nsenter --net="/run/netns/$NETNS" -- "$@"; }
cleanup() {
  # Best effort: a helper already gone must not change the exit status (set -e).
  set +e
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
  in_node "$layerlet" --root "$ROOT" rm -t 0 web worker >/dev/null 2>&1
  ip netns del "$NETNS" 2>/dev/null
  rm -rf "$work"
  return 0
}
trap cleanup EXIT

echo "== preparing example images from /bin/busybox (no network needed)"
python3 scripts/make_image.py --out "$work/web" --ref example/web:1 --busybox \
  --layer-random-mb 4 --seed 1 --file 'etc/motd=welcome to the web image' --cmd 'httpd -f -p 8080' >/dev/null
python3 scripts/make_image.py --out "$work/worker" --ref example/worker:1 --busybox \
  --layer-random-mb 2 --seed 2 --cmd 'sleep 3600' --volume /data >/dev/null

cat > "$work/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$PORT
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
for img in web worker; do
  skopeo copy -q --dest-tls-verify=false "oci:$work/$img" "docker://127.0.0.1:$PORT/example/$img:1"
done

run() { echo; echo "\$ layerlet $*"; "$layerlet" --root "$ROOT" "$@"; }
run pull "127.0.0.1:$PORT/example/web:1"
run pull "127.0.0.1:$PORT/example/worker:1"
run images
run history "127.0.0.1:$PORT/example/worker:1"
run df

# The main job: the agent reconciles the bundled example pods (manifests/examples), in the
# node's network namespace (loopback with the node's address) with pod networking through
# Debian's CNI plugins: layerlet's default bridge network, 10.89.0.0/16 (an empty conf dir
# of its own, so a podman or kind config in /etc/cni/net.d is not picked up instead).
ip netns add "$NETNS"
in_node ip link set lo up
in_node ip addr add "$NODE_IP/32" dev lo
in_node "$layerlet" --root "$ROOT" rm web worker >/dev/null 2>&1 || true
manifests="$work/manifests"
mkdir -p "$manifests"
cp manifests/examples/*.yaml "$manifests/"
mkdir -p "$work/net.d"
LISTEN=${LAYERLET_DEMO_LISTEN:-127.0.0.1:10265}
echo; echo "\$ layerlet agent --manifests $manifests --listen $LISTEN --shutdown-pods --node-ip $NODE_IP --cni-conf-dir $work/net.d &"
# nsenter itself, not the in_node function: `$!` must be the agent, which SIGTERM stops.
nsenter --net="/run/netns/$NETNS" -- "$layerlet" --root "$ROOT" agent --manifests "$manifests" \
  --listen "$LISTEN" --shutdown-pods --node-ip "$NODE_IP" --cni-conf-dir "$work/net.d" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do
  running=$(in_node curl -fsS "http://$LISTEN/api/v1/pods" 2>/dev/null | grep -c '"phase": "Running"' || true)
  [ "$running" = 2 ] && break
  sleep 0.1
done
echo; echo "\$ curl -s http://$LISTEN/api/v1/pods   (name, phase, ready, pod IP)"
in_node curl -fsS "http://$LISTEN/api/v1/pods" | python3 -c 'import json,sys
for p in json.load(sys.stdin)["items"]:
    s = p["status"]
    print(p["metadata"]["namespace"] + "/" + p["metadata"]["name"], s["phase"],
          "ready" if any(c["type"] == "Ready" and c["status"] == "True" for c in s["conditions"]) else "not-ready",
          s.get("podIP", "-"))'
sleep 1
run ps
web_ip=$("$layerlet" --root "$ROOT" inspect web/server | python3 -c 'import json,sys; print(json.load(sys.stdin)["PodIPs"][0])')
echo; echo "\$ layerlet exec worker -- wget -qO- http://$web_ip:8080/   (pod to pod, by pod IP)"
"$layerlet" --root "$ROOT" exec worker -- /bin/busybox wget -qO- "http://$web_ip:8080/"
echo; echo "\$ wget -qO- http://$NODE_IP:8080/   (web's hostPort, at the node's address)"
in_node timeout 5 busybox wget -qO- "http://$NODE_IP:8080/"
echo; echo "\$ layerlet inspect web/server   (GraphDriver.Data)"
"$layerlet" --root "$ROOT" inspect web/server | sed -n '/"GraphDriver"/,/"Name"/p'
echo; echo "\$ layerlet inspect web/probe   (GraphDriver.Data)"
"$layerlet" --root "$ROOT" inspect web/probe | sed -n '/"GraphDriver"/,/"Name"/p'
run diff web/probe
run diff web/server
run exec web/probe -- sh -c 'hostname; /bin/busybox wget -qO- http://127.0.0.1:8080/'
run logs web/probe
run logs worker

# The accounting thread refreshes a changed writable layer within about a second.
sleep 2
echo; echo "\$ curl -s http://$LISTEN/metrics | grep -E '^layerlet_(container_cow_bytes|store_bytes|sharing_)'"
in_node curl -fsS "http://$LISTEN/metrics" | grep -E '^layerlet_(container_cow_bytes|store_bytes|sharing_)'

echo; echo "\$ rm $manifests/worker.yaml   (the agent stops and deletes the pod)"
rm "$manifests/worker.yaml"
sleep 4
run ps -a
echo; echo "\$ kill -TERM <agent>   (--shutdown-pods: the agent stops its pods before exiting)"
kill -TERM "$agent_pid"; wait "$agent_pid" || true
agent_pid=
run ps -a
echo; echo "\$ layerlet rm web"
in_node "$layerlet" --root "$ROOT" rm web
echo
echo "Data root: $ROOT (remove it with: rm -rf $ROOT)"
exit 0
