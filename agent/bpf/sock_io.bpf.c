// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sock_io: socket syscalls seen from tracepoints, with the first bytes of each payload.
 *
 * sys_enter_* resolves the fd to a TCP socket (fd table -> file -> socket -> sock) and parks the
 * arguments in `inflight`; sys_exit_* reads the bytes the syscall moved and emits one event to the
 * `sock_events` ring buffer. A connection is classified on its first bytes: only connections that
 * start like HTTP/1.x ship payload; the others are skipped in the kernel (counted, not lost). */
#include "fl_common.bpf.h"
#include "sock_owner.bpf.h"
#include "sock_io_event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load. */
const volatile __u32 cfg_capture_bytes = 1024;   /* payload prefix per syscall, <= FL_MAX_CAPTURE */
const volatile __u32 cfg_ignore_tgid = 0;        /* the agent itself: never trace its own sockets */
const volatile __u64 cfg_wakeup_bytes = 65536;   /* wake the reader once this much is queued, per CPU */
const volatile __u32 cfg_netns = 0;              /* only this network namespace's tasks; 0: all */

/* An emulated machine's agent traces its own namespace only: the task's, read once per syscall. */
static __always_inline bool fl_other_netns(void)
{
	if (!cfg_netns)
		return false;
	struct task_struct *t = bpf_get_current_task_btf();
	return BPF_CORE_READ(t, nsproxy, net_ns, ns.inum) != cfg_netns;
}

#define FL_MAX_IOV 8
#define FL_MAX_MMSG 8
#define FL_CLASSIFY_TRIES 8
#define FL_EINPROGRESS 115

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} sock_events SEC(".maps");

struct io_args {
	__u64 active; /* a traced syscall of this thread is in flight */
	__u64 enter_ns;
	__u64 sk;
	__u64 buf;   /* buffer, iovec array, msghdr or mmsghdr array (user pointers) */
	__u64 count; /* iovec count or vlen */
	__u32 fd;
	__u8 syscall;
	__u8 self; /* the agent's own connect/accept: only its owner is recorded */
	__u8 pad[2];
};

/* Per-thread: the arguments of the traced syscall in flight (task storage: no hashing, no
 * locks, freed with the thread). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct io_args);
} inflight SEC(".maps");

enum { FL_PROTO_UNKNOWN = 0, FL_PROTO_HTTP = 1, FL_PROTO_OTHER = 2 };

struct conn_info {
	__u8 proto;
	__u8 role;
	__u8 tries;
	__u8 events; /* data events sent; the tuple rides on every 64th (and the first) */
	__u8 pad[4];
	__u64 bytes_out; /* bytes moved so far in each direction: the next event's stream offset */
	__u64 bytes_in;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* sock_id */
	__type(value, struct conn_info);
} conns SEC(".maps");

struct event_buf {
	struct fl_sock_event hdr;
	__u8 payload[FL_MAX_CAPTURE * 2]; /* twice the maximum so masked offsets stay in bounds */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_buf);
} scratch SEC(".maps");

static __always_inline struct sock *fl_fd_to_sock(__u64 fd)
{
	/* BTF-typed pointers: plain loads (checked by the verifier), no helper call per field. */
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	struct file *f;
	struct socket *sock;
	struct sock *sk;

	if (fd >= fdt->max_fds)
		return NULL;
	f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fdt->fd[fd]) || !f)
		return NULL;
	f = bpf_core_cast(f, struct file);
	if ((f->f_inode->i_mode & FL_S_IFMT) != FL_S_IFSOCK)
		return NULL;
	sock = bpf_core_cast(f->private_data, struct socket);
	if (!sock)
		return NULL;
	sk = sock->sk;
	if (!sk || !fl_is_tcp_sock(sk))
		return NULL;
	return sk;
}

static __always_inline bool fl_is_data_syscall(__u8 sc)
{
	return sc <= FL_SYS_SENDFILE;
}

