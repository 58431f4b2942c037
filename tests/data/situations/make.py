#!/usr/bin/env python3
"""Writes the hand-built situations that attribution_test replays (deterministic: seeded noise).

The system: gateway -> api -> db and gateway -> search; gateway and search run on m1, api on m2,
db on m3. 36 windows of 5 s from t=1000; faults start at window 24 (t=1120), where the alarm on
gateway is raised. Run from this directory: python3 make.py
"""
import json
import random

N, START, W, FAULT = 36, 1000, 5, 24


def topology():
    nodes, edges = [], []
    for s in ["gateway", "api", "db", "search"]:
        nodes.append({"kind": "service", "name": s})
    for m in ["m1", "m2", "m3"]:
        nodes.append({"kind": "machine", "name": m})
    for inst, svc, m in [("gw-1", "gateway", "m1"), ("api-1", "api", "m2"), ("db-1", "db", "m3"),
                         ("search-1", "search", "m1")]:
        nodes.append({"kind": "instance", "name": inst})
        edges.append({"kind": "instance_of", "from": inst, "to": svc})
        edges.append({"kind": "runs_on", "from": inst, "to": m})
    for a, b in [("gateway", "api"), ("api", "db"), ("gateway", "search")]:
        edges.append({"kind": "calls", "from": a, "to": b, "requests": 36000})
    return {"nodes": nodes, "edges": edges}


def series(rng, kind, entity, metric, level, fault_level=None, noise=0.03):
    values = []
    for i in range(N):
        base = fault_level if (fault_level is not None and i >= FAULT) else level
        values.append(round(max(0.0, base * (1 + rng.gauss(0, noise))), 3))
    return {"kind": kind, "entity": entity, "metric": metric, "values": values}


def situation(name, faults):
    """faults: {(kind, entity, metric): fault_level} overriding the normal levels."""
    rng = random.Random(name)
    normal = [
        ("service", "gateway", "latency_p99_ms", 60), ("service", "gateway", "requests", 500),
        ("service", "gateway", "error_rate", 0.01),
        ("service", "api", "latency_p99_ms", 40), ("service", "api", "requests", 500),
        ("service", "api", "error_rate", 0.01),
        ("service", "db", "latency_p99_ms", 20), ("service", "db", "requests", 500),
        ("service", "db", "error_rate", 0.005),
        ("service", "search", "latency_p99_ms", 30), ("service", "search", "requests", 200),
        ("service", "search", "error_rate", 0.02),
        ("edge", "gateway->api", "latency_p99_ms", 45), ("edge", "gateway->api", "retransmits", 0),
        ("edge", "gateway->api", "rtt_mean_ms", 0.2),
        ("edge", "api->db", "latency_p99_ms", 22), ("edge", "api->db", "retransmits", 0),
        ("edge", "api->db", "rtt_mean_ms", 0.2),
        ("edge", "gateway->search", "latency_p99_ms", 32), ("edge", "gateway->search", "retransmits", 0),
        ("machine", "m1", "cpu_throttled_s", 0.1), ("machine", "m1", "runq_p99_ms", 0.5),
        ("machine", "m2", "cpu_throttled_s", 0.1), ("machine", "m2", "runq_p99_ms", 0.5),
        ("machine", "m3", "cpu_throttled_s", 0.1), ("machine", "m3", "runq_p99_ms", 0.5),
        ("instance", "db-1", "memory_working_set_mb", 800),
    ]
    out = []
    for kind, entity, metric, level in normal:
        out.append(series(rng, kind, entity, metric, level, faults.get((kind, entity, metric))))
    s = {"window_s": W, "start_s": START,
         "alarm": {"kind": "service", "entity": "gateway", "metric": "latency_p99_ms",
                   "at_s": START + FAULT * W},
         "topology": topology(), "series": out}
    with open(name + ".json", "w") as f:
        json.dump(s, f, indent=1)
        f.write("\n")


slow = {("service", "db", "latency_p99_ms"): 80, ("edge", "api->db", "latency_p99_ms"): 82,
        ("service", "api", "latency_p99_ms"): 100, ("edge", "gateway->api", "latency_p99_ms"): 105,
        ("service", "gateway", "latency_p99_ms"): 120}
situation("slow_leaf", slow)
situation("edge_loss", {("edge", "gateway->api", "latency_p99_ms"): 250,
                        ("edge", "gateway->api", "retransmits"): 30,
                        ("edge", "gateway->api", "rtt_mean_ms"): 0.9,
                        ("service", "gateway", "latency_p99_ms"): 260})
situation("cpu_exhaustion", {**slow, ("machine", "m3", "cpu_throttled_s"): 3.5,
                             ("machine", "m3", "runq_p99_ms"): 40})
situation("negative_sibling", {**slow, ("service", "search", "latency_p99_ms"): 10,
                               ("edge", "gateway->search", "latency_p99_ms"): 12})
situation("fault_free", {})
