#!/usr/bin/env bash
# The agent's image (scripts/image.sh: FROM scratch, no registry) in a real container with exactly
# the capabilities and mounts docs/deploy.md ("Capabilities and mounts") documents, and no more:
#   --cap-drop=all --cap-add=BPF --cap-add=PERFMON, the seccomp profile
#   deploy/seccomp/faultline-agent.json, no-new-privileges, a read-only root filesystem,
#   --pid=host, the host's /sys/kernel/tracing and /sys/fs/cgroup read-only, the runtime's API
#   socket read-only.
# 1. It sees the HTTP exchanges of two other containers on Podman's own network (busybox wget in
#    one fetching from busybox httpd in another, images imported from busybox-static): exactly
#    the requests made (method, path, status 200, 206 and 304, both sides), each named by its
#    process and container (read from /proc of other processes without CAP_SYS_PTRACE or
#    CAP_DAC_READ_SEARCH), the web container's cgroup resources, and the runtime socket answers.
#    No error page: busybox httpd sends those without Content-Length (the body ends at close) and
#    both busybox processes exit without close(), which the agent does not finish in bounded time
#    (an agent limitation of its own, not of the container).
# 2. With one of CAP_BPF, CAP_PERFMON, the seccomp profile or the tracefs mount left out, it exits
#    3 with the one sentence naming what is missing.
# Everything Podman makes (containers, images, storage, the API service) lives under the test's
# scratch directory and goes with it. Podman runs with runc (crun refuses this machine's hybrid
# cgroup layout) and explicit nofile/nproc limits (its defaults exceed this machine's hard limits:
# not a capability of the agent).
# Usage: agent_image_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
source "$(dirname "$0")/lib.sh"
skip_without_ebpf "$build/faultline"
for tool in podman runc busybox objcopy; do
  command -v $tool >/dev/null || { echo "FAIL: $tool missing (scripts/setup.sh installs it)"; exit 1; }
done

P=(podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs
   --cgroup-manager cgroupfs --runtime runc --events-backend file)
cleanup_hooks+=("\"\${P[@]}\" rm -f -t 0 --all >/dev/null 2>&1" "\"\${P[@]}\" rmi -a -f >/dev/null 2>&1")
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
tag=fl-image-test-$$

# The images, built into the test's own storage.
images=$(PODMAN="${P[*]}" FAULTLINE_IMAGE_VERSION=test "$src/scripts/image.sh" "$build")
agent_image=$(grep -m1 'faultline-agent:' <<<"$images")
"${P[@]}" image exists "$agent_image" || { echo "FAIL: image.sh built no $agent_image"; exit 1; }

# busybox's image: httpd and its page, wget.
token=fl$$x$RANDOM
mkdir -p "$work/rootfs/bin" "$work/rootfs/www"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for applet in sh httpd wget; do ln -s busybox "$work/rootfs/bin/$applet"; done
head -c 3000 /dev/zero | tr '\0' 'x' >"$work/rootfs/www/$token.html"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"${P[@]}" import "$work/rootfs.tar" localhost/fl-busybox:test >/dev/null 2>"$work/import.err" ||
  { echo "FAIL: podman import of busybox's root filesystem"; cat "$work/import.err"; exit 1; }

# The runtime's API socket, as a node's runtime serves it.
"${P[@]}" system service --time=0 "unix://$work/podman.sock" >"$work/podman.out" 2>&1 & pids+=($!)
for ((i = 0; i < 100; i++)); do [[ -S $work/podman.sock ]] && break; sleep 0.1; done
[[ -S $work/podman.sock ]] || { echo "FAIL: the Podman API socket did not appear"; cat "$work/podman.out"; exit 1; }

# agent_options [LEFT_OUT]: `opts` = the documented set (docs/deploy.md), without LEFT_OUT.
agent_options() {
  local out=${1:-}
  opts=(--cap-drop=all --security-opt no-new-privileges --read-only)
  [[ $out == CAP_BPF ]] || opts+=(--cap-add=BPF)
  [[ $out == CAP_PERFMON ]] || opts+=(--cap-add=PERFMON)
  [[ $out == seccomp ]] || opts+=(--security-opt "seccomp=$src/deploy/seccomp/faultline-agent.json")
  opts+=(--pid=host)
  [[ $out == tracefs ]] || opts+=(-v /sys/kernel/tracing:/sys/kernel/tracing:ro)
  opts+=(-v /sys/fs/cgroup:/sys/fs/cgroup:ro -v "$work/podman.sock:/run/podman/podman.sock:ro")
}

# 2. Each left out in turn: exit 3 and exactly one sentence from the agent (libbpf's own warnings
# aside), naming what is missing.
refused='faultline agent: the kernel refused to load the sock_io BPF programs: '
declare -A want=(
  [CAP_BPF]="${refused}this process lacks CAP_BPF (run it as root, or add CAP_BPF to the container's capabilities)"
  [CAP_PERFMON]="${refused}this process lacks CAP_PERFMON (run it as root, or add CAP_PERFMON to the container's capabilities)"
  [seccomp]="${refused}this process has CAP_BPF and CAP_PERFMON but a seccomp filter blocks bpf() or perf_event_open() (run the container with a seccomp profile that allows both, such as deploy/seccomp/faultline-agent.json)"
  [tracefs]="faultline agent: tracefs is not mounted at /sys/kernel/tracing and this process cannot mount it (Operation not permitted): mount it there, or in a container mount the host's /sys/kernel/tracing"
)
fails=0
for out in CAP_BPF CAP_PERFMON seccomp tracefs; do
  agent_options "$out"
  rc=0
  timeout 60 "${P[@]}" run --rm --name "$tag-without-$out" "${limits[@]}" "${opts[@]}" "$agent_image" \
    --output jsonl --duration 0 >/dev/null 2>"$work/without-$out.err" || rc=$?
  said=$(grep '^faultline agent:' "$work/without-$out.err" || true)
  if [[ $rc == 3 && $said == "${want[$out]}" ]]; then
    echo "without $out: exit 3: ${said#faultline agent: }"
  else
    echo "FAIL: without $out: exit $rc (want 3), said: $(cat "$work/without-$out.err")"; fails=$((fails + 1))
  fi
