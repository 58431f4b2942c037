#!/usr/bin/env bash
# Real containers, named as Kubernetes names them. Debian's Podman (with runc: crun refuses this
# machine's hybrid cgroup layout) runs two containers from an image built here (no registry:
# `podman import` of a root filesystem made from busybox-static), labelled as the kubelet labels
# the containers it starts:
#   web:     busybox httpd in pod shop/web-5d8f7b9c6-k2x7z, container "web";
#   cruncher: a busy loop under a 20% CPU quota in pod shop/cruncher-x2x9q, container "crunch".
# The pipeline (broker, agent asking Podman's API socket, stream) must name the web container's
# HTTP traffic shop/web (the workload), put its service series in container
# shop/web-5d8f7b9c6-k2x7z/web, and window the cruncher as a throttled container while the machine
# is not saturated. Everything Podman made (containers, storage, the API service) lives under the
# test's scratch directory and goes with it.
# Usage: container_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
source "$(dirname "$0")/lib.sh"
skip_without_ebpf "$build/faultline"
for tool in podman runc busybox; do
  command -v $tool >/dev/null || { echo "FAIL: $tool missing (scripts/setup.sh installs it)"; exit 1; }
done

P=(podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs
   --cgroup-manager cgroupfs --runtime runc --events-backend file)
cleanup_hooks+=("\"\${P[@]}\" rm -f -t 0 --all >/dev/null 2>&1")

# The image: busybox and its applets, a page to serve.
mkdir -p "$work/rootfs/bin" "$work/rootfs/www"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for applet in sh httpd; do ln -s busybox "$work/rootfs/bin/$applet"; done
head -c 2000 /dev/zero | tr '\0' 'x' >"$work/rootfs/www/index.html"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"${P[@]}" import "$work/rootfs.tar" localhost/fl-test:1 >/dev/null

"${P[@]}" system service --time=0 "unix://$work/podman.sock" >"$work/podman.out" 2>&1 & pids+=($!)
for ((i = 0; i < 100; i++)); do [[ -S $work/podman.sock ]] && break; sleep 0.1; done
[[ -S $work/podman.sock ]] || { echo "FAIL: the Podman API socket did not appear"; cat "$work/podman.out"; exit 1; }

metrics_port=$((30000 + $$ % 10000)) port=$((20000 + $$ % 10000))
"$build/faultline" broker >"$work/broker.out" 2>&1 & pids+=($!)
bootstrap=$(wait_for "$work/broker.out" '^bootstrap=' | cut -d= -f2)
# The cluster's API server, recorded: this node's pods (the web pod's UID and owner) and a Service
# whose ClusterIP is 127.0.0.2 (an address on this host's loopback, so that calls reach httpd).
cat >"$work/pods.json" <<'JSON'
{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"501"},"items":[
 {"metadata":{"name":"web-5d8f7b9c6-k2x7z","namespace":"shop","uid":"6f1c2d3e-0a1b-4c5d-8e9f-1a2b3c4d5e6f","resourceVersion":"480",
   "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d8f7b9c6","uid":"1b2c3d4e-5f60-4718-9293-a4b5c6d7e8f9","controller":true}]},
  "spec":{"nodeName":"ctr-node","containers":[{"name":"web","image":"localhost/fl-test:1"}]},
  "status":{"phase":"Running","podIP":"127.0.0.1","podIPs":[{"ip":"127.0.0.1"}]}}]}
JSON
cat >"$work/services.json" <<'JSON'
{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"502"},"items":[
 {"metadata":{"name":"web","namespace":"shop","uid":"2c3d4e5f-6071-4829-a3b4-c5d6e7f8a9b0","resourceVersion":"490"},
  "spec":{"type":"ClusterIP","clusterIP":"127.0.0.2","clusterIPs":["127.0.0.2"],"ports":[{"port":80}]}}]}
JSON
python3 "$src/tests/integration/kube_replay.py" "$work/pods.json" "$work/services.json" >"$work/kube.out" 2>&1 & pids+=($!)
kube_port=$(wait_for "$work/kube.out" '^port=' | cut -d= -f2)

"$build/faultline" agent --brokers "$bootstrap" --node-name ctr-node --runtime-socket "podman=$work/podman.sock" \
  --kube-api "http://127.0.0.1:$kube_port" --kube-watch-services \
  --metrics-addr "127.0.0.1:$metrics_port" >"$work/agent.out" 2>&1 & pids+=($!)
wait_for "$work/agent.out" 'agent started' >/dev/null
"$build/faultline" stream --brokers "$bootstrap" --state-dir "$work/state" --commit-interval-ms 200 \
  >"$work/stream.out" 2>&1 & pids+=($!)

