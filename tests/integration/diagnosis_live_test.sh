#!/usr/bin/env bash
# Live diagnosis end to end: agent -> embedded broker -> stream -> `faultline diagnose --brokers`,
# on a chain of three tiers on this host (frontend in Node.js, api and db in Python) under a
# steady load from a client process that serves nothing (loadgen).
#  1. Fault-free: two minutes of judged windows open no incident.
#  2. db answers 300 ms slower: exactly one incident opens within 20 s, entry point frontend,
#     root cause db, class own_code, path db -> api -> frontend. Mid-incident the diagnosis is
#     SIGKILLed and restarted on its state directory, and the webhook receiver is down for a while;
#     once the fault is reverted the incident resolves.
#  3. db answers 500: one more incident (root cause db), resolved after the revert.
#  Then: the incident topic (read with kcat, an independent client) and the webhook receiver
#  (independent Python that verifies every signature; it answered 500 twice and was too slow once)
#  hold every (id, sequence) of both incidents, in order, with no gap and no second incident for
#  one fault; /metrics counts the failed deliveries; bad configurations are refused naming the
#  field, and an unreachable broker names --brokers.
# Usage: diagnosis_live_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
fl=$build/faultline
source "$(dirname "$0")/lib.sh"
skip_without_ebpf "$fl"
command -v kcat >/dev/null || { echo "FAIL: kcat is missing (scripts/setup.sh installs it)"; exit 1; }
python=$(readlink -f /usr/bin/python3)

# Bad input first (each is refused at once, before anything runs).
bad() {  # bad CONFIG_TEXT EXPECTED_STDERR_PREFIX
  printf '%s' "$1" >"$work/bad.yaml"
  local rc=0
  "$fl" diagnose --brokers 127.0.0.1:9 --state-dir "$work/bad-state" --config "$work/bad.yaml" \
    >/dev/null 2>"$work/bad.err" || rc=$?
  [[ $rc == 2 ]] || { echo "FAIL: exit $rc for a bad config: $(cat "$work/bad.err")"; exit 1; }
  grep -qF -- "$2" "$work/bad.err" || { echo "FAIL: expected '$2', got: $(cat "$work/bad.err")"; exit 1; }
}
bad $'detectors:\n  rules:\n    - match: {kind: service, metric: latency_p42}\n      detector: mad\n' \
  "faultline diagnose: $work/bad.yaml (detectors, from line 2):2: rules[0].match.metric: unknown metric \"latency_p42\" (known: requests, "
bad $'detectors:\n  rules:\n    - detector: nope\n' "rules[0]: no detector named 'nope'"
bad $'webhooks:\n  - {name: ops, url: "http//nowhere", secret: s}\n' \
  "faultline diagnose: $work/bad.yaml:2: webhooks[0].url: 'http//nowhere': Bad scheme"
rc=0
"$fl" diagnose --brokers 127.0.0.1:9 --state-dir "$work/unreachable" >/dev/null 2>"$work/unreach.err" || rc=$?
[[ $rc == 1 ]] && grep -q '^faultline diagnose: --brokers 127.0.0.1:9: no metadata for topic faultline.metrics' "$work/unreach.err" ||
  { echo "FAIL: an unreachable broker: exit $rc: $(cat "$work/unreach.err")"; exit 1; }

# The pipeline.
"$fl" broker >"$work/broker.out" 2>&1 & pids+=($!)
bootstrap=$(wait_for "$work/broker.out" '^bootstrap=' | cut -d= -f2)
"$fl" agent --brokers "$bootstrap" --node-name diag-node >"$work/agent.out" 2>&1 & pids+=($!)
wait_for "$work/agent.out" 'agent started' >/dev/null
printf 'allowed_lateness_seconds: 2\n' >"$work/stream.yaml"
"$fl" stream --brokers "$bootstrap" --state-dir "$work/stream" --config "$work/stream.yaml" \
  --commit-interval-ms 200 >"$work/stream.out" 2>&1 & pids+=($!)

# The chain and its load.
mkdir -p "$work/bin"
for name in db api loadgen; do ln -s "$python" "$work/bin/$name"; done
"$work/bin/db" "$src/tests/integration/tier_server.py" --fault-file "$work/fault" >"$work/db.out" 2>&1 & pids+=($!)
dbport=$(wait_for "$work/db.out" '^port=' | cut -d= -f2)
"$work/bin/api" "$src/tests/integration/tier_server.py" --upstream "http://127.0.0.1:$dbport/row" \
  >"$work/api.out" 2>&1 & pids+=($!)
