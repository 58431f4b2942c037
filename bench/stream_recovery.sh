#!/usr/bin/env bash
# Stream processor restart after a crash, with a large state.
#
# fill_state builds a state directory of TARGET bytes (default 1 GiB) for 4 input partitions with
# the processor's own PartitionState code (server-side exchanges of 2000 services, 16 endpoints
# each, one-second event-time rounds, retention long enough to keep every closed window), then is
# SIGKILLed: memtables are lost and the write-ahead logs must be replayed, as after a real crash.
# Then `fill_state --reopen` opens every partition exactly as `faultline stream` does on
# assignment (RocksDB recovery, then loading open windows, outbox, endpoints and listeners, every
# partition at once) and prints the time, next to a copy of the same crashed state opened one
# partition after another. (Joining the consumer group adds its own time, measured separately: see
# bench/RESULTS.md.)
# Prints filled bytes, per-partition open times, and as its last line restart_ms=… state_bytes=….
# Usage: bench/stream_recovery.sh [TARGET_BYTES]   (after scripts/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-1073741824}
work=$(mktemp -d /tmp/fl-recovery.XXXXXX)
fill_pid=""
cleanup() {
  [ -n "$fill_pid" ] && kill -9 "$fill_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
build/bench/fill_state "$work/state" 4 "$target" >"$work/fill.out" &
fill_pid=$!
for _ in $(seq 6000); do  # at most 10 minutes
  grep -q '^filled' "$work/fill.out" && break
  kill -0 "$fill_pid" 2>/dev/null || { echo "fill_state failed" >&2; exit 1; }
  sleep 0.1
done
grep -q '^filled' "$work/fill.out" || { echo "fill_state did not finish in 10 minutes" >&2; exit 1; }
kill -9 "$fill_pid"
wait "$fill_pid" 2>/dev/null || true
fill_pid=""
cat "$work/fill.out"
state_bytes=$(du -sb "$work/state" | cut -f1)
# Two copies of the crashed state: one reopened partition after partition, one all at once.
cp -a "$work/state" "$work/state-serial"
sync
serial=$(build/bench/fill_state --reopen "$work/state-serial" 4 --serial)
echo "$serial"
out=$(build/bench/fill_state --reopen "$work/state" 4)
echo "$out"
again=$(build/bench/fill_state --reopen "$work/state" 4 | tail -1)
echo "second open (after a clean close): $again"
echo "restart_serial_ms=$(sed -n 's/^reopen_ms=\([0-9.]*\).*/\1/p' <<<"$serial")"
echo "restart_ms=$(sed -n 's/^reopen_ms=\([0-9.]*\).*/\1/p' <<<"$out") state_bytes=$state_bytes"
