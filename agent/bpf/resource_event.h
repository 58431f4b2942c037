/* Map layouts and events of resource.bpf.c: run-queue latency per cgroup, block I/O per device
 * and cgroup, OOM kills. */
#ifndef FAULTLINE_RESOURCE_EVENT_H
#define FAULTLINE_RESOURCE_EVENT_H

#include "fl_types.h"

/* Power-of-two buckets of nanoseconds: bucket i holds [2^i, 2^(i+1)) (bucket 0 also holds 0);
 * the last one everything from 2^(FL_HIST_BUCKETS-1) ns (~2.1 s) up. */
#define FL_HIST_BUCKETS 32

struct fl_hist {
	__u64 count;
	__u64 sum_ns;
	__u64 buckets[FL_HIST_BUCKETS];
};

/* Run-queue latency of one cgroup: the key is the kernfs id (the directory's inode number) of the
 * task's cgroup in the hierarchy the cpu controller is attached to (v1 "cpu", or v2). */
struct fl_runq_key {
	__u64 cgroup_id;
};

enum fl_io_op {
	FL_IO_READ = 0,
	FL_IO_WRITE = 1,
	FL_IO_OTHER = 2, /* flush, discard, … */
};

/* Block I/O of one (device, cgroup, op): the cgroup is the request's blkio/io cgroup (the
 * issuer's when the request carries none). */
struct fl_io_key {
	__u64 cgroup_id;
	__u32 dev; /* major << 20 | minor, the kernel's dev_t */
	__u32 op;  /* enum fl_io_op */
};

struct fl_io_stats {
	__u64 bytes;
	struct fl_hist latency;
};

struct fl_oom_event {
	__u64 ts_ns; /* CLOCK_MONOTONIC */
	__u64 memcg_id; /* the victim's cgroup in the memory controller's hierarchy */
	__u64 total_vm_pages;
	__u64 anon_rss_pages;
	__u32 victim_pid;
	__u32 trigger_pid;
	char victim_comm[FL_COMM_LEN];
	char trigger_comm[FL_COMM_LEN];
};

#endif
