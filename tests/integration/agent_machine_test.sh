#!/usr/bin/env bash
# One emulated machine, as the fault-injection lab makes three on one host: a network namespace
# made here (198.18.9.2 on a veth whose host end has no address) and a cgroup subtree with a limit of
# half a CPU and 256 MiB. `faultline agent --netns … --machine-cgroup …` must report the
# namespace's HTTP server and nothing of a second server on the host's loopback, only cgroups of
# the subtree, and the machine's figures from the subtree: a busy loop in it fills its half CPU
# (busy near total), and its memory is the subtree's limit. The namespace and cgroups are always
# deleted. Usage: agent_machine_test.sh BUILD_DIR
set -euo pipefail
build=$1
source "$(dirname "$0")/lib.sh"
skip_without_ebpf "$build/faultline"
tag="fl-mt-$$" ns="fl-mt-$$"
cgdirs=()
cleanup_hooks+=('ip netns del "$ns" 2>/dev/null' 'ip link del "$tag-h" 2>/dev/null'
  'for ((k = ${#cgdirs[@]} - 1; k >= 0; k--)); do rmdir "${cgdirs[k]}"; done')

v2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
v1_mount() { awk -v c="$1" '$3 == "cgroup" && ("," $4 ",") ~ ("," c ",") {print $2; exit}' /proc/mounts; }
roots=()
for c in cpu cpuacct memory; do
  r=$(v1_mount $c)
  [[ -n $r ]] || { [[ -n $v2 ]] || { echo "FAIL: no hierarchy for $c"; exit 1; }; r=$v2; }
  [[ " ${roots[*]} " == *" $r "* ]] || roots+=("$r")
done
[[ " ${roots[*]} " == *" $v2 "* && -n $v2 ]] && echo "+cpu +memory" >"$v2/cgroup.subtree_control"
for r in "${roots[@]}"; do
  for d in "$r/$tag" "$r/$tag/m" "$r/$tag/m/svc" "$r/$tag/m/hog"; do mkdir "$d" && cgdirs+=("$d"); done
  [[ -n $v2 && $r == "$v2" ]] && echo "+cpu +memory" >"$r/$tag/cgroup.subtree_control" &&
    echo "+cpu +memory" >"$r/$tag/m/cgroup.subtree_control"
  if [[ -f $r/$tag/m/cpu.max ]]; then echo "50000 100000" >"$r/$tag/m/cpu.max"; fi
  if [[ -f $r/$tag/m/cpu.cfs_quota_us ]]; then
    echo 100000 >"$r/$tag/m/cpu.cfs_period_us" && echo 50000 >"$r/$tag/m/cpu.cfs_quota_us"
  fi
  if [[ -f $r/$tag/m/memory.max ]]; then echo 256M >"$r/$tag/m/memory.max"; fi
  if [[ -f $r/$tag/m/memory.limit_in_bytes ]]; then echo 256M >"$r/$tag/m/memory.limit_in_bytes"; fi
done
# Runs COMMAND… in the subtree's cgroup SUB (in every hierarchy) and the namespace. It replaces
# the calling subshell: call it as ( in_machine SUB COMMAND… ) &.
in_machine() {
  local sub=$1 r; shift
  for r in "${roots[@]}"; do echo "$BASHPID" >"$r/$tag/$sub/cgroup.procs"; done
  exec ip netns exec "$ns" "$@"
}

ip netns add "$ns"
ip link add "$tag-h" type veth peer name eth0 netns "$ns"
ip link set "$tag-h" up  # no address on the host's end: the traffic stays in the namespace
ip -n "$ns" addr add 198.18.9.2/30 dev eth0 && ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up

mkdir "$work/bin"
ln -s /usr/bin/python3 "$work/bin/mtsvc"
ln -s /usr/bin/python3 "$work/bin/hostsvc"
"$build/faultline" agent --output jsonl --duration 40 --resource-interval-ms 500 --node-name m \
  --netns "/run/netns/$ns" --machine-cgroup "/$tag/m" >"$work/events.jsonl" 2>"$work/agent.err" &
agent=$!
pids+=($agent)
wait_for "$work/agent.err" 'agent started' >/dev/null
grep -q "emulated machine: cgroups under /$tag/m" "$work/agent.err" ||
  { echo "FAIL: the agent did not take the machine cgroup"; cat "$work/agent.err"; exit 1; }

(in_machine m/svc timeout 30 "$work/bin/mtsvc" -m http.server --bind 198.18.9.2 8080 >/dev/null 2>&1) &
pids+=($!)
timeout 30 "$work/bin/hostsvc" -m http.server --bind 127.0.0.1 0 >"$work/host.out" 2>&1 &
pids+=($!)
host_port=$(wait_for "$work/host.out" 'Serving HTTP' | sed -n 's/.*port \([0-9]*\).*/\1/p')
for _ in $(seq 100); do ip netns exec "$ns" curl -sf -o /dev/null http://198.18.9.2:8080/ && break; sleep 0.1; done
# The busy loop fills the machine's half CPU for 4 s; requests on both servers meanwhile.
(in_machine m/hog timeout 4 sh -c 'while :; do :; done') &
hog=$!
for i in $(seq 10); do
  ip netns exec "$ns" curl -sf -o /dev/null "http://198.18.9.2:8080/?n=$i"
  curl -sf -o /dev/null "http://127.0.0.1:$host_port/?n=$i"
done
wait "$hog" || true  # timeout's 124: it ran its 4 s
sleep 1.5  # three more resource intervals after the loop ended (not a synchronisation: data)
kill -TERM "$agent"
wait "$agent" || { echo "FAIL: the agent exited $?"; exit 1; }

python3 - "$work/events.jsonl" "$tag" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
tag = sys.argv[2]
http = [e for e in events if e["type"] == "http"]
comms = {e["comm"] for e in http}
assert "mtsvc" in comms, comms
assert "hostsvc" not in comms, "the host's server was reported: %s" % sorted(comms)
servers = [e for e in http if e["comm"] == "mtsvc" and e["role"] == "server"]
assert len(servers) >= 10, len(servers)
assert all(e["netns"] == http[0]["netns"] for e in http), {e["netns"] for e in http}
cgroups = {e["cgroup"] for e in events if e["type"] == "cgroup_resources"}
assert cgroups and all(c.startswith("/%s/m" % tag) for c in cgroups), sorted(cgroups)
machine = [e for e in events if e["type"] == "machine_resources" and e["cpu_total_ms"] > 0]
assert machine, "no machine interval"
assert all(m["cpus"] == 1 for m in machine), {m["cpus"] for m in machine}
assert all(m["memory_total_bytes"] == 256 << 20 for m in machine), {m["memory_total_bytes"] for m in machine}
ratios = [m["cpu_busy_ms"] / m["cpu_total_ms"] for m in machine]
assert max(ratios) > 0.8, ratios  # the loop held the machine's half CPU
assert min(ratios) < 0.2, ratios  # and the machine was idle before it
print("http: %d exchanges of mtsvc, none of hostsvc; cgroups %s; machine busy ratio %.2f..%.2f"
      % (len(servers), sorted(cgroups), min(ratios), max(ratios)))
PY
