#include "open_windows.h"

namespace faultline::stream {

uint32_t OpenWindows::Intern(std::string_view encoded_key) {
  const absl::string_view k(encoded_key.data(), encoded_key.size());
  if (auto it = ids_.find(k); it != ids_.end()) return it->second;
  const auto id = static_cast<uint32_t>(keys_.size());
  const std::string& stored = keys_.emplace_back(encoded_key);
  ids_.emplace(absl::string_view(stored.data(), stored.size()), id);
  return id;
}

model::WindowStats* OpenWindows::At(int64_t start_s, uint32_t id) {
  if (start_s != last_start_ || !last_) {
    last_ = &by_start_[start_s];
    last_start_ = start_s;
  }
  Entry& e = (*last_)[id];
  e.changed = true;
  return &e.stats;
}

void OpenWindows::Restore(int64_t start_s, std::string_view encoded_key, model::WindowStats stats) {
  by_start_[start_s][Intern(encoded_key)] = Entry{std::move(stats), false};
}

void OpenWindows::ClearChanged() {
  for (auto& [start, window] : by_start_) {
    for (auto& [id, entry] : window) entry.changed = false;
  }
}

size_t OpenWindows::size() const {
  size_t n = 0;
  for (const auto& [start, window] : by_start_) n += window.size();
  return n;
}

bool OpenWindows::Compact() {
  // Some slack, so that a partition with few series does not renumber at every window.
  if (keys_.size() < 2 * size() + 4096) return false;
  std::deque<std::string> keys;
  absl::flat_hash_map<absl::string_view, uint32_t> ids;
  absl::flat_hash_map<uint32_t, uint32_t> renumbered;
  for (auto& [start, window] : by_start_) {
    Window moved;
    moved.reserve(window.size());
    for (auto& [id, entry] : window) {
      auto [it, fresh] = renumbered.try_emplace(id, static_cast<uint32_t>(keys.size()));
      if (fresh) {
        const std::string& stored = keys.emplace_back(std::move(keys_[id]));
        ids.emplace(absl::string_view(stored.data(), stored.size()), it->second);
      }
      moved.emplace(it->second, std::move(entry));
    }
    window = std::move(moved);
  }
  keys_ = std::move(keys);
  ids_ = std::move(ids);
  last_ = nullptr;
  last_start_ = INT64_MIN;
  return true;
}

}  // namespace faultline::stream