static __always_inline int fl_enter(__u8 sc, __u64 fd, __u64 buf, __u64 count)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sock *sk = NULL;
	__u8 self = (__u32)(id >> 32) == cfg_ignore_tgid;

	/* The agent's own sockets are never traced; their owner is recorded on connect and accept
	 * only, so that their flows can be left out too. */
	if (self && sc != FL_SYS_CONNECT && sc != FL_SYS_ACCEPT && sc != FL_SYS_ACCEPT4)
		return 0;
	if (!self && fl_other_netns())
		return 0;
	if (sc != FL_SYS_ACCEPT && sc != FL_SYS_ACCEPT4) {
		sk = fl_fd_to_sock(fd);
		if (!sk)
			return 0;
		if (fl_is_data_syscall(sc)) {
			__u64 key = (__u64)sk;
			struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);
			if (ci && ci->proto == FL_PROTO_OTHER) {
				fl_kstat_inc(FL_KSTAT_SKIPPED_OTHER);
				return 0;
			}
		}
	}
	struct io_args *slot = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0,
						    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!slot) {
		fl_kstat_inc(FL_KSTAT_INFLIGHT_FULL);
		return 0;
	}
	slot->active = 1;
	slot->enter_ns = bpf_ktime_get_ns();
	slot->sk = (__u64)sk;
	slot->buf = buf;
	slot->count = count;
	slot->fd = fd;
	slot->syscall = sc;
	slot->self = self;
	return 0;
}

/* Records who owns `sk` (see sock_owner.bpf.h). `flags`: BPF_ANY for a new connection (a reused
 * tuple gets its new owner), BPF_NOEXIST for the first I/O seen on a connection of unknown origin. */
static __always_inline void fl_record_owner(struct sock *sk, __u8 role, __u8 self, __u64 flags)
{
	struct fl_tuple t = {};
	struct fl_flow_key k = {};
	struct fl_sock_owner o = {};

	fl_tuple_from_sock(sk, &t);
	fl_key_from_tuple(&t, &k);
	o.cgroup_id = bpf_get_current_cgroup_id();
	o.tgid = bpf_get_current_pid_tgid() >> 32;
	o.role = role;
	o.self = self;
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	bpf_map_update_elem(&sock_owner, &k, &o, flags);
}

static __always_inline void fl_fill_header(struct fl_sock_event *h, const struct io_args *a,
					   struct sock *sk, __u8 kind, __u64 now, bool with_tuple)
{
	__u64 id = bpf_get_current_pid_tgid();
	h->ts_ns = now;
	h->duration_ns = a ? now - a->enter_ns : 0;
	h->sock_id = (__u64)sk;
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->total_bytes = 0;
	h->tgid = id >> 32;
	h->tid = (__u32)id;
	h->fd = a ? a->fd : 0;
	h->srtt_us = fl_sock_srtt_us(sk);
	h->captured = 0;
	h->kind = kind;
	h->direction = FL_DIR_NONE;
	h->role = FL_ROLE_UNKNOWN;
	h->syscall = a ? a->syscall : 0;
	h->tail_len = 0;
	h->flags = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	if (with_tuple) {
		__builtin_memset(&h->tuple, 0, sizeof(h->tuple));
		fl_tuple_from_sock(sk, &h->tuple);
		h->flags |= FL_SOCK_F_TUPLE;
	}
}

/* Bytes this CPU has queued since it last woke the reader. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} wake_acc SEC(".maps");

/* Wakes the reader once this CPU has queued cfg_wakeup_bytes since its last wakeup. Asking the
 * ring how much is queued (bpf_ringbuf_query) reads the consumer's position, a cache line the
 * reader writes on another CPU: that miss cost 300-400 ns per event here, a third of the exit
 * program. The reader also drains every poll interval (kernel_probes.cc), so a CPU that queues
 * little is read within that interval without any wakeup. */
