#!/usr/bin/env bash
# Sets up, builds, and runs faultline's agent on this host, printing every HTTP exchange, connect
# outcome, reset and per-flow health summary it sees as JSON lines. Ctrl-C stops it.
# Extra arguments go to `faultline agent` (e.g. --duration 30, or --output kafka to publish to the
# embedded broker instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec build/faultline agent --output jsonl "$@"
