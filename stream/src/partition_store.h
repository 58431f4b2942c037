// The on-disk side of a PartitionState (private to stream/): one RocksDB database per input
// partition, laid out so that a commit costs a few large writes, not one write per series.
//
// Layout (format 2; every number big-endian so that keys sort by it):
//   meta/format, meta/window_s, meta/offset, meta/max_event_ns, meta/seq, meta/peer_front   varints
//   meta/chain          the changelog chain (changelog.h) this database's commits continue
//   meta/restoring      present only while a restore from the changelog is being written
//   o/<start><seq>      the open window `start`'s series that changed in commit `seq`, each with
//                       its whole stats; on load a later commit's record of a series wins
//   c/<start><chunk>    a closed window's series (written once, when it closes), sorted by key
//   x/<start>           a closed window still to publish: "" = all of its series, else the
//                       encoded keys of the series still to publish
//   endpoint/<owner>\0<endpoint>, listener/<machine|address>      one record each (rare)
//   p/<index>           peer records (PeerTable) numbered from `index`, in the order made;
//                       meta/peer_front: the first one not evicted
// Format 1 (one record per series in open/, closed/, outbox/, peer/) is converted on open.
//
// Everything one commit changes goes into one WriteBatch with the offset it reflects (Commit).
// With a changelog, that batch's bytes are what the changelog carries; Open rebuilds or catches
// up a database from it.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/stream/changelog.h"
#include "faultline/model/window_stats.h"

namespace rocksdb {
class DB;
class Cache;
class WriteBatch;
}  // namespace rocksdb

namespace faultline::stream {

// What a store holds, handed out once by Open.
struct StoredState {
  int64_t next_offset = -1;
  int64_t max_event_ns = 0;
  struct Series {
    int64_t start_s;
    std::string key;  // encoded model::SeriesKey
    model::WindowStats stats;
  };
  std::vector<Series> open;    // by start, then key
  std::vector<Series> outbox;  // closed, not yet published; by start, then key
  std::vector<std::pair<std::string, std::string>> endpoints;  // owner, endpoint
  std::vector<std::pair<std::string, std::string>> listeners;  // "machine|address", service
  struct Peer {
    uint64_t index;
    std::string key, service;
    int64_t seen_s;
  };
  uint64_t peer_front = 0;
  std::vector<Peer> peers;  // records from peer_front on, in order
};

// What Open did with a changelog.
struct RestoreReport {
  enum class Source {
    kLocal,     // the local database as it was (the changelog had nothing newer)
    kCaughtUp,  // the local database plus the changelog's deltas after it
    kRebuilt,   // rebuilt from the changelog's snapshot and deltas
  };
  Source source = Source::kLocal;
  // The local database is on the state the changelog holds: its writer's deltas may continue
  // it. Otherwise the next commit must go after a snapshot.
  bool continues_chain = false;
  uint64_t local_seq = 0;      // where the local database was
  uint64_t base_seq = 0;       // kRebuilt: the snapshot's seq; else local_seq
  uint64_t deltas = 0;         // changelog deltas applied
  uint64_t seq = 0;            // where it is now
  uint64_t applied_bytes = 0;  // of changelog batches written into it
};

class PartitionStore {
 public:
  // Opens (creating) the database at `path` and reads what it holds into `*state`. With
  // `changelog` (what the partition's changelog holds), first brings the database up to it:
  // kept when it is at or past the changelog's last seq (unless its chain was fenced), caught up
  // when it holds a state the changelog's records pass through (ChangelogChain::Holds), else
  // rebuilt from the snapshot (a restore cut short by a crash is redone).
  // Errors: kUnavailable when another process holds it; kFailedPrecondition when it was built
  // with another window length, or when the changelog is needed but holds no complete snapshot
  // or skips a seq (naming `path` and the seq); kInternal naming the path and the record for
  // corrupt data.
  static Result<std::unique_ptr<PartitionStore>> Open(const std::string& path, int64_t window_s,
                                                      std::shared_ptr<rocksdb::Cache> cache,
                                                      StoredState* state,
                                                      const ChangelogChain* changelog = nullptr,
                                                      RestoreReport* report = nullptr);
  ~PartitionStore();

