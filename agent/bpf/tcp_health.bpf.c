// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcp_health: connect outcomes, resets, retransmits, drops with their reason, and per-flow
 * packet/byte counters, from tcp:*, sock:*, skb:* and net:* tracepoints (tp_btf).
 *
 * Discrete events (connect outcomes, resets) go to the `tcp_events` ring buffer; per-packet
 * signals only update the `flows` and `flow_drops` maps, which user space reads once per interval.
 * Nothing is sent per packet. */
#include "fl_common.bpf.h"
#include "sock_owner.bpf.h"
#include "tcp_health_event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FL_TCP_ESTABLISHED 1
#define FL_TCP_SYN_SENT 2
#define FL_TCP_CLOSE 7
#define FL_TCP_TIME_WAIT 6
#define FL_TCP_NEW_SYN_RECV 12

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} tcp_events SEC(".maps");

struct connect_info {
	__u64 start_ns;
	__u64 cgroup_id;
	__u32 tgid;
	__u32 reset;
	char comm[FL_COMM_LEN];
	struct fl_tuple tuple; /* taken at SYN time: a failed socket loses its local port */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct connect_info);
} connecting SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fl_flow_key);
	__type(value, struct fl_flow_stats);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct fl_drop_key);
	__type(value, __u64);
} flow_drops SEC(".maps");

static __always_inline void fl_emit(struct fl_tcp_event *e)
{
	if (bpf_ringbuf_output(&tcp_events, e, sizeof(*e), 0))
		fl_kstat_inc(FL_KSTAT_RINGBUF_FULL);
}

