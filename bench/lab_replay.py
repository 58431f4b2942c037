#!/usr/bin/env python3
"""Replays the lab's recorded cases through `faultline diagnose`: a diagnosis change judged on
real situations in seconds, before a 15-minute lab run judges it live.

Each case of a `faultline lab run --json-out` file (bench/lab.sh's bench/lab-results.json) holds
the incident as first seen and the situation the stream served for it, fetched a little later.
The situation is cut where the incident's own situation ended (what the live diagnosis had
then), diagnosed again by the given binary, and its first root cause and fault class compared with the case's expectation.

Not the same as live: only the alarm's verdict is put back (the live diagnosis adds it; the
other series' detector verdicts are not recorded), and the data a window's late records bring is
in the recorded situation, though the live diagnosis may have judged that window without them.

Usage: bench/lab_replay.py [--save DIR] FAULTLINE_BINARY RESULTS.json [RESULTS.json ...]
Prints a line per case and, last, "right=N cases=M".
--save DIR: the cases the binary gets right go into the replay corpus DIR (tests/data/replay/):
each cut situation as NAME.json.gz (gzip: a situation is 100-200 kB of JSON) and its expectation, with where it was recorded, in DIR/cases.json
(replay_test diagnoses them all in CI). A case already there under the same name is replaced.
"""
import datetime
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile


def cut(situation, end_s=None):
    """The situation up to `end_s` (default: the end of its alarm's window), with the detector's
    verdict on the alarm that the live diagnosis adds (the recorded situation is the stream's,
    without it)."""
    alarm = situation["alarm"]
    situation["verdicts"] = [{"kind": alarm["kind"], "entity": alarm["entity"],
                              "metric": alarm["metric"], "at_s": alarm["at_s"],
                              "anomalous": True, "score": 0, "detector": "live"}]
    if end_s is None:
        end_s = alarm["at_s"] + situation["window_s"]
    n = (end_s - situation["start_s"]) // situation["window_s"]
    for s in situation["series"]:
        s["values"] = s["values"][:n]
    for b in situation.get("breakdowns", []):
        for leaf in b["leaves"]:
            for k in ("requests", "errors", "latency_sum_ms"):
                leaf[k] = leaf[k][:n]
    return situation


def main():
    args = sys.argv[1:]
    save = None
    if args[:1] == ["--save"] and len(args) > 1:
        save, args = args[1], args[2:]
    if len(args) < 2:
        sys.exit(__doc__.split("\n\n")[-2].strip())
    fl, files = args[0], args[1:]
    index = {}
    if save:
        os.makedirs(save, exist_ok=True)
        try:
            index = {c["name"]: c for c in json.load(open(os.path.join(save, "cases.json")))["cases"]}
        except FileNotFoundError:
            pass
    right = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "situation.json")
        for f in files:
            for case in json.load(open(f))["cases"]:
                doc = case.get("incident_doc") or {}
                if "situation_doc" not in doc or "expect" not in case:
                    continue
                # As the live diagnosis saw it: up to its situation's end (a held anomaly's
                # diagnosis has its alarm in the window first seen and data up to the window that
                # confirmed it).
                end = doc.get("situation", {}).get("end")
                end_s = int(datetime.datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp()) if end else None
                situation = cut(doc["situation_doc"], end_s)
                with open(path, "w") as out:
                    json.dump(situation, out)
                run = subprocess.run([fl, "diagnose", "--situation", path, "--format", "json"],
                                     capture_output=True, text=True)
                inc = json.loads(run.stdout) if run.returncode == 0 and run.stdout.strip() else None
                if inc and inc.get("root_causes"):
                    top = inc["root_causes"][0]["entity"]
                    got, cls = "%s:%s" % (top["kind"], top["name"]), inc["fault_tree"]["class"]
                else:
                    got, cls = "-", (run.stderr.strip().splitlines() or ["no incident"])[-1][:120]
                want = case["expect"]
                ok = got == want["entity"] and cls == want["class"]
                total += 1
                right += ok
                print("%-4s %-26s %s %s (live: %s %s)" % (
                    "ok" if ok else "MISS", case["scenario"], got, cls,
                    (case.get("root_causes") or ["-"])[0], case.get("fault_class")))
                if save and ok:
                    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "%s-%s-r%s" % (
                        os.path.basename(f).split(".")[0], case["scenario"].replace("->", "-to-"),
                        case.get("repeat", 1)))
                    # mtime=0: the same situation gives the same bytes.
                    with gzip.GzipFile(os.path.join(save, name + ".json.gz"), "wb", mtime=0) as out:
                        out.write(json.dumps(situation, separators=(",", ":")).encode())
                    index[name] = {"name": name, "expect": {"entity": want["entity"], "class": want["class"]},
                                   "source": "faultline lab run, %s, scenario %s, repeat %s, incident %s"
                                   % (os.path.basename(f), case["scenario"], case.get("repeat", 1),
                                      doc.get("id"))}
    if save:
        with open(os.path.join(save, "cases.json"), "w") as out:
            json.dump({"cases": [index[k] for k in sorted(index)]}, out, indent=1)
            out.write("\n")
    print("right=%d cases=%d" % (right, total))


if __name__ == "__main__":
    main()