static __always_inline __u64 fl_wakeup_flags(__u64 size)
{
	__u32 zero = 0;
	__u64 *acc = bpf_map_lookup_elem(&wake_acc, &zero);
	if (!acc)
		return 0;
	*acc += size;
	if (*acc < cfg_wakeup_bytes)
		return BPF_RB_NO_WAKEUP;
	*acc = 0;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void fl_submit(struct event_buf *eb)
{
	__u64 size = sizeof(struct fl_sock_event) + (eb->hdr.captured & (2 * FL_MAX_CAPTURE - 1));
	if (size > sizeof(*eb))
		return;
	__u64 flags = fl_wakeup_flags(size);
	if (bpf_ringbuf_output(&sock_events, eb, size, flags))
		fl_kstat_inc(FL_KSTAT_RINGBUF_FULL);
}

/* Copies this segment's share of the head (the first `want` bytes of the payload) and of the tail
 * (the last bytes, when the head does not reach them). `seen` = payload bytes before it. */
static __always_inline int fl_capture_segment(struct event_buf *eb, __u64 base, __u64 len,
					      __u64 seen, __u64 total, __u32 want, __u32 *off)
{
	if (len > total - seen)
		len = total - seen;
	if (*off < want) {
		__u64 n = want - *off;
		if (n > len)
			n = len;
		if (n > FL_MAX_CAPTURE)
			n = FL_MAX_CAPTURE;
		barrier_var(n);
		if (n > FL_MAX_CAPTURE)
			return -1;
		if (bpf_probe_read_user(&eb->payload[*off & (FL_MAX_CAPTURE - 1)], n, (void *)base)) {
			fl_kstat_inc(FL_KSTAT_PAYLOAD_FAULT);
			return -1;
		}
		*off += n;
	}
	/* The tail lies in this segment when the segment ends the payload. */
	if (seen + len == total && total > want) {
		__u64 tail_start = total > want + FL_TAIL_LEN ? total - FL_TAIL_LEN : want;
		__u64 from = tail_start > seen ? tail_start : seen;
		__u64 n = total - from;
		if (n > FL_TAIL_LEN)
			n = FL_TAIL_LEN;
		barrier_var(n);
		if (n > 0 && n <= FL_TAIL_LEN &&
		    !bpf_probe_read_user(eb->hdr.tail, n, (void *)(base + (from - seen))))
			eb->hdr.tail_len = n;
	}
	return 0;
}

static __always_inline __u32 fl_capture_want(__u64 total)
{
	__u32 cap = cfg_capture_bytes < FL_MAX_CAPTURE ? cfg_capture_bytes : FL_MAX_CAPTURE;
	return total < cap ? total : cap;
}

static __always_inline void fl_capture_plain(struct event_buf *eb, __u64 buf, __u64 total)
{
	__u32 off = 0;
	fl_capture_segment(eb, buf, total, 0, total, fl_capture_want(total), &off);
	eb->hdr.captured = off;
}

/* True when the `n` captured bytes end an HTTP header block. */
static __always_inline bool fl_ends_headers(struct event_buf *eb, __u32 n)
{
	__u32 at;
	if (n < 4)
		return false;
	at = (n - 4) & (FL_MAX_CAPTURE - 1);
	return eb->payload[at] == '\r' && eb->payload[at + 1] == '\n' &&
	       eb->payload[at + 2] == '\r' && eb->payload[at + 3] == '\n';
}

/* Reads the tail of the payload from the segment that ends it, segments from `first` on. */
static __always_inline void fl_capture_tail_only(struct event_buf *eb, __u64 iov_ptr, __u64 iovcnt,
						 __u64 total, __u64 seen, __u32 first)
{
	for (int i = 1; i < FL_MAX_IOV; i++) {
		struct iovec v = {};
		__u64 len, from, n;
		if (i < first)
			continue;
		if (i >= iovcnt || seen >= total)
			return;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(iov_ptr + i * sizeof(v))))
			return;
		len = v.iov_len < total - seen ? v.iov_len : total - seen;
		if (seen + len == total) {
			from = total > FL_TAIL_LEN ? total - FL_TAIL_LEN : 0;
			if (from < seen)
				from = seen;
			n = total - from;
			if (n > FL_TAIL_LEN)
				n = FL_TAIL_LEN;
			barrier_var(n);
			if (n > 0 && n <= FL_TAIL_LEN &&
			    !bpf_probe_read_user(eb->hdr.tail, n, (void *)((__u64)v.iov_base + (from - seen))))
				eb->hdr.tail_len = n;
			return;
		}
		seen += len;
	}
}

