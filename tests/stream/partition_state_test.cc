#include "faultline/stream/partition_state.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <cmath>

#include <filesystem>
#include <map>
#include <set>

#include "events.pb.h"
#include "faultline/stream/entity_namer.h"
#include "faultline/model/identity.h"
#include "faultline/stream/window_query.h"
#include "temp_dir.h"

namespace faultline::stream {
namespace {

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kT0 = 1'700'000'000;  // a window boundary for 5 s windows

std::string Ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return std::string{char(a), char(b), char(c), char(d)};
}

struct BatchBuilder {
  v1::EventBatch batch;
  explicit BatchBuilder(const std::string& node) {
    batch.mutable_node()->set_name(node);
    auto* p = batch.add_processes();
    p->set_pid(100), p->set_comm("api");
    p = batch.add_processes();
    p->set_pid(200), p->set_comm("db");
  }
  // A server-side exchange on db (10.0.0.2:5432) and, when `client`, the client side on api.
  BatchBuilder& Http(double t_s, uint32_t status, uint64_t latency_ns, bool client = false,
                     const std::string& path = "/users/42") {
    auto* e = batch.add_events();
    e->set_time_unix_ns(static_cast<uint64_t>(t_s * kS));
    e->set_pid(client ? 100 : 200);
    auto* c = e->mutable_connection();
    c->mutable_local()->set_addr(client ? Ip4(10, 0, 0, 1) : Ip4(10, 0, 0, 2));
    c->mutable_local()->set_port(client ? 40000 : 5432);
    c->mutable_remote()->set_addr(client ? Ip4(10, 0, 0, 2) : Ip4(10, 0, 0, 1));
    c->mutable_remote()->set_port(client ? 5432 : 40000);
    auto* h = e->mutable_http();
    h->set_role(client ? v1::ROLE_CLIENT : v1::ROLE_SERVER);
    h->set_method("GET"), h->set_path(path), h->set_status(status), h->set_latency_ns(latency_ns);
    return *this;
  }
  // A flow of `pid` from local:lport to remote:rport in the window [T0, T0+5); the caller fills
  // in its figures.
  v1::FlowStats* Flow(uint32_t pid, v1::Role role, const std::string& local, uint32_t lport,
                      const std::string& remote, uint32_t rport) {
    auto* e = batch.add_events();
    e->set_time_unix_ns(static_cast<uint64_t>((kT0 + 2) * kS));
    e->set_pid(pid);
    auto* c = e->mutable_connection();
    c->mutable_local()->set_addr(local), c->mutable_local()->set_port(lport);
    c->mutable_remote()->set_addr(remote), c->mutable_remote()->set_port(rport);
    e->mutable_flow_stats()->set_role(role);
    return e->mutable_flow_stats();
  }
  std::string Bytes() const { return batch.SerializeAsString(); }
};

class PartitionStateTest : public ::testing::Test {
 protected:
  PartitionStateTest() : namer_(EntityNamer::Create({}).value()) {}
  std::unique_ptr<PartitionState> Open(WindowOptions o = {}) {
    auto p = PartitionState::Open(dir_.path(), "faultline.events", 3, o, namer_);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? std::move(p).value() : nullptr;
  }
  // Windows of one kind, by (start, entity + endpoint), from the stored history.
  std::map<std::pair<int64_t, std::string>, model::WindowStats> Stored(EntityKind kind,
                                                                bool include_open = true) {
    auto all = PartitionState::ReadWindows(dir_.path() + "/faultline.events-3", include_open);
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    std::map<std::pair<int64_t, std::string>, model::WindowStats> out;
    for (auto& w : *all) {
      if (w.key.kind != kind) continue;
      out[{w.start_s, w.key.Entity() + " " + std::string(w.key.Dim("endpoint"))}] = w.stats;
    }
    return out;
  }
  TempDir dir_;
  EntityNamer namer_;
  ApplyCounters counters_;
};

TEST_F(PartitionStateTest, EventsLandInTheirEventTimeWindowsAndCloseAtTheWatermark) {
  auto p = Open();
  ASSERT_EQ(p->next_offset(), -1);
  // Window [T0, T0+5): 200 and 503; window [T0+5, T0+10): 404. The max event time T0+9 puts the
  // watermark at T0+4: nothing is closed yet.
  p->Apply(
      BatchBuilder("node-a").Http(kT0 + 1, 200, 1'000'000).Http(kT0 + 4.9, 503, 3'000'000).Bytes(),
      0, -1, &counters_);
  p->Apply(BatchBuilder("node-a").Http(kT0 + 9, 404, 2'000'000).Bytes(), 1, -1, &counters_);
  EXPECT_EQ(counters_.windows_closed, 0u);
  EXPECT_EQ(p->watermark_s(), kT0 + 4);
  // T0 + 10 moves the watermark to T0 + 5: the first window closes (service and listener series).
  p->Apply(BatchBuilder("node-a").Http(kT0 + 10, 200, 1'000'000).Bytes(), 2, -1, &counters_);
  EXPECT_EQ(counters_.windows_closed, 2u);
  ASSERT_TRUE(p->Commit().ok());
  EXPECT_EQ(p->next_offset(), 3);

  auto svc = Stored(EntityKind::kService);
  ASSERT_EQ(svc.size(), 3u);
  const model::WindowStats& first = svc.at({kT0, "db GET /users/:id"});
  EXPECT_EQ(first.requests, 2u);
  EXPECT_EQ(first.status_5xx, 1u);
  EXPECT_EQ(first.status_4xx, 0u);
  EXPECT_EQ(first.latency_ns.count(), 2u);
  EXPECT_EQ(first.latency_ns.max(), 3'000'000);
  EXPECT_EQ(svc.at({kT0 + 5, "db GET /users/:id"}).status_4xx, 1u);
  EXPECT_EQ(svc.at({kT0 + 10, "db GET /users/:id"}).requests, 1u);
  auto closed_only = Stored(EntityKind::kService, false);
  EXPECT_EQ(closed_only.size(), 1u);
  EXPECT_EQ(Stored(EntityKind::kListener).at({kT0, "db "}).requests, 2u);
}

TEST_F(PartitionStateTest, LateEventsInsideTheGraceUpdateTheirWindowLaterOnesAreCountedAndDropped) {
  auto p = Open();
  p->Apply(BatchBuilder("n").Http(kT0 + 1, 200, 1000).Http(kT0 + 8, 200, 1000).Bytes(), 0, -1,
           &counters_);
  // Watermark T0+3: window [T0, T0+5) is still open; an out-of-order event for it counts.
  p->Apply(BatchBuilder("n").Http(kT0 + 2, 500, 1000).Bytes(), 1, -1, &counters_);
  EXPECT_EQ(counters_.late, 0u);
  // T0+12 closes [T0, T0+5) (watermark T0+7); an event at T0+4 is then late.
  p->Apply(BatchBuilder("n").Http(kT0 + 12, 200, 1000).Http(kT0 + 4, 200, 1000).Bytes(), 2, -1,
           &counters_);
  EXPECT_EQ(counters_.late, 1u);
  EXPECT_EQ(counters_.events, 5u);
  ASSERT_TRUE(p->Commit().ok());
  auto svc = Stored(EntityKind::kService);
  EXPECT_EQ(svc.at({kT0, "db GET /users/:id"}).requests, 2u);
  EXPECT_EQ(svc.at({kT0, "db GET /users/:id"}).status_5xx, 1u);
}

TEST_F(PartitionStateTest, EventsFromTheFutureAndGarbageAreCountedNotApplied) {
  auto p = Open();
  const int64_t msg_ms = (kT0 + 1) * 1000;
  p->Apply(BatchBuilder("n").Http(kT0 + 1, 200, 1000).Http(kT0 + 1 + 301, 200, 1000).Bytes(), 0,
           msg_ms, &counters_);
  EXPECT_EQ(counters_.future, 1u);
  EXPECT_EQ(p->max_event_ns(), (kT0 + 1) * kS);
  p->Apply("\xff\xff\xff garbage", 1, msg_ms, &counters_);
  EXPECT_EQ(counters_.undecodable, 1u);
  EXPECT_EQ(p->next_offset(), 2);
}

TEST_F(PartitionStateTest, TheClientSideBecomesACallEdgeAndEndpointsAreCapped) {
  WindowOptions o;
  o.max_endpoints_per_service = 2;
  auto p = Open(o);
  BatchBuilder b("node-a");
  b.Http(kT0 + 1, 200, 1000, true, "/a").Http(kT0 + 1, 200, 1000, false, "/a");
  b.Http(kT0 + 1, 200, 1000, false, "/b")
      .Http(kT0 + 1, 200, 1000, false, "/c")
      .Http(kT0 + 1, 200, 1000, false, "/d");
  p->Apply(b.Bytes(), 0, -1, &counters_);
  EXPECT_EQ(counters_.endpoints_folded, 2u);
  ASSERT_TRUE(p->Commit().ok());
  auto svc = Stored(EntityKind::kService);
  EXPECT_EQ(svc.at({kT0, "db GET /a"}).requests, 1u);
  EXPECT_EQ(svc.at({kT0, "db GET /b"}).requests, 1u);
  EXPECT_EQ(svc.at({kT0, "db other"}).requests, 2u);
  auto edges = Stored(EntityKind::kEdge);
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_EQ(edges.begin()->first.second, "api->10.0.0.2:5432 GET /a");
}

TEST_F(PartitionStateTest, NetworkEventsFindTheirSideFromListenersThenFromPorts) {
  auto p = Open();
  BatchBuilder b("node-a");
  b.Http(kT0 + 1, 200, 1000);  // db listens on 10.0.0.2:5432
  auto flow = [&](uint32_t pid, std::string local, uint32_t lport, std::string remote,
                  uint32_t rport) {
    b.Flow(pid, v1::ROLE_UNKNOWN, local, lport, remote, rport)->set_packets_out(lport);
  };
  flow(200, Ip4(10, 0, 0, 2), 5432, Ip4(10, 0, 0, 1),
       1000);  // db's end: a known listener, whatever the ports
  flow(100, Ip4(10, 0, 0, 1), 60000, Ip4(10, 0, 0, 9),
       40000);  // unknown ends: the lower port serves
  flow(100, Ip4(10, 0, 0, 1), 33000, Ip4(10, 0, 0, 2), 5432);  // the peer is a known listener here
  p->Apply(b.Bytes(), 0, -1, &counters_);
  ASSERT_TRUE(p->Commit().ok());
  std::map<std::string, uint64_t> packets;  // "caller->callee side" -> packets_out
  auto all = PartitionState::ReadWindows(dir_.path() + "/faultline.events-3", true);
  ASSERT_TRUE(all.ok());
  for (const auto& w : *all) {
    if (w.key.kind == EntityKind::kEdge)
      packets[w.key.Entity() + " " + std::string(w.key.Dim("side"))] += w.stats.packets_out;
  }
  EXPECT_EQ(packets, (std::map<std::string, uint64_t>{{"10.0.0.1->db server", 5432},
                                                      {"api->10.0.0.9:40000 client", 60000},
                                                      {"api->10.0.0.2:5432 client", 33000}}));
}

TEST_F(PartitionStateTest, TheOwnersRoleDecidesTheSideAndOwnerlessFlowsStayWithTheMachine) {
  auto p = Open();
  BatchBuilder b("node-a");
  auto flow = [&](uint32_t pid, v1::Role role, uint32_t lport, uint32_t rport, uint64_t retransmits) {
    b.Flow(pid, role, Ip4(10, 0, 0, 1), lport, Ip4(10, 0, 0, 2), rport)
        ->set_retransmits(retransmits);
  };
  // api accepted this connection on 45000 from 10.0.0.2:8080: it serves, whatever the ports say.
  flow(100, v1::ROLE_SERVER, 45000, 8080, 3);
  // api connected from 2000 to 10.0.0.2:50000 (a server on a high port): it calls.
  flow(100, v1::ROLE_CLIENT, 2000, 50000, 5);
  // No owner: the machine's, counted; no service "unknown".
  flow(0, v1::ROLE_UNKNOWN, 40000, 80, 7);
  auto* reset = b.batch.add_events();
  reset->set_time_unix_ns(static_cast<uint64_t>((kT0 + 2) * kS));
  reset->mutable_tcp_reset()->set_direction(v1::TcpReset::DIRECTION_SENT);
  p->Apply(b.Bytes(), 0, -1, &counters_);
  ASSERT_TRUE(p->Commit().ok());
  EXPECT_EQ(counters_.unattributed, 2u);
  std::map<std::string, uint64_t> retransmits;
  auto all = PartitionState::ReadWindows(dir_.path() + "/faultline.events-3", true);
  ASSERT_TRUE(all.ok());
  for (const auto& w : *all) {
    retransmits[std::string(EntityKindName(w.key.kind)) + " " + w.key.Entity() + " " +
                std::string(w.key.Dim("side"))] += w.stats.retransmits + w.stats.resets_sent;
  }
  EXPECT_EQ(retransmits, (std::map<std::string, uint64_t>{{"edge 10.0.0.2->api server", 3},
                                                          {"edge api->10.0.0.2:50000 client", 5},
                                                          {"machine node-a ", 8}}));
}

TEST_F(PartitionStateTest, TheCalleesSideNamesItsCallerWhenBothEndsAreOnTheNode) {
  auto flow = [](BatchBuilder& b, uint32_t pid, v1::Role role, std::string local, uint32_t lport,
                 std::string remote, uint32_t rport, uint64_t drops) {
    auto* f = b.Flow(pid, role, local, lport, remote, rport);
    if (drops) (*f->mutable_drops())["NETFILTER_DROP"] = drops;
  };
  {
    auto p = Open();
    BatchBuilder b("node-a");
    // api's end of the connection, then db's end of the same one.
    flow(b, 100, v1::ROLE_CLIENT, Ip4(10, 0, 0, 1), 41000, Ip4(10, 0, 0, 2), 5432, 0);
    flow(b, 200, v1::ROLE_SERVER, Ip4(10, 0, 0, 2), 5432, Ip4(10, 0, 0, 1), 41000, 4);
    // A caller whose own side was not seen here keeps its address.
    flow(b, 200, v1::ROLE_SERVER, Ip4(10, 0, 0, 2), 5432, Ip4(10, 0, 0, 7), 50000, 1);
    p->Apply(b.Bytes(), 0, -1, &counters_);
    ASSERT_TRUE(p->Commit().ok());
  }
  {
    // After a restart the peer record is still there: the same connection's later report of
    // db's end names api again.
    auto p = Open();
    BatchBuilder b("node-a");
    flow(b, 200, v1::ROLE_SERVER, Ip4(10, 0, 0, 2), 5432, Ip4(10, 0, 0, 1), 41000, 2);
    p->Apply(b.Bytes(), 1, -1, &counters_);
    ASSERT_TRUE(p->Commit().ok());
  }
  std::map<std::string, uint64_t> drops;
  auto all = PartitionState::ReadWindows(dir_.path() + "/faultline.events-3", true);
  ASSERT_TRUE(all.ok());
  for (const auto& w : *all) {
    if (w.key.kind != EntityKind::kEdge) continue;
    uint64_t n = 0;
    for (const auto& [reason, count] : w.stats.drops) n += count;
    drops[w.key.Entity() + " " + std::string(w.key.Dim("side"))] += n;
  }
  EXPECT_EQ(drops, (std::map<std::string, uint64_t>{{"api->10.0.0.2:5432 client", 0},
                                                    {"api->db server", 6},
                                                    {"10.0.0.7->db server", 1}}));
  EXPECT_TRUE(model::IsAddressHost("10.0.0.7"));
  EXPECT_TRUE(model::IsAddressHost("[fd00::1]"));
  EXPECT_TRUE(model::IsAddressHost("fd00::1"));
  EXPECT_FALSE(model::IsAddressHost("api"));
  EXPECT_FALSE(model::IsAddressHost("shop/api"));
}

TEST_F(PartitionStateTest, CgroupSummariesBecomeContainerWindowsAndServicesNameTheirContainer) {
  auto p = Open();
  BatchBuilder b("node-a");
  // db runs in a container the runtime named; api in a systemd unit.
  auto* db = b.batch.mutable_processes(1);
  db->set_cgroup_path("/system.slice/libpod-" + std::string(64, 'a') + ".scope");
  db->set_container_id(std::string(64, 'a'));
  db->mutable_container()->set_name("db-1");
  b.batch.mutable_processes(0)->set_cgroup_path("/system.slice/api.service");
  b.Http(kT0 + 1, 200, 1000);  // db serves
  for (int i = 0; i < 2; ++i) {
    auto* e = b.batch.add_events();
    e->set_time_unix_ns(static_cast<uint64_t>((kT0 + 1 + i) * kS));
    auto* c = e->mutable_cgroup_resources();
    c->set_cgroup_path("/system.slice/libpod-" + std::string(64, 'a') + ".scope");
    c->set_container_id(std::string(64, 'a'));
    c->mutable_container()->set_name("db-1");
    c->set_cpu_usage_ns(200'000'000), c->set_cpu_periods(10), c->set_cpu_throttled_periods(8);
    c->set_memory_working_set_bytes(64 << 20), c->set_memory_limit_bytes(128 << 20);
    c->set_oom_kills(i);
  }
  auto* root = b.batch.add_events();  // the root cgroup is the machine's, not a container
  root->set_time_unix_ns(static_cast<uint64_t>((kT0 + 1) * kS));
  root->mutable_cgroup_resources()->set_cgroup_path("/");
  b.Http(kT0 + 12, 200, 1000);  // moves the watermark past the window
  p->Apply(b.Bytes(), 0, -1, &counters_);
  ASSERT_TRUE(p->Commit().ok());
  const auto containers = Stored(EntityKind::kContainer);
  ASSERT_EQ(containers.size(), 1u);
  const model::WindowStats& w = containers.at({kT0, "db-1 "});
  EXPECT_EQ(w.resource_samples, 2u);
  EXPECT_DOUBLE_EQ(model::ComputeMetric(Metric::kCpuThrottledRatio, w, 5), 0.8);
  EXPECT_DOUBLE_EQ(model::ComputeMetric(Metric::kCpuUsageCores, w, 5), 0.08);  // 0.4 s over 5 s
  EXPECT_DOUBLE_EQ(model::ComputeMetric(Metric::kMemoryWorkingSetMb, w, 5), 64);
  EXPECT_DOUBLE_EQ(model::ComputeMetric(Metric::kMemoryUsageRatio, w, 5), 0.5);
  EXPECT_DOUBLE_EQ(model::ComputeMetric(Metric::kOomKills, w, 5), 1);
  // Without a CPU quota no period elapses: never throttled (0), not unknown; unknown only for a
  // window in which the container was not sampled at all.
  model::WindowStats unlimited = w;
  unlimited.cpu_periods = unlimited.cpu_throttled_periods = 0;
  EXPECT_EQ(model::ComputeMetric(Metric::kCpuThrottledRatio, unlimited, 5), 0);
  unlimited.resource_samples = 0;
  EXPECT_TRUE(std::isnan(model::ComputeMetric(Metric::kCpuThrottledRatio, unlimited, 5)));
  auto all = PartitionState::ReadWindows(dir_.path() + "/faultline.events-3", true);
  ASSERT_TRUE(all.ok());
  std::set<std::string> service_containers;
  for (const auto& w : *all) {
    if (w.key.kind == EntityKind::kService) service_containers.insert(std::string(w.key.Dim("container")));
  }
  EXPECT_EQ(service_containers, std::set<std::string>{"db-1"});
}

TEST(ContainerNames, KubernetesThenRuntimeThenIdThenMachineQualifiedPath) {
  v1::ContainerMeta k8s;
  k8s.set_name("k8s_api_api-7d9c5b6f4-x2x9q_shop_0");
  k8s.set_pod_namespace("shop"), k8s.set_pod_name("api-7d9c5b6f4-x2x9q"), k8s.set_container_name("api");
  const std::string id(64, 'b');
  EXPECT_EQ(ContainerName("n1", "/kubepods/pod1/" + id, id, &k8s), "shop/api-7d9c5b6f4-x2x9q/api");
  v1::ContainerMeta plain;
  plain.set_name("redis-1");
  EXPECT_EQ(ContainerName("n1", "/docker/" + id, id, &plain), "redis-1");
  EXPECT_EQ(ContainerName("n1", "/docker/" + id, id, nullptr), "bbbbbbbbbbbb");
  EXPECT_EQ(ContainerName("n1", "/system.slice/nginx.service/", "", nullptr), "n1:/system.slice/nginx.service");
  EXPECT_EQ(ContainerName("n1", "user.slice", "", nullptr), "n1:/user.slice");
  EXPECT_EQ(ContainerName("n1", "/", "", nullptr), "");
  EXPECT_EQ(ContainerName("n1", "", "", nullptr), "");
}

TEST(ExternalNames, ServicePortsStayEphemeralPortsGroupByAddress) {
  EXPECT_EQ(model::ExternalName("203.0.113.7:5432"), "203.0.113.7:5432");
  EXPECT_EQ(model::ExternalName("203.0.113.7:32767"), "203.0.113.7:32767");
  EXPECT_EQ(model::ExternalName("203.0.113.7:32768"), "203.0.113.7");
  EXPECT_EQ(model::ExternalName("127.0.0.1:51234"), "127.0.0.1");
  EXPECT_EQ(model::ExternalName("[2001:db8::1]:443"), "[2001:db8::1]:443");
  EXPECT_EQ(model::ExternalName("[2001:db8::1]:60000"), "[2001:db8::1]");
  EXPECT_EQ(model::ExternalName("2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(model::ExternalName("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(model::ExternalName("10.0.0.1:x1"), "10.0.0.1:x1");
}

TEST_F(PartitionStateTest, QueriesResolveCalleesThroughListenersAndMergePartitions) {
  {
    auto p = Open();
    BatchBuilder b("node-a");
    b.Http(kT0 + 1, 200, 1000)
        .Http(kT0 + 1, 200, 1000, true);  // db serves; api calls 10.0.0.2:5432
    b.Http(kT0 + 2, 200, 1000, true);
    auto* e = b.batch.add_events();  // api calls 10.0.0.9:80, where nobody is known to listen
    e->CopyFrom(b.batch.events(1));
    e->mutable_connection()->mutable_remote()->set_addr(Ip4(10, 0, 0, 9));
    e->mutable_connection()->mutable_remote()->set_port(80);
    p->Apply(b.Bytes(), 0, -1, &counters_);
    ASSERT_TRUE(p->Commit().ok());
  }
  {  // a second partition saw more calls to db in the same window
    auto p = PartitionState::Open(dir_.path(), "faultline.events", 7, {}, namer_);
    ASSERT_TRUE(p.ok());
    (*p)->Apply(BatchBuilder("node-b").Http(kT0 + 3, 500, 1000, true).Bytes(), 0, -1, &counters_);
    ASSERT_TRUE((*p)->Commit().ok());
  }
  WindowQuery q;
  q.kind = EntityKind::kEdge;
  int64_t window_s = 0;
  auto edges = QueryWindows(dir_.path(), "faultline.events", q, &window_s);
  ASSERT_TRUE(edges.ok()) << edges.status().ToString();
  EXPECT_EQ(window_s, 5);
  std::map<std::string, std::pair<std::string, uint64_t>>
      got;  // entity@machine -> (callee service, requests)
  for (const auto& w : *edges)
    got[w.key.Entity() + "@" + std::string(w.key.Dim("machine"))] = {w.callee_service,
                                                                     w.stats.requests};
  EXPECT_EQ(got, (std::map<std::string, std::pair<std::string, uint64_t>>{
                     {"api->10.0.0.2:5432@node-a", {"db", 2}},
                     {"api->10.0.0.2:5432@node-b", {"db", 1}},
                     {"api->10.0.0.9:80@node-a", {"", 1}}}));
  q.entity = "db";
  q.kind = EntityKind::kService;
  auto svc = QueryWindows(dir_.path(), "faultline.events", q);
  ASSERT_TRUE(svc.ok());
  ASSERT_EQ(svc->size(), 1u);
  EXPECT_EQ((*svc)[0].stats.requests, 1u);
  EXPECT_EQ(QueryWindows(dir_.path() + "/none", "faultline.events", q).status().code(),
            StatusCode::kNotFound);
}

TEST_F(PartitionStateTest, TheSameSeriesFromTwoPartitionsMergesUnlessAskedByPartition) {
  // One node's batches in two partitions (the topic was repartitioned): the same series and window.
  for (int32_t partition : {0, 1}) {
    auto p = PartitionState::Open(dir_.path(), "faultline.events", partition, {}, namer_);
    ASSERT_TRUE(p.ok());
    BatchBuilder b("node-a");
    b.Http(kT0 + 1, 200, 1000).Http(kT0 + 2, partition == 0 ? 200 : 503, 3000);
    (*p)->Apply(b.Bytes(), 0, -1, &counters_);
    ASSERT_TRUE((*p)->Commit().ok());
  }
  WindowQuery q;
  q.kind = EntityKind::kService;
  auto merged = QueryWindows(dir_.path(), "faultline.events", q);
  ASSERT_TRUE(merged.ok());
  ASSERT_EQ(merged->size(), 1u);
  EXPECT_EQ((*merged)[0].stats.requests, 4u);
  EXPECT_EQ((*merged)[0].stats.status_5xx, 1u);
  EXPECT_EQ((*merged)[0].stats.latency_ns.count(), 4u);
  q.merge_partitions = false;
  auto parts = QueryWindows(dir_.path(), "faultline.events", q);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].stats.requests + (*parts)[1].stats.requests, 4u);
  EXPECT_EQ((*parts)[0].key, (*parts)[1].key);
  // since_s and include_open: both windows are still open (nothing later closed them).
  q.merge_partitions = true;
  q.include_open = false;
  EXPECT_TRUE(QueryWindows(dir_.path(), "faultline.events", q)->empty());
  q.include_open = true;
  q.since_s = kT0 - kT0 % 5 + 5;
  EXPECT_TRUE(QueryWindows(dir_.path(), "faultline.events", q)->empty());
}

TEST(ListenerAddresses, LoopbackAddressesAreQualifiedByTheirMachine) {
  EXPECT_TRUE(model::IsLoopbackAddress("127.0.0.1:80"));
  EXPECT_TRUE(model::IsLoopbackAddress("127.1.2.3"));
  EXPECT_TRUE(model::IsLoopbackAddress("[::1]:8080"));
  EXPECT_TRUE(model::IsLoopbackAddress("::1"));
  EXPECT_FALSE(model::IsLoopbackAddress("10.0.0.1:80"));
  EXPECT_FALSE(model::IsLoopbackAddress("[::ffff:10.0.0.1]:80"));
  EXPECT_FALSE(model::IsLoopbackAddress("1270.0.0.1:80"));
  EXPECT_FALSE(model::IsLoopbackAddress(""));
  EXPECT_EQ(model::ListenerKey("127.0.0.1:80", "m1"), "m1|127.0.0.1:80");
  EXPECT_EQ(model::ListenerKey("[::1]:80", "m1"), "m1|[::1]:80");
  EXPECT_EQ(model::ListenerKey("10.0.0.1:80", "m1"), "10.0.0.1:80");
}

TEST_F(PartitionStateTest, ReopeningResumesAtTheCommittedOffsetWithExactlyThatState) {
  {
    auto p = Open();
    p->Apply(BatchBuilder("n").Http(kT0 + 1, 200, 1000).Bytes(), 0, -1, &counters_);
    ASSERT_TRUE(p->Commit().ok());
    // Applied but never committed: a crash here loses it from the state, and the offset with it.
    p->Apply(BatchBuilder("n").Http(kT0 + 2, 500, 1000).Bytes(), 1, -1, &counters_);
  }
  auto p = Open();
  EXPECT_EQ(p->next_offset(), 1);
  EXPECT_EQ(p->max_event_ns(), (kT0 + 1) * kS);
  // Replaying offset 1 gives the same result as an uninterrupted run.
  p->Apply(BatchBuilder("n").Http(kT0 + 2, 500, 1000).Bytes(), 1, -1, &counters_);
  ASSERT_TRUE(p->Commit().ok());
  auto svc = Stored(EntityKind::kService);
  EXPECT_EQ(svc.at({kT0, "db GET /users/:id"}).requests, 2u);
  EXPECT_EQ(svc.at({kT0, "db GET /users/:id"}).status_5xx, 1u);
}

void Flow(BatchBuilder& b, uint32_t pid, v1::Role role, const std::string& local, uint32_t lport,
          const std::string& remote, uint32_t rport, uint64_t packets) {
  b.Flow(pid, role, local, lport, remote, rport)->set_packets_in(packets);
}

TEST_F(PartitionStateTest, PeersPastTheBoundGoOldestFirstAndARestartKeepsExactlyThem) {
  WindowOptions o;
  o.max_peers = 2;
  const std::string api = Ip4(10, 0, 0, 1), db = Ip4(10, 0, 0, 2);
  {
    auto p = Open(o);
    BatchBuilder b("node-a");
    Flow(b, 100, v1::ROLE_CLIENT, api, 41000, db, 5432, 1);
    Flow(b, 100, v1::ROLE_CLIENT, api, 41001, db, 5432, 1);
    p->Apply(b.Bytes(), 0, -1, &counters_);
    ASSERT_TRUE(p->Commit().ok());
  }
  {
    auto p = Open(o);
    BatchBuilder b("node-a");
    // 41001 now belongs to db (a newer record of the same end), then a third end: the oldest
    // record still current (41000) goes, 41001's first record is passed over.
    Flow(b, 200, v1::ROLE_CLIENT, api, 41001, db, 5432, 1);
    Flow(b, 100, v1::ROLE_CLIENT, api, 41002, db, 5432, 1);
    p->Apply(b.Bytes(), 1, -1, &counters_);
    ASSERT_TRUE(p->Commit().ok());
    EXPECT_EQ(counters_.peers_evicted, 1u);
  }
  {
    auto p = Open(o);
    BatchBuilder b("node-a");
    Flow(b, 200, v1::ROLE_SERVER, db, 5432, api, 41000, 10);
    Flow(b, 200, v1::ROLE_SERVER, db, 5432, api, 41001, 100);
    Flow(b, 200, v1::ROLE_SERVER, db, 5432, api, 41002, 1000);
    p->Apply(b.Bytes(), 2, -1, &counters_);
    ASSERT_TRUE(p->Commit().ok());
    EXPECT_EQ(counters_.peers_evicted, 1u);
  }
  std::map<std::string, uint64_t> packets;
  for (const auto& [k, w] : Stored(EntityKind::kEdge)) packets[k.second] += w.packets_in;
  EXPECT_EQ(packets, (std::map<std::string, uint64_t>{{"10.0.0.1->db ", 10},
                                                      {"db->db ", 100},
                                                      {"api->db ", 1000},
                                                      {"api->10.0.0.2:5432 ", 3},
                                                      {"db->10.0.0.2:5432 ", 1}}));
}

// Format 1 stored one record per series and per peer; a state directory written by it is
// converted when a processor first opens it, and reads the same before and after.
TEST_F(PartitionStateTest, AFormatOneDirectoryIsConvertedOnOpenWithEverythingItHeld) {
  const std::string path = dir_.path() + "/faultline.events-3";
  auto be64 = [](int64_t v) {
    const uint64_t u = static_cast<uint64_t>(v) ^ (1ULL << 63);
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(u >> (56 - 8 * i));
    return out;
  };
  model::SeriesKey open_key{EntityKind::kService, {{"endpoint", "GET /a"}, {"instance", "n/200"},
                                            {"machine", "n"}, {"service", "db"}}};
  model::SeriesKey closed_key{EntityKind::kService, {{"endpoint", "GET /b"}, {"instance", "n/200"},
                                              {"machine", "n"}, {"service", "db"}}};
  model::WindowStats open_stats, closed_stats;
  open_stats.requests = 3;
  closed_stats.requests = 7;
  closed_stats.latency_ns.Add(2e6);
  {
    rocksdb::Options ro;
    ro.create_if_missing = true;
    std::filesystem::create_directories(dir_.path());
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(ro, path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string v;
    auto put = [&](const std::string& k, const std::string& value) {
      ASSERT_TRUE(db->Put({}, k, value).ok());
    };
    put("meta/window_s", std::string(1, 5));
    put("meta/offset", std::string(1, 42));
    put("meta/max_event_ns", "\x80\x80\x80\x80\x80\x80\x80\x80\x01");  // 2^56 ns
    v.clear(), open_stats.EncodeTo(&v);
    put("open/" + be64(kT0 + 10) + open_key.Encode(), v);
    v.clear(), closed_stats.EncodeTo(&v);
    put("closed/" + be64(kT0) + closed_key.Encode(), v);
    put("outbox/" + be64(kT0) + closed_key.Encode(), "");
    put("peer/node-a|10.0.0.1:41000", be64(kT0) + "api");
  }
  auto before = PartitionState::ReadWindows(path, true);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  ASSERT_EQ(before->size(), 2u);
  {
    auto p = Open();
    EXPECT_EQ(p->next_offset(), 42);
    EXPECT_EQ(p->max_event_ns(), int64_t{1} << 56);
    EXPECT_EQ(p->open_series(), 1u);
    auto out = p->TakeOutbox();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].key, closed_key);
    EXPECT_EQ(out[0].stats, closed_stats);
  }
  auto after = PartitionState::ReadWindows(path, true);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ASSERT_EQ(after->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*after)[i].start_s, (*before)[i].start_s);
    EXPECT_EQ((*after)[i].key, (*before)[i].key);
    EXPECT_EQ((*after)[i].stats, (*before)[i].stats);
    EXPECT_EQ((*after)[i].open, (*before)[i].open);
  }
  EXPECT_EQ((*after)[0].stats, closed_stats);
  EXPECT_EQ((*after)[1].stats, open_stats);
  // The converted peer record still names its caller.
  auto p = Open();
  BatchBuilder b("node-a");
  Flow(b, 200, v1::ROLE_SERVER, Ip4(10, 0, 0, 2), 5432, Ip4(10, 0, 0, 1), 41000, 5);
  p->Apply(b.Bytes(), 42, -1, &counters_);
  ASSERT_TRUE(p->Commit().ok());
  EXPECT_EQ(Stored(EntityKind::kEdge).count({kT0, "api->db "}), 1u);
}

