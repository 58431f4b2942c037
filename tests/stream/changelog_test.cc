// The changelog: a partition's state restored on another disk is the state its writer committed,
// byte for byte; a gap, a lost changelog and an older writer are each handled as documented.
#include "faultline/stream/changelog.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>

#include "events.pb.h"
#include "faultline/stream/entity_namer.h"
#include "faultline/stream/partition_state.h"
#include "temp_dir.h"

namespace faultline::stream {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kT0 = 1'700'000'000;
constexpr int32_t kPartition = 2;

// A changelog in memory: a log per partition, offsets from `start` (records before it are gone,
// as retention drops them), read up to `read_end`. `refuse`: nothing is written and the delivery
// fails; `lose_ack`: the records are written but the delivery fails all the same (an
// acknowledgement that timed out).
class MemoryChangelog : public ChangelogLink {
 public:
  Status Read(int32_t partition,
              const std::function<Status(int64_t, std::string_view)>& each) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto& log = logs_[partition];
    for (size_t i = start_; i < std::min(log.size(), read_end); ++i)
      FAULTLINE_RETURN_IF_ERROR(each(static_cast<int64_t>(i), log[i]));
    return Status::Ok();
  }
  class Done : public Delivery {
   public:
    explicit Done(Status s) : s_(std::move(s)) {}
    Status Wait() override { return s_; }

   private:
    Status s_;
  };
  std::unique_ptr<Delivery> Send(int32_t partition,
                                 const std::vector<ChangelogRecord>& records) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (refuse) return std::make_unique<Done>(Unavailable("changelog: down"));
    for (const ChangelogRecord& r : records) logs_[partition].push_back(EncodeChangelogRecord(r));
    return std::make_unique<Done>(lose_ack ? Unavailable("changelog: no answer") : Status::Ok());
  }
  std::vector<std::string>& log() { return logs_[kPartition]; }
  void DropBefore(size_t offset) { start_ = offset; }
  bool refuse = false, lose_ack = false;
  // Reads stop before this offset: a reader that read before the records after it arrived.
  size_t read_end = SIZE_MAX;

 private:
  std::mutex mu_;
  std::map<int32_t, std::vector<std::string>> logs_;
  size_t start_ = 0;
};

// One message of `n` server-side exchanges at event time `t_s`, on service "api-<k>".
std::string Message(double t_s, int n, int k) {
  v1::EventBatch b;
  b.mutable_node()->set_name("node-1");
  auto* p = b.add_processes();
  p->set_pid(100), p->set_comm("api-" + std::to_string(k));
  for (int i = 0; i < n; ++i) {
    auto* e = b.add_events();
    e->set_time_unix_ns(static_cast<uint64_t>(t_s * kS) + static_cast<uint64_t>(i));
    e->set_pid(100);
    auto* c = e->mutable_connection();
    c->mutable_local()->set_addr(std::string("\x0a\x00\x00\x02", 4));
    c->mutable_local()->set_port(8080);
    c->mutable_remote()->set_addr(std::string("\x0a\x00\x00\x01", 4));
    c->mutable_remote()->set_port(40000 + static_cast<uint32_t>(i % 50));
    auto* h = e->mutable_http();
    h->set_role(v1::ROLE_SERVER);
    h->set_method("GET"), h->set_path("/items/" + std::to_string(i % 7));
    h->set_status(i % 9 == 0 ? 500 : 200), h->set_latency_ns(1000 + static_cast<uint64_t>(i));
  }
  return b.SerializeAsString();
}

// A record as a processor from before epochs wrote it ("FLC1": no epoch, no claims).
std::string EncodeV1(const ChangelogRecord& r) {
  auto varint = [](std::string* out, uint64_t v) {
    for (; v >= 0x80; v >>= 7) out->push_back(static_cast<char>(v | 0x80));
    out->push_back(static_cast<char>(v));
  };
  std::string out = "FLC1";
  out.push_back(static_cast<char>(r.kind));
  varint(&out, r.chain);
  varint(&out, r.seq);
  varint(&out, r.part);
  out.push_back(r.last ? 1 : 0);
  out.append(r.body);
  return out;
}

