#!/usr/bin/env python3
"""Compares `faultline stream query` output with event_generator's reference windows.

Usage: compare_windows.py REFERENCE.jsonl QUERY.jsonl
Every window of the reference must be in the query output with exactly the same counts, and the
query output must hold no window the reference lacks. Prints the differences (at most 20) and
exits 1 when there are any; prints "windows=<n> identical" and exits 0 otherwise.
"""
import json
import sys


def canonical(w):
    dims = "|".join(f"{k}={v}" for k, v in sorted(w["dims"].items()))
    net = w.get("network", {})
    counts = {
        "requests": w.get("requests", 0),
        "status_4xx": w.get("status_4xx", 0),
        "status_5xx": w.get("status_5xx", 0),
        "latency_count": w.get("latency_samples", 0),
        "packets_out": net.get("packets_out", 0),
        "retransmits": net.get("retransmits", 0),
        "connects_ok": net.get("connects_ok", 0),
    }
    return (w["start"], f'{w["kind"]}|{dims}'), counts


def main():
    reference = {}
    with open(sys.argv[1]) as f:
        for line in f:
            r = json.loads(line)
            reference[(r["start"], r["key"])] = {k: r[k] for k in (
                "requests", "status_4xx", "status_5xx", "latency_count", "packets_out", "retransmits", "connects_ok")}
    got = {}
    with open(sys.argv[2]) as f:
        for line in f:
            key, counts = canonical(json.loads(line))
            if key in got:
                print(f"duplicate window {key}")
                return 1
            got[key] = counts
    problems = []
    for key, want in reference.items():
        if key not in got:
            problems.append(f"missing {key}: want {want}")
        elif got[key] != want:
            problems.append(f"differs {key}: want {want} got {got[key]}")
    for key in got.keys() - reference.keys():
        problems.append(f"unexpected {key}: {got[key]}")
    for p in problems[:20]:
        print(p)
    if problems:
        print(f"{len(problems)} differences in {len(reference)} reference windows")
        return 1
    print(f"windows={len(reference)} identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
