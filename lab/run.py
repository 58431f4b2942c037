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
import calendar
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lab  # noqa: E402  (lab/lab.py: the system under test)


PR_SET_PDEATHSIG = 1
WARMUP_S = 60  # the default detectors' 12 windows of 5 s
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # In the child before exec: SIGTERM when this runner dies, even by SIGKILL (the lab itself is
    # torn down by its supervisor, which watches this process too).
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def log(msg):
    print("lab: " + msg, file=sys.stderr, flush=True)


class Pipeline:
    """The broker, one agent per machine, the stream and the diagnosis, as child processes."""

    def __init__(self, faultline, work, machines, watch=False, webhook=None):
        """`webhook`: (url, secret), a webhook the diagnosis also delivers incidents to."""
        self.faultline, self.work, self.procs = faultline, work, []
        self.bootstrap = self._start_broker()
        for m in machines:
            self._spawn("agent-" + m["name"], [
                "agent", "--brokers", self.bootstrap, "--node-name", m["name"],
                "--netns", m["netns_path"], "--machine-cgroup", m["cgroup"]], wait_for="agent started")
        with open(os.path.join(work, "stream.yaml"), "w") as f:
            f.write("allowed_lateness_seconds: 2\n")
        out = self._spawn("stream", ["stream", "--brokers", self.bootstrap, "--state-dir",
                                     os.path.join(work, "stream"), "--config", os.path.join(work, "stream.yaml"),
                                     "--commit-interval-ms", "200", "--http-addr", "127.0.0.1:0"],
                          wait_for="http_port=", stream="stdout")
        # /metrics and /situation?alarm=… of the stream, for a look at what the diagnosis saw.
        self.stream_http = "http://127.0.0.1:%s" % _line_value(out, "http_port=")
        config = []
        if webhook:
            with open(os.path.join(work, "diagnosis.yaml"), "w") as f:
                f.write("webhooks:\n  - name: lab\n    url: %s\n    secret: %s\n"
                        % (json.dumps(webhook[0]), json.dumps(webhook[1])))
            config = ["--config", os.path.join(work, "diagnosis.yaml")]
        err = self._spawn("diagnose", ["diagnose", "--brokers", self.bootstrap, "--state-dir",
                                       os.path.join(work, "diagnosis"), "--http-addr", "127.0.0.1:0"]
                          + config + (["--watch"] if watch else []), wait_for="http_port=",
                          stdout_to_us=watch)
        self.http = "http://127.0.0.1:%s" % _line_value(err, "http_port=")

    def _start_broker(self):
        out = self._spawn("broker", ["broker"], wait_for="bootstrap=", stream="stdout")
        return _line_value(out, "bootstrap=")

    def _spawn(self, name, args, wait_for=None, stream="stderr", stdout_to_us=False):
        out = None if stdout_to_us else open(os.path.join(self.work, name + ".out"), "w")
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

    def situation(self, header):
        alarm = header.get("alarm") or {}
        try:
            ent, at = alarm["entity"], alarm["at"]
            t = calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ"))
            url = "%s/situation?alarm=%s:%s:%s&at=%d&lookback=180" % (
                self.stream_http, ent["kind"], ent["name"], alarm["metric"], t)
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except (OSError, KeyError, ValueError):
            return None

    def check_alive(self):
        for name, p in self.procs:
            if p.poll() is not None:
                # Its last words (a sanitizer's report, an uncaught error): the lab's teardown
                # removes the log with the pipeline's directory.
                tail = _read(os.path.join(self.work, name + ".err"))[-3000:]
                raise RuntimeError("%s exited %d: %s" % (name, p.returncode, tail))

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
        self.first, self.resolved, self.last = {}, {}, {}

    def poll(self, pipeline):
        now = time.time()
        for inc in pipeline.incidents() or []:
            iid = inc["id"]
            if iid not in self.first:
                self.first[iid] = (now, inc)
                # What the diagnosis judged, from the stream, for a look afterwards:
                # `faultline attribute --situation` replays it.
                inc["situation_doc"] = pipeline.situation(inc.get("situation") or {})
            self.last[iid] = inc  # its latest state, for how its diagnosis changed while open
            if inc["status"] == "resolved" and iid not in self.resolved:
                self.resolved[iid] = now


