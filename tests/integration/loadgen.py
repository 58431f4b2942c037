#!/usr/bin/env python3
"""A steady load: GET URL at RATE requests per second for SECONDS seconds (bounded), a new
connection each time, each with a 5 s timeout. Prints "started=1" at once and, at the end,
"requests=N ok=N errors=N". Run it under a symlink named after the client (its comm)."""
import sys
import time
import urllib.error
import urllib.request

url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
print("started=1", flush=True)
n = ok = errors = 0
t0 = time.monotonic()
while time.monotonic() - t0 < seconds:
    due = t0 + n / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    n += 1
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()
            ok += 1
    except (urllib.error.URLError, OSError):
        errors += 1
print("requests=%d ok=%d errors=%d" % (n, ok, errors), flush=True)
