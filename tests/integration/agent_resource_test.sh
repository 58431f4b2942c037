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
hog=$cpu_root/$tag-hog idle=$cpu_root/$tag-idle oom=$mem_root/$tag-oom io=$io_root/$tag-io
for d in "$hog" "$idle" "$oom" "$io"; do mkdir "$d" && cgdirs+=("$d"); done
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

"$build/faultline" agent --output jsonl --duration 12 --resource-interval-ms 500 --node-name res-node \
  >"$work/events.jsonl" 2>"$work/agent.err" &
agent=$!
pids+=($agent)
wait_for "$work/agent.err" 'agent started' >/dev/null

# Runs COMMAND… inside the cgroup directory DIR: the shell enters it, then execs, so the command
# keeps the pid. It replaces the calling (sub)shell: call it with & or inside ( ).
in_cgroup() { local dir=$1; shift; exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$dir" "$@"; }

in_cgroup "$hog" timeout 5 sh -c 'while :; do :; done' & pids+=($!)
in_cgroup "$idle" timeout 5 sh -c 'while :; do sleep 0.05; done' & pids+=($!)
in_cgroup "$oom" tail /dev/zero & oom_pid=$!
set +e; wait "$oom_pid"; oom_rc=$?; set -e
[[ $oom_rc == 137 ]] || { echo "FAIL: the memory hog ended with $oom_rc, not SIGKILL"; exit 1; }
(in_cgroup "$io" dd if=/dev/zero of="$target" bs=1M count=32 oflag=direct status=none)
wait "$agent"

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
assert sum(r["oom_kills"] for r in mem) in (0, 1)

ios = [b for r in cg("io") for b in r["block_io"] if b["device"] == device]
written = sum(b["write_bytes"] for b in ios)
ops = sum(b["write_ops"] for b in ios)
lat = sum(b["latency"]["count"] for b in ios)
print("io: device=%s write_bytes=%d write_ops=%d latency_samples=%d" % (device, written, ops, lat))
assert written >= 32 << 20, "the direct writes are not all counted for the device and cgroup"
assert ops > 0 and lat >= ops
machine = [e for e in events if e["type"] == "machine_resources"]
assert len(machine) >= 20, "machine_resources every 500 ms"
assert any(m["cpu_total_ms"] > 0 for m in machine)
assert sum(b["write_bytes"] for m in machine for b in m["block_io"] if b["device"] == device) >= written
PY
echo PASS