def hold(seconds, pipeline, watcher):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pipeline.check_alive()
        watcher.poll(pipeline)
        time.sleep(0.25)


def steps_of(scn):
    """A scenario is one fault (fault, duration_s, after_s, expect) or a sequence of them under
    `steps:`, run one after another on the same system and pipeline after one baseline."""
    if "steps" in scn:
        return scn["steps"]
    return [{k: scn[k] for k in ("fault", "duration_s", "after_s", "expect", "name") if k in scn}]


def load_seen(state_dir, start, end):
    """What the load's users saw between `start` and `end` (unix seconds): from its 5 s reports in
    load.jsonl (each covers the 5 s before its t), the share of failed requests and the median of
    the reports' p50 and p99. None without a report in the span."""
    rows = []
    try:
        with open(os.path.join(state_dir, "load.jsonl")) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if start < r.get("t", 0) - 2.5 <= end:  # the report's middle in the span
                    rows.append(r)
    except OSError:
        return None
    answered = sum(r["ok"] + r["errors"] for r in rows)
    if not rows or not answered:
        return None
    med = lambda v: sorted(v)[len(v) // 2] if v else None
    return {"reports": len(rows), "requests": answered,
            "error_rate": round(sum(r["errors"] for r in rows) / answered, 4),
            "p50_ms": med([r["p50_ms"] for r in rows if r.get("p50_ms") is not None]),
            "p99_ms": med([r["p99_ms"] for r in rows if r.get("p99_ms") is not None])}


def score_step(step, opened, fault_at, revert_at, watcher):
    """One case from the incidents first seen between the step's fault and its end."""
    case = {"expect": step.get("expect", {}), "fault": step.get("fault") or {"kind": "none"}}
    if case["fault"]["kind"] == "none":
        case["false_incidents"] = len(opened)
        case["fault_free_s"] = step["duration_s"] + step.get("after_s", 0)
        case["false_incident_ids"] = [iid for _, iid, _ in opened]
        return case
    case["detected"] = bool(opened)
    if opened:
        t, iid, inc = opened[0]
        causes = [entity_id(c["entity"]) for c in inc.get("root_causes", [])]
        want = step["expect"]["entity"]
        cls = inc.get("fault_tree", {}).get("class")
        case.update(
            incident=iid, detection_s=round(t - fault_at, 2), root_causes=causes[:5], fault_class=cls,
            ac1=causes[:1] == [want], ac3=want in causes[:3], class_ok=cls == step["expect"]["class"],
            resolve_s=round(watcher.resolved[iid] - revert_at, 2) if iid in watcher.resolved else None,
            more_incidents=len(opened) - 1,
            last_root_cause=next((entity_id(c["entity"]) for c in watcher.last[iid].get("root_causes", [])), None),
            last_fault_class=watcher.last[iid].get("fault_tree", {}).get("class"),
            incident_doc=inc)  # as first seen: what scored it
    return case


def run_scenario(scn, faultline, state_dir, rate_default):
    """The scenario's cases: its baseline's false incidents, then one case per step."""
    work = None
    pipeline = None
    cases = []
    # The detectors judge nothing before WARMUP_S of history: only the rest of the baseline counts
    # as time in which a false incident could have opened.
    base = {"scenario": scn["name"], "fault_free_s": max(0, scn["baseline_s"] - WARMUP_S), "baseline": True}
    try:
        status = lab.up(state_dir, rate=scn.get("rate", rate_default), owner=os.getpid(),
                        system=scn.get("system", "shop"))
        work = pipeline_dir(state_dir)
        pipeline = Pipeline(faultline, work, status["machines"])
        watcher = Watcher()
        log("%s: baseline %d s" % (scn["name"], scn["baseline_s"]))
        hold(scn["baseline_s"], pipeline, watcher)
        base["load"] = load_seen(state_dir, time.time() - scn["baseline_s"] + WARMUP_S, time.time())
        base["false_incidents"] = len(watcher.first)
        base["false_incident_ids"] = sorted(watcher.first)
        # Each as first seen, for a look at what opened it (bench/lab_replay.py skips them).
        base["false_incident_docs"] = [watcher.first[i][1] for i in sorted(watcher.first)]
        cases.append(base)
        for i, step in enumerate(steps_of(scn)):
            fault = step.get("fault") or {"kind": "none"}
            name = step.get("name") or (scn["name"] if "steps" not in scn else
                                        "%s/%s" % (fault["kind"], fault.get("target", "-")))
            before = set(watcher.first)
            fault_at = time.time()
            if fault["kind"] != "none":
                log("%s: inject %s on %s" % (name, fault["kind"], fault["target"]))
                lab.inject(state_dir, fault["kind"], fault["target"], fault.get("params") or {})
            hold(step["duration_s"], pipeline, watcher)
            revert_at = time.time()
            if fault["kind"] != "none":
                lab.revert(state_dir)
            hold(step.get("after_s", 0), pipeline, watcher)
            opened = sorted((t, iid, inc) for iid, (t, inc) in watcher.first.items() if iid not in before)
            case = score_step(step, opened, fault_at, revert_at, watcher)
            case["scenario"] = name
            # The harm the load's users saw while the fault was on, beside the baseline's.
            case["load"] = load_seen(state_dir, fault_at, revert_at)
            cases.append(case)
            log(json.dumps(case))
        return cases
    except Exception as e:  # one broken scenario is reported, the others still run
        cases.append({"scenario": scn["name"], "error": str(e)})
        return cases
    finally:
        if pipeline:
            pipeline.stop()
        lab.down(state_dir)  # the pipeline's directory with it


def pipeline_dir(state_dir):
    # Inside the lab's state directory: whoever tears the lab down (this run, or its supervisor
    # when this run was killed) removes the pipeline's logs and state too.
    work = os.path.join(os.path.abspath(state_dir), "pipeline")
    os.makedirs(work)
    return work


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


def demo(args):
    """The README's first command: the lab with its load, the pipeline, one fault after the
    detectors' warm-up, the incident report as the diagnosis prints it (and its resolution), then
    everything torn down. Exit 0 when the incident opened and resolved."""
    pipeline = None
    try:
        status = lab.up(args.state_dir, rate=20, owner=os.getpid())
        work = pipeline_dir(args.state_dir)
        log("the shop is up: %s on %s; load 20 req/s into the gateway"
            % (", ".join("%s (%s)" % (s["name"], s["machine"]) for s in status["services"]),
               ", ".join("%s %s" % (m["name"], m["ip"]) for m in status["machines"])))
        webhook = (args.webhook, args.webhook_secret) if args.webhook else None
        pipeline = Pipeline(args.faultline, work, status["machines"], watch=True, webhook=webhook)
        log("pipeline up (broker %s, an agent per machine, stream, diagnosis at %s); the detectors "
            "learn from %d s of traffic" % (pipeline.bootstrap, pipeline.http, args.baseline))
        watcher = Watcher()
        hold(args.baseline, pipeline, watcher)
        if watcher.first:
            log("an incident opened before any fault: %s" % ", ".join(sorted(watcher.first)))
        kind, target = args.fault.split(":", 1)
        params = dict(p.split("=", 1) for p in args.param)
        log("injecting %s on %s %s" % (kind, target, params or ""))
        lab.inject(args.state_dir, kind, target, params)
        fault_at, before = time.time(), set(watcher.first)
        end = time.monotonic() + args.max_wait
        while time.monotonic() < end and not set(watcher.first) - before:
            hold(0.25, pipeline, watcher)
        new = sorted(set(watcher.first) - before)
        if not new:
            log("no incident within %d s of the fault" % args.max_wait)
            return 1
        log("incident %s opened %.1f s after the fault; holding it %d s more, then reverting"
            % (new[0], watcher.first[new[0]][0] - fault_at, args.hold))
        hold(args.hold, pipeline, watcher)
        lab.revert(args.state_dir)
        revert_at = time.time()
        end = time.monotonic() + args.max_wait
        while time.monotonic() < end and new[0] not in watcher.resolved:
            hold(0.25, pipeline, watcher)
        if new[0] not in watcher.resolved:
            log("the incident did not resolve within %d s of the revert" % args.max_wait)
            return 1
        log("resolved %.1f s after the revert; tearing down" % (watcher.resolved[new[0]] - revert_at))
        return 0
    finally:
        if pipeline:
            pipeline.stop()
        lab.down(args.state_dir)


def check_scenario(scn):
    """None, or what is wrong with the scenario, before anything starts."""
    if not isinstance(scn, dict):
        return "not a mapping"
    for key in ("name", "baseline_s"):
        if key not in scn:
            return "missing '%s'" % key
    if "steps" in scn and not (isinstance(scn["steps"], list) and scn["steps"]):
        return "'steps' must be a non-empty list"
    try:
        lab.use_system(scn.get("system", "shop"))
    except lab.LabError as e:
        return "system: %s" % e
    for i, step in enumerate(steps_of(scn)):
        where = "steps[%d]" % i if "steps" in scn else "the scenario"
        if not isinstance(step, dict):
            return "%s: not a mapping" % where
        if "duration_s" not in step:
            return "%s: missing 'duration_s'" % where
        fault = step.get("fault") or {"kind": "none"}
        if not isinstance(fault, dict) or "kind" not in fault:
            return "%s: 'fault' must be a mapping with 'kind'" % where
        if fault["kind"] not in lab.FAULTS and fault["kind"] != "none":
            return "%s: unknown fault kind '%s' (known: none, %s)" % (where, fault["kind"], ", ".join(sorted(lab.FAULTS)))
        if fault["kind"] != "none":
            if "target" not in fault:
                return "%s: the fault has no 'target'" % where
            exp = step.get("expect") or {}
            if "entity" not in exp or "class" not in exp:
                return "%s: 'expect' needs 'entity' and 'class' for a fault" % where
            try:
                lab.check_target(fault["kind"], fault["target"])
            except lab.LabError as e:
                return "%s: %s" % (where, e)
    return None


def main():
    if sys.argv[1:2] == ["--demo"]:
        ap = argparse.ArgumentParser(prog="faultline lab demo")
        ap.add_argument("--demo", action="store_true")
        ap.add_argument("--faultline", default=os.environ.get("FAULTLINE", "faultline"))
        ap.add_argument("--state-dir", default="/run/faultline-lab")
        ap.add_argument("--fault", default="slow:catalog", help="KIND:TARGET (default slow:catalog)")
        ap.add_argument("--param", action="append", default=[], help="NAME=VALUE of the fault")
        ap.add_argument("--baseline", type=int, default=75, help="seconds before the fault (default 75)")
        ap.add_argument("--hold", type=int, default=10, help="seconds the fault stays after the incident")
        ap.add_argument("--max-wait", type=int, default=60)
        ap.add_argument("--webhook", help="also deliver incidents to this URL (Standard Webhooks)")
        ap.add_argument("--webhook-secret", default=os.environ.get("FAULTLINE_WEBHOOK_SECRET", "faultline-demo"),
                        help="the webhook's secret (default $FAULTLINE_WEBHOOK_SECRET or faultline-demo)")
        return demo(ap.parse_args())
    ap = argparse.ArgumentParser(prog="faultline lab run")
    ap.add_argument("scenarios", nargs="+", help="scenario YAML files")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--faultline", default=os.environ.get("FAULTLINE", "faultline"))
    ap.add_argument("--state-dir", default="/run/faultline-lab")
    ap.add_argument("--json-out", default="lab-results.json")
    args = ap.parse_args()
    scenarios = []
    for path in args.scenarios:
        try:
            with open(path) as f:
                scn = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            sys.exit("faultline lab run: %s: %s" % (path, e))
        err = check_scenario(scn)
        if err:
            sys.exit("faultline lab run: %s: %s" % (path, err))
        scenarios.append(scn)
    cases = []
    for r in range(args.repeat):
        for scn in scenarios:
            for case in run_scenario(scn, args.faultline, args.state_dir, 20):
                case["repeat"] = r + 1
                cases.append(case)
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
