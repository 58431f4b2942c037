#!/usr/bin/env bash
# examples/detector-plugin built out of tree against detectors/include only, loaded by
# `faultline detectors test`: it must flag the level shift at exactly the point where it starts
# (within the detector's reaction time), and report bad parameters clearly.
# Usage: example_plugin_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cmake -S "$src/examples/detector-plugin" -B "$work/plugin" -DFAULTLINE_INCLUDE_DIR="$src/detectors/include" >/dev/null
cmake --build "$work/plugin" >/dev/null
# 600 points of a deterministic wobble around 10, then a shift to 20 at point 400.
python3 -c '
import math
print("timestamp,value")
for i in range(600):
    print("%d,%.6f" % (1700000000 + 60 * i, 10 + 0.5 * math.sin(i * 0.7) + (10 if i >= 400 else 0)))' >"$work/series.csv"
out=$("$build/faultline" detectors test --plugin "$work/plugin/level_shift.so" --data "$work/series.csv")
summary=$(tail -1 <<<"$out")
echo "$summary"
grep -q '^plugin=level_shift points=600 ' <<<"$summary" || { echo "FAIL: summary: $summary"; exit 1; }
grep -q ' garbage=0 ' <<<"$summary" || { echo "FAIL: garbage reported"; exit 1; }
first=$(sed -n 's/.* first_anomaly_index=\([0-9-]*\).*/\1/p' <<<"$summary")
[[ $first -ge 400 && $first -le 403 ]] || { echo "FAIL: first anomaly at $first, expected 400..403"; exit 1; }
err=$("$build/faultline" detectors test --plugin "$work/plugin/level_shift.so" --data "$work/series.csv" --param k=abc 2>&1) && { echo "FAIL: bad param accepted"; exit 1; }
[[ $err == *"level_shift: parameter k='abc': expected a number in (0, 100]"* ]] || { echo "FAIL: error was: $err"; exit 1; }
# The plugin by name in the live diagnosis's rules: its parameters are checked when the
# configuration loads, and a good rule gets as far as the broker.
cat >"$work/diag.yaml" <<EOF
plugins: [$work/plugin/level_shift.so]
detectors:
  rules:
    - match: {kind: service, metric: latency_p99_ms}
      detector: level_shift
      params: {k: abc}
EOF
rc=0
err=$("$build/faultline" diagnose --brokers 127.0.0.1:9 --state-dir "$work/d" --config "$work/diag.yaml" 2>&1) || rc=$?
[[ $rc == 2 && $err == *"rules[0]: level_shift: parameter k='abc': expected a number in (0, 100]"* ]] ||
  { echo "FAIL: diagnose with a bad plugin rule: exit $rc: $err"; exit 1; }
sed -i 's/{k: abc}/{k: 4}/' "$work/diag.yaml"
rc=0
err=$("$build/faultline" diagnose --brokers 127.0.0.1:9 --state-dir "$work/d" --config "$work/diag.yaml" 2>&1) || rc=$?
[[ $rc == 1 && $err == *"--brokers 127.0.0.1:9: no metadata for topic faultline.metrics"* ]] ||
  { echo "FAIL: diagnose with a good plugin rule: exit $rc: $err"; exit 1; }
echo PASS
