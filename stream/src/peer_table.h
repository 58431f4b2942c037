// The client ends of connections a partition has seen (private to stream/): "machine|ip:port" of
// the caller's local end -> the calling service, so that the callee's side of a connection on the
// same node can name its caller. A client with short connections makes a new one per request, so
// this is written to at event rate: records are kept in the order they were made and evicted
// oldest first past a bound (one hash probe and amortized O(1) per record), and persisted as
// that sequence (each commit appends what it added and moves a front cursor), so that reopening
// rebuilds exactly the same table, eviction order included.
//
// Thread-compatible.
#pragma once

#include <absl/container/node_hash_map.h>
#include <absl/strings/string_view.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace faultline::stream {

class PeerTable {
 public:
  explicit PeerTable(size_t max_peers) : max_(max_peers) {}

  // The calling service whose end this is, or null.
  const std::string* Find(std::string_view key) const {
    auto it = by_key_.find(absl::string_view(key.data(), key.size()));
    return it == by_key_.end() ? nullptr : &it->second.service;
  }
  // Records that `service` owns the client end `key` (first seen in the window starting
  // `seen_s`); a key already recorded for the same service is left as it is. Past the bound the
  // oldest records go; returns how many entries were evicted.
  size_t Remember(std::string_view key, std::string_view service, int64_t seen_s);

  // Records are numbered from 0 in the order they were made; those below front() are evicted.
  uint64_t front() const { return front_; }
  uint64_t end() const { return front_ + order_.size(); }
  // Visits records [from, end()) still in the table (from >= front()) as (key, service, seen_s).
  template <typename Visit>
  void ForEachRecord(uint64_t from, Visit&& visit) const {
    for (uint64_t r = from; r < end(); ++r) {
      const auto& [key, slot] = *order_[r - front_];
      visit(key, slot.service, slot.seen_s);
    }
  }
  // Replays a persisted record `index` (callers replay in increasing order from `front`, the
  // persisted front). Returns false when `index` is out of that sequence.
  bool Restore(uint64_t front, uint64_t index, std::string_view key, std::string_view service,
               int64_t seen_s);
  size_t size() const { return by_key_.size(); }

 private:
  struct Slot {
    std::string service;
    int64_t seen_s = 0;
    uint64_t record = 0;  // the newest record of this key
  };
  using Map = absl::node_hash_map<std::string, Slot>;  // nodes stay put: order_ points at them
  void Append(std::string_view key, std::string_view service, int64_t seen_s);

  size_t max_;
  Map by_key_;
  // Every record from front_ on, oldest first; a record that a newer one of the same key
  // superseded keeps its place (pointing at the key's entry) until it reaches the front.
  std::deque<const Map::value_type*> order_;
  uint64_t front_ = 0;
};

}  // namespace faultline::stream
