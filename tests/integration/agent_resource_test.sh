#!/usr/bin/env bash
# Resource pressure, end to end: `faultline agent --output jsonl` while this script makes
#  - a CPU hog in a cgroup with a 20% CPU quota, and an idle sibling cgroup waking 20 times a
#    second: the hog must show throttling and a run-queue latency rise, the sibling neither;
#  - a memory hog (tail /dev/zero) in a cgroup limited to 64 MiB: it must be OOM-killed and the
#    event must name its pid and memory cgroup;
#  - 32 MiB of direct-I/O writes to a loop device (a file on the root disk when no loop device can
#    be made) from a third cgroup: bytes and latency for that device and cgroup.
# Works under cgroup v1 controllers (this machine: hybrid) and under a pure v2 hierarchy.
# Usage: agent_resource_test.sh BUILD_DIR
set -euo pipefail
build=$1
source "$(dirname "$0")/lib.sh"
skip_without_ebpf "$build/faultline"
tag="fl-test-$$"
cgdirs=() loopdev=''
cleanup_hooks+=('[[ -n $loopdev ]] && losetup -d "$loopdev"' 'for d in "${cgdirs[@]}"; do rmdir "$d"; done')

# Where each controller lives: a v1 hierarchy of its own, else the v2 one.
v2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
v1_mount() { awk -v c="$1" '$3 == "cgroup" && ("," $4 ",") ~ ("," c ",") {print $2; exit}' /proc/mounts; }
cpu_root=$(v1_mount cpu) mem_root=$(v1_mount memory) io_root=$(v1_mount blkio)
if [[ -z $cpu_root || -z $mem_root || -z $io_root ]]; then
  [[ -n $v2 ]] || { echo "FAIL: no cgroup hierarchy for cpu, memory and io"; exit 1; }
  echo "+cpu +memory +io" >"$v2/cgroup.subtree_control"
  cpu_root=${cpu_root:-$v2} mem_root=${mem_root:-$v2} io_root=${io_root:-$v2}
fi
# The test's cgroups (made here, not in a subshell, so that cleanup knows them all).
# The memory cgroup has a twin of the same path in the cpu hierarchy (as the kubelet makes them
# under v1): cgroups are reported by their cpu-hierarchy path, and their memory figures read at the
# same path in the memory hierarchy.
hog=$cpu_root/$tag-hog idle=$cpu_root/$tag-idle oom=$mem_root/$tag-oom io=$io_root/$tag-io
oom_cpu=$cpu_root/$tag-oom
for d in "$hog" "$idle" "$oom" "$io"; do mkdir "$d" && cgdirs+=("$d"); done
[[ $oom_cpu == "$oom" ]] || { mkdir "$oom_cpu" && cgdirs+=("$oom_cpu"); }
if [[ -f $hog/cpu.max ]]; then
  echo "20000 100000" >"$hog/cpu.max"
else
  echo 100000 >"$hog/cpu.cfs_period_us" && echo 20000 >"$hog/cpu.cfs_quota_us"
fi
if [[ -f $oom/memory.max ]]; then
  echo 64M >"$oom/memory.max"
  [[ -f $oom/memory.swap.max ]] && echo 0 >"$oom/memory.swap.max"
else
  echo 64M >"$oom/memory.limit_in_bytes"
  [[ -f $oom/memory.memsw.limit_in_bytes ]] && echo 64M >"$oom/memory.memsw.limit_in_bytes"
fi
echo "cgroups: cpu $hog, $idle; memory $oom; io $io"

# The device: a loop device over a file, else the root disk through a file.
truncate -s 64M "$work/disk.img"
if loopdev=$(losetup -f --show "$work/disk.img" 2>/dev/null); then
  target=$loopdev device=$(basename "$loopdev")
else
  loopdev='' target=$work/direct.bin
  device=$(basename "$(readlink -f "/sys/dev/block/$(mountpoint -d /)")" 2>/dev/null || echo '')
