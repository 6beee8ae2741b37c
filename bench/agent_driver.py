"""Drives a running `layerlet agent` for bench/agent.sh: writes pod manifests into its
directory and watches /api/v1/pods over one persistent HTTP connection.

  agent_driver.py single ADDR DIR REF PREFIX TRIES
      TRIES times: write one pod file (temp + rename), time until the pod is Running in the
      status, remove the file, wait until the pod is gone. Prints the seconds, one per line.
  agent_driver.py burst ADDR DIR REF PREFIX N
      writes N pod files at once; prints JSON: per-pod seconds from its write to Running, the
      total from the first write to the last Running.
  agent_driver.py drain ADDR DIR
      removes every pod file; prints the seconds until the status lists no pod.
"""

import http.client
import json
import os
import sys
import time

POLL = 0.002  # seconds between status reads


class Status:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def pods(self):
        for attempt in range(3):
            try:
                self.conn.request("GET", "/api/v1/pods")
                resp = self.conn.getresponse()
                body = resp.read()
                return json.loads(body)["items"]
            except (http.client.HTTPException, OSError):
                if attempt == 2:
                    raise
                self.conn.close()

    def phases(self):
        return {p["metadata"]["name"]: p["status"].get("phase") for p in self.pods()}


def manifest(name, ref, prefix):
    return (
        "apiVersion: v1\nkind: Pod\nmetadata:\n"
        f"  name: {name}\n  uid: {prefix}-{name}\n"
        "spec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n"
        f"    image: {ref}\n    imagePullPolicy: Never\n"
        "    command: [sleep, '100000']\n"
    )


def write_pod(directory, name, ref, prefix):
    tmp = os.path.join(directory, f".{name}.tmp")
    with open(tmp, "w") as f:
        f.write(manifest(name, ref, prefix))
    t = time.monotonic()
    os.rename(tmp, os.path.join(directory, f"{name}.yaml"))
    return t


def wait(pred, what, limit=300):
    deadline = time.monotonic() + limit
    while True:
        now = time.monotonic()
        if pred(now):
            return now
        if now > deadline:
            sys.exit(f"agent_driver: timed out waiting for {what}")
        time.sleep(POLL)


def single(addr, directory, ref, prefix, tries):
    st = Status(addr)
    for i in range(int(tries)):
        name = f"single-{i}"
        t0 = write_pod(directory, name, ref, prefix)
        t1 = wait(lambda _: st.phases().get(name) == "Running", f"{name} Running")
        print(f"{t1 - t0:.6f}", flush=True)
        os.unlink(os.path.join(directory, f"{name}.yaml"))
        wait(lambda _: name not in st.phases(), f"{name} gone")


def burst(addr, directory, ref, prefix, n):
    st = Status(addr)
    written = {}
    for i in range(int(n)):
        name = f"burst-{i}"
        written[name] = write_pod(directory, name, ref, prefix)
    running = {}

    def all_running(now):
        for name, phase in st.phases().items():
            if phase == "Running" and name in written and name not in running:
                running[name] = now
        return len(running) == len(written)

    end = wait(all_running, f"{n} pods Running")
    start = min(written.values())
    print(json.dumps({
        "total": end - start,
        "per_pod": sorted(running[k] - written[k] for k in written),
    }))


def drain(addr, directory):
    st = Status(addr)
    t0 = time.monotonic()
    for f in os.listdir(directory):
        if f.endswith(".yaml"):
            os.unlink(os.path.join(directory, f))
    t1 = wait(lambda _: not st.pods(), "no pods in the status")
    print(f"{t1 - t0:.6f}")


if __name__ == "__main__":
    {"single": single, "burst": burst, "drain": drain}[sys.argv[1]](*sys.argv[2:])
