#!/usr/bin/env bash
# The live topology: agent -> embedded broker -> stream -> `faultline topology`. Two tiers of a
# service chain on this host (processes named frontend and backend), 12 requests to frontend,
# each making one call to backend. The graph must hold both services, their instances on this
# machine, and the calls edge frontend -> backend with exactly 12 requests; the store must keep it
# across invocations; the DOT rendering must be accepted by Graphviz.
# Usage: topology_live_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
source "$(dirname "$0")/lib.sh"
skip_without_ebpf "$build/faultline"

"$build/faultline" broker >"$work/broker.out" 2>&1 & pids+=($!)
bootstrap=$(wait_for "$work/broker.out" '^bootstrap=' | cut -d= -f2)
"$build/faultline" agent --brokers "$bootstrap" --node-name topo-node >"$work/agent.out" 2>&1 & pids+=($!)
wait_for "$work/agent.out" 'agent started' >/dev/null
"$build/faultline" stream --brokers "$bootstrap" --state-dir "$work/state" --commit-interval-ms 200 \
  --http-addr 127.0.0.1:0 >"$work/stream.out" 2>&1 & pids+=($!)
http_port=$(wait_for "$work/stream.out" '^http_port=' | cut -d= -f2)

mkdir -p "$work/bin"
python=$(readlink -f /usr/bin/python3)  # the Debian interpreter, not a version-manager shim
ln -s "$python" "$work/bin/backend"
ln -s "$python" "$work/bin/frontend"
"$work/bin/backend" "$src/tests/integration/tier_server.py" >"$work/backend.out" 2>&1 & pids+=($!)
bport=$(wait_for "$work/backend.out" '^port=' | cut -d= -f2)
"$work/bin/frontend" "$src/tests/integration/tier_server.py" --upstream "http://127.0.0.1:$bport/item" \
  >"$work/frontend.out" 2>&1 & pids+=($!)
fport=$(wait_for "$work/frontend.out" '^port=' | cut -d= -f2)

for i in $(seq 12); do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$fport/page")
  [[ $code == 200 ]] || { echo "FAIL: request $i answered $code"; exit 1; }
done

# The stream commits every 200 ms; open windows count. Poll (bounded) until all 12 calls are in.
edge=''
for ((i = 0; i < 150; i++)); do
  if [[ -d $work/state ]] && "$build/faultline" topology --state-dir "$work/state" --no-store --format json \
      >"$work/topo.json" 2>"$work/topo.err"; then
    edge=$(python3 - "$work/topo.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
calls = [e for e in g["edges"] if e["kind"] == "calls" and e["from"] == "frontend" and e["to"] == "backend"]
print(calls[0]["requests"] if calls else "")
PY
)
    [[ $edge == 12 ]] && break
  fi
  sleep 0.2
done
[[ $edge == 12 ]] || { echo "FAIL: frontend -> backend has '$edge' requests, expected 12"; cat "$work/topo.json" "$work/topo.err" 2>/dev/null; exit 1; }

"$build/faultline" topology --state-dir "$work/state" >"$work/topo.txt"
cat "$work/topo.txt"
# The pipeline runs on this host too: its own traffic (agent, stream and broker) is not part of the
# graph, every process with traffic is a named service (no "unknown"), and no node is a client's
# ephemeral port.
python3 - "$work/topo.json" "$bootstrap" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
broker_port = sys.argv[2].rsplit(":", 1)[1]
bad = []
for n in g["nodes"]:
    name = n["name"]
    if name == "unknown" or name.startswith("rdk:") or name == "faultline":
        bad.append(("pseudo or pipeline entity", n))
    if n["kind"] == "external":
        port = name.rsplit(":", 1)[1] if ":" in name and not name.endswith("]") else ""
        if port == broker_port:
            bad.append(("the broker", n))
        if port.isdigit() and int(port) >= 32768:
            bad.append(("an ephemeral port", n))
if bad:
    print("FAIL: " + "; ".join("%s: %s" % (why, n) for why, n in bad))
    sys.exit(1)
print("topology: %d nodes, none unknown, pipeline or ephemeral" % len(g["nodes"]))
PY
check() { grep -qx -- "$1" "$work/topo.txt" || { echo "FAIL: no line matching '$1'"; exit 1; }; }
check 'node service backend  seen [0-9.]*'
check 'node service frontend  seen [0-9.]*'
check 'node machine topo-node  seen [0-9.]*'
check 'edge calls frontend -> backend  requests 12  seen [0-9.]*'
check 'edge instance_of topo-node/[0-9]* -> frontend  seen [0-9.]*'
# instance -> the cgroup it runs in -> the machine (this host's processes share one cgroup).
check 'edge runs_on topo-node/[0-9]* -> topo-node:/[^ ]*  seen [0-9.]*'
check 'edge runs_on topo-node:/[^ ]* -> topo-node  seen [0-9.]*'
check 'edge network topo-node -> topo-node  seen [0-9.]*'
[[ -d $work/state/topology ]] || { echo "FAIL: no topology store"; exit 1; }

