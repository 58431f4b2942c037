// The diagnosis service's state: one RocksDB database at <state_dir>/diagnosis, written in one
// batch per commit, so that a restart (after SIGKILL too) continues exactly where the last commit
// left off. Private to diagnosis/.
//
// Key layout (values in decimal unless said):
//   o|<partition>                 the next offset to read on that partition of the metrics topic
//   m|outbox_seq                  the last outbox sequence given out
//   x|<sink>|<seq: 16 digits>     an outbox entry: one delivery of one incident change to one sink
//                                 ("kafka", "webhook:<name>"), as JSON (EncodeOutboxEntry); it
//                                 goes with the first commit after its sink acknowledged (or
//                                 refused) it
//   anything else                 LiveDiagnosis's records (live.h, TakeChanges); its incidents
//                                 under LiveDiagnosis::kIncidentPrefix
//
// Thread-compatible: the commit thread writes.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/diagnosis/incident.h"
#include "faultline/diagnosis/live.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace faultline::diagnosis {

// The wall clock in Unix seconds, as outbox entries record their creation (and webhooks sign).
inline int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One delivery of one incident change to one sink.
struct OutboxEntry {
  std::string key;  // "x|<sink>|<seq>"
  std::string incident_id, webhook_id, status, dedup_key, time;
  uint64_t sequence = 0;
  std::string body;
  int64_t created_s = 0;
};
std::string EncodeOutboxEntry(const OutboxEntry& e);
// Errors: kInvalidArgument naming the key.
Result<OutboxEntry> DecodeOutboxEntry(const std::string& key, const std::string& value);
std::string OutboxKey(const std::string& sink, uint64_t seq);
// The sink of an outbox key ("x|webhook:ops|0000000000000007" -> "webhook:ops").
std::string OutboxSink(const std::string& key);

// What a database held when it was opened.
struct StoredDiagnosis {
  std::map<int32_t, int64_t> offsets;
  uint64_t outbox_seq = 0;
  std::vector<OutboxEntry> outbox;  // in key order: per sink, in the order they were added
  std::vector<std::pair<std::string, std::string>> live;  // LiveDiagnosis::Restore's input
};

class DiagnosisStore {
 public:
  // Opens (creating it) <state_dir>/diagnosis and reads it all into `stored`. Errors:
  // kUnavailable with the path; kInvalidArgument naming a malformed outbox entry.
  static Result<std::unique_ptr<DiagnosisStore>> Open(const std::string& state_dir,
                                                      StoredDiagnosis* stored);
  ~DiagnosisStore();

  // One commit: LiveDiagnosis's changes, the offsets, the outbox entries added and those
  // forgotten (their sinks are done with them), and the outbox sequence. Errors: kInternal with
  // the path.
  Status Commit(const std::vector<LiveDiagnosis::Change>& live,
                const std::map<int32_t, int64_t>& offsets, const std::vector<OutboxEntry>& added,
                const std::vector<std::string>& forgotten, uint64_t outbox_seq);
  // Forgets outbox entries their sinks are done with, outside a commit (at shutdown, and those a
  // sink already held at start). Errors: kInternal with the path.
  Status Forget(const std::vector<std::string>& keys);

  const std::string& path() const { return path_; }

 private:
  DiagnosisStore() = default;
  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace faultline::diagnosis