fi

# The agent runs until every workload has been seen (at most 60 s), then is stopped.
"$build/faultline" agent --output jsonl --duration 60 --resource-interval-ms 500 --node-name res-node \
  >"$work/events.jsonl" 2>"$work/agent.err" &
agent=$!
pids+=($agent)
wait_for "$work/agent.err" 'agent started' >/dev/null

# seen DESCRIPTION PYTHON_CONDITION: waits (at most 30 s) until the events so far satisfy the
# condition, a Python expression over `events` (the JSON lines parsed) and `cg(name)` (the
# cgroup_resources rows of this test's cgroup NAME).
seen() {
  local what=$1 cond=$2 deadline=$((SECONDS + 30))
  until python3 - "$work/events.jsonl" "$tag" "$cond" <<'PY'
import json, sys
events = []
for line in open(sys.argv[1]):
    try:
        events.append(json.loads(line))
    except ValueError:
        pass  # a line still being written
tag = sys.argv[2]
cg = lambda name: [e for e in events if e["type"] == "cgroup_resources" and e["cgroup"] == "/%s-%s" % (tag, name)]
sys.exit(0 if eval(sys.argv[3]) else 1)
PY
  do
    ((SECONDS < deadline)) || { echo "FAIL: timed out waiting for $what"; tail -3 "$work/agent.err"; exit 1; }
    sleep 0.2
  done
}

