#!/usr/bin/env bash
# The fault-injection lab as a smoke test (label lab): the README's demo end to end, and its
# teardown. Plumbing, not accuracy: which cause the diagnosis names over every fault kind is a
# benchmark figure (bench/lab.sh, bench/RESULTS.md) and, case by case, the replay corpus
# (replay_test, tests/data/replay/).
#   1. `faultline lab demo` SIGKILLed once its pipeline is up: its supervisor tears the lab down
#      and the pipeline's processes go with it; nothing of it is left (faultline lab check-clean).
#   2. `faultline lab demo --webhook URL`: the shop, the whole pipeline, one fault (catalog 300 ms
#      slower). The demo exits 0 (its incident opened and resolved); that incident reaches the
#      topic faultline.incidents (read by kcat, an independent client) and a webhook receiver
#      (webhook_receiver.py, which checks the Standard Webhooks signature) as open and then
#      resolved, and nothing of the lab is left.
# Needs root (network namespaces, cgroups): skipped (77) otherwise, a failure under
# FAULTLINE_REQUIRE_EBPF=1 (CI).
# Usage: lab_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
fl=$build/faultline
py=/usr/bin/python3
work=$(mktemp -d /tmp/faultline-lab-test.XXXXXX)
runner= hook= reader=
cleanup() {
  local p
  for p in $runner $reader $hook; do kill "$p" 2>/dev/null || true; done
  for p in $runner $reader $hook; do wait "$p" 2>/dev/null || true; done
  "$fl" lab down >/dev/null 2>&1 || true
  rm -rf "$work" || echo "lab_test: warning: could not remove $work" >&2
}
trap cleanup EXIT
fail() { echo "lab_test: FAIL: $*" >&2; exit 1; }

if [[ $(id -u) != 0 ]]; then
  [[ ${FAULTLINE_REQUIRE_EBPF:-0} == 1 ]] && fail "needs root (network namespaces, cgroups), and FAULTLINE_REQUIRE_EBPF=1 forbids a skip"
  echo "lab_test: needs root (network namespaces, cgroups)" >&2
  exit 77
fi
command -v kcat >/dev/null || fail "kcat is missing (scripts/setup.sh installs it)"
"$fl" lab check-clean >/dev/null 2>&1 || "$fl" lab down >/dev/null 2>&1 || true

# wait_for FILE PATTERN SECONDS PID: until FILE has a line matching PATTERN; fails if PID exits.
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q -- "$2" "$1" && return 0
    kill -0 "$4" 2>/dev/null || fail "the demo exited before '$2': $(tail -5 "$1")"
    sleep 0.1
  done
  fail "no '$2' within $3 s: $(tail -5 "$1")"
}

# --- 1. killed: nothing left --------------------------------------------------------------------
"$fl" lab demo >"$work/killed.out" 2>"$work/killed.err" &
runner=$!
wait_for "$work/killed.err" "pipeline up (broker" 120 "$runner"
# The pipeline's processes (broker, agents, stream, diagnosis) are the runner's children.
children=$(ps -o pid= --ppid "$runner" | tr -d ' ' | tr '\n' ' ')
[[ $(wc -w <<<"$children") -ge 6 ]] || fail "expected 6 pipeline processes under the runner, found: $children"
"$fl" lab status | "$py" -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["up"] else 1)' ||
  fail "the lab is not up during the baseline"
kill -KILL "$runner"
wait "$runner" 2>/dev/null || true
runner=
clean=
for _ in $(seq 120); do  # the supervisor sees its owner gone within a tick, down takes seconds
  if "$fl" lab check-clean >"$work/check.out" 2>&1; then clean=1; break; fi
  sleep 0.5
done
[[ -n $clean ]] || fail "60 s after SIGKILL the lab is still there: $(cat "$work/check.out")"
# The kernel sends each pipeline process SIGTERM when the runner dies (PR_SET_PDEATHSIG); an agent
# then flushes to a broker that is gone for at most 10 s (kafka_sink.cc) before it exits. All of
# them must be gone within 30 s.
alive() {
  local pid cmd out=
  for pid in $children; do
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue  # gone
    [[ $cmd == "$fl "* ]] && out+="$pid ($cmd) "
  done
  echo -n "$out"
}
for _ in $(seq 60); do
  [[ -z $(alive) ]] && break
  sleep 0.5
