/* Types shared by every faultline BPF program and the agent: plain C, fixed-width, no pointers,
 * explicit padding. The C++ side static_asserts the sizes. */
#ifndef FAULTLINE_FL_TYPES_H
#define FAULTLINE_FL_TYPES_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define FL_AF_INET 2
#define FL_AF_INET6 10
#define FL_COMM_LEN 16

/* A TCP connection as seen from one side: l = local, r = remote. IPv4 addresses occupy the first
 * 4 bytes of the 16-byte fields (the rest is zero). Ports in host byte order. */
struct fl_tuple {
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u16 family;
	__u16 pad;
	__u32 netns;
};

enum fl_role {
	FL_ROLE_UNKNOWN = 0,
	FL_ROLE_CLIENT = 1,  /* the socket came from connect() */
	FL_ROLE_SERVER = 2,  /* the socket came from accept() */
};

/* Key of the per-flow counters and of the socket-owner map: one direction-independent entry per
 * connection, local side first. IPv4-mapped IPv6 addresses are stored as plain IPv4, so that a
 * dual-stack socket and its packets name the same flow. */
struct fl_flow_key {
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u32 netns;
};

/* The process that owns a socket, recorded by sock_io when the process connects, accepts or first
 * moves bytes on it (process context); read by tcp_health for resets and by user space for the
 * per-flow counters, which the kernel counts in softirq context where no process is known. */
struct fl_sock_owner {
	__u64 cgroup_id;
	__u32 tgid;
	__u8 role; /* enum fl_role: client (connect), server (accept), unknown (first I/O) */
	__u8 self; /* the agent's own socket: never reported */
	__u8 pad[2];
	char comm[FL_COMM_LEN];
};

/* Reasons the kernel side had to give something up; indexes of the per-CPU `fl_kstats` array. */
enum fl_kstat {
	FL_KSTAT_RINGBUF_FULL = 0,      /* an event was dropped: ring buffer full */
	FL_KSTAT_INFLIGHT_FULL = 1,     /* a syscall could not be tracked: in-flight map full */
	FL_KSTAT_PAYLOAD_FAULT = 2,     /* user memory could not be read; event sent without bytes */
	FL_KSTAT_SKIPPED_OTHER = 3,     /* data on a connection classified as not HTTP (not a loss) */
	FL_KSTAT_FLOW_MAP_FULL = 4,     /* a flow counter update failed: flow map full */
	FL_KSTAT_CONNECT_MAP_FULL = 5,  /* a connect attempt could not be timed */
	FL_KSTAT_RUNQ_PENDING_FULL = 6, /* a runnable task could not be timed: map full */
	FL_KSTAT_RUNQ_MAP_FULL = 7,     /* a cgroup's run-queue histogram could not be made */
	FL_KSTAT_IO_PENDING_FULL = 8,   /* a block request could not be timed: map full */
	FL_KSTAT_IO_MAP_FULL = 9,       /* a (device, cgroup) I/O entry could not be made */
	FL_KSTAT_OOM_RINGBUF_FULL = 10, /* an OOM kill event was dropped: ring buffer full */
	FL_KSTAT_MAX = 16,
};

#endif