// Every key and value of a database, read-only.
std::map<std::string, std::string> Dump(const std::string& path) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly({}, path, &raw);
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::map<std::string, std::string> out;
  if (!s.ok()) return out;
  std::unique_ptr<rocksdb::DB> db(raw);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
  for (it->SeekToFirst(); it->Valid(); it->Next())
    out[it->key().ToString()] = it->value().ToString();
  return out;
}

class ChangelogTest : public ::testing::Test {
 protected:
  ChangelogTest() : namer_(EntityNamer::Create({}).value()) {}
  Result<std::unique_ptr<PartitionState>> Open(const TempDir& dir, ChangelogOptions o = {}) {
    o.link = &log_;
    o.part_bytes = 700;  // records of several parts
    return PartitionState::Open(dir.path(), "faultline.events", kPartition, {}, namer_, nullptr, o);
  }
  std::string Db(const TempDir& dir) { return dir.path() + "/faultline.events-2"; }
  // Opens the partition in `dir`, writes messages [from, to) and closes it.
  void Write(const TempDir& dir, int from, int to, ChangelogOptions o = {}) {
    auto p = Open(dir, o);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    Feed(**p, from, to);
  }
  // What an open reported about its restore, read before the partition was closed.
  struct Restored {
    int64_t next_offset = -1;
    std::string summary;
    ChangelogCounters counters;
    ChangelogOpen open;
    bool SummaryStarts(std::string_view prefix) const { return summary.rfind(prefix, 0) == 0; }
  };
  // Opens the partition in `restored` (restoring it from the changelog where its database is
  // missing or behind) and closes it; expects its whole database then to equal `written`'s.
  // Empty when the open failed, which fails the test too.
  std::optional<Restored> Restore(const TempDir& written, const TempDir& restored,
                                  ChangelogOptions o = {}) {
    auto p = Open(restored, o);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    if (!p.ok()) return std::nullopt;
    Restored r{(*p)->next_offset(), (*p)->restore_summary(), (*p)->changelog_counters(),
               (*p)->changelog_open()};
    p->reset();
    EXPECT_EQ(Dump(Db(written)), Dump(Db(restored)));
    return r;
  }
  // Restore, and its next offset is `next_offset` unless that is -1.
  void ExpectRestoredEqual(const TempDir& written, const TempDir& restored,
                           int64_t next_offset = -1, ChangelogOptions o = {}) {
    auto r = Restore(written, restored, o);
    if (r && next_offset >= 0) {
      EXPECT_EQ(r->next_offset, next_offset);
    }
  }
  // Applies messages [from, to) (one second of event time each, so windows close as it goes)
  // and commits after each.
  void Feed(PartitionState& p, int from, int to) {
    for (int m = from; m < to; ++m) {
      p.Apply(Message(static_cast<double>(kT0 + m), 20 + m % 5, m % 3), m, -1, &counters_);
      ASSERT_TRUE(p.Commit().ok());
    }
  }
  MemoryChangelog log_;
  EntityNamer namer_;
  ApplyCounters counters_;
};

TEST(ChangelogRecords, RoundTripAndMalformedRecordsSayWhatIsWrong) {
  const std::string bytes =
      EncodeChangelogRecord({ChangelogKind::kSnapshot, 77, 12, 3, false, "body"});
  auto r = DecodeChangelogRecord(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, ChangelogKind::kSnapshot);
  EXPECT_EQ(r->chain, 77u);
  EXPECT_EQ(r->seq, 12u);
  EXPECT_EQ(r->part, 3u);
  EXPECT_FALSE(r->last);
  EXPECT_EQ(r->body, "body");
  EXPECT_NE(DecodeChangelogRecord("XLC1").status().message().find("magic"), std::string::npos);
  std::string bad_kind = bytes;
  bad_kind[4] = 9;
  EXPECT_NE(DecodeChangelogRecord(bad_kind).status().message().find("kind 9"), std::string::npos);
  EXPECT_NE(DecodeChangelogRecord(bytes.substr(0, 6)).status().message().find("truncated"),
            std::string::npos);
  ChangelogReplay replay("faultline.events-5");
  Status s = replay.Add(41, "garbage");
  EXPECT_NE(s.message().find("faultline.events-5 at offset 41"), std::string::npos) << s.message();
}

