#!/usr/bin/env bash
# kafka test: the stream processor against an independent reference, through a real Kafka-protocol
# broker (faultline broker, librdkafka's mock cluster on 127.0.0.1).
#
# event_generator produces a known stream (out-of-order and late events included) over ~8 s and
# computes the expected windows itself. Four consumer groups process the same topic:
#   clean:  one processor, started after the stream is complete, never disturbed;
#   killed: one processor with a changelog topic, SIGKILLed at random instants 3 times while the
#           stream flows, restarted on the same state directory;
#   pair:   two processors in one group sharing a state directory; one is SIGKILLed mid-stream
#           and restarted, so its partitions move to the other and (some) back;
#   moved:  two processors with separate state directories and a changelog topic; one is
#           SIGKILLed mid-stream and not restarted: the other rebuilds its partitions from the
#           changelog and finishes them. Which partitions it rebuilt, from which snapshot and
#           deltas, and the offsets it resumed from must be what the changelog topic holds
#           (check_failover.py decodes it independently).
# Each group's stored windows must equal the reference exactly (counts). The clean processor also
# publishes its closed windows to faultline.metrics, read back with kcat (an independent client)
# and decoded by protobuf's Python runtime: every closed window exactly once per (partition,
# window, series), with the stored counts. Its /metrics counters must match the generator's
# figures exactly (messages, events, late events). Then the query filters, situations with
# --at/--lookback, the topology store, and --config (a window length the state does not hold is
# refused).
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

# faultline.changelog (created by default) serves the moved group; the killed group has its own.
"$fl" broker --partitions 4 --topic changelog-killed >"$work/broker.out" 2>"$work/broker.err" &
pids+=($!)
wait_for "the broker" 20 grep -q '^bootstrap=' "$work/broker.out"
brokers=$(sed -n 's/^bootstrap=//p' "$work/broker.out")

