/* Events of sock_io.bpf.c: socket syscalls (data, open, close) with the first bytes of payload. */
#ifndef FAULTLINE_SOCK_IO_EVENT_H
#define FAULTLINE_SOCK_IO_EVENT_H

#include "fl_types.h"

/* Largest payload prefix the kernel side can capture; the configured size is at most this. */
#define FL_MAX_CAPTURE 4096
/* Bytes kept from the end of a payload larger than the capture (lets user space find the end of
 * a chunked body whose middle it did not see). */
#define FL_TAIL_LEN 16

enum fl_sock_kind {
	FL_SOCK_DATA = 1,   /* bytes moved by a read/write-family syscall */
	FL_SOCK_OPEN = 2,   /* accept/accept4/connect returned a connected socket */
	FL_SOCK_CLOSE = 3,  /* close() on a socket */
};

enum fl_direction {
	FL_DIR_NONE = 0,
	FL_DIR_EGRESS = 1,   /* this process sent the bytes */
	FL_DIR_INGRESS = 2,  /* this process received the bytes */
};

enum fl_syscall {
	FL_SYS_READ = 1, FL_SYS_WRITE, FL_SYS_READV, FL_SYS_WRITEV, FL_SYS_SENDTO, FL_SYS_RECVFROM,
	FL_SYS_SENDMSG, FL_SYS_RECVMSG, FL_SYS_SENDMMSG, FL_SYS_RECVMMSG, FL_SYS_SENDFILE,
	FL_SYS_CONNECT, FL_SYS_ACCEPT, FL_SYS_ACCEPT4, FL_SYS_CLOSE,
};

/* `tuple` is filled (always on open/close, on the first and every 64th data event of a
 * connection otherwise: user space remembers it per socket). */
#define FL_SOCK_F_TUPLE 1

/* Header of every sock_io event; `captured` payload bytes follow it in the ring buffer. */
struct fl_sock_event {
	__u64 ts_ns;        /* syscall exit (CLOCK_MONOTONIC ns) */
	__u64 duration_ns;  /* syscall enter to exit */
	__u64 sock_id;      /* opaque per-socket id (kernel address of the struct sock) */
	__u64 cgroup_id;    /* cgroup v2 id of the task */
	__u64 total_bytes;  /* bytes the syscall moved (sum over messages for *mmsg) */
	__u64 stream_offset; /* data: bytes this socket moved in this direction before this syscall;
			      * a jump means events were lost (user space skips the gap) */
	__u32 tgid;
	__u32 tid;
	__u32 fd;
	__u32 srtt_us;      /* the socket's smoothed RTT at the time, 0 if unknown */
	__u16 captured;     /* payload bytes that follow this header */
	__u8 kind;          /* enum fl_sock_kind */
	__u8 direction;     /* enum fl_direction */
	__u8 role;          /* enum fl_role as far as the kernel knows it */
	__u8 syscall;       /* enum fl_syscall */
	__u8 tail_len;      /* valid bytes in `tail` (the last bytes of the payload, not captured) */
	__u8 flags;         /* FL_SOCK_F_* */
	char comm[FL_COMM_LEN];
	struct fl_tuple tuple;
	__u8 tail[FL_TAIL_LEN];
	__u8 pad2[4];
};

#endif
