#!/usr/bin/env bash
# A kind cluster with layerlet in kube mode, then `kubectl logs`, `exec` and `top` on a pod
# that layerlet runs:  scripts/kind-up.sh [CLUSTER]   (default: layerlet)
# Builds the image (Dockerfile), creates the cluster (a control plane and one worker, which
# hosts layerlet's node "layerlet-<worker>"), loads the image, installs charts/layerlet with
# kube.enabled=true and the kubelet API on port 10350, and metrics-server for `kubectl top`.
# UNTESTED: this project's machines have no Docker daemon and reach no image registry, so
# only `bash -n` has checked this script. Needs docker, kind, kubectl and helm, and network
# access for the base images, busybox and metrics-server.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${1:-layerlet}
image=layerlet:0.1.0

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-up.sh: $tool is not on PATH: install it first" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "kind-up.sh: docker cannot reach its daemon: start Docker first" >&2; exit 1; }

k() { kubectl --context "kind-$cluster" "$@"; }
# wait_for WHAT CMD...: CMD until it succeeds, at most 3 minutes.
wait_for() {
  local what=$1 i
  shift
  for i in $(seq 60); do "$@" >/dev/null 2>&1 && return 0; sleep 3; done
  echo "kind-up.sh: timed out waiting for $what" >&2
  return 1
}

docker build -t "$image" .
if ! kind get clusters | grep -qx "$cluster"; then
  printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n' |
    kind create cluster --name "$cluster" --config -
fi
kind load docker-image "$image" --name "$cluster"

# The chart's DaemonSet runs on nodes labelled layerlet.io/host (its nodeSelector below).
worker=$(k get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{.items[0].metadata.name}')
k label node "$worker" layerlet.io/host=true --overwrite
# kindnet and kube-proxy tolerate every taint, so they would be bound to layerlet's node too
# (a second copy on the worker): keep them off nodes labelled instance-type=layerlet.
off_layerlet='{"spec":{"template":{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"node.kubernetes.io/instance-type","operator":"NotIn","values":["layerlet"]}]}]}}}}}}}'
for ds in kindnet kube-proxy; do
  k -n kube-system patch daemonset "$ds" --type merge -p "$off_layerlet"
done

dns=$(k -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
helm --kube-context "kind-$cluster" upgrade --install layerlet charts/layerlet \
  --namespace kube-system --wait --timeout 5m \
  --set kube.enabled=true --set kubelet.enabled=true --set kubelet.port=10350 \
  --set "clusterDNS={$dns}" --set-string 'nodeSelector.layerlet\.io/host=true'
node=layerlet-$worker
wait_for "node $node" k get node "$node"
k wait --for=condition=Ready "node/$node" --timeout=180s
k get node "$node" -o jsonpath='{.status.addresses} kubelet port {.status.daemonEndpoints.kubeletEndpoint.Port}{"\n"}'

# metrics-server reads /metrics/resource from every node's kubelet API; layerlet's
# certificate is self-signed, as kind's kubelets' are.
k apply -f https://github.com/kubernetes-sigs/metrics-server/releases/latest/download/components.yaml
k -n kube-system patch deployment metrics-server --type json \
  -p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'

# A pod for layerlet's node: bound there by name, tolerating the node's taint.
k apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hello-layerlet, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: $node}
  tolerations: [{key: layerlet.io/agent, operator: Equal, value: "true", effect: NoSchedule}]
  containers:
  - name: app
    image: busybox:1.36
    command: ["sh", "-c", "i=0; while true; do echo tick \$i; i=\$((i+1)); sleep 2; done"]
EOF
k wait --for=condition=Ready pod/hello-layerlet --timeout=180s
k get pod hello-layerlet -o wide

set -x
k logs hello-layerlet --tail=3
k exec hello-layerlet -- sh -c 'hostname; ip -4 addr show eth0'
wait_for "metrics of hello-layerlet" k top pod hello-layerlet
k top pod hello-layerlet
k top node "$node"