static __always_inline void fl_capture_iov(struct event_buf *eb, __u64 iov_ptr, __u64 iovcnt,
					   __u64 total)
{
	__u32 want = fl_capture_want(total);
	__u32 off = 0;
	__u64 seen = 0;
	struct iovec first = {};

	/* A first segment that is exactly an HTTP header block (headers and body written as separate
	 * iovecs, as nginx does): the body needs no bytes, only the tail. */
	if (iovcnt > 1 && !bpf_probe_read_user(&first, sizeof(first), (void *)iov_ptr) &&
	    first.iov_len < want && first.iov_len < total) {
		if (fl_capture_segment(eb, (__u64)first.iov_base, first.iov_len, 0, total,
				       first.iov_len, &off) == 0 &&
		    off == first.iov_len && fl_ends_headers(eb, off)) {
			eb->hdr.captured = off;
			fl_capture_tail_only(eb, iov_ptr, iovcnt, total, first.iov_len, 1);
			return;
		}
		off = 0;
	}
	for (int i = 0; i < FL_MAX_IOV; i++) {
		struct iovec v = {};
		if (i >= iovcnt || seen >= total)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(iov_ptr + i * sizeof(v))))
			break;
		if (fl_capture_segment(eb, (__u64)v.iov_base, v.iov_len, seen, total, want, &off))
			break;
		seen += v.iov_len;
	}
	eb->hdr.captured = off;
}

static __always_inline bool fl_starts_http(const __u8 *p, __u32 n)
{
	if (n < 4)
		return false;
	/* Requests: a method followed by a space; responses: "HTTP". */
	if (p[0] == 'G' && p[1] == 'E' && p[2] == 'T' && p[3] == ' ')
		return true;
	if (p[0] == 'P' && (p[1] == 'O' || p[1] == 'U' || p[1] == 'A'))
		return true; /* POST, PUT, PATCH */
	if (p[0] == 'H' && ((p[1] == 'E' && p[2] == 'A' && p[3] == 'D') ||
			    (p[1] == 'T' && p[2] == 'T' && p[3] == 'P')))
		return true;
	if (p[0] == 'D' && p[1] == 'E' && p[2] == 'L')
		return true;
	if (p[0] == 'O' && p[1] == 'P' && p[2] == 'T')
		return true;
	if (p[0] == 'C' && p[1] == 'O' && p[2] == 'N')
		return true;
	if (p[0] == 'T' && p[1] == 'R' && p[2] == 'A')
		return true;
	return false;
}

