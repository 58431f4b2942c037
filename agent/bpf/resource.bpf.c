/* faultline's resource-pressure probes: run-queue latency per cgroup (sched_wakeup,
 * sched_wakeup_new, sched_switch), block I/O bytes and latency per device and cgroup
 * (block_rq_issue, block_rq_complete), and OOM kills (oom:mark_victim), all tp_btf.
 *
 * Everything is summed in bounded hash maps that user space reads once per interval (cumulative
 * counters, deltas taken there); only OOM kills are events. A full map is counted in fl_kstats,
 * never silent. */
#include "fl_common.bpf.h"
#include "resource_event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FL_TASK_RUNNING 0
#define FL_REQ_OP_MASK 0xff
#define FL_REQ_OP_READ 0
#define FL_REQ_OP_WRITE 1
#define FL_MINORBITS 20

/* Runnable since (ns), by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} runq_since SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fl_runq_key);
	__type(value, struct fl_hist);
} runq_hist SEC(".maps");

struct fl_io_pending {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 dev;
	__u32 op;
};

/* Requests issued and not yet completed, by request address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct fl_io_pending);
} io_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fl_io_key);
	__type(value, struct fl_io_stats);
} io_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 65536);
} oom_events SEC(".maps");

/* The kernfs id of a task's cgroup for one controller (v1: that controller's hierarchy; v2: the
 * cgroup where the controller is in effect). */
