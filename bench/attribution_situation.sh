#!/usr/bin/env bash
# Attribution and diagnosis on large synthetic situations: a call tree of services (fan-out F,
# depth D), every service on its own machine, 36 windows, a fault (latency x4) at one leaf
# propagating up its path to the root, which raises the alarm. Prints per size the services,
# series, the answer's top candidate and path length, and the median wall time over 5 runs of
# `faultline attribute --situation` (parse + attribution), of the same on the fault-free variant
# (parse, and only the symptom judged), and of `faultline diagnose --format json` (parse,
# attribution, fault trees, drill-down, the incident). Each answer is checked: the faulty leaf must
# be the top cause with the whole path, and the incident must name it with class own_code; a
# wrong answer stops the run. Usage: bench/attribution_situation.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for shape in "3 3" "3 5" "4 5" "6 4"; do
  set -- $shape
  python3 - "$1" "$2" "$work/s.json" "$work/free.json" <<'PY'
import json, random, sys
fan, depth, out, free = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(1)
N, FAULT = 36, 24
services, edges, nodes = ["s"], [], [{"kind": "service", "name": "s"}]
level = ["s"]
for d in range(depth):
    nxt = []
    for p in level:
        for k in range(fan):
            c = "%s.%d" % (p, k)
            services.append(c); nxt.append(c)
            nodes.append({"kind": "service", "name": c})
            edges.append({"kind": "calls", "from": p, "to": c})
    level = nxt
leaf = level[len(level) // 2]
path = set()
x = leaf
while True:
    path.add(x)
    if x == "s": break
    x = x.rsplit(".", 1)[0]
def series(kind, entity, metric, level, faulty):
    return {"kind": kind, "entity": entity, "metric": metric,
            "values": [round(level * (4 if faulty and i >= FAULT else 1) * (1 + rng.gauss(0, 0.03)), 3) for i in range(N)]}
def build(faulty):
    ser = []
    for s in services:
        nodes_m = "m-" + s
        ser.append(series("service", s, "latency_p99_ms", 20, faulty and s in path))
        ser.append(series("service", s, "requests", 500, False))
        ser.append(series("service", s, "error_rate", 0.01, False))
        ser.append(series("machine", nodes_m, "cpu_busy_ratio", 0.3, False))
    for e in edges:
        ser.append(series("edge", e["from"] + "->" + e["to"], "latency_p99_ms", 22, faulty and e["to"] in path))
        ser.append(series("edge", e["from"] + "->" + e["to"], "retransmits", 1, False))
    top = {"nodes": nodes + [{"kind": "machine", "name": "m-" + s} for s in services] +
                   [{"kind": "instance", "name": "i-" + s} for s in services],
           "edges": edges + [{"kind": "instance_of", "from": "i-" + s, "to": s} for s in services] +
                    [{"kind": "runs_on", "from": "i-" + s, "to": "m-" + s} for s in services]}
    return {"window_s": 5, "start_s": 1000,
            "alarm": {"kind": "service", "entity": "s", "metric": "latency_p99_ms", "at_s": 1000 + FAULT * 5},
            "topology": top, "series": ser}
json.dump(build(True), open(out, "w"))
json.dump(build(False), open(free, "w"))
open(out + ".leaf", "w").write(leaf)
PY
  leaf=$(cat "$work/s.json.leaf")
  times=() free_times=() diagnose_times=()
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N); "$build/faultline" attribute --situation "$work/s.json" >"$work/out.txt"; t1=$(date +%s%N)
    "$build/faultline" attribute --situation "$work/free.json" >/dev/null; t2=$(date +%s%N)
    "$build/faultline" diagnose --situation "$work/s.json" --format json >"$work/incident.json"; t3=$(date +%s%N)
    times+=($(((t1 - t0) / 1000000))) free_times+=($(((t2 - t1) / 1000000)))
    diagnose_times+=($(((t3 - t2) / 1000000)))
  done
  median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
  top=$(sed -n 2p "$work/out.txt" | sed 's/  score.*//')
  hops=$(grep -m1 '^   path:' "$work/out.txt" | tr -cd '>' | wc -c)
  [[ $top == "1. service $leaf" && $hops == "$2" ]] ||
    { echo "WRONG: fanout=$1 depth=$2: top '$top' with $hops hops, expected service $leaf with $2" >&2; exit 1; }
  answer=$(python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); c=i["root_causes"][0]; print(c["entity"]["name"], i["fault_tree"]["class"], len(c["path"]) - 1)' "$work/incident.json")
  [[ $answer == "$leaf own_code $2" ]] ||
    { echo "WRONG: fanout=$1 depth=$2: the incident says '$answer', expected '$leaf own_code $2'" >&2; exit 1; }
  size=$(stat -c %s "$work/s.json")
  echo "fanout=$1 depth=$2 json_bytes=$size top=\"$top\" path_hops=$hops ms_faulty=$(median "${times[@]}") ms_fault_free=$(median "${free_times[@]}") ms_diagnose=$(median "${diagnose_times[@]}") class=own_code"
done