static __always_inline struct fl_flow_stats *fl_flow(const struct fl_flow_key *k)
{
	struct fl_flow_stats *s = bpf_map_lookup_elem(&flows, k);
	if (s)
		return s;
	struct fl_flow_stats zero = {};
	if (bpf_map_update_elem(&flows, k, &zero, BPF_NOEXIST) && bpf_map_lookup_elem(&flows, k) == NULL) {
		fl_kstat_inc(FL_KSTAT_FLOW_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&flows, k);
}

/* Parses the IPv4/IPv6 + TCP headers starting at `l3`; fills the flow key with the local side
 * first (`egress`: this host sent the packet). Returns the IP packet length, or 0 if not TCP.
 * One read covers the IP header and the ports in the common case (IPv4 without options, IPv6
 * with TCP as the next header): each bpf_probe_read_kernel costs tens of ns, per packet. */
static __always_inline __u32 fl_parse_l3(const unsigned char *l3, bool egress, struct fl_flow_key *k)
{
	union {
		struct {
			struct iphdr ip;
			__u16 ports[2];
		} v4;
		struct {
			struct ipv6hdr ip6;
			__u16 ports[2];
		} v6;
		__u8 vh;
	} h;
	__u16 *ports;
	__u32 len = 0;

	if (bpf_probe_read_kernel(&h.v4, sizeof(h.v4), l3))
		return 0;
	if ((h.vh >> 4) == 4) {
		if (h.v4.ip.protocol != FL_IPPROTO_TCP)
			return 0;
		ports = h.v4.ports;
		if ((h.vh & 0xf) != 5 &&
		    bpf_probe_read_kernel(ports, sizeof(h.v4.ports), l3 + (h.vh & 0xf) * 4))
			return 0;
		__builtin_memcpy(egress ? k->laddr : k->raddr, &h.v4.ip.saddr, 4);
		__builtin_memcpy(egress ? k->raddr : k->laddr, &h.v4.ip.daddr, 4);
		len = bpf_ntohs(h.v4.ip.tot_len);
	} else if ((h.vh >> 4) == 6) {
		if (bpf_probe_read_kernel(&h.v6, sizeof(h.v6), l3) || h.v6.ip6.nexthdr != FL_IPPROTO_TCP)
			return 0;
		ports = h.v6.ports;
		__builtin_memcpy(egress ? k->laddr : k->raddr, &h.v6.ip6.saddr, 16);
		__builtin_memcpy(egress ? k->raddr : k->laddr, &h.v6.ip6.daddr, 16);
		len = bpf_ntohs(h.v6.ip6.payload_len) + sizeof(h.v6.ip6);
	} else {
		return 0;
	}
	k->lport = bpf_ntohs(egress ? ports[0] : ports[1]);
	k->rport = bpf_ntohs(egress ? ports[1] : ports[0]);
	return len ? len : 1;
}

/* `skb` is BTF-typed (tp_btf): its fields are plain loads. */
static __always_inline __u32 fl_skb_netns(const struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	if (dev)
		return dev->nd_net.net->ns.inum;
	struct sock *sk = skb->sk;
	return sk ? fl_sock_netns(sk) : 0;
}

static __always_inline bool fl_full_tcp_sock(const struct sock *sk)
{
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	return state != FL_TCP_TIME_WAIT && state != FL_TCP_NEW_SYN_RECV &&
	       BPF_CORE_READ(sk, __sk_common.skc_family) != 0 && fl_is_tcp_sock(sk);
}

static __always_inline void fl_count_packet(const struct sk_buff *skb, const unsigned char *l3,
					    bool egress)
{
	struct fl_flow_key k = {};
	struct fl_flow_stats *s;
	__u32 len = fl_parse_l3(l3, egress, &k);
	if (!len)
		return;
	k.netns = fl_skb_netns(skb);
	s = fl_flow(&k);
	if (!s)
		return;
	if (egress) {
		__u64 n = __sync_fetch_and_add(&s->packets_out, 1);
		__sync_fetch_and_add(&s->bytes_out, len);
		/* Sample the socket's smoothed RTT on every 16th packet. */
		struct sock *sk = (n & 15) == 0 ? skb->sk : NULL;
		if (sk && fl_full_tcp_sock(sk))
			s->srtt_us = fl_sock_srtt_us(sk);
	} else {
		__sync_fetch_and_add(&s->packets_in, 1);
		__sync_fetch_and_add(&s->bytes_in, len);
	}
	s->last_seen_ns = bpf_ktime_get_ns();
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(fl_net_dev_queue, struct sk_buff *skb)
{
	fl_count_packet(skb, skb->head + skb->network_header, true);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(fl_netif_receive_skb, struct sk_buff *skb)
{
	/* The link-layer header is already pulled: data points at the IP header. */
	fl_count_packet(skb, skb->data, false);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(fl_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	struct fl_tuple t = {};
	struct fl_flow_key k = {};
	struct fl_flow_stats *s;

	fl_tuple_from_sock(sk, &t);
	fl_key_from_tuple(&t, &k);
	s = fl_flow(&k);
	if (!s)
		return 0;
	__sync_fetch_and_add(&s->retransmits, 1);
	if (fl_full_tcp_sock(sk))
		s->srtt_us = fl_sock_srtt_us(sk);
	s->last_seen_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(fl_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct fl_drop_key dk = {};
	struct fl_flow_stats *s;
	__u64 one = 1, *count;
	unsigned char *head;
	__u16 nh;
	struct sock *sk;
	bool egress = false;

	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return 0;
	/* A closing socket purging its queues is not a network loss. */
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE))
		return 0;
	head = BPF_CORE_READ(skb, head);
	nh = BPF_CORE_READ(skb, network_header);
	if (nh == (__u16)~0U)
		return 0;
	/* Outgoing when the packet belongs to a socket whose local port is the TCP source port. */
	sk = BPF_CORE_READ(skb, sk);
	if (sk) {
		struct fl_flow_key probe = {};
		if (!fl_parse_l3(head + nh, true, &probe))
			return 0;
		egress = BPF_CORE_READ(sk, __sk_common.skc_num) == probe.lport;
	}
	if (!fl_parse_l3(head + nh, egress, &dk.flow))
		return 0;
	dk.flow.netns = fl_skb_netns(skb);
	dk.reason = reason;
	s = fl_flow(&dk.flow);
	if (s) {
		__sync_fetch_and_add(&s->drops, 1);
		s->last_seen_ns = bpf_ktime_get_ns();
	}
	count = bpf_map_lookup_elem(&flow_drops, &dk);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&flow_drops, &dk, &one, BPF_NOEXIST);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(fl_inet_sock_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	__u64 key = (__u64)sk;
	struct connect_info *ci;

	if (BPF_CORE_READ(sk, sk_protocol) != FL_IPPROTO_TCP)
		return 0;
	if (newstate == FL_TCP_SYN_SENT) {
		struct connect_info fresh = {};
		fresh.start_ns = bpf_ktime_get_ns();
		fresh.cgroup_id = bpf_get_current_cgroup_id();
		fresh.tgid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
		fl_tuple_from_sock(sk, &fresh.tuple);
		if (bpf_map_update_elem(&connecting, &key, &fresh, BPF_ANY))
			fl_kstat_inc(FL_KSTAT_CONNECT_MAP_FULL);
		return 0;
	}
	if (oldstate != FL_TCP_SYN_SENT)
		return 0;
	ci = bpf_map_lookup_elem(&connecting, &key);
	if (!ci)
		return 0;
	struct fl_tcp_event e = {};
	e.ts_ns = bpf_ktime_get_ns();
	e.duration_ns = e.ts_ns - ci->start_ns;
	e.sock_id = key;
	e.cgroup_id = ci->cgroup_id;
	e.tgid = ci->tgid;
	e.kind = FL_TCP_CONNECT;
	e.result = newstate == FL_TCP_ESTABLISHED ? FL_CONNECT_ESTABLISHED
		   : ci->reset			   ? FL_CONNECT_REFUSED
						   : FL_CONNECT_FAILED;
	e.tcp_state = newstate;
	e.role = FL_ROLE_CLIENT;
	__builtin_memcpy(e.comm, ci->comm, sizeof(e.comm));
	e.tuple = ci->tuple;
	if (newstate == FL_TCP_ESTABLISHED)
		fl_tuple_from_sock(sk, &e.tuple);
	bpf_map_delete_elem(&connecting, &key);
	fl_emit(&e);
	return 0;
}

/* Fills the event's process from the socket's recorded owner, when there is one. */
static __always_inline void fl_owner_into(struct fl_tcp_event *e)
{
	struct fl_flow_key k = {};
	struct fl_sock_owner *o;

	fl_key_from_tuple(&e->tuple, &k);
	o = bpf_map_lookup_elem(&sock_owner, &k);
	if (!o)
		return;
	e->tgid = o->tgid;
	e->cgroup_id = o->cgroup_id;
	e->role = o->role;
	e->self = o->self;
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(fl_tcp_receive_reset, struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct connect_info *ci = bpf_map_lookup_elem(&connecting, &key);
	struct fl_tcp_event e = {};

	if (ci)
		ci->reset = 1;
	e.ts_ns = bpf_ktime_get_ns();
	e.sock_id = key;
	e.kind = FL_TCP_RESET_RECEIVED;
	e.tcp_state = BPF_CORE_READ(sk, __sk_common.skc_state);
	fl_tuple_from_sock(sk, &e.tuple);
	if (ci) {
		e.tgid = ci->tgid;
		e.cgroup_id = ci->cgroup_id;
		e.role = FL_ROLE_CLIENT;
		__builtin_memcpy(e.comm, ci->comm, sizeof(e.comm));
	} else {
		fl_owner_into(&e);
	}
	fl_emit(&e);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(fl_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	struct fl_tcp_event e = {};

	e.ts_ns = bpf_ktime_get_ns();
	e.kind = FL_TCP_RESET_SENT;
	if (sk) {
		e.sock_id = (__u64)sk;
		e.tcp_state = BPF_CORE_READ(sk, __sk_common.skc_state);
		fl_tuple_from_sock(sk, &e.tuple);
		fl_owner_into(&e);
	} else if (skb) {
		/* No socket: the reset answers the incoming packet `skb` (local side = its dest). */
		struct fl_flow_key k = {};
		unsigned char *head = BPF_CORE_READ(skb, head);
		__u16 nh = BPF_CORE_READ(skb, network_header);
		__u8 vh = 0;
		if (!fl_parse_l3(head + nh, false, &k))
			return 0;
		bpf_probe_read_kernel(&vh, 1, head + nh);
		__builtin_memcpy(e.tuple.laddr, k.laddr, 16);
		__builtin_memcpy(e.tuple.raddr, k.raddr, 16);
		e.tuple.lport = k.lport;
		e.tuple.rport = k.rport;
		e.tuple.family = (vh >> 4) == 6 ? FL_AF_INET6 : FL_AF_INET;
		e.tuple.netns = fl_skb_netns(skb);
	} else {
		return 0;
	}
	fl_emit(&e);
	return 0;
}
