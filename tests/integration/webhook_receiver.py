#!/usr/bin/env python3
"""A webhook receiver written independently of faultline: it checks every delivery's Standard
Webhooks signature (HMAC-SHA256 of "id.timestamp.body" with the secret, "whsec_" + base64) and
its timestamp, and appends one JSON line per request to LOG: webhook-id, whether the signature
held, the HTTP status it answered, and the body's incident id, sequence and status.

Misbehaviour on purpose: --fail-first N answers 500 to the first N requests; --slow-request K
holds the K-th request (1-based, counted after the failures) for --slow-seconds before answering
200 (the sender has timed out by then and sends it again). Prints "port=N" once listening on
127.0.0.1 (--port P to listen on a given port, e.g. again after being stopped).

Usage: webhook_receiver.py LOG SECRET [--port P] [--fail-first N] [--slow-request K]"""
import argparse
import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("secret")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fail-first", type=int, default=0)
    ap.add_argument("--slow-request", type=int, default=0)
    ap.add_argument("--slow-seconds", type=float, default=3.0)
    args = ap.parse_args()
    key = args.secret
    key = base64.b64decode(key[6:]) if key.startswith("whsec_") else key.encode()
    lock = threading.Lock()
    counter = {"n": 0}
    log = open(args.log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            wid = self.headers.get("webhook-id", "")
            ts = self.headers.get("webhook-timestamp", "")
            expected = base64.b64encode(
                hmac.new(key, ("%s.%s." % (wid, ts)).encode() + body, hashlib.sha256).digest()).decode()
            given = [s.split(",", 1)[1] for s in self.headers.get("webhook-signature", "").split()
                     if s.startswith("v1,")]
            sig_ok = any(hmac.compare_digest(expected, g) for g in given)
            fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
            with lock:
                counter["n"] += 1
                n = counter["n"]
            status = 200 if sig_ok and fresh else 401
            if n <= args.fail_first:
                status = 500
            try:
                j = json.loads(body)
            except ValueError:
                j = {}
            rec = {"n": n, "webhook_id": wid, "sig_ok": sig_ok, "fresh": fresh, "answer": status,
                   "id": j.get("id"), "sequence": j.get("sequence"), "status": j.get("status")}
            slow = args.slow_request and n == args.fail_first + args.slow_request
            if slow:
                rec["slow"] = True
            with lock:
                log.write(json.dumps(rec) + "\n")
            if slow:
                time.sleep(args.slow_seconds)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("port=%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
