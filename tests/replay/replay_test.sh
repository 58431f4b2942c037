#!/usr/bin/env bash
# The replay corpus (tests/data/replay/): situations recorded live in the lab (gzipped JSON), each cut where the
# live diagnosis judged it, with the first root cause and fault class the lab's fault should get
# (cases.json; bench/lab_replay.py --save adds cases). `faultline diagnose --situation` on each
# must name them: a diagnosis change that breaks a recorded case fails here, for a reason anyone
# reproduces with the one command this prints.
# Usage: replay_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
exec /usr/bin/python3 - "$build/faultline" "$src/tests/data/replay" <<'PY'
import gzip, json, os, shutil, subprocess, sys, tempfile
fl, corpus = sys.argv[1:3]
tmp = tempfile.mkdtemp(prefix="faultline-replay.")
cases = json.load(open(os.path.join(corpus, "cases.json")))["cases"]
if not cases:
    sys.exit("replay_test: FAIL: %s/cases.json holds no case" % corpus)
on_disk = {f[:-8] for f in os.listdir(corpus) if f.endswith(".json.gz")}
named = {c["name"] for c in cases}
if on_disk != named:
    sys.exit("replay_test: FAIL: situations without a case: %s; cases without a situation: %s"
             % (sorted(on_disk - named), sorted(named - on_disk)))
misses = []
for c in cases:
    path = os.path.join(tmp, c["name"] + ".json")
    with gzip.open(os.path.join(corpus, c["name"] + ".json.gz")) as z, open(path, "wb") as out:
        out.write(z.read())
    cmd = [fl, "diagnose", "--situation", path, "--format", "json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    got, cls = "-", "no incident: " + (run.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1][:200]
    if run.returncode == 0 and run.stdout.strip():
        inc = json.loads(run.stdout)
        if inc.get("root_causes"):
            top = inc["root_causes"][0]["entity"]
            got, cls = "%s:%s" % (top["kind"], top["name"]), inc["fault_tree"]["class"]
    want = c["expect"]
    ok = got == want["entity"] and cls == want["class"]
    print("%-4s %-48s %s %s" % ("ok" if ok else "MISS", c["name"], got, cls))
    if not ok:
        misses.append("%s: expected %s %s, got %s %s (recorded: %s)\n    reproduce: %s"
                      % (c["name"], want["entity"], want["class"], got, cls, c["source"], " ".join(cmd)))
if misses:
    print("(the situations stay in %s for the commands above)" % tmp)
    sys.exit("replay_test: FAIL: %d of %d recorded cases wrong:\n  %s" % (len(misses), len(cases), "\n  ".join(misses)))
shutil.rmtree(tmp)
print("replay_test: %d of %d recorded cases right" % (len(cases), len(cases)))
PY