done
left=$(alive)
[[ -z $left ]] || fail "pipeline processes outlived the SIGKILLed run by 30 s: $left"
echo "lab_test: killed demo: lab torn down, pipeline gone"

# --- 2. the demo, with a webhook and a reader of the incident topic ----------------------------
secret=lab-test-secret
"$py" "$src/tests/integration/webhook_receiver.py" "$work/hooks.jsonl" "$secret" >"$work/hook.out" &
hook=$!
for _ in $(seq 100); do grep -q '^port=' "$work/hook.out" && break; sleep 0.1; done
port=$(sed -n 's/^port=//p' "$work/hook.out")
[[ -n $port ]] || fail "the webhook receiver did not start"
rc=0
FAULTLINE_WEBHOOK_SECRET=$secret "$fl" lab demo --webhook "http://127.0.0.1:$port/hook" \
  >"$work/demo.out" 2>"$work/demo.err" &
runner=$!
wait_for "$work/demo.err" "pipeline up (broker" 120 "$runner"
broker=$(sed -n 's/.*pipeline up (broker \([^,]*\),.*/\1/p' "$work/demo.err")
# -u: a line per message as it comes; the reader outlives the broker and is stopped below.
kcat -C -u -b "$broker" -t faultline.incidents -o beginning -q -f '%k\t%s\n' >"$work/topic.tsv" 2>"$work/kcat.err" &
reader=$!
wait "$runner" || rc=$?
runner=
kill "$reader" 2>/dev/null || true
wait "$reader" 2>/dev/null || true
reader=
sed 's/^/  demo: /' "$work/demo.err"
[[ $rc == 0 ]] || fail "the demo exited $rc"
iid=$(sed -n 's/.*lab: incident \([^ ]*\) opened .*/\1/p' "$work/demo.err")
[[ -n $iid ]] || fail "the demo named no incident"
"$py" - "$iid" "$work/topic.tsv" "$work/hooks.jsonl" <<'PY'
import json, sys
iid, topic, hooks = sys.argv[1:4]
errors = []
# The topic: key = the incident's id; its updates in sequence order, open first, resolved last.
ups = {}
for line in open(topic):
    key, body = line.rstrip("\n").split("\t", 1)
    doc = json.loads(body)
    if key != doc["id"]:
        errors.append("topic: key %s carries incident %s" % (key, doc["id"]))
    ups.setdefault(doc["id"], {})[doc["sequence"]] = doc["status"]
mine = ups.get(iid, {})
statuses = [mine[s] for s in sorted(mine)]
if not statuses or statuses[0] != "open" or statuses[-1] != "resolved":
    errors.append("topic: incident %s went %s, expected open ... resolved" % (iid, statuses))
if sorted(mine) != list(range(1, len(mine) + 1)):
    errors.append("topic: incident %s has sequences %s, expected 1..n" % (iid, sorted(mine)))
# The webhook: every delivery signed with the secret and fresh; the incident's open and resolved
# updates accepted.
recs = [json.loads(l) for l in open(hooks)]
bad = [r for r in recs if not (r["sig_ok"] and r["fresh"])]
if bad:
    errors.append("webhook: %d deliveries failed the signature or timestamp check: %s" % (len(bad), bad[:2]))
got = [r["status"] for r in recs if r["id"] == iid and r["answer"] == 200]
if "open" not in got or "resolved" not in got:
    errors.append("webhook: incident %s delivered as %s, expected open and resolved" % (iid, got))
if errors:
    sys.exit("lab_test: FAIL:\n  " + "\n  ".join(errors))
print("lab_test: demo: incident %s on the topic as %s and on the webhook as %s (%d incidents, %d deliveries)"
      % (iid, statuses, got, len(ups), len(recs)))
PY
"$fl" lab check-clean >"$work/check.out" 2>&1 || fail "after the demo the lab is still there: $(cat "$work/check.out")"