static __always_inline int fl_exit_data(struct io_args *a, long ret, __u64 now, const __u8 sc)
{
	__u32 zero = 0;
	struct event_buf *eb;
	struct sock *sk = (struct sock *)a->sk;
	__u64 key = a->sk;
	struct conn_info *ci;
	__u64 total = ret, iov_ptr = 0, iovcnt = 0, buf = 0;
	bool egress = sc == FL_SYS_WRITE || sc == FL_SYS_WRITEV || sc == FL_SYS_SENDTO ||
		      sc == FL_SYS_SENDMSG || sc == FL_SYS_SENDMMSG || sc == FL_SYS_SENDFILE;

	if (ret <= 0)
		return 0;
	ci = bpf_map_lookup_elem(&conns, &key);
	if (ci && ci->proto == FL_PROTO_OTHER) {
		fl_kstat_inc(FL_KSTAT_SKIPPED_OTHER);
		return 0;
	}
	eb = bpf_map_lookup_elem(&scratch, &zero);
	if (!eb)
		return 0;
	fl_fill_header(&eb->hdr, a, sk, FL_SOCK_DATA, now, !ci || (ci->events++ & 63) == 0);
	eb->hdr.direction = egress ? FL_DIR_EGRESS : FL_DIR_INGRESS;
	if (ci)
		eb->hdr.role = ci->role;
	eb->hdr.stream_offset = 0;

	switch (sc) {
	case FL_SYS_READ:
	case FL_SYS_WRITE:
	case FL_SYS_SENDTO:
	case FL_SYS_RECVFROM:
		buf = a->buf;
		break;
	case FL_SYS_READV:
	case FL_SYS_WRITEV:
		iov_ptr = a->buf;
		iovcnt = a->count;
		break;
	case FL_SYS_SENDMSG:
	case FL_SYS_RECVMSG: {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)a->buf))
			break;
		iov_ptr = (__u64)m.msg_iov;
		iovcnt = m.msg_iovlen;
		break;
	}
	case FL_SYS_SENDMMSG:
	case FL_SYS_RECVMMSG: {
		/* ret is a message count: sum the bytes of the first messages, capture the first. */
		struct mmsghdr mm = {};
		total = 0;
		for (int i = 0; i < FL_MAX_MMSG; i++) {
			if (i >= ret)
				break;
			if (bpf_probe_read_user(&mm, sizeof(mm),
						(void *)(a->buf + i * sizeof(struct mmsghdr))))
				break;
			if (i == 0) {
				iov_ptr = (__u64)mm.msg_hdr.msg_iov;
				iovcnt = mm.msg_hdr.msg_iovlen;
			}
			total += mm.msg_len;
		}
		if (iov_ptr == 0)
			return 0;
		break;
	}
	default: /* sendfile: bytes only */
		break;
	}
	eb->hdr.total_bytes = total;
	if (ci)
		eb->hdr.stream_offset =
			__sync_fetch_and_add(egress ? &ci->bytes_out : &ci->bytes_in, total);
	if (buf && total > 0)
		fl_capture_plain(eb, buf, total);
	else if (iov_ptr && total > 0)
		fl_capture_iov(eb, iov_ptr, iovcnt, total);

	if (!ci || ci->proto == FL_PROTO_UNKNOWN) {
		struct conn_info fresh = {};
		struct conn_info *c = ci ? ci : &fresh;
		if (!ci) {
			/* A connection seen first here (opened before the agent started): its owner. */
			fl_record_owner(sk, FL_ROLE_UNKNOWN, 0, BPF_NOEXIST);
			if (egress)
				fresh.bytes_out = total;
			else
				fresh.bytes_in = total;
		}
		if (fl_starts_http(eb->payload, eb->hdr.captured)) {
			c->proto = FL_PROTO_HTTP;
		} else if (++c->tries >= FL_CLASSIFY_TRIES) {
			c->proto = FL_PROTO_OTHER;
		}
		if (!ci)
			bpf_map_update_elem(&conns, &key, c, BPF_ANY);
		if (c->proto != FL_PROTO_HTTP) {
			fl_kstat_inc(FL_KSTAT_SKIPPED_OTHER);
			return 0;
		}
	}
	fl_submit(eb);
	return 0;
}

static __always_inline void fl_emit_simple(struct io_args *a, struct sock *sk, __u8 kind,
					   __u8 role, __u64 now)
{
	__u32 zero = 0;
	struct event_buf *eb = bpf_map_lookup_elem(&scratch, &zero);
	if (!eb)
		return;
	fl_fill_header(&eb->hdr, a, sk, kind, now, true);
	eb->hdr.role = role;
	fl_submit(eb);
}

