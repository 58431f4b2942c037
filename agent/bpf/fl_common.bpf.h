/* Kernel-only helpers shared by faultline's BPF programs. */
#ifndef FAULTLINE_FL_COMMON_BPF_H
#define FAULTLINE_FL_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fl_types.h"

/* A kernel pointer as a BTF-typed, read-only pointer: fields are then plain loads (kernel 6.2+
 * kfunc; libbpf >= 1.3 spells this bpf_core_cast). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define bpf_core_cast(ptr, type) \
	((type *)bpf_rdonly_cast((ptr), bpf_core_type_id_kernel(type)))

#define FL_IPPROTO_TCP 6
#define FL_SOCK_STREAM 1
#define FL_S_IFMT 00170000
#define FL_S_IFSOCK 0140000

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FL_KSTAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} fl_kstats SEC(".maps");

static __always_inline void fl_kstat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&fl_kstats, &idx);
	if (v)
		*v += 1;
}

static __always_inline __u32 fl_sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* True for a TCP socket of family AF_INET or AF_INET6. */
static __always_inline bool fl_is_tcp_sock(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != FL_AF_INET && family != FL_AF_INET6)
		return false;
	return BPF_CORE_READ(sk, sk_protocol) == FL_IPPROTO_TCP &&
	       BPF_CORE_READ(sk, sk_type) == FL_SOCK_STREAM;
}

static __always_inline void fl_tuple_from_sock(const struct sock *sk, struct fl_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->family = family;
	t->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->netns = fl_sock_netns(sk);
	if (family == FL_AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(t->laddr, &l, 4);
		__builtin_memcpy(t->raddr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(t->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(t->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/* The flow key of a socket tuple, with IPv4-mapped IPv6 addresses (a dual-stack listener's
 * connections) as plain IPv4: the form the packet parser produces. */
static __always_inline void fl_key_from_tuple(const struct fl_tuple *t, struct fl_flow_key *k)
{
	__builtin_memcpy(k->laddr, t->laddr, 16);
	__builtin_memcpy(k->raddr, t->raddr, 16);
	k->lport = t->lport;
	k->rport = t->rport;
	k->netns = t->netns;
	if (t->family != FL_AF_INET6)
		return;
	__u32 w[4];
	__builtin_memcpy(w, k->laddr, 16);
	if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff)) {
		__builtin_memset(k->laddr, 0, 16);
		__builtin_memcpy(k->laddr, &w[3], 4);
	}
	__builtin_memcpy(w, k->raddr, 16);
	if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff)) {
		__builtin_memset(k->raddr, 0, 16);
		__builtin_memcpy(k->raddr, &w[3], 4);
	}
}

static __always_inline __u32 fl_sock_srtt_us(const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	return BPF_CORE_READ(tp, srtt_us) >> 3; /* srtt_us is stored <<3 */
}

#endif