TEST(ChangelogRecords, EpochsAndClaimsRoundTripAndFormat1ReadsAsEpoch0) {
  ChangelogRecord delta{ChangelogKind::kDelta, 77, 12, 0, true, "body", 5};
  const std::string delta_bytes = EncodeChangelogRecord(delta);
  auto d = DecodeChangelogRecord(delta_bytes);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->epoch, 5u);
  EXPECT_EQ(d->chain, 77u);
  EXPECT_EQ(d->body, "body");
  ChangelogRecord claim{ChangelogKind::kClaim, 78, 12, 0, true, {}, 6, 77};
  const std::string claim_bytes = EncodeChangelogRecord(claim);
  auto c = DecodeChangelogRecord(claim_bytes);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->kind, ChangelogKind::kClaim);
  EXPECT_EQ(c->epoch, 6u);
  EXPECT_EQ(c->chain, 78u);
  EXPECT_EQ(c->seq, 12u);
  EXPECT_EQ(c->base_chain, 77u);
  EXPECT_EQ(c->body, "");
  EXPECT_EQ(EncodeChangelogRecord(*c), claim_bytes);
  // Format 1: the same fields, epoch 0; claims did not exist.
  const std::string v1_bytes = EncodeV1({ChangelogKind::kSnapshot, 77, 12, 3, false, "body"});
  auto v1 = DecodeChangelogRecord(v1_bytes);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(v1->kind, ChangelogKind::kSnapshot);
  EXPECT_EQ(v1->epoch, 0u);
  EXPECT_EQ(v1->chain, 77u);
  EXPECT_EQ(v1->seq, 12u);
  EXPECT_EQ(v1->part, 3u);
  EXPECT_FALSE(v1->last);
  EXPECT_EQ(v1->body, "body");
  std::string v1_claim = EncodeV1({ChangelogKind::kDelta, 77, 12, 0, true, ""});
  v1_claim[4] = 3;
  EXPECT_NE(DecodeChangelogRecord(v1_claim).status().message().find(
                "kind 3, expected 1 (delta) or 2 (snapshot)"),
            std::string::npos);
  // A claim is one part, at an epoch, with exactly one varint after it.
  auto why = [](const ChangelogRecord& r) {
    return DecodeChangelogRecord(EncodeChangelogRecord(r)).status().message();
  };
  ChangelogRecord parted = claim;
  parted.part = 1;
  EXPECT_NE(why(parted).find("a claim of part 1"), std::string::npos);
  ChangelogRecord epoch0 = claim;
  epoch0.epoch = 0;
  EXPECT_NE(why(epoch0).find("a claim at epoch 0"), std::string::npos);
  const std::string trailing = claim_bytes + "x";
  EXPECT_NE(DecodeChangelogRecord(trailing).status().message().find("base chain is not one varint"),
            std::string::npos);
}

