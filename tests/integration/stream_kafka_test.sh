#!/usr/bin/env bash
# kafka test: the stream processor against an independent reference, through a real Kafka-protocol
# broker (faultline broker, librdkafka's mock cluster on 127.0.0.1).
#
# event_generator produces a known stream (out-of-order and late events included) over ~8 s and
# computes the expected windows itself. Three consumer groups process the same topic, each into
# its own state directory:
#   clean:  one processor, started after the stream is complete, never disturbed;
#   killed: one processor, SIGKILLed at random instants 3 times while the stream flows, restarted;
#   pair:   two processors in one group sharing a state directory; one is SIGKILLed mid-stream
#           and restarted, so its partitions move to the other and (some) back.
# Each group's stored windows must equal the reference exactly (counts).
# Usage: stream_kafka_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
fl=$build/faultline
gen=$build/tests/event_generator
work=$(mktemp -d /tmp/fl-stream-test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.err; do echo "--- $f" >&2; tail -5 "$f" >&2; done; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND…: polls COMMAND every 0.1 s until it succeeds, at most SECONDS.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

"$fl" broker --partitions 4 >"$work/broker.out" 2>"$work/broker.err" &
pids+=($!)
wait_for "the broker" 20 grep -q '^bootstrap=' "$work/broker.out"
brokers=$(sed -n 's/^bootstrap=//p' "$work/broker.out")

# start_processor NAME GROUP STATE: runs `faultline stream` in the background; sets $last_pid.
start_processor() {
  local name=$1 group=$2 state=$3
  "$fl" stream --brokers "$brokers" --group "$group" --state-dir "$work/$state" --metrics-topic "" \
    --http-addr 127.0.0.1:0 --commit-interval-ms 100 >>"$work/$name.out" 2>>"$work/$name.err" &
  last_pid=$!
  pids+=($last_pid)
}

"$gen" --brokers "$brokers" --rounds 320 --events-per-batch 40 --pace-ms 25 --seed 7 \
  --reference "$work/reference.jsonl" >"$work/gen.out" 2>"$work/gen.err" &
gen_pid=$!
pids+=($gen_pid)

start_processor killed g-killed s-killed
killed_pid=$last_pid
start_processor pair1 g-pair s-pair
start_processor pair2 g-pair s-pair
pair2_pid=$last_pid

# progress NAME…: messages the processors NAME… have committed, over all partitions they own.
progress() {
  local total=0 name port n
  for name in "$@"; do
    port=$(sed -n 's/^http_port=//p' "$work/$name.out" | tail -1)
    [ -n "$port" ] || continue
    n=$(curl -sf "http://127.0.0.1:$port/status" |
      python3 -c 'import json,sys; print(sum(max(0, p["next_offset"]) for p in json.load(sys.stdin).get("partitions", {}).values()))' \
      2>/dev/null || echo 0)
    total=$((total + n))
  done
  echo "$total"
}
past() { [ "$(progress "${@:2}")" -ge "$1" ]; }

# SIGKILL the lone processor 3 times while the stream flows, each time once it has committed
# more (20%, 45%, 70% of the 1280 messages) plus a random instant, restarting it at once; and the
# second of the pair once, past half-way.
for i in 1 2 3; do
  wait_for "the processor to pass $((i * 25 - 5))% of the stream" 60 past $((1280 * (i * 25 - 5) / 100)) killed
  sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
  at=$(progress killed)
  kill -9 "$killed_pid"
  wait "$killed_pid" 2>/dev/null || true
  echo "killed the processor ($i) after at least $at committed messages"
  start_processor killed g-killed s-killed
  killed_pid=$last_pid
  if [ "$i" = 2 ]; then
    wait_for "the pair to pass half of the stream" 60 past 640 pair1 pair2
    kill -9 "$pair2_pid"
    wait "$pair2_pid" 2>/dev/null || true
    echo "killed one of the pair"
    start_processor pair2 g-pair s-pair
    pair2_pid=$last_pid
  fi
done

wait "$gen_pid" || fail "the generator failed"
cat "$work/gen.out"
start_processor clean g-clean s-clean

# Each group is done when its processors together hold every partition at its end offset.
declare -A want
while read -r line; do
  p=$(sed -n 's/^partition=\([0-9]*\) .*/\1/p' <<<"$line")
  [ -n "$p" ] && want[$p]=$(sed -n 's/.*messages=\([0-9]*\)/\1/p' <<<"$line")
done <"$work/gen.out"
[ "${#want[@]}" = 4 ] || fail "the generator did not report 4 partitions"

done_group() {  # done_group NAME…: every partition reported at its end offset by one of NAME…
  local statuses=() name port
  for name in "$@"; do
    port=$(sed -n 's/^http_port=//p' "$work/$name.out" | tail -1)
    [ -n "$port" ] || return 1
    statuses+=("$(curl -sf "http://127.0.0.1:$port/status" || echo '{}')")
  done
  python3 - "${want[0]} ${want[1]} ${want[2]} ${want[3]}" "${statuses[@]}" <<'EOF'
import json, sys
want = [int(x) for x in sys.argv[1].split()]
seen = {}
for s in sys.argv[2:]:
    for p, st in json.loads(s).get("partitions", {}).items():
        seen[int(p)] = st["next_offset"]
sys.exit(0 if all(seen.get(p) == n for p, n in enumerate(want)) else 1)
EOF
}

for group in "killed" "pair1 pair2" "clean"; do
  # shellcheck disable=SC2086
  wait_for "group '$group' to reach the end of the topic" 90 done_group $group
  state=s-${group%% *}
  [ "$state" = s-pair1 ] && state=s-pair
  "$fl" stream query --state-dir "$work/$state" >"$work/$state.jsonl"
  python3 "$here/compare_windows.py" "$work/reference.jsonl" "$work/$state.jsonl" ||
    fail "group '$group': stored windows differ from the reference"
  echo "group '$group': identical to the reference"
done

# The lone processor really was interrupted: a restart resumed from an offset stored in RocksDB.
starts=$(cat "$work/killed.out" "$work/killed.err" | grep -c 'assigned, resuming' || true)
resumed=$(cat "$work/killed.out" "$work/killed.err" | grep -c 'resuming at [1-9]' || true)
echo "killed processor: $starts partition assignments, $resumed resumed from a stored offset"
[ "$resumed" -ge 1 ] || fail "no restart resumed from a stored offset"
echo PASS
