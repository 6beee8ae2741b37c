#!/usr/bin/env python3
"""A stand-in for the API server's node proxy, for bench/kubelet.sh (the tests use the Rust
one in tests/kubelet_support): plain HTTP on 127.0.0.1 for kubectl, the discovery documents,
GET of a pod (from the kubelet's /pods), and pods/POD/{log,exec,attach,portforward}
forwarded to the kubelet's paths over TLS with a client certificate, upgraded connections
passed through byte for byte.

Usage: kubelet_proxy.py KUBELET_ADDR SERVING_CA CLIENT_CERT CLIENT_KEY
Prints the port it listens on, then serves until killed.
"""
import json
import socket
import socketserver
import ssl
import sys
import threading
import urllib.parse

KUBELET, SERVING_CA, CERT, KEY = sys.argv[1:5]
KHOST, KPORT = KUBELET.rsplit(":", 1)

CTX = ssl.create_default_context(cafile=SERVING_CA)
CTX.load_cert_chain(CERT, KEY)
CTX.set_alpn_protocols(["http/1.1"])

API_VERSIONS = {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
API_GROUPS = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
RESOURCES = [("pods", "Pod", ["get", "list"]), ("pods/log", "Pod", ["get"]),
             ("pods/exec", "PodExecOptions", ["create", "get"]),
             ("pods/attach", "PodAttachOptions", ["create", "get"]),
             ("pods/portforward", "PodPortForwardOptions", ["create", "get"])]
API_V1 = {"kind": "APIResourceList", "groupVersion": "v1",
          "resources": [{"name": n, "singularName": "", "namespaced": True, "kind": k, "verbs": v}
                        for n, k, v in RESOURCES]}


def kubelet_conn():
    raw = socket.create_connection((KHOST, int(KPORT)))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return CTX.wrap_socket(raw, server_hostname=KHOST)


def kubelet_get(path):
    s = kubelet_conn()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1]


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
