// The state of one input partition: its event-time windows, its watermark, the endpoints and
// listeners it has learned, and the offset of the next message to read, all in one RocksDB
// database (<state-dir>/<topic>-<partition>/) written in one WriteBatch per commit. A process
// that owns the partition holds the database's lock, so two processors can never both apply it;
// after a crash, reopening resumes exactly at the committed offset with exactly the state that
// offset reflects: no event lost, none counted twice.
//
// Windows: tumbling, `window_s` long, by event time. The watermark is the highest event time seen
// in the partition minus `allowed_lateness_s`; a window closes when the watermark passes its end.
// An event for a closed window is late: counted and dropped. An event more than `max_future_s`
// after its message's broker timestamp is counted and dropped too (a bad clock must not close
// every window). Closed windows go to history (kept `retention_s` behind the watermark) and to an
// outbox that the runtime publishes to `faultline.metrics` and then clears.
//
// With a changelog (changelog.h), every commit is delivered there before it is written locally,
// and Open first brings the database up to what the changelog holds, then claims the partition
// there (a new epoch, which fences the records of every earlier writer): a processor with its own
// disk can take over a partition from one that died or was cut off.
//
// Thread-compatible: one thread applies and commits.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/stream/changelog.h"
#include "faultline/stream/entity_namer.h"
#include "faultline/model/window_stats.h"

namespace rocksdb {
class Cache;
}  // namespace rocksdb

namespace faultline::stream {

class PartitionStore;  // partition_store.h: the RocksDB layout
class PeerTable;       // peer_table.h
class OpenWindows;     // open_windows.h

struct WindowOptions {
  // Default: 5.
  int64_t window_s = 5;
  // Default: 5.
  int64_t allowed_lateness_s = 5;
  // Closed windows kept this far behind the watermark. Default: 3600.
  int64_t retention_s = 3600;
  // Default: 300.
  int64_t max_future_s = 300;
  // Distinct endpoints per service per partition; more fold into "other". Default: 64.
  size_t max_endpoints_per_service = 64;
  // Client ends of connections remembered per partition (to name the caller on the callee's
  // side when both are on one node); past this the oldest go. Default: 65536.
  size_t max_peers = 65536;
  // fsync every commit (survives a machine crash, not only a process crash). Default: false.
  bool sync_commits = false;
};

// What Apply saw, for /metrics. Plain counters: one thread per partition adds, the runtime sums.
struct ApplyCounters {
  uint64_t messages = 0;
  uint64_t undecodable = 0;  // messages that are not an EventBatch
  uint64_t events = 0;
  uint64_t late = 0;    // for a window already closed
  uint64_t future = 0;  // beyond max_future_s after the message timestamp
  uint64_t endpoints_folded = 0;
  uint64_t windows_closed = 0;
  // Flows and resets with no owning process (kept in their machine's series, not a loss).
  uint64_t unattributed = 0;
  // Client ends forgotten past WindowOptions::max_peers.
  uint64_t peers_evicted = 0;
};

// What a partition's changelog cost and did, for /metrics (plain counters, as ApplyCounters).
struct ChangelogCounters {
  uint64_t restores = 0;        // opens that caught up or rebuilt the database from it
  uint64_t restored_bytes = 0;  // changelog batches written into the database by those
  double restore_seconds = 0;   // reading the changelog and applying it, at every open
  uint64_t snapshots = 0;
  uint64_t snapshot_bytes = 0;
  uint64_t delta_bytes = 0;  // commits' batches delivered
  // Records of writers that had lost the partition (changelog.h), ignored by restores.
  uint64_t fenced = 0;
};

// What Open did with a partition's changelog, for the log and tests.
struct ChangelogOpen {
  enum class Source {
    kLocal,     // the local database as it was
    kCaughtUp,  // the local database plus the changelog's deltas after it
    kRebuilt,   // rebuilt from the changelog's snapshot and deltas
  };
  Source source = Source::kLocal;
  uint64_t from_seq = 0;  // kRebuilt: the snapshot's seq; otherwise the local database's
  uint64_t deltas = 0;    // changelog deltas applied after from_seq
  uint64_t seq = 0;       // the commit the database is at
  uint64_t epoch = 0;     // the epoch this processor claimed the partition at
  uint64_t chain = 0;     // the chain its records carry
};

class PartitionState {
 public:
  // One event while Apply applies it (event_scope.h, private to stream/).
  struct EventScope;

  // Opens (creating if needed) the partition's database. Errors: kUnavailable when another
  // process holds it (its message says so); kFailedPrecondition when it was built with another
  // window length, or when the changelog is needed and cannot restore it (naming the seq);
  // kUnavailable when the changelog cannot be read; kInternal for other RocksDB errors, with
  // the path.
  static Result<std::unique_ptr<PartitionState>> Open(
      const std::string& state_dir, const std::string& topic, int32_t partition,
      const WindowOptions& options, const EntityNamer& namer,
      std::shared_ptr<rocksdb::Cache> cache = nullptr, const ChangelogOptions& changelog = {});
  ~PartitionState();

  // Opens several partitions at once, `threads` at a time (0: one per core), each with
  // `open(partition)` (Open, or a caller's wrapper around it). After a crash each database
  // replays its own write-ahead log, so together they take about as long as the slowest, not the
  // sum. Results are in the order of `partitions`, with each one's opening time in ms.
  struct Opened {
    Result<std::unique_ptr<PartitionState>> state;
    double open_ms = 0;
  };
  static std::vector<Opened> OpenAll(
      const std::vector<int32_t>& partitions,
      const std::function<Result<std::unique_ptr<PartitionState>>(int32_t)>& open,
      size_t threads = 0);

