#!/usr/bin/env python3
"""Sends N requests in one write on one connection, then reads the N responses (pipelining).
Every socket operation times out after 10 s (exit 1)."""
import socket
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"".join(b"GET /status/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (200 + i) for i in range(n)))
want = sum(len(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % (200 + i)) for i in range(n))
got = b""
while len(got) < want:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    got += chunk
s.close()
sys.exit(0 if len(got) == want else 1)
