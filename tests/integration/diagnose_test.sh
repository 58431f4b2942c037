#!/usr/bin/env bash
# faultline diagnose on every recorded situation of tests/data/situations: the right root cause and
# fault class, an incident valid against schema/incident.schema.json (checked by an independent
# validator), reports for people, a propagation path Graphviz renders; no incident when nothing is
# wrong; faultline fta check on good and broken trees.
set -euo pipefail
build=$1 src=$2
fl="$build/faultline"
data="$src/tests/data/situations"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

# situation -> "cause kind:entity class path"
declare -A expect=(
  [slow_leaf]="service:db own_code db>api>gateway"
  [edge_loss]="edge:gateway->api network_loss gateway->api>gateway"
  [edge_rtt]="edge:gateway->api network_latency gateway->api>gateway"
  [cpu_exhaustion]="machine:m3 machine_cpu_saturation m3>db>api>gateway"
  [container_throttle]="container:ctr-db-1 container_cpu_throttling ctr-db-1>db>api>gateway"
  [oom_kill]="container:ctr-db-2 oom_kill ctr-db-2>db>api>gateway"
  [disk_io]="machine:m3 disk_io_latency m3>db>api>gateway"
  [callee_refused]="edge:api->db connection_refused api->db>api>gateway"
  [error_leaf]="service:db own_code db>api>gateway"
  [traffic_surge]="service:db traffic_surge db>api>gateway"
  [slow_external]="edge:api->203.0.113.7:443 slow_downstream api->203.0.113.7:443>api>gateway"
  [negative_sibling]="service:db own_code db>api>gateway"
)
: >"$work/all.jsonl"
for name in "${!expect[@]}"; do
  "$fl" diagnose --situation "$data/$name.json" --format json >"$work/$name.json"
  cat "$work/$name.json" >>"$work/all.jsonl"
  got=$(python3 -c '
import json, sys
i = json.load(open(sys.argv[1]))
c = i["root_causes"][0]
print("%s:%s %s %s" % (c["entity"]["kind"], c["entity"]["name"], i["fault_tree"]["class"], ">".join(c["path"])))
' "$work/$name.json")
  [[ $got == "${expect[$name]}" ]] || fail "$name: got '$got', expected '${expect[$name]}'"
done
echo "classes: ok (${#expect[@]} situations)"

# The OOM kill is the one class: its working set grew to the kill, but no page was read back
# (major faults), so no memory pressure holds beside it.
python3 - "$work/oom_kill.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
names = [c["name"] for c in i["root_causes"][0]["fault_classes"]]
assert names == ["oom_kill"], names
assert i["drilldown"][0]["elements"] == ["instance=db-2"], i["drilldown"]
assert i["severity"] == "critical" and i["status"] == "open" and i["sequence"] == 1, i
assert i["dedup_key"] == "service:gateway|container:ctr-db-2", i["dedup_key"]
PY

# The same situation gives the same incident, byte for byte (ids are hashes, not clocks).
"$fl" diagnose --situation "$data/edge_loss.json" --format json | cmp - "$work/edge_loss.json" ||
  fail "a second diagnosis of edge_loss differs"

# Every incident is valid against the schema, checked by python3-jsonschema (Draft 2020-12).
"$fl" detectors metrics >"$work/catalog.txt"
/usr/bin/python3 "$src/tests/integration/validate_incident.py" "$src/schema/incident.schema.json" \
  "$work/catalog.txt" "$work/all.jsonl" | tee "$work/valid.txt"
[[ $(cat "$work/valid.txt") == "valid=${#expect[@]}" ]] || fail "not every incident was validated"
# The validator itself refuses a broken incident.
python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); i["severity"]="sev1"; print(json.dumps(i))' \
  "$work/edge_loss.json" >"$work/broken.jsonl"