# Runs COMMAND… inside the cgroup directory DIR: the shell enters it, then execs, so the command
# keeps the pid. It replaces the calling (sub)shell: call it with & or inside ( ).
in_cgroup() { local dir=$1; shift; exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$dir" "$@"; }
# The same, in the memory cgroup and its cpu twin.
in_oom_cgroup() {
  exec sh -c 'echo $$ > "$0/cgroup.procs" && echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
    "$oom_cpu" "$oom" "$@"
}

in_cgroup "$hog" timeout 5 sh -c 'while :; do :; done' & hog_pid=$! && pids+=($hog_pid)
in_cgroup "$idle" timeout 5 sh -c 'while :; do sleep 0.05; done' & idle_pid=$! && pids+=($idle_pid)
# A sleeper keeps the memory cgroup active (reported every interval, so its OOM counter is read
# before and after the kill); once the cgroup has been reported, the hog starts.
in_oom_cgroup timeout 40 sh -c 'while :; do sleep 0.05; done' & pids+=($!)
seen "the memory cgroup's first interval" 'len(cg("oom")) >= 1'
in_oom_cgroup tail /dev/zero & oom_pid=$!
deadline=$((SECONDS + 20))
while kill -0 "$oom_pid" 2>/dev/null; do
  if ((SECONDS >= deadline)); then kill -KILL "$oom_pid"; echo "FAIL: the memory hog was not OOM-killed within 20 s"; exit 1; fi
  sleep 0.1
done
set +e; wait "$oom_pid"; oom_rc=$?; set -e
[[ $oom_rc == 137 ]] || { echo "FAIL: the memory hog ended with $oom_rc, not SIGKILL"; exit 1; }
(in_cgroup "$io" timeout 30 dd if=/dev/zero of="$target" bs=1M count=32 oflag=direct status=none)
wait "$hog_pid" "$idle_pid" || true  # timeout's 124: they ran their 5 s
seen "every workload in the events" \
  'any(e["type"] == "oom_kill" for e in events) and sum(r["oom_kills"] for r in cg("oom")) >= 1 and sum(b["write_bytes"] for r in cg("io") for b in r["block_io"]) >= 32 << 20 and len(cg("hog")) >= 8'
kill -TERM "$agent"
deadline=$((SECONDS + 15))
while kill -0 "$agent" 2>/dev/null; do
  ((SECONDS < deadline)) || { echo "FAIL: the agent did not stop within 15 s of SIGTERM"; exit 1; }
  sleep 0.1
done
wait "$agent" || { echo "FAIL: the agent exited $?"; exit 1; }

python3 - "$work/events.jsonl" "$tag" "$oom_pid" "$device" <<'PY'
import json, sys
path, tag, oom_pid, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
events = [json.loads(l) for l in open(path)]
def cg(name):
    return [e for e in events if e["type"] == "cgroup_resources" and e["cgroup"] == "/%s-%s" % (tag, name)]
def merged(rows):
    buckets = []
    for r in rows:
        b = r["runq_latency"]["log2_ns_buckets"]
        buckets += [0] * (len(b) - len(buckets))
        for i, n in enumerate(b): buckets[i] += n
    return buckets
def p99_ms(buckets):
    total, seen = sum(buckets), 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= 0.99 * total: return (2 << i) / 1e6
    return 0.0
hog, idle = cg("hog"), cg("idle")
assert hog, "no cgroup_resources for the CPU hog"
assert idle, "no cgroup_resources for the idle sibling"
throttled = sum(r["cpu_throttled_periods"] for r in hog)
throttled_ms = sum(r["cpu_throttled_ms"] for r in hog)
hog_p99, idle_p99 = p99_ms(merged(hog)), p99_ms(merged(idle))
idle_throttled = sum(r["cpu_throttled_periods"] for r in idle)
print("hog: intervals=%d throttled_periods=%d throttled_ms=%.0f runq_samples=%d runq_p99<=%.1fms"
      % (len(hog), throttled, throttled_ms, sum(merged(hog)), hog_p99))
print("idle: intervals=%d throttled_periods=%d runq_samples=%d runq_p99<=%.1fms"
      % (len(idle), idle_throttled, sum(merged(idle)), idle_p99))
assert throttled >= 10 and throttled_ms >= 500, "the hog was not throttled"
assert idle_throttled == 0, "the idle sibling was throttled"
# Throttled, the hog waits out most of each 100 ms period (p99 in the 67-134 ms bucket); the
# sibling's wake-ups wait only for a busy CPU (a few ms at worst on a loaded 2-CPU machine).
assert hog_p99 >= 33, "the hog's run-queue latency did not rise"
assert idle_p99 <= 16.8 and idle_p99 * 8 <= hog_p99, "the idle sibling's run-queue latency rose"

kills = [e for e in events if e["type"] == "oom_kill"]
print("oom_kill:", kills)
assert len(kills) == 1, "expected one oom_kill event"
k = kills[0]
assert k["pid"] == oom_pid and k["victim_comm"] == "tail", "the victim is not the memory hog"
assert k["memory_cgroup"] == "/%s-oom" % tag, "the OOM event names the wrong cgroup"
assert k["anon_rss_kb"] > 32 * 1024, "the victim's RSS is implausible"
mem = cg("oom")
assert sum(r["oom_kills"] for r in mem) == 1, "the memory cgroup's OOM counter: %s" % [r["oom_kills"] for r in mem]

ios = [b for r in cg("io") for b in r["block_io"] if b["device"] == device]
written = sum(b["write_bytes"] for b in ios)
ops = sum(b["write_ops"] for b in ios)
lat = sum(b["latency"]["count"] for b in ios)
print("io: device=%s write_bytes=%d write_ops=%d latency_samples=%d" % (device, written, ops, lat))
assert written >= 32 << 20, "the direct writes are not all counted for the device and cgroup"
assert ops > 0 and lat >= ops
machine = [e for e in events if e["type"] == "machine_resources"]
span_s = (machine[-1]["time_unix_ns"] - machine[0]["time_unix_ns"]) / 1e9 if machine else 0
print("machine: %d summaries over %.1f s" % (len(machine), span_s))
assert len(machine) >= 6 and len(machine) >= round(span_s / 0.5), "machine_resources every 500 ms"
assert any(m["cpu_total_ms"] > 0 for m in machine)
assert sum(b["write_bytes"] for m in machine for b in m["block_io"] if b["device"] == device) >= written
PY
echo PASS
