#!/usr/bin/env python3
"""Scores faultline's diagnosis on the Nezha dataset's recorded situations (../shared/data/nezha-dev,
its README says what they hold and where they come from) as the Nezha paper scores its methods.

For each labelled case, `faultline diagnose --situation CASE.json --format json` (the alarm on the
entry at the injection time, which the situation carries); the incident's root causes, best first,
are turned into services: a service names itself, an edge its callee and then its caller, an
instance or a container its service, a machine every service with an instance on it (in the
order the topology lists them). A case is right at k when the labelled service is among the first
k services; no incident is a miss. The fault's kind (cpu, network, code) is compared with the
first cause's first class (CLASS_KIND below); a class with no kind (an unclassified fault) is a miss.

With --given, the alarm is given as the paper gives its methods the fault's time: the situation
gets a detector's verdict that the entry's alarmed metric is anomalous from the injection (what
bench/lab_replay.py adds for the live diagnosis's alarm), so attribution runs even where
faultline's own judge finds the entry within its noisy baseline. Without it, such a case has no
incident and is a miss.

Usage: bench/nezha.py [--step 5|60] [--given] [--cases FILTER] [--json OUT] FAULTLINE_BINARY [DATA_DIR]
FILTER: a regular expression on the case name or app (e.g. 'OB' or '2023-01-29').
Prints a line per case, then per app: cases, top-1, top-3, kind accuracy (as percentages), and
the paper's figures beside them.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

# The fault classes of fta/trees/default.yaml by the dataset's fault kinds. A class the data cannot
# show (no quota, no I/O, no OOM in the dataset) still maps, so a wrong class is scored as wrong.
CLASS_KIND = {
    "container_cpu_throttling": "cpu", "machine_cpu_saturation": "cpu", "cpu_contention": "cpu",
    "network_latency": "network", "network_loss": "network", "connection_refused": "network",
    "own_code": "code", "error_propagation": "code", "error_origin": "code",
    "oom_kill": "memory", "memory_pressure": "memory", "disk_io_latency": "io",
    "traffic_surge": "load", "slow_downstream": "downstream",
}

PUBLISHED = {  # the paper's Table 3, service level, top-1 / top-3
    "OB": {"Nezha without logs": (64.3, 64.3), "PDiagnose": (41.1, 73.2), "MicroRank": (41.1, 48.2)},
    "TT": {"Nezha without logs": (42.2, 44.4), "PDiagnose": (8.9, 13.3), "MicroRank": (15.6, 24.4)},
}


def services_of(entity, topology):
    kind, name = entity["kind"], entity["name"]
    edges = topology.get("edges", [])
    instance_service = {e["from"]: e["to"] for e in edges if e["kind"] == "instance_of"}
    runs_on = [(e["from"], e["to"]) for e in edges if e["kind"] == "runs_on"]
    if kind == "service":
        return [name]
    if kind == "edge":
        caller, callee = name.split("->", 1)
        return [callee, caller]
    if kind == "instance":
        return [instance_service.get(name, name)]
    if kind == "container":
        return [instance_service[f] for f, t in runs_on if t == name and f in instance_service]
    if kind == "machine":
        containers = {f for f, t in runs_on if t == name}
        out = []
        for f, t in runs_on:
            if (t == name or t in containers) and f in instance_service:
                out.append(instance_service[f])
        return out
    return []


def ranked_services(incident, topology):
    out = []
    for cause in incident.get("root_causes", []):
        for s in services_of(cause["entity"], topology):
            if s not in out:
                out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step", default="5", choices=["5", "60"])
    ap.add_argument("--given", action="store_true")
    ap.add_argument("--cases", default="")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("binary")
    ap.add_argument("data", nargs="?",
                    default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "nezha-dev"))
    a = ap.parse_args()
    labels = []
    with open(os.path.join(a.data, "labels.tsv")) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(head, line.rstrip("\n").split("\t")))
            if a.cases and not (re.search(a.cases, row["case"]) or re.search(a.cases, row["app"])):
                continue
            labels.append(row)
    results = []
    for row in labels:
        path = os.path.join(a.data, "situations-%ss" % a.step, row["case"] + ".json")
        if not os.path.exists(path):
            continue  # no usable traces for this case at this step (the README says which)
        with open(path) as f:
            situation = json.load(f)
        topology = situation["topology"]
        if a.given:
            alarm = situation["alarm"]
            situation["verdicts"] = [{"kind": alarm["kind"], "entity": alarm["entity"],
                                      "metric": alarm["metric"], "at_s": alarm["at_s"],
                                      "anomalous": True, "score": 0, "detector": "given"}]
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(situation, f)
            f.flush()
            run = subprocess.run([a.binary, "diagnose", "--situation", f.name, "--format", "json"],
                                 capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit("%s: faultline diagnose failed (%d): %s" % (row["case"], run.returncode, run.stderr.strip()))
        incident = json.loads(run.stdout)
        services, cls = [], ""
        if incident:
            services = ranked_services(incident, topology)
            classes = incident["root_causes"][0]["fault_classes"]
            cls = classes[0]["name"] if classes else ""
        rank = services.index(row["service"]) + 1 if row["service"] in services else 0
        kind_ok = CLASS_KIND.get(cls) == row["kind"]
        results.append({"case": row["case"], "app": row["app"], "service": row["service"],
                        "fault": row["fault_type"], "kind": row["kind"], "rank": rank,
                        "first": services[:3], "class": cls, "kind_right": kind_ok,
                        "incident": bool(incident)})
        print("%-14s %s %-22s %-15s rank %-2s class %-24s first %s" % (
            row["case"], row["app"], row["service"], row["fault_type"], rank or "-",
            cls or ("(none)" if incident else "(no incident)"), ", ".join(services[:3])))
    for app in ("OB", "TT"):
        rs = [r for r in results if r["app"] == app]
        if not rs:
            continue
        n = len(rs)
        top1 = 100.0 * sum(1 for r in rs if r["rank"] == 1) / n
        top3 = 100.0 * sum(1 for r in rs if 1 <= r["rank"] <= 3) / n
        kind = 100.0 * sum(1 for r in rs if r["kind_right"]) / n
        print("%s step %ss%s: %d cases, top-1 %.1f%%, top-3 %.1f%%, kind %.1f%%; published: %s" % (
            app, a.step, " given" if a.given else "", n, top1, top3, kind,
            "; ".join("%s %.1f/%.1f" % (m, t1, t3) for m, (t1, t3) in PUBLISHED[app].items())))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