// Writers' records may interleave on the topic: another writer's record between the parts of a
// snapshot does not cut the snapshot short (and a fenced one counts once).
TEST(ChangelogRecords, AnotherWritersRecordBetweenAPartsSnapshotDoesNotCutItShort) {
  ChangelogReplay replay("faultline.events-1");
  const std::vector<ChangelogRecord> records = {
      {ChangelogKind::kClaim, 10, 0, 0, true, {}, 1, 0},
      {ChangelogKind::kSnapshot, 10, 0, 0, true, "s", 1},
      {ChangelogKind::kDelta, 10, 1, 0, true, "d1", 1},
      {ChangelogKind::kClaim, 20, 1, 0, true, {}, 2, 10},
      {ChangelogKind::kSnapshot, 20, 1, 0, false, "p0", 2},
      {ChangelogKind::kDelta, 10, 2, 0, true, "zombie", 1},
      {ChangelogKind::kSnapshot, 20, 1, 1, true, "p1", 2},
      {ChangelogKind::kDelta, 20, 2, 0, false, "d2a", 2},
      {ChangelogKind::kDelta, 20, 2, 1, true, "d2b", 2},
  };
  for (size_t i = 0; i < records.size(); ++i)
    ASSERT_TRUE(replay.Add(static_cast<int64_t>(i), EncodeChangelogRecord(records[i])).ok());
  const ChangelogChain chain = replay.Finish();
  EXPECT_EQ(chain.chain, 20u);
  EXPECT_EQ(chain.base_seq, 1u);
  EXPECT_EQ(chain.last_seq, 2u);
  EXPECT_EQ(chain.snapshot, (std::vector<std::string>{"p0", "p1"}));
  ASSERT_EQ(chain.deltas.size(), 1u);
  EXPECT_EQ(chain.deltas[0].second, "d2ad2b");
  EXPECT_EQ(chain.epoch, 2u);
  EXPECT_EQ(chain.max_epoch, 2u);
  EXPECT_EQ(chain.fenced, 1u);
  EXPECT_EQ(chain.fenced_chains, std::vector<uint64_t>{10});
  EXPECT_EQ(chain.ignored, 0u);
  EXPECT_EQ(chain.records, 9u);
}

TEST_F(ChangelogTest, SnapshotAndDeltasOnAnotherDiskReproduceTheExactDatabase) {
  TempDir a, b;
  ChangelogOptions o;
  o.snapshot_commits = 7;  // a snapshot mid-way: the restore starts from the latest one
  auto writer = Open(a, o);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  Feed(**writer, 0, 30);
  EXPECT_GE((*writer)->changelog_counters().snapshots, 4u);
  const int64_t next = (*writer)->next_offset();
  writer->reset();
  auto reader = Restore(a, b, o);
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->next_offset, next);
  EXPECT_TRUE(reader->SummaryStarts("rebuilt from seq 0 to 30")) << reader->summary;
  EXPECT_EQ(reader->counters.restores, 1u);

  // The new owner goes on from there; a third disk restored after it equals it, too.
  auto owner = Open(b, o);
  ASSERT_TRUE(owner.ok());
  Feed(**owner, 30, 40);
  owner->reset();
  TempDir c;
  ExpectRestoredEqual(b, c, 40, o);
}

TEST_F(ChangelogTest, ADiskLeftBehindCatchesUpWithTheDeltasOfItsOwnChain) {
  TempDir a, copy;
  Write(a, 0, 5);
  std::filesystem::copy(a.path(), copy.path(), std::filesystem::copy_options::recursive);
  {
    auto p = Open(a);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)->restore_summary().rfind("local from seq 5 to 5", 0), 0u);
    Feed(**p, 5, 9);
  }
  auto behind = Restore(a, copy);
  ASSERT_TRUE(behind);
  EXPECT_TRUE(behind->SummaryStarts("caught up from seq 5 to 9")) << behind->summary;
}

TEST_F(ChangelogTest, AGapInTheDeltasIsAnErrorNamingThePartitionAndTheSeq) {
  TempDir a, b;
  Write(a, 0, 6);
  // Drop every part of the delta of seq 4.
  auto& log = log_.log();
  std::erase_if(log, [](const std::string& r) {
    auto d = DecodeChangelogRecord(r);
    return d.ok() && d->kind == ChangelogKind::kDelta && d->seq == 4;
  });
  auto p = Open(b);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(p.status().message().find("faultline.events-2"), std::string::npos);
  EXPECT_NE(p.status().message().find("after seq 3 comes seq 5"), std::string::npos)
      << p.status().message();
}

