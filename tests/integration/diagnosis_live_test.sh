#!/usr/bin/env bash
# Live diagnosis end to end: agent -> embedded broker -> stream -> `faultline diagnose --brokers`,
# on a chain of three tiers on this host (frontend in Node.js, api and db in Python) under a
# steady load from a client process that serves nothing (loadgen).
#  1. Fault-free: two minutes of judged windows open no incident.
#  2. db answers 300 ms slower: exactly one incident opens, entry point frontend, root cause db,
#     class own_code, path db -> api -> frontend. The diagnosis is SIGKILLed right after the
#     incident topic acknowledged the opening and before the commit that forgets the delivery
#     (it commits every 5 s here), with the webhook receiver down: the restart on its state
#     directory finds both deliveries waiting, produces the topic's one no second time (counted
#     in faultline_diagnosis_redeliveries_skipped_total) and delivers the webhook's. Later the
#     receiver is down again while the incident resolves, after the fault is reverted.
#  3. db answers 500: one more incident (root cause db), resolved after the revert.
#  Then: the incident topic (read with kcat, an independent client) holds every (id, sequence) of
#  both incidents exactly once, in order, with no gap and no second incident for one fault; the
#  webhook receiver (independent Python that verifies every signature; it answered 500 twice and
#  was too slow once) accepted each once, but for the retry of the one it was too slow for;
#  /metrics counts the failed deliveries; bad configurations are refused naming the field, and an
#  unreachable broker names --brokers.
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

# The webhook receiver. This first one only reserves the port the configuration names: it is
# stopped before the first fault, and the one that takes its place misbehaves.
secret="whsec_$(head -c 24 /dev/urandom | base64)"
"$python" "$src/tests/integration/webhook_receiver.py" "$work/hooks.jsonl" "$secret" \
  >"$work/hook.out" 2>&1 & hook_pid=$!; pids+=($hook_pid)
hookport=$(wait_for "$work/hook.out" '^port=' | cut -d= -f2)
# Commits every 5 s: the kill in step 2 lands between the topic's acknowledgement of the opening
# and the next commit, which would forget the delivery.
cat >"$work/diagnosis.yaml" <<EOF
commit_interval_ms: 5000
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
# wait_metric_eq NAME VALUE SECONDS: waits for a counter to reach VALUE, and fails if it passed it
wait_metric_eq() {
  wait_metric "$1" "$2" "$3"
  local v
  v=$(metric "$1")
  awk -v v="$v" -v m="$2" 'BEGIN {exit !(v == m)}' ||
    { echo "FAIL: $1 is $v, expected exactly $2"; tail -20 "$work/diag.err"; exit 1; }
}
# scrape NAME...: the values of the named series from one read of /metrics (0 when absent)
scrape() {
  curl -sf "http://127.0.0.1:$diag_http/metrics" | awk -v names="$*" '
    {v[$1] = $2}
    END {n = split(names, want, " "); for (i = 1; i <= n; i++) printf "%s%s", ((want[i] in v) ? v[want[i]] : 0), ((i < n) ? " " : "\n")}'
}
incidents() { curl -sf "http://127.0.0.1:$diag_http/incidents"; }
opened='faultline_diagnosis_incidents_total{status="opened"}'
updated='faultline_diagnosis_incidents_total{status="updated"}'
resolved='faultline_diagnosis_incidents_total{status="resolved"}'
kafka_delivered='faultline_diagnosis_deliveries_total{result="delivered",sink="kafka"}'
failed='faultline_diagnosis_deliveries_total{result="failed",sink="webhook:hook"}'
delivered='faultline_diagnosis_deliveries_total{result="delivered",sink="webhook:hook"}'
rm -f "$work/diag.out" "$work/diag.err"
start_diagnosis

# 1. Fault-free: 12 windows of history before the detectors judge, then 24 judged windows.
wait_metric faultline_diagnosis_windows_judged_total 36 300
[[ $(metric "$opened") == 0 ]] ||
  { echo "FAIL: an incident opened without a fault:"; incidents; exit 1; }
echo "fault-free: $(metric faultline_diagnosis_windows_judged_total) windows judged, no incident"

# The first receiver goes; until one is back, every webhook delivery fails.
kill "$hook_pid"; wait "$hook_pid" 2>/dev/null || true