  // One commit's changes, gathered, then written at once by Commit.
  class Batch {
   public:
    ~Batch();
    Batch(Batch&&) noexcept;
    // A series of the open window `start_s` changed since the last commit.
    void OpenSeries(int64_t start_s, std::string_view key, const model::WindowStats& stats);
    // The window `start_s` closed with these series (each window once; keys in any order). Its
    // open records go, its series are kept as history and are to publish.
    void ClosedWindow(int64_t start_s,
                      std::vector<std::pair<std::string_view, const model::WindowStats*>> series);
    // Of the closed window `start_s`, these series are still to publish (none: all published).
    void Unpublished(int64_t start_s, const std::vector<std::string_view>& keys);
    void Endpoint(std::string_view owner, std::string_view endpoint);
    void Listener(std::string_view address_key, std::string_view service);
    // Peer records: those below `front` are evicted; this commit's records are numbered from
    // `first` on, one Peer call each, in order.
    void Peers(uint64_t front, uint64_t first);
    void Peer(std::string_view key, std::string_view service, int64_t seen_s);
    // The changelog chain this commit's writer writes (changelog.h), when the store's is another.
    void Chain(uint64_t chain);
    // The input offset and the highest event time this commit reflects.
    void Position(int64_t next_offset, int64_t max_event_ns);
    // History and undelivered windows starting before `cutoff_s` go.
    void Expire(int64_t cutoff_s);
    bool empty() const;

   private:
    friend class PartitionStore;
    explicit Batch(uint64_t seq);
    void FlushOpen();
    void FlushPeers();
    uint64_t seq_;
    std::unique_ptr<rocksdb::WriteBatch> batch_;
    // The open series of one window, encoded as they come (a commit walks window by window).
    int64_t open_start_ = INT64_MIN;
    uint64_t open_count_ = 0;
    std::string open_blob_, peers_blob_, scratch_;
    uint64_t peers_count_ = 0;
    uint64_t peer_front_ = 0, peer_next_ = 0;  // peer_next_: the next record's number
    uint64_t chain_ = 0;                       // 0: the store's stays
    bool peers_ = false;
    std::vector<uint64_t> peer_blobs_;  // the first record of each blob this batch writes
    bool sealed_ = false;
    std::vector<uint64_t> blobs_after_;  // the store's peer blobs once this batch is written
  };
  Batch NewBatch() { return Batch(seq_ + 1); }
  // Seal then Write (nothing when the batch is empty). Errors: kInternal naming the path.
  Status Commit(Batch& batch, bool sync);
  // Completes a non-empty batch (the commit seq, the peer records' clean-up) and returns its
  // bytes, final from then on: what the changelog carries. Its seq: seq() + 1.
  std::string_view Seal(Batch& batch);
  // Writes a sealed batch. Errors: kInternal naming the path.
  Status Write(Batch& batch, bool sync);

  // The last commit's sequence number, and the changelog chain of the record that made it (0:
  // none).
  uint64_t seq() const { return seq_; }
  uint64_t chain() const { return chain_; }
  // Records that the database now continues `chain` (its snapshot was delivered).
  Status SetChain(uint64_t chain);
  // The whole database as WriteBatches of Puts of about `part_bytes` each, in key order, from
  // one consistent view (at seq()). Errors: kInternal naming the path.
  Status Snapshot(size_t part_bytes, const std::function<Status(std::string_view batch)>& each);

  uint64_t ApproximateBytes() const;

  // Every window stored under `path` (read-only; works while a processor holds it), closed ones
  // sorted by start then key, then (with `include_open`) open ones, likewise. Errors name the path.
  static Status ReadWindows(
      const std::string& path, bool include_open, int64_t* window_s,
      const std::function<void(int64_t start_s, std::string_view key, model::WindowStats stats,
                               bool open)>& visit);

 private:
  PartitionStore() = default;
  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  uint64_t seq_ = 0;
  uint64_t chain_ = 0;
  std::vector<uint64_t> peer_blobs_;  // the first record of each stored p/ blob, in order
};

}  // namespace faultline::stream
