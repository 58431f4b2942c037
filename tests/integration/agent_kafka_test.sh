#!/usr/bin/env bash
# agent -> embedded broker -> kcat (an independent Kafka client) -> protoc --decode with
# schema/events.proto. Three requests to a test server must arrive as exactly three server-side
# and three client-side HTTP events. Usage: agent_kafka_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
source "$(dirname "$0")/lib.sh"
skip_without_ebpf "$build/faultline"

"$build/faultline" broker --partitions 2 >"$work/broker.out" 2>&1 & pids+=($!)
bootstrap=$(wait_for "$work/broker.out" '^bootstrap=' | cut -d= -f2)

python3 "$src/tests/integration/http_server.py" >"$work/server.out" 2>&1 & pids+=($!)
port=$(wait_for "$work/server.out" '^port=' | cut -d= -f2)

"$build/faultline" agent --brokers "$bootstrap" --duration 8 --node-name kafka-test-node >"$work/agent.out" 2>&1 &
agent_pid=$!; pids+=($agent_pid)
wait_for "$work/agent.out" 'agent started' >/dev/null

curl -sS -H 'User-Agent:' -H 'Accept:' -o /dev/null "http://127.0.0.1:$port/status/299" \
  -o /dev/null "http://127.0.0.1:$port/status/299" -o /dev/null "http://127.0.0.1:$port/status/299"
wait "$agent_pid"

# Every message on the topic, one file each, decoded by protoc.
kcat -C -b "$bootstrap" -t faultline.events -o beginning -e -q -f '%p %o\n' >"$work/index"
[[ -s $work/index ]] || { echo "FAIL: no messages on faultline.events"; exit 1; }
: >"$work/decoded"
while read -r partition offset; do
  kcat -C -b "$bootstrap" -t faultline.events -p "$partition" -o "$offset" -c 1 -e -q -f '%s' >"$work/msg"
  protoc --decode=faultline.v1.EventBatch -I "$src/schema" "$src/schema/events.proto" <"$work/msg" >>"$work/decoded"
done <"$work/index"

keys=$(kcat -C -b "$bootstrap" -t faultline.events -o beginning -e -q -f '%k\n' | sort -u)
[[ $keys == kafka-test-node ]] || { echo "FAIL: message keys '$keys', expected the node name"; exit 1; }
server=$(grep -c 'role: ROLE_SERVER' <(grep -B2 -A1 'path: "/status/299"' "$work/decoded" | grep role) || true)
client=$(grep -c 'role: ROLE_CLIENT' <(grep -B2 -A1 'path: "/status/299"' "$work/decoded" | grep role) || true)
statuses=$(grep -A1 'path: "/status/299"' "$work/decoded" | grep -c 'status: 299' || true)
echo "messages=$(wc -l <"$work/index") server_events=$server client_events=$client status_299=$statuses"
grep -q 'schema_version: 1' "$work/decoded" || { echo "FAIL: no schema_version"; exit 1; }
[[ $server == 3 && $client == 3 && $statuses == 6 ]] || { echo "FAIL: expected 3 server and 3 client events with status 299"; sed -n 1,80p "$work/decoded"; exit 1; }
# Resource pressure travels the same way: machine summaries every second, cgroup summaries.
machine=$(grep -c '^  machine_resources {' "$work/decoded" || true)
cgroups=$(grep -c '^  cgroup_resources {' "$work/decoded" || true)
echo "machine_resources=$machine cgroup_resources=$cgroups"
[[ $machine -ge 5 && $cgroups -ge 5 ]] || { echo "FAIL: expected resource summaries on the topic"; exit 1; }
grep -q '^    memory_total_bytes: [1-9]' "$work/decoded" ||  # a field only machine_resources has
  { echo "FAIL: machine_resources without memory_total_bytes"; exit 1; }
echo PASS