# --- 3. the second system, the ledger: replicas, pools, faults on one replica --------------------
"$fl" lab up --system ledger --rate 20 --max-seconds 120 >"$work/ledger.json" 2>"$work/ledger.err" ||
  fail "the ledger did not come up: $(tail -3 "$work/ledger.err")"
"$py" - "$work/ledger.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
got = sorted((x["name"], x["comm"], x["machine"], x["language"], x["alive"]) for x in s["services"])
want = sorted([("edge", "edge", "m1", "node", True), ("db", "db", "m1", "python", True),
               ("auth", "auth", "m2", "python", True), ("accounts", "accounts", "m2", "python", True),
               ("history", "history", "m2", "node", True), ("ledger", "ledger", "m3", "node", True),
               ("risk", "risk", "m3", "go", True)]
              + [("api@%s" % m, "api", m, "go", True) for m in ("m1", "m2", "m3")])
if (s["system"], s["entry"], got) != ("ledger", "edge", want):
    sys.exit("lab_test: FAIL: the ledger's instances: %s %s %s" % (s["system"], s["entry"], got))
PY
# The load's first 5 s report: every request answered 200 through all three replicas.
for _ in $(seq 100); do [[ -s /run/faultline-lab/load.jsonl ]] && break; sleep 0.1; done
"$py" - /run/faultline-lab/load.jsonl <<'PY'
import json, sys
row = json.loads(open(sys.argv[1]).readline())
if not (row["sent"] >= 90 and row["ok"] == row["sent"] and row["errors"] == 0):
    sys.exit("lab_test: FAIL: the ledger's first 5 s of load: %s" % row)
PY
# Pooled: the edge's connections to the api stay open, at least one to each replica.
conns=$(nsenter --net=/run/netns/fllab-m1 ss -Htn state established '( dport = :8081 )' | awk '{print $4}' | sed 's/:8081$//' | sort -u | tr '\n' ' ')
[[ $conns == "198.18.0.11 198.18.0.12 198.18.0.13 " ]] || fail "the edge's pooled connections to the api replicas: '$conns'"
# A fault on one replica writes that replica's fault file only.
"$fl" lab inject --kind slow --target api@m2 --param ms=300 >/dev/null 2>"$work/inject.err" || fail "inject: $(cat "$work/inject.err")"
[[ $(cat /run/faultline-lab/faults/api@m2) == "slow 300" && -z $(cat /run/faultline-lab/faults/api@m1 /run/faultline-lab/faults/api@m3) ]] ||
  fail "slow api@m2: fault files $(head /run/faultline-lab/faults/api@*)"
"$fl" lab revert >/dev/null 2>&1 || fail "revert slow api@m2"
# A delay on an edge whose caller has three instances: one delayer on each caller machine.
"$fl" lab inject --kind delay --target "api->auth" --param ms=20 >/dev/null 2>"$work/inject.err" || fail "inject: $(cat "$work/inject.err")"
"$fl" lab status | "$py" -c '
import json, sys
s = json.load(sys.stdin)
names = sorted(p["name"] for p in s["other_processes"] if p["pid"])
paths = s["fault"]["undo"].get("paths") or {}
if s["fault"]["undo"]["method"] == "nfqueue" and names != ["delayer-m1", "delayer-m2", "delayer-m3"]:
    sys.exit("lab_test: FAIL: delay api->auth: delayers %s" % names)
if sorted(paths) != ["m1", "m2", "m3"] or any(len(v) != 1 or v[0][1:] != ["198.18.0.12", 8082] for v in paths.values()):
    sys.exit("lab_test: FAIL: delay api->auth: paths %s" % paths)'
"$fl" lab revert >/dev/null 2>&1 || fail "revert delay api->auth"
"$fl" lab down >/dev/null 2>&1 || true
"$fl" lab check-clean >"$work/check.out" 2>&1 || fail "after the ledger the lab is still there: $(cat "$work/check.out")"
echo "lab_test: ledger: 10 instances, pooled connections to 3 replicas, faults on one replica and on 3 caller machines"
echo "lab_test: ok"
