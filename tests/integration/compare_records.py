#!/usr/bin/python3
"""Compares the WindowRecords read back from faultline.metrics (read_window_records.py) with the
closed windows the processor stored (`faultline stream query --by-partition --closed-only`): at
least once means a record published twice is the same record; no loss means every stored closed
window has its record, with the same counts and catalog metrics.

usage: compare_records.py RECORDS.jsonl CLOSED.jsonl
"""
import json
import sys
from collections import Counter

everything = [json.loads(line) for line in open(sys.argv[1])]
stored = [json.loads(line) for line in open(sys.argv[2])]
records = [r for r in everything if r["kind"] != "watermark"]
watermarks = [r for r in everything if r["kind"] == "watermark"]

by_key = {}
for r in records:
    k = (r["partition"], r["start"], r["kind"], json.dumps(r["dims"], sort_keys=True))
    if k in by_key and by_key[k] != r:
        sys.exit("FAIL: two different records for %s" % (k,))
    by_key[k] = r
bad = [r for r in records if not (r["schema_version"] == 2 and r["window_seconds"] == 5 and r["has_stats"])]
if bad:
    sys.exit("FAIL: records without layout 2, 5 s windows and their state: %s" % bad[:1])


def dims(x):
    return json.dumps(x["dims"], sort_keys=True)


def stored_counts(w):
    net = w.get("network", {})
    return (w["start"], w["kind"], dims(w), w.get("requests", 0), w.get("status_4xx", 0),
            w.get("status_5xx", 0), net.get("retransmits", 0), net.get("connects_ok", 0),
            net.get("packets_out", 0))


got = Counter((r["start"], r["kind"], dims(r), r["requests"], r["status_4xx"], r["status_5xx"],
               r["retransmits"], r["connects_ok"], r["packets_out"]) for r in by_key.values())
want = Counter(stored_counts(w) for w in stored)
if got != want:
    sys.exit("FAIL: %d records, %d stored closed windows; missing %s; unexpected %s"
             % (sum(got.values()), sum(want.values()), list((want - got).items())[:3],
                list((got - want).items())[:3]))

# The catalog metrics travel with the counts (listeners carry none).
def close(a, b):
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-9 * max(1, abs(a[k])) for k in a)


stored_metrics = {}
for w in stored:
    if "metrics" in w:
        stored_metrics.setdefault((w["start"], dims(w)), []).append(
            {k: v for k, v in w["metrics"].items() if v is not None})
for r in by_key.values():
    if r["kind"] == "listener":
        if r["metrics"]:
            sys.exit("FAIL: a listener record carries metrics: %s" % r)
        continue
    candidates = stored_metrics.get((r["start"], dims(r)), [])
    if not any(close(m, r["metrics"]) for m in candidates):
        sys.exit("FAIL: record %s %s: metrics %s not among the stored %s"
                 % (r["start"], dims(r), r["metrics"], candidates))
# Watermarks: on every metrics partition, for every input partition, one covering its newest
# closed window, and none before a window record it covers on that metrics partition.
kafka_partitions = {r["kafka_partition"] for r in everything}
newest_closed = {}
for r in records:
    newest_closed[r["partition"]] = max(newest_closed.get(r["partition"], 0), r["start"])
for p, newest in newest_closed.items():
    for k in kafka_partitions:
        covered = [w["start"] for w in watermarks if w["partition"] == p and w["kafka_partition"] == k]
        if not covered or max(covered) < newest:
            sys.exit("FAIL: no watermark of input partition %d covers %d on metrics partition %d (%s)"
                     % (p, newest, k, covered[-3:]))
last_mark = {}
for r in everything:  # kcat prints each metrics partition's messages in their order
    key = (r["kafka_partition"], r["partition"])
    if r["kind"] == "watermark":
        last_mark[key] = max(last_mark.get(key, -1), r["start"])
    elif r["start"] <= last_mark.get(key, -1):
        sys.exit("FAIL: a window of %d came after a watermark covering it on metrics partition %d"
                 % (r["start"], r["kafka_partition"]))
print("watermarks: %d, on %d metrics partitions" % (len(watermarks), len(kafka_partitions)))
print("metrics topic: %d records (%d distinct) = the %d stored closed windows, with their metrics"
      % (len(records), len(by_key), len(stored)))
