// The topology on disk: a saved graph loads back equal, a save replaces the store, and a
// malformed record is named.
#include "faultline/topology/topology_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>

namespace faultline::topology {
namespace {

TEST(TopologyStore, PersistenceRoundTrip) {
  const std::string dir = testing::TempDir() + "/topology_roundtrip";
  std::filesystem::remove_all(dir);
  // Every node kind and edge kind, requests on calls, and names holding the separators.
  Topology t;
  t.ObserveEdge(EdgeKind::kCalls, {EntityKind::kService, "gateway"},
                {EntityKind::kService, "cart"}, 100, 42);
  t.ObserveEdge(EdgeKind::kCalls, {EntityKind::kService, "cart"},
                {EntityKind::kExternal, "93.184.216.34:443"}, 105, 7);
  t.ObserveEdge(EdgeKind::kInstanceOf, {EntityKind::kInstance, "m1/41"},
                {EntityKind::kService, "gateway"}, 100);
  t.ObserveEdge(EdgeKind::kRunsOn, {EntityKind::kInstance, "m1/41"},
                {EntityKind::kContainer, "pod-a"}, 100);
  t.ObserveEdge(EdgeKind::kRunsOn, {EntityKind::kContainer, "pod-a"},
                {EntityKind::kMachine, "m1"}, 95);
  t.ObserveEdge(EdgeKind::kNetwork, {EntityKind::kMachine, "m1"}, {EntityKind::kMachine, "m2"},
                110);
  t.ObserveEdge(EdgeKind::kCalls, {EntityKind::kService, "a|b"}, {EntityKind::kService, "c d"}, 90, 5);
  ASSERT_EQ(t.node_count(), 9u);
  ASSERT_EQ(t.edge_count(), 7u);
  ASSERT_TRUE(SaveTopology(t, dir).ok());
  auto back = LoadTopology(dir);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToText(), t.ToText());
  EXPECT_EQ(back->ToJson(), t.ToJson());

  // Saving a smaller graph replaces the old one.
  Topology small;
  small.ObserveNode({EntityKind::kMachine, "m9"}, 7);
  ASSERT_TRUE(SaveTopology(small, dir).ok());
  back = LoadTopology(dir);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToText(), "1 nodes, 0 edges\nnode machine m9  seen 7..7\n");

  EXPECT_EQ(LoadTopology(dir + "-missing").status().code(), StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

TEST(TopologyStore, LoadNamesAMalformedRecord) {
  const std::string dir = testing::TempDir() + "/topology_bad";
  std::filesystem::remove_all(dir);
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "n|1|api", "10 x").ok());
    delete db;
  }
  EXPECT_EQ(LoadTopology(dir).status().message(),
            "topology store " + dir + ": record \"n|1|api\": value \"10 x\" is not numbers");
  std::filesystem::remove_all(dir);
}

// Stores written before the entity kinds were unified name node kinds by number: 1 service,
// 2 instance, 3 machine, 4 external.
TEST(TopologyStore, LoadReadsTheEarlierNumericLayout) {
  const std::string dir = testing::TempDir() + "/topology_legacy";
  std::filesystem::remove_all(dir);
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "n|2|api-1", "10 20").ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "n|3|m1", "10 20").ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), std::string("e|3|2|3|api-1\0m1", 16), "10 20 0").ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "n|9|x", "10 20").ok());
    delete db;
  }
  EXPECT_EQ(LoadTopology(dir).status().message(),
            "topology store " + dir + ": record \"n|9|x\": unknown kind");
  {
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir, &db).ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), "n|9|x").ok());
    delete db;
  }
  auto t = LoadTopology(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->ToText(),
            "2 nodes, 1 edges\nnode machine m1  seen 10..20\nnode instance api-1  seen 10..20\n"
            "edge runs_on api-1 -> m1  seen 10..20\n");
  // Saved again, it is in the named layout and reads back the same.
  ASSERT_TRUE(SaveTopology(*t, dir).ok());
  auto again = LoadTopology(dir);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToText(), t->ToText());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace faultline::topology
