#!/usr/bin/env python3
"""A stand-in for the API server's node proxy, for bench/kubelet.sh (the tests use the Rust
one in tests/kubelet_support): plain HTTP on 127.0.0.1 for kubectl, the discovery documents,
GET of a pod (from the kubelet's /pods), and pods/POD/{log,exec,attach,portforward}
forwarded to the kubelet's paths over TLS with a client certificate, upgraded connections
passed through byte for byte. For `kubectl top` it also serves what metrics-server serves
(metrics.k8s.io/v1beta1, from two scrapes of the kubelet's /metrics/resource a second apart)
and the Node (/api/v1/nodes) that `kubectl top node` reads.

Usage: kubelet_proxy.py KUBELET_ADDR SERVING_CA CLIENT_CERT CLIENT_KEY
Prints the port it listens on, then serves until killed.
"""
import json
import os
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

KUBELET, SERVING_CA, CERT, KEY = sys.argv[1:5]
KHOST, KPORT = KUBELET.rsplit(":", 1)

CTX = ssl.create_default_context(cafile=SERVING_CA)
CTX.load_cert_chain(CERT, KEY)
CTX.set_alpn_protocols(["http/1.1"])

API_VERSIONS = {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
METRICS_GV = {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}
METRICS_GROUP = {"name": "metrics.k8s.io", "versions": [METRICS_GV], "preferredVersion": METRICS_GV}
API_GROUPS = {"kind": "APIGroupList", "apiVersion": "v1", "groups": [METRICS_GROUP]}
METRICS_RESOURCES = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1",
    "resources": [{"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics",
                   "verbs": ["get", "list"]},
                  {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics",
                   "verbs": ["get", "list"]}]}
RESOURCES = [("pods", "Pod", ["get", "list"]), ("pods/log", "Pod", ["get"]),
             ("pods/exec", "PodExecOptions", ["create", "get"]),
             ("pods/attach", "PodAttachOptions", ["create", "get"]),
             ("pods/portforward", "PodPortForwardOptions", ["create", "get"])]
API_V1 = {"kind": "APIResourceList", "groupVersion": "v1",
          "resources": [{"name": n, "singularName": "", "namespaced": True, "kind": k, "verbs": v}
                        for n, k, v in RESOURCES] +
                       [{"name": "nodes", "singularName": "", "namespaced": False, "kind": "Node",
                         "verbs": ["get", "list"]}]}


def kubelet_conn():
    raw = socket.create_connection((KHOST, int(KPORT)))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return CTX.wrap_socket(raw, server_hostname=KHOST)


def kubelet_fetch(path):
    """Status and body of a GET of the kubelet (it answers with a Content-Length)."""
    s = kubelet_conn()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def kubelet_get(path):
    return kubelet_fetch(path)[1]


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
UNESCAPE = {"n": "\n", "\\": "\\", '"': '"'}


def scrape():
    """The figures metrics-server reads from /metrics/resource: {key: [cpu, ws, start, ms]},
    key None for the node, (namespace, pod, container) for containers; a sample without a
    timestamp has the request's time, as metrics-server takes it."""
    asked = int(time.time() * 1000)
    code, body = kubelet_fetch("/metrics/resource")
    if code != 200:
        raise OSError(f"/metrics/resource: {code}")
    points = {}
    for line in body.decode().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"bad sample line: {line}")
        name, labels, value, ts = m.groups()
        labels = {k: re.sub(r"\\(.)", lambda e: UNESCAPE.get(e[1], e[1]), v)
                  for k, v in LABEL.findall(labels or "")}
        if name.startswith("node_"):
            key = None
        elif name.startswith("container_") and {"namespace", "pod", "container"} <= labels.keys():
            key = (labels["namespace"], labels["pod"], labels["container"])
        else:
            continue
        p = points.setdefault(key, [None, None, None, asked])
        if name in ("node_cpu_usage_seconds_total", "container_cpu_usage_seconds_total"):
            p[0], p[3] = float(value), int(ts) if ts else asked
        elif name in ("node_memory_working_set_bytes", "container_memory_working_set_bytes"):
            p[1] = float(value)
        elif name == "container_start_time_seconds":
            p[2] = float(value)
    return points


def usage(prev, last):
    """metrics-server's usage between two points, None where it drops them."""
    if prev is None or None in (prev[0], last[0], last[1]):
        return None
    window = last[3] - prev[3]
    if last[0] <= 0 or last[1] <= 0 or last[0] < prev[0] or window <= 0 or prev[2] != last[2]:
        return None
    ws = int(last[1])
    return ({"cpu": f"{int((last[0] - prev[0]) * 1e9 / (window / 1e3))}n",
             "memory": f"{ws // 1024}Ki" if ws % 1024 == 0 else str(ws)},
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last[3] / 1000)),
            f"{window / 1000:.3f}s")


def node_name():
    return json.loads(kubelet_get("/stats/summary"))["node"]["nodeName"]


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
            "code": code, "message": message}