apiport=$(wait_for "$work/api.out" '^port=' | cut -d= -f2)
node "$src/tests/integration/tier.js" --name frontend --upstream "http://127.0.0.1:$apiport/data" \
  >"$work/frontend.out" 2>&1 & pids+=($!)
feport=$(wait_for "$work/frontend.out" '^port=' | cut -d= -f2)
"$work/bin/loadgen" "$src/tests/integration/loadgen.py" "http://127.0.0.1:$feport/page" 20 480 \
  >"$work/loadgen.out" 2>&1 & pids+=($!)

# The webhook receiver: 500 to the first two deliveries, the next one held past the timeout.
secret="whsec_$(head -c 24 /dev/urandom | base64)"
"$python" "$src/tests/integration/webhook_receiver.py" "$work/hooks.jsonl" "$secret" --fail-first 2 \
  --slow-request 1 >"$work/hook.out" 2>&1 & hook_pid=$!; pids+=($hook_pid)
hookport=$(wait_for "$work/hook.out" '^port=' | cut -d= -f2)
cat >"$work/diagnosis.yaml" <<EOF
webhooks:
  - name: hook
    url: http://127.0.0.1:$hookport/incidents
    secret: $secret
    timeout_ms: 1000
    max_backoff_ms: 2000
EOF

diag_pid=
start_diagnosis() {
  touch "$work/diag.out" "$work/diag.err"  # read below before the background shell may open them
  "$fl" diagnose --brokers "$bootstrap" --state-dir "$work/diag" --config "$work/diagnosis.yaml" \
    --http-addr 127.0.0.1:0 >>"$work/diag.out" 2>>"$work/diag.err" & diag_pid=$!; pids+=($diag_pid)
  for ((i = 0; i < 700; i++)); do
    diag_http=$(sed -n 's/^http_port=//p' "$work/diag.err" | tail -1)
    [[ -n $diag_http ]] && curl -sf "http://127.0.0.1:$diag_http/status" >/dev/null 2>&1 && return 0
    kill -0 "$diag_pid" 2>/dev/null || { echo "FAIL: diagnose exited"; cat "$work/diag.err"; exit 1; }
    sleep 0.1
  done
  echo "FAIL: diagnose did not start"; cat "$work/diag.err"; exit 1
}
metric() {  # metric NAME_AND_LABELS: its value on the diagnosis's /metrics (0 when absent)
  curl -sf "http://127.0.0.1:$diag_http/metrics" | awk -v m="$1" '$1 == m {print $2; f=1} END {if (!f) print 0}'
}
# wait_metric NAME MIN SECONDS
wait_metric() {
  local i v
  for ((i = 0; i < $3 * 5; i++)); do
    v=$(metric "$1")
    awk -v v="$v" -v m="$2" 'BEGIN {exit !(v >= m)}' && return 0
    sleep 0.2
  done
  echo "FAIL: $1 is $(metric "$1") after $3 s, expected at least $2"; tail -20 "$work/diag.err"; exit 1
}
incidents() { curl -sf "http://127.0.0.1:$diag_http/incidents"; }
rm -f "$work/diag.out" "$work/diag.err"
start_diagnosis

# 1. Fault-free: 12 windows of history before the detectors judge, then 24 judged windows.
wait_metric faultline_diagnosis_windows_judged_total 36 300
[[ $(metric 'faultline_diagnosis_incidents_total{status="opened"}') == 0 ]] ||
  { echo "FAIL: an incident opened without a fault:"; incidents; exit 1; }
echo "fault-free: $(metric faultline_diagnosis_windows_judged_total) windows judged, no incident"

