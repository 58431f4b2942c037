# Sourced by the agent benchmarks: a scratch directory and background processes cleaned up on
# exit, a bounded wait, and the load they share: nginx (Debian's, 1 worker, a 612-byte static page,
# keep-alive) on 127.0.0.1:PORT and an embedded broker (`faultline broker`).
work=$(mktemp -d)
chmod 755 "$work"  # nginx's workers (www-data) read the page from here
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  sysctl -qw kernel.bpf_stats_enabled=0 || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_for() { local i; for ((i = 0; i < 300; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "timeout: $2 in $1:" >&2; tail -5 "$1" >&2; return 1; }

# start_nginx PORT
start_nginx() {
  mkdir -p "$work/www" "$work/logs"
  head -c 612 /dev/zero | tr '\0' 'x' >"$work/www/index.html"
  cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$1; root $work/www; }
}
CONF
  nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$1/") == "200 612" ]] && return 0
    sleep 0.1
  done
  echo "nginx did not start" >&2; return 1
}

# start_broker FAULTLINE: sets `bootstrap`.
start_broker() {
  "$1" broker >"$work/broker.out" 2>&1 & pids+=($!)
  wait_for "$work/broker.out" '^bootstrap='
  bootstrap=$(grep -m1 '^bootstrap=' "$work/broker.out" | cut -d= -f2)
}

# check_wrk FILE: fails when wrk saw anything but 2xx/3xx answers (a benchmark of error pages),
# or any socket error (connect, read, write, timeout): a figure is only a figure of good answers.
check_wrk() {
  if grep -qE 'Non-2xx or 3xx responses|Socket errors' "$1"; then
    echo "wrk saw errors:" >&2; cat "$1" >&2; exit 1
  fi
}

# settled_metrics URL: /metrics once the agent's HTTP event count has stopped moving (two scrapes
# a flow interval apart differ by at most the one exchange the scrape itself is, at most 15 s):
# what it counts after the load, drained.
settled_metrics() {
  local before="" now i
  for ((i = 0; i < 15; i++)); do
    now=$(curl -sf "$1") || { echo "cannot read $1" >&2; return 1; }
    local n; n=$(awk '/^faultline_agent_events_total\{kind="http"\}/ {print $2}' <<<"$now")
    [[ -n $before ]] && awk -v a="$before" -v b="$n" 'BEGIN {exit !(b - a <= 1)}' && { echo "$now"; return 0; }
    before=$n
    sleep 1.1
  done
  echo "the agent's counts did not settle in 15 s" >&2; return 1
}

# stop_agent PID: SIGINT, then its exit status must be 0 (a crash is not a benchmark).
stop_agent() {
  kill -INT "$1"
  local rc=0
  wait "$1" || rc=$?
  [[ $rc == 0 ]] || { echo "the agent exited $rc" >&2; exit 1; }
}