static __always_inline int fl_exit(long ret, const __u8 sc)
{
	__u64 now;
	struct io_args *p = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0, 0);
	struct io_args a;

	if (!p || !p->active)
		return 0;
	a = *p;
	p->active = 0;
	now = bpf_ktime_get_ns();

	if (fl_is_data_syscall(sc))
		return fl_exit_data(&a, ret, now, sc);

	if (sc == FL_SYS_CONNECT) {
		struct conn_info c = {.role = FL_ROLE_CLIENT};
		__u64 key = a.sk;
		if (ret != 0 && ret != -FL_EINPROGRESS)
			return 0;
		/* connect() has bound the local port by now (before the SYN left). */
		fl_record_owner((struct sock *)a.sk, FL_ROLE_CLIENT, a.self, BPF_ANY);
		if (a.self)
			return 0;
		bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
		fl_emit_simple(&a, (struct sock *)a.sk, FL_SOCK_OPEN, FL_ROLE_CLIENT, now);
	} else { /* accept, accept4: the new socket is the returned fd */
		struct conn_info c = {.role = FL_ROLE_SERVER};
		struct sock *sk;
		__u64 key;
		if (ret < 0)
			return 0;
		sk = fl_fd_to_sock(ret);
		if (!sk)
			return 0;
		key = (__u64)sk;
		a.fd = ret;
		fl_record_owner(sk, FL_ROLE_SERVER, a.self, BPF_ANY);
		if (a.self)
			return 0;
		bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
		fl_emit_simple(&a, sk, FL_SOCK_OPEN, FL_ROLE_SERVER, now);
	}
	return 0;
}

#define FL_ENTER(name, sc, fd_arg, buf_arg, count_arg)                                       \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                          \
	int fl_enter_##name(struct trace_event_raw_sys_enter *ctx)                           \
	{                                                                                    \
		return fl_enter(sc, ctx->args[fd_arg], buf_arg < 0 ? 0 : ctx->args[buf_arg], \
				count_arg < 0 ? 0 : ctx->args[count_arg]);                   \
	}

#define FL_EXIT(name, sc)                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                 \
	int fl_exit_##name(struct trace_event_raw_sys_exit *ctx)   \
	{                                                          \
		return fl_exit(ctx->ret, sc);                      \
	}

#define FL_SYSCALL(name, sc, fd_arg, buf_arg, count_arg) \
	FL_ENTER(name, sc, fd_arg, buf_arg, count_arg)   \
	FL_EXIT(name, sc)

FL_SYSCALL(read, FL_SYS_READ, 0, 1, -1)
FL_SYSCALL(write, FL_SYS_WRITE, 0, 1, -1)
FL_SYSCALL(readv, FL_SYS_READV, 0, 1, 2)
FL_SYSCALL(writev, FL_SYS_WRITEV, 0, 1, 2)
FL_SYSCALL(sendto, FL_SYS_SENDTO, 0, 1, -1)
FL_SYSCALL(recvfrom, FL_SYS_RECVFROM, 0, 1, -1)
FL_SYSCALL(sendmsg, FL_SYS_SENDMSG, 0, 1, -1)
FL_SYSCALL(recvmsg, FL_SYS_RECVMSG, 0, 1, -1)
FL_SYSCALL(sendmmsg, FL_SYS_SENDMMSG, 0, 1, 2)
FL_SYSCALL(recvmmsg, FL_SYS_RECVMMSG, 0, 1, 2)
FL_SYSCALL(sendfile64, FL_SYS_SENDFILE, 0, -1, -1)
FL_SYSCALL(connect, FL_SYS_CONNECT, 0, -1, -1)
FL_SYSCALL(accept, FL_SYS_ACCEPT, 0, -1, -1)
FL_SYSCALL(accept4, FL_SYS_ACCEPT4, 0, -1, -1)

static __always_inline int fl_close(__u64 fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct io_args a = {.syscall = FL_SYS_CLOSE};
	struct sock *sk;
	__u64 key;

	if ((__u32)(id >> 32) == cfg_ignore_tgid || fl_other_netns())
		return 0;
	sk = fl_fd_to_sock(fd);
	if (!sk)
		return 0;
	key = (__u64)sk;
	a.fd = fd;
	a.enter_ns = bpf_ktime_get_ns();
	/* Only connections user space is parsing need to hear about the close. */
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);
	if (ci && ci->proto == FL_PROTO_HTTP)
		fl_emit_simple(&a, sk, FL_SOCK_CLOSE, ci->role, a.enter_ns);
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int fl_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	return fl_close(ctx->args[0]);
}