TEST_F(ChangelogTest, ALocalDatabaseAheadOfTheChangelogIsKeptAndSnapshotted) {
  TempDir a;
  Write(a, 0, 6);
  // The changelog lost everything after the first snapshot and two deltas.
  size_t keep = 0;
  for (size_t i = 0; i < log_.log().size(); ++i) {
    auto d = DecodeChangelogRecord(log_.log()[i]);
    if (d.ok() && d->kind == ChangelogKind::kDelta && d->seq == 2 && d->last) keep = i + 1;
  }
  ASSERT_GT(keep, 0u);
  log_.log().resize(keep);
  auto p = Open(a);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)->restore_summary().rfind("local from seq 6 to 6", 0), 0u)
      << (*p)->restore_summary();
  EXPECT_EQ((*p)->next_offset(), 6);
  Feed(**p, 6, 7);
  // The next commit started a chain of its own with a snapshot of the local state.
  EXPECT_EQ((*p)->changelog_counters().snapshots, 1u);
  p->reset();
  TempDir b;
  ExpectRestoredEqual(a, b, 7);
}

TEST_F(ChangelogTest, AnOlderWriterThatStillCommitsIsIgnoredAfterTheNewOwnersSnapshot) {
  TempDir a, b, c;
  auto zombie = Open(a);
  ASSERT_TRUE(zombie.ok());
  Feed(**zombie, 0, 5);
  auto owner = Open(b);
  ASSERT_TRUE(owner.ok());
  Feed(**owner, 5, 8);
  Feed(**zombie, 5, 12);  // it believes it still owns the partition
  owner->reset();
  auto restored = Restore(b, c);
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->next_offset, 8);
  EXPECT_EQ(restored->counters.fenced, 7u);
}

// The defect of issue 23: an older writer whose delivery failed writes a snapshot of its own
// state after the new owner's snapshot and deltas; a restore must still give the new owner's.
TEST_F(ChangelogTest, AnOlderWritersSnapshotAfterTheNewOwnersClaimIsFenced) {
  TempDir a, b, c;
  auto zombie = Open(a);
  ASSERT_TRUE(zombie.ok());
  Feed(**zombie, 0, 5);
  auto owner = Open(b);
  ASSERT_TRUE(owner.ok());
  Feed(**owner, 5, 8);
  // The older writer was cut off: its commit fails, so its next commit goes after a snapshot.
  log_.refuse = true;
  (*zombie)->Apply(Message(kT0 + 5, 30, 1), 5, -1, &counters_);
  EXPECT_EQ((*zombie)->Commit().code(), StatusCode::kUnavailable);
  log_.refuse = false;
  Feed(**zombie, 6, 12);  // a snapshot of seq 5, then the deltas of seqs 6 to 11
  EXPECT_EQ((*zombie)->changelog_counters().snapshots, 2u);
  EXPECT_EQ((*zombie)->changelog_open().epoch, 1u);
  EXPECT_EQ((*owner)->changelog_open().epoch, 2u);
  owner->reset();
  auto restored = Restore(b, c);
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->next_offset, 8);
  EXPECT_TRUE(restored->SummaryStarts("rebuilt from seq 0 to 8")) << restored->summary;
  // The older writer's snapshot and its 6 deltas, all after the owner's claim.
  EXPECT_EQ(restored->counters.fenced, 7u);
  const ChangelogOpen& o = restored->open;
  EXPECT_EQ(o.source, ChangelogOpen::Source::kRebuilt);
  EXPECT_EQ(o.from_seq, 5u);  // the owner's snapshot
  EXPECT_EQ(o.deltas, 3u);
  EXPECT_EQ(o.seq, 8u);
  EXPECT_EQ(o.epoch, 3u);
}

