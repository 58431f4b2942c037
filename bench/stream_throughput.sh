#!/usr/bin/env bash
# Stream processor throughput against raw consumption of the same topic, side by side in one run.
#
# A fresh embedded broker (48 partitions: the mock cluster keeps only about 5 MB per partition, and
# the 2.4 M events are about 165 MB) is filled by event_generator with a realistic mix (60%
# server-side HTTP, 25% client-side HTTP, 10% flow statistics, 5% connects; 10 000 services on 400
# machines). Then, in turn, on the same topic:
#   raw:    kafka_drain reads every partition to its end and discards the bytes;
#   stream: `faultline stream` (fresh group and state dir) decodes, joins, windows and commits to
#           RocksDB until its /status shows every partition at its end offset.
# Both are measured in events per CPU-second of their own whole process (all its threads, so
# librdkafka's fetch and decompression count for both; start-up included for both), i.e. per
# core. Each run's count is checked against what the generator wrote.
# Prints raw_consume_events_per_s=…, stream_events_per_s_per_core=…, stream_vs_raw=…, and the
# stream's peak RSS and state size.
# FAULTLINE_BIN=path runs another build's stream processor (an earlier commit's, for a
# before/after); FAULTLINE_STREAM_WRAP runs it under a profiler (its figures are then not valid);
# FAULTLINE_STREAM_ARGS adds flags (for example --changelog-topic faultline.changelog).
# Usage: bench/stream_throughput.sh [ROUNDS [SERVICES]]   (after scripts/build.sh; defaults 60 rounds,
# 10 000 services: 2.4 M events)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-60}
services=${2:-10000}
machines=$(( (services + 24) / 25 ))
build=build
work=$(mktemp -d /tmp/fl-stream-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

partitions=48
"$build/faultline" broker --partitions "$partitions" >"$work/broker.out" 2>"$work/broker.err" &
pids+=($!)
for _ in $(seq 100); do grep -q '^bootstrap=' "$work/broker.out" && break; sleep 0.1; done
brokers=$(sed -n 's/^bootstrap=//p' "$work/broker.out")

# 25 services per machine, 100 events per batch, one batch per machine per round.
"$build/tests/event_generator" --brokers "$brokers" --partitions "$partitions" --machines "$machines" --services "$services" \
  --rounds "$rounds" --events-per-batch 100 --late 0.01 --seed 3 >"$work/gen.out"
events=$(sed -n 's/^events=\([0-9]*\).*/\1/p' "$work/gen.out")
messages=$(awk -F'messages=' '/^partition=/ {s += $2} END {print s}' "$work/gen.out")
echo "topic: events=$events messages=$messages partitions=$partitions services=$services machines=$machines"

raw=$("$build/bench/kafka_drain" "$brokers" faultline.events 300)
echo "raw: $raw"
drained=$(sed -n 's/^messages=\([0-9]*\) .*/\1/p' <<<"$raw")
[[ $drained == "$messages" ]] || { echo "the drain read $drained messages, the generator wrote $messages" >&2; exit 1; }
raw_cpu=$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' <<<"$raw")
raw_wall=$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' <<<"$raw")

${FAULTLINE_STREAM_WRAP:-} "${FAULTLINE_BIN:-$build/faultline}" stream --brokers "$brokers" --group bench --state-dir "$work/state" --metrics-topic "" \
  --http-addr 127.0.0.1:0 --commit-interval-ms 1000 ${FAULTLINE_STREAM_ARGS:-} \
  >"$work/stream.out" 2>"$work/stream.err" &
stream_pid=$!
pids+=($stream_pid)
for _ in $(seq 100); do grep -q '^http_port=' "$work/stream.out" && break; sleep 0.1; done
port=$(sed -n 's/^http_port=//p' "$work/stream.out")
status=""
for _ in $(seq 1200); do  # at most 120 s
  status=$(curl -sf "http://127.0.0.1:$port/status" || true)
  done_count=$(python3 -c 'import json,sys; s=json.loads(sys.argv[1] or "{}"); print(sum(1 for p in s.get("partitions",{}).values() if p["lag"] == 0 and p["next_offset"] > 0))' "$status")
  [ "$done_count" = "$partitions" ] && break
  sleep 0.1
done
[ "$done_count" = "$partitions" ] || { echo "the stream did not finish in 120 s" >&2; exit 1; }
read -r cpu busy rss stream_events late <<<"$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(s["cpu_seconds"], s["busy_seconds"], s["max_rss_bytes"], s["events"], s["late"])' "$status")"
state_bytes=$(du -sb "$work/state" | cut -f1)
echo "stream: events=$stream_events late=$late cpu_s=$cpu busy_wall_s=$busy max_rss_bytes=$rss state_dir_bytes=$state_bytes"
[[ $stream_events == "$events" ]] || { echo "the stream consumed $stream_events events, the generator wrote $events" >&2; exit 1; }
python3 - "$events" "$raw_cpu" "$raw_wall" "$cpu" "$busy" "$rss" <<'EOF'
import sys
events, raw_cpu, raw_wall, cpu, busy, rss = (float(x) for x in sys.argv[1:])
raw = events / raw_cpu
stream = events / cpu
print(f"raw_consume_wall_events_per_s={events / raw_wall:.0f}")
print(f"stream_wall_events_per_s={events / busy:.0f}")
print(f"stream_peak_rss_mb={rss / 2**20:.0f}")
print(f"raw_consume_events_per_s={raw:.0f}")
print(f"stream_events_per_s_per_core={stream:.0f}")
print(f"stream_vs_raw={stream / raw:.3f}")
EOF
