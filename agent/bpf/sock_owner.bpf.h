/* The socket-owner map shared by sock_io (which fills it) and tcp_health (which reads it). */
#ifndef FAULTLINE_SOCK_OWNER_BPF_H
#define FAULTLINE_SOCK_OWNER_BPF_H

#include "fl_common.bpf.h"

/* Who owns each connection (see struct fl_sock_owner). Defined in each object that includes
 * this header; the loader makes tcp_health share sock_io's map. LRU: an entry outlives its socket until
 * user space forgets the flow, or until newer connections push it out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fl_flow_key);
	__type(value, struct fl_sock_owner);
} sock_owner SEC(".maps");

#endif