// A processor that claimed the partition and died before committing: the state is the one it
// claimed at (the previous owner's up to the claim); the previous owner's later commits are
// fenced all the same, as it had lost the partition.
TEST_F(ChangelogTest, AClaimWithNothingAfterItKeepsTheStateItClaimedAt) {
  TempDir a, b, c, d;
  auto zombie = Open(a);
  ASSERT_TRUE(zombie.ok());
  Feed(**zombie, 0, 5);
  auto claimer = Open(b);
  ASSERT_TRUE(claimer.ok());
  EXPECT_EQ((*claimer)->changelog_open().epoch, 2u);
  claimer->reset();  // dies before its first commit
  Feed(**zombie, 5, 8);
  zombie->reset();
  auto restored = Restore(b, c);
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->next_offset, 5);
  EXPECT_TRUE(restored->SummaryStarts("rebuilt from seq 0 to 5")) << restored->summary;
  EXPECT_EQ(restored->counters.fenced, 3u);
  EXPECT_EQ(restored->open.epoch, 3u);

  // The claimer comes back on its disk: it holds that state, so it goes on from it with deltas,
  // no snapshot; a restore after it equals it.
  auto back = Open(b);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ((*back)->restore_summary().rfind("local from seq 5 to 5", 0), 0u)
      << (*back)->restore_summary();
  EXPECT_EQ((*back)->changelog_open().epoch, 4u);
  Feed(**back, 5, 9);
  EXPECT_EQ((*back)->changelog_counters().snapshots, 0u);
  back->reset();
  ExpectRestoredEqual(b, d, 9);
}

// The previous owner commits between the new owner's read and its claim: the claim cuts the
// state back to what the new owner read, and the new owner's deltas continue from there.
TEST_F(ChangelogTest, AClaimCutsBackTheCommitsItsClaimerDidNotRead) {
  TempDir a, b, c;
  Write(a, 0, 5);
  std::filesystem::copy(a.path(), b.path(), std::filesystem::copy_options::recursive);
  auto previous = Open(a);
  ASSERT_TRUE(previous.ok());
  log_.read_end = log_.log().size();  // the next owner reads up to here
  Feed(**previous, 5, 7);
  auto owner = Open(b);
  ASSERT_TRUE(owner.ok()) << owner.status().ToString();
  log_.read_end = SIZE_MAX;
  EXPECT_EQ((*owner)->restore_summary().rfind("local from seq 5 to 5", 0), 0u)
      << (*owner)->restore_summary();
  EXPECT_EQ((*owner)->changelog_open().epoch, 3u);
  Feed(**owner, 5, 8);
  EXPECT_EQ((*owner)->changelog_counters().snapshots, 0u);
  owner->reset();
  auto restored = Restore(b, c);
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->next_offset, 8);
  EXPECT_EQ(restored->counters.fenced, 2u);  // the previous owner's 6 and 7
  // The previous owner's disk, ahead by commits the claim cut back, is rebuilt, not kept.
  previous->reset();
  auto again = Restore(b, a);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->SummaryStarts("rebuilt from seq 7 to 8")) << again->summary;
}

// Two processors that read the changelog before either claimed take the same epoch: the first
// claim on the topic wins, and the second writer's records are fenced.
TEST_F(ChangelogTest, OfTwoClaimsAtOneEpochTheFirstWins) {
  TempDir a, b, c, d;
  Write(a, 0, 5);
  log_.read_end = log_.log().size();
  auto first = Open(b);
  ASSERT_TRUE(first.ok());
  auto second = Open(c);  // read before the first's claim
  ASSERT_TRUE(second.ok());
  log_.read_end = SIZE_MAX;
  EXPECT_EQ((*first)->changelog_open().epoch, 2u);
  EXPECT_EQ((*second)->changelog_open().epoch, 2u);
  Feed(**second, 5, 9);  // a snapshot of seq 5, deltas 6 to 9
  Feed(**first, 5, 7);   // likewise, deltas 6 and 7
  first->reset();
  auto restored = Restore(b, d);
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->next_offset, 7);
  // The second's claim, its snapshot and its 4 deltas.
  EXPECT_EQ(restored->counters.fenced, 6u);
  EXPECT_EQ(restored->open.epoch, 3u);
}