# 2. A slow db. The diagnosis is SIGKILLed once the topic acknowledged every change of the
# commit that opened the incident, before the next commit. One read of /metrics decides: the
# commit count must be the one the opening was first seen at, and that one at most one commit
# after the last read without a change (else the machine stalled past a commit: the window is
# unknown, and the test says so rather than guess).
quiet_commits=$(metric faultline_diagnosis_commits_total) first_commits='' killed=''
echo "slow 300" >"$work/fault"
fault_at=$(date +%s.%N)
for ((i = 0; i < 400; i++)); do
  kill -0 "$diag_pid" 2>/dev/null || { echo "FAIL: diagnose exited"; tail -20 "$work/diag.err"; exit 1; }
  values=$(scrape faultline_diagnosis_commits_total "$opened" "$updated" "$resolved" "$kafka_delivered") ||
    { sleep 0.1; continue; }
  read -r commits o u r k <<<"$values"
  if [[ $o == 0 && $u == 0 && $r == 0 ]]; then
    ((commits > quiet_commits)) && quiet_commits=$commits
  else
    [[ $o == 1 && $r == 0 ]] || { echo "FAIL: $o incidents opened, $r resolved: expected one open"; incidents; exit 1; }
    first_commits=${first_commits:-$commits}
    ((first_commits <= quiet_commits + 1)) && [[ $commits == "$first_commits" ]] ||
      { echo "FAIL: missed the kill window (commits: $quiet_commits without a change, $first_commits at the" \
          "opening, $commits now): the machine stalled for a commit interval"; exit 1; }
    if [[ $k == $((o + u)) ]]; then
      kill -KILL "$diag_pid"
      killed=$((o + u))
      break
    fi
  fi
  sleep 0.1
done
[[ -n $killed ]] || { echo "FAIL: no incident opened and acknowledged by the topic within 40 s"; tail -20 "$work/diag.err"; exit 1; }
wait "$diag_pid" 2>/dev/null || true
echo "slow db: incident open and on the topic $(awk -v a="$fault_at" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s after the fault; diagnosis SIGKILLed before forgetting its $killed change(s)"
# What the killed diagnosis had committed: one incident, its opening (and any update of the
# same commit), with the report `incidents show` prints for it.
"$fl" incidents --state-dir "$work/diag" list >"$work/list1.txt"
[[ $(wc -l <"$work/list1.txt") == 1 ]] || { echo "FAIL: incidents list after the kill:"; cat "$work/list1.txt"; exit 1; }
id1=$(awk '{print $1}' "$work/list1.txt")
"$fl" incidents --state-dir "$work/diag" show "$id1" --format json >"$work/open1.json"
"$fl" incidents --state-dir "$work/diag" show "$id1" >"$work/report1.txt"
"$python" - "$work/open1.json" "$work/report1.txt" "$killed" <<'PY'
import json, sys
i, report, changes = json.load(open(sys.argv[1])), open(sys.argv[2]).read().splitlines(), int(sys.argv[3])
assert i["status"] == ("open" if changes == 1 else "updated") and i["sequence"] == changes, (i["status"], i["sequence"], changes)
assert i["phenomenon"]["entity"] == {"kind": "service", "name": "frontend"}, i["phenomenon"]["entity"]
assert i["root_causes"][0]["entity"] == {"kind": "service", "name": "db"}, json.dumps(i["root_causes"], indent=1)
assert i["fault_tree"]["class"] == "own_code", json.dumps(i["fault_tree"], indent=1)
assert [h["entity"]["name"] for h in i["propagation"]] == ["db", "api", "frontend"], i["propagation"]
# The text report says the same as the stored incident: header, title, cause, the first root
# cause with its class and path, the propagation in order.
text = "\n".join(report)
def has(line):
    assert line in report, "no line %r in the report:\n%s" % (line, text)
assert report[0] == "INCIDENT %s  [%s #%d]  severity %s  opened %s" % (
    i["id"], i["status"], i["sequence"], i["severity"], i["opened_at"]), report[0]
assert report[1] == i["title"] and i["title"], (report[1], i["title"])
assert any(l.startswith("What:    frontend ") for l in report), text
has("Cause:   " + i["summary"])
first = [l for l in report if l.startswith("  1. ")]
assert len(first) == 1 and first[0].startswith("  1. service db  score ") and "  [own_code" in first[0], first
has("     path: " + " -> ".join(i["root_causes"][0]["path"]))
has("Why own_code (fault tree)")
hops = []
for l in report[report.index("Propagation") + 1:]:
    if not l:
        break
    hops.append(l.split("  (")[0].strip())
assert hops == ["service db", "-> service api", "-> service frontend"], hops
PY
cat "$work/report1.txt"
# The receiver that answers 500 to the first two deliveries and holds the next past the timeout.
"$python" "$src/tests/integration/webhook_receiver.py" "$work/hooks.jsonl" "$secret" --port "$hookport" \
  --fail-first 2 --slow-request 1 >"$work/hook2.out" 2>&1 & hook_pid=$!; pids+=($hook_pid)
wait_for "$work/hook2.out" '^port=' >/dev/null
sleep 2  # the fault goes on while nothing diagnoses (not a synchronisation)
start_diagnosis
# The restart restored the state, found the changes waiting for both sinks, and produced none
# that the topic already held.
restored=$(grep 'diagnosis: state of [0-9]* records restored' "$work/diag.err" | tail -1 || true)
[[ $restored =~ state\ of\ ([0-9]+)\ records.*\ ([0-9]+)\ deliveries\ waiting ]] &&
  ((BASH_REMATCH[1] > 0 && BASH_REMATCH[2] == 2 * killed)) ||
  { echo "FAIL: the restart: expected records and $((2 * killed)) deliveries waiting: $restored"; exit 1; }
