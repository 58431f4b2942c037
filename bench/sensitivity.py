#!/usr/bin/env python3
"""How accuracy moves as each of attribution's constants moves: a sensitivity table.

Each constant of `faultline diagnose --situation` (AttributionOptions, exposed as flags) is set,
one at a time, to values below and above its default, the others at their defaults, and three
corpora are diagnosed with it:
- replay: the lab's recorded cases (tests/data/replay/, the corpus replay_test judges): the first
  root cause and its class must be the expected ones;
- nezha-60 / nezha-5: the Nezha dev cases (../shared/data/nezha-dev, bench/nezha.py), with the
  alarm given at the injection as the paper gives its methods the fault's time: the labelled
  service among the services the first root cause names (top-1).
A constant whose default sits on a cliff (accuracy falls a step away) was fitted to the cases; one
on a plateau is not. Prints a Markdown table: per constant and value, right / cases per corpus.

Usage: bench/sensitivity.py FAULTLINE_BINARY [NEZHA_DIR]   (about 1,500 diagnoses, a few minutes)
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nezha  # noqa: E402  (services_of, ranked_services)

# Each constant with its default first, then the values tried around it.
SWEEP = [
    ("--z", ["4", "3", "5", "6"]),
    ("--min-correlation", ["0.6", "0.4", "0.5", "0.7", "0.8"]),
    ("--min-change", ["0.2", "0.1", "0.3", "0.5"]),
    ("--min-explained-share", ["0.3", "0.1", "0.2", "0.5"]),
    ("--lead-windows", ["2", "0", "1", "3"]),
    ("--correlation-windows", ["6", "3", "10"]),
    ("--min-baseline", ["6", "4", "10"]),
    ("--timeout-scale-ms", ["100", "30", "300"]),
    ("--contention-share", ["0.1", "0.05", "0.2", "0.3"]),
    ("--saturated-busy-ratio", ["0.8", "0.6", "0.7", "0.9"]),
]


def diagnose(fl, path, flags):
    run = subprocess.run([fl, "diagnose", "--situation", path, "--format", "json"] + flags,
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        sys.exit("%s: faultline diagnose failed: %s" % (path, run.stderr.strip()))
    return json.loads(run.stdout)


def load_corpora(tmp, nezha_dir):
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "replay")
    replay = []
    for c in json.load(open(os.path.join(src, "cases.json")))["cases"]:
        path = os.path.join(tmp, c["name"] + ".json")
        with gzip.open(os.path.join(src, c["name"] + ".json.gz")) as z, open(path, "wb") as out:
            out.write(z.read())
        replay.append((path, c["expect"]))
    corpora = {"replay": replay}
    labels = []
    with open(os.path.join(nezha_dir, "labels.tsv")) as f:
        head = f.readline().rstrip("\n").split("\t")
        labels = [dict(zip(head, line.rstrip("\n").split("\t"))) for line in f]
    for step in ("60", "5"):
        cases = []
        for row in labels:
            path = os.path.join(nezha_dir, "situations-%ss" % step, row["case"] + ".json")
            if not os.path.exists(path):
                continue
            s = json.load(open(path))
            a = s["alarm"]
            s["verdicts"] = [{"kind": a["kind"], "entity": a["entity"], "metric": a["metric"],
                              "at_s": a["at_s"], "anomalous": True, "score": 0, "detector": "given"}]
            out = os.path.join(tmp, "nezha%s-%s.json" % (step, row["case"]))
            json.dump(s, open(out, "w"))
            cases.append((out, {"service": row["service"], "topology": s["topology"]}))
        corpora["nezha-" + step] = cases
    return corpora


def right(corpus, inc, expect):
    if not inc or not inc.get("root_causes"):
        return False
    if corpus == "replay":
        top = inc["root_causes"][0]["entity"]
        return ("%s:%s" % (top["kind"], top["name"]) == expect["entity"]
                and inc["fault_tree"]["class"] == expect["class"])
    return nezha.ranked_services(inc, expect["topology"])[:1] == [expect["service"]]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[-1].strip())
    fl = sys.argv[1]
    nezha_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "nezha-dev")
    with tempfile.TemporaryDirectory(prefix="faultline-sensitivity.") as tmp:
        corpora = load_corpora(tmp, nezha_dir)
        names = list(corpora)
        print("| constant | value | " + " | ".join(names) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
        for flag, values in SWEEP:
            for i, v in enumerate(values):
                cells = []
                for name in names:
                    ok = sum(1 for path, exp in corpora[name]
                             if right(name, diagnose(fl, path, [flag, v]), exp))
                    cells.append("%d / %d" % (ok, len(corpora[name])))
                print("| `%s` | %s%s | %s |" % (flag, v, " (default)" if i == 0 else "",
                                                " | ".join(cells)), flush=True)


if __name__ == "__main__":
    main()
