#!/usr/bin/env bash
# Detection latency of live diagnosis: fault start -> the incident's first message on
# faultline.incidents (its message timestamp, read with kcat), over FAULTS injected faults on a
# chain of three tiers on this host (Node.js frontend -> Python api -> Python db, 20 requests/s
# from a load generator), alternating a slow db (+300 ms) and a failing db (500s). Each fault lasts
# until its incident opened (at most 40 s), then the chain recovers until the incident resolved and
# 8 more windows passed. Also counts incidents that opened in the fault-free baseline (BASELINE_S
# seconds after the detectors started judging) and incidents per fault (expected exactly one).
# Pipeline settings: 5 s windows, allowed lateness 2 s, the default detectors.
# Usage: bench/diagnosis_latency.sh [BUILD_DIR] [FAULTS] [BASELINE_S]   (root; builds nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} faults=${2:-6} baseline=${3:-180}
fl=$build/faultline src=$PWD
source bench/lib.sh
python=$(readlink -f /usr/bin/python3)

"$fl" broker >"$work/broker.out" 2>&1 & pids+=($!)
wait_for "$work/broker.out" '^bootstrap='
bootstrap=$(sed -n 's/^bootstrap=//p' "$work/broker.out")
"$fl" agent --brokers "$bootstrap" --node-name bench-node >"$work/agent.out" 2>&1 & pids+=($!)
wait_for "$work/agent.out" 'agent started'
printf 'allowed_lateness_seconds: 2\n' >"$work/stream.yaml"
"$fl" stream --brokers "$bootstrap" --state-dir "$work/stream" --config "$work/stream.yaml" \
  >"$work/stream.out" 2>&1 & pids+=($!)
mkdir -p "$work/bin"
for name in db api loadgen; do ln -s "$python" "$work/bin/$name"; done
"$work/bin/db" tests/integration/tier_server.py --fault-file "$work/fault" >"$work/db.out" 2>&1 & pids+=($!)
wait_for "$work/db.out" '^port='
dbport=$(sed -n 's/^port=//p' "$work/db.out")
"$work/bin/api" tests/integration/tier_server.py --upstream "http://127.0.0.1:$dbport/row" >"$work/api.out" 2>&1 & pids+=($!)
wait_for "$work/api.out" '^port='
apiport=$(sed -n 's/^port=//p' "$work/api.out")
node tests/integration/tier.js --name frontend --upstream "http://127.0.0.1:$apiport/data" >"$work/fe.out" 2>&1 & pids+=($!)
wait_for "$work/fe.out" '^port='
feport=$(sed -n 's/^port=//p' "$work/fe.out")
"$work/bin/loadgen" tests/integration/loadgen.py "http://127.0.0.1:$feport/page" 20 3600 >"$work/load.out" 2>&1 & pids+=($!)
"$fl" diagnose --brokers "$bootstrap" --state-dir "$work/diag" --http-addr 127.0.0.1:0 \
  >"$work/diag.out" 2>"$work/diag.err" & pids+=($!)
wait_for "$work/diag.err" '^http_port='
http=$(sed -n 's/^http_port=//p' "$work/diag.err")
metric() { curl -sf "http://127.0.0.1:$http/metrics" | awk -v m="$1" '$1 == m {print $2; f=1} END {if (!f) print 0}'; }
wait_metric() {  # NAME MIN SECONDS: 0 when reached, 1 on time-out
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    awk -v v="$(metric "$1")" -v m="$2" 'BEGIN {exit !(v >= m)}' && return 0
    sleep 0.1
  done
  return 1
}
# The detectors judge from their 12th window; the baseline is measured from there.
wait_metric faultline_diagnosis_windows_judged_total 12 300
judged0=$(metric faultline_diagnosis_windows_judged_total)
sleep "$baseline"
false_opened=$(metric 'faultline_diagnosis_incidents_total{status="opened"}')
echo "baseline: $(($(metric faultline_diagnosis_windows_judged_total) - judged0)) windows judged, $false_opened incidents opened"

: >"$work/latencies"
for ((f = 1; f <= faults; f++)); do
  before=$(metric 'faultline_diagnosis_incidents_total{status="opened"}')
  resolved=$(metric 'faultline_diagnosis_incidents_total{status="resolved"}')
  kind=$([[ $((f % 2)) == 1 ]] && echo "slow 300" || echo "error")
  sleep "$((RANDOM % 5)).$((RANDOM % 10))"  # a random phase within the 5 s window
  t_fault=$(date +%s%3N)
  echo "$kind" >"$work/fault"
  if wait_metric 'faultline_diagnosis_incidents_total{status="opened"}' $((before + 1)) 40; then :; else
    echo "fault $f ($kind): no incident in 40 s"; rm -f "$work/fault"; continue
  fi
  rm -f "$work/fault"
  # The first message after the fault on the topic.
  for ((i = 0; i < 100; i++)); do
    kcat -C -b "$bootstrap" -t faultline.incidents -o beginning -e -q -f '%T %s\n' >"$work/topic.txt" 2>/dev/null || true
    t_topic=$(awk -v t="$t_fault" '$1 >= t && $0 ~ /"status":"open"/ {print $1; exit}' "$work/topic.txt")
    [[ -n $t_topic ]] && break
    sleep 0.1
  done
  [[ -n $t_topic ]] || { echo "fault $f: the incident is not on the topic"; continue; }
  wait_metric 'faultline_diagnosis_incidents_total{status="resolved"}' $((resolved + 1)) 90 ||
    echo "fault $f: not resolved in 90 s"
  after=$(metric 'faultline_diagnosis_incidents_total{status="opened"}')
  lat=$(awk -v a="$t_fault" -v b="$t_topic" 'BEGIN {printf "%.1f", (b - a) / 1000}')
  echo "fault $f ($kind): incident on the topic after $lat s; incidents opened for it: $((after - before))"
  echo "$lat $((after - before))" >>"$work/latencies"
  j=$(metric faultline_diagnosis_windows_judged_total)
  wait_metric faultline_diagnosis_windows_judged_total $((j + 8)) 120 || true
done
sort -n "$work/latencies" | awk '{l[NR] = $1; n += $2} END {
  if (NR == 0) { print "no incident opened"; exit }
  m = NR % 2 ? l[(NR + 1) / 2] : (l[NR / 2] + l[NR / 2 + 1]) / 2
  printf "detection latency over %d faults: median %.1f s, min %.1f s, max %.1f s; %d incidents for %d faults\n", NR, m, l[1], l[NR], n, NR }'
echo "false incidents in the ${baseline} s baseline: $false_opened"