static __always_inline __u64 fl_subsys_cgroup_id(struct task_struct *t, int subsys)
{
	struct css_set *cs = BPF_CORE_READ(t, cgroups);
	struct cgroup_subsys_state *css = NULL;
	if (!cs || subsys < 0 || subsys >= 16)
		return 0;
	bpf_core_read(&css, sizeof(css), &cs->subsys[subsys]);
	if (!css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

static __always_inline __u32 fl_log2(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

static __always_inline void fl_hist_add(struct fl_hist *h, __u64 ns)
{
	__u32 b = fl_log2(ns);
	if (b >= FL_HIST_BUCKETS)
		b = FL_HIST_BUCKETS - 1;
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum_ns, ns);
	__sync_fetch_and_add(&h->buckets[b & (FL_HIST_BUCKETS - 1)], 1);
}

static __always_inline void fl_runnable(struct task_struct *p)
{
	__u32 tid = BPF_CORE_READ(p, pid);
	__u64 now = bpf_ktime_get_ns();
	if (tid == 0)
		return;
	if (bpf_map_update_elem(&runq_since, &tid, &now, BPF_ANY) != 0)
		fl_kstat_inc(FL_KSTAT_RUNQ_PENDING_FULL);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(fl_sched_wakeup, struct task_struct *p)
{
	fl_runnable(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(fl_sched_wakeup_new, struct task_struct *p)
{
	fl_runnable(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(fl_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	/* Preempted while runnable: it waits in the run queue from now on. */
	if (prev_state == FL_TASK_RUNNING)
		fl_runnable(prev);
	__u32 tid = BPF_CORE_READ(next, pid);
	if (tid == 0)
		return 0;
	__u64 *since = bpf_map_lookup_elem(&runq_since, &tid);
	if (!since)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 waited = now > *since ? now - *since : 0;
	bpf_map_delete_elem(&runq_since, &tid);
	struct fl_runq_key key = {
		.cgroup_id = fl_subsys_cgroup_id(next, bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id)),
	};
	struct fl_hist *h = bpf_map_lookup_elem(&runq_hist, &key);
	if (!h) {
		struct fl_hist zero = {};
		if (bpf_map_update_elem(&runq_hist, &key, &zero, BPF_NOEXIST) != 0 &&
		    !bpf_map_lookup_elem(&runq_hist, &key)) {
			fl_kstat_inc(FL_KSTAT_RUNQ_MAP_FULL);
			return 0;
		}
		h = bpf_map_lookup_elem(&runq_hist, &key);
		if (!h)
			return 0;
	}
	fl_hist_add(h, waited);
	return 0;
}

static __always_inline __u32 fl_rq_dev(struct request *rq)
{
	__u32 dev = BPF_CORE_READ(rq, part, bd_dev);
	if (dev)
		return dev;
	struct gendisk *disk = BPF_CORE_READ(rq, q, disk);
	if (!disk)
		return 0;
	return (BPF_CORE_READ(disk, major) << FL_MINORBITS) | BPF_CORE_READ(disk, first_minor);
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(fl_block_rq_issue, struct request *rq)
{
	struct fl_io_pending p = {};
	__u64 key = (__u64)rq;
	__u32 op = BPF_CORE_READ(rq, cmd_flags) & FL_REQ_OP_MASK;
	p.ts_ns = bpf_ktime_get_ns();
	p.dev = fl_rq_dev(rq);
	p.op = op == FL_REQ_OP_READ ? FL_IO_READ : op == FL_REQ_OP_WRITE ? FL_IO_WRITE : FL_IO_OTHER;
	/* The request's own io cgroup (blk-cgroup), else the issuing task's. */
	if (bpf_core_field_exists(struct bio, bi_blkg)) {
		struct blkcg_gq *blkg = BPF_CORE_READ(rq, bio, bi_blkg);
		if (blkg)
			p.cgroup_id = BPF_CORE_READ(blkg, blkcg, css.cgroup, kn, id);
	}
	if (!p.cgroup_id)
		p.cgroup_id = fl_subsys_cgroup_id(bpf_get_current_task_btf(),
						  bpf_core_enum_value(enum cgroup_subsys_id, io_cgrp_id));
	if (bpf_map_update_elem(&io_pending, &key, &p, BPF_ANY) != 0)
		fl_kstat_inc(FL_KSTAT_IO_PENDING_FULL);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(fl_block_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	__u64 key = (__u64)rq;
	struct fl_io_pending *p = bpf_map_lookup_elem(&io_pending, &key);
	if (!p)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 waited = now > p->ts_ns ? now - p->ts_ns : 0;
	struct fl_io_key k = {.cgroup_id = p->cgroup_id, .dev = p->dev, .op = p->op};
	bpf_map_delete_elem(&io_pending, &key);
	struct fl_io_stats *s = bpf_map_lookup_elem(&io_stats, &k);
	if (!s) {
		struct fl_io_stats zero = {};
		bpf_map_update_elem(&io_stats, &k, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&io_stats, &k);
		if (!s) {
			fl_kstat_inc(FL_KSTAT_IO_MAP_FULL);
			return 0;
		}
	}
	__sync_fetch_and_add(&s->bytes, nr_bytes);
	fl_hist_add(&s->latency, waited);
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(fl_mark_victim, struct task_struct *victim)
{
	struct fl_oom_event *e = bpf_ringbuf_reserve(&oom_events, sizeof(*e), 0);
	if (!e) {
		fl_kstat_inc(FL_KSTAT_OOM_RINGBUF_FULL);
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->victim_pid = BPF_CORE_READ(victim, tgid);
	e->trigger_pid = bpf_get_current_pid_tgid() >> 32;
	e->memcg_id = fl_subsys_cgroup_id(victim, bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id));
	BPF_CORE_READ_STR_INTO(&e->victim_comm, victim, comm);
	bpf_get_current_comm(e->trigger_comm, sizeof(e->trigger_comm));
	struct mm_struct *mm = BPF_CORE_READ(victim, mm);
	e->total_vm_pages = mm ? BPF_CORE_READ(mm, total_vm) : 0;
	e->anon_rss_pages = 0;
	if (mm) {
		/* MM_ANONPAGES = 1; a percpu_counter's central count (approximate, as /proc shows). */
		long pages = BPF_CORE_READ(mm, rss_stat[1].count);
		e->anon_rss_pages = pages > 0 ? pages : 0;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}
