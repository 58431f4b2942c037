#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time from its scratch corpus and its seeds. libFuzzer's
# progress lines go to a log beside the scratch corpus, so that ctest's bounded output keeps what
# matters: on failure the end of the log (the sanitizer's report) and the failing input in hex.
# usage: run_fuzz.sh BINARY SECONDS SCRATCH_DIR [SEED_DIR]
set -u
bin=$1 seconds=$2 scratch=$3
shift 3
log="$scratch.log" artifacts="$scratch.artifacts/"
mkdir -p "$scratch" "$artifacts"
rm -f "$artifacts"*
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts" \
  "$scratch" "$@" >"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "$(basename "$bin") failed (exit $rc); the end of $log:"
  tail -n 80 "$log"
  for f in "$artifacts"*; do
    [ -f "$f" ] || continue
    echo "failing input $f ($(stat -c %s "$f") bytes):"
    od -A d -t x1 "$f" | head -n 32
  done
  exit "$rc"
fi
grep -E '^(Done|INFO: seed corpus)' "$log"
