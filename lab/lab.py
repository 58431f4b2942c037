#!/usr/bin/env python3
"""The fault-injection lab's system under test: three emulated machines, eight services, a load.

  lab.py up [--state-dir DIR] [--rate R] [--max-seconds S]
  lab.py status [--state-dir DIR]
  lab.py inject [--state-dir DIR] --kind KIND --target T [--param k=v ...]
  lab.py revert [--state-dir DIR]
  lab.py down [--state-dir DIR]
  lab.py check-clean

A machine is a network namespace fllab-mN (198.18.0.1N on the bridge fllab0) plus a cgroup
subtree faultline-lab/mN with 1 CPU and 1 GiB; each service runs in its own child cgroup
faultline-lab/mN/<service>, its "container". The shape, the fault kinds and how each is made are in
README.md. Everything is named with the fllab prefix (the cgroups faultline-lab), so that `down`
finds it all even without the state directory (default /run/faultline-lab).

The same operations are functions for the scenario runner (run.py): up(), status(), inject(),
revert(), down(), check_clean(), each taking the state directory; they raise LabError.
"""
import argparse
import contextlib
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_STATE_DIR = "/run/faultline-lab"
NETNS_DIR = "/run/netns"
PREFIX = "fllab"
CGROUP_NAME = "faultline-lab"
BRIDGE = "fllab0"
BRIDGE_ADDR = "198.18.0.1"
MACHINES = {"m1": "198.18.0.11", "m2": "198.18.0.12", "m3": "198.18.0.13"}
MACHINE_CPUS = 1
MACHINE_MEMORY = 1 << 30
CFS_PERIOD_US = 100000
DISK_IMAGE = "fllab-disk.img"  # the name `down` finds the loop device by
DISK_BYTES = 128 << 20
SUPERVISOR_COMM = "fllab-super"
MARKER = ".fllab-state"  # `down` removes only a directory that holds it
BURNER_SECONDS = 600

import systems  # noqa: E402  (lab/systems.py: the shop and the ledger)

# The system in use (use_system): its instances, each a service on one machine, by instance name
# (the service's name, or service@machine for a replicated one).
SYSTEM = None
SYSTEM_NAME = None
INSTANCES = {}
SERVICE_NAMES = []
DATA_SERVICES = ()
ENTRY = None
EDGES = []
ALIASES = {}  # faultline names an nginx gateway by its process, nginx


class Instance:
    def __init__(self, name, service, machine, spec):
        self.name, self.service, self.machine = name, service, machine
        self.lang, self.port, self.routes = spec["lang"], spec["port"], spec["routes"]
        self.keep_alive = spec.get("keep_alive", False)
        self.timeout_ms = spec.get("timeout_ms", 2000)
        self.retries = spec.get("retries", 0)

    @property
    def rel(self):  # its cgroup, its "container", under the lab's
        return "%s/%s" % (self.machine, self.service)


def use_system(name):
    """Makes `name` (a key of systems.SYSTEMS) the system every function below works on."""
    global SYSTEM, SYSTEM_NAME, INSTANCES, SERVICE_NAMES, DATA_SERVICES, ENTRY, EDGES, ALIASES
    if name not in systems.SYSTEMS:
        raise LabError("unknown system %r (expected one of %s)" % (name, ", ".join(systems.SYSTEMS)))
    SYSTEM, SYSTEM_NAME = systems.SYSTEMS[name], name
    INSTANCES, SERVICE_NAMES = {}, list(SYSTEM["services"])
    for service, spec in SYSTEM["services"].items():
        for m in spec["machines"]:
            inst = service if len(spec["machines"]) == 1 else "%s@%s" % (service, m)
            INSTANCES[inst] = Instance(inst, service, m, spec)
    DATA_SERVICES, ENTRY = tuple(SYSTEM["data"]), SYSTEM["entry"]
    EDGES = sorted({(caller, step[0]) for caller, spec in SYSTEM["services"].items()
                    for steps in spec["routes"].values() for step in steps if isinstance(step, tuple)})
    ALIASES = {"nginx": s for s, spec in SYSTEM["services"].items() if spec["lang"] == "nginx"}


# Stop order (supervisor.py stops by ascending group): the load, burners, services, the gateway.
GROUP_LOAD, GROUP_BURNER, GROUP_SERVICE, GROUP_GATEWAY = 0, 1, 2, 3


class LabError(Exception):
    pass


class _Interrupted(BaseException):  # like KeyboardInterrupt: no `except Exception` swallows it
    pass


use_system("shop")


def log(msg):
    print("lab: " + msg, file=sys.stderr, flush=True)