/* The same syscalls through the raw syscall tracepoints (BTF-typed): two programs for every
 * syscall of every task instead of two per traced syscall, each called without the classic
 * tracepoint's record (about 200 ns per call on this machine even for a program that returns at
 * once). A syscall that is not traced costs a switch on its number. The loader attaches either
 * these or the per-syscall tracepoints above (kernel_probes.cc: --syscall-hooks). x86-64 numbers;
 * on other architectures the loader uses the tracepoints. */
#if defined(__TARGET_ARCH_x86)
enum {
	FL_NR_READ = 0, FL_NR_WRITE = 1, FL_NR_CLOSE = 3, FL_NR_READV = 19, FL_NR_WRITEV = 20,
	FL_NR_SENDFILE = 40, FL_NR_CONNECT = 42, FL_NR_ACCEPT = 43, FL_NR_SENDTO = 44,
	FL_NR_RECVFROM = 45, FL_NR_SENDMSG = 46, FL_NR_RECVMSG = 47, FL_NR_ACCEPT4 = 288,
	FL_NR_RECVMMSG = 299, FL_NR_SENDMMSG = 307,
};

/* The traced syscall a number stands for, 0 for the others. */
static __always_inline __u8 fl_syscall_of(long nr)
{
	switch (nr) {
	case FL_NR_READ: return FL_SYS_READ;
	case FL_NR_WRITE: return FL_SYS_WRITE;
	case FL_NR_READV: return FL_SYS_READV;
	case FL_NR_WRITEV: return FL_SYS_WRITEV;
	case FL_NR_SENDTO: return FL_SYS_SENDTO;
	case FL_NR_RECVFROM: return FL_SYS_RECVFROM;
	case FL_NR_SENDMSG: return FL_SYS_SENDMSG;
	case FL_NR_RECVMSG: return FL_SYS_RECVMSG;
	case FL_NR_SENDMMSG: return FL_SYS_SENDMMSG;
	case FL_NR_RECVMMSG: return FL_SYS_RECVMMSG;
	case FL_NR_SENDFILE: return FL_SYS_SENDFILE;
	case FL_NR_CONNECT: return FL_SYS_CONNECT;
	case FL_NR_ACCEPT: return FL_SYS_ACCEPT;
	case FL_NR_ACCEPT4: return FL_SYS_ACCEPT4;
	case FL_NR_CLOSE: return FL_SYS_CLOSE;
	default: return 0;
	}
}

SEC("tp_btf/sys_enter")
int BPF_PROG(fl_raw_enter, struct pt_regs *regs, long nr)
{
	__u8 sc = fl_syscall_of(nr);

	if (!sc)
		return 0;
	if (sc == FL_SYS_CLOSE)
		return fl_close(regs->di);
	/* Arguments as the per-syscall programs take them: fd, then the buffer (iovec array,
	 * msghdr, mmsghdr array), then the iovec count or vlen where there is one. */
	__u64 count = (sc == FL_SYS_READV || sc == FL_SYS_WRITEV || sc == FL_SYS_SENDMMSG ||
		       sc == FL_SYS_RECVMMSG) ? regs->dx : 0;
	__u64 buf = (sc == FL_SYS_SENDFILE || sc == FL_SYS_CONNECT || sc == FL_SYS_ACCEPT ||
		     sc == FL_SYS_ACCEPT4) ? 0 : regs->si;
	return fl_enter(sc, regs->di, buf, count);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(fl_raw_exit, struct pt_regs *regs, long ret)
{
	__u8 sc = fl_syscall_of(regs->orig_ax);

	if (!sc || sc == FL_SYS_CLOSE)
		return 0;
	return fl_exit(ret, sc);
}
#endif
