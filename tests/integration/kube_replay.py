#!/usr/bin/env python3
"""A recorded Kubernetes API server for the agent's live tests: answers LIST of pods and services
from JSON files and holds each WATCH open (chunked, as the API server streams) with a bookmark at
the list's version, for at most 300 s. Prints "port=N" once listening on 127.0.0.1.
Usage: kube_replay.py PODS_LIST.json SERVICES_LIST.json"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LISTS = {"/api/v1/pods": sys.argv[1], "/api/v1/services": sys.argv[2]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if url.path not in LISTS:
            body = b'{"kind":"Status","code":404}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        listing = json.load(open(LISTS[url.path]))
        if q.get("watch") != ["1"]:
            body = json.dumps(listing).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        rv = listing["metadata"]["resourceVersion"]
        deadline = time.monotonic() + 300
        try:
            while time.monotonic() < deadline:
                line = (json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": rv}}}) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                time.sleep(5)
        except (BrokenPipeError, ConnectionResetError):
            pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("port=%d" % server.server_address[1], flush=True)
server.serve_forever()
