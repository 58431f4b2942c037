#!/usr/bin/env python3
"""One service of the lab system, in Python (service.js is the same program in Node.js).

  service.py --name NAME --listen ADDR:PORT --route PATH=STEP[,STEP...] ... --fault-file FILE
             [--data-dir DIR] [--keep-alive] [--timeout-ms MS] [--retries N]

A GET on PATH runs its steps in order and answers 200 once all of them succeeded, 502 as soon as
one failed. A step is a downstream call, http://HOST:PORT/PATH, or several instances of the same
callee, URL|URL|...: each call goes to the next of them in turn. A call times out after
--timeout-ms (default 2000) per socket operation, any non-2xx answer or error is a failure, and a
failed call is tried again on the next instance up to --retries times (default 0). Without
--keep-alive each call has a new connection (Connection: close); with it, connections are pooled
per instance and reused, and a reused connection that the callee had closed is replaced once
(what HTTP clients do for an idempotent request), which is no retry. With --data-dir, a step may be
"disk:read" (read 4 KiB) or "disk:write" (write 4 KiB and fsync). A route with no steps is a leaf.
The server keeps a client's connection open unless the client asks to close it.

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
import socket
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
    targets, path = [], None
    for url in step.split("|"):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise ValueError("--route: step %r is not http://HOST:PORT/PATH[|...] or disk:read|write" % step)
        if path is not None and (u.path or "/") != path:
            raise ValueError("--route: step %r: its instances differ in path" % step)
        targets.append((u.hostname, u.port))
        path = u.path or "/"
    return ("http", targets, path, Turns(len(targets)))


class Turns:
    """Round robin over a step's instances, shared by the server's threads."""

    def __init__(self, n):
        self.n, self.i, self.lock = n, 0, threading.Lock()

    def next(self):
        with self.lock:
            self.i = (self.i + 1) % self.n
            return self.i


def parse_routes(specs):
    routes = {}
    for spec in specs:
        path, sep, steps = spec.partition("=")
        if not sep or not path.startswith("/"):
            raise ValueError("--route %r: expected PATH=STEP[,STEP...]" % spec)
        routes[path] = [parse_step(s) for s in steps.split(",") if s]
    return routes


class Caller:
    """Downstream calls: a new connection each, or (keep_alive) idle connections pooled per
    instance."""

    def __init__(self, keep_alive, timeout_s, retries):
        self.keep_alive, self.timeout_s, self.retries = keep_alive, timeout_s, retries
        self.idle, self.lock = {}, threading.Lock()

    def step(self, step):
        _, targets, path, turns = step
        for _ in range(1 + self.retries):
            if self.call(targets[turns.next()], path):
                return True
        return False

    def call(self, target, path):
        if not self.keep_alive:
            conn = http.client.HTTPConnection(*target, timeout=self.timeout_s)
            try:
                return self._exchange(conn, path, {"Connection": "close"})[0]
            except (OSError, http.client.HTTPException):
                return False
            finally:
                conn.close()
        with self.lock:
            pool = self.idle.setdefault(target, [])
            conn = pool.pop() if pool else None
        reused = conn is not None
        while True:
            if conn is None:
                conn = http.client.HTTPConnection(*target, timeout=self.timeout_s)
            try:
                ok, reusable = self._exchange(conn, path, {})
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                conn = None
                if reused:
                    reused = False  # closed while idle: once more on a new connection
                    continue
                return False
            except (OSError, http.client.HTTPException):
                conn.close()
                return False
            if reusable:
                with self.lock:
                    self.idle.setdefault(target, []).append(conn)
            else:
                conn.close()
            return ok

    @staticmethod
    def _exchange(conn, path, headers):
        """(2xx?, may the connection carry another request?)"""
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return 200 <= resp.status < 300, not resp.will_close


def make_handler(name, routes, fault, disk, caller):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The answer's head and body are two writes: on a kept-alive connection Nagle's algorithm
        # would hold the body until the client's delayed ACK, 40 ms later (Go and Node set it too).
        disable_nagle_algorithm = True

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
                return caller.step(step)
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
            if self.close_connection:  # the client asked for it (or spoke HTTP/1.0)
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

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
    ap.add_argument("--keep-alive", action="store_true", help="pool and reuse downstream connections")
    ap.add_argument("--timeout-ms", type=float, default=DOWNSTREAM_TIMEOUT_S * 1000)
    ap.add_argument("--retries", type=int, default=0)
    args = ap.parse_args()
    if args.timeout_ms <= 0 or args.retries < 0:
        ap.error("--timeout-ms must be > 0 and --retries >= 0")
    try:
        routes = parse_routes(args.route)
    except ValueError as e:
        ap.error(str(e))
    host, _, port = args.listen.rpartition(":")
    fault = FaultFile(args.fault_file)
    disk = Disk(args.data_dir) if args.data_dir else None
    Leak(fault)
    caller = Caller(args.keep_alive, args.timeout_ms / 1000.0, args.retries)
    server = Server((host, int(port)), make_handler(args.name, routes, fault, disk, caller))
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
