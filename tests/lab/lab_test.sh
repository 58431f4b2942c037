#!/usr/bin/env bash
# The fault-injection lab end to end (label lab): the shop on three emulated machines, the whole
# pipeline, real faults.
#   1. A scenario run SIGKILLed while its system is up: its supervisor tears the lab down and its
#      pipeline's processes go with it; nothing of it is left (faultline lab check-clean).
#   2. lab/scenarios/all-kinds.yaml: a fault-free baseline with no incident, then every fault kind
#      once; each must open an incident, and all but at most two of them with the expected first
#      root cause and fault class. Then nothing of the lab is left.
#      With FAULTLINE_LAB_QUICK=1 (the sanitized run, scripts/test_sanitized.sh) instead
#      slow-catalog.yaml alone: every pipeline process lives through the whole scenario (a
#      sanitizer's report aborts it) and the fault is detected; accuracy is not judged there, the
#      sanitizers' CPU on a 2-core machine is a real machine-CPU event in the shop.
# Usage: lab_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
fl=$build/faultline
py=/usr/bin/python3
work=$(mktemp -d /tmp/faultline-lab-test.XXXXXX)
runner=
cleanup() {
  [[ -n $runner ]] && kill "$runner" 2>/dev/null || true
  "$fl" lab down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "lab_test: FAIL: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || { echo "lab_test: needs root (network namespaces, cgroups)" >&2; exit 77; }
"$fl" lab check-clean >/dev/null 2>&1 || "$fl" lab down >/dev/null 2>&1 || true

# --- 1. killed: nothing left --------------------------------------------------------------------
"$fl" lab run "$src/lab/scenarios/slow-catalog.yaml" --json-out "$work/killed.json" \
  >"$work/killed.out" 2>"$work/killed.err" &
runner=$!
for _ in $(seq 600); do  # the lab and the pipeline up: at most 60 s
  grep -q "baseline" "$work/killed.err" && break
  kill -0 "$runner" 2>/dev/null || fail "the run exited before its baseline: $(tail -5 "$work/killed.err")"
  sleep 0.1
done
grep -q "baseline" "$work/killed.err" || fail "the run did not reach its baseline in 60 s"
# The pipeline's processes (broker, agents, stream, diagnosis) are the runner's children.
children=$(ps -o pid= --ppid "$runner" | tr -d ' ' | tr '\n' ' ')
[[ $(wc -w <<<"$children") -ge 6 ]] || fail "expected 6 pipeline processes under the runner, found: $children"
"$fl" lab status | "$py" -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["up"] else 1)' ||
  fail "the lab is not up during the baseline"
kill -KILL "$runner"
wait "$runner" 2>/dev/null || true
runner=
clean=
for _ in $(seq 120); do  # the supervisor sees its owner gone within a tick, down takes seconds
  if "$fl" lab check-clean >"$work/check.out" 2>&1; then clean=1; break; fi
  sleep 0.5
done
[[ -n $clean ]] || fail "60 s after SIGKILL the lab is still there: $(cat "$work/check.out")"
# The kernel sends each pipeline process SIGTERM when the runner dies (PR_SET_PDEATHSIG); an agent
# then flushes to a broker that is gone for at most 10 s (kafka_sink.cc) before it exits. All of
# them must be gone within 30 s.
alive() {
  local pid out=
  for pid in $children; do
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "^$fl "; then
      out+="$pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) "
    fi
  done
  echo -n "$out"
}
for _ in $(seq 60); do
  [[ -z $(alive) ]] && break
  sleep 0.5
done
left=$(alive)
[[ -z $left ]] || fail "pipeline processes outlived the SIGKILLed run by 30 s: $left"
echo "lab_test: killed run: lab torn down, pipeline gone"