# As the kubelet labels a container (and names it k8s_<container>_<pod>_<namespace>_<uid>_<n>).
run_labelled() {
  local ns=$1 pod=$2 container=$3 uid=$4; shift 4
  "${P[@]}" run -d --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    --name "k8s_${container}_${pod}_${ns}_${uid}_0" \
    --label "io.kubernetes.pod.namespace=$ns" --label "io.kubernetes.pod.name=$pod" \
    --label "io.kubernetes.container.name=$container" --label "io.kubernetes.pod.uid=$uid" "$@"
}
run_labelled shop web-5d8f7b9c6-k2x7z web 6f1c2d3e-0a1b-4c5d-8e9f-1a2b3c4d5e6f \
  localhost/fl-test:1 /bin/httpd -f -p "$port" -h /www >/dev/null
run_labelled shop cruncher-x2x9q crunch 7a2b3c4d-1e2f-4a5b-9c8d-2b3c4d5e6f70 \
  --cpu-period 100000 --cpu-quota 20000 localhost/fl-test:1 /bin/sh -c 'while :; do :; done' >/dev/null

# The agent holds the recorded pod and Service before the traffic starts (bounded wait).
for ((i = 0; i < 100; i++)); do
  curl -fsS "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null | grep -q '^faultline_agent_kube_objects{resource="services"} 1' && break
  sleep 0.1
done
for ((i = 0; i < 50; i++)); do curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.1; done
# Traffic over about 12 s, so that closed windows hold it next to the cruncher's.
# Half of it through the Service's ClusterIP, as a pod calling the Service would.
for ((i = 0; i < 60; i++)); do
  ip=127.0.0.$((1 + i % 2))
  curl -fsS -o /dev/null "http://$ip:$port/" || { echo "FAIL: request $i to the web container at $ip"; exit 1; }
  sleep 0.2
done

# Poll the stored windows (bounded) until both containers and the service are in.
verdict=''
for ((i = 0; i < 100; i++)); do
  if [[ -d $work/state ]] && "$build/faultline" stream query --state-dir "$work/state" >"$work/windows.jsonl" 2>/dev/null; then
    verdict=$(python3 - "$work/windows.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
web = [r for r in rows if r["kind"] == "service" and r["entity"] == "shop/web"]
requests = sum(r["requests"] for r in web)
in_container = {r["dims"].get("container") for r in web}
crunch = [r for r in rows if r["kind"] == "container" and r["entity"] == "shop/cruncher-x2x9q/crunch"
          and r["metrics"].get("cpu_throttled_ratio") is not None]
machines = {r["start"]: r for r in rows if r["kind"] == "machine" and r["entity"] == "ctr-node"}
# Windows where the cruncher was throttled most of the time while the machine had room.
throttled = [r for r in crunch if r["metrics"]["cpu_throttled_ratio"] > 0.5
             and r["start"] in machines
             and (machines[r["start"]]["metrics"].get("cpu_busy_ratio") or 1) < 0.9]
usage = [r["metrics"]["cpu_usage_cores"] for r in throttled]
# Calls to the ClusterIP: an edge to the Service, resolved to the service of that name.
via_service = sum(r["requests"] for r in rows if r["kind"] == "edge" and r["dims"].get("side") == "client"
                  and r["dims"].get("callee") == "shop/web" and r.get("callee_service") == "shop/web")
ok = requests >= 60 and in_container == {"shop/web-5d8f7b9c6-k2x7z/web"} and len(throttled) >= 2 and via_service >= 30
print("ok" if ok else "waiting", "requests=%d via_service=%d containers=%s throttled_windows=%d usage=%s unknown=%d" % (
    requests, via_service, sorted(c or "" for c in in_container), len(throttled), usage,
    sum(1 for r in rows if r["entity"] == "unknown" or r["dims"].get("service") == "unknown")))
PY
)
    [[ $verdict == ok* ]] && break
  fi
  sleep 0.3
done
echo "$verdict"
[[ $verdict == ok* ]] || { echo "FAIL: containers not windowed as expected"; tail -5 "$work/agent.out"; exit 1; }

# The runtime answered, and the agent counted its lookups.
curl -fsS "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics.txt"
resolved=$(awk '/^faultline_agent_container_lookups_total\{result="resolved"\}/ {print $2}' "$work/metrics.txt")
[[ ${resolved%.*} -ge 2 ]] || { echo "FAIL: $resolved containers resolved through the runtime"; grep container_lookups "$work/metrics.txt"; exit 1; }
pods=$(awk '/^faultline_agent_kube_objects\{resource="pods"\}/ {print $2}' "$work/metrics.txt")
services=$(awk '/^faultline_agent_kube_objects\{resource="services"\}/ {print $2}' "$work/metrics.txt")
[[ $pods == 1 && $services == 1 ]] || { echo "FAIL: the watches hold $pods pods and $services services, expected 1 and 1"; exit 1; }
echo "PASS: container_test"
