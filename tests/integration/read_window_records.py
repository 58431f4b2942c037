#!/usr/bin/python3
"""Decodes faultline.v1.WindowRecord messages that kcat consumed (`kcat -C -e -f '%p %S\\n%s'`:
each message's Kafka partition and size on a line, then its bytes) with protobuf's own Python runtime and the module protoc
generated from schema/metrics.proto (in the directory given), and prints one JSON line per record:
the fields a window query also shows, so the two can be compared.

usage: kcat … | read_window_records.py PB2_DIR > records.jsonl
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import metrics_pb2  # noqa: E402

data = sys.stdin.buffer.read()
pos, n = 0, 0
while pos < len(data):
    eol = data.index(b"\n", pos)
    kafka_partition, size = (int(x) for x in data[pos:eol].split())
    raw = data[eol + 1:eol + 1 + size]
    if len(raw) != size:
        sys.exit("FAIL: truncated message at byte %d" % pos)
    pos = eol + 1 + size
    r = metrics_pb2.WindowRecord()
    r.ParseFromString(raw)
    n += 1
    print(json.dumps({
        "kafka_partition": kafka_partition, "partition": r.input_partition, "start": r.window_start_unix_s, "kind": r.kind,
        "entity": r.entity, "dims": dict(sorted(r.dims.items())), "schema_version": r.schema_version,
        "window_seconds": r.window_seconds, "requests": r.requests, "status_4xx": r.status_4xx,
        "status_5xx": r.status_5xx, "retransmits": r.retransmits, "connects_ok": r.connects_ok,
        "packets_out": r.packets_out, "metrics": dict(sorted(r.metrics.items())),
        "has_stats": len(r.window_stats) > 0}, sort_keys=True))
print("records=%d" % n, file=sys.stderr)
