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
// Records (the message value; the key, "<seq>.<part>@<chain>" or "claim<epoch>@<chain>", is for
// people reading the topic and unique, so that compaction would remove nothing):
//   "FLC2", kind (1 delta, 2 snapshot, 3 claim), varint epoch, varint chain, varint seq,
//   varint part, last (0 or 1), then the part's bytes; a claim (one part) has instead one varint,
//   its base chain.
//   "FLC1" (before epochs; still read, as epoch 0): kind (1 or 2), varint chain, varint seq,
//   varint part, last, then the part's bytes.
// A delta's parts, concatenated, are the bytes of one WriteBatch (seq: the commit it makes). A
// snapshot's parts are WriteBatches of Puts each (seq: the commit the database was at).
//
// Writers and fencing. Each time a processor opens a partition, after its restore and before it
// commits anything, it draws a chain (a random id for the records it will write) and claims the
// partition with the next epoch: one more than the highest epoch the changelog holds. Its claim
// names the chain and seq its database is at (its base). Reading in log order, a restore keeps
// the highest claim so far and fences every record of a lower epoch, and of the same epoch from
// another chain (of two claims at one epoch, the first wins): so a writer that lost its partition
// but still commits (a "zombie": cut off, or paused) is ignored from the new owner's claim on,
// whatever it writes, snapshots included. A claim cuts the state back to its base (deltas of the
// old owner written between the claimer's read and its claim are fenced too) and the claimer's
// deltas continue from there; a claimer whose database is not on the changelog's state (a new
// partition, a database ahead of the changelog, one rebuilt from it) writes a snapshot first.
// Only contiguous deltas count: one that skips or repeats a seq is a restore error, and so is a
// delta of the owning writer that continues a state the changelog does not hold.
//
// Thread-compatible, except ChangelogLink implementations, which say.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::stream {

enum class ChangelogKind : uint8_t { kDelta = 1, kSnapshot = 2, kClaim = 3 };

struct ChangelogRecord {
  ChangelogKind kind = ChangelogKind::kDelta;
  uint64_t chain = 0;     // the writer's id, never 0
  uint64_t seq = 0;       // a claim: the seq of the claimer's database
  uint64_t part = 0;      // a claim: 0
  bool last = true;       // a claim: true
  std::string_view body;  // points into the decoded bytes; a claim: empty
  // The epoch its writer claimed the partition at; 0: a record from before epochs ("FLC1").
  uint64_t epoch = 0;
  // A claim: the chain of the claimer's database at `seq` (0: none, a new database).
  uint64_t base_chain = 0;
};

// Always in the current format ("FLC2").
std::string EncodeChangelogRecord(const ChangelogRecord& record);
// Both formats. Errors: kInvalidArgument saying what is malformed (bytes from the topic are
// outside input).
Result<ChangelogRecord> DecodeChangelogRecord(std::string_view bytes);

// What a partition's changelog holds that a restore can use: the latest complete snapshot of a
// writer not fenced, and the contiguous deltas after it of that writer and of the writers that
// claimed the partition from it.
struct ChangelogChain {
  // The chain of the record that made the state at last_seq (the snapshot's or the last
  // delta's); 0: the changelog holds no complete snapshot.
  uint64_t chain = 0;
  uint64_t base_seq = 0;              // the snapshot's seq
  uint64_t last_seq = 0;              // the last contiguous delta's seq (base_seq when none)
  std::vector<std::string> snapshot;  // WriteBatch bytes, in order
  std::vector<std::pair<uint64_t, std::string>> deltas;  // (seq, WriteBatch bytes), in order
  // The writers whose records make the state, oldest first: (chain, the seq it starts at). The
  // first wrote the snapshot; each later one claimed the partition at that seq.
  std::vector<std::pair<uint64_t, uint64_t>> writers;
  uint64_t epoch = 0;      // the highest epoch claimed (or written): the owner's
  uint64_t max_epoch = 0;  // the highest epoch of any record: the next claim takes one more
  uint64_t records = 0;    // records read
  uint64_t bytes = 0;      // bytes read
  // Records (snapshots, deltas and claims, each counted once however many parts it has) of a
  // writer that had lost the partition to a later claim, and deltas a claim cut back.
  uint64_t fenced = 0;
  std::vector<uint64_t> fenced_chains;  // their chains, sorted
  uint64_t ignored = 0;  // records of other chains or before the snapshot, and incomplete ones
  // Not empty when the chain's deltas skip or repeat a seq after last_seq, or when the owner's
  // deltas do not continue this state: what, and where.
  std::string gap;

  // Whether a database of `chain` at `seq` holds a state these records pass through (then the
  // deltas after `seq` bring it to last_seq).
  bool Holds(uint64_t chain, uint64_t seq) const;
  // Whether a record of `chain` was fenced.
  bool Fenced(uint64_t chain) const;
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
  // A record being put together from its parts, per chain: writers' records may interleave.
  struct Assembly {
    ChangelogKind kind = ChangelogKind::kDelta;
    uint64_t epoch = 0, seq = 0, next_part = 0;
    std::vector<std::string> parts;
  };
  // Whether a record of `chain` at `epoch` comes from a writer that lost the partition.
  bool IsFenced(uint64_t epoch, uint64_t chain) const;
  void Fence(uint64_t chain);
  void Claim(const ChangelogRecord& claim);
  void Complete(uint64_t chain, Assembly& a, int64_t offset);
  std::string partition_;
  ChangelogChain current_;
  std::map<uint64_t, Assembly> assembling_;  // by chain
  uint64_t owner_ = 0;                  // the chain that claimed current_.epoch (0: epoch 0)
  std::vector<uint64_t> delta_chains_;  // the chain of each of current_.deltas
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
