/* Events and map layouts of tcp_health.bpf.c: connect outcomes, resets, per-flow counters. */
#ifndef FAULTLINE_TCP_HEALTH_EVENT_H
#define FAULTLINE_TCP_HEALTH_EVENT_H

#include "fl_types.h"

enum fl_tcp_kind {
	FL_TCP_CONNECT = 1,  /* an active open ended (see `result`) */
	FL_TCP_RESET_SENT = 2,
	FL_TCP_RESET_RECEIVED = 3,
};

enum fl_connect_result {
	FL_CONNECT_ESTABLISHED = 1,
	FL_CONNECT_REFUSED = 2,  /* SYN_SENT ended by a received reset */
	FL_CONNECT_FAILED = 3,   /* SYN_SENT ended any other way */
};

struct fl_tcp_event {
	__u64 ts_ns;        /* CLOCK_MONOTONIC ns */
	__u64 duration_ns;  /* connect: SYN to outcome */
	__u64 sock_id;      /* 0 when no socket existed (a reset for an unknown connection) */
	__u64 cgroup_id;
	__u32 tgid;         /* process that started the connect; 0 in kernel context */
	__u8 kind;          /* enum fl_tcp_kind */
	__u8 result;        /* enum fl_connect_result */
	__u8 tcp_state;     /* socket state at the event */
	__u8 role;          /* enum fl_role of the socket, as its owner record says */
	char comm[FL_COMM_LEN];
	struct fl_tuple tuple;
	__u8 self;          /* the agent's own socket */
	__u8 pad2[3];
};

struct fl_flow_stats {
	__u64 packets_out;
	__u64 bytes_out;
	__u64 packets_in;
	__u64 bytes_in;
	__u64 retransmits;
	__u64 drops;
	__u64 last_seen_ns;
	__u32 srtt_us;
	__u32 pad;
};

/* Drops of one flow by kernel drop reason. */
struct fl_drop_key {
	struct fl_flow_key flow;
	__u32 reason;  /* enum skb_drop_reason value of this kernel */
	__u32 pad;
};

#endif
