#!/usr/bin/env python3
"""Helpers for the Hangar benchmarks (stdlib only, HTTP keep-alive).

  bench.py files BASE MODEL NFILES                           model with version 1 of N small files, published
  bench.py deploy BASE NAME MODEL RUNTIME                    seconds from POST /deployments to state running
  bench.py docker IMAGE MODEL_DIR NAME                       seconds from `docker run -d` (one CLI call) to /health 200
  bench.py stop BASE NAME                                    stop and delete a deployment, wait until gone
  bench.py ttfb URL MODEL N                                  streamed chat N times on one keep-alive connection:
                                                             median and p90 ms from sending to the first SSE event
  bench.py seed BASE NMODELS NVERSIONS BIG NDEPLOY           a catalog for the dashboard benchmark (see dashboard.sh)
  bench.py cold BASE COOKIE MODEL PATH N                     ms of GET PATH just after a write (PATCH MODEL): median, max

The token is read from $TOKEN. Polls every 5 ms.
"""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
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


CARD = """# {name}

A {kind} model for the dashboard benchmark: a card with some *Markdown*, a table and a list.

| benchmark | score |
|-----------|-------|
| mmlu      | 71.3  |
| gsm8k     | 80.2  |

- trained on public data
- quantized to `q4_k_m`
"""


def seed(base, nmodels, nversions, big, ndeploy):
    """NMODELS models (team<i%8>/llama-<i>), NVERSIONS versions in all: model 0 has BIG of
    them, the rest are spread evenly; every version has a README.md (the model card) and a
    weights file, linked to blobs uploaded once (the dedup path, as a re-push is), and is
    published but for every fifth, left a draft; each model gets prod and staging aliases.
    Then NDEPLOY deployments of model 0, created stopped. Four connections at once."""
    nmodels, nversions, big, ndeploy = int(nmodels), int(nversions), int(big), int(ndeploy)
    if not (0 < big <= nversions and nmodels > 1):
        sys.exit("bench.py seed: need NMODELS > 1 and 0 < BIG <= NVERSIONS")
    rest, extra = divmod(nversions - big, nmodels - 1)
    counts = [big] + [rest + (1 if i <= extra else 0) for i in range(1, nmodels)]
    names = [f"team{i % 8}/llama-{i:04d}" for i in range(nmodels)]
    api = Api(base)
    # The blobs, uploaded once into a first version of model 0; all other files link them.
    blobs = {}
    api.call("POST", "/api/v1/models", {"name": names[0], "description": "chat model 0, the one with many versions",
                                        "tags": ["chat", "big"]}, expect=(201,))
    api.call("POST", f"/api/v1/models/{names[0]}/versions", {"version": "1"}, expect=(201,))
    for path, content in (("README.md", CARD.format(name="llama", kind="chat").encode()),
                          ("weights.gguf", bytes(range(256)) * 64)):
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        api.call("PUT", f"/api/v1/models/{names[0]}/versions/1/files/{path}?digest={digest}", raw=content,
                 expect=(201,))
        blobs[path] = (digest, len(content))
    api.call("POST", f"/api/v1/models/{names[0]}/versions/1/publish", expect=(200,))

    def one_model(conn, i):
        name = names[i]
        if i > 0:
            kind = "chat" if i % 2 else "embedding"
            conn.call("POST", "/api/v1/models", {"name": name, "description": f"{kind} model {i}",
                                                 "tags": [kind, f"gen{i % 3}"]}, expect=(201,))
        first = 2 if i == 0 else 1
        for v in range(first, counts[i] + 1):
            conn.call("POST", f"/api/v1/models/{name}/versions",
                      {"version": str(v), "metadata": {"format": "gguf", "parameters": "8B", "quantization": "q4_k_m"}},
                      expect=(201,))
            for path, (digest, size) in blobs.items():
                conn.call("POST", f"/api/v1/models/{name}/versions/{v}/files/{path}", {"digest": digest, "size": size},
                          expect=(201,))
            if v % 5 != 0 or v == counts[i]:
                conn.call("POST", f"/api/v1/models/{name}/versions/{v}/publish", expect=(200,))
        last = counts[i]
        conn.call("PUT", f"/api/v1/models/{name}/aliases/prod", {"version": str(last)}, expect=(200, 201))
        if last > 1:
            prev = last - 1 if (last - 1) % 5 else last - 2
            if prev >= 1:
                conn.call("PUT", f"/api/v1/models/{name}/aliases/staging", {"version": str(prev)}, expect=(200, 201))

    todo = list(range(nmodels))
    lock = threading.Lock()
    failed = []

    def worker():
        conn = Api(base)
        while True:
            with lock:
                if not todo or failed:
                    return
                i = todo.pop()
            try:
                one_model(conn, i)
            except BaseException as e:  # noqa: BLE001 - reported below, the seed is void
                with lock:
                    failed.append(f"{names[i]}: {e}")
                return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        sys.exit(f"bench.py seed: {failed[0]}")
    for d in range(ndeploy):
        api.call("POST", "/api/v1/deployments", {"name": f"bench-{d:02d}", "model": f"{names[0]}@prod",
                                                 "runtime": "vllm", "start": False}, expect=(201, 202))
    print(names[0], big)


def cold(base, cookie, model, path, n):
    """The first view of a page after the catalog changed, N times: each GET follows a PATCH
    of MODEL's description, so no page the server kept can answer it. One connection each
    for the writes and the views, kept alive."""
    api = Api(base)
    u = urllib.parse.urlparse(base)
    view = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    times = []
    for i in range(int(n)):
        api.call("PATCH", f"/api/v1/models/{model}", {"description": f"chat model 0, the one with many versions ({i})"},
                 expect=(200,))
        t0 = time.monotonic()
        view.request("GET", path, headers={"Cookie": cookie})
        r = view.getresponse()
        r.read()
        times.append((time.monotonic() - t0) * 1000)
        if r.status != 200:
            sys.exit(f"bench.py: GET {path}: HTTP {r.status}")
    times.sort()
    print(f"{times[len(times) // 2]:.3f} {times[-1]:.3f}")


if __name__ == "__main__":
    cmds = {"files": files, "deploy": deploy, "docker": docker, "stop": stop, "ttfb": ttfb, "seed": seed, "cold": cold}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
