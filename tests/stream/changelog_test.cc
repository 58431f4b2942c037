// The changelog: a partition's state restored on another disk is the state its writer committed,
// byte for byte; a gap, a lost changelog and an older writer are each handled as documented.
#include "faultline/stream/changelog.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <map>
#include <mutex>

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
// as retention drops them). `refuse`: nothing is written and the delivery fails; `lose_ack`: the
// records are written but the delivery fails all the same (an acknowledgement that timed out).
class MemoryChangelog : public ChangelogLink {
 public:
  Status Read(int32_t partition,
              const std::function<Status(int64_t, std::string_view)>& each) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto& log = logs_[partition];
    for (size_t i = start_; i < log.size(); ++i)
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
  // Opens the partition in the fresh `restored` from the changelog, then compares its whole
  // database with `written`'s; and its next offset with `next_offset`, unless that is -1.
  void ExpectRestoredEqual(const TempDir& written, const TempDir& restored,
                           int64_t next_offset = -1, ChangelogOptions o = {}) {
    auto p = Open(restored, o);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    if (next_offset >= 0) {
      EXPECT_EQ((*p)->next_offset(), next_offset);
    }
    p->reset();
    EXPECT_EQ(Dump(Db(written)), Dump(Db(restored)));
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

TEST_F(ChangelogTest, SnapshotAndDeltasOnAnotherDiskReproduceTheExactDatabase) {
  TempDir a, b;
  ChangelogOptions o;
  o.snapshot_commits = 7;  // a snapshot mid-way: the restore starts from the latest one
  auto writer = Open(a, o);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  Feed(**writer, 0, 30);
  EXPECT_GE((*writer)->changelog_counters().snapshots, 4u);
  const int64_t next = (*writer)->next_offset();
  auto reader = Open(b, o);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->next_offset(), next);
  EXPECT_EQ((*reader)->restore_summary().rfind("rebuilt from seq 0 to 30", 0), 0u)
      << (*reader)->restore_summary();
  EXPECT_EQ((*reader)->changelog_counters().restores, 1u);
  writer->reset();
  reader->reset();
  EXPECT_EQ(Dump(Db(a)), Dump(Db(b)));

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
  auto behind = Open(copy);
  ASSERT_TRUE(behind.ok()) << behind.status().ToString();
  EXPECT_EQ((*behind)->restore_summary().rfind("caught up from seq 5 to 9", 0), 0u)
      << (*behind)->restore_summary();
  behind->reset();
  EXPECT_EQ(Dump(Db(a)), Dump(Db(copy)));
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
  ExpectRestoredEqual(b, c, 8);
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
