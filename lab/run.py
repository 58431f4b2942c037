#!/usr/bin/env python3
"""`faultline lab run`: scores faultline on scenarios with known answers.

For each scenario (lab/scenarios/*.yaml) and repetition: the lab system comes up with its load
(lab.py), the pipeline starts (the embedded broker, one agent per emulated machine, the stream
processor, the live diagnosis), the baseline runs, the fault is injected, held, reverted, and the
run watches a while longer. The diagnosis's incidents (its /incidents endpoint, polled every
250 ms) are scored against the scenario's expected answer:

  detected          an incident opened between the fault's start and the end of the watch
  detection_s       fault start -> the incident first seen
  ac1, ac3          the expected entity is the incident's first (any of its first three) root causes
                    as it was first seen: what the on-call engineer reads first
  class_ok          its fault class is the expected one
  resolve_s         revert -> the incident resolved
  false_incidents   incidents opened before the fault (or at all, in a fault-free scenario)

A summary table goes to stdout, every case to a JSON file. Everything the run started is stopped
and the lab torn down on any exit.
"""
import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lab  # noqa: E402  (lab/lab.py: the system under test)


PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # In the child before exec: SIGTERM when this runner dies, even by SIGKILL (the lab itself is
    # torn down by its supervisor, which watches this process too).
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def log(msg):
    print("lab: " + msg, file=sys.stderr, flush=True)


class Pipeline:
    """The broker, one agent per machine, the stream and the diagnosis, as child processes."""

    def __init__(self, faultline, work, machines):
        self.faultline, self.work, self.procs = faultline, work, []
        self.bootstrap = self._start_broker()
        for m in machines:
            self._spawn("agent-" + m["name"], [
                "agent", "--brokers", self.bootstrap, "--node-name", m["name"],
                "--netns", m["netns_path"], "--machine-cgroup", m["cgroup"]], wait_for="agent started")
        with open(os.path.join(work, "stream.yaml"), "w") as f:
            f.write("allowed_lateness_seconds: 2\n")
        self._spawn("stream", ["stream", "--brokers", self.bootstrap, "--state-dir",
                               os.path.join(work, "stream"), "--config", os.path.join(work, "stream.yaml"),
                               "--commit-interval-ms", "200"])
        err = self._spawn("diagnose", ["diagnose", "--brokers", self.bootstrap, "--state-dir",
                                       os.path.join(work, "diagnosis"), "--http-addr", "127.0.0.1:0"],
                          wait_for="http_port=")
        self.http = "http://127.0.0.1:%s" % _line_value(err, "http_port=")

    def _start_broker(self):
        out = self._spawn("broker", ["broker"], wait_for="bootstrap=", stream="stdout")
        return _line_value(out, "bootstrap=")

    def _spawn(self, name, args, wait_for=None, stream="stderr"):
        out = open(os.path.join(self.work, name + ".out"), "w")
        err = open(os.path.join(self.work, name + ".err"), "w")
        p = subprocess.Popen([self.faultline] + args, stdout=out, stderr=err, start_new_session=True,
                             preexec_fn=_die_with_parent)
        self.procs.append((name, p))
        path = os.path.join(self.work, name + (".out" if stream == "stdout" else ".err"))
        if wait_for:
            deadline = time.monotonic() + 60
            while wait_for not in _read(path):
                if p.poll() is not None:
                    raise RuntimeError("%s exited %d: %s" % (name, p.returncode, _read(path)[-2000:]))
                if time.monotonic() > deadline:
                    raise RuntimeError("%s did not print %r within 60 s" % (name, wait_for))
                time.sleep(0.1)
        return path

    def incidents(self):
        try:
            with urllib.request.urlopen(self.http + "/incidents", timeout=2) as r:
                return json.load(r)
        except OSError:
            return None

    def check_alive(self):
        for name, p in self.procs:
            if p.poll() is not None:
                raise RuntimeError("%s exited %d" % (name, p.returncode))

    def stop(self):
        # The diagnosis, the stream and the agents first, while the broker still answers them.
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _line_value(path, prefix):
    for line in _read(path).splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    raise RuntimeError("no %r in %s" % (prefix, path))


def entity_id(e):
    return "%s:%s" % (e["kind"], e["name"])


class Watcher:
    """Every incident's first sighting (as it was then) and its resolution time."""

    def __init__(self):
        self.first, self.resolved = {}, {}

    def poll(self, pipeline):
        now = time.time()
        for inc in pipeline.incidents() or []:
            iid = inc["id"]
            if iid not in self.first:
                self.first[iid] = (now, inc)
            if inc["status"] == "resolved" and iid not in self.resolved:
                self.resolved[iid] = now


def hold(seconds, pipeline, watcher):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pipeline.check_alive()
        watcher.poll(pipeline)
        time.sleep(0.25)


