#!/usr/bin/env python3
"""Helpers for the Hangar benchmarks (stdlib only, HTTP keep-alive).

  bench.py files BASE MODEL NFILES                           model with version 1 of N small files, published
  bench.py deploy BASE NAME MODEL RUNTIME                    seconds from POST /deployments to state running
  bench.py docker IMAGE MODEL_DIR NAME                       seconds from `docker run -d` (one CLI call) to /health 200
  bench.py stop BASE NAME                                    stop and delete a deployment, wait until gone
  bench.py ttfb URL MODEL N                                  streamed chat N times on one keep-alive connection:
                                                             median and p90 ms from sending to the first SSE event

The token is read from $TOKEN. Polls every 5 ms.
"""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

TOKEN = os.environ.get("TOKEN", "")
POLL = 0.005


class Api:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def call(self, method, path, body=None, expect=None, raw=None, headers=None):
        h = {"Authorization": f"Bearer {TOKEN}"}
        if headers:
            h.update(headers)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                text = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 2:
                    raise
        if expect is not None and r.status not in expect:
            sys.exit(f"bench.py: {method} {path}: HTTP {r.status}, expected {expect}: {text[:300]!r}")
        return r.status, (json.loads(text) if text and text[:1] in b"{[" else text)


def files(base, model, nfiles):
    api = Api(base)
    api.call("POST", "/api/v1/models", {"name": model}, expect=(201,))
    api.call("POST", f"/api/v1/models/{model}/versions", {"version": "1"}, expect=(201,))
    for i in range(int(nfiles)):
        content = f"file {i} of {model}\n".encode()
        digest = hashlib.sha256(content).hexdigest()
        path = f"/api/v1/models/{model}/versions/1/files/shard-{i:04d}.txt?digest=sha256:{digest}"
        api.call("PUT", path, raw=content, expect=(200, 201))
    api.call("POST", f"/api/v1/models/{model}/versions/1/publish", expect=(200,))


def deploy(base, name, model, runtime):
    api = Api(base)
    t0 = time.monotonic()
    api.call("POST", "/api/v1/deployments", {"name": name, "model": f"{model}:1", "runtime": runtime}, expect=(202,))
    deadline = t0 + 60
    while True:
        _, d = api.call("GET", f"/api/v1/deployments/{name}", expect=(200,))
        if d.get("state") == "running":
            t = time.monotonic() - t0
            break
        if d.get("state") in ("failed", "stopped") or time.monotonic() > deadline:
            sys.exit(f"bench.py: deployment {name} did not run: {d}")
        time.sleep(POLL)
    print(f"{t:.4f} {d.get('address')}")


def stop(base, name):
    api = Api(base)
    api.call("POST", f"/api/v1/deployments/{name}/stop", expect=(200, 202, 204, 409))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s, _ = api.call("DELETE", f"/api/v1/deployments/{name}")
        if s in (204, 404):
            return
        time.sleep(0.1)
    sys.exit(f"bench.py: could not delete deployment {name}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(image, model_dir, name):
    # The host port is chosen here, so that the timed window holds one docker CLI call,
    # `docker run`, and no `docker port` to find out where it went.
    port = free_port()
    t0 = time.monotonic()
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000",
         "--mount", f"type=bind,source={model_dir},target=/model,readonly",
         image, "--port", "8000", "--served-model-name", name],
        check=True, capture_output=True, text=True)
    deadline = t0 + 60
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                break
        except (http.client.HTTPException, OSError):
            pass
        if time.monotonic() > deadline:
            sys.exit(f"bench.py: {name} never answered /health")
        time.sleep(POLL)
    print(f"{time.monotonic() - t0:.4f} 127.0.0.1:{port}")


def ttfb(url, model, n):
    """Time to the first streamed event, on one keep-alive connection (raw socket: the
    clock stops at the first `data:` byte, not when a library has parsed something)."""
    u = urllib.parse.urlparse(url)
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(int(n)):
        t0 = time.perf_counter()
        sock.sendall(head + body)
        seen, first = b"", None
        while not seen.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                sys.exit(f"bench.py: {url} closed the connection")
            seen += chunk
            if first is None and b"data:" in seen:
                first = time.perf_counter() - t0
        if first is None or b" 200 " not in seen.split(b"\r\n", 1)[0]:
            sys.exit(f"bench.py: {url}: no streamed answer: {seen[:300]!r}")
        times.append(first * 1000)
    times.sort()
    print(f"{times[len(times) // 2]:.3f} {times[int(len(times) * 0.9)]:.3f}")


if __name__ == "__main__":
    cmds = {"files": files, "deploy": deploy, "docker": docker, "stop": stop, "ttfb": ttfb}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