# --- 2. every fault kind ------------------------------------------------------------------------
if [[ ${FAULTLINE_LAB_QUICK:-0} == 1 ]]; then
  rc=0
  "$fl" lab run "$src/lab/scenarios/slow-catalog.yaml" --json-out "$work/quick.json" >"$work/quick.out" \
    2>"$work/quick.err" || rc=$?
  cat "$work/quick.out"
  [[ $rc == 0 ]] || fail "lab run exited $rc: $(tail -20 "$work/quick.err")"
  "$py" -c '
import json, sys
cases = [c for c in json.load(open(sys.argv[1]))["cases"] if "detected" in c]
sys.exit(0 if len(cases) == 1 and cases[0]["detected"] else "lab_test: FAIL: slow-catalog not detected: %s" % cases)
' "$work/quick.json"
  "$fl" lab check-clean >"$work/check.out" 2>&1 || fail "after the run the lab is still there: $(cat "$work/check.out")"
  echo "lab_test: ok (quick: slow-catalog detected, no process lost)"
  exit 0
fi
rc=0
"$fl" lab run "$src/lab/scenarios/all-kinds.yaml" --json-out "$work/all.json" >"$work/all.out" \
  2>"$work/all.err" || rc=$?
cat "$work/all.out"
[[ $rc == 0 ]] || fail "lab run exited $rc: $(tail -20 "$work/all.err")"
"$py" - "$work/all.json" "$src/lab/scenarios/all-kinds.yaml" <<'PY'
import json, sys
import yaml
res = json.load(open(sys.argv[1]))
steps = yaml.safe_load(open(sys.argv[2]))["steps"]
cases = res["cases"]
errors = []
base = [c for c in cases if c.get("baseline")]
if len(base) != 1 or base[0]["false_incidents"] != 0:
    errors.append("baseline: expected 1 case with 0 false incidents, got %s" % [
        {k: v for k, v in b.items() if k != "false_incident_docs"} for b in base])
    for b in base:
        for doc in b.get("false_incident_docs", []):
            errors.append("false incident %s: %s" % (doc.get("id"), doc.get("summary")))
faulty = [c for c in cases if "detected" in c]
if len(faulty) != len(steps):
    errors.append("expected %d fault cases, got %d" % (len(steps), len(faulty)))
# Every kind must be detected. The first cause and class must be right for all but MAX_MISSES:
# bench/lab.sh measured 24 of 27 right at rank 1 over three runs (disk and machine_cpu each
# missed once, bench/RESULTS.md); the test holds the scoreboard there, not at perfection.
MAX_MISSES = 2
misses = []
for step, c in zip(steps, faulty):
    want = step["expect"]
    got = "%s: detected %s, first cause %s, class %s" % (
        c["scenario"], c["detected"], (c.get("root_causes") or ["-"])[0], c.get("fault_class"))
    if not c["detected"]:
        errors.append("%s: no incident" % c["scenario"])
    elif not (c["ac1"] and c["class_ok"]):
        misses.append("%s (expected %s, %s)" % (got, want["entity"], want["class"]))
for m in misses:
    print("lab_test: miss: " + m)
if len(misses) > MAX_MISSES:
    errors.append("%d fault kinds wrong at rank 1 (at most %d): %s" % (len(misses), MAX_MISSES, "; ".join(misses)))
kinds = {s["fault"]["kind"] for s in steps}
# Not "surge": the shop absorbs it, no incident opens (all-kinds.yaml says why).
need = {"loss", "delay", "down", "slow", "error", "cpu_throttle", "machine_cpu", "oom", "disk"}
if need - kinds:
    errors.append("all-kinds.yaml lacks fault kinds %s" % sorted(need - kinds))
if errors:
    sys.exit("lab_test: FAIL:\n  " + "\n  ".join(errors))
print("lab_test: %d fault kinds, each detected, %d right at rank 1 with the right class; "
      "no incident in %d s of fault-free baseline" % (len(faulty), len(faulty) - len(misses), base[0]["fault_free_s"]))
PY
"$fl" lab check-clean >"$work/check.out" 2>&1 || fail "after the run the lab is still there: $(cat "$work/check.out")"
echo "lab_test: ok"