def run_case(scn, faultline, state_dir, rate_default):
    work = tempfile.mkdtemp(prefix="faultline-lab-run.")
    pipeline = None
    case = {"scenario": scn["name"], "expect": scn.get("expect", {})}
    try:
        status = lab.up(state_dir, rate=scn.get("rate", rate_default), owner=os.getpid())
        pipeline = Pipeline(faultline, work, status["machines"])
        watcher = Watcher()
        log("%s: baseline %d s" % (scn["name"], scn["baseline_s"]))
        hold(scn["baseline_s"], pipeline, watcher)
        fault = scn.get("fault") or {"kind": "none"}
        fault_at = time.time()
        before = set(watcher.first)
        if fault["kind"] != "none":
            log("%s: inject %s on %s" % (scn["name"], fault["kind"], fault["target"]))
            lab.inject(state_dir, fault["kind"], fault["target"], fault.get("params") or {})
        hold(scn["duration_s"], pipeline, watcher)
        revert_at = time.time()
        if fault["kind"] != "none":
            lab.revert(state_dir)
        hold(scn.get("after_s", 0), pipeline, watcher)
        opened = sorted((t, iid, inc) for iid, (t, inc) in watcher.first.items() if iid not in before)
        case["false_incidents"] = len(before) + (len(opened) if fault["kind"] == "none" else 0)
        case["fault_free_s"] = scn["baseline_s"] + (scn["duration_s"] + scn.get("after_s", 0)
                                                    if fault["kind"] == "none" else 0)
        if fault["kind"] == "none":
            return case
        case["detected"] = bool(opened)
        if opened:
            t, iid, inc = opened[0]
            causes = [entity_id(c["entity"]) for c in inc.get("root_causes", [])]
            want = scn["expect"]["entity"]
            case.update(
                incident=iid, detection_s=round(t - fault_at, 2), root_causes=causes[:5],
                fault_class=inc.get("fault_tree", {}).get("class"),
                ac1=causes[:1] == [want], ac3=want in causes[:3],
                class_ok=inc.get("fault_tree", {}).get("class") == scn["expect"]["class"],
                resolve_s=round(watcher.resolved[iid] - revert_at, 2) if iid in watcher.resolved else None,
                more_incidents=len(opened) - 1)
        return case
    except Exception as e:  # one broken case is reported, the others still run
        case["error"] = str(e)
        return case
    finally:
        if pipeline:
            pipeline.stop()
        lab.down(state_dir)
        subprocess.run(["rm", "-rf", work])


def summarize(cases):
    faulty = [c for c in cases if "detected" in c]
    n = len(faulty)
    frac = lambda k: (sum(1 for c in faulty if c.get(k)) / n) if n else 0.0
    lat = sorted(c["detection_s"] for c in faulty if c.get("detected"))
    hours = sum(c.get("fault_free_s", 0) for c in cases) / 3600.0
    false = sum(c.get("false_incidents", 0) for c in cases)
    return {
        "ac1": round(frac("ac1"), 3), "ac3": round(frac("ac3"), 3),
        "class_accuracy": round(frac("class_ok"), 3), "detection_rate": round(frac("detected"), 3),
        "detection_p50_s": lat[len(lat) // 2] if lat else None, "detection_max_s": lat[-1] if lat else None,
        "false_incidents_per_hour": round(false / hours, 2) if hours else None, "cases": len(cases)}


def main():
    ap = argparse.ArgumentParser(prog="faultline lab run")
    ap.add_argument("scenarios", nargs="+", help="scenario YAML files")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--faultline", default=os.environ.get("FAULTLINE", "faultline"))
    ap.add_argument("--state-dir", default="/run/faultline-lab")
    ap.add_argument("--json-out", default="lab-results.json")
    args = ap.parse_args()
    scenarios = []
    for path in args.scenarios:
        with open(path) as f:
            scn = yaml.safe_load(f)
        for key in ("name", "baseline_s", "duration_s"):
            if key not in scn:
                sys.exit("faultline lab run: %s: missing '%s'" % (path, key))
        scenarios.append(scn)
    cases = []
    for r in range(args.repeat):
        for scn in scenarios:
            case = run_case(scn, args.faultline, args.state_dir, 20)
            case["repeat"] = r + 1
            cases.append(case)
            log(json.dumps(case))
    print("%-24s %-9s %-8s %-5s %-5s %-6s %-26s %s" % (
        "scenario", "detected", "latency", "ac1", "ac3", "class", "first cause", "fault class"))
    for c in cases:
        if "error" in c:
            print("%-24s ERROR %s" % (c["scenario"], c["error"]))
        elif "detected" not in c:
            print("%-24s fault-free: %d false incident(s) in %d s" % (
                c["scenario"], c["false_incidents"], c["fault_free_s"]))
        else:
            print("%-24s %-9s %-8s %-5s %-5s %-6s %-26s %s" % (
                c["scenario"], "yes" if c["detected"] else "no", c.get("detection_s", "-"),
                c.get("ac1", "-"), c.get("ac3", "-"), c.get("class_ok", "-"),
                (c.get("root_causes") or ["-"])[0], c.get("fault_class", "-")))
    s = summarize(cases)
    with open(args.json_out, "w") as f:
        json.dump({"summary": s, "cases": cases}, f, indent=1)
    print(" ".join("%s=%s" % (k, v) for k, v in s.items()))
    return 1 if any("error" in c for c in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
