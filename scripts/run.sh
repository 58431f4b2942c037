#!/usr/bin/env bash
# Sets up, builds, and runs faultline's pipeline on this host with its embedded defaults: the
# embedded Kafka-protocol broker on 127.0.0.1, the eBPF agent publishing every HTTP exchange,
# connect, reset and flow summary to it, and the stream processor turning them into per-service,
# per-call-edge windows (golden metrics and network health, 5 s event-time windows; the broker
# and the state live for this run only). Each closed window is printed as a JSON line. Ctrl-C
# stops all three.
# Extra arguments go to `faultline stream`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
work=$(mktemp -d /tmp/faultline-run.XXXXXX)
pids=()
cleanup() {
  # The stream and the agent first, while the broker still answers them.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
build/faultline broker >"$work/broker.out" &
pids+=($!)
for _ in $(seq 100); do grep -q '^bootstrap=' "$work/broker.out" && break; sleep 0.1; done
brokers=$(sed -n 's/^bootstrap=//p' "$work/broker.out")
[ -n "$brokers" ] || { echo "run.sh: the embedded broker did not start" >&2; exit 1; }
echo "faultline: broker $brokers; agent and stream starting (windows close 5-10 s after traffic)" >&2
build/faultline agent --brokers "$brokers" &
pids+=($!)
build/faultline stream --brokers "$brokers" --state-dir "$work/state" --print-windows "$@" &
pids+=($!)
wait -n "${pids[@]}"
