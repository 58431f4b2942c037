#!/usr/bin/env bash
# Sets up, builds, and runs faultline with its embedded defaults.
#
# With no option, the demo (`faultline lab demo`, lab/README.md): a small shop of eight services
# (nginx, Node.js, Python) on three emulated machines (network namespaces and cgroups on this
# host) under a steady load; the whole pipeline (the embedded Kafka-protocol broker, an eBPF agent
# per machine, the stream processor, the live diagnosis); after 75 s of learning, one fault (by
# default catalog's handler made 300 ms slower); the incident report as the diagnosis opens it, and
# its resolution after the fault is reverted. Then everything is torn down. About two minutes.
#   --fault KIND:TARGET, --param NAME=VALUE   another fault (lab/README.md lists them)
#
#   --watch     instead: the pipeline on this host's own processes, until Ctrl-C. Every incident
#               (open, update, resolved) is printed as a report as it happens.
#   --windows   with --watch: also print every closed window as a JSON line
#   --webhook URL  also deliver incidents to URL (Standard Webhooks; secret in
#                  FAULTLINE_WEBHOOK_SECRET, default "faultline-demo"), in the demo or with --watch
set -euo pipefail
cd "$(dirname "$0")/.."
windows=() webhook= watch= demo=()
while (($#)); do
  case $1 in
    --watch) watch=1 ;;
    --windows) windows=(--print-windows) ;;
    --webhook) webhook=${2:?--webhook needs a URL}; shift ;;
    --fault | --param) demo+=("$1" "${2:?$1 needs a value}"); shift ;;
    *) echo "run.sh: unknown option $1 (known: --watch, --windows, --webhook URL, --fault KIND:TARGET, --param NAME=VALUE)" >&2; exit 2 ;;
  esac
  shift
done
# Only what the demo needs: its packages and the faultline binary (not the tests).
bash scripts/setup.sh --demo >&2  # stdout carries incidents only
bash scripts/build.sh faultline >&2
if [ -z "$watch" ]; then
  [ -n "$webhook" ] && demo+=(--webhook "$webhook")
  exec build/faultline lab demo "${demo[@]}"
fi
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