  int32_t partition() const { return partition_; }
  // The offset to resume from; -1 when nothing was ever committed.
  int64_t next_offset() const { return next_offset_; }
  // Highest event time seen, in ns since the epoch (0: none yet).
  int64_t max_event_ns() const { return max_event_ns_; }
  int64_t watermark_s() const;

  // Applies the message at `offset` (a serialized EventBatch; garbage is counted, never an error)
  // whose broker timestamp is `message_time_ms` (-1: unknown).
  void Apply(std::string_view payload, int64_t offset, int64_t message_time_ms,
             ApplyCounters* counters);

  // Writes all changes since the last commit in one batch (with a changelog: first delivered
  // there, after a snapshot when one is due). Nothing of a failed commit is lost: it stays in
  // memory and the next Commit writes it. Errors: kInternal naming the path; kUnavailable when
  // the changelog did not take it.
  Status Commit();
  // Commit in two halves, so that several partitions' changelog deliveries overlap: BeginCommit
  // gathers the batch and sends it to the changelog; FinishCommit waits for it and writes it.
  // Nothing may be applied in between. Errors: as Commit's (either half).
  Status BeginCommit();
  Status FinishCommit();

  // Closed windows not yet published (each once per call: the next call starts after them).
  std::vector<model::StoredWindow> TakeOutbox();
  // What the next TakeOutbox will hand out, without handing it out.
  std::vector<model::StoredWindow> PeekOutbox() const;
  // Called when windows from TakeOutbox were delivered; the next Commit forgets them.
  void Published(int64_t start_s, const model::SeriesKey& key);

  size_t open_series() const;
  uint64_t ApproximateBytes() const;
  // Closed windows dropped from the outbox undelivered because they aged past retention.
  uint64_t outbox_expired() const { return outbox_expired_; }
  const ChangelogCounters& changelog_counters() const { return changelog_counters_; }
  // How Open found the database: "local", "caught up" or "rebuilt" from the changelog, with the
  // seqs and bytes ("" without a changelog).
  const std::string& restore_summary() const { return restore_summary_; }
  // The same as figures, and the claim Open made (all 0 without a changelog).
  const ChangelogOpen& changelog_open() const { return changelog_open_; }

  // Reads every window stored under a partition directory (read-only; works while a processor
  // holds it), closed and, when `include_open`, open ones, and the window length it was built
  // with. Errors name the path.
  static Result<std::vector<model::StoredWindow>> ReadWindows(const std::string& partition_dir,
                                                       bool include_open,
                                                       int64_t* window_s = nullptr);

 private:
  PartitionState();
  struct OutboxEntry {
    model::WindowStats stats;
    bool handed_out = false;  // by TakeOutbox, not yet Published
  };

  // The series of one window, by its encoded key (model::SeriesKey::Encode's layout).
  model::WindowStats* Series(int64_t window_start_s, std::string_view encoded_key);
  // The endpoint to count under `owner`: itself, or "other" past the cap.
  std::string_view EndpointFor(std::string_view owner, std::string_view endpoint);
  void CloseWindows(ApplyCounters* counters);
  // Claims the partition in the changelog (changelog.h) with the epoch after `max_epoch` and a
  // chain of its own. Errors: the changelog's.
  Status Claim(uint64_t max_epoch);
  // Delivers a snapshot to the changelog when one is due (first commit of a writer whose
  // database is not on the changelog's state, after a failed commit, or past ChangelogOptions'
  // bounds).
  Status SnapshotIfDue();

  int32_t partition_ = 0;
  WindowOptions options_;
  const EntityNamer* namer_ = nullptr;
  std::unique_ptr<PartitionStore> store_;

  int64_t next_offset_ = -1;
  int64_t max_event_ns_ = 0;
  bool meta_dirty_ = false;
  std::unique_ptr<OpenWindows> open_;
  // Event signatures -> series (defined in the .cc).
  struct SigCache;
  std::unique_ptr<SigCache> sigs_;
  struct ClosedWindow {
    int64_t start_s;
    std::vector<std::pair<std::string, model::WindowStats>> series;  // by encoded key
  };
  std::vector<ClosedWindow> closed_since_commit_;
  std::map<std::pair<int64_t, std::string>, OutboxEntry> outbox_;  // committed, not yet delivered
  uint64_t outbox_expired_ = 0;
  std::vector<std::pair<int64_t, std::string>> published_;
  // Endpoints and listeners learned (hash maps defined in the .cc).
  struct Learned;
  std::unique_ptr<Learned> learned_;
  std::string endpoint_probe_;         // scratch
  std::vector<char> arena_block_;      // the first block of each batch's protobuf arena
  std::vector<std::pair<std::string, std::string>> new_endpoints_;
  std::vector<std::pair<std::string, std::string>> new_listeners_;
  // Client ends of connections (peer_table.h), and the first record not yet committed.
  std::unique_ptr<PeerTable> peers_;
  uint64_t peers_committed_ = 0;
  // The changelog: whether the next commit must go after a snapshot, and the epoch and chain
  // this writer claimed the partition with at Open (changelog.h).
  ChangelogOptions changelog_;
  // A commit between BeginCommit and FinishCommit (defined in the .cc).
  struct Committing;
  std::unique_ptr<Committing> committing_;
  bool snapshot_due_ = false;
  uint64_t epoch_ = 0, chain_ = 0;
  uint64_t commits_since_snapshot_ = 0, bytes_since_snapshot_ = 0, last_snapshot_bytes_ = 0;
  ChangelogCounters changelog_counters_;
  std::string restore_summary_;
  ChangelogOpen changelog_open_;
};

}  // namespace faultline::stream
