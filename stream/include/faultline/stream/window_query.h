// Reading what the stream stored: every partition database under a state directory, filtered by
// entity and time, partial windows of the same series merged across partitions (rendered by
// model/window_record.h).
//
// Thread-safe: each call opens the databases read-only, which works while a processor writes them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/model/window_stats.h"
#include "faultline/stream/partition_state.h"

namespace faultline::stream {

struct WindowQuery {
  // Only this kind. Default: all.
  std::optional<EntityKind> kind;
  // Only series whose entity (SeriesKey::Entity) equals this, or whose dimensions include it as a
  // value ("db" matches the service db and the edges api->db). Default: "" (all).
  std::string entity;
  // Windows starting at or after this. Default: all.
  int64_t since_s = INT64_MIN;
  // Include windows still open. Default: true.
  bool include_open = true;
  // Merge the same series and window from different partitions into one. Default: true.
  bool merge_partitions = true;
};

// Scans <state_dir>/<topic>-<partition>/ for every partition found. Sorted by window start, then
// series key. Edges are resolved (model::Identity) by the listener series of all partitions.
// Errors: kNotFound when no partition directory exists; RocksDB errors with the path.
// `window_s`, when given, receives the window length the state was built with.
Result<std::vector<model::StoredWindow>> QueryWindows(const std::string& state_dir,
                                               const std::string& topic, const WindowQuery& query,
                                               int64_t* window_s = nullptr);

}  // namespace faultline::stream