# 2. A slow db.
echo "slow 300" >"$work/fault"
fault_at=$(date +%s.%N)
wait_metric 'faultline_diagnosis_incidents_total{status="opened"}' 1 30
opened_at=$(date +%s.%N)
echo "slow db: incident open $(awk -v a="$fault_at" -v b="$opened_at" 'BEGIN {printf "%.1f", b - a}') s after the fault"
incidents >"$work/open1.json"
"$python" - "$work/open1.json" <<'PY'
import json, sys
inc = json.load(open(sys.argv[1]))
assert len(inc) == 1, [i["title"] for i in inc]
i = inc[0]
assert i["status"] == "open" and i["sequence"] == 1, (i["status"], i["sequence"])
assert i["phenomenon"]["entity"] == {"kind": "service", "name": "frontend"}, i["phenomenon"]["entity"]
assert i["root_causes"][0]["entity"] == {"kind": "service", "name": "db"}, json.dumps(i["root_causes"], indent=1)
assert i["fault_tree"]["class"] == "own_code", json.dumps(i["fault_tree"], indent=1)
assert [h["entity"]["name"] for h in i["propagation"]] == ["db", "api", "frontend"], i["propagation"]
PY
id1=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$work/open1.json")
"$fl" incidents --state-dir "$work/diag" show "$id1" >"$work/report1.txt"
grep -q '^' "$work/report1.txt" && grep -q 'db' "$work/report1.txt" ||
  { echo "FAIL: incidents show $id1"; cat "$work/report1.txt"; exit 1; }
cat "$work/report1.txt"
# The receiver answers 500 twice and too late once before it accepts the opening: three failed
# attempts, counted.
failed='faultline_diagnosis_deliveries_total{result="failed",sink="webhook:hook"}'
wait_metric "$failed" 3 20
wait_metric 'faultline_diagnosis_deliveries_total{result="delivered",sink="webhook:hook"}' 1 20
# Mid-incident: the receiver goes down, the diagnosis is SIGKILLed and restarted on its state.
kill "$hook_pid"; wait "$hook_pid" 2>/dev/null || true
kill -KILL "$diag_pid"; wait "$diag_pid" 2>/dev/null || true
sleep 2  # the fault goes on while nothing diagnoses (not a synchronisation)
start_diagnosis
grep -q 'diagnosis: state of [0-9]* records restored' "$work/diag.err" ||
  { echo "FAIL: the restart restored nothing"; cat "$work/diag.err"; exit 1; }
judged=$(metric faultline_diagnosis_windows_judged_total)
wait_metric faultline_diagnosis_windows_judged_total $((judged + 3)) 60
rm -f "$work/fault"
wait_metric 'faultline_diagnosis_incidents_total{status="resolved"}' 1 60
echo "slow db: resolved"
# The resolution cannot reach the receiver while it is down: failed attempts, then it is back.
wait_metric "$failed" 1 20
"$python" "$src/tests/integration/webhook_receiver.py" "$work/hooks.jsonl" "$secret" --port "$hookport" \
  >"$work/hook2.out" 2>&1 & hook_pid=$!; pids+=($hook_pid)
wait_for "$work/hook2.out" '^port=' >/dev/null

# 3. A failing db (after its detectors saw the recovery).
judged=$(metric faultline_diagnosis_windows_judged_total)
wait_metric faultline_diagnosis_windows_judged_total $((judged + 4)) 60
echo "error" >"$work/fault"
wait_metric 'faultline_diagnosis_incidents_total{status="opened"}' 1 30
for ((i = 0; i < 150; i++)); do
  incidents >"$work/open2.json"
  [[ $(grep -o '"status":"open"' "$work/open2.json" | wc -l) -ge 1 ]] && break
  sleep 0.2
done
"$python" - "$work/open2.json" <<'PY'
import json, sys
inc = [i for i in json.load(open(sys.argv[1])) if i["status"] != "resolved"]
assert len(inc) == 1, [i["title"] for i in inc]
i = inc[0]
assert i["phenomenon"]["entity"]["name"] == "frontend", i["phenomenon"]["entity"]
assert i["phenomenon"]["metric"] in ("error_rate", "errors"), i["phenomenon"]["metric"]
assert i["root_causes"][0]["entity"] == {"kind": "service", "name": "db"}, i["root_causes"][0]["entity"]
PY
rm -f "$work/fault"
wait_metric 'faultline_diagnosis_incidents_total{status="resolved"}' 1 60
for ((i = 0; i < 300; i++)); do
  [[ $(incidents | grep -o '"status":"resolved"' | wc -l) == 2 ]] && break
  sleep 0.2
