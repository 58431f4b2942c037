#!/usr/bin/env bash
# The lab's scoreboard: faultline scored on faults with known answers (lab/README.md), per fault
# kind: detection rate, AC@1, AC@3, class accuracy, median and max detection latency (fault start
# -> the incident first seen), time to resolve after the revert, and false incidents per
# fault-free hour. Its last line:
#   ac1=… ac3=… class_accuracy=… detection_p50_s=… detection_max_s=… false_incidents_per_hour=… cases=…
#
# Usage: sudo bench/lab.sh [REPEAT=3]
# Runs lab/scenarios/all-kinds.yaml (every fault kind after one baseline, on one system and
# pipeline; about 15 minutes) REPEAT times, then once each lab/scenarios/surge-load.yaml and
# lab/scenarios/fault-free.yaml (4.5 minutes without a fault). Cases and the summary go to
# bench/lab-results.json (or $LAB_JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-3}
fl=build/faultline
[[ -x $fl ]] || { echo "build first: scripts/build.sh" >&2; exit 1; }
out=${LAB_JSON:-bench/lab-results.json}
echo "machine: $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
"$fl" lab run lab/scenarios/all-kinds.yaml --repeat "$repeat" --json-out "$out.kinds" >/dev/null
"$fl" lab run lab/scenarios/surge-load.yaml lab/scenarios/fault-free.yaml --json-out "$out.once" >/dev/null
/usr/bin/python3 - "$out.kinds" "$out.once" "$out" <<'PYMERGE'
import json, sys
cases = [c for f in sys.argv[1:3] for c in json.load(open(f))["cases"]]
json.dump({"cases": cases}, open(sys.argv[3], "w"), indent=1)
PYMERGE
rm -f "$out.kinds" "$out.once"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
bad = [c for c in cases if "error" in c]
for c in bad:
    print("ERROR %s (repeat %s): %s" % (c["scenario"], c.get("repeat"), c["error"]))
faulty = [c for c in cases if "detected" in c]
kinds = sorted({c["fault"]["kind"] for c in faulty})

def p50(v):
    v = sorted(v)
    return v[len(v) // 2] if v else None

def row(name, cs):
    n = len(cs)
    det = [c for c in cs if c["detected"]]
    lat = [c["detection_s"] for c in det]
    res = [c["resolve_s"] for c in det if c.get("resolve_s") is not None]
    f = lambda k: sum(1 for c in cs if c.get(k)) / n
    print("%-14s %5d %9.2f %5.2f %5.2f %6.2f %8s %8s %8s" % (
        name, n, f("detected"), f("ac1"), f("ac3"), f("class_ok"), p50(lat), max(lat) if lat else None,
        p50(res)))

print("%-14s %5s %9s %5s %5s %6s %8s %8s %8s" % (
    "kind", "cases", "detected", "ac1", "ac3", "class", "p50_s", "max_s", "resolve_s"))
for k in kinds:
    row(k, [c for c in faulty if c["fault"]["kind"] == k])
row("all", faulty)
wrong = [c for c in faulty if not (c["detected"] and c["ac1"] and c["class_ok"])]
for c in wrong:
    print("miss: %s (repeat %s): expected %s %s, got %s %s" % (
        c["scenario"], c["repeat"], c["expect"]["entity"], c["expect"]["class"],
        (c.get("root_causes") or ["-"])[0], c.get("fault_class")))
free_s = sum(c.get("fault_free_s", 0) for c in cases if "detected" not in c)
false = sum(c.get("false_incidents", 0) for c in cases if "detected" not in c)
print("fault-free: %d false incident(s) in %.0f s" % (false, free_s))
n = len(faulty)
frac = lambda k: round(sum(1 for c in faulty if c.get(k)) / n, 3) if n else 0
lat = [c["detection_s"] for c in faulty if c["detected"]]
print("ac1=%s ac3=%s class_accuracy=%s detection_p50_s=%s detection_max_s=%s false_incidents_per_hour=%s cases=%d" % (
    frac("ac1"), frac("ac3"), frac("class_ok"), p50(lat), max(lat) if lat else None,
    round(false / (free_s / 3600), 2) if free_s else None, n))
sys.exit(1 if bad else 0)
PY
