#include "faultline/agent/connection_table.h"

#include <algorithm>

namespace faultline::agent {

ConnectionTable::ConnectionTable(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

TrackedConnection& ConnectionTable::Touch(uint64_t sock_id, HttpRole role, uint64_t now_ns) {
  auto it = index_.find(sock_id);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
  } else {
    if (index_.size() >= capacity_) {
      index_.erase(lru_.back()->sock_id);
      lru_.pop_back();
      evictions_++;
    }
    lru_.push_front(std::make_unique<TrackedConnection>(sock_id, role));
    it = index_.emplace(sock_id, lru_.begin()).first;
  }
  TrackedConnection& c = **it->second;
  c.last_seen_ns = now_ns;
  return c;
}

std::unique_ptr<TrackedConnection> ConnectionTable::Remove(uint64_t sock_id) {
  auto it = index_.find(sock_id);
  if (it == index_.end()) return nullptr;
  std::unique_ptr<TrackedConnection> c = std::move(*it->second);
  lru_.erase(it->second);
  index_.erase(it);
  return c;
}

size_t ConnectionTable::ExpireIdle(uint64_t now_ns, uint64_t idle_ns) {
  size_t n = 0;
  while (!lru_.empty() && now_ns - lru_.back()->last_seen_ns > idle_ns) {
    index_.erase(lru_.back()->sock_id);
    lru_.pop_back();
    n++;
  }
  return n;
}

}  // namespace faultline::agent
