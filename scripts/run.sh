#!/usr/bin/env bash
# Sets up, builds, and runs faultline's whole pipeline on this host with its embedded defaults:
# the embedded Kafka-protocol broker on 127.0.0.1, the eBPF agent publishing every HTTP exchange,
# connect, reset, flow summary and resource summary to it, the stream processor turning them into
# 5 s windows per service, call edge and machine, and the live diagnosis judging those windows
# with the default detectors. Every incident (open, update, resolved) is printed as a report as
# it happens; the broker and all state live for this run only. Ctrl-C stops everything.
#   --watch     the pipeline on this host (the default, for now)
#   --windows   also print every closed window as a JSON line
#   --webhook URL  also deliver incidents to URL (Standard Webhooks; secret in
#                  FAULTLINE_WEBHOOK_SECRET, default "faultline-demo")
set -euo pipefail
cd "$(dirname "$0")/.."
windows=() webhook=
while (($#)); do
  case $1 in
    --watch) ;;
    --windows) windows=(--print-windows) ;;
    --webhook) webhook=${2:?--webhook needs a URL}; shift ;;
    *) echo "run.sh: unknown option $1 (known: --watch, --windows, --webhook URL)" >&2; exit 2 ;;
  esac
  shift
done
bash scripts/setup.sh >&2  # stdout carries incidents only
bash scripts/build.sh >&2
work=$(mktemp -d /tmp/faultline-run.XXXXXX)
pids=()
cleanup() {
  # The diagnosis, the stream and the agent first, while the broker still answers them.
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
build/faultline agent --brokers "$brokers" &
pids+=($!)
# Windows close 2 s after their end (the default waits 5 s for late events): faster incidents.
printf 'allowed_lateness_seconds: 2\n' >"$work/stream.yaml"
build/faultline stream --brokers "$brokers" --state-dir "$work/stream" --config "$work/stream.yaml" \
  "${windows[@]}" &
pids+=($!)
config=()
if [ -n "$webhook" ]; then
  printf 'webhooks:\n  - name: run\n    url: "%s"\n    secret: "%s"\n' "$webhook" \
    "${FAULTLINE_WEBHOOK_SECRET:-faultline-demo}" >"$work/diagnosis.yaml"
  config=(--config "$work/diagnosis.yaml")
fi
build/faultline diagnose --brokers "$brokers" --state-dir "$work/diagnosis" "${config[@]}" \
  --http-addr 127.0.0.1:0 --watch &
pids+=($!)
cat >&2 <<EOF
faultline: broker $brokers; agent, stream and diagnosis running on this host.
  Incidents print here when a service's latency or errors go abnormal for its callers; the
  detectors learn for one minute of traffic first. Incidents also go to the topic
  faultline.incidents: kcat -C -b $brokers -t faultline.incidents
EOF
wait -n "${pids[@]}"