done
[[ $(incidents | grep -o '"status":"resolved"' | wc -l) == 2 ]] || { echo "FAIL: not both resolved"; incidents; exit 1; }
echo "failing db: resolved"
# Every delivery left the outbox.
for ((i = 0; i < 150; i++)); do
  [[ $(metric 'faultline_diagnosis_outbox_entries{sink="webhook:hook"}') == 0 &&
     $(metric 'faultline_diagnosis_outbox_entries{sink="kafka"}') == 0 ]] && break
  sleep 0.2
done
[[ $(metric 'faultline_diagnosis_outbox_entries{sink="webhook:hook"}') == 0 ]] ||
  { echo "FAIL: webhook deliveries still waiting"; exit 1; }
failed_now=$(metric "$failed")
incidents >"$work/final.json"

kcat -C -b "$bootstrap" -t faultline.incidents -o beginning -e -q -f '%k\t%h\t%s\n' >"$work/topic.tsv"
"$python" - "$work/topic.tsv" "$work/hooks.jsonl" "$work/final.json" "$failed_now" <<'PY'
import collections, json, sys
topic, hooks, final, failed = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), float(sys.argv[4])
# The incident topic: key = id, CloudEvents headers, every (id, sequence) once after dropping
# duplicates by (id, sequence); sequences 1..n without gaps, ending resolved.
seen = collections.OrderedDict()
dups = 0
for line in open(topic):
    key, headers, body = line.rstrip("\n").split("\t", 2)
    h = dict(kv.split("=", 1) for kv in headers.split(","))
    i = json.loads(body)
    assert key == i["id"], (key, i["id"])
    assert h["ce_specversion"] == "1.0" and h["ce_id"] == "%s.%d" % (i["id"], i["sequence"]), h
    assert h["ce_type"].startswith("dev.faultline.incident."), h
    k = (i["id"], i["sequence"])
    if k in seen:
        assert seen[k] == body, "a redelivery differs from the first"
        dups += 1
    seen[k] = body
ids = collections.OrderedDict()
for (iid, seq), body in seen.items():
    ids.setdefault(iid, []).append((seq, json.loads(body)))
assert len(ids) == 2, list(ids)
for iid, ups in ids.items():
    seqs = [s for s, _ in ups]
    assert seqs == list(range(1, len(seqs) + 1)), (iid, seqs)
    assert ups[0][1]["status"] == "open" and ups[-1][1]["status"] == "resolved", (iid, [u["status"] for _, u in ups])
    assert len({u["dedup_key"] for _, u in ups}) == 1
by_final = {i["id"]: i for i in final}
assert set(by_final) == set(ids), (set(by_final), set(ids))
for iid, ups in ids.items():
    assert ups[-1][1] == by_final[iid], "the topic's last word is not the stored incident"
# The webhook receiver: every signature held; every (id, sequence) accepted, in order per
# incident; the same webhook-id for every attempt of one delivery.
recs = [json.loads(l) for l in open(hooks)]
assert recs and all(r["sig_ok"] and r["fresh"] for r in recs), [r for r in recs if not r["sig_ok"]]
assert [r["answer"] for r in recs[:2]] == [500, 500], recs[:3]
assert any(r.get("slow") for r in recs), "no delivery was held past the timeout"
accepted = collections.OrderedDict()
for r in recs:
    assert r["webhook_id"] == "%s.%d" % (r["id"], r["sequence"]), r
    if r["answer"] == 200:
        accepted.setdefault(r["webhook_id"], r)
order = collections.defaultdict(list)
for r in accepted.values():
    order[r["id"]].append(r["sequence"])
assert {k: v for k, v in order.items()} == {iid: [s for s, _ in ups] for iid, ups in ids.items()}, (order, ids)
# This process (since the restart) counted the attempts made while the receiver was down.
assert failed >= 1, failed
print("topic: %d incidents, %d changes, %d duplicates dropped; webhooks: %d requests, %d accepted"
      % (len(ids), len(seen), dups, len(recs), len(accepted)))
PY
[[ $(metric 'faultline_diagnosis_dropped_total{reason="undecodable"}') == 0 ]] ||
  { echo "FAIL: undecodable window records"; exit 1; }
"$fl" incidents --state-dir "$work/diag" list >"$work/list.txt"
[[ $(grep -c ' resolved ' "$work/list.txt") == 2 ]] || { echo "FAIL: incidents list:"; cat "$work/list.txt"; exit 1; }
echo PASS