def metrics(segs):
    """GET /apis/metrics.k8s.io/v1beta1/...: status and object."""
    first = scrape()
    time.sleep(1)
    last = scrape()
    gv = "metrics.k8s.io/v1beta1"
    if segs[:1] == ["nodes"] and len(segs) <= 2:
        name, items = node_name(), []
        u = usage(first.get(None), last[None]) if None in last else None
        if u:
            items.append({"kind": "NodeMetrics", "apiVersion": gv, "metadata": {"name": name},
                          "usage": u[0], "timestamp": u[1], "window": u[2]})
        if len(segs) == 1:
            return 200, {"kind": "NodeMetricsList", "apiVersion": gv, "metadata": {}, "items": items}
        if items and segs[1] == name:
            return 200, items[0]
        return 404, status(404, "NotFound", f'nodes.metrics.k8s.io "{segs[1]}" not found')
    if segs == ["pods"]:
        ns, want = None, None
    elif len(segs) in (3, 4) and segs[0] == "namespaces" and segs[2] == "pods":
        ns, want = segs[1], (segs[3] if len(segs) == 4 else None)
    else:
        return 404, {}
    items = []
    for p in json.loads(kubelet_get("/pods")).get("items", []):
        meta = p["metadata"]
        if (ns and meta["namespace"] != ns) or (want and meta["name"] != want) or \
                p.get("status", {}).get("phase") != "Running":
            continue
        keys = [k for k in last if k and k[:2] == (meta["namespace"], meta["name"])]
        if not keys or any(k not in first for k in keys):
            continue  # metrics-server needs every container in both scrapes
        used = [(k[2], usage(first[k], last[k])) for k in sorted(keys)]
        used = [(c, u) for c, u in used if u]
        if used:
            earliest = min(used, key=lambda cu: cu[1][1])[1]
            items.append({"kind": "PodMetrics", "apiVersion": gv,
                          "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                          "timestamp": earliest[1], "window": earliest[2],
                          "containers": [{"name": c, "usage": u[0]} for c, u in used]})
    if want is None:
        return 200, {"kind": "PodMetricsList", "apiVersion": gv, "metadata": {}, "items": items}
    if items:
        return 200, items[0]
    return 404, status(404, "NotFound", f'pods.metrics.k8s.io "{want}" not found')


def core_nodes(segs):
    """GET /api/v1/nodes[/NAME]: the Node the agent would have registered, from this host's
    cores and memory, for kubectl top node's percentages."""
    name = node_name()
    with open("/proc/meminfo") as f:
        kib = next(line.split()[1] for line in f if line.startswith("MemTotal:"))
    res = {"cpu": str(os.cpu_count() or 1), "memory": f"{kib}Ki", "pods": "110"}
    node = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name},
            "status": {"capacity": res, "allocatable": res}}
    if not segs:
        return 200, {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [node]}
    if segs == [name]:
        return 200, node
    return 404, status(404, "NotFound", f'nodes "{segs[0]}" not found')


def reply(conn, status, body):
    body = json.dumps(body).encode()
    conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def translate(query):
    """The API server's exec/attach parameters in kubelet's names, and the container."""
    out, container = [], ""
    names = {"stdin": "input", "stdout": "output", "stderr": "error", "tty": "tty"}
    for pair in filter(None, query.split("&")):
        k, _, v = pair.partition("=")
        if k == "container":
            container = urllib.parse.unquote(v)
        elif k in names:
            if v in ("true", "1"):
                out.append(f"{names[k]}=1")
        else:
            out.append(pair)
    return "&".join(out), container


def pump(src, dst):
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)  # the end of one direction only, as TCP passes it
    except OSError:
        pass


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        conn = self.request
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        path, _, query = target.partition("?")
        segs = path.strip("/").split("/")
        if segs == ["api"]:
            return reply(conn, 200, API_VERSIONS)
        if segs == ["apis"]:
            return reply(conn, 200, API_GROUPS)
        if segs == ["api", "v1"]:
            return reply(conn, 200, API_V1)
        if segs == ["apis", "metrics.k8s.io"]:
            return reply(conn, 200, {"kind": "APIGroup", "apiVersion": "v1", **METRICS_GROUP})
        if segs == ["apis", "metrics.k8s.io", "v1beta1"]:
            return reply(conn, 200, METRICS_RESOURCES)
        if segs[:3] == ["apis", "metrics.k8s.io", "v1beta1"]:
            try:
                return reply(conn, *metrics(segs[3:]))
            except (OSError, ValueError, KeyError) as e:
                return reply(conn, 503, status(503, "ServiceUnavailable", str(e)))
        if segs[:3] == ["api", "v1", "nodes"] and len(segs) <= 4:
            return reply(conn, *core_nodes(segs[3:]))
        if len(segs) == 6 and segs[:3] == ["api", "v1", "namespaces"] and segs[4] == "pods":
            ns, pod = segs[3], segs[5]
            items = json.loads(kubelet_get("/pods")).get("items", [])
            for p in items:
                if p["metadata"]["namespace"] == ns and p["metadata"]["name"] == pod:
                    return reply(conn, 200, p)
            return reply(conn, 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                     "reason": "NotFound", "code": 404,
                                     "message": f'pods "{pod}" not found'})
        if len(segs) != 7 or segs[:3] != ["api", "v1", "namespaces"] or segs[4] != "pods":
            return reply(conn, 404, {})
        ns, pod, sub = segs[3], segs[5], segs[6]
        q, c = translate(query)
        forward = {"log": f"/containerLogs/{ns}/{pod}/{c}", "exec": f"/exec/{ns}/{pod}/{c}",
                   "attach": f"/attach/{ns}/{pod}/{c}",
                   "portforward": f"/portForward/{ns}/{pod}"}.get(sub)
        if forward is None:
            return reply(conn, 404, {})
        upgrade = any(h.lower().startswith("upgrade:") for h in lines[1:])
        out = [f"{method} {forward}?{q} HTTP/1.1"]
        for h in lines[1:]:
            low = h.lower()
            if low.startswith(("host:", "authorization:")):
                continue
            if not upgrade and low.startswith("connection:"):
                continue
            out.append(h)
        out.append("Host: kubelet")
        if not upgrade:
            out.append("Connection: close")
        up = kubelet_conn()
        up.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + rest)
        back = threading.Thread(target=pump, args=(up, conn), daemon=True)
        back.start()
        pump(conn, up)
        back.join()
        up.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


if __name__ == "__main__":
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
