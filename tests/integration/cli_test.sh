#!/usr/bin/env bash
# The offline commands, each on inputs made here whose answer is known: detectors list, run and
# nab (a one-series NAB layout), attribute on Squeeze-layout cases, and the errors of bad input.
# Usage: cli_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
fl="$build/faultline"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# --- detectors list: every built-in, one line each, sorted.
"$fl" detectors list >"$work/list.txt"
names=$(awk '{print $1}' "$work/list.txt" | tr '\n' ' ')
[[ $names == "burn_rate combined cusum dspot ewma mad nsigma seasonal sequence spot threshold " ]] ||
  fail "detectors list: '$names'"

# --- detectors run: a step from 10 to 50 at point 60 of 120, and a threshold at 30.
python3 - "$work/step.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("timestamp,value\n")
    for i in range(120):
        f.write("%d,%s\n" % (1_700_000_000 + 300 * i, 50 if i >= 60 else 10))
PY
"$fl" detectors run --detector threshold --param upper=30 "$work/step.csv" >"$work/run.txt"
summary=$(tail -1 "$work/run.txt")
[[ $summary == "detector=threshold points=120 anomalies=60 first_anomaly_index=60 garbage=0 "* ]] ||
  fail "detectors run: '$summary'"
[[ $(grep -c '^1700' "$work/run.txt") == 120 ]] || fail "detectors run: not one line per point"
sed -n 62p "$work/run.txt" | grep -q '^1700018000,50,0.700000,1,up,' || fail "detectors run: point 60: $(sed -n 62p "$work/run.txt")"
sed -n 1p "$work/run.txt" | grep -qx 'timestamp,value,score,anomalous,direction,expected' || fail "detectors run: header"
if "$fl" detectors run --detector threshold --param upper=x "$work/step.csv" 2>"$work/err.txt"; then
  fail "detectors run accepted upper=x"
fi
grep -qF "threshold: parameter upper='x': expected a number" "$work/err.txt" || fail "detectors run: $(cat "$work/err.txt")"