TEST_F(PartitionStateTest, ACorruptRecordIsRefusedWithThePathAndTheRecord) {
  { auto p = Open(); }
  const std::string path = dir_.path() + "/faultline.events-3";
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put({}, "o/" + std::string(16, '\x80'), "\x01\x05garbage").ok());
  }
  auto p = PartitionState::Open(dir_.path(), "faultline.events", 3, {}, namer_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInternal);
  EXPECT_EQ(p.status().message(), "partition state " + path +
                                      ": corrupt open window record (record 'o/................')");
  auto read = PartitionState::ReadWindows(path, true);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().message(),
            "partition state " + path + ": corrupt open window record (record 'o/................')");
}

// Series ids are renumbered once most of them belong to closed windows; signatures cached
// before that must not reach the series that now carries an old id.
TEST_F(PartitionStateTest, SeriesKeepTheirEventsWhenIdsAreRenumbered) {
  auto p = Open();
  auto server_http = [](v1::EventBatch& batch, uint32_t pid, double t_s) {
    auto* proc = batch.add_processes();
    proc->set_pid(pid), proc->set_comm("svc-" + std::to_string(pid));
    auto* e = batch.add_events();
    e->set_time_unix_ns(static_cast<uint64_t>(t_s * kS));
    e->set_pid(pid);
    auto* c = e->mutable_connection();
    c->mutable_local()->set_addr(Ip4(10, 0, 0, 2)), c->mutable_local()->set_port(pid);
    c->mutable_remote()->set_addr(Ip4(10, 0, 0, 1)), c->mutable_remote()->set_port(40000);
    auto* h = e->mutable_http();
    h->set_role(v1::ROLE_SERVER), h->set_method("GET"), h->set_path("/"), h->set_status(200);
    h->set_latency_ns(1000);
  };
  int64_t offset = 0;
  // Window T0: 3000 services, each with a service and a listener series, and service 1.
  v1::EventBatch first;
  first.mutable_node()->set_name("n");
  for (uint32_t pid = 2; pid < 3002; ++pid) server_http(first, pid, kT0 + 1);
  server_http(first, 1, kT0 + 1);
  p->Apply(first.SerializeAsString(), offset++, -1, &counters_);
  // Then only service 1, a window at a time: T0's window closes, 6000 ids are dead, ids are
  // renumbered, and service 1's events go on landing in its own series.
  for (int w = 1; w <= 4; ++w) {
    v1::EventBatch b;
    b.mutable_node()->set_name("n");
    server_http(b, 1, kT0 + 5 * w + 1);
    server_http(b, 1, kT0 + 5 * w + 2);
    p->Apply(b.SerializeAsString(), offset++, -1, &counters_);
  }
  ASSERT_TRUE(p->Commit().ok());
  EXPECT_EQ(counters_.windows_closed, 6002u + 2 * 2);  // T0's, then T0+5's and T0+10's
  std::map<int64_t, uint64_t> requests;
  for (const auto& [k, w] : Stored(EntityKind::kService)) {
    if (k.second == "svc-1 GET /") requests[k.first] = w.requests;
  }
  EXPECT_EQ(requests, (std::map<int64_t, uint64_t>{
                          {kT0, 1}, {kT0 + 5, 2}, {kT0 + 10, 2}, {kT0 + 15, 2}, {kT0 + 20, 2}}));
  EXPECT_EQ(Stored(EntityKind::kService).size(), 3000u + 5);
}

