#!/usr/bin/env python3
"""One keep-alive connection in two phases: N1 requests, print "phase1=done", wait (bounded) for
GO_FILE to exist, N2 more requests, print "phase2=done". Each response is read exactly."""
import os
import socket
import sys
import time

host, port, n1, n2, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = socket.create_connection((host, port))
want = len(b"HTTP/1.1 200 X\r\nContent-Length: 2000\r\n\r\n") + 2000


def one():
    s.sendall(b"GET /bytes/2000 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    while got < want:
        chunk = s.recv(want - got)
        if not chunk:
            sys.exit(1)
        got += len(chunk)


for _ in range(n1):
    one()
print("phase1=done", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit(2)
    time.sleep(0.01)
for _ in range(n2):
    one()
print("phase2=done", flush=True)
s.close()
