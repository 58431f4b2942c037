#!/usr/bin/env python3
"""The lab's load: a steady open-loop mix of requests to the gateway.

  load.py --url http://198.18.0.11:8080 --state-dir DIR [--rate R] [--max-seconds S] [--seed N]
          [--mix PATH=WEIGHT,...]

Requests leave on a fixed schedule of R req/s times the factor in DIR/load_factor (read every
second, default 1): by default (the shop's mix) 50% /browse, 30% /cart, 20% /checkout, each with a
3 s timeout. Open loop, so
slow answers do not lower the offered rate: at most 64 requests are in flight, and one that finds
them all busy is shed and counted. Every 5 s a line goes to DIR/load.jsonl (t, factor, sent, ok,
errors, shed, p50_ms, p99_ms over that interval). Exits by itself after --max-seconds.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

MIX = (("/browse", 50), ("/cart", 30), ("/checkout", 20))
TIMEOUT_S = 3.0
MAX_IN_FLIGHT = 64
STATS_EVERY_S = 5.0


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.sent = self.ok = self.errors = self.shed = 0
        self.latencies = []

    def add(self, ok, latency_s):
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.errors += 1
            self.latencies.append(latency_s)

    def take(self):
        with self.lock:
            lat = sorted(self.latencies)
            row = {"sent": self.sent, "ok": self.ok, "errors": self.errors, "shed": self.shed,
                   "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
                   "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1) if lat else None}
            self.reset()
            return row


def request(host, port, path, stats, slots):
    start = time.monotonic()
    ok = False
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        ok = 200 <= resp.status < 300
    except (OSError, http.client.HTTPException):
        pass
    finally:
        conn.close()
        stats.add(ok, time.monotonic() - start)
        slots.release()


def read_factor(path):
    try:
        with open(path) as f:
            value = float(f.read().strip())
        return value if 0 < value <= 100 else 1.0
    except (OSError, ValueError):
        return 1.0


def main():
    ap = argparse.ArgumentParser(prog="load.py")
    ap.add_argument("--url", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--rate", type=float, default=20.0, help="requests per second")
    ap.add_argument("--max-seconds", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mix", default=",".join("%s=%d" % pw for pw in MIX), help="PATH=WEIGHT,...")
    args = ap.parse_args()
    if args.rate <= 0:
        ap.error("--rate must be > 0")
    u = urllib.parse.urlsplit(args.url)
    try:
        mix = [(p, float(w)) for p, _, w in (item.partition("=") for item in args.mix.split(","))]
        if not mix or any(not p.startswith("/") or w <= 0 for p, w in mix):
            raise ValueError
    except ValueError:
        ap.error("--mix %r: expected PATH=WEIGHT[,PATH=WEIGHT...] with weights > 0" % args.mix)
    paths, weights = zip(*mix)
    rng = random.Random(args.seed)
    factor_file = os.path.join(args.state_dir, "load_factor")
    stats_file = os.path.join(args.state_dir, "load.jsonl")
    stats, slots = Stats(), threading.BoundedSemaphore(MAX_IN_FLIGHT)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT)
    print("ready", flush=True)

    start = time.monotonic()
    end = start + args.max_seconds
    factor, factor_at = read_factor(factor_file), start
    stats_at = start
    next_at = start
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now - factor_at >= 1.0:
            factor, factor_at = read_factor(factor_file), now
        if now - stats_at >= STATS_EVERY_S:
            row = {"t": round(time.time(), 3), "factor": factor}
            row.update(stats.take())
            with open(stats_file, "a") as f:
                f.write(json.dumps(row) + "\n")
            stats_at = now
        if now < next_at:
            time.sleep(min(next_at - now, 0.05))
            continue
        # A fixed schedule; after a stall (more than 1 s behind) it restarts instead of bursting.
        next_at = next_at + 1.0 / (args.rate * factor) if now - next_at < 1.0 else now
        path = rng.choices(paths, weights)[0]
        with stats.lock:
            stats.sent += 1
        if not slots.acquire(blocking=False):
            with stats.lock:
                stats.shed += 1
            continue
        pool.submit(request, u.hostname, u.port, path, stats, slots)
    pool.shutdown(wait=False, cancel_futures=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
