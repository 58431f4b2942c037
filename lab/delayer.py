#!/usr/bin/env python3
"""Holds each packet of one netfilter queue for a fixed time, then lets it go.

  delayer.py --queue N --ms MS [--max-seconds S]

The delay fault's way where the kernel has no netem qdisc: an iptables NFQUEUE rule (with
--queue-bypass, so packets pass while nothing listens) sends the caller's packets to the callee
here, and each one's ACCEPT verdict is given MS after it arrived. FIFO order is kept, as netem
without jitter keeps it. Only packet metadata is copied to user space. Speaks nfnetlink_queue
directly (stdlib only); runs in the caller's network namespace. Exits after --max-seconds; a
packet still held then is dropped by the kernel, which is why the revert removes the rule first.
"""
import argparse
import collections
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5
SO_RCVBUFFORCE = 33


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def message(msg, queue, attrs, flags=NLM_F_REQUEST, seq=0):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body


def attrs_of(buf, off, end):
    while off + 4 <= end:
        n, kind = struct.unpack_from("=HH", buf, off)
        if n < 4:
            break
        yield kind & 0x7fff, buf[off + 4:off + n]
        off += (n + 3) & ~3


def configure(sock, queue):
    # Each config message asks for an ACK, so that a refused bind fails here, not silently.
    steps = [
        [attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, socket.htons(socket.AF_INET)))],
        [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
         attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 4096)),
         attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
         attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))],
    ]
    for seq, attrs in enumerate(steps, 1):
        sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        buf = sock.recv(65536)
        _, kind = struct.unpack_from("=IH", buf, 0)
        if kind == NLMSG_ERROR:
            err = struct.unpack_from("=i", buf, 16)[0]
            if err:
                raise OSError(-err, "nfqueue config step %d" % seq)


def main():
    ap = argparse.ArgumentParser(prog="delayer.py")
    ap.add_argument("--queue", type=int, required=True)
    ap.add_argument("--ms", type=float, required=True)
    ap.add_argument("--max-seconds", type=float, default=3600.0)
    args = ap.parse_args()
    delay = args.ms / 1000.0
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    configure(sock, args.queue)
    print("ready", flush=True)
    held = collections.deque()  # (due, packet id)
    end = time.monotonic() + args.max_seconds
    while time.monotonic() < end:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, pid = held.popleft()
            sock.send(message(NFQNL_MSG_VERDICT, args.queue,
                              [attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))]))
        timeout = max(0.0, held[0][0] - now) if held else 0.5
        if not select.select([sock], [], [], timeout)[0]:
            continue
        buf = sock.recv(1 << 16)
        arrived = time.monotonic()
        off = 0
        while off + 16 <= len(buf):  # one read may carry several messages
            n, kind = struct.unpack_from("=IH", buf, off)
            if n < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                for a, payload in attrs_of(buf, off + 20, off + n):
                    if a == NFQA_PACKET_HDR:
                        held.append((arrived + delay, struct.unpack_from("!I", payload, 0)[0]))
            off += (n + 3) & ~3
    return 0


if __name__ == "__main__":
    sys.exit(main())
