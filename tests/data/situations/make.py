#!/usr/bin/env python3
"""Writes the hand-built situations that attribution_test and diagnose_test replay (deterministic:
seeded noise). Metric names are faultline's catalog (faultline/common/catalog.h).

The system: gateway -> api -> db, gateway -> search, and api -> an external payment endpoint
(203.0.113.7:443). Every instance runs in its own container: gateway and search on machine m1,
api on m2, db's two instances on m3. 36 windows of 5 s from t=1000; faults start at window 24
(t=1120), where the alarm on gateway is raised. db's traffic is broken down by endpoint and
instance (GET /query, GET /items on db-1 and db-2). Run from this directory: python3 make.py
"""
import json
import random

N, START, W, FAULT = 36, 1000, 5, 24
PAYMENT = "203.0.113.7:443"
INSTANCES = [("gw-1", "gateway", "ctr-gw-1", "m1"), ("search-1", "search", "ctr-search-1", "m1"),
             ("api-1", "api", "ctr-api-1", "m2"), ("db-1", "db", "ctr-db-1", "m3"),
             ("db-2", "db", "ctr-db-2", "m3")]


def topology():
    nodes, edges = [], []
    for s in ["gateway", "api", "db", "search"]:
        nodes.append({"kind": "service", "name": s})
    nodes.append({"kind": "external", "name": PAYMENT})
    for m in ["m1", "m2", "m3"]:
        nodes.append({"kind": "machine", "name": m})
    for inst, svc, ctr, m in INSTANCES:
        nodes.append({"kind": "instance", "name": inst})
        nodes.append({"kind": "container", "name": ctr})
        edges.append({"kind": "instance_of", "from": inst, "to": svc})
        edges.append({"kind": "runs_on", "from_kind": "instance", "from": inst,
                      "to_kind": "container", "to": ctr})
        edges.append({"kind": "runs_on", "from_kind": "container", "from": ctr,
                      "to_kind": "machine", "to": m})
    for a, b in [("gateway", "api"), ("api", "db"), ("gateway", "search")]:
        edges.append({"kind": "calls", "from": a, "to": b, "requests": 36000})
    edges.append({"kind": "calls", "from": "api", "to_kind": "external", "to": PAYMENT,
                  "requests": 3600})
    return {"nodes": nodes, "edges": edges}


NORMAL = [
    ("service", "gateway", "latency_p99_ms", 60), ("service", "gateway", "requests", 500),
    ("service", "gateway", "error_rate", 0.01),
    ("service", "api", "latency_p99_ms", 40), ("service", "api", "requests", 500),
    ("service", "api", "error_rate", 0.01),
    ("service", "db", "latency_p99_ms", 20), ("service", "db", "requests", 500),
    ("service", "db", "error_rate", 0.005),
    ("service", "search", "latency_p99_ms", 30), ("service", "search", "requests", 200),
    ("service", "search", "error_rate", 0.02),
    ("edge", "gateway->api", "requests", 500), ("edge", "gateway->search", "requests", 200),
    ("edge", "gateway->api", "latency_p99_ms", 45), ("edge", "gateway->api", "error_rate", 0.01),
    ("edge", "gateway->api", "retransmits", 0), ("edge", "gateway->api", "drops", 0),
    ("edge", "gateway->api", "rtt_mean_ms", 0.2), ("edge", "gateway->api", "connects_refused", 0),
    ("edge", "api->db", "latency_p99_ms", 22), ("edge", "api->db", "error_rate", 0.005),
    ("edge", "api->db", "retransmits", 0), ("edge", "api->db", "rtt_mean_ms", 0.2),
    ("edge", "api->db", "connects_refused", 0), ("edge", "api->db", "resets", 0),
    ("edge", "gateway->search", "latency_p99_ms", 32), ("edge", "gateway->search", "retransmits", 0),
    ("edge", "api->" + PAYMENT, "latency_p99_ms", 15), ("edge", "api->" + PAYMENT, "requests", 50),
    ("edge", "api->" + PAYMENT, "retransmits", 0), ("edge", "api->" + PAYMENT, "rtt_mean_ms", 0.2),
    ("machine", "m1", "cpu_busy_ratio", 0.3), ("machine", "m1", "runq_p99_ms", 0.5),
    ("machine", "m2", "cpu_busy_ratio", 0.3), ("machine", "m2", "runq_p99_ms", 0.5),
    ("machine", "m3", "cpu_busy_ratio", 0.3), ("machine", "m3", "runq_p99_ms", 0.5),
    ("machine", "m3", "io_latency_p99_ms", 2), ("machine", "m3", "memory_available_mb", 8000),
    ("container", "ctr-db-1", "cpu_throttled_ratio", 0.01),
    ("container", "ctr-db-1", "runq_p99_ms", 0.5),
    ("container", "ctr-db-1", "memory_working_set_mb", 800),
    ("container", "ctr-db-1", "oom_kills", 0),
    ("container", "ctr-db-2", "cpu_throttled_ratio", 0.01),
    ("container", "ctr-db-2", "runq_p99_ms", 0.5),
    ("container", "ctr-db-2", "memory_working_set_mb", 800),
    ("container", "ctr-db-2", "oom_kills", 0),
]


def series(rng, kind, entity, metric, level, fault_level=None, noise=0.03):
    values = []
    for i in range(N):
        base = fault_level if (fault_level is not None and i >= FAULT) else level
        values.append(round(max(0.0, base * (1 + rng.gauss(0, noise))), 3))
    return {"kind": kind, "entity": entity, "metric": metric, "values": values}