def _sh(args, check=True, input=None, timeout=30):
    try:
        r = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        if check:
            raise LabError("%s: %s" % (" ".join(args), e)) from None
        return subprocess.CompletedProcess(args, 127, "", str(e))
    if check and r.returncode != 0:
        raise LabError("%s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def _netns_path(machine):
    return os.path.join(NETNS_DIR, PREFIX + "-" + machine)


def _in_netns(machine, args):
    return ["nsenter", "--net=" + _netns_path(machine), "--"] + args


def _wait(cond, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise LabError("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(interval)


def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write(path, text):
    # By rename: the supervisor and the services read these files while they change.
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _write_json(path, obj):
    _write(path, json.dumps(obj, indent=1) + "\n")


def _service(name):
    name = ALIASES.get(name, name)
    if name not in SERVICE_NAMES:
        raise LabError("unknown service %r (expected one of %s)" % (name, ", ".join(SERVICE_NAMES)))
    return name


def _instances(target):
    """The instances a fault's target names: SERVICE (all of its instances) or SERVICE@MACHINE."""
    service, at, machine = target.partition("@")
    service = _service(service)
    found = [i for i in INSTANCES.values() if i.service == service and (not at or i.machine == machine)]
    if not found:
        raise LabError("--target %r: %s has no instance on %s (it runs on %s)" % (
            target, service, machine, ", ".join(SYSTEM["services"][service]["machines"])))
    return found


def _addr(inst):
    return MACHINES[INSTANCES[inst].machine], INSTANCES[inst].port


def _comm(inst):
    return "nginx" if INSTANCES[inst].lang == "nginx" else INSTANCES[inst].service


def _urls(callee, path):
    """A step's call: every instance of callee, '|'-separated (the caller takes them in turn)."""
    return "|".join("http://%s:%d%s" % (_addr(i.name) + (path,))
                    for i in INSTANCES.values() if i.service == callee)


# --- processes ----------------------------------------------------------------------------------

def _proc_stat(pid):
    """(state, start time in clock ticks) of a live or zombie process, None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid, ticks=None):
    st = _proc_stat(pid) if pid else None
    return bool(st) and st[0] != "Z" and (ticks is None or st[1] == ticks)


def _proc_comm(pid):
    return _read("/proc/%d/comm" % pid).strip()


def _reap(pid):
    # Only our own children can be reaped (the supervisor, when up() ran in this process).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _terminate(pids, grace=2.0):
    """SIGTERM, then SIGKILL after `grace` s; returns the pids still alive after that."""
    pids = [p for p in pids if _alive(p)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        for p in pids:
            with contextlib.suppress(OSError):
                os.kill(p, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            for p in pids:
                _reap(p)
            pids = [p for p in pids if _alive(p)]
            if pids:
                time.sleep(0.05)
        if not pids:
            break
    return pids


def _all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


# --- cgroups ------------------------------------------------------------------------------------

def _cgroup_mounts():
    """[(mount point, type, options)] of every cgroup and cgroup2 mount."""
    out = []
    for line in _read("/proc/self/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])
            out.append((point, parts[2], parts[3].split(",")))
    return out


class Cgroups:
    """The faultline-lab subtree in each v1 hierarchy the lab uses, or in the unified v2 one.

    v1 wins when it has the controllers (a hybrid host's unified mount has none of them).
    """
    V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids")
    V2_CONTROLLERS = ("cpu", "memory", "io", "pids")

    def __init__(self):
        mounts = _cgroup_mounts()
        self.v1 = {}
        for point, kind, opts in mounts:
            if kind == "cgroup":
                for c in self.V1_CONTROLLERS:
                    if c in opts:
                        self.v1.setdefault(c, point)
        unified = [p for p, kind, _ in mounts if kind == "cgroup2"]
        if self.v1.get("cpu") and self.v1.get("memory"):
            self.version, self.v2 = 1, None
        elif unified and os.path.exists(os.path.join(unified[0], "cgroup.controllers")):
            self.version, self.v2 = 2, unified[0]
        else:
            raise LabError("no usable cgroup mount (need v1 cpu and memory hierarchies, or cgroup2)")

    def roots(self):
        if self.version == 2:
            return [self.v2]
        return sorted(set(self.v1.values()))

    def dirs(self, rel=""):
        return [os.path.join(r, CGROUP_NAME, rel).rstrip("/") for r in self.roots()]

    def path(self, controller, rel):
        root = self.v2 if self.version == 2 else self.v1[controller]
        return os.path.join(root, CGROUP_NAME, rel).rstrip("/")

    def create(self, rel):
        if self.version == 2:
            self._enable_v2(os.path.dirname(self.path("cpu", rel)))
        for d in self.dirs(rel):
            os.makedirs(d, exist_ok=True)

    def _enable_v2(self, parent):
        # A v2 cgroup has a controller's files only if its parent enables it for its children;
        # enable just what is missing, from the mount down.
        chain, d = [], parent
        while d.startswith(self.v2) and d != os.path.dirname(self.v2):
            chain.append(d)
            d = os.path.dirname(d)
        for d in reversed(chain):
            os.makedirs(d, exist_ok=True)
            have = _read(os.path.join(d, "cgroup.subtree_control")).split()
            for c in self.V2_CONTROLLERS:
                if c not in have:
                    try:
                        with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
                            f.write("+" + c)
                    except OSError as e:
                        raise LabError("%s/cgroup.subtree_control: cannot enable %s: %s" % (d, c, e))

    def write(self, controller, rel, name, value):
        p = os.path.join(self.path(controller, rel), name)
        try:
            with open(p, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise LabError("%s: cannot write %r: %s" % (p, value, e)) from None

    def read(self, controller, rel, name):
        return _read(os.path.join(self.path(controller, rel), name))

    def set_cpu_quota(self, rel, cpus):
        """cpus: a CPU allotment (0.2 = 20% of one CPU per period), None for unlimited."""
        if self.version == 2:
            q = "max" if cpus is None else str(int(cpus * CFS_PERIOD_US))
            self.write("cpu", rel, "cpu.max", "%s %d" % (q, CFS_PERIOD_US))
        else:
            self.write("cpu", rel, "cpu.cfs_period_us", CFS_PERIOD_US)
            self.write("cpu", rel, "cpu.cfs_quota_us", -1 if cpus is None else int(cpus * CFS_PERIOD_US))

    def set_memory_limit(self, rel, limit_bytes):
        if self.version == 2:
            self.write("memory", rel, "memory.max", "max" if limit_bytes is None else limit_bytes)
        else:
            self.write("memory", rel, "memory.limit_in_bytes", -1 if limit_bytes is None else limit_bytes)

    def memory_usage(self, rel):
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int(self.read("memory", rel, name) or 0)

    def set_iops(self, rel, devno, iops):
        """Read and write IOPS of the device "MAJ:MIN", None for unlimited."""
        if self.version == 2:
            v = "max" if iops is None else str(iops)
            self.write("io", rel, "io.max", "%s riops=%s wiops=%s" % (devno, v, v))
        else:
            for name in ("blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"):
                self.write("blkio", rel, name, "%s %d" % (devno, 0 if iops is None else iops))

    def stats(self, rel):
        """CPU throttling, memory and OOM kills of one cgroup, for status and the logs."""
        def kv(text):
            pairs = (line.partition(" ") for line in text.splitlines())
            return {k: int(v) for k, _, v in pairs if v.strip().isdigit()}
        cpu = kv(self.read("cpu", rel, "cpu.stat"))
        out = {"nr_periods": cpu.get("nr_periods"), "nr_throttled": cpu.get("nr_throttled"),
               "throttled_ms": (cpu["throttled_usec"] // 1000 if "throttled_usec" in cpu
                                else cpu.get("throttled_time", 0) // 1000000),
               "memory_bytes": self.memory_usage(rel)}
        mem = kv(self.read("memory", rel, "memory.events" if self.version == 2 else "memory.oom_control"))
        out["oom_kill"] = mem.get("oom_kill")
        return out

    def procs(self, rel=""):
        """Every pid in the subtree, in any hierarchy: ours by construction."""
        pids = set()
        for top in self.dirs(rel):
            for d, _, _ in os.walk(top):
                pids.update(int(p) for p in _read(os.path.join(d, "cgroup.procs")).split() if p.isdigit())
        return pids


def _lab_cgroup_tops():
    """faultline-lab in every cgroup mount, whatever the layout (also for check-clean)."""
    return [os.path.join(p, CGROUP_NAME) for p, _, _ in _cgroup_mounts()
            if os.path.isdir(os.path.join(p, CGROUP_NAME))]


def _remove_cgroup_tree(top, rel="", timeout=5.0):
    """rmdir children first; retries while exiting processes still populate the cgroups."""
    root = os.path.join(top, rel).rstrip("/")
    deadline = time.monotonic() + timeout
    while os.path.isdir(root):
        busy = []
        for d, _, _ in sorted(os.walk(root), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                busy.append("%s: %s" % (d, e.strerror))
        if not busy:
            return None
        if time.monotonic() > deadline:
            return "; ".join(busy)
        time.sleep(0.1)
    return None


def _lab_procs_by_cgroup():
    """Pids whose /proc/PID/cgroup names faultline-lab in some hierarchy (zombies too)."""
    out = []
    for pid in _all_pids():
        if re.search(r":/%s(/|$)" % CGROUP_NAME, _read("/proc/%d/cgroup" % pid), re.M):
            out.append(pid)
    return out


# --- state --------------------------------------------------------------------------------------

class Lab:
    """One state directory: the paths in it and what `up` recorded."""

    def __init__(self, state_dir):
        self.dir = os.path.abspath(state_dir or DEFAULT_STATE_DIR)

    def p(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def state(self):
        return _read_json(self.p("state.json"))

    def save_state(self, st):
        _write_json(self.p("state.json"), st)

    def pids(self):
        return (_read_json(self.p("pids.json")) or {}).get("procs", {})

    def running(self, name):
        rec = self.pids().get(name) or {}
        if rec.get("state") == "running" and _alive(rec.get("pid"), rec.get("start_ticks")):
            return rec["pid"]
        return None

    def supervisor_alive(self):
        st = self.state or {}
        sup = st.get("supervisor") or {}
        return _alive(sup.get("pid"), sup.get("start_ticks"))

    @contextlib.contextmanager
    def locked(self):
        # inject, revert, up and down from several shells must not interleave.
        os.makedirs(self.dir, exist_ok=True)
        with open(self.p("lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def add_proc(self, name, argv, machine=None, cgroup=None, restart="always", group=GROUP_SERVICE):
        cg = Cgroups()
        spec = {"name": name, "argv": argv, "netns": _netns_path(machine) if machine else None,
                "cgroups": cg.dirs(cgroup) if cgroup else [], "log": self.p("logs", name + ".log"),
                "restart": restart, "group": group}
        _write_json(self.p("procs", name + ".json"), spec)

    def remove_proc(self, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.p("procs", name + ".json"))

    def wait_running(self, names, timeout):
        def ready():
            if not self.supervisor_alive():
                raise LabError("the supervisor exited: %s" % _tail(self.p("logs", "supervisor.log")))
            return all(self.running(n) for n in names)
        _wait(ready, timeout, "%s to run (see %s)" % (", ".join(names), self.p("logs")))

    def wait_gone(self, names, timeout):
        _wait(lambda: not any(self.running(n) for n in names), timeout, "%s to stop" % ", ".join(names))


def _tail(path, n=5):
    return " | ".join(_read(path).strip().splitlines()[-n:]) or "(empty)"


def _port_open(ip, port, timeout=0.3):
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- network ------------------------------------------------------------------------------------

def _disable_ipv6(path_conf):
    # The lab's links carry 198.18.0.0/24 only: no IPv6 router solicitations or DAD on them.
    with contextlib.suppress(OSError):
        with open(path_conf, "w") as f:
            f.write("1")


def _network_up(st):
    _sh(["ip", "link", "add", BRIDGE, "type", "bridge"])
    _disable_ipv6("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % BRIDGE)
    _sh(["ip", "addr", "add", BRIDGE_ADDR + "/24", "dev", BRIDGE])
    _sh(["ip", "link", "set", BRIDGE, "up"])
    for m, ip in MACHINES.items():
        ns, host_if = PREFIX + "-" + m, PREFIX + "-" + m + "h"
        _sh(["ip", "netns", "add", ns])
        for conf in ("all", "default"):
            _sh(_in_netns(m, ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6" % conf]), check=False)
        _sh(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns])
        _disable_ipv6("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % host_if)
        _sh(["ip", "link", "set", host_if, "master", BRIDGE, "up"])
        _sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        _sh(["ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"])
        _sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        _sh(["ip", "-n", ns, "route", "add", "default", "via", BRIDGE_ADDR])
    st["iptables_rule"] = _allow_bridged_traffic()


_FORWARD_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-m", "comment", "--comment", PREFIX, "-j", "ACCEPT"]


def _allow_bridged_traffic():
    """With br_netfilter on, bridged packets cross iptables' FORWARD chain: a DROP policy there
    (Docker's, for one) would cut the machines apart. Only then one rule, removed by down."""
    if _read("/proc/sys/net/bridge/bridge-nf-call-iptables").strip() != "1" or not shutil.which("iptables"):
        return False
    policy = _sh(["iptables", "-S", "FORWARD"], check=False).stdout.splitlines()[:1]
    if policy != ["-P FORWARD DROP"]:
        return False
    _sh(["iptables", "-I"] + _FORWARD_RULE)
    return True


def _network_down(errors):
    for ns in _sh(["ip", "netns", "list"], check=False).stdout.split():
        if ns.startswith(PREFIX):
            r = _sh(["ip", "netns", "del", ns], check=False)
            if r.returncode:
                errors.append("ip netns del %s: %s" % (ns, r.stderr.strip()))
    # A deleted namespace takes its veth ends with it, asynchronously; then the bridge.
    with contextlib.suppress(LabError):
        _wait(lambda: not [l for l in _links() if l != BRIDGE], 5, "the lab's veth links to go")
    for link in _links():
        r = _sh(["ip", "link", "del", link], check=False)
        if r.returncode and link in _links():
            errors.append("ip link del %s: %s" % (link, r.stderr.strip()))
    for _ in range(5):
        if not shutil.which("iptables") or _sh(["iptables", "-C"] + _FORWARD_RULE, check=False).returncode:
            break
        _sh(["iptables", "-D"] + _FORWARD_RULE, check=False)


def _links():
    out = _sh(["ip", "-o", "link", "show"], check=False).stdout
    names = [l.split(":")[1].strip().split("@")[0] for l in out.splitlines() if ":" in l]
    return [n for n in names if n.startswith(PREFIX)]


# --- disk ---------------------------------------------------------------------------------------

def _disk_up(lab, st):
    """A 128 MiB ext4 loop device as the store's data dir, so the disk fault has a device of its
    own to throttle. Best effort: without it the store uses a plain directory."""
    img, mnt = lab.p(DISK_IMAGE), lab.p("disk")
    os.makedirs(mnt, exist_ok=True)
    try:
        with open(img, "wb") as f:
            f.truncate(DISK_BYTES)
        _sh(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", img], timeout=60)
        # Direct I/O to the image: the loop device's own requests then wait on the device under
        # it, charged to the cgroup of the I/O's issuer, which is what the disk fault throttles.
        dev = _sh(["losetup", "--find", "--show", "--direct-io=on", img]).stdout.strip()
        st["disk"] = {"loop": dev, "image": img, "mount": mnt}
        backing = os.stat(img).st_dev
        if os.major(backing):  # 0: tmpfs and the like, no block device to hold up
            st["disk"]["backing_devno"] = "%d:%d" % (os.major(backing), os.minor(backing))
        lab.save_state(st)
        _sh(["mount", "-t", "ext4", dev, mnt])
        rdev = os.stat(dev).st_rdev
        st["disk"]["devno"] = "%d:%d" % (os.major(rdev), os.minor(rdev))
        st["data_dir"] = os.path.join(mnt, "data")
    except (OSError, LabError) as e:
        log("disk: no loop device (%s); the store uses a plain directory, no disk fault" % e)
        st["data_dir"] = lab.p("data")
    os.makedirs(st["data_dir"], exist_ok=True)


def _loop_devices():
    """[(device, backing file)] of loop devices backed by a lab disk image."""
    r = _sh(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], check=False)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and DISK_IMAGE in parts[1]:
            out.append((parts[0], parts[1].strip()))
    return out


def _mounts_of(dev):
    return [l.split()[1] for l in _read("/proc/self/mounts").splitlines() if l.split()[:1] == [dev]]


def _disk_down(errors):
    for dev, _ in _loop_devices():
        for mnt in _mounts_of(dev):
            if _sh(["umount", mnt], check=False).returncode:
                _sh(["umount", "-l", mnt], check=False)  # lazily, rather than leave the device
        r = _sh(["losetup", "-d", dev], check=False)
        if r.returncode:
            errors.append("losetup -d %s: %s" % (dev, r.stderr.strip()))


# --- programs -----------------------------------------------------------------------------------

def _binaries():
    # This interpreter, by /proc (sys.executable is found from argv[0] on PATH: a "python3" exec'd
    # by name may resolve to a different python3, a pyenv shim, say, that no symlink can stand for).
    found = {"python": os.path.realpath("/proc/self/exe")}
    langs = {i.lang for i in INSTANCES.values()} & {"node", "nginx", "go"}
    for name in sorted(langs) + ["nsenter", "nft", "tc", "ip", "iptables", "losetup", "mkfs.ext4"]:
        path = shutil.which(name)
        if not path:
            raise LabError("%s: not found on PATH (scripts/setup.sh installs it)" % name)
        found[name] = os.path.realpath(path)
    return found


def _link_bin(lab, name, target):
    # The process's comm is its executable's name: faultline names services by it.
    path = lab.p("bin", name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.symlink(target, path)
    return path


def _nginx_conf(lab):
    gw = INSTANCES[ENTRY]
    ip, port = _addr(ENTRY)
    locations = "".join("    location %s { proxy_pass %s; }\n" % (path, _urls(*steps[0]))
                        for path, steps in gw.routes.items())
    d = lab.p("nginx")
    return """# Generated by lab.py. One process (master_process off), so that one pid is the gateway.
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {logs}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log {logs}/nginx-access.log;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  proxy_http_version 1.1;
  proxy_set_header Connection close;
  proxy_connect_timeout 2s;
  proxy_send_timeout 2500ms;
  proxy_read_timeout 2500ms;
  proxy_next_upstream off;
  server {{
    listen {ip}:{port};
{locations}    location / {{ return 404; }}
  }}
}}
""".format(d=d, logs=lab.p("logs"), ip=ip, port=port, locations=locations)


def _service_argv(lab, st, name):
    inst = INSTANCES[name]
    if inst.lang == "nginx":
        return [st["bin"]["nginx"], "-p", lab.p("nginx"), "-c", lab.p("nginx", "nginx.conf"),
                "-e", lab.p("logs", "nginx-error.log")]
    if inst.lang == "go":
        argv = [lab.p("bin", inst.service)]  # built at up; its file name is its comm
    else:
        program = os.path.join(HERE, "services", "service.py" if inst.lang == "python" else "service.js")
        argv = [lab.p("bin", inst.service), program]
    argv += ["--name", inst.service, "--listen", "%s:%d" % _addr(name), "--fault-file", lab.p("faults", name),
             "--timeout-ms", str(inst.timeout_ms), "--retries", str(inst.retries)]
    if inst.keep_alive:
        argv += ["--keep-alive"]
    for path, steps in inst.routes.items():
        urls = [s if isinstance(s, str) else _urls(*s) for s in steps]
        argv += ["--route", "%s=%s" % (path, ",".join(urls))]
    if inst.service in DATA_SERVICES:
        argv += ["--data-dir", st["data_dir"]]
    return argv


def _build_go(lab, st):
    """The Go services' one program, built once per up into bin/<service> for each Go service
    (the executable's name is the process's comm). Go's build cache lives in the state dir."""
    names = sorted({i.service for i in INSTANCES.values() if i.lang == "go"})
    if not names:
        return
    env = dict(os.environ, GOCACHE=lab.p("gocache"), GOPATH=lab.p("gopath"), GO111MODULE="off", CGO_ENABLED="0", HOME=lab.p("gopath"))
    out = lab.p("bin", names[0])
    try:
        r = subprocess.run([st["bin"]["go"], "build", "-o", out, os.path.join(HERE, "services", "service.go")],
                           env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError("go build services/service.go: %s" % e) from None
    if r.returncode:
        raise LabError("go build services/service.go: exit %d: %s" % (r.returncode, r.stderr.strip()))
    for n in names[1:]:
        shutil.copy(out, lab.p("bin", n))


def _burner_argv(lab):
    code = "import time\nend = time.monotonic() + %d\nwhile time.monotonic() < end: pass\n" % BURNER_SECONDS
    return [lab.p("bin", "burner"), "-c", code]


# --- up -----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _teardown_on_failure(state_dir):
    """Ctrl-C, SIGTERM or an error part-way through `up` removes whatever it made."""
    def on_signal(signum, frame):
        raise _Interrupted("interrupted by signal %d" % signum)

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: no handlers, still the cleanup
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield
    except BaseException as e:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # the cleanup is bounded; a second Ctrl-C waits
        log("up failed (%s); tearing down" % e)
        down(state_dir)
        if isinstance(e, _Interrupted):
            raise LabError(str(e)) from None
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def up(state_dir=DEFAULT_STATE_DIR, rate=20.0, max_seconds=3600.0, owner=None, system="shop"):
    """Brings the machines, services (of `system`, a key of systems.SYSTEMS) and load up; returns
    status(). Raises LabError (after
    removing whatever it had made) if any step fails. With `owner` (a pid; a scenario run passes
    its own), the lab lives only as long as that process: when it dies, even by SIGKILL, the
    supervisor tears everything down."""
    lab = Lab(state_dir)
    if lab.supervisor_alive():
        raise LabError("%s: the lab is already up; run down first" % lab.dir)
    use_system(system)
    if rate <= 0:
        raise LabError("--rate must be > 0 (got %r)" % rate)
    live = [p for p in _all_pids() if _proc_comm(p) == SUPERVISOR_COMM and _alive(p)]
    if live:
        raise LabError("a lab is up already (supervisor pid %s, another state dir?); run down first"
                       % ", ".join(map(str, live)))
    leftovers = check_clean(lab.dir)[0]
    if leftovers:
        log("leftovers of an earlier run (%s); removing them first" % "; ".join(leftovers))
        down(state_dir)
    with _teardown_on_failure(lab.dir):
        _up(lab, rate, max_seconds, owner)
    return status(lab.dir)


def _up(lab, rate, max_seconds, owner):
    os.makedirs(lab.dir, exist_ok=True)
    if os.listdir(lab.dir) and not os.path.exists(lab.p(MARKER)):
        raise LabError("%s: not empty and not a lab state directory; choose another --state-dir" % lab.dir)
    _write(lab.p(MARKER), "")
    for d in ("bin", "procs", "down", "faults", "logs", "nginx"):
        os.makedirs(lab.p(d), exist_ok=True)
    cg = Cgroups()
    st = {"created": time.time(), "system": SYSTEM_NAME, "rate": rate, "max_seconds": max_seconds,
          "cgroup_version": cg.version, "bin": _binaries()}
    lab.save_state(st)
    with lab.locked():
        _network_up(st)
        lab.save_state(st)
        cg.create("")
        with contextlib.suppress(LabError):
            cg.write("pids", "", "pids.max", 4096)  # a runaway fork stays inside the lab
        for rel in ("supervisor", "load", "fault"):
            cg.create(rel)
        for m in MACHINES:
            cg.create(m)
            cg.set_cpu_quota(m, MACHINE_CPUS)
            cg.set_memory_limit(m, MACHINE_MEMORY)
        for name, inst in INSTANCES.items():
            cg.create(inst.rel)
            if inst.lang in ("node", "python"):
                _link_bin(lab, inst.service, st["bin"][inst.lang])
            _write(lab.p("faults", name), "")
        _build_go(lab, st)
        for name in ("loadgen", "burner", "fllab-delay", SUPERVISOR_COMM):
            _link_bin(lab, name, st["bin"]["python"])
        _disk_up(lab, st)
        if INSTANCES[ENTRY].lang == "nginx":
            _write(lab.p("nginx", "nginx.conf"), _nginx_conf(lab))
        _write(lab.p("load_factor"), "1\n")
        for name, inst in INSTANCES.items():
            lab.add_proc(name, _service_argv(lab, st, name), inst.machine, inst.rel,
                         group=GROUP_GATEWAY if name == ENTRY else GROUP_SERVICE)
        lab.save_state(st)
        _start_supervisor(lab, st, cg, max_seconds + 600, owner)
        lab.wait_running(list(INSTANCES), 20)
        for name in INSTANCES:
            _wait(lambda: _port_open(*_addr(name)), 10, "%s to listen on %s:%d" % ((name,) + _addr(name)))
        _check_end_to_end()
        ip, port = _addr(ENTRY)
        mix = ",".join("%s=%g" % pw for pw in SYSTEM["mix"])
        lab.add_proc("loadgen", [lab.p("bin", "loadgen"), os.path.join(HERE, "load.py"),
                                 "--url", "http://%s:%d" % (ip, port), "--state-dir", lab.dir,
                                 "--rate", str(rate), "--max-seconds", str(max_seconds), "--mix", mix],
                     cgroup="load", restart="on-failure", group=GROUP_LOAD)
        lab.wait_running(["loadgen"], 10)
    log("up: the %s, 3 machines, %d services in %d instances, load %g req/s (state in %s)"
        % (SYSTEM_NAME, len(SERVICE_NAMES), len(INSTANCES), rate, lab.dir))


def _start_supervisor(lab, st, cg, max_seconds, owner=None):
    procs = [os.path.join(d, "cgroup.procs") for d in cg.dirs("supervisor")]

    def in_child():
        for p in procs:
            with open(p, "w") as f:
                f.write(str(os.getpid()))

    out = open(lab.p("logs", "supervisor.out"), "a")
    try:
        # A direct child: when up() runs inside the scenario runner, down() can reap it.
        p = subprocess.Popen([lab.p("bin", SUPERVISOR_COMM), os.path.join(HERE, "supervisor.py"),
                              "--state-dir", lab.dir, "--max-seconds", str(max_seconds)]
                             + (["--owner", "%d:%d" % (owner, _proc_stat(owner)[1])] if owner else []),
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             preexec_fn=in_child, start_new_session=True, cwd=lab.dir)
    finally:
        out.close()
    st["supervisor"] = {"pid": p.pid, "start_ticks": _wait(lambda: (_proc_stat(p.pid) or (0, 0))[1], 2,
                                                          "the supervisor to start")}
    lab.save_state(st)


def _get(ip, port, path, timeout=3.0):
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        r = conn.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _check_end_to_end():
    # Through the entry point, every route crosses the bridge between all three machines.
    ip, port = _addr(ENTRY)
    for path in INSTANCES[ENTRY].routes:
        try:
            _wait(lambda: _get(ip, port, path) == 200, 10, "GET %s via the gateway to answer 200" % path, 0.3)
        except LabError as e:
            raise LabError("%s (last status %s; is the bridge %s filtered?)"
                           % (e, _get(ip, port, path), BRIDGE)) from None


# --- status -------------------------------------------------------------------------------------

def status(state_dir=DEFAULT_STATE_DIR):
    """The lab as JSON-able dict: machines, services (pid, alive), load, the active fault."""
    lab = Lab(state_dir)
    st = lab.state
    if not st:
        return {"up": False, "state_dir": lab.dir, "leftovers": check_clean()[0]}
    use_system(st.get("system", "shop"))
    pids = lab.pids()
    try:
        cg = Cgroups()
    except LabError:
        cg = None
    machines = [{"name": m, "ip": ip, "netns": PREFIX + "-" + m, "netns_path": _netns_path(m),
                 "cgroup": "/%s/%s" % (CGROUP_NAME, m), "cpus": MACHINE_CPUS, "memory_bytes": MACHINE_MEMORY,
                 "present": os.path.exists(_netns_path(m))} for m, ip in MACHINES.items()]
    services = []
    for name, inst in INSTANCES.items():
        rec = pids.get(name) or {}
        pid = lab.running(name)
        services.append({"name": name, "service": inst.service, "comm": _comm(name), "machine": inst.machine,
                         "language": inst.lang, "addr": "%s:%d" % _addr(name), "pid": pid, "alive": bool(pid),
                         "restarts": rec.get("restarts"), "state": rec.get("state"),
                         "marked_down": os.path.exists(lab.p("down", name)),
                         "cgroup": "/%s/%s" % (CGROUP_NAME, inst.rel)})
    lines = _read(lab.p("load.jsonl")).strip().splitlines()
    load = {"pid": lab.running("loadgen"), "alive": bool(lab.running("loadgen")), "rate": st.get("rate"),
            "factor": float(_read(lab.p("load_factor")).strip() or 1),
            "last": json.loads(lines[-1]) if lines else None}
    fault = _read_json(lab.p("active.json"))
    if fault and cg:
        with contextlib.suppress(Exception):  # observations are a convenience, never an error
            fault["observed"] = FAULTS[fault["kind"]].observe(lab, cg, fault)
    extra = sorted(n for n in pids if n not in INSTANCES and n != "loadgen")
    sup = st.get("supervisor") or {}
    return {"up": lab.supervisor_alive(), "state_dir": lab.dir, "system": SYSTEM_NAME,
            "entry": ENTRY, "cgroup_version": st.get("cgroup_version"),
            "machines": machines, "services": services, "load": load,
            "supervisor": {"pid": sup.get("pid"), "alive": lab.supervisor_alive()},
            "other_processes": [{"name": n, "pid": lab.running(n)} for n in extra],
            "disk": st.get("disk"), "fault": fault}


# --- faults -------------------------------------------------------------------------------------

def _edge(target):
    """(caller instances, callee instances) of CALLER->CALLEE: every pair of them carries the call."""
    caller, sep, callee = target.partition("->")
    if not sep:
        raise LabError("--target %r: expected CALLER->CALLEE" % target)
    caller, callee = _service(caller.strip()), _service(callee.strip())
    if (caller, callee) not in EDGES:
        raise LabError("--target %r: %s does not call %s (edges: %s)" % (
            target, caller, callee, ", ".join("%s->%s" % e for e in EDGES)))
    callers = [i for i in INSTANCES.values() if i.service == caller]
    # The packets are chosen by the caller's machine and the callee's address and port, so another
    # service calling the callee from one of those machines would be hit too: refused, rather
    # than a fault on more edges than the target says.
    machines = {i.machine for i in callers}
    others = sorted({"%s->%s" % (i.service, callee) for i in INSTANCES.values()
                     if i.service != caller and i.machine in machines and (i.service, callee) in EDGES})
    if others:
        raise LabError("--target %r: the fault would hit %s too (from the same machine, %s; the lab's "
                       "edge faults choose packets by machine, address and port)"
                       % (target, ", ".join(others), ", ".join(sorted(machines))))
    return callers, [i for i in INSTANCES.values() if i.service == callee]


def _code_instances(target):
    found = _instances(target)
    if found[0].lang == "nginx":
        raise LabError("--target %s: nginx has no fault file; choose a Python, Node or Go service" % target)
    return found


class Fault:
    """One fault kind: params (name -> (default, low, high)), targets() says what its target
    names (raising LabError when it names nothing the kind can be made on), apply() fills
    rec["undo"]."""
    params = {}

    def targets(self, target):
        return _instances(target)

    def resolve(self, lab, cg, target, params):
        unknown = set(params) - set(self.params)
        if unknown:
            raise LabError("--param %s: not a parameter of this kind (expected %s)" % (
                ", ".join(sorted(unknown)), ", ".join(self.params) or "none"))
        out = {}
        for name, (default, lo, hi) in self.params.items():
            v = params.get(name, default)
            if callable(v):
                v = v(lab, cg, target)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise LabError("--param %s=%r: expected a number" % (name, v)) from None
            if not lo <= v <= hi:
                raise LabError("--param %s=%g: expected %g..%g" % (name, v, lo, hi))
            out[name] = int(v) if v == int(v) else v
        return out

    def observe(self, lab, cg, rec):
        return None


class Loss(Fault):
    """nftables in each callee instance's namespace drops a share of the callers' packets to its
    port."""
    params = {"percent": (10, 1, 100)}

    def targets(self, target):
        return _edge(target)

    def apply(self, lab, cg, rec):
        callers, callees = self.targets(rec["target"])
        rules = {}
        for b in callees:
            for a in callers:
                same = a.machine == b.machine
                match = '%sip saddr %s tcp dport %d' % ('iif "lo" ' if same else "", MACHINES[a.machine], b.port)
                rules.setdefault(b.machine, []).append(
                    "%s numgen random mod 100 < %d counter drop" % (match, round(rec["params"]["percent"])))
        rec["undo"] = {"machines": sorted(rules)}
        for machine, lines in sorted(rules.items()):
            ruleset = ("table ip fllab_fault {\n chain input {\n"
                       "  type filter hook input priority -10; policy accept;\n  %s\n }\n}\n" % "\n  ".join(lines))
            _sh(_in_netns(machine, ["nft", "-f", "-"]), input=ruleset)

    def revert(self, lab, cg, rec):
        for m in rec["undo"].get("machines", []):
            if os.path.exists(_netns_path(m)):
                _sh(_in_netns(m, ["nft", "delete", "table", "ip", "fllab_fault"]), check=False)

    def observe(self, lab, cg, rec):
        dropped = 0
        for m in rec["undo"]["machines"]:
            out = _sh(_in_netns(m, ["nft", "list", "table", "ip", "fllab_fault"]), check=False).stdout
            dropped += sum(int(n) for n in re.findall(r"counter packets (\d+) bytes", out))
        return {"dropped_packets": dropped}


class Delay(Fault):
    """The callers' packets to each callee instance's address and port held MS each. With a new
    connection per call, a call pays about twice MS (the SYN, then the request); on a pooled
    connection, MS.

    netem where the kernel has it: in each caller machine, on eth0 (lo for a callee on the same
    machine), a prio root qdisc whose fourth band (the other three keep the default priority map)
    holds netem, and u32 filters sending the callees' traffic there. Where it has not (no
    CONFIG_NET_SCH_NETEM), iptables NFQUEUE rules in each caller machine's namespace and a
    delayer.py there, which gives each packet's verdict MS late: the same delay at the same
    place, the caller's output path."""
    params = {"ms": (100, 1, 10000)}
    QUEUE = 4242

    def targets(self, target):
        return _edge(target)
    RULE = ["OUTPUT", "-p", "tcp", "-d", "{ip}", "--dport", "{port}", "-m", "comment", "--comment",
            "fllab_fault", "-j", "NFQUEUE", "--queue-num", "{queue}", "--queue-bypass"]

    def apply(self, lab, cg, rec):
        callers, callees = self.targets(rec["target"])
        # caller machine -> [(dev, callee ip, port)]
        paths = {}
        for a in callers:
            for b in callees:
                dev = "lo" if a.machine == b.machine else "eth0"
                if (dev,) + _addr(b.name) not in paths.setdefault(a.machine, []):
                    paths[a.machine].append((dev,) + _addr(b.name))
        rec["undo"] = {"paths": {m: p for m, p in sorted(paths.items())}, "method": "netem", "done": []}
        try:
            for m, targets in sorted(paths.items()):
                for dev in sorted({t[0] for t in targets}):
                    rec["undo"]["done"].append([m, dev])
                    self._netem(m, dev, [t[1:] for t in targets if t[0] == dev], rec["params"]["ms"])
            return
        except LabError as e:
            for m, dev in rec["undo"]["done"]:
                _sh(_in_netns(m, ["tc", "qdisc", "del", "dev", dev, "root"]), check=False)
            rec["undo"]["done"] = []
            log("delay: no netem qdisc (%s); delaying in user space instead (delayer.py)"
                % str(e).rpartition(": ")[2])
        rec["undo"]["method"] = "nfqueue"
        for k, (m, targets) in enumerate(sorted(paths.items())):
            name, queue = "delayer-" + m, self.QUEUE + k
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lab.p("logs", name + ".log"))  # its "ready" below must be this run's
            lab.add_proc(name, [lab.p("bin", "fllab-delay"), os.path.join(HERE, "delayer.py"),
                                "--queue", str(queue), "--ms", "%g" % rec["params"]["ms"]],
                         m, "fault", restart="on-failure", group=GROUP_BURNER)
            rec["undo"]["done"].append([m, name, queue])
            _wait(lambda: "ready" in _read(lab.p("logs", name + ".log")), 5, "the delayer to bind its queue")
            for _, ip, port in targets:
                _sh(_in_netns(m, ["iptables", "-w", "-t", "mangle", "-A"] + self._rule(ip, port, queue)))

    @staticmethod
    def _netem(machine, dev, targets, ms):
        tc = lambda *a: _sh(_in_netns(machine, ["tc"] + list(a)))
        tc("qdisc", "add", "dev", dev, "root", "handle", "1:", "prio", "bands", "4",
           "priomap", "1", "2", "2", "2", "1", "2", "0", "0", "1", "1", "1", "1", "1", "1", "1", "1")
        tc("qdisc", "add", "dev", dev, "parent", "1:4", "handle", "40:", "netem", "delay", "%gms" % ms)
        for ip, port in targets:
            tc("filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
               "match", "ip", "dst", ip + "/32", "match", "ip", "dport", str(port), "0xffff", "flowid", "1:4")

    def _rule(self, ip, port, queue):
        return [a.format(ip=ip, port=port, queue=queue) for a in self.RULE]

    def revert(self, lab, cg, rec):
        u = rec["undo"]
        if u.get("method") == "netem":
            for m, dev in u.get("done", []):
                if os.path.exists(_netns_path(m)):
                    _sh(_in_netns(m, ["tc", "qdisc", "del", "dev", dev, "root"]), check=False)
            return
        names = []
        for m, name, queue in u.get("done", []):
            names.append(name)
            if not os.path.exists(_netns_path(m)):
                continue
            ipt = lambda *a: _sh(_in_netns(m, ["iptables", "-w", "-t", "mangle"] + list(a)), check=False)
            for _, ip, port in u["paths"][m]:
                for _ in range(5):  # the rule once, unless an earlier revert was cut short
                    if ipt("-C", *self._rule(ip, port, queue)).returncode or ipt("-D", *self._rule(ip, port, queue)).returncode:
                        break
            if "-A" not in ipt("-S").stdout:  # iptables-nft leaves its table behind, empty
                _sh(_in_netns(m, ["nft", "delete", "table", "ip", "mangle"]), check=False)
        if names:
            time.sleep(rec["params"]["ms"] / 1000.0 + 0.1)  # let the held packets go before the delayers
        for name in names:
            lab.remove_proc(name)
        lab.wait_gone(names, 6)

    def observe(self, lab, cg, rec):
        u, n = rec["undo"], 0
        for entry in u.get("done", []):
            m = entry[0]
            if u["method"] == "netem":
                out = _sh(_in_netns(m, ["tc", "-s", "qdisc", "show", "dev", entry[1]]), check=False).stdout
                found = re.search(r"qdisc netem 40:.*?Sent (\d+) bytes (\d+) pkt", out, re.S)
                n += int(found.group(2)) if found else 0
            else:
                out = _sh(_in_netns(m, ["iptables", "-w", "-t", "mangle", "-L", "OUTPUT", "-v", "-n", "-x"]),
                          check=False).stdout
                n += sum(int(x) for x in re.findall(r"^\s*(\d+)\s+\d+\s+NFQUEUE", out, re.M))
        return {"method": u["method"], "delayed_packets": n}


class Down(Fault):
    """SIGKILL, and a mark that keeps the supervisor from restarting it: callers are refused."""

    def apply(self, lab, cg, rec):
        names = [i.name for i in self.targets(rec["target"])]
        rec["undo"] = {"instances": names}
        for name in names:
            _write(lab.p("down", name), "")
            pid = lab.running(name)
            if pid:
                os.kill(pid, signal.SIGKILL)
        for name in names:
            _wait(lambda: (lab.pids().get(name) or {}).get("state") == "down", 5, "%s to be down" % name)

    def revert(self, lab, cg, rec):
        names = rec["undo"].get("instances", [])
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lab.p("down", name))
        if names:
            lab.wait_running(names, 10)
        for name in names:
            _wait(lambda: _port_open(*_addr(name)), 10, "%s to listen again" % name)


class FaultLine(Fault):
    """A line in the fault file of each instance the target names (see services/service.py)."""
    word = None

    def targets(self, target):
        return _code_instances(target)

    def apply(self, lab, cg, rec):
        names = [i.name for i in self.targets(rec["target"])]
        rec["undo"] = {"instances": names}
        for name in names:
            _write(lab.p("faults", name), "%s %g\n" % (self.word, rec["params"][next(iter(self.params))]))

    def revert(self, lab, cg, rec):
        for name in rec["undo"].get("instances", []):
            _write(lab.p("faults", name), "")


class Slow(FaultLine):
    word, params = "slow", {"ms": (300, 1, 60000)}


class Error(FaultLine):
    word, params = "error", {"rate": (1, 0, 1)}


class CpuThrottle(Fault):
    """The container's CPU quota cut, and a busy loop inside it that eats most of what is left."""
    params = {"quota": (0.2, 0.01, MACHINE_CPUS)}

    def apply(self, lab, cg, rec):
        insts = self.targets(rec["target"])
        rec["undo"] = {"cgroups": [], "burners": []}
        for i in insts:
            rec["undo"]["cgroups"].append(i.rel)
            cg.set_cpu_quota(i.rel, rec["params"]["quota"])
            name = "burner-" + i.name
            rec["undo"]["burners"].append(name)
            lab.add_proc(name, _burner_argv(lab), i.machine, i.rel, restart="never", group=GROUP_BURNER)
        lab.wait_running(rec["undo"]["burners"], 5)

    def revert(self, lab, cg, rec):
        u = rec["undo"]
        for name in u.get("burners", []):
            lab.remove_proc(name)
        lab.wait_gone(u.get("burners", []), 6)
        for rel in u.get("cgroups", []):
            cg.set_cpu_quota(rel, None)

    def observe(self, lab, cg, rec):
        return {rel: cg.stats(rel) for rel in rec["undo"]["cgroups"]}


class MachineCpu(Fault):
    """Busy loops in the machine's noise cgroup, which has no quota of its own: together they
    fill the machine's one CPU and every container on it waits."""
    params = {"threads": (3, 1, 16)}

    def targets(self, target):
        if target not in MACHINES:
            raise LabError("--target %r: expected a machine (%s)" % (target, ", ".join(MACHINES)))
        return target

    def apply(self, lab, cg, rec):
        m = self.targets(rec["target"])
        names = ["burner-%s-%d" % (m, i) for i in range(int(rec["params"]["threads"]))]
        rec["undo"] = {"cgroup": m + "/noise", "burners": names}
        cg.create(m + "/noise")
        for n in names:
            lab.add_proc(n, _burner_argv(lab), m, m + "/noise", restart="never", group=GROUP_BURNER)
        lab.wait_running(names, 5)

    def revert(self, lab, cg, rec):
        u = rec["undo"]
        for n in u.get("burners", []):
            lab.remove_proc(n)
        lab.wait_gone(u.get("burners", []), 6)
        if u.get("cgroup"):
            for top in cg.dirs():
                err = _remove_cgroup_tree(top, u["cgroup"])
                if err:
                    raise LabError("cannot remove the noise cgroup: %s" % err)

    def observe(self, lab, cg, rec):
        return cg.stats(rec["target"])


class Oom(Fault):
    """A memory limit just above the container's use and a leak in its code: the OOM killer
    kills it, the supervisor restarts it a second later, and so on until the revert."""
    params = {"limit_mb": (lambda lab, cg, t: max(cg.memory_usage(i.rel) for i in _code_instances(t))
                           // (1 << 20) + 64, 8, MACHINE_MEMORY >> 20),
              "rate": (50, 1, 1024)}

    def targets(self, target):
        return _code_instances(target)

    def apply(self, lab, cg, rec):
        insts = self.targets(rec["target"])
        rec["undo"] = {"instances": [i.name for i in insts], "cgroups": [i.rel for i in insts]}
        for i in insts:
            cg.set_memory_limit(i.rel, int(rec["params"]["limit_mb"] * (1 << 20)))
            _write(lab.p("faults", i.name), "leak %g\n" % rec["params"]["rate"])

    def revert(self, lab, cg, rec):
        u = rec["undo"]
        for name, rel in zip(u.get("instances", []), u.get("cgroups", [])):
            _write(lab.p("faults", name), "")
            cg.set_memory_limit(rel, None)
        if u.get("instances"):
            lab.wait_running(u["instances"], 10)

    def observe(self, lab, cg, rec):
        return {rel: cg.stats(rel) for rel in rec["undo"]["cgroups"]}


class Disk(Fault):
    """A slower disk under the store. The store's data is on the lab's loop device, whose image
    is read and written with direct I/O on the host's disk; the fault limits the store's
    container to 1000/delay_ms IOPS on that host disk. The loop device's requests then wait
    there, so the device the store uses is slower per request, as a congested network disk is
    (the agent sees the block requests of the store's cgroup take longer). When the image is on a
    file system without a block device (tmpfs), the loop device itself is throttled instead:
    I/O is rationed before it is issued, so the store slows down but no request takes longer.
    Buffered writeback, which v1 charges to the root cgroup, escapes either way: the store uses
    O_DIRECT."""
    params = {"delay_ms": (50, 1, 1000)}

    def targets(self, target):
        inst = _instances(target)[0]
        if inst.service not in DATA_SERVICES:
            raise LabError("--target %s: only %s keep data on the lab disk" % (target, ", ".join(DATA_SERVICES)))
        return inst

    def apply(self, lab, cg, rec):
        inst = self.targets(rec["target"])
        disk = (lab.state or {}).get("disk") or {}
        devno = disk.get("backing_devno") or disk.get("devno")
        if not devno:
            raise LabError("no lab disk (the loop device could not be made at up; see its log line)")
        rel = inst.rel
        iops = max(1, round(1000.0 / rec["params"]["delay_ms"]))
        rec["undo"] = {"cgroup": rel, "devno": devno, "iops": iops}
        cg.set_iops(rel, devno, iops)

    def revert(self, lab, cg, rec):
        u = rec["undo"]
        if u.get("cgroup"):
            cg.set_iops(u["cgroup"], u["devno"], None)

    def observe(self, lab, cg, rec):
        u = rec["undo"]
        name = "io.stat" if cg.version == 2 else "blkio.throttle.io_serviced"
        rows = [l for l in cg.read("blkio" if cg.version == 1 else "io", u["cgroup"], name).splitlines()
                if l.startswith(u["devno"])]
        return {"iops_limit": u["iops"], "io": rows}


class Surge(Fault):
    """The load generator's rate multiplied."""
    params = {"factor": (4, 0.1, 20)}

    def targets(self, target):
        if target != "load":
            raise LabError("--target %r: a surge's target is load" % target)
        return target

    def apply(self, lab, cg, rec):
        self.targets(rec["target"])
        rec["undo"] = {"load_factor": True}
        _write(lab.p("load_factor"), "%g\n" % rec["params"]["factor"])

    def revert(self, lab, cg, rec):
        if rec["undo"].get("load_factor"):
            _write(lab.p("load_factor"), "1\n")

    def observe(self, lab, cg, rec):
        lines = _read(lab.p("load.jsonl")).strip().splitlines()
        return json.loads(lines[-1]) if lines else None


FAULTS = {"loss": Loss(), "delay": Delay(), "down": Down(), "slow": Slow(), "error": Error(),
          "cpu_throttle": CpuThrottle(), "machine_cpu": MachineCpu(), "oom": Oom(), "disk": Disk(),
          "surge": Surge()}


def check_target(kind, target):
    """Raises LabError when `target` names nothing a fault of `kind` can be made on."""
    FAULTS[kind].targets(target)


def inject(state_dir, kind, target, params=None):
    """Applies one fault (see FAULTS) and records it in active.json; one at a time. Returns the
    record. A fault that fails part-way is undone before the LabError is raised."""
    lab = Lab(state_dir)
    if kind not in FAULTS:
        raise LabError("--kind %r: expected one of %s" % (kind, ", ".join(FAULTS)))
    with lab.locked():
        if not lab.supervisor_alive():
            raise LabError("%s: the lab is not up" % lab.dir)
        use_system(lab.state.get("system", "shop"))
        active = _read_json(lab.p("active.json"))
        if active:
            raise LabError("a fault is active already (%s on %s); revert it first"
                           % (active["kind"], active["target"]))
        cg, fault = Cgroups(), FAULTS[kind]
        rec = {"kind": kind, "target": target, "params": fault.resolve(lab, cg, target, params or {}),
               "started_at": round(time.time(), 3), "undo": {}}
        _write_json(lab.p("active.json"), rec)  # first, so that down and revert know of it
        try:
            fault.apply(lab, cg, rec)
        except BaseException:
            with contextlib.suppress(Exception):
                fault.revert(lab, cg, rec)
            os.unlink(lab.p("active.json"))
            raise
        _write_json(lab.p("active.json"), rec)
    log("inject: %s on %s %s" % (kind, target, json.dumps(rec["params"])))
    return rec


def revert(state_dir=DEFAULT_STATE_DIR):
    """Undoes the active fault; returns its record, or None if there was none."""
    lab = Lab(state_dir)
    with lab.locked():
        rec = _read_json(lab.p("active.json"))
        if not rec:
            log("revert: no active fault")
            return None
        use_system((lab.state or {}).get("system", "shop"))
        FAULTS[rec["kind"]].revert(lab, Cgroups(), rec)
        rec["reverted_at"] = round(time.time(), 3)
        with open(lab.p("faults.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        os.unlink(lab.p("active.json"))
    log("revert: %s on %s" % (rec["kind"], rec["target"]))
    return rec


# --- down and check-clean -----------------------------------------------------------------------

def down(state_dir=DEFAULT_STATE_DIR):
    """Removes everything the lab made, found by name when the state directory is gone.
    Idempotent. Returns the problems left (also logged); [] when all is gone."""
    lab = Lab(state_dir)
    with lab.locked() if os.path.isdir(lab.dir) else contextlib.nullcontext():
        return _down(lab)


def _down(lab):
    st = lab.state or {}
    errors = []
    _leave_lab_cgroups()  # the supervisor whose owner died runs this in its own cgroup
    # The supervisor first: on SIGTERM it stops its children group by group and reaps them.
    sup = st.get("supervisor") or {}
    sups = {p for p in [sup.get("pid")] if _alive(p, sup.get("start_ticks"))}
    sups |= {p for p in _all_pids() if _proc_comm(p) == SUPERVISOR_COMM}
    with contextlib.suppress(LabError):
        sups |= Cgroups().procs("supervisor")
    sups.discard(os.getpid())
    errors += ["pid %d (supervisor) survived SIGKILL" % p for p in _terminate(sorted(sups), grace=12)]
    # Then whatever it did not stop, in its order, and whatever else is in the lab's cgroups.
    recs = sorted(lab.pids().values(), key=lambda r: r.get("group", GROUP_SERVICE))
    for group in sorted({r.get("group", GROUP_SERVICE) for r in recs}):
        pids = [r["pid"] for r in recs
                if r.get("group", GROUP_SERVICE) == group and _alive(r.get("pid"), r.get("start_ticks"))]
        errors += ["pid %d survived SIGKILL" % p for p in _terminate(pids)]
    stray = [p for p in _lab_procs_by_cgroup() if _alive(p)]
    if stray:
        log("down: stopping %d process(es) left in the lab's cgroups: %s" % (len(stray), stray))
        errors += ["pid %d survived SIGKILL" % p for p in _terminate(stray)]
    _network_down(errors)
    _disk_down(errors)
    for top in _lab_cgroup_tops():
        err = _remove_cgroup_tree(top)
        if err:
            errors.append(err)
    _remove_state_dir(lab, errors)
    for e in errors:
        log("down: " + e)
    return errors


def _leave_lab_cgroups():
    try:
        roots = Cgroups().roots()
    except LabError:
        return
    mine = _read("/proc/self/cgroup")
    if "/" + CGROUP_NAME not in mine:
        return
    for root in roots:
        with contextlib.suppress(OSError), open(os.path.join(root, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def _remove_state_dir(lab, errors):
    if not os.path.isdir(lab.dir):
        return
    if not os.path.exists(lab.p(MARKER)):
        if not os.listdir(lab.dir):
            os.rmdir(lab.dir)
        return
    inside = [l.split()[1] for l in _read("/proc/self/mounts").splitlines()
              if len(l.split()) > 1 and (l.split()[1] + "/").startswith(lab.dir + "/")]
    if inside:
        errors.append("%s: not removed, still mounted: %s" % (lab.dir, ", ".join(inside)))
        return
    shutil.rmtree(lab.dir, ignore_errors=True)
    if os.path.exists(lab.dir):
        errors.append("%s: could not be removed" % lab.dir)


def check_clean(state_dir=None):
    """(leftovers, notes): anything of the lab that still exists, by its name. Notes list
    zombies, which hold no resources but cannot be reaped by anyone but their parent."""
    left, notes = [], []
    netns = [n for n in _sh(["ip", "netns", "list"], check=False).stdout.split() if n.startswith(PREFIX)]
    left += ["netns " + n for n in netns]
    left += ["link " + l for l in _links()]
    inside = [(n, ["nsenter", "--net=" + os.path.join(NETNS_DIR, n), "--"]) for n in netns]
    for where, prefix in [(None, [])] + inside:
        tables = _sh(prefix + ["nft", "list", "tables"], check=False).stdout
        left += ["nft %s%s" % (t.strip(), " in " + where if where else "")
                 for t in tables.splitlines() if PREFIX in t]
        # The faults' qdiscs (prio and netem) in a namespace left over; any non-default one on a
        # lab link in the root namespace.
        for q in _sh(prefix + ["tc", "qdisc", "show"], check=False).stdout.splitlines():
            if (where and re.match(r"qdisc (prio|netem) ", q)) or (not where and "dev " + PREFIX in q
                                                                   and "noqueue" not in q):
                left.append("tc %s%s" % (q.strip(), " in " + where if where else ""))
    left += ["cgroup " + t for t in _lab_cgroup_tops()]
    for pid in sorted(set(_lab_procs_by_cgroup()) | {p for p in _all_pids() if _proc_comm(p).startswith(PREFIX)}):
        st = _proc_stat(pid)
        if not st:
            continue
        what = "process %d (%s)" % (pid, _proc_comm(pid))
        if st[0] == "Z":
            notes.append("%s zombie, parent %s" % (what, _ppid(pid)))
        else:
            left.append(what)
    left += ["loop %s (%s)" % d for d in _loop_devices()]
    points = [line.split()[1] for line in _read("/proc/self/mounts").splitlines() if len(line.split()) > 1]
    left += ["mount " + p for p in points if PREFIX in p or p.startswith(DEFAULT_STATE_DIR + "/")]
    if shutil.which("iptables") and PREFIX in _sh(["iptables", "-S"], check=False).stdout:
        left.append("iptables rule with comment " + PREFIX)
    for d in {os.path.abspath(state_dir or DEFAULT_STATE_DIR), DEFAULT_STATE_DIR}:
        if os.path.exists(d):
            left.append("state dir " + d)
    return left, notes


def _ppid(pid):
    m = re.search(r"^PPid:\s+(\d+)", _read("/proc/%d/status" % pid), re.M)
    return m.group(1) if m else "?"


# --- CLI ----------------------------------------------------------------------------------------

def _parse_params(items):
    out = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise LabError("--param %r: expected NAME=VALUE" % item)
        out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="lab.py", description="The faultline fault-injection lab.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "status", "inject", "revert", "down", "check-clean"):
        p = sub.add_parser(name)
        p.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
        if name == "up":
            p.add_argument("--system", default="shop", choices=sorted(systems.SYSTEMS))
            p.add_argument("--rate", type=float, default=20.0, help="load, requests per second")
            p.add_argument("--max-seconds", type=float, default=3600.0, help="the load's lifetime")
        if name == "inject":
            p.add_argument("--kind", required=True, choices=sorted(FAULTS))
            p.add_argument("--target", required=True)
            p.add_argument("--param", action="append", metavar="NAME=VALUE")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        log("must run as root (network namespaces, cgroups, loop devices)")
        return 2
    try:
        if args.cmd == "up":
            print(json.dumps(up(args.state_dir, args.rate, args.max_seconds, system=args.system), indent=1))
        elif args.cmd == "status":
            print(json.dumps(status(args.state_dir), indent=1))
        elif args.cmd == "inject":
            rec = inject(args.state_dir, args.kind, args.target, _parse_params(args.param))
            print(json.dumps(rec, indent=1))
        elif args.cmd == "revert":
            print(json.dumps(revert(args.state_dir), indent=1))
        elif args.cmd == "down":
            errors = down(args.state_dir)
            left = check_clean(args.state_dir)[0]
            if left:
                log("down: left behind: " + "; ".join(left))
            return 1 if errors or left else 0
        elif args.cmd == "check-clean":
            left, notes = check_clean(args.state_dir)
            for n in notes:
                print("note: " + n)
            for l in left:
                print(l)
            return 1 if left else 0
    except LabError as e:
        log("error: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
