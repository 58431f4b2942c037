#!/usr/bin/env python3
"""One tier of a test service chain. Serves GET /<anything> with 200 "ok"; with --upstream URL it
first makes one GET to URL (a new connection each time) and answers 502 if that fails. With
--fault-file FILE it reads FILE at each request: "slow MS" sleeps MS milliseconds before
answering, "error" answers 500; anything else (or no file) is normal. Prints "port=N" once
listening on 127.0.0.1. Run it under a symlink to python3 named after the service, so that the
process's comm (what faultline names the service by) differs per tier."""
import argparse
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", default="")
    ap.add_argument("--fault-file", default="")
    args = ap.parse_args()

    def fault():
        try:
            with open(args.fault_file) as f:
                return f.read().split()
        except OSError:
            return []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            status = 200
            what = fault() if args.fault_file else []
            if what[:1] == ["slow"] and len(what) > 1:
                time.sleep(int(what[1]) / 1000.0)
            if what[:1] == ["error"]:
                status = 500
            if args.upstream:
                try:
                    with urllib.request.urlopen(args.upstream, timeout=5) as r:
                        r.read()
                except OSError:
                    status = 502
            body = b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("port=%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
