#!/usr/bin/python3
"""Checks a failover through the changelog against the changelog topic itself.

One processor of a pair (the victim) was SIGKILLed for good; the survivor then restored the
victim's partitions from the changelog. From the topic (read by kcat, decoded here independently:
the record format of stream/include/faultline/stream/changelog.h and RocksDB's WriteBatch layout)
this works out, for each partition the victim held when it died, what a restore at the survivor's
claim must start from (the victim's latest snapshot and the deltas after it) and the input offset
that state holds, and requires the survivor's log to say exactly that, and its consumer to resume
there:
  restored partition P from snapshot seq S (+N deltas), resuming input at offset O; claimed
    epoch E as chain C  (one line)
  partition P: assigned, resuming at O
No other partition may be restored after the death, and nothing may be fenced (the victim is dead).

usage: check_failover.py CHANGELOG_DUMP VICTIM_LOG SURVIVOR_LOG KILL_AT VICTIM_STATUS
  CHANGELOG_DUMP  `kcat -C -e -f '%p %o %S\\n%s'` of the changelog topic
  KILL_AT         the log timestamp (%Y-%m-%dT%H:%M:%S.%3N) taken just before the SIGKILL
  VICTIM_STATUS   the victim's /status just before the SIGKILL (its committed offsets)
Prints one line per restored partition; exits 1 with the reasons on a mismatch.
"""
import json
import re
import sys

dump_path, victim_log, survivor_log, kill_at, victim_status = sys.argv[1:6]
errors = []


def varint(b, pos):
    v, shift = 0, 0
    while True:
        byte = b[pos]
        pos += 1
        v |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return v, pos
        shift += 7


def decode(value):
    """A changelog record: (kind, epoch, chain, seq, part, last, body or base chain)."""
    magic = value[:4]
    if magic not in (b"FLC1", b"FLC2"):
        raise ValueError("magic %r" % magic)
    kind, pos = value[4], 5
    epoch = 0
    if magic == b"FLC2":
        epoch, pos = varint(value, pos)
    chain, pos = varint(value, pos)
    seq, pos = varint(value, pos)
    part, pos = varint(value, pos)
    last = value[pos] == 1
    rest = value[pos + 1:]
    if kind == 3:
        rest, _ = varint(rest, 0)
    return kind, epoch, chain, seq, part, last, rest


def batch_puts(rep):
    """The Puts of a RocksDB WriteBatch, in order (deletes are of keys other than meta/)."""
    count = int.from_bytes(rep[8:12], "little")
    pos, out = 12, []

    def slice_(p):
        n, p = varint(rep, p)
        return rep[p:p + n], p + n

    for _ in range(count):
        tag = rep[pos]
        pos += 1
        if tag in (0x4, 0x5, 0x6, 0x8, 0xE):  # column family variants: the family's id first
            _, pos = varint(rep, pos)
            tag = {0x4: 0x0, 0x5: 0x1, 0x6: 0x2, 0x8: 0x7, 0xE: 0xF}[tag]
        if tag in (0x0, 0x7):  # deletion, single deletion
            _, pos = slice_(pos)
        elif tag in (0x1, 0x2, 0xF):  # value, merge, range deletion
            key, pos = slice_(pos)
            value, pos = slice_(pos)
            if tag == 0x1:
                out.append((key, value))
        else:
            raise ValueError("write batch record type %d" % tag)
    return out


# --- The changelog, per partition, in log order.
data = open(dump_path, "rb").read()
log, pos = {}, 0
while pos < len(data):
    eol = data.index(b"\n", pos)
    partition, offset, size = (int(x) for x in data[pos:eol].split())
    value = data[eol + 1:eol + 1 + size]
    pos = eol + 1 + size
    log.setdefault(partition, []).append((offset, decode(value)))
for records in log.values():
    records.sort(key=lambda r: r[0])


def restore_at(records, claim):
    """What a restore reading `records` up to the claim (epoch, chain) keeps: the snapshot's
    chain and seq, the deltas after it, the last seq, the offset the state holds, and how many
    records were fenced. The rules of ChangelogReplay, written again."""
    epoch, owner = 0, 0
    snap_chain, base, deltas, writers = 0, 0, [], []  # deltas: (seq, chain, bytes)
    snapshot, fenced, parts = [], 0, {}
    for _, (kind, e, chain, seq, part, last, rest) in records:
        if kind == 3 and (e, chain) == claim:
            break
        if kind == 3:
            if e < epoch or (e == epoch and e > 0 and chain != owner):
                fenced += 1
                continue
            if e == epoch:
                continue
            epoch, owner = e, chain
            last_seq = base + len(deltas)
            for i in reversed(range(len(writers))):
                end = writers[i + 1][1] if i + 1 < len(writers) else last_seq
                if snap_chain and writers[i][0] == rest and writers[i][1] <= seq <= end:
                    fenced += len(deltas) - (seq - base)
                    del deltas[seq - base:]
                    del writers[i + 1:]
                    writers.append((chain, seq))
                    break
            continue
        a = parts.get(chain)
        if a is None or a["key"] != (kind, e, seq) or a["next"] != part:
            parts.pop(chain, None)
            if part != 0:
                continue
            a = parts[chain] = {"key": (kind, e, seq), "next": 0, "parts": []}
        a["parts"].append(rest)
        a["next"] += 1
        if not last:
            continue
        del parts[chain]
        if e < epoch or (e == epoch and e > 0 and chain != owner):
            fenced += 1
            continue
        if e > epoch:
            epoch, owner = e, chain
        if kind == 2:
            snap_chain, base, snapshot, deltas = chain, seq, a["parts"], []
            writers = [(chain, seq)]
        elif snap_chain and chain == writers[-1][0] and seq == base + len(deltas) + 1:
            deltas.append((seq, chain, b"".join(a["parts"])))
    offset = None
    for rep in snapshot + [d[2] for d in deltas]:
        for key, value in batch_puts(rep):
            if key == b"meta/offset":
                offset = varint(value, 0)[0]
    return (snap_chain, [w[0] for w in writers], base, len(deltas), base + len(deltas), offset,
            fenced)