# --- detectors nab: one series whose anomaly window starts where the step does. A detector that
# flags exactly the window's first point scores 100 on every profile; one that never flags, 0.
nab=$work/nab
mkdir -p "$nab/config" "$nab/labels" "$nab/data/synthetic"
cat >"$nab/config/profiles.json" <<'JSON'
{"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}},
 "reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0}},
 "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}}}
JSON
python3 - "$nab" <<'PY'
import datetime, json, sys
nab = sys.argv[1]
t0 = datetime.datetime(2026, 1, 1)
ts = lambda i: (t0 + datetime.timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")
with open(nab + "/data/synthetic/step.csv", "w") as f:
    f.write("timestamp,value\n")
    for i in range(400):
        f.write("%s,%d\n" % (ts(i), 50 if 200 <= i < 203 else 10))
with open(nab + "/labels/combined_windows.json", "w") as f:
    json.dump({"synthetic/step.csv": [[ts(200) + ".000000", ts(240) + ".000000"]]}, f)
PY
"$fl" detectors nab --nab-dir "$nab" --run threshold --param upper=30 >"$work/nab.txt"
grep -q '^detector=threshold points=400 ' "$work/nab.txt" || fail "nab: $(cat "$work/nab.txt")"
for profile in standard reward_low_FP_rate reward_low_FN_rate; do
  score=$(awk -v p="$profile" '$1 == p {print $2}' "$work/nab.txt")
  [[ $score == 100.00 ]] || fail "nab: $profile scored '$score', expected 100.00: $(cat "$work/nab.txt")"
done
"$fl" detectors nab --nab-dir "$nab" --run threshold --param upper=1000 >"$work/nab0.txt"
[[ $(awk '$1 == "standard" {print $2}' "$work/nab0.txt") == 0.00 ]] || fail "nab, never flagging: $(cat "$work/nab0.txt")"
if "$fl" detectors nab --nab-dir "$nab" 2>"$work/err.txt"; then fail "nab without --run or --detector"; fi
grep -q 'give either --detector (score stored results) or --run (run a detector)' "$work/err.txt" ||
  fail "nab: $(cat "$work/err.txt")"
if "$fl" detectors nab --run threshold 2>/dev/null; then fail "nab without --nab-dir"; fi

# --- attribute on Squeeze-layout cases: the element whose leaves all fell, and --timing.
"$fl" attribute "$src/tests/data/fuzz/squeeze_csv/small.csv" >"$work/attr.txt"
[[ $(cat "$work/attr.txt") == "a=a1" ]] || fail "attribute: '$(cat "$work/attr.txt")'"
"$fl" attribute --timing "$src/tests/data/fuzz/squeeze_csv/small.csv" "$src/tests/data/fuzz/squeeze_csv/ratio.csv" >"$work/timing.txt"
[[ $(wc -l <"$work/timing.txt") == 2 ]] || fail "attribute --timing: $(cat "$work/timing.txt")"
awk -F'\t' -v f="$src/tests/data/fuzz/squeeze_csv/small.csv" 'NR == 1 && $1 == f && $2 ~ /^[0-9]+\.[0-9][0-9]$/ && $3 == "a=a1" {ok=1} END {exit !ok}' \
  "$work/timing.txt" || fail "attribute --timing: $(cat "$work/timing.txt")"
printf 'real,predict,a\n1,x,a0\n' >"$work/bad.csv"
if "$fl" attribute "$work/bad.csv" 2>"$work/err.txt"; then fail "attribute accepted a bad case"; fi
grep -q "^faultline attribute: $work/bad.csv:2: " "$work/err.txt" || fail "attribute: $(cat "$work/err.txt")"
echo "cli: ok"

# faultline lab: a verb is required; the lab's files are found beside the build directory.
rc=0; "$fl" lab 2>"$work/lab.err" || rc=$?
[[ $rc == 2 ]] && grep -q '^faultline lab: expected up, down, status, check-clean, run or demo' "$work/lab.err" ||
  fail "lab without a verb: exit $rc: $(cat "$work/lab.err")"
# A scenario is checked before anything starts: the file, the step and the field are named.
printf 'name: bad\nbaseline_s: 10\nsteps:\n  - {fault: {kind: slow, target: catalog}, duration_s: 5, expect: {entity: "service:catalog", class: own_code}}\n  - {fault: {kind: bogus, target: x}, duration_s: 5}\n' >"$work/bad-scenario.yaml"
rc=0; "$fl" lab run "$work/bad-scenario.yaml" 2>"$work/lab.err" || rc=$?
[[ $rc == 1 ]] && grep -q "^faultline lab run: $work/bad-scenario.yaml: steps\[1\]: unknown fault kind 'bogus' (known: none, cpu_throttle, delay, disk," "$work/lab.err" ||
  fail "lab run with an unknown fault kind: exit $rc: $(cat "$work/lab.err")"
printf 'name: bad\nbaseline_s: 10\nfault: {kind: down, target: pricing}\nduration_s: 5\n' >"$work/bad-scenario.yaml"
rc=0; "$fl" lab run "$work/bad-scenario.yaml" 2>"$work/lab.err" || rc=$?
[[ $rc == 1 ]] && grep -q "^faultline lab run: $work/bad-scenario.yaml: the scenario: 'expect' needs 'entity' and 'class' for a fault$" "$work/lab.err" ||
  fail "lab run without an expected answer: exit $rc: $(cat "$work/lab.err")"
rc=0; FAULTLINE_LAB_DIR="$work/no-lab" "$fl" lab status 2>"$work/lab.err" || rc=$?
[[ $rc != 0 ]] && grep -q "no-lab/lab.py" "$work/lab.err" || fail "lab with no lab files: exit $rc: $(cat "$work/lab.err")"