done

# 1. The documented set: the agent sees the traffic of two other containers.
"${P[@]}" run -d --name "$tag-web" "${limits[@]}" localhost/fl-busybox:test /bin/httpd -f -p 8080 -h /www >"$work/web.id"
web_ip=$("${P[@]}" inspect "$tag-web" --format '{{.NetworkSettings.IPAddress}}')
[[ -n $web_ip ]] || { echo "FAIL: the web container has no address on Podman's network"; exit 1; }
agent_options
"${P[@]}" run --name "$tag-agent" "${limits[@]}" "${opts[@]}" "$agent_image" \
  --output jsonl --node-name image-node --metrics-addr 0.0.0.0:9400 --duration 60 \
  >"$work/agent.out" 2>"$work/agent.err" & agent_pid=$! pids+=($!)
wait_for "$work/agent.err" 'agent started' >/dev/null
agent_ip=$("${P[@]}" inspect "$tag-agent" --format '{{.NetworkSettings.IPAddress}}')
# From a third container: the page five times, the rest of it after its first 100 bytes (206: wget
# -c asks for the range), and a conditional fetch of it (304: busybox httpd's ETag is
# "<mtime>-<size>" in hex; wget calls a 304 an error).
etag=$(printf '"%x-%x"' "$(stat -c %Y "$work/rootfs/www/$token.html")" "$(stat -c %s "$work/rootfs/www/$token.html")")
url=http://$web_ip:8080/$token.html
"${P[@]}" run -d --name "$tag-client" "${limits[@]}" localhost/fl-busybox:test /bin/sh -c \
  "for i in 1 2 3 4 5; do wget -q -O /dev/null $url || exit 1; done
   printf '%0100d' 0 >/part && wget -q -c -O /part $url || exit 1
   wget -q -O /dev/null --header 'If-None-Match: $etag' $url 2>/dev/null; exit 0" >"$work/client.id"
client_rc=$("${P[@]}" wait "$tag-client")
[[ $client_rc == 0 ]] || { echo "FAIL: the client container's fetches failed (exit $client_rc)"; exit 1; }

# Bounded wait until the agent printed the fourteen exchanges (each side of seven) and a resource
# summary of the web container; meanwhile its /metrics says the runtime socket answered.
verdict='' resolved=0
for ((i = 0; i < 100; i++)); do
  resolved=$(curl -fsS "http://$agent_ip:9400/metrics" 2>/dev/null |
             awk '/^faultline_agent_container_lookups_total\{result="resolved"\}/ {print int($2)}' || true)
  verdict=$(python3 - "$work/agent.out" "$token" "$(cat "$work/web.id")" "$(cat "$work/client.id")" <<'PY'
import collections, json, sys
path, token, web, client = sys.argv[1:]
rows = []
for line in open(path):
    try:
        rows.append(json.loads(line))
    except ValueError:
        pass  # a line still being written
seen = collections.Counter(
    (r["role"], r["method"], r["path"], r["status"], r.get("comm"), r.get("container_id"))
    for r in rows if r.get("type") == "http" and token in r.get("path", ""))
page = "/%s.html" % token
want = collections.Counter()
for role, comm, container in (("server", "httpd", web), ("client", "wget", client)):
    want.update({(role, "GET", page, 200, comm, container): 5, (role, "GET", page, 206, comm, container): 1,
                 (role, "GET", page, 304, comm, container): 1})
web_resources = sum(1 for r in rows if r.get("type") == "cgroup_resources" and r.get("container_id") == web)
ok = seen == want and web_resources > 0
print("ok" if ok else "waiting", "exchanges=%s web_cgroup_resources=%d" % (
    sorted("%s %s %s %d %s %s" % (k[0], k[1], k[2], k[3], k[4], (k[5] or "-")[:12]) + " x%d" % n
           for k, n in seen.items()), web_resources))
PY
)
  [[ $verdict == ok* && ${resolved:-0} -ge 1 ]] && break
  sleep 0.2
done
echo "$verdict runtime_lookups_resolved=${resolved:-0}"
[[ $verdict == ok* ]] || { echo "FAIL: the agent's output lacks the exact exchanges"; tail -5 "$work/agent.err"; fails=$((fails + 1)); }
[[ ${resolved:-0} -ge 1 ]] || { echo "FAIL: no container was resolved through the mounted runtime socket"; fails=$((fails + 1)); }
"${P[@]}" stop -t 10 "$tag-agent" >/dev/null
agent_rc=0
wait "$agent_pid" || agent_rc=$?
[[ $agent_rc == 0 ]] || { echo "FAIL: the agent exited $agent_rc on SIGTERM"; tail -5 "$work/agent.err"; fails=$((fails + 1)); }
[[ $fails == 0 ]] || exit 1
echo "PASS: agent_image_test"
