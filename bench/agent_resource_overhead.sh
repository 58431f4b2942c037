#!/usr/bin/env bash
# What the resource-pressure signals cost: nginx under wrk on loopback (as bench/agent_overhead.sh)
# with the agent running, alternating runs with the resource programs off (--no-resources) and on
# (the default). Prints per run the throughput, the agent process's CPU (user + system) and its
# resource events; then
# one run each way with kernel.bpf_stats_enabled=1 for the BPF programs' own run time, per program
# for the resource ones (they run on every context switch, wake-up and block request); and as its
# last lines the ratios on/off.
# Usage: sudo bench/agent_resource_overhead.sh [PAIRS=3] [SECONDS=10] [CONNECTIONS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3} secs=${2:-10} conns=${3:-16}
fl=build/faultline
[[ -x $fl ]] || { echo "build first: scripts/build.sh" >&2; exit 1; }
command -v nginx >/dev/null && command -v wrk >/dev/null || { echo "run scripts/setup.sh first" >&2; exit 1; }

source bench/lib.sh
port=18681
start_nginx "$port"
start_broker "$fl"

hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
bpf_json() { bpftool -j prog show; }

# One run: "rps agent_cpu_us resource_events"; $1 = extra agent flags.
run() {
  "$fl" agent --brokers "$bootstrap" --metrics-addr 127.0.0.1:19465 $1 >"$work/agent.out" 2>&1 &
  local apid=$! t0 t1 rps ev
  pids+=($apid)
  wait_for "$work/agent.out" 'agent started'
  t0=$(cpu_ticks "$apid")
  wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/" >"$work/wrk.out"
  check_wrk "$work/wrk.out"
  t1=$(cpu_ticks "$apid")
  local m
  m=$(settled_metrics http://127.0.0.1:19465/metrics) || { kill "$apid"; exit 1; }
  ev=$(awk '/^faultline_agent_events_total\{kind="(cgroup|machine)_resources"\}/ {s+=$2} END {printf "%d", s}' <<<"$m")
  stop_agent "$apid"
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
  echo "$rps $(( (t1 - t0) * 1000000 / hz )) $ev"
}

off_rps=() on_rps=() off_cpu=() on_cpu=()
for ((r = 1; r <= pairs; r++)); do
  read -r rps cpu ev < <(run --no-resources); off_rps+=("$rps"); off_cpu+=("$cpu")
  echo "run $r resources off: rps=$rps agent_cpu_ms=$((cpu / 1000)) resource_events=$ev"
  read -r rps cpu ev < <(run ""); on_rps+=("$rps"); on_cpu+=("$cpu")
  echo "run $r resources on:  rps=$rps agent_cpu_ms=$((cpu / 1000)) resource_events=$ev"
done

# BPF run time per program, one run each way with stats on.
sysctl -qw kernel.bpf_stats_enabled=1
for mode in off on; do
  flags=$([[ $mode == off ]] && echo --no-resources || echo "")
  "$fl" agent --brokers "$bootstrap" $flags >"$work/agent.out" 2>&1 &
  apid=$!; pids+=($apid)
  wait_for "$work/agent.out" 'agent started'
  bpf_json >"$work/b0.json"
  wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/" >"$work/wrk.out"
  check_wrk "$work/wrk.out"
  bpf_json >"$work/b1.json"
  stop_agent "$apid"
  python3 - "$work/b0.json" "$work/b1.json" "$mode" "$secs" "$(awk '/requests in/ {print $1}' "$work/wrk.out")" <<'PY'
import json, sys
b0 = {p["id"]: p for p in json.load(open(sys.argv[1]))}
b1 = json.load(open(sys.argv[2]))
mode, secs, reqs = sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
total = 0
for p in sorted(b1, key=lambda p: p.get("name", "")):
    if not p.get("name", "").startswith("fl_"): continue
    before = b0.get(p["id"], {})
    ns = p.get("run_time_ns", 0) - before.get("run_time_ns", 0)
    cnt = p.get("run_cnt", 0) - before.get("run_cnt", 0)
    total += ns
    if p["name"].startswith(("fl_sched", "fl_block", "fl_mark")):
        print("bpf %s: %s calls=%d (%.0f/s) ns_per_call=%.0f cpu_ms_per_s=%.2f"
              % (mode, p["name"], cnt, cnt / secs, ns / cnt if cnt else 0, ns / 1e6 / secs))
print("bpf %s: all fl_ programs cpu_ms_per_s=%.1f us_per_request=%.3f" % (mode, total / 1e6 / secs, total / 1e3 / reqs))
PY
done
sysctl -qw kernel.bpf_stats_enabled=0

mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.3f", s/NR}'; }
echo "throughput_ratio_on_off=$(awk -v a="$(mean "${on_rps[@]}")" -v b="$(mean "${off_rps[@]}")" 'BEGIN {printf "%.3f", a/b}')"
echo "agent_cpu_ms_per_s_off=$(awk -v c="$(mean "${off_cpu[@]}")" -v s="$secs" 'BEGIN {printf "%.1f", c/1000/s}')"
echo "agent_cpu_ms_per_s_on=$(awk -v c="$(mean "${on_cpu[@]}")" -v s="$secs" 'BEGIN {printf "%.1f", c/1000/s}')"