if /usr/bin/python3 "$src/tests/integration/validate_incident.py" "$src/schema/incident.schema.json" \
  "$work/catalog.txt" "$work/broken.jsonl" >"$work/broken.out" 2>&1; then
  fail "the validator accepted severity sev1"
fi
grep -q "'sev1' is not one of" "$work/broken.out" || fail "validator: $(cat "$work/broken.out")"

# Nothing wrong: no incident, said on stdout, exit 0.
[[ $("$fl" diagnose --situation "$data/fault_free.json") == "no incident: no anomaly: gateway latency_p99_ms is within its baseline (z 0.04)" ]] ||
  fail "fault_free: $("$fl" diagnose --situation "$data/fault_free.json")"
[[ $("$fl" diagnose --situation "$data/fault_free.json" --format json 2>/dev/null) == null ]] || fail "fault_free json"

# Reports for people, and the path as DOT that Graphviz renders.
"$fl" diagnose --situation "$data/edge_loss.json" --dot-out "$work/path.dot" --svg-out "$work/path.svg" >"$work/report.txt"
grep -q '^Packet loss on a call edge at edge gateway->api: gateway latency_p99_ms rose$' "$work/report.txt" || fail "text title"
grep -q '^Why network_loss (fault tree)$' "$work/report.txt" || fail "text explanation"
grep -q "^Propagation graph: $work/path.svg$" "$work/report.txt" || fail "text names the SVG file"
grep -q "^Propagation graph (DOT): $work/path.dot" "$work/report.txt" || fail "text names the DOT file"
grep -q '<svg' "$work/path.svg" || fail "no SVG from --svg-out"
grep -q '<title>edge gateway&#45;&gt;api</title>' "$work/path.svg" || fail "the SVG lacks the cause's node"
dot -Tsvg "$work/path.dot" -o "$work/again.svg" || fail "Graphviz refused the DOT"
"$fl" diagnose --situation "$data/slow_leaf.json" --format markdown >"$work/report.md"
grep -q '^## The service.s own code at service db: gateway latency_p99_ms rose$' "$work/report.md" || fail "markdown title"
grep -q '^- db latency_mean_ms: `endpoint=GET /query`' "$work/report.md" || fail "markdown drill-down"
cmp <("$fl" diagnose --situation "$data/edge_loss.json" --format dot) "$work/path.dot" || fail "--format dot"

# Bad input: a situation naming an unknown metric; fault trees with a mistake.
sed 's/"latency_p99_ms"/"latency_p99"/' "$data/slow_leaf.json" >"$work/bad_situation.json"
if "$fl" diagnose --situation "$work/bad_situation.json" 2>"$work/err.txt"; then fail "bad situation accepted"; fi
grep -q "^faultline diagnose: $work/bad_situation.json: alarm.metric: unknown metric \"latency_p99\" (known: requests, " "$work/err.txt" ||
  fail "bad situation: $(cat "$work/err.txt")"
"$fl" fta check | grep -q '^built-in: 15 classes: ok$' || fail "fta check built-in"
"$fl" fta default >"$work/mine.yaml"
"$fl" fta check "$work/mine.yaml" | grep -q ": 15 classes: ok$" || fail "fta check of the printed defaults"
printf 'version: 1\nclasses:\n  - name: x\n    title: X\n    tree: {anomalous: {of: callee, metric: retransmits}}\n' >"$work/bad.yaml"
if "$fl" fta check "$work/bad.yaml" 2>"$work/err.txt"; then fail "bad trees accepted"; fi
grep -q "^faultline fta check: $work/bad.yaml:5: classes\[0\].tree.anomalous.metric: metric \"retransmits\" does not apply to a service" "$work/err.txt" ||
  fail "bad trees: $(cat "$work/err.txt")"
"$fl" diagnose --situation "$data/edge_loss.json" --trees "$work/mine.yaml" --format json | cmp - "$work/edge_loss.json" ||
  fail "--trees with the defaults differs from the built-in trees"
echo "diagnose: ok"
