#include "faultline/agent/connection_table.h"

#include <gtest/gtest.h>

namespace faultline::agent {
namespace {

TEST(ConnectionTable, EvictsTheLeastRecentlyUsedWhenFullAndCountsIt) {
  ConnectionTable t(2);
  t.Touch(1, HttpRole::kServer, 10);
  t.Touch(2, HttpRole::kClient, 20);
  t.Touch(1, HttpRole::kServer, 30);  // 1 is now the most recent
  t.Touch(3, HttpRole::kServer, 40);  // evicts 2
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.Remove(2), nullptr);
  auto one = t.Remove(1);
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->parser.role(), HttpRole::kServer);
  EXPECT_EQ(one->last_seen_ns, 30u);
}

TEST(ConnectionTable, ExpiresIdleConnections) {
  ConnectionTable t(10);
  t.Touch(1, HttpRole::kServer, 100);
  t.Touch(2, HttpRole::kServer, 200);
  t.Touch(3, HttpRole::kServer, 300);
  EXPECT_EQ(t.ExpireIdle(350, 100), 2u);  // 1 and 2 idle for more than 100
  EXPECT_EQ(t.size(), 1u);
  EXPECT_NE(t.Remove(3), nullptr);
}

}  // namespace
}  // namespace faultline::agent
