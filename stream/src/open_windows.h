// The open windows of one partition in memory (private to stream/). Each series is interned to a
// small integer id once, so that an event's update costs an integer probe into its window, not a
// hash and a comparison of the whole encoded key; per window start, the stats of each series by
// id, each with whether it changed since the last commit.
//
// Ids stay valid until Compact renumbers them (callers that hold ids drop them then); they are
// never written anywhere.
//
// Thread-compatible.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/strings/string_view.h>

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>

#include "faultline/model/window_stats.h"

namespace faultline::stream {

class OpenWindows {
 public:
  // The id of an encoded series key, interning it on first sight.
  uint32_t Intern(std::string_view encoded_key);
  std::string_view Key(uint32_t id) const { return keys_[id]; }

  // The stats of series `id` in the window starting at `start_s`, created empty on first use,
  // marked changed.
  model::WindowStats* At(int64_t start_s, uint32_t id);
  // Puts back a series as it was committed (not marked changed).
  void Restore(int64_t start_s, std::string_view encoded_key, model::WindowStats stats);

  // The oldest open window's start, or INT64_MAX when none is open.
  int64_t oldest_start() const { return by_start_.empty() ? INT64_MAX : by_start_.begin()->first; }
  // Removes the oldest window, handing each of its series to visit(key, model::WindowStats&&).
  template <typename Visit>
  void CloseOldest(Visit&& visit);

  // Visits every series changed since ClearChanged as (start_s, key, stats), window by window.
  template <typename Visit>
  void ForEachChanged(Visit&& visit) const;
  void ClearChanged();

  // Series in open windows (a series open in two windows counts twice).
  size_t size() const;
  // When ids of series no longer open outnumber the open ones, forgets them and renumbers the
  // rest. Returns whether ids changed.
  bool Compact();

 private:
  struct Entry {
    model::WindowStats stats;
    bool changed = false;
  };
  using Window = absl::flat_hash_map<uint32_t, Entry>;

  std::deque<std::string> keys_;  // by id; a deque, so that ids_' views stay valid as it grows
  absl::flat_hash_map<absl::string_view, uint32_t> ids_;
  std::map<int64_t, Window> by_start_;
  // The window of the last At (events of a batch mostly share one).
  int64_t last_start_ = INT64_MIN;
  Window* last_ = nullptr;
};

template <typename Visit>
void OpenWindows::CloseOldest(Visit&& visit) {
  auto node = by_start_.extract(by_start_.begin());
  if (last_start_ == node.key()) last_ = nullptr, last_start_ = INT64_MIN;
  for (auto& [id, entry] : node.mapped()) visit(std::string_view(keys_[id]), std::move(entry.stats));
}

template <typename Visit>
void OpenWindows::ForEachChanged(Visit&& visit) const {
  for (const auto& [start, window] : by_start_) {
    for (const auto& [id, entry] : window) {
      if (entry.changed) visit(start, std::string_view(keys_[id]), entry.stats);
    }
  }
}

}  // namespace faultline::stream