TEST_F(PartitionStateTest, ASecondOpenerIsRefusedWhileTheFirstHoldsThePartition) {
  auto p = Open();
  auto second = PartitionState::Open(dir_.path(), "faultline.events", 3, {}, namer_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("is held by another process"), std::string::npos)
      << second.status().message();
}

TEST_F(PartitionStateTest, OpenAllOpensEveryPartitionAndReportsEachFailureInItsPlace) {
  auto held = PartitionState::Open(dir_.path(), "faultline.events", 5, {}, namer_);
  ASSERT_TRUE(held.ok());
  auto opened = PartitionState::OpenAll({4, 5, 6, 7}, [&](int32_t p) {
    return PartitionState::Open(dir_.path(), "faultline.events", p, {}, namer_);
  }, 3);
  ASSERT_EQ(opened.size(), 4u);
  for (size_t i : {0, 2, 3}) {
    ASSERT_TRUE(opened[i].state.ok()) << opened[i].state.status().ToString();
    EXPECT_EQ((*opened[i].state)->partition(), static_cast<int32_t>(4 + i));
    EXPECT_GE(opened[i].open_ms, 0);
  }
  ASSERT_FALSE(opened[1].state.ok());
  EXPECT_EQ(opened[1].state.status().code(), StatusCode::kUnavailable);
}

