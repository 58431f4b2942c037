#!/usr/bin/env python3
"""Test HTTP/1.1 server with exact, known response bytes.

Prints "port=N" once listening. Routes:
  /delay/<ms>            sleep, then 200 "ok"
  /bytes/<n>             200 with an n-byte body (Content-Length), one write
  /chunked/<size>/<k>    200, chunked, k chunks of `size` bytes, one write per chunk
  /status/<code>         that status, empty body
  /iov/<n>               200 with an n-byte body; headers and body as two iovecs of one sendmsg
  /iovchunked/<size>/<k> 200, chunked; headers and the whole chunked body as two iovecs
  POST /echo             200 with the request body
"""
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def raw(self, status, body, extra=b""):
        head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)
        self.wfile.write(head + body)

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "delay":
            time.sleep(int(parts[1]) / 1000.0)
            self.raw(200, b"ok")
        elif parts[0] == "bytes":
            self.raw(200, b"b" * int(parts[1]))
        elif parts[0] == "chunked":
            size, k = int(parts[1]), int(parts[2])
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(k):
                self.wfile.write(b"%x\r\n%s\r\n" % (size, b"c" * size))
            self.wfile.write(b"0\r\n\r\n")
        elif parts[0] == "iov":
            n = int(parts[1])
            self.wfile.flush()
            self.connection.sendmsg([b"HTTP/1.1 200 X\r\nContent-Length: %d\r\n\r\n" % n, b"v" * n])
        elif parts[0] == "iovchunked":
            size, k = int(parts[1]), int(parts[2])
            body = b"".join(b"%x\r\n%s\r\n" % (size, b"w" * size) for _ in range(k)) + b"0\r\n\r\n"
            self.wfile.flush()
            self.connection.sendmsg([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", body])
        elif parts[0] == "status":
            self.raw(int(parts[1]), b"")
        else:
            self.raw(404, b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.raw(200, self.rfile.read(n))


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = HTTPServer((host, port), Handler)
    print("port=%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
