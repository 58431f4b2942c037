// Socket syscalls to HTTP exchanges: each connection's byte streams through its parser, gaps
// skipped, what the parser gave up on counted (agent_impl.h).
#include "agent_impl.h"

#include <algorithm>
#include <cstring>

namespace faultline::agent {

void Agent::Impl::EmitExchanges(const TrackedConnection& c, std::string_view comm, uint64_t cgroup_id, uint64_t now) {
  for (HttpExchange& x : exchanges) {
    v1::Event* e = NewEvent(c.tgid, comm, cgroup_id, now);
    e->set_time_unix_ns(ToUnix(x.request_start_ns));
    SetConnection(c.tuple, e->mutable_connection());
    NameRemote(e->mutable_connection());
    v1::HttpExchange* h = e->mutable_http();
    h->set_role(ToProto(x.role));
    h->set_method(ValidUtf8(x.method));
    h->set_path(ValidUtf8(x.path));
    h->set_version(std::move(x.version));
    h->set_status(x.status);
    h->set_request_bytes(x.request_bytes);
    h->set_response_bytes(x.response_bytes);
    if (x.response_end_ns >= x.request_start_ns && x.response_end_ns != 0) {
      h->set_latency_ns(x.response_end_ns - x.request_start_ns);
    }
    if (x.response_first_ns >= x.request_start_ns && x.response_first_ns != 0) {
      h->set_time_to_first_byte_ns(x.response_first_ns - x.request_start_ns);
    }
    h->set_outcome(ToProto(x.outcome));
    CountEvent(kHttp);
  }
  exchanges.clear();
}

// Counts what the connection's parser gave up on since the last report.
void Agent::Impl::ReportParserLosses(TrackedConnection& c) {
  const HttpParserStats& now = c.parser.stats();
  HttpParserStats& was = c.reported;
  CountDrop("parser_garbage", now.garbage - was.garbage);
  CountDrop("parser_header_too_large", now.header_too_large - was.header_too_large);
  CountDrop("parser_framing_lost", now.framing_lost - was.framing_lost);
  CountDrop("parser_orphan_response", now.orphan_responses - was.orphan_responses);
  CountDrop("parser_pending_overflow", now.pending_overflow - was.pending_overflow);
  CountDrop("parser_unanswered_in_gap", now.unanswered_dropped - was.unanswered_dropped);
  was = now;
}

void Agent::Impl::CloseConnection(std::unique_ptr<TrackedConnection> c, const fl_sock_event& e) {
  c->parser.OnClose(e.ts_ns, &exchanges);
  EmitExchanges(*c, std::string_view(c->comm, strnlen(c->comm, sizeof(c->comm))), c->cgroup_id,
                e.ts_ns);
  ReportParserLosses(*c);
}

void Agent::Impl::OnSock(const fl_sock_event& e, std::string_view payload) {
  const HttpRole role = e.role == FL_ROLE_SERVER   ? HttpRole::kServer
                        : e.role == FL_ROLE_CLIENT ? HttpRole::kClient
                                                   : HttpRole::kUnknown;
  const uint64_t evicted_before = connections.evictions();
  // The connection's owner, as this event names it.
  auto own = [&e](TrackedConnection& c) {
    c.tgid = e.tgid;
    std::memcpy(c.comm, e.comm, sizeof(c.comm));
    c.cgroup_id = e.cgroup_id;
  };
  switch (e.kind) {
    case FL_SOCK_OPEN: {
      // A new connection may reuse a socket address: finish whatever was there.
      if (auto old = connections.Remove(e.sock_id)) CloseConnection(std::move(old), e);
      TrackedConnection& c = connections.Touch(e.sock_id, role, e.ts_ns);
      c.tuple = e.tuple;
      own(c);
      break;
    }
    case FL_SOCK_CLOSE:
      if (auto c = connections.Remove(e.sock_id)) CloseConnection(std::move(c), e);
      break;
    case FL_SOCK_DATA: {
      TrackedConnection& c = connections.Touch(e.sock_id, role, e.ts_ns);
      if (e.flags & FL_SOCK_F_TUPLE) c.tuple = e.tuple;  // else: as remembered for this socket
      own(c);
      const size_t tail_len = std::min<size_t>(e.tail_len, FL_TAIL_LEN);
      const uint64_t total = std::max<uint64_t>(e.total_bytes, payload.size() + tail_len);
      const ByteDirection dir = e.direction == FL_DIR_EGRESS ? ByteDirection::kEgress : ByteDirection::kIngress;
      const int d = dir == ByteDirection::kEgress ? 0 : 1;
      if (c.offset_known[d] && e.stream_offset > c.next_offset[d]) {
        // Events of this stream were lost (already counted where they were dropped): the parser
        // treats the gap as bytes it did not see, exact inside a body, a resync elsewhere.
        const uint64_t gap = e.stream_offset - c.next_offset[d];
        c.parser.OnData(dir, {}, gap, {}, e.ts_ns, &exchanges);
        stream_gaps->Increment();
      }
      c.offset_known[d] = true;
      c.next_offset[d] = e.stream_offset + total;
      c.parser.OnData(dir, payload, total,
                      std::string_view(reinterpret_cast<const char*>(e.tail), tail_len), e.ts_ns,
                      &exchanges);
      EmitExchanges(c, e.comm, e.cgroup_id, e.ts_ns);
      ReportParserLosses(c);
      break;
    }
    default: break;
  }
  CountDrop("connection_table_evicted", connections.evictions() - evicted_before);
}

}  // namespace faultline::agent