def db_breakdown(rng, slow=None, failing=None):
    """db's traffic by endpoint and instance; from FAULT, leaves matching `slow` answer in 40 ms
    instead of 10, and leaves matching `failing` fail 30% of their requests."""
    leaves = []
    for endpoint, share in [("GET /query", 0.6), ("GET /items", 0.4)]:
        for inst in ["db-1", "db-2"]:
            leaf = {"values": [endpoint, inst, "m3"], "requests": [], "errors": [],
                    "latency_sum_ms": []}
            for i in range(N):
                n = round(250 * share * (1 + rng.gauss(0, 0.03)))
                fault = i >= FAULT
                mean = 40 if fault and slow and slow(endpoint, inst) else 10
                rate = 0.3 if fault and failing and failing(endpoint, inst) else 0.005
                leaf["requests"].append(n)
                leaf["errors"].append(round(n * rate * (1 + rng.gauss(0, 0.03)), 3))
                leaf["latency_sum_ms"].append(round(n * mean * (1 + rng.gauss(0, 0.02)), 3))
            leaves.append(leaf)
    return {"service": "db", "dims": ["endpoint", "instance", "machine"], "leaves": leaves}


def situation(name, faults, alarm_metric="latency_p99_ms", slow=None, failing=None):
    """faults: {(kind, entity, metric): fault_level} overriding the normal levels (or adding a
    series when the metric has no normal level: then it is 0 before the fault)."""
    rng = random.Random(name)
    out = []
    for kind, entity, metric, level in NORMAL:
        out.append(series(rng, kind, entity, metric, level, faults.get((kind, entity, metric))))
    known = {(k, e, m) for k, e, m, _ in NORMAL}
    for (kind, entity, metric), level in sorted(faults.items()):
        if (kind, entity, metric) not in known:
            out.append(series(rng, kind, entity, metric, 0, level))
    s = {"window_s": W, "start_s": START,
         "alarm": {"kind": "service", "entity": "gateway", "metric": alarm_metric,
                   "at_s": START + FAULT * W},
         "topology": topology(), "series": out,
         "breakdowns": [db_breakdown(rng, slow, failing)]}
    with open(name + ".json", "w") as f:
        json.dump(s, f, indent=1)
        f.write("\n")


# Latency propagated up the chain from db.
slow = {("service", "db", "latency_p99_ms"): 80, ("edge", "api->db", "latency_p99_ms"): 82,
        ("service", "api", "latency_p99_ms"): 100, ("edge", "gateway->api", "latency_p99_ms"): 105,
        ("service", "gateway", "latency_p99_ms"): 120}
# Errors propagated up the chain from db.
errors = {("service", "db", "error_rate"): 0.15, ("edge", "api->db", "error_rate"): 0.15,
          ("service", "api", "error_rate"): 0.16, ("edge", "gateway->api", "error_rate"): 0.16,
          ("service", "gateway", "error_rate"): 0.16}
query_only = lambda endpoint, inst: endpoint == "GET /query"  # noqa: E731

situation("slow_leaf", slow, slow=query_only)
situation("edge_loss", {("edge", "gateway->api", "latency_p99_ms"): 250,
                        ("edge", "gateway->api", "retransmits"): 30,
                        ("edge", "gateway->api", "drops"): 12,
                        ("edge", "gateway->api", "rtt_mean_ms"): 0.9,
                        ("service", "gateway", "latency_p99_ms"): 260})
situation("edge_rtt", {("edge", "gateway->api", "latency_p99_ms"): 150,
                       ("edge", "gateway->api", "rtt_mean_ms"): 40,
                       ("service", "gateway", "latency_p99_ms"): 160})
situation("cpu_exhaustion", {**slow, ("machine", "m3", "cpu_busy_ratio"): 0.99,
                             ("machine", "m3", "runq_p99_ms"): 40,
                             ("container", "ctr-db-1", "runq_p99_ms"): 38,
                             ("container", "ctr-db-2", "runq_p99_ms"): 39})
situation("container_throttle", {**slow, ("container", "ctr-db-1", "cpu_throttled_ratio"): 0.8,
                                 ("container", "ctr-db-1", "runq_p99_ms"): 30})
situation("oom_kill", {**errors, ("container", "ctr-db-2", "memory_working_set_mb"): 1900,
                       ("container", "ctr-db-2", "oom_kills"): 1,
                       ("edge", "api->db", "resets"): 20},
          alarm_metric="error_rate", failing=lambda e, inst: inst == "db-2")
situation("disk_io", {**slow, ("machine", "m3", "io_latency_p99_ms"): 60})
# db is down: api's connections to it are refused, so no exchange on api->db shows the errors.
refused = {k: v for k, v in errors.items() if k != ("edge", "api->db", "error_rate")}
situation("callee_refused", {**refused, ("edge", "api->db", "connects_refused"): 40,
                             ("service", "db", "error_rate"): 0.005,
                             ("service", "db", "requests"): 120},
          alarm_metric="error_rate")
situation("error_leaf", errors, alarm_metric="error_rate",
          failing=lambda e, inst: inst == "db-2")
situation("traffic_surge", {**slow, ("service", "gateway", "requests"): 1500,
                            ("service", "api", "requests"): 1500,
                            ("service", "db", "requests"): 1500})
situation("slow_external", {("edge", "api->" + PAYMENT, "latency_p99_ms"): 400,
                            ("service", "api", "latency_p99_ms"): 420,
                            ("edge", "gateway->api", "latency_p99_ms"): 425,
                            ("service", "gateway", "latency_p99_ms"): 430})
situation("negative_sibling", {**slow, ("service", "search", "latency_p99_ms"): 10,
                               ("edge", "gateway->search", "latency_p99_ms"): 12})
situation("fault_free", {})
