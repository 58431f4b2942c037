#!/usr/bin/env bash
# Stream processor failover without a shared disk: two processors of one group, each with its own
# state directory, a changelog topic, a steady event stream (tests/event_generator, paced). Once
# both are past a third of the stream (and caught up with it), one is SIGKILLed and not
# restarted. Measured from the kill:
#   assigned_s:  until the survivor logs the dead one's partitions as assigned (the group notices
#                the death after the session timeout, then rebalances; the restore is inside),
#   restore_ms:  the survivor's restore of those partitions (reading the changelog, rebuilding),
#   failover_s:  until the survivor has applied past the last offsets the dead one had reached
#                on every moved partition (from its last /status before the kill; /status moves
#                at each commit, every COMMIT_MS).
# Also: the session timeout, the changelog bytes restored (the moved state at the kill, as
# write batches), and the moved partitions' state directories at the end of the stream. The survivor's windows are then compared with the generator's
# reference (exact, as in stream_kafka_test).
# Usage: bench/stream_failover.sh [ROUNDS=2400] [EVENTS_PER_BATCH=50] [SERVICES=100]
#        (after scripts/build.sh; env SESSION_TIMEOUT_MS=6000 COMMIT_MS=200 PACE_MS=25)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2400} per_batch=${2:-50} services=${3:-100}
session_ms=${SESSION_TIMEOUT_MS:-6000} commit_ms=${COMMIT_MS:-200} pace_ms=${PACE_MS:-25}
fl=${FAULTLINE_BIN:-build/faultline}
gen=build/tests/event_generator
[[ -x $fl && -x $gen ]] || { echo "build first: scripts/build.sh" >&2; exit 1; }
source bench/lib.sh  # $work, $pids (stopped on exit), start_broker (4 partitions per topic)
until_true() {  # until_true WHAT SECONDS COMMAND…: polls COMMAND every 50 ms
  local what=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@"; do
    [ $SECONDS -lt $deadline ] && { sleep 0.05; continue; }
    echo "timed out waiting for $what" >&2
    tail -n 5 "$work"/*.err >&2
    exit 1
  done
}

start_broker "$fl"
brokers=$bootstrap
printf 'session_timeout_ms: %s\n' "$session_ms" >"$work/config.yaml"
start() {  # start NAME
  "$fl" stream --brokers "$brokers" --group g --state-dir "$work/$1" --metrics-topic "" \
    --changelog-topic faultline.changelog --config "$work/config.yaml" \
    --commit-interval-ms "$commit_ms" --http-addr 127.0.0.1:0 >"$work/$1.out" 2>"$work/$1.err" &
  pids+=($!)
  last_pid=$!
}
status() { curl -sf "http://127.0.0.1:$(sed -n 's/^http_port=//p' "$work/$1.out")/status"; }
both_busy() {
  local a b
  a=$(status a 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitions"]; print(min([v["next_offset"] for v in p.values()] or [0]))' 2>/dev/null || echo 0)
  b=$(status b 2>/dev/null | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitions"]; print(min([v["next_offset"] for v in p.values()] or [0]))' 2>/dev/null || echo 0)
  [ "$a" -gt "$((rounds / 3))" ] && [ "$b" -gt "$((rounds / 3))" ]
}

"$gen" --brokers "$brokers" --rounds "$rounds" --events-per-batch "$per_batch" \
  --services "$services" --machines 8 --pace-ms "$pace_ms" --seed 11 \
  --reference "$work/reference.jsonl" >"$work/gen.out" 2>"$work/gen.err" & pids+=($!)
gen_pid=$!
start a
a_pid=$last_pid
start b
until_true "both processors to own partitions and commit" 120 both_busy

# The dead one's partitions and how far it had got, then the kill.
status a >"$work/a-last.json"
kill -9 "$a_pid"
kill_t=$(date +%s.%N)
moved=$(python3 -c 'import json,sys; print(" ".join("%s:%d" % (p, v["next_offset"]) for p, v in json.load(open(sys.argv[1]))["partitions"].items()))' "$work/a-last.json")
echo "killed a at $kill_t; its partitions (partition:offset): $moved"
past_dead() {
  status b | python3 -c '
import json, sys
parts = json.load(sys.stdin)["partitions"]
for pv in sys.argv[1].split():
    p, v = pv.split(":")
    if parts.get(p, {}).get("next_offset", -1) <= int(v):
        sys.exit(1)
' "$moved"
}
until_true "the survivor to pass the dead one's offsets" 120 past_dead
past_t=$(date +%s.%N)

wait "$gen_pid"
want=$(sed -n 's/^partition=[0-9]* messages=\([0-9]*\)/\1/p' "$work/gen.out" | paste -sd' ')
at_end() {
  status b | python3 -c '
import json, sys
want = [int(x) for x in sys.argv[1].split()]
parts = json.load(sys.stdin)["partitions"]
sys.exit(0 if all(parts.get(str(p), {}).get("next_offset") == n for p, n in enumerate(want)) else 1)
' "$want"
}
until_true "the survivor to reach the end" 300 at_end
"$fl" stream query --state-dir "$work/b" >"$work/b.jsonl"
python3 tests/integration/compare_windows.py "$work/reference.jsonl" "$work/b.jsonl"

# Figures from the survivor's log and metrics.
python3 - "$kill_t" "$past_t" "$moved" "$work/b.err" <<'EOF'
import datetime, re, sys
kill_t, past_t, moved, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
parts = {pv.split(":")[0] for pv in moved.split()}
assigned, restore_ms, rebuilt = None, [], []
for line in open(log):
    m = re.match(r"(\S+) info partition (\d+): (.*)", line)
    if not m or m.group(2) not in parts:
        continue
    t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
    if t < kill_t:
        continue
    if m.group(3).startswith("state "):
        restore_ms.append(int(re.search(r"in (\d+) ms", m.group(3)).group(1)))
        rebuilt.append(m.group(3))
    if m.group(3).startswith("assigned") and assigned is None:
        assigned = t
for r in rebuilt:
    print("  " + r)
print("assigned_s=%.2f restore_ms=%s failover_s=%.2f" % (
    (assigned or float("nan")) - kill_t, max(restore_ms or [0]), past_t - kill_t))
EOF
metric() { curl -sf "http://127.0.0.1:$(sed -n 's/^http_port=//p' "$work/b.out")/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
state=0
for pv in $moved; do state=$((state + $(du -sb "$work/b/faultline.events-${pv%%:*}" | cut -f1))); done
echo "session_timeout_ms=$session_ms commit_interval_ms=$commit_ms moved_partitions=$(wc -w <<<"$moved")" \
  "moved_state_dir_bytes_at_end=$state restored_bytes=$(metric faultline_stream_changelog_restored_bytes_total)" \
  "snapshots=$(metric faultline_stream_changelog_snapshots_total)" \
  "changelog_errors=$(metric faultline_stream_changelog_errors_total)"
