// The agent's bounded table of live TCP connections that carry HTTP, keyed by the kernel's
// socket id. Each entry owns the connection's HTTP parser. When full, the least recently used
// entry is evicted (and counted); idle entries expire. Not thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>

#include "faultline/agent/http_parser.h"
#include "fl_types.h"

namespace faultline::agent {

struct TrackedConnection {
  TrackedConnection(uint64_t id, HttpRole role) : sock_id(id), parser(role) {}
  uint64_t sock_id;
  fl_tuple tuple{};
  uint32_t tgid = 0;
  // The owner as its last event named it: the exchanges still open when the connection ends are
  // its, even when the event that ends it is another process's (a new connection reusing the
  // socket's address).
  char comm[16] = {};
  uint64_t cgroup_id = 0;
  uint64_t last_seen_ns = 0;
  // Per direction (egress, ingress): the stream offset the next data event should start at, once
  // a first event has been seen.
  uint64_t next_offset[2] = {0, 0};
  bool offset_known[2] = {false, false};
  HttpConnectionParser parser;
  // The parser's losses already counted in the agent's metrics (they are counted as they happen,
  // so a connection that is evicted or expires loses nothing from the counts).
  HttpParserStats reported;
};

class ConnectionTable {
 public:
  // Default capacity in the agent: 65536 connections.
  explicit ConnectionTable(size_t capacity);

  // The connection `sock_id`, created with `role` if absent (evicting the least recently used
  // entry when full). Marks it most recently used at `now_ns`.
  TrackedConnection& Touch(uint64_t sock_id, HttpRole role, uint64_t now_ns);
  // Removes and returns the connection, or nullptr.
  std::unique_ptr<TrackedConnection> Remove(uint64_t sock_id);
  // Removes connections not touched since `now_ns - idle_ns`; returns how many.
  size_t ExpireIdle(uint64_t now_ns, uint64_t idle_ns);

  size_t size() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  using List = std::list<std::unique_ptr<TrackedConnection>>;
  size_t capacity_;
  List lru_;  // front = most recently used
  std::unordered_map<uint64_t, List::iterator> index_;
  uint64_t evictions_ = 0;
};

}  // namespace faultline::agent