# The store alone (no new windows: a state dir without partitions would fail, so read the same
# one again): the graph stays the same and is not counted twice.
"$build/faultline" topology --state-dir "$work/state" --format dot >"$work/topo.dot"
grep -q '"service:frontend" -> "service:backend" \[label="12 req"' "$work/topo.dot" ||
  { echo "FAIL: dot lacks the calls edge"; cat "$work/topo.dot"; exit 1; }
dot -Tsvg "$work/topo.dot" >"$work/topo.svg" || { echo "FAIL: Graphviz rejected the DOT"; exit 1; }
grep -q '<svg' "$work/topo.svg" || { echo "FAIL: no SVG"; exit 1; }
# The situation around an alarm on frontend, from the same windows, and attribution on it (too
# little history to judge: it must say so rather than name a cause).
"$build/faultline" stream situation --state-dir "$work/state" --alarm service:frontend:latency_p99_ms \
  >"$work/situation.json"
python3 - "$work/situation.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
def total(kind, entity, metric):
    for m in s["series"]:
        if (m["kind"], m["entity"], m["metric"]) == (kind, entity, metric):
            return sum(v for v in m["values"] if v is not None)
    sys.exit("FAIL: no series %s %s %s" % (kind, entity, metric))
assert total("service", "frontend", "requests") == 12, "frontend requests"
assert total("service", "backend", "requests") == 12, "backend requests"
assert total("edge", "frontend->backend", "requests") == 12, "edge requests"
def values(kind, entity, metric):
    rows = [m["values"] for m in s["series"] if (m["kind"], m["entity"], m["metric"]) == (kind, entity, metric)]
    assert len(rows) == 1, "no series %s %s %s" % (kind, entity, metric)
    return rows[0]
# Window by window: nothing known before the entity's first window; from it on no errors, an error
# rate exactly where there were requests, a latency in every window with a request and none
# elsewhere, the same requests on the service and on the edge.
for entity, kind in (("frontend", "service"), ("backend", "service"), ("frontend->backend", "edge")):
    series = [values(kind, entity, m) for m in ("requests", "errors", "error_rate", "latency_p99_ms")]
    first = next(i for i, r in enumerate(series[0]) if r is not None)
    assert all(v is None for vs in series for v in vs[:first]), (entity, series)
    req, err, rate, p99 = (vs[first:] for vs in series)
    assert all(e == 0 for e in err), (entity, err)
    assert all((r > 0) == (x is not None) for r, x in zip(req, rate)), (entity, req, rate)
    assert all(x in (None, 0) for x in rate), (entity, rate)
    assert all((r > 0) == (x is not None and x > 0) for r, x in zip(req, p99)), (entity, req, p99)
assert values("service", "backend", "requests") == values("edge", "frontend->backend", "requests")
# The machine's resource pressure, from the agent's summaries (one a second): every window from
# the first the agent reported in has them, each value possible for this machine; the agent lost
# nothing.
mem_total_mb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal:")).split()[1]) / 1024
busy, runq, avail = (values("machine", "topo-node", m) for m in ("cpu_busy_ratio", "runq_p99_ms", "memory_available_mb"))
def since_first(v):  # the windows from the first the agent reported in
    first = next(i for i, x in enumerate(v) if x is not None)
    return v[first:]
assert all(v is not None for v in since_first(busy)), busy
assert all(v is None or 0 < v <= 1 for v in busy), busy
assert all(v is None or v > 0 for v in runq) and any(v is not None for v in runq), runq
assert all(v is None or 0 < v <= mem_total_mb for v in avail), avail
assert all(v is not None for v in since_first(avail)), avail
dropped = values("machine", "topo-node", "agent_dropped")
assert all(v == 0 for v in since_first(dropped)), ("the agent dropped events", dropped)
assert all(v is None for v in dropped[:len(dropped) - len(since_first(dropped))]), dropped
calls = [e for e in s["topology"]["edges"] if e["kind"] == "calls" and e["from"] == "frontend"]
assert [e["to"] for e in calls] == ["backend"], calls
PY
# The running processor serves the same on /situation; a bad alarm is a 400 naming it.
curl -sf "http://127.0.0.1:$http_port/situation?alarm=service:frontend:latency_p99_ms" >"$work/served.json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["alarm"]["entity"] == "frontend" and s["series"]' \
  "$work/served.json" || { echo "FAIL: /situation"; head -c 300 "$work/served.json"; exit 1; }
code=$(curl -s -o "$work/bad.txt" -w '%{http_code}' "http://127.0.0.1:$http_port/situation?alarm=frontend")
[[ $code == 400 && $(cat "$work/bad.txt") == 'alarm "frontend": expected KIND:ENTITY:METRIC with KIND service, edge or machine' ]] ||
  { echo "FAIL: /situation with a bad alarm answered $code: $(cat "$work/bad.txt")"; exit 1; }
"$build/faultline" attribute --situation "$work/situation.json" >"$work/attribution.txt"
grep -q '^cannot judge frontend latency_p99_ms: [0-5] windows of history before the alarm, 6 needed$' \
  "$work/attribution.txt" ||
  { echo "FAIL: attribution on a fault-free live situation:"; cat "$work/attribution.txt"; exit 1; }
echo PASS
