#include "faultline/stream/window_query.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "faultline/model/identity.h"

namespace faultline::stream {
namespace {

bool Matches(const model::StoredWindow& w, const WindowQuery& q) {
  if (q.kind && w.key.kind != *q.kind) return false;
  if (w.start_s < q.since_s) return false;
  if (w.open && !q.include_open) return false;
  if (q.entity.empty() || w.key.Entity() == q.entity) return true;
  return std::any_of(w.key.dims.begin(), w.key.dims.end(),
                     [&](const auto& d) { return d.second == q.entity; });
}

}  // namespace

Result<std::vector<model::StoredWindow>> QueryWindows(const std::string& state_dir,
                                               const std::string& topic, const WindowQuery& query,
                                               int64_t* window_s) {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind(topic + "-", 0) == 0)
      dirs.push_back(entry.path().string());
  }
  if (ec) return NotFound("state dir " + state_dir + ": " + ec.message());
  if (dirs.empty())
    return NotFound("state dir " + state_dir + ": no partition state for topic " + topic);
  std::sort(dirs.begin(), dirs.end());
  std::vector<model::StoredWindow> out;
  std::map<std::pair<int64_t, model::SeriesKey>, size_t> index;
  model::Identity identity;
  for (const std::string& dir : dirs) {
    FAULTLINE_ASSIGN_OR_RETURN(auto windows, PartitionState::ReadWindows(dir, true, window_s));
    for (model::StoredWindow& w : windows) {
      identity.Observe(w);
      if (!Matches(w, query)) continue;
      if (query.merge_partitions) {
        auto [it, fresh] = index.try_emplace({w.start_s, w.key}, out.size());
        if (!fresh) {
          model::StoredWindow& into = out[it->second];
          FAULTLINE_RETURN_IF_ERROR(into.stats.Merge(w.stats));
          into.open = into.open || w.open;
          continue;
        }
      }
      out.push_back(std::move(w));
    }
  }
  for (model::StoredWindow& w : out) identity.Resolve(&w);
  std::sort(out.begin(), out.end(), [](const model::StoredWindow& a, const model::StoredWindow& b) {
    return std::tie(a.start_s, a.key) < std::tie(b.start_s, b.key);
  });
  return out;
}

}  // namespace faultline::stream
