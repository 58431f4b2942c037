#include "faultline/topology/graph.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "faultline/model/window_stats.h"

namespace faultline::topology {
namespace {

using model::StoredWindow;

StoredWindow Window(int64_t start, EntityKind kind,
                    std::vector<std::pair<std::string, std::string>> dims, uint64_t requests = 0,
                    std::string callee_service = "") {
  StoredWindow w;
  w.start_s = start;
  w.key.kind = kind;
  std::sort(dims.begin(), dims.end());
  w.key.dims = std::move(dims);
  w.stats.requests = requests;
  w.callee_service = std::move(callee_service);
  return w;
}

// gateway (on m1) calls cart (m2) through 10.0.0.2:8080, and an outside API 93.184.216.34:443;
// cart is called by an outside client 203.0.113.9 (server side), and by gateway (server side
// too: 10.0.0.1 is a known host since gateway listens there, so it adds nothing). Network edges
// join the machines at the two ends of every call, an external end included either way.
std::vector<StoredWindow> Shop(int64_t t) {
  return {
      Window(t, EntityKind::kListener,
             {{"service", "gateway"}, {"address", "10.0.0.1:80"}, {"machine", "m1"}}),
      Window(t, EntityKind::kListener,
             {{"service", "cart"}, {"address", "10.0.0.2:8080"}, {"machine", "m2"}}),
      Window(
          t, EntityKind::kService,
          {{"service", "gateway"}, {"endpoint", "GET /"}, {"instance", "gw-1"}, {"machine", "m1"}},
          10),
      Window(t, EntityKind::kService,
             {{"service", "cart"},
              {"endpoint", "GET /cart"},
              {"instance", "cart-1"},
              {"machine", "m2"}},
             7),
      Window(t, EntityKind::kEdge,
             {{"caller", "gateway"},
              {"callee", "10.0.0.2:8080"},
              {"instance", "gw-1"},
              {"machine", "m1"},
              {"side", "client"}},
             7, "cart"),
      Window(t, EntityKind::kEdge,
             {{"caller", "gateway"},
              {"callee", "93.184.216.34:443"},
              {"instance", "gw-1"},
              {"machine", "m1"},
              {"side", "client"}},
             3),
      Window(t, EntityKind::kEdge,
             {{"caller", "203.0.113.9"},
              {"callee", "cart"},
              {"instance", "cart-1"},
              {"machine", "m2"},
              {"side", "server"}},
             2),
      Window(t, EntityKind::kEdge,
             {{"caller", "10.0.0.1"},
              {"callee", "cart"},
              {"instance", "cart-1"},
              {"machine", "m2"},
              {"side", "server"}},
             7),
      Window(t, EntityKind::kMachine, {{"machine", "m3"}}),
  };
}

TEST(Topology, BuiltFromTheStreamsWindows) {
  Topology t;
  t.ObserveWindows(Shop(100), 5);
  EXPECT_EQ(t.ToText(),
            "9 nodes, 10 edges\n"
            "node service cart  seen 105..105\n"
            "node service gateway  seen 105..105\n"
            "node machine m1  seen 105..105\n"
            "node machine m2  seen 105..105\n"
            "node machine m3  seen 105..105\n"
            "node instance cart-1  seen 105..105\n"
            "node instance gw-1  seen 105..105\n"
            "node external 203.0.113.9  seen 105..105\n"
            "node external 93.184.216.34:443  seen 105..105\n"
            "edge calls gateway -> cart  requests 7  seen 105..105\n"
            "edge calls gateway -> 93.184.216.34:443  requests 3  seen 105..105\n"
            "edge calls 203.0.113.9 -> cart  requests 2  seen 105..105\n"
            "edge instance_of cart-1 -> cart  seen 105..105\n"
            "edge instance_of gw-1 -> gateway  seen 105..105\n"
            "edge runs_on cart-1 -> m2  seen 105..105\n"
            "edge runs_on gw-1 -> m1  seen 105..105\n"
            "edge network m1 -> m2  seen 105..105\n"
            "edge network m1 -> 93.184.216.34:443  seen 105..105\n"
            // The external caller's connections reach cart's machine: the rule is symmetric.
            "edge network 203.0.113.9 -> m2  seen 105..105\n");
}

TEST(Topology, ContainersSitBetweenInstancesAndMachinesAndEphemeralPeersGroupByAddress) {
  Topology t;
  t.ObserveWindows(
      {Window(100, EntityKind::kService,
              {{"service", "api"}, {"endpoint", "GET /"}, {"instance", "api-1"}, {"machine", "m1"},
               {"container", "shop/api-0/api"}},
              5),
       Window(100, EntityKind::kContainer, {{"container", "shop/api-0/api"}, {"machine", "m1"}}),
       // A container no instance was seen in yet still runs on its machine.
       Window(100, EntityKind::kContainer, {{"container", "m1:/system.slice/cron.service"}, {"machine", "m1"}}),
       // Calls to an outside host's ephemeral ports: one peer, not one per port.
       Window(100, EntityKind::kEdge,
              {{"caller", "api"}, {"callee", "198.51.100.4:40001"}, {"instance", "api-1"},
               {"machine", "m1"}, {"side", "client"}},
              1),
       Window(100, EntityKind::kEdge,
              {{"caller", "api"}, {"callee", "198.51.100.4:40002"}, {"instance", "api-1"},
               {"machine", "m1"}, {"side", "client"}},
              1)},
      5);
  EXPECT_EQ(t.ToText(),
            "6 nodes, 6 edges\n"
            "node service api  seen 105..105\n"
            "node machine m1  seen 105..105\n"
            "node instance api-1  seen 105..105\n"
            "node container m1:/system.slice/cron.service  seen 105..105\n"
            "node container shop/api-0/api  seen 105..105\n"
            "node external 198.51.100.4  seen 105..105\n"
            "edge calls api -> 198.51.100.4  requests 2  seen 105..105\n"
            "edge instance_of api-1 -> api  seen 105..105\n"
            "edge runs_on api-1 -> shop/api-0/api  seen 105..105\n"
            "edge runs_on m1:/system.slice/cron.service -> m1  seen 105..105\n"
            "edge runs_on shop/api-0/api -> m1  seen 105..105\n"
            "edge network m1 -> 198.51.100.4  seen 105..105\n");
}

TEST(Topology, ObservingTheSameWindowsAgainDoesNotCountTwice) {
  Topology t;
  t.ObserveWindows(Shop(100), 5);
  t.ObserveWindows(Shop(100), 5);
  const auto edges = t.Edges();
  ASSERT_EQ(edges[0].to.name, "cart");
  EXPECT_EQ(edges[0].requests, 7u);
  // Later windows (the history the stream retains grew): the sum over them.
  auto more = Shop(100);
  for (auto& w : Shop(105)) more.push_back(w);
  t.ObserveWindows(more, 5);
  EXPECT_EQ(t.Edges()[0].requests, 14u);
  EXPECT_EQ(t.Edges()[0].last_seen_s, 110);
}

TEST(Topology, QueriesAndBreadthFirstDownstream) {
  Topology t;
  t.ObserveWindows(Shop(100), 5);
  t.ObserveEdge(EdgeKind::kCalls, {EntityKind::kService, "cart"}, {EntityKind::kService, "db"}, 105, 4);
  const NodeRef gateway{EntityKind::kService, "gateway"};
  EXPECT_EQ(t.Successors(gateway, EdgeKind::kCalls),
            (std::vector<NodeRef>{{EntityKind::kService, "cart"},
                                  {EntityKind::kExternal, "93.184.216.34:443"}}));
  EXPECT_EQ(t.Predecessors(gateway, EdgeKind::kInstanceOf),
            (std::vector<NodeRef>{{EntityKind::kInstance, "gw-1"}}));
  EXPECT_EQ(t.Successors({EntityKind::kInstance, "gw-1"}, EdgeKind::kRunsOn),
            (std::vector<NodeRef>{{EntityKind::kMachine, "m1"}}));
  const auto down = t.Downstream(gateway);
  ASSERT_EQ(down.size(), 4u);
  EXPECT_EQ(down[0], std::make_pair(gateway, 0));
  EXPECT_EQ(down[1], std::make_pair(NodeRef{EntityKind::kService, "cart"}, 1));
  EXPECT_EQ(down[2], std::make_pair(NodeRef{EntityKind::kExternal, "93.184.216.34:443"}, 1));
  EXPECT_EQ(down[3], std::make_pair(NodeRef{EntityKind::kService, "db"}, 2));
  EXPECT_TRUE(t.Downstream({EntityKind::kService, "nope"}).empty());
}

TEST(Topology, AgeingRemovesWhatWasNotSeenRecently) {
  Topology t;
  t.ObserveWindows(Shop(100), 5);  // everything seen at 105
  // Later only gateway -> cart keeps being seen (and its ends).
  t.ObserveEdge(EdgeKind::kCalls, {EntityKind::kService, "gateway"}, {EntityKind::kService, "cart"},
                4000, 1);
  EXPECT_EQ(t.LatestSeen(), 4000);
  EXPECT_EQ(t.AgeOut(4000, 3900), 0u);  // cutoff 100: everything was seen at 105 or later
  EXPECT_EQ(t.node_count(), 9u);
  EXPECT_EQ(t.AgeOut(4000, 3000), 7u + 9u);  // cutoff 1000: 7 nodes and 9 edges go
  EXPECT_EQ(t.ToText(),
            "2 nodes, 1 edges\n"
            "node service cart  seen 105..4000\n"
            "node service gateway  seen 105..4000\n"
            "edge calls gateway -> cart  requests 8  seen 105..4000\n");
}

TEST(Topology, DotIsAGraphvizDigraph) {
  Topology t;
  t.ObserveEdge(EdgeKind::kCalls, {EntityKind::kService, "api"}, {EntityKind::kService, "d\"b"}, 5, 3);
  EXPECT_EQ(t.ToDot(),
            "digraph faultline {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n"
            "  \"service:api\" [label=\"api\", shape=box, style=rounded];\n"
            "  \"service:d\\\"b\" [label=\"d\\\"b\", shape=box, style=rounded];\n"
            "  \"service:api\" -> \"service:d\\\"b\" [label=\"3 req\", penwidth=2];\n"
            "}\n");
}

}  // namespace
}  // namespace faultline::topology