[[ $(metric faultline_diagnosis_redeliveries_skipped_total) == "$killed" ]] ||
  { echo "FAIL: $(metric faultline_diagnosis_redeliveries_skipped_total) redeliveries skipped, expected $killed"; exit 1; }
echo "restart: $restored; $killed skipped as already on the topic"
# The webhook's opening: 500, 500, a timeout, then accepted (counted by this process).
wait_metric "$delivered" 1 30
[[ $(metric "$failed") == 3 ]] || { echo "FAIL: $(metric "$failed") failed webhook attempts, expected 3"; exit 1; }
# Then the receiver goes down again, for the resolution.
kill "$hook_pid"; wait "$hook_pid" 2>/dev/null || true
judged=$(metric faultline_diagnosis_windows_judged_total)
wait_metric faultline_diagnosis_windows_judged_total $((judged + 3)) 60
rm -f "$work/fault"
wait_metric_eq "$resolved" 1 60
echo "slow db: resolved"
# The resolution cannot reach the receiver while it is down: failed attempts, then it is back.
wait_metric "$failed" 4 20
"$python" "$src/tests/integration/webhook_receiver.py" "$work/hooks.jsonl" "$secret" --port "$hookport" \
  >"$work/hook3.out" 2>&1 & hook_pid=$!; pids+=($hook_pid)
wait_for "$work/hook3.out" '^port=' >/dev/null

# 3. A failing db (after its detectors saw the recovery). This process opened no incident yet
# and resolved one.
judged=$(metric faultline_diagnosis_windows_judged_total)
wait_metric faultline_diagnosis_windows_judged_total $((judged + 4)) 60
echo "error" >"$work/fault"
wait_metric_eq "$opened" 1 40
incidents >"$work/open2.json"
"$python" - "$work/open2.json" "$id1" <<'PY'
import json, sys
inc = [i for i in json.load(open(sys.argv[1])) if i["status"] != "resolved"]
assert len(inc) == 1 and inc[0]["id"] != sys.argv[2], [(i["id"], i["title"]) for i in inc]
i = inc[0]
assert i["phenomenon"]["entity"]["name"] == "frontend", i["phenomenon"]["entity"]
assert i["phenomenon"]["metric"] in ("error_rate", "errors"), i["phenomenon"]["metric"]
assert i["root_causes"][0]["entity"] == {"kind": "service", "name": "db"}, i["root_causes"][0]["entity"]
PY
rm -f "$work/fault"
wait_metric_eq "$resolved" 2 60
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
# The incident topic: key = id, CloudEvents headers, every (id, sequence) exactly once (the
# restart produced none of those it found there again); sequences 1..n without gaps, ending
# resolved.
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
        dups += 1
    seen[k] = body
assert dups == 0, "%d changes are on the incident topic twice" % dups
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
# The webhook receivers: every signature held; every (id, sequence) accepted, in order per
# incident, exactly once but for the delivery held past the timeout (accepted late, and again on
# its retry); the same webhook-id for every attempt of one delivery.
recs = [json.loads(l) for l in open(hooks)]
assert recs and all(r["sig_ok"] and r["fresh"] for r in recs), [r for r in recs if not r["sig_ok"]]
assert [r["answer"] for r in recs[:2]] == [500, 500], recs[:3]
slow = [r for r in recs if r.get("slow")]
assert len(slow) == 1, slow
accepted = collections.OrderedDict()
for r in recs:
    assert r["webhook_id"] == "%s.%d" % (r["id"], r["sequence"]), r
    if r["answer"] == 200:
        accepted.setdefault(r["webhook_id"], []).append(r)
twice = {w: len(rs) for w, rs in accepted.items() if len(rs) != 1}
assert twice == {slow[0]["webhook_id"]: 2}, twice
order = collections.defaultdict(list)
for rs in accepted.values():
    order[rs[0]["id"]].append(rs[0]["sequence"])
assert {k: v for k, v in order.items()} == {iid: [s for s, _ in ups] for iid, ups in ids.items()}, (order, ids)
# This process (since the restart): three failed attempts at the opening, then at least one
# while the receiver was down for the resolution.
assert failed >= 4, failed
print("topic: %d incidents, %d changes, no duplicate; webhooks: %d requests, %d accepted"
      % (len(ids), len(seen), len(recs), len(accepted)))
PY
[[ $(metric 'faultline_diagnosis_dropped_total{reason="undecodable"}') == 0 ]] ||
  { echo "FAIL: undecodable window records"; exit 1; }
"$fl" incidents --state-dir "$work/diag" list >"$work/list.txt"
[[ $(grep -c ' resolved ' "$work/list.txt") == 2 ]] || { echo "FAIL: incidents list:"; cat "$work/list.txt"; exit 1; }
echo PASS
