#!/usr/bin/python3
"""Checks `faultline stream query`'s filters against the unfiltered query, filtered here: each
filtered output must be exactly the windows of all.jsonl that the filter keeps, in order.

usage: check_query_filters.py WORK_DIR SINCE   (WORK_DIR holds all.jsonl and q-*.jsonl)
"""
import json
import sys

work, since = sys.argv[1], int(sys.argv[2])


def load(name):
    return [json.loads(line) for line in open("%s/%s.jsonl" % (work, name))]


all_ = load("all")


def same(name, keep):
    got, want = load(name), [x for x in all_ if keep(x)]
    if got != want:
        sys.exit("FAIL: %s: %d windows, expected %d" % (name, len(got), len(want)))
    if not got:
        sys.exit("FAIL: %s: nothing to compare" % name)
    return len(got)


n_kind = same("q-kind", lambda x: x["kind"] == "edge")
n_entity = same("q-entity", lambda x: x["entity"] == "svc-3" or "svc-3" in x["dims"].values())
n_since = same("q-since", lambda x: x["start"] >= since)
n_closed = same("q-closed", lambda x: not x["open"])
if not (n_kind < len(all_) and n_entity < len(all_) and n_since < len(all_) and n_closed < len(all_)):
    sys.exit("FAIL: a filter kept every window, so it was not tested")
# Each machine's events go to one partition here, so no series spans two: one record each way.
# (Merging across partitions is covered by partition_state_test.)
parts = load("q-parts")
if len(parts) != len(all_):
    sys.exit("FAIL: --by-partition gave %d windows, merged %d" % (len(parts), len(all_)))
if sum(x.get("requests", 0) for x in parts) != sum(x.get("requests", 0) for x in all_):
    sys.exit("FAIL: the partitions' requests do not add up to the merged windows'")
print("query filters: kind %d, entity %d, since %d, closed %d of %d; by partition %d"
      % (n_kind, n_entity, n_since, n_closed, len(all_), len(parts)))