# --- The victim's log: the partitions it held when it died, and its last claim of each.
held, victim_claims, victim_chains = {}, {}, {}
claim_re = r"claimed epoch (\d+) as chain (\d+)"
for line in open(victim_log, errors="replace"):
    m = re.search(r"partition (\d+): assigned, resuming", line)
    if m:
        held[int(m.group(1))] = True
    m = re.search(r"partition (\d+): released at offset", line)
    if m:
        held[int(m.group(1))] = False
    m = re.search(r"partition (\d+)\b.*" + claim_re, line)
    if m:
        victim_claims[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        victim_chains.setdefault(int(m.group(1)), set()).add(int(m.group(3)))
held = sorted(p for p, h in held.items() if h)
status = json.load(open(victim_status)).get("partitions", {})
if sorted(int(p) for p in status) != held:
    errors.append("the victim's log says it held partitions %s, its /status before the kill %s"
                  % (held, sorted(int(p) for p in status)))

# --- The survivor's log after the death.
restored, resumed, claims_after = {}, {}, {}
for line in open(survivor_log, errors="replace"):
    if line[:23] < kill_at:
        continue
    m = re.search(r"restored partition (\d+) from (\w+) seq (\d+) \(\+(\d+) deltas\), "
                  r"resuming input at offset (-?\d+); " + claim_re, line)
    if m:
        p = int(m.group(1))
        if p in restored:
            errors.append("partition %d restored twice after the kill" % p)
        restored[p] = (m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5)),
                       int(m.group(6)), int(m.group(7)))
    m = re.search(r"partition (\d+)\b.*" + claim_re, line)
    if m:
        claims_after.setdefault(int(m.group(1)), []).append((int(m.group(2)), int(m.group(3))))
    m = re.search(r"partition (\d+): assigned, resuming at (\d+)", line)
    if m:
        resumed[int(m.group(1))] = int(m.group(2))

if not held:
    errors.append("the victim held no partition when it died")
if sorted(restored) != held:
    errors.append("the survivor restored partitions %s after the kill, the victim held %s"
                  % (sorted(restored), held))
if not set(held) <= set(claims_after):
    errors.append("the survivor claimed partitions %s after the kill, the victim held %s"
                  % (sorted(claims_after), held))
total = 0
for p in held:
    if p not in restored:
        continue
    source, from_seq, n, offset, epoch, chain = restored[p]
    victim_epoch, victim_chain = victim_claims.get(p, (None, None))
    records = log.get(p, [])
    if (epoch, chain) not in [(r[1][1], r[1][2]) for r in records if r[1][0] == 3]:
        errors.append("partition %d: the survivor's claim (epoch %d, chain %d) is not on the "
                      "changelog" % (p, epoch, chain))
        continue
    snap_chain, writers, base, deltas, last_seq, want_offset, fenced = restore_at(records,
                                                                                (epoch, chain))
    want = ("snapshot", base, deltas, want_offset, victim_epoch + 1 if victim_epoch else None)
    got = (source, from_seq, n, offset, epoch)
    if got != want:
        errors.append("partition %d: the survivor restored (source, seq, deltas, offset, epoch) "
                      "%s; the changelog up to its claim holds %s" % (p, got, want))
    # The victim's disk was new: it wrote a snapshot of each partition it opened before any
    # delta; when it opened one again on its own disk, its later chain continued that snapshot.
    if snap_chain not in victim_chains.get(p, set()) or writers[-1] != victim_chain:
        errors.append("partition %d: restored the snapshot of chain %d then chains %s; the victim "
                      "wrote chains %s, the last %s" % (p, snap_chain, writers,
                                                        sorted(victim_chains.get(p, [])),
                                                        victim_chain))
    if fenced:
        errors.append("partition %d: %d records fenced, with no writer left behind" % (p, fenced))
    committed = status.get(str(p), {}).get("next_offset", 0)
    if want_offset is None or want_offset < max(1, committed):
        errors.append("partition %d: the changelog's state resumes at %s, before the %d messages "
                      "the victim had committed" % (p, want_offset, committed))
    if resumed.get(p) != offset:
        errors.append("partition %d: the consumer resumed at %s, the restored state holds %d"
                      % (p, resumed.get(p), offset))
    total += offset
    print("partition %d: restored from the victim's snapshot of seq %d (+%d deltas, to seq %d), "
          "resumed at offset %d (the victim had committed at least %d); epoch %d after the "
          "victim's %d" % (p, base, deltas, last_seq, offset, committed, epoch, victim_epoch))
if errors:
    for e in errors:
        print("FAIL: " + e, file=sys.stderr)
    sys.exit(1)
print("restored=%d resumed_total=%d" % (len(held), total))
