#!/usr/bin/env python3
"""The scoreboard of a swept lab run: per fault kind and size, what the first incident said.

  bench/lab_sizes.py RESULTS.json [MORE.json ...]

RESULTS.json is `faultline lab run SCENARIO --json-out RESULTS.json` over a scenario whose steps
repeat each fault kind at several sizes (lab/scenarios/ledger-all-kinds.yaml). Prints one line per
case (detected, seconds to the first incident, the first cause and class, right or not), then per
kind the smallest size found right (the right cause first and the right class, in the first
incident) and the false incidents (baseline, fault-free steps, extra incidents after a fault).
Its last line:
  ac1=… class_accuracy=… right=… detection_p50_s=… false_incidents=… more_incidents=… cases=…
"""
import json
import sys


def size_of(fault):
    params = fault.get("params") or {}
    return ",".join("%s=%s" % kv for kv in sorted(params.items())) or "-"


def main(paths):
    cases = [c for p in paths for c in json.load(open(p))["cases"]]
    errors = [c for c in cases if "error" in c]
    for c in errors:
        print("ERROR %s: %s" % (c["scenario"], c["error"]))
    faulty = [c for c in cases if "detected" in c]
    # What the load's users saw while the fault was on (runs since the load's figures are kept):
    # failed share and p99, beside the baseline's.
    base = next((c.get("load") for c in cases if c.get("baseline") and c.get("load")), None)
    if base:
        print("users in the baseline: %.2f%% failed, p99 %s ms" % (100 * base["error_rate"], base["p99_ms"]))
    print("%-14s %-22s %-14s %-4s %-7s %-38s %-26s %-5s %s" % (
        "kind", "target", "size", "det", "det_s", "first cause", "class", "right", "users: failed, p99"))
    for c in faulty:
        f = c["fault"]
        right = c["detected"] and c.get("ac1") and c.get("class_ok")
        users = c.get("load")
        print("%-14s %-22s %-14s %-4s %-7s %-38s %-26s %-5s %s%s" % (
            f["kind"], f.get("target", "-"), size_of(f), "yes" if c["detected"] else "no",
            c.get("detection_s", "-"), (c.get("root_causes") or ["-"])[0], c.get("fault_class") or "-",
            "yes" if right else "no",
            "%.2f%%, %s ms" % (100 * users["error_rate"], users["p99_ms"]) if users else "-",
            "" if right else "  (expected %s %s)" % (c["expect"]["entity"], c["expect"]["class"])))
    print()
    kinds = []
    for c in faulty:
        if c["fault"]["kind"] not in kinds:
            kinds.append(c["fault"]["kind"])
    print("%-14s %-6s %-6s %-6s %-24s" % ("kind", "cases", "right", "det", "smallest right"))
    for k in kinds:
        cs = [c for c in faulty if c["fault"]["kind"] == k]
        right = [c for c in cs if c["detected"] and c.get("ac1") and c.get("class_ok")]
        print("%-14s %-6d %-6d %-6d %-24s" % (k, len(cs), len(right), sum(1 for c in cs if c["detected"]),
                                               size_of(right[0]["fault"]) if right else "none"))
    n = len(faulty)
    lat = sorted(c["detection_s"] for c in faulty if c["detected"])
    false = sum(c.get("false_incidents", 0) for c in cases)
    more = sum(c.get("more_incidents", 0) for c in faulty)
    frac = lambda k: round(sum(1 for c in faulty if c.get(k)) / n, 3) if n else 0
    right = sum(1 for c in faulty if c["detected"] and c.get("ac1") and c.get("class_ok"))
    print("ac1=%s class_accuracy=%s right=%s detection_p50_s=%s false_incidents=%d more_incidents=%d cases=%d"
          % (frac("ac1"), frac("class_ok"), round(right / n, 3) if n else 0, lat[len(lat) // 2] if lat else None,
             false, more, n))
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
