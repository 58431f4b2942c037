#!/usr/bin/env bash
# Every GoogleTest binary's verdict in ctest is judged per case: failed if any case failed (a
# skipped case beside it hides nothing), skipped only if every case skipped, and under
# FAULTLINE_REQUIRE_EBPF=1 a skipped case is a failure. Checked through ctest itself: the
# registration of every faultline_test() binary in BUILD_DIR (the ctest properties that decide a
# verdict, read with `ctest --show-only=json-v1`) is given to a probe with one passing, one
# failing and one skipping case (gtest_verdict_probe.cc, built with the same main), mixed by
# --gtest_filter, in a scratch ctest directory.
# Usage: gtest_verdict_test.sh BUILD_DIR PROBE
set -euo pipefail
build=$1 probe=$2
source "$(dirname "$0")/../integration/lib.sh"

(cd "$build" && ctest --show-only=json-v1) >"$work/tests.json"
python3 - "$work/tests.json" "$probe" "$work" <<'PY'
import json, os, sys
tests, probe, work = json.load(open(sys.argv[1]))["tests"], sys.argv[2], sys.argv[3]
verdict_props = ("SKIP_RETURN_CODE", "SKIP_REGULAR_EXPRESSION", "PASS_REGULAR_EXPRESSION",
                 "FAIL_REGULAR_EXPRESSION", "WILL_FAIL")
# faultline_test() registers a binary under its own name: add_test(NAME x COMMAND x).
registrations = {}
for t in tests:
    cmd = t.get("command") or []
    if not cmd or os.path.basename(cmd[0]) != t["name"]:
        continue
    props = {p["name"]: p["value"] for p in t.get("properties", []) if p["name"] in verdict_props}
    registrations.setdefault(json.dumps(props, sort_keys=True), []).append(t["name"])
for must in ("agent_http_test", "agent_tcp_test", "agent_loss_test", "kube_test"):
    assert any(must in names for names in registrations.values()), \
        "%s is not registered by faultline_test(): %s" % (must, sorted(registrations.values()))
def cmake_quote(v):
    if isinstance(v, list):
        v = ";".join(v)
    v = str(v).upper() if isinstance(v, bool) else str(v)
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'
mixes = {"pass": "Probe.Passes", "fail": "Probe.Fails", "skip": "Probe.Skips",
         "pass_skip": "Probe.Passes:Probe.Skips", "fail_skip": "Probe.Fails:Probe.Skips",
         "pass_fail_skip": "Probe.*"}
for i, (props, names) in enumerate(sorted(registrations.items())):
    d = os.path.join(work, "reg%d" % i)
    os.makedirs(d)
    with open(os.path.join(d, "names"), "w") as f:
        f.write(" ".join(sorted(names)) + "\n")
    with open(os.path.join(d, "CTestTestfile.cmake"), "w") as f:
        for mix, flt in mixes.items():
            f.write("add_test(%s %s %s)\n" % (mix, cmake_quote(probe), cmake_quote("--gtest_filter=" + flt)))
            p = json.loads(props)
            if p:
                f.write("set_tests_properties(%s PROPERTIES %s)\n"
                        % (mix, " ".join("%s %s" % (k, cmake_quote(v)) for k, v in sorted(p.items()))))
PY

# verdicts DIR [ENV...]: "mix verdict" per line (passed, failed, skipped), from ctest's JUnit
# report of a run in DIR with the environment changed by ENV (env's arguments).
verdicts() {
  local dir=$1
  shift
  (cd "$dir" && env "$@" ctest --output-junit junit.xml >ctest.out 2>&1 || true)
  python3 - "$dir/junit.xml" <<'PY' | sort
import sys, xml.etree.ElementTree as ET
for c in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    status = c.get("status")
    verdict = {"run": "passed", "fail": "failed"}.get(status, status)
    if status == "notrun" and c.find("skipped") is not None:
        verdict = "skipped"
    print(c.get("name"), verdict)
PY
}
want=$(printf '%s\n' 'fail failed' 'fail_skip failed' 'pass passed' 'pass_fail_skip failed' \
  'pass_skip passed' 'skip skipped' | sort)
want_req=$(printf '%s\n' 'fail failed' 'fail_skip failed' 'pass passed' 'pass_fail_skip failed' \
  'pass_skip failed' 'skip failed' | sort)
fails=0
for d in "$work"/reg*; do
  got=$(verdicts "$d" -u FAULTLINE_REQUIRE_EBPF)
  got_req=$(verdicts "$d" FAULTLINE_REQUIRE_EBPF=1)
  if [[ $got != "$want" || $got_req != "$want_req" ]]; then
    echo "FAIL: the verdicts of a binary registered as $(cat "$d/names"):"
    cat "$d/CTestTestfile.cmake"
    echo "mix, verdict, expected:"
    paste -d' ' <(echo "$got") <(echo "$want" | cut -d' ' -f2)
    echo "under FAULTLINE_REQUIRE_EBPF=1:"
    paste -d' ' <(echo "$got_req") <(echo "$want_req" | cut -d' ' -f2)
    fails=$((fails + 1))
  else
    echo "ok: $(wc -w <"$d/names") binaries registered alike, each mix judged per case"
  fi
done
[[ $fails == 0 ]] || exit 1
echo PASS
