#!/usr/bin/env bash
# Agent overhead: nginx (Debian) under wrk on loopback, alternating runs without and with the
# agent (publishing to a separate embedded-broker process). Prints per-run figures, then as its
# last lines: throughput_ratio, p99_ratio, agent_cpu_us_per_request, events_lost.
#
# agent_cpu_us_per_request = agent process CPU (user + system) per request (over the "with"
# runs; agent_process_cpu_us_per_request alone) + run time of
# its BPF programs per request (which the kernel charges to nginx and wrk; measured in one more
# run with kernel.bpf_stats_enabled=1, kept off in the timed runs because it costs time itself).
# events_lost = everything the agent counted as dropped (kernel ring buffer, parser, connection
# table, Kafka) in the "with" runs.
#
# Usage: sudo bench/agent_overhead.sh [PAIRS=3] [SECONDS=10] [CONNECTIONS=16]
# FAULTLINE_BIN=path runs another build's binary (an earlier commit's, for a before/after);
# FAULTLINE_AGENT_ARGS adds agent flags (for example --syscall-hooks tracepoints).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3} secs=${2:-10} conns=${3:-16}
fl=${FAULTLINE_BIN:-build/faultline}
[[ -x $fl ]] || { echo "build first: scripts/build.sh" >&2; exit 1; }
command -v nginx >/dev/null && command -v wrk >/dev/null || { echo "run scripts/setup.sh first" >&2; exit 1; }

source bench/lib.sh
port=18680
start_nginx "$port"
start_broker "$fl"

# wrk: requests/s and p99 latency in microseconds.
run_wrk() {
  wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port/" >"$work/wrk.out"
  check_wrk "$work/wrk.out"
  local rps p99 reqs
  rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
  reqs=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v)} else if (v ~ /ms$/) {sub(/ms/,"",v); v*=1000} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000000}; print v}' "$work/wrk.out")
  echo "$rps $p99 $reqs"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Run time of faultline's BPF programs (needs kernel.bpf_stats_enabled=1).
bpf_run_ns() {
  bpftool -j prog show | /usr/bin/python3 -c 'import json,sys; print(sum(p.get("run_time_ns",0) for p in json.load(sys.stdin) if p.get("name","").startswith("fl_")))'
}
# Per-program run counts and times of faultline's programs, as JSON, for the profile below.
bpf_prog_stats() {
  bpftool -j prog show | /usr/bin/python3 -c 'import json,sys; print(json.dumps({p["name"]: [p.get("run_cnt",0), p.get("run_time_ns",0)] for p in json.load(sys.stdin) if p.get("name","").startswith("fl_")}))'
}

hz=$(getconf CLK_TCK)
off_rps=() on_rps=() off_p99=() on_p99=()
total_reqs=0 total_cpu_us=0 total_lost=0 total_http=0

# One run with the agent: prints "rps p99 requests agent_cpu_us bpf_run_us http_events dropped".
run_with_agent() {
  # shellcheck disable=SC2086  # FAULTLINE_AGENT_ARGS: extra agent flags, split on spaces
  ${FAULTLINE_AGENT_WRAP:-} "$fl" agent --brokers "$bootstrap" --metrics-addr 127.0.0.1:19464 ${FAULTLINE_AGENT_ARGS:-} >"$work/agent.out" 2>&1 &
  local apid=$! t0 t1 b0 b1 rps p99 reqs metrics lost http
  pids+=($apid)
  wait_for "$work/agent.out" 'agent started'
  t0=$(cpu_ticks "$apid"); b0=$(bpf_run_ns); bpf_prog_stats >"$work/progs0.json"
  read -r rps p99 reqs < <(run_wrk)
  t1=$(cpu_ticks "$apid"); b1=$(bpf_run_ns); bpf_prog_stats >"$work/progs1.json"
  # The tail of the run drained. (This runs in a subshell: its own failure stops its agent.)
  metrics=$(settled_metrics "http://127.0.0.1:19464/metrics") || { kill "$apid"; exit 1; }
  stop_agent "$apid"
  lost=$(awk '/^faultline_agent_dropped_total/ {s+=$2} END {printf "%d", s}' <<<"$metrics")
  http=$(awk '/^faultline_agent_events_total\{kind="http"\}/ {printf "%d", $2}' <<<"$metrics")
  echo "$rps $p99 $reqs $(( (t1 - t0) * 1000000 / hz )) $(( (b1 - b0) / 1000 )) $http $lost"
}

for ((r = 1; r <= pairs; r++)); do
  read -r rps p99 _ < <(run_wrk)
  off_rps+=("$rps"); off_p99+=("$p99")
  echo "run $r without: rps=$rps p99_us=$p99"
  read -r rps p99 reqs cpu_us _ http lost < <(run_with_agent)
  on_rps+=("$rps"); on_p99+=("$p99")
  total_reqs=$((total_reqs + reqs)); total_cpu_us=$((total_cpu_us + cpu_us))
  total_lost=$((total_lost + lost)); total_http=$((total_http + http))
  echo "run $r with:    rps=$rps p99_us=$p99 requests=$reqs agent_cpu_us=$cpu_us http_events=$http dropped=$lost"
done
sysctl -qw kernel.bpf_stats_enabled=1
read -r rps _ reqs _ bpf_us http lost < <(run_with_agent)
sysctl -qw kernel.bpf_stats_enabled=0
total_lost=$((total_lost + lost))
echo "bpf run: rps=$rps requests=$reqs bpf_run_us=$bpf_us http_events=$http dropped=$lost"
# Where the BPF time goes: calls per request and ns per call of each program, costliest first.
/usr/bin/python3 - "$work/progs0.json" "$work/progs1.json" "$reqs" <<'PY'
import json, sys
a, b, reqs = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
rows = []
for name, (cnt, ns) in b.items():
    c0, n0 = a.get(name, [0, 0])
    if cnt - c0 > 0:
        rows.append((name, (cnt - c0) / reqs, (ns - n0) / (cnt - c0), (ns - n0) / reqs / 1000))
for name, calls, per_call, us in sorted(rows, key=lambda r: -r[3]):
    print("bpf prog %-26s calls_per_request=%6.2f ns_per_call=%6.0f us_per_request=%6.3f" % (name, calls, per_call, us))
PY

mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.3f", s/NR}'; }
echo "agent_process_cpu_us_per_request=$(awk -v c="$total_cpu_us" -v r="$total_reqs" 'BEGIN {printf "%.3f", c/r}')"
echo "bpf_us_per_request=$(awk -v c="$bpf_us" -v r="$reqs" 'BEGIN {printf "%.3f", c/r}')"
echo "http_events_per_request=$(awk -v h="$total_http" -v r="$total_reqs" 'BEGIN {printf "%.3f", h/r}')  (2.0 = both sides of every request)"
echo "throughput_ratio=$(awk -v a="$(mean "${on_rps[@]}")" -v b="$(mean "${off_rps[@]}")" 'BEGIN {printf "%.3f", a/b}')"
echo "p99_ratio=$(awk -v a="$(mean "${on_p99[@]}")" -v b="$(mean "${off_p99[@]}")" 'BEGIN {printf "%.3f", a/b}')"
echo "agent_cpu_us_per_request=$(awk -v c="$total_cpu_us" -v r="$total_reqs" -v b="$bpf_us" -v br="$reqs" 'BEGIN {printf "%.3f", c/r + b/br}')"
echo "events_lost=$total_lost"
