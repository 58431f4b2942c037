#!/usr/bin/env python3
"""One service of the lab system, in Python (service.js is the same program in Node.js).

  service.py --name NAME --listen ADDR:PORT --route PATH=STEP[,STEP...] ... --fault-file FILE
             [--data-dir DIR]

A GET on PATH runs its steps in order and answers 200 once all of them succeeded, 502 as soon as
one failed. A step is a downstream call (http://HOST:PORT/PATH: a new connection per call, 2 s
timeout, any non-2xx is a failure) or, with --data-dir, "disk:read" (read 4 KiB) or "disk:write"
(write 4 KiB and fsync). A route with no steps is a leaf.

The fault file, read at most every 100 ms, holds at most one line:
  slow MS          sleep MS before answering
  error [RATE]     answer 500 to that fraction of requests (0..1, default 1)
  leak MB_PER_S    allocate and touch MB_PER_S MiB per second and keep it (until the OOM killer)
Anything else, or no file, is normal operation. Prints "ready" once listening.
"""
import argparse
import errno
import http.client
import http.server
import json
import mmap
import os
import random
import socketserver
import sys
import threading
import time
import urllib.parse

DOWNSTREAM_TIMEOUT_S = 2.0
FAULT_REFRESH_S = 0.1
BLOCK = 4096


class FaultFile:
    """The fault file's current line, cached for FAULT_REFRESH_S so each request costs no syscall."""

    def __init__(self, path):
        self.path, self.lock = path, threading.Lock()
        self.read_at, self.value = -1.0, (None, 0.0)

    def get(self):
        now = time.monotonic()
        with self.lock:
            if now - self.read_at >= FAULT_REFRESH_S:
                self.read_at, self.value = now, self._parse()
            return self.value

    def _parse(self):
        try:
            with open(self.path) as f:
                words = f.readline().split()
        except OSError:
            return (None, 0.0)
        if not words or words[0] not in ("slow", "error", "leak"):
            return (None, 0.0)
        try:
            value = float(words[1]) if len(words) > 1 else (1.0 if words[0] == "error" else 0.0)
        except ValueError:
            return (None, 0.0)
        return (words[0], value)


class Leak:
    """Grows by the fault's rate in 100 ms steps; drops what it holds once the fault is cleared."""

    def __init__(self, fault):
        self.fault, self.hoard = fault, []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            kind, mb_per_s = self.fault.get()
            if kind == "leak" and mb_per_s > 0:
                # Filled, not just allocated: untouched pages would not be charged to the cgroup.
                self.hoard.append(bytearray(b"\x5a") * int(mb_per_s * (1 << 20) / 10))
            elif self.hoard:
                self.hoard = []
            time.sleep(0.1)


class Disk:
    """4 KiB reads and writes of one file under the data dir.

    O_DIRECT where the file system allows it: with cgroup v1, blkio throttling only sees I/O the
    task issues itself, and buffered writes reach the disk from flusher threads in the root cgroup
    while buffered reads hit the page cache, so without it a disk fault would not touch the store.
    """

    def __init__(self, data_dir):
        self.path = os.path.join(data_dir, "data.bin")
        self.direct = getattr(os, "O_DIRECT", 0)
        os.makedirs(data_dir, exist_ok=True)
        if not os.path.exists(self.path):
            self.write()

    def _open(self, flags):
        try:
            return os.open(self.path, flags | self.direct, 0o644)
        except OSError as e:
            if e.errno != errno.EINVAL or not self.direct:
                raise
            self.direct = 0  # tmpfs and the like refuse O_DIRECT
            return os.open(self.path, flags, 0o644)

    def read(self):
        buf = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT wants
        fd = self._open(os.O_RDONLY)
        try:
            os.preadv(fd, [buf], 0)
        finally:
            os.close(fd)
            buf.close()

    def write(self):
        buf = mmap.mmap(-1, BLOCK)
        buf.write(os.urandom(64) * (BLOCK // 64))
        fd = self._open(os.O_WRONLY | os.O_CREAT)
        try:
            os.pwritev(fd, [buf], 0)
            os.fsync(fd)
        finally:
            os.close(fd)
            buf.close()


def parse_step(step):
    if step.startswith("disk:"):
        if step not in ("disk:read", "disk:write"):
            raise ValueError("--route: unknown step %r (expected disk:read or disk:write)" % step)
        return (step,)
    u = urllib.parse.urlsplit(step)
    if u.scheme != "http" or not u.hostname or not u.port:
        raise ValueError("--route: step %r is not http://HOST:PORT/PATH or disk:read|write" % step)
    return ("http", u.hostname, u.port, u.path or "/")


def parse_routes(specs):
    routes = {}
    for spec in specs:
        path, sep, steps = spec.partition("=")
        if not sep or not path.startswith("/"):
            raise ValueError("--route %r: expected PATH=STEP[,STEP...]" % spec)
        routes[path] = [parse_step(s) for s in steps.split(",") if s]
    return routes


def call(host, port, path):
    conn = http.client.HTTPConnection(host, port, timeout=DOWNSTREAM_TIMEOUT_S)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return 200 <= resp.status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def make_handler(name, routes, fault, disk):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            path = urllib.parse.urlsplit(self.path).path
            steps = routes.get(path)
            if steps is None:
                return self.answer(404, "no route")
            kind, value = fault.get()
            if kind == "slow" and value > 0:
                time.sleep(value / 1000.0)
            if kind == "error" and random.random() < value:
                return self.answer(500, "injected error")
            for step in steps:
                if not self.run_step(step):
                    return self.answer(502, "downstream failed: %s" % ":".join(map(str, step)))
            self.answer(200, "ok")

        def run_step(self, step):
            if step[0] == "http":
                return call(step[1], step[2], step[3])
            if disk is None:
                return False
            try:
                disk.read() if step[0] == "disk:read" else disk.write()
                return True
            except OSError:
                return False

        def answer(self, code, detail):
            body = json.dumps({"service": name, "status": code, "detail": detail}).encode() + b"\n"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args):
            pass

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 would refuse connections under a burst

    def server_bind(self):
        # HTTPServer's own would look the address up in DNS (socket.getfqdn): a query that
        # cannot leave the lab's namespaces and stalls the start for the resolver's timeout.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def main():
    ap = argparse.ArgumentParser(prog="service.py")
    ap.add_argument("--name", required=True)
    ap.add_argument("--listen", required=True, help="ADDR:PORT")
    ap.add_argument("--route", action="append", default=[], help="PATH=STEP[,STEP...]")
    ap.add_argument("--fault-file", required=True)
    ap.add_argument("--data-dir", help="where disk:read and disk:write steps keep their file")
    args = ap.parse_args()
    try:
        routes = parse_routes(args.route)
    except ValueError as e:
        ap.error(str(e))
    host, _, port = args.listen.rpartition(":")
    fault = FaultFile(args.fault_file)
    disk = Disk(args.data_dir) if args.data_dir else None
    Leak(fault)
    server = Server((host, int(port)), make_handler(args.name, routes, fault, disk))
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