# start_processor NAME GROUP STATE [METRICS_TOPIC [ARGS…]]: runs `faultline stream` in the
# background; sets $last_pid.
start_processor() {
  local name=$1 group=$2 state=$3 topic=${4:-}
  shift 3; [ $# -gt 0 ] && shift
  "$fl" stream --brokers "$brokers" --group "$group" --state-dir "$work/$state" --metrics-topic "$topic" \
    --http-addr 127.0.0.1:0 --commit-interval-ms 100 "$@" >>"$work/$name.out" 2>>"$work/$name.err" &
  last_pid=$!
  pids+=($last_pid)
}

# progress NAME…: messages the processors NAME… have committed, over all partitions they own.
progress() {
  local total=0 name port n
  for name in "$@"; do
    port=$(sed -n 's/^http_port=//p' "$work/$name.out" 2>/dev/null | tail -1)
    [ -n "$port" ] || continue
    n=$(curl -sf "http://127.0.0.1:$port/status" |
      python3 -c 'import json,sys; print(sum(max(0, p["next_offset"]) for p in json.load(sys.stdin).get("partitions", {}).values()))' \
      2>/dev/null || echo 0)
    total=$((total + n))
  done
  echo "$total"
}
past() { [ "$(progress "${@:2}")" -ge "$1" ]; }

# settled NAME…: the processors NAME… together own all 4 partitions, each at least one (no
# rebalance under way).
settled() {
  local name port counts=()
  for name in "$@"; do
    port=$(sed -n 's/^http_port=//p' "$work/$name.out" 2>/dev/null | tail -1)
    [ -n "$port" ] || return 1
    counts+=("$(curl -sf "http://127.0.0.1:$port/status" | grep -o '"end_offset"' | wc -l)")
  done
  [ "$(IFS=+; echo $((${counts[*]})))" = 4 ] || return 1
  for n in "${counts[@]}"; do [ "$n" -gt 0 ] || return 1; done
}

# The moved pair first, until the group has settled: its rebalances take several seconds on the
# embedded broker, and the first of the pair must die while the stream still flows. A snapshot
# every 16 commits, so that a restore starts from a later one than the first.
printf 'changelog_snapshot_commits: 16\n' >"$work/moved.yaml"
start_processor moved1 g-moved s-moved1 "" --changelog-topic faultline.changelog --config "$work/moved.yaml"
moved1_pid=$last_pid
start_processor moved2 g-moved s-moved2 "" --changelog-topic faultline.changelog --config "$work/moved.yaml"
wait_for "the moved pair to share the partitions" 60 settled moved1 moved2

"$gen" --brokers "$brokers" --rounds 320 --events-per-batch 40 --pace-ms 25 --seed 7 \
  --reference "$work/reference.jsonl" >"$work/gen.out" 2>"$work/gen.err" &
gen_pid=$!
pids+=($gen_pid)

start_processor killed g-killed s-killed "" --changelog-topic changelog-killed
killed_pid=$last_pid
start_processor pair1 g-pair s-pair
start_processor pair2 g-pair s-pair
pair2_pid=$last_pid

# The first of the moved pair goes for good once it has committed part of its partitions, the
# group still settled (so that what it held when it died is what its log and /status last say);
# in the background, so that the loop below keeps its own pace. Its /status (the offsets it had
# committed) and the time are kept from just before the kill, for check_failover.py.
(
  wait_for "the first of the moved pair to commit" 60 past 100 moved1
  wait_for "the moved pair to share the partitions again" 60 settled moved1 moved2
  port=$(sed -n 's/^http_port=//p' "$work/moved1.out" | tail -1)
  curl -sf "http://127.0.0.1:$port/status" >"$work/moved1-status.json"
  date +%Y-%m-%dT%H:%M:%S.%3N >"$work/moved1-kill-at"
  kill -9 "$moved1_pid"
  echo "killed the first of the moved pair; not restarted"
) &
mover=$!

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
  start_processor killed g-killed s-killed "" --changelog-topic changelog-killed
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

wait "$mover" || fail "the first of the moved pair was not killed"
wait "$gen_pid" || fail "the generator failed"
cat "$work/gen.out"
printf 'window_seconds: 5\nallowed_lateness_seconds: 5\n' >"$work/defaults.yaml"
start_processor clean g-clean s-clean faultline.metrics --config "$work/defaults.yaml"
clean_pid=$last_pid

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

for group in "killed" "pair1 pair2" "moved2" "clean"; do
  # shellcheck disable=SC2086
  wait_for "group '$group' to reach the end of the topic" 90 done_group $group
  state=s-${group%% *}
  [ "$state" = s-pair1 ] && state=s-pair
  "$fl" stream query --state-dir "$work/$state" >"$work/$state.jsonl"
  python3 "$here/compare_windows.py" "$work/reference.jsonl" "$work/$state.jsonl" ||
    fail "group '$group': stored windows differ from the reference"
  echo "group '$group': identical to the reference"
done

# --- The clean processor's own counters, against the generator's figures.
clean_port=$(sed -n 's/^http_port=//p' "$work/clean.out" | tail -1)
events=$(sed -n 's/^events=\([0-9]*\) late=.*/\1/p' "$work/gen.out")
late=$(sed -n 's/.* late=\([0-9]*\)/\1/p' "$work/gen.out")
messages=$((want[0] + want[1] + want[2] + want[3]))
"$fl" stream query --state-dir "$work/s-clean" --by-partition --closed-only >"$work/closed.jsonl"
closed=$(wc -l <"$work/closed.jsonl")
metric() { curl -sf "http://127.0.0.1:$clean_port/metrics" | awk -v k="$1" '$1 == k {print $2}'; }
published_all() { [ "$(metric faultline_stream_windows_published_total)" = "$closed" ]; }
wait_for "the clean processor to publish its $closed closed windows" 30 published_all
for check in "faultline_stream_messages_total $messages" "faultline_stream_events_total $events" \
             'faultline_stream_dropped_total{reason="late"} '"$late" \
             'faultline_stream_dropped_total{reason="future"} 0' \
             'faultline_stream_dropped_total{reason="undecodable"} 0' \
             "faultline_stream_windows_closed_total $closed" \
             "faultline_stream_publish_failures_total 0" "faultline_stream_partitions 4" \
             "faultline_stream_lag_messages 0"; do
  set -- $check
  got=$(metric "$1")
  [ "$got" = "$2" ] || fail "clean processor: $1 is '$got', expected $2"
done
for probe in "healthz ok" "readyz ready"; do
  set -- $probe
  got=$(curl -s "http://127.0.0.1:$clean_port/$1")
  [ "$got" = "$2" ] || fail "clean processor: /$1 answers '$got', expected '$2'"
done
echo "clean processor: /metrics counts $messages messages, $events events, $late late, $closed closed windows published; /healthz ok, /readyz ready"

# --- faultline.metrics, read by kcat and decoded by protobuf's Python runtime.
protoc --python_out="$work" -I "$here/../../schema" "$here/../../schema/metrics.proto"
kcat -C -b "$brokers" -t faultline.metrics -o beginning -e -q -f '%p %S\n%s' |
  /usr/bin/python3 "$here/read_window_records.py" "$work" >"$work/records.jsonl" 2>"$work/records.err"
/usr/bin/python3 "$here/compare_records.py" "$work/records.jsonl" "$work/closed.jsonl" ||
  fail "the metrics topic differs from the stored windows"

# --- Query filters, against the same windows filtered here.
"$fl" stream query --state-dir "$work/s-clean" >"$work/all.jsonl"
since=$(/usr/bin/python3 -c 'import json,sys; s=sorted({json.loads(l)["start"] for l in open(sys.argv[1])}); print(s[len(s)//2])' "$work/all.jsonl")
"$fl" stream query --state-dir "$work/s-clean" --kind edge >"$work/q-kind.jsonl"
"$fl" stream query --state-dir "$work/s-clean" --entity svc-3 >"$work/q-entity.jsonl"
"$fl" stream query --state-dir "$work/s-clean" --since "$since" >"$work/q-since.jsonl"
"$fl" stream query --state-dir "$work/s-clean" --closed-only >"$work/q-closed.jsonl"
"$fl" stream query --state-dir "$work/s-clean" --by-partition >"$work/q-parts.jsonl"
/usr/bin/python3 "$here/check_query_filters.py" "$work" "$since" || fail "a query filter returned other windows"
if "$fl" stream query --state-dir "$work/s-clean" --kind pod 2>"$work/q-bad.err"; then fail "--kind pod accepted"; fi
grep -q 'kind "pod": expected service, edge, listener, machine or container' "$work/q-bad.err" ||
  fail "--kind pod: $(cat "$work/q-bad.err")"

# --- A situation at a chosen time with a chosen lookback.
at=$((since + 20))
"$fl" stream situation --state-dir "$work/s-clean" --alarm service:svc-1:latency_p99_ms --at "$at" \
  --lookback 30 >"$work/situation.json"
/usr/bin/python3 -c '
import json, sys
s, at = json.load(open(sys.argv[1])), int(sys.argv[2])
assert s["alarm"] == {"kind": "service", "entity": "svc-1", "metric": "latency_p99_ms", "at_s": at}, s["alarm"]
assert s["start_s"] == (at - 30) - (at - 30) % 5, s["start_s"]
lens = {len(m["values"]) for m in s["series"]}
assert len(lens) == 1, lens
assert any(b["service"] == "svc-1" for b in s["breakdowns"]), "no breakdown of svc-1"
print("situation: from %d, %d windows, %d series" % (s["start_s"], lens.pop(), len(s["series"])))
' "$work/situation.json" "$at" || fail "the situation does not follow --at/--lookback"

# --- The topology store: written where --store says, read back by the next call; --no-store
# writes nothing.
"$fl" topology --state-dir "$work/s-clean" --store "$work/topo-store" --format json >"$work/topo1.json"
[ -f "$work/topo-store/CURRENT" ] || fail "--store did not write a RocksDB store"
"$fl" topology --state-dir "$work/s-clean" --store "$work/topo-store" --format json >"$work/topo2.json"
cmp -s "$work/topo1.json" "$work/topo2.json" || fail "the graph changed when read back from the store"
grep -q '"kind":"calls","from_kind":"service","from":"svc-1","to_kind":"service","to":"svc-2"' "$work/topo1.json" ||
  fail "the topology lacks svc-1 -> svc-2"
"$fl" topology --state-dir "$work/s-clean" --no-store >/dev/null
[ ! -e "$work/s-clean/topology" ] || fail "--no-store wrote a store"

# --- --config: a window length the state does not hold is refused, naming both (once the clean
# processor has let go of its state).
kill -TERM "$clean_pid"
wait "$clean_pid" || fail "the clean processor did not stop cleanly"
printf 'window_seconds: 10\n' >"$work/w10.yaml"
start_processor w10 g-w10 s-clean "" --config "$work/w10.yaml"
w10_refused() { grep -q 'holds 5 s windows, the configuration asks for 10 s' "$work/w10.err"; }
wait_for "the processor to refuse 10 s windows on a 5 s state" 30 w10_refused
kill -9 "$last_pid" 2>/dev/null || true
printf 'window_seconds: ten\n' >"$work/bad.yaml"
if "$fl" stream --brokers "$brokers" --state-dir "$work/s-bad" --config "$work/bad.yaml" 2>"$work/bad-config.err"; then
  fail "a bad --config was accepted"
fi
grep -q "$work/bad.yaml:1: window_seconds" "$work/bad-config.err" || fail "bad --config: $(cat "$work/bad-config.err")"

# The survivor of the moved pair rebuilt exactly the partitions the dead one held, each from the
# dead one's latest snapshot and the deltas after it as the changelog topic holds them (read here
# with kcat and decoded independently), and resumed each at the offset that state holds, which is
# at least what the dead one had committed (so not a re-read from offset 0).
kcat -C -b "$brokers" -t faultline.changelog -o beginning -e -q -f '%p %o %S\n%s' >"$work/changelog.dump"
/usr/bin/python3 "$here/check_failover.py" "$work/changelog.dump" "$work/moved1.err" "$work/moved2.err" \
  "$(cat "$work/moved1-kill-at")" "$work/moved1-status.json" ||
  fail "the survivor's restores differ from what the changelog holds"
moved_port=$(sed -n 's/^http_port=//p' "$work/moved2.out" | tail -1)
restores=$(curl -sf "http://127.0.0.1:$moved_port/metrics" |
  awk '$1 == "faultline_stream_changelog_restores_total" {print $2}')
restore_lines=$(grep -c 'restored partition' "$work/moved2.err" || true)
[ "$restores" = "$restore_lines" ] ||
  fail "the survivor's /metrics counts $restores restores, its log $restore_lines"
for name in killed moved2; do
  port=$(sed -n 's/^http_port=//p' "$work/$name.out" | tail -1)
  for check in "faultline_stream_changelog_errors_total 0" "faultline_stream_changelog_fenced_total 0"; do
    set -- $check
    got=$(curl -sf "http://127.0.0.1:$port/metrics" | awk -v k="$1" '$1 == k {print $2}')
    [ "$got" = "$2" ] || fail "$name: $1 is '$got', expected $2"
  done
done

# The lone processor really was interrupted: a restart resumed from an offset stored in RocksDB.
starts=$(cat "$work/killed.out" "$work/killed.err" | grep -c 'assigned, resuming' || true)
resumed=$(cat "$work/killed.out" "$work/killed.err" | grep -c 'resuming at [1-9]' || true)
echo "killed processor: $starts partition assignments, $resumed resumed from a stored offset"
[ "$resumed" -ge 1 ] || fail "no restart resumed from a stored offset"
echo PASS
