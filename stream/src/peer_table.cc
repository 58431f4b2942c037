#include "peer_table.h"

namespace faultline::stream {

void PeerTable::Append(std::string_view key, std::string_view service, int64_t seen_s) {
  auto it = by_key_.try_emplace(absl::string_view(key.data(), key.size())).first;
  it->second.service.assign(service);
  it->second.seen_s = seen_s;
  it->second.record = end();
  order_.push_back(&*it);
}

size_t PeerTable::Remember(std::string_view key, std::string_view service, int64_t seen_s) {
  auto it = by_key_.find(absl::string_view(key.data(), key.size()));
  if (it != by_key_.end() && it->second.service == service) return 0;
  Append(key, service, seen_s);
  size_t evicted = 0;
  while (by_key_.size() > max_) {
    const Map::value_type* oldest = order_.front();
    // A superseded record leaves its key in place: the key's newest record is further on.
    if (oldest->second.record == front_) {
      by_key_.erase(oldest->first);
      evicted++;
    }
    order_.pop_front();
    front_++;
  }
  return evicted;
}

bool PeerTable::Restore(uint64_t front, uint64_t index, std::string_view key,
                        std::string_view service, int64_t seen_s) {
  if (order_.empty() && by_key_.empty()) front_ = front;
  if (index != end()) return false;
  Append(key, service, seen_s);
  return true;
}

}  // namespace faultline::stream
