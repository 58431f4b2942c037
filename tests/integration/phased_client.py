#!/usr/bin/env python3
"""One keep-alive connection in two phases: N1 requests for /bytes/SIZE1, print "phase1=done",
wait (bounded) for GO_FILE to exist, N2 requests for /bytes/SIZE2, print "phase2=done". Each
response is read exactly; the phases differ in path and size so that an exchange reported after
the gap can be told apart from one of the first phase.
usage: phased_client.py HOST PORT N1 N2 GO_FILE SIZE1 SIZE2"""
import os
import socket
import sys
import time

host, port, n1, n2, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
size1, size2 = int(sys.argv[6]), int(sys.argv[7])
s = socket.create_connection((host, port), timeout=10)


def one(size):
    s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    want = len(b"HTTP/1.1 200 X\r\nContent-Length: %d\r\n\r\n" % size) + size
    got = 0
    while got < want:
        chunk = s.recv(want - got)
        if not chunk:
            sys.exit(1)
        got += len(chunk)


for _ in range(n1):
    one(size1)
print("phase1=done", flush=True)
deadline = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit(2)
    time.sleep(0.01)
for _ in range(n2):
    one(size2)
print("phase2=done", flush=True)
s.close()
