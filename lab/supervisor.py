#!/usr/bin/env python3
"""Keeps the lab's processes running: the parent of every service, the load and the burners.

  supervisor.py --state-dir DIR [--max-seconds S]

Desired state is one JSON file per process in DIR/procs/ (written by lab.py):
  {"name", "argv", "netns": "/run/netns/..." | null, "cgroups": [dir, ...], "log": file,
   "restart": "always" | "on-failure" | "never", "group": 0..3}
A process starts in its cgroups (its pid written to each cgroup.procs before exec) and network
namespace (nsenter). One that dies is started again after 1 s as its restart policy says, unless
DIR/down/<name> exists. One whose file is removed is stopped (SIGTERM, SIGKILL after 2 s). What
runs is published in DIR/pids.json (pid, start time in clock ticks, restarts, last exit);
restarts go to DIR/logs/supervisor.log.

Why a process of its own: the CLI exits after each command, and only a parent can see a child
die at once and reap it (PID 1 may not: then every orphan that dies stays a zombie).

SIGTERM stops everything, group by group in ascending order (load, burners, services, gateway),
then exits. So does reaching --max-seconds. Children get SIGKILL if the supervisor dies anyway.
"""
import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

RESTART_DELAY_S = 1.0
STOP_GRACE_S = 2.0
TICK_S = 0.1
PR_SET_PDEATHSIG = 1