TEST_F(PartitionStateTest, TheOutboxHandsOutClosedWindowsOnceAndForgetsThemWhenPublished) {
  auto p = Open();
  p->Apply(BatchBuilder("n").Http(kT0 + 1, 200, 1000).Http(kT0 + 20, 200, 1000).Bytes(), 0, -1,
           &counters_);
  EXPECT_TRUE(p->TakeOutbox().empty()) << "only committed windows are handed out";
  ASSERT_TRUE(p->Commit().ok());
  auto out = p->TakeOutbox();
  ASSERT_EQ(out.size(), 2u);  // service and listener of [T0, T0+5)
  EXPECT_TRUE(p->TakeOutbox().empty());
  p->Published(out[0].start_s, out[0].key);
  ASSERT_TRUE(p->Commit().ok());
  p.reset();
  // After a restart, what was handed out but not published is handed out again.
  p = Open();
  auto again = p->TakeOutbox();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].key, out[1].key);
}

TEST_F(PartitionStateTest, MachineResourceSummariesBecomeMachineWindows) {
  auto p = Open();
  BatchBuilder b("node-a");
  for (int i = 0; i < 2; ++i) {  // two 1 s summaries in the window starting at kT0
    auto* e = b.batch.add_events();
    e->set_time_unix_ns(static_cast<uint64_t>((kT0 + 1 + i) * kS));
    auto* m = e->mutable_machine_resources();
    m->set_cpu_busy_ns(500'000'000), m->set_cpu_total_ns(2'000'000'000);
    m->set_memory_available_bytes(1000 + 1000 * i);
    m->set_major_page_faults(3);
    auto* r = m->mutable_runq_latency();
    r->set_count(10), r->set_sum_ns(10 * 1500);
    for (int k = 0; k < 11; ++k) r->add_buckets(k == 10 ? 10 : 0);  // [1024, 2048) ns
    auto* io = m->add_block_io();
    io->set_device("vda"), io->set_write_bytes(4096), io->set_write_ops(1);
    io->mutable_latency()->set_count(1);
    for (int k = 0; k < 21; ++k) io->mutable_latency()->add_buckets(k == 20 ? 1 : 0);  // ~1 ms
  }
  b.Http(kT0 + 12, 200, 1000);  // moves the watermark past the window
  p->Apply(b.Bytes(), 0, -1, &counters_);
  ASSERT_TRUE(p->Commit().ok());
  const auto machines = Stored(EntityKind::kMachine);
  ASSERT_EQ(machines.count({kT0, "node-a "}), 1u);
  const model::WindowStats& w = machines.at({kT0, "node-a "});
  EXPECT_EQ(w.resource_samples, 2u);
  EXPECT_EQ(w.cpu_busy_ns, 1'000'000'000u);
  EXPECT_EQ(w.cpu_total_ns, 4'000'000'000u);
  EXPECT_EQ(w.major_faults, 6u);
  EXPECT_EQ(w.memory_available_sum, 3000u);
  EXPECT_EQ(w.runq_ns.count(), 20u);
  EXPECT_NEAR(w.runq_ns.Quantile(0.99), 1448, 1448 * 0.02);  // the bucket's geometric middle
  EXPECT_EQ(w.io_write_bytes, 8192u);
  EXPECT_EQ(w.io_ops, 2u);
  EXPECT_NEAR(w.io_ns.Quantile(0.5), 1.483e6, 1.483e6 * 0.02);
}

TEST(WindowStatsCodec, OlderFormatsStillDecode) {
  // Records written before container figures (format 2) and before resource pressure (format 1):
  // the same fields, then nothing.
  model::WindowStats w;
  w.requests = 7, w.agent_dropped = 2;
  std::string bytes;
  w.EncodeTo(&bytes);
  ASSERT_EQ(bytes[0], 3);
  // Cut the format-3 tail: 7 varints of 0 and one 8-byte double.
  std::string v2 = bytes.substr(0, bytes.size() - 7 - 8);
  v2[0] = 2;
  auto back2 = model::WindowStats::Decode(v2);
  ASSERT_TRUE(back2.ok()) << back2.status().ToString();
  EXPECT_TRUE(*back2 == w);
  // Cut the format-2 tail: 8 varints of 0 and two empty-sketch byte strings.
  model::LatencySketch empty;
  std::string sketch;
  empty.EncodeTo(&sketch);
  std::string v1 = v2.substr(0, v2.size() - 8 - 2 * (1 + sketch.size()));
  v1[0] = 1;
  auto back = model::WindowStats::Decode(v1);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == w);
  v1[0] = 4;
  EXPECT_EQ(model::WindowStats::Decode(v1).status().message(), "window stats: format 4, expected 1 to 3");
  // A format-3 record cut inside its container figures names where.
  EXPECT_EQ(model::WindowStats::Decode(bytes.substr(0, bytes.size() - 3)).status().message(),
            "window stats: truncated at memory usage ratio");
}

TEST(EntityNamer, TemplatesFallBackAndErrorsNameTheField) {
  auto n = EntityNamer::Create({{"{container}", "{comm}"}, "{machine}/{pid}"});
  ASSERT_TRUE(n.ok());
  v1::ProcessIdentity p;
  p.set_comm("nginx");
  EXPECT_EQ(n->Service(&p, 7, "node-1"), "nginx");
  p.set_container_id("0123456789abcdef0123");
  EXPECT_EQ(n->Service(&p, 7, "node-1"), "0123456789ab");
  EXPECT_EQ(n->Service(nullptr, 7, "node-1"), "unknown");
  EXPECT_EQ(n->Instance(&p, 7, "node-1"), "node-1/7");
  EXPECT_EQ(EntityNamer::Create({{"{comm"}, "{pid}"}).status().message(),
            "naming template '{comm': '{' is not closed");
  EXPECT_EQ(EntityNamer::Create({{"{img}"}, "{pid}"}).status().message(),
            "naming template '{img}': unknown field {img} (known: comm, container, pod, "
            "cgroup, machine, pid, namespace, workload, pod_name, container_name, image)");
  EXPECT_EQ(EntityNamer::Create({{"{image}"}, "{pid}"}).status().message(),
            "naming: the last service template '{image}' uses {image}, which a process may not "
            "have; end with one that always resolves, such as {comm}");
  EXPECT_EQ(EntityNamer::Create({{"{pod}"}, "{pid}"}).status().message(),
            "naming: the last service template '{pod}' uses {pod}, which a process may not have; "
            "end with one that "
            "always resolves, such as {comm}");
}

TEST(EntityNamer, TheDefaultNamesTheKubernetesWorkloadThenTheContainerThenTheProcess) {
  auto n = EntityNamer::Create({});
  ASSERT_TRUE(n.ok());
  v1::ProcessIdentity p;
  p.set_comm("python3");
  EXPECT_EQ(n->Service(&p, 7, "node-1"), "python3");
  p.mutable_container()->set_name("api-1");
  EXPECT_EQ(n->Service(&p, 7, "node-1"), "api-1");
  p.mutable_container()->set_container_name("api");  // Kubernetes' name of the container wins
  EXPECT_EQ(n->Service(&p, 7, "node-1"), "api");
  p.mutable_container()->set_pod_namespace("shop");
  EXPECT_EQ(n->Service(&p, 7, "node-1"), "api");  // a namespace without a workload is not enough
  p.mutable_container()->set_workload("checkout");
  EXPECT_EQ(n->Service(&p, 7, "node-1"), "shop/checkout");
  auto custom = EntityNamer::Create({{"{namespace}/{pod_name}", "{image}:{comm}", "{comm}"}, "{machine}/{pid}"});
  ASSERT_TRUE(custom.ok());
  v1::ProcessIdentity q;
  q.set_comm("nginx");
  q.mutable_container()->set_image("nginx:1.25");
  EXPECT_EQ(custom->Service(&q, 7, "node-1"), "nginx:1.25:nginx");
  q.mutable_container()->set_pod_namespace("web"), q.mutable_container()->set_pod_name("front-0");
  EXPECT_EQ(custom->Service(&q, 7, "node-1"), "web/front-0");
}

TEST(EntityNamer, EndpointsTemplateIdentifiers) {
  EXPECT_EQ(EntityNamer::Endpoint("GET", "/users/42/orders/7"), "GET /users/:id/orders/:id");
  EXPECT_EQ(EntityNamer::Endpoint("PUT", "/o/123e4567-e89b-12d3-a456-426614174000"),
            "PUT /o/:uuid");
  EXPECT_EQ(EntityNamer::Endpoint("GET", "/blob/0123456789abcdef0123"), "GET /blob/:hex");
  EXPECT_EQ(EntityNamer::Endpoint("GET", "/v2/cafe"), "GET /v2/cafe");
  EXPECT_EQ(EntityNamer::Endpoint("", ""), "- -");
  EXPECT_EQ(EntityNamer::Endpoint("GET", std::string(300, 'x')).size(), 4u + 128u);
}

}  // namespace
}  // namespace faultline::stream