// A changelog written before epochs ("FLC1", no claims) restores as before, and the processor
// that restores it claims epoch 1 and goes on in the current format.
TEST_F(ChangelogTest, AFormat1ChangelogRestoresAsBefore) {
  TempDir a, b, c;
  ChangelogOptions o;
  o.snapshot_commits = 4;
  Write(a, 0, 10, o);
  std::vector<std::string> v1;
  for (const std::string& r : log_.log()) {
    auto d = DecodeChangelogRecord(r);
    ASSERT_TRUE(d.ok());
    if (d->kind != ChangelogKind::kClaim) v1.push_back(EncodeV1(*d));
  }
  ASSERT_GT(v1.size(), 10u);
  log_.log() = v1;
  auto restored = Restore(a, b, o);
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->next_offset, 10);
  EXPECT_TRUE(restored->SummaryStarts("rebuilt from seq 0 to 10")) << restored->summary;
  EXPECT_EQ(restored->counters.fenced, 0u);
  EXPECT_EQ(restored->open.from_seq, 8u);  // the snapshot after 8 commits
  EXPECT_EQ(restored->open.deltas, 2u);
  EXPECT_EQ(restored->open.epoch, 1u);
  auto owner = Open(b, o);
  ASSERT_TRUE(owner.ok());
  Feed(**owner, 10, 13);
  owner->reset();
  ExpectRestoredEqual(b, c, 13, o);
}

TEST_F(ChangelogTest, ACommitTheChangelogRefusesStaysInMemoryAndIsWrittenLater) {
  // Refused outright, or written but unacknowledged (then the changelog holds a delta of a seq
  // that the retry writes again: the snapshot before the retry makes the first one void).
  for (bool written : {false, true}) {
    SCOPED_TRACE(written ? "written, unacknowledged" : "refused");
    TempDir a, b;
    auto p = Open(a);
    ASSERT_TRUE(p.ok());
    Feed(**p, 0, 3);
    (written ? log_.lose_ack : log_.refuse) = true;
    (*p)->Apply(Message(kT0 + 3, 10, 0), 3, -1, &counters_);
    Status s = (*p)->Commit();
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    log_.refuse = log_.lose_ack = false;
    Feed(**p, 4, 6);
    EXPECT_EQ((*p)->next_offset(), 6);
    p->reset();
    ExpectRestoredEqual(a, b, 6);
  }
}

TEST_F(ChangelogTest, RecordsLostToRetentionBeforeTheLatestSnapshotDoNotMatter) {
  TempDir a, b;
  ChangelogOptions o;
  o.snapshot_commits = 4;
  Write(a, 0, 10, o);
  // Drop up to just after the start of the latest snapshot: that one is incomplete then, and the
  // one before it is gone, so nothing is restorable: an error, not a silent start afresh.
  size_t last_snapshot = 0;
  for (size_t i = 0; i < log_.log().size(); ++i) {
    auto d = DecodeChangelogRecord(log_.log()[i]);
    if (d.ok() && d->kind == ChangelogKind::kSnapshot && d->part == 0) last_snapshot = i;
  }
  log_.DropBefore(last_snapshot);
  ExpectRestoredEqual(a, b, 10, o);
  log_.DropBefore(last_snapshot + 1);
  TempDir c;
  auto lost = Open(c, o);
  ASSERT_FALSE(lost.ok());
  EXPECT_NE(lost.status().message().find("no complete snapshot"), std::string::npos)
      << lost.status().message();
}

}  // namespace
}  // namespace faultline::stream
