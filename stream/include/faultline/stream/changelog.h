// The changelog: how a partition's state moves to another processor without a shared disk.
//
// Every commit of a partition's RocksDB database (partition_store.h) is one WriteBatch. With a
// changelog, the batch's bytes are first delivered to the changelog topic (partition = the input
// partition), and only then written locally, so the changelog is never behind a local commit.
// From time to time, and whenever a processor starts writing a partition it did not write last,
// the whole database goes to the changelog as a snapshot. A processor that is given a partition
// whose local database is missing or behind rebuilds it from the latest complete snapshot and the
// deltas after it, then resumes at the offset that state holds: exactly what the previous owner
// had committed, no event lost or counted twice.
//
// Why deltas of whole batches and snapshots rather than a key-compacted topic (Kafka Streams):
// a batch holds the windows and the input offset together, so replaying whole batches keeps them
// consistent without Kafka transactions (which the embedded broker does not honour), and the
// embedded broker neither compacts nor keeps more than about 5 MB per partition: snapshots make
// everything older than the latest one disposable.
//
// Records (the message value; the key, "<seq>.<part>@<chain>", is for people reading the topic
// and unique, so that compaction would remove nothing):
//   "FLC1", kind (1 delta, 2 snapshot), varint chain, varint seq, varint part, last (0 or 1),
//   then the part's bytes.
// A delta's parts, concatenated, are the bytes of one WriteBatch (seq: the commit it makes). A
// snapshot's parts are WriteBatches of Puts each (seq: the commit the database was at).
// A chain is one writer's run: a random id drawn when a processor starts writing a partition it
// did not write last, opened by a snapshot. Only deltas of the chain of the latest complete
// snapshot count, and only contiguous ones: records of an older writer that still believed it
// owned the partition (a "zombie") are ignored, and a delta that skips a seq is a restore error.
//
// Thread-compatible, except ChangelogLink implementations, which say.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::stream {

enum class ChangelogKind : uint8_t { kDelta = 1, kSnapshot = 2 };

struct ChangelogRecord {
  ChangelogKind kind = ChangelogKind::kDelta;
  uint64_t chain = 0;
  uint64_t seq = 0;
  uint64_t part = 0;
  bool last = true;
  std::string_view body;  // points into the decoded bytes
};

std::string EncodeChangelogRecord(const ChangelogRecord& record);
// Errors: kInvalidArgument saying what is malformed (bytes from the topic are outside input).
Result<ChangelogRecord> DecodeChangelogRecord(std::string_view bytes);

// What a partition's changelog holds that a restore can use: the latest complete snapshot and
// the contiguous deltas of its chain after it.
struct ChangelogChain {
  uint64_t chain = 0;     // 0: the changelog holds no complete snapshot
  uint64_t base_seq = 0;  // the snapshot's seq
  uint64_t last_seq = 0;  // the last contiguous delta's seq (base_seq when none)
  std::vector<std::string> snapshot;                       // WriteBatch bytes, in order
  std::vector<std::pair<uint64_t, std::string>> deltas;    // (seq, WriteBatch bytes), in order
  uint64_t records = 0;  // records read
  uint64_t bytes = 0;    // bytes read
  uint64_t ignored = 0;  // records of other chains or before the snapshot, and incomplete ones
  // Not empty when the chain's deltas skip or repeat a seq after last_seq: what, and where.
  std::string gap;
};

// Reads a partition's changelog records in log order and keeps what a restore needs.
class ChangelogReplay {
 public:
  // `partition`: how errors name the partition ("faultline.events-3").
  explicit ChangelogReplay(std::string partition) : partition_(std::move(partition)) {}
  // The record at `offset`. Errors: kInvalidArgument naming the partition and the offset.
  Status Add(int64_t offset, std::string_view value);
  // What was read (the replay is spent).
  ChangelogChain Finish();

 private:
  struct Assembly {
    bool active = false;
    ChangelogKind kind = ChangelogKind::kDelta;
    uint64_t chain = 0, seq = 0, next_part = 0;
    std::vector<std::string> parts;
  };
  void Complete(Assembly& a, int64_t offset);
  std::string partition_;
  ChangelogChain current_;
  Assembly assembling_;
};

// Where a processor's changelog lives (a Kafka topic in production, memory in tests).
// Implementations are safe to call from several threads at once (partitions open in parallel).
class ChangelogLink {
 public:
  virtual ~ChangelogLink() = default;
  // Hands every record of `partition`'s changelog, from the oldest still kept to the end as of
  // the call, to `each` in order. Errors: kUnavailable naming the topic and partition.
  virtual Status Read(
      int32_t partition,
      const std::function<Status(int64_t offset, std::string_view value)>& each) = 0;
  // Records on their way to the changelog.
  class Delivery {
   public:
    virtual ~Delivery() = default;
    // Returns once all were acknowledged (then they are durable) or failed. Errors:
    // kUnavailable naming the topic, partition and cause; some of the records may still have
    // been written. Call once.
    virtual Status Wait() = 0;
  };
  // Starts delivering `records` (copied) to `partition`, after whatever was sent to it before,
  // in order; so that a processor's partitions wait for their acknowledgements together.
  virtual std::unique_ptr<Delivery> Send(int32_t partition,
                                         const std::vector<ChangelogRecord>& records) = 0;
  // Send, then Wait.
  Status Write(int32_t partition, const std::vector<ChangelogRecord>& records) {
    return Send(partition, records)->Wait();
  }
};

// What a PartitionState does with its changelog.
struct ChangelogOptions {
  // Not owned; null: no changelog. Default: null.
  ChangelogLink* link = nullptr;
  // A snapshot after this many commits since the last one. Default: 1000.
  uint64_t snapshot_commits = 1000;
  // A snapshot once the deltas since the last one exceed this, or the last snapshot's size if
  // that is larger (so snapshots cost at most about as much as the deltas). Default: 1 MiB.
  uint64_t snapshot_bytes = 1 << 20;
  // Bytes per record part (below the broker's message size limit). Default: 256 KiB.
  size_t part_bytes = 256 << 10;
};

}  // namespace faultline::stream