def start_ticks(pid):
    """Field 22 of /proc/PID/stat: with the pid, it names one process even after pid reuse."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class Supervisor:
    def __init__(self, state_dir, max_seconds, owner=None):
        self.dir = state_dir
        self.owner = owner   # (pid, start ticks) of the process whose lab this is, or None
        self.deadline = time.monotonic() + max_seconds
        self.specs = {}      # name -> spec
        self.procs = {}      # name -> {"popen", "stop_at"} while running
        self.info = {}       # name -> published record
        self.dead_at = {}    # name -> monotonic time it died (for the restart delay)
        self.stopping = False
        self.changed = True
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.log_file = open(os.path.join(state_dir, "logs", "supervisor.log"), "a", buffering=1)

    def log(self, msg):
        self.log_file.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))

    def load_specs(self):
        specs = {}
        d = os.path.join(self.dir, "procs")
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(d, name)) as f:
                    spec = json.load(f)
                specs[spec["name"]] = spec
            except (OSError, ValueError, KeyError):
                continue  # half-written: lab.py writes by rename, so only a foreign file
        self.specs = specs

    def is_down(self, name):
        return os.path.exists(os.path.join(self.dir, "down", name))

    def spawn(self, spec):
        cgroup_procs = [os.path.join(c, "cgroup.procs") for c in spec.get("cgroups", [])]
        libc = self.libc

        def in_child():
            # Runs between fork and exec: the cgroups first, so that nothing the process does
            # is charged elsewhere.
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            for p in cgroup_procs:
                with open(p, "w") as f:
                    f.write(str(os.getpid()))

        argv = list(spec["argv"])
        if spec.get("netns"):
            argv = ["nsenter", "--net=" + spec["netns"], "--"] + argv
        out = open(spec["log"], "a")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 preexec_fn=in_child, start_new_session=True, cwd=self.dir)
        except (OSError, subprocess.SubprocessError) as e:
            self.log("%s: could not start: %s" % (spec["name"], e))
            self.dead_at[spec["name"]] = time.monotonic()
            return
        finally:
            out.close()
        name = spec["name"]
        rec = self.info.setdefault(name, {"restarts": -1})
        rec.update(pid=p.pid, start_ticks=start_ticks(p.pid), started_at=round(time.time(), 3),
                   state="running", group=spec.get("group", 2))
        rec["restarts"] += 1
        self.procs[name] = {"popen": p, "stop_at": None}
        self.changed = True
        if rec["restarts"]:
            self.log("%s: restarted as pid %d (restart %d)" % (name, p.pid, rec["restarts"]))

    def oom_kills(self, spec):
        total = 0
        for c in spec.get("cgroups", []):
            for name, key in (("memory.oom_control", "oom_kill"), ("memory.events", "oom_kill")):
                try:
                    with open(os.path.join(c, name)) as f:
                        for line in f:
                            k, _, v = line.partition(" ")
                            if k == key:
                                total += int(v)
                except (OSError, ValueError):
                    pass
        return total

    def reap(self):
        for name, proc in list(self.procs.items()):
            rc = proc["popen"].poll()
            if rc is None:
                continue
            del self.procs[name]
            how = "signal %d" % -rc if rc < 0 else "status %d" % rc
            rec = self.info[name]
            rec.update(state="exited", last_exit=how, pid=None, start_ticks=None)
            spec = self.specs.get(name)
            if spec and rc == -signal.SIGKILL and spec.get("cgroups"):
                how += " (cgroup oom_kill count %d)" % self.oom_kills(spec)
            self.log("%s: exited, %s" % (name, how))
            self.dead_at[name] = time.monotonic()
            self.changed = True

    def wants_running(self, name, spec):
        rec = self.info.get(name)
        if rec is None:
            return True  # never started
        policy = spec.get("restart", "always")
        if policy == "never":
            return False
        if policy == "on-failure" and rec.get("last_exit") == "status 0":
            return False
        return True

    def reconcile(self):
        now = time.monotonic()
        for name, spec in self.specs.items():
            if name in self.procs:
                continue
            down = self.is_down(name)
            rec = self.info.get(name)
            if down:
                if rec is not None and rec.get("state") != "down":
                    rec["state"] = "down"
                    self.changed = True
                continue
            if not self.wants_running(name, spec):
                continue
            if now - self.dead_at.get(name, -1e9) < RESTART_DELAY_S:
                continue
            self.spawn(spec)
        for name, proc in self.procs.items():
            if name not in self.specs:
                self.stop(name, proc, now)
        for name in list(self.info):
            if name not in self.specs and name not in self.procs:
                del self.info[name]
                self.dead_at.pop(name, None)
                self.changed = True

    def stop(self, name, proc, now):
        if proc["stop_at"] is None:
            proc["stop_at"] = now
            self.signal(proc["popen"], signal.SIGTERM)
        elif now - proc["stop_at"] > STOP_GRACE_S:
            self.signal(proc["popen"], signal.SIGKILL)

    @staticmethod
    def signal(popen, sig):
        try:
            popen.send_signal(sig)
        except OSError:
            pass

    def publish(self):
        if not self.changed:
            return
        path = os.path.join(self.dir, "pids.json")
        with open(path + ".tmp", "w") as f:
            json.dump({"supervisor": os.getpid(), "procs": self.info}, f, indent=1)
        os.replace(path + ".tmp", path)
        self.changed = False

    def stop_all(self):
        for group in sorted({p.get("group", 2) for p in self.info.values()}):
            members = [n for n in self.procs if self.info[n].get("group", 2) == group]
            start = time.monotonic()
            for n in members:
                self.signal(self.procs[n]["popen"], signal.SIGTERM)
            while members and time.monotonic() - start < STOP_GRACE_S + 1:
                if time.monotonic() - start > STOP_GRACE_S:
                    for n in members:
                        self.signal(self.procs[n]["popen"], signal.SIGKILL)
                self.reap()
                members = [n for n in members if n in self.procs]
                time.sleep(0.05)
        for proc in self.procs.values():  # a SIGKILLed child in uninterruptible sleep: wait a bit more
            try:
                proc["popen"].wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.reap()
        self.publish()

    def owner_gone(self):
        if self.owner is None:
            return False
        try:  # gone, a zombie, or its pid reused
            with open("/proc/%d/stat" % self.owner[0]) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return fields[0] in ("Z", "X") or int(fields[19]) != self.owner[1]
        except (OSError, IndexError, ValueError):
            return True

    def run(self):
        """Returns True when the owner died: the caller then tears the whole lab down."""
        while not self.stopping and time.monotonic() < self.deadline and not self.owner_gone():
            self.load_specs()
            self.reap()
            self.reconcile()
            self.publish()
            time.sleep(TICK_S)
        gone = not self.stopping and self.owner_gone()
        self.log("stopping (%s)" % ("SIGTERM" if self.stopping else
                                    "owner pid %d exited" % self.owner[0] if gone else "--max-seconds reached"))
        self.stop_all()
        self.log("stopped")
        return gone


def main():
    ap = argparse.ArgumentParser(prog="supervisor.py")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--max-seconds", type=float, default=4 * 3600)
    ap.add_argument("--owner", help="PID:START_TICKS of the process that brought the lab up (a scenario "
                    "run): when it dies, even by SIGKILL, the supervisor tears the whole lab down")
    args = ap.parse_args()
    owner = tuple(int(x) for x in args.owner.split(":")) if args.owner else None
    sup = Supervisor(os.path.abspath(args.state_dir), args.max_seconds, owner)

    def on_signal(signum, frame):
        sup.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sup.log("started, pid %d" % os.getpid())
    if sup.run():
        # This process becomes `lab.py down`: networks, disk, cgroups and the state directory go too.
        python = os.path.realpath("/proc/self/exe")
        lab_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lab.py")
        sup.log_file.close()
        os.execv(python, [python, lab_py, "down", "--state-dir", sup.dir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
