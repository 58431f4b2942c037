// Fault trees evaluated on hand-made situations: gate semantics, role bindings, each default class
// where it must hold and near misses where it must not, ranking, and the explanation's evidence.
#include "faultline/fta/evaluator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>

namespace faultline::fta {
namespace {

using topology::EdgeKind;
using topology::Situation;

constexpr int kWindows = 36, kFault = 24;

// gateway -> api -> db; api's instance api-1 in container ctr-api-1 on m2, db's db-1 in ctr-db-1
// on m3. 36 windows of 5 s from t=1000, the alarm on gateway latency at window 24.
class Sit {
 public:
  Sit() {
    s_.window_s = 5;
    s_.start_s = 1000;
    s_.alarm = {{EntityKind::kService, "gateway", Metric::kLatencyP99Ms}, 1000 + kFault * 5};
    auto& t = s_.topology;
    t.ObserveEdge(EdgeKind::kCalls, {EntityKind::kService, "gateway"}, {EntityKind::kService, "api"}, 1000);
    t.ObserveEdge(EdgeKind::kCalls, {EntityKind::kService, "api"}, {EntityKind::kService, "db"}, 1000);
    for (auto [inst, svc, ctr, m] : {std::tuple{"api-1", "api", "ctr-api-1", "m2"},
                                     std::tuple{"db-1", "db", "ctr-db-1", "m3"}}) {
      t.ObserveEdge(EdgeKind::kInstanceOf, {EntityKind::kInstance, inst}, {EntityKind::kService, svc}, 1000);
      t.ObserveEdge(EdgeKind::kRunsOn, {EntityKind::kInstance, inst}, {EntityKind::kContainer, ctr}, 1000);
      t.ObserveEdge(EdgeKind::kRunsOn, {EntityKind::kContainer, ctr}, {EntityKind::kMachine, m}, 1000);
    }
  }
  // A series at `level` (deterministic 3% wiggle), at `fault` from the fault window on.
  Sit& Add(EntityKind kind, const std::string& entity, Metric m, double level,
           std::optional<double> fault = std::nullopt, int from = kFault) {
    topology::MetricSeries ms;
    ms.ref = {kind, entity, m};
    const double seed = static_cast<double>(entity.size() * 7 + static_cast<size_t>(m));
    for (int i = 0; i < kWindows; ++i) {
      const double base = fault && i >= from ? *fault : level;
      ms.values.push_back(base * (1 + 0.03 * std::sin(i * 2.1 + seed)));
    }
    s_.series.push_back(std::move(ms));
    return *this;
  }
  Sit& Service(const std::string& name, double latency, std::optional<double> fault = {}) {
    Add(EntityKind::kService, name, Metric::kLatencyP99Ms, latency, fault);
    Add(EntityKind::kService, name, Metric::kRequests, 500);
    return Add(EntityKind::kService, name, Metric::kErrorRate, 0.01);
  }
  const Situation& Get() {
    attribution_ = topology::Attribute(s_);
    return s_;
  }
  const topology::AttributionResult& attribution() const { return attribution_; }
  Situation s_;

 private:
  topology::AttributionResult attribution_;
};

const Located kDb{EntityKind::kService, "db", {"db", "api", "gateway"}};
const Located kApiDb{EntityKind::kEdge, "api->db", {"api->db", "api", "gateway"}};
const Located kCtrDb{EntityKind::kContainer, "ctr-db-1", {"ctr-db-1", "db", "api", "gateway"}};
const Located kM3{EntityKind::kMachine, "m3", {"m3", "db", "api", "gateway"}};

std::vector<std::string> Held(Sit& sit, const Located& cause, const FaultTrees& trees = DefaultFaultTrees()) {
  const Situation& s = sit.Get();
  const FaultTreeEvaluator ev(s, sit.attribution());
  std::vector<std::string> out;
  const Classification c = ev.Classify(trees, cause);
  for (const ClassMatch& m : c.held) out.push_back(m.fault_class->name);
  return out;
}

using Names = std::vector<std::string>;

Sit SlowChain() {
  Sit s;
  s.Service("gateway", 60, 120).Service("api", 40, 100);
  return s;
}

TEST(Roles, EachRoleBindsTheEntitiesAroundTheCause) {
  Sit sit = SlowChain();
  const Situation& s = sit.Get();
  const FaultTreeEvaluator ev(s, sit.attribution());
  auto bind = [&](Role r, const Located& c) { return ev.Bind(r, c); };
  EXPECT_EQ(bind(Role::kCause, kDb), Names{"db"});
  EXPECT_EQ(bind(Role::kEntry, kDb), Names{"gateway"});
  EXPECT_EQ(bind(Role::kCaller, kDb), Names{"api"});
  EXPECT_EQ(bind(Role::kCallee, kDb), Names{});
  EXPECT_EQ(bind(Role::kEdge, kDb), Names{"api->db"});
  EXPECT_EQ(bind(Role::kInstance, kDb), Names{"db-1"});
  EXPECT_EQ(bind(Role::kContainer, kDb), Names{"ctr-db-1"});
  EXPECT_EQ(bind(Role::kMachine, kDb), Names{"m3"});
  const Located api{EntityKind::kService, "api", {"api", "gateway"}};
  EXPECT_EQ(bind(Role::kCallee, api), Names{"db"});
  EXPECT_EQ(bind(Role::kDownstream, {EntityKind::kService, "gateway", {"gateway"}}),
            (Names{"api", "db"}));
  EXPECT_EQ(bind(Role::kCaller, {EntityKind::kService, "gateway", {"gateway"}}), Names{});
  // An edge: its two ends, the callee's hosts.
  EXPECT_EQ(bind(Role::kCaller, kApiDb), Names{"api"});
  EXPECT_EQ(bind(Role::kCallee, kApiDb), Names{"db"});
  EXPECT_EQ(bind(Role::kEdge, kApiDb), Names{"api->db"});
  EXPECT_EQ(bind(Role::kMachine, kApiDb), Names{"m3"});
  // A machine: what runs on it, and the service on the path as the caller.
  EXPECT_EQ(bind(Role::kContainer, kM3), Names{"ctr-db-1"});
  EXPECT_EQ(bind(Role::kInstance, kM3), Names{"db-1"});
  EXPECT_EQ(bind(Role::kCaller, kM3), Names{"db"});
  EXPECT_EQ(bind(Role::kCallee, kM3), Names{});
  // A container: its instance below the service, its machine under it.
  EXPECT_EQ(bind(Role::kInstance, kCtrDb), Names{"db-1"});
  EXPECT_EQ(bind(Role::kMachine, kCtrDb), Names{"m3"});
}

TEST(Gates, AllAnyNotAtLeastAndRefs) {
  auto trees = ParseFaultTrees(R"(version: 1
events:
  rtt: {anomalous: {metric: rtt_mean_ms, direction: up}}
classes:
  - {name: all2, title: A, tree: {all: [{cause: edge}, {anomalous: {metric: retransmits}}, {ref: rtt}]}}
  - {name: any1, title: B, tree: {any: [{anomalous: {metric: drops}}, {ref: rtt}]}}
  - {name: none, title: C, tree: {all: [{cause: edge}, {not: {ref: rtt}}]}}
  - {name: two_of_three, title: D, tree: {at_least: {k: 2, of: [{anomalous: {metric: drops}}, {anomalous: {metric: retransmits}}, {ref: rtt}]}}}
  - {name: three_of_three, title: E, tree: {at_least: {k: 3, of: [{anomalous: {metric: drops}}, {anomalous: {metric: retransmits}}, {ref: rtt}]}}}
  - {name: down, title: F, tree: {all: [{cause: edge}, {anomalous: {metric: rtt_mean_ms, direction: down}}]}}
  - {name: either, title: G, tree: {all: [{cause: edge}, {anomalous: {metric: rtt_mean_ms, direction: any}}]}}
  - {name: slow_rtt, title: H, tree: {all: [{cause: edge}, {value: {metric: rtt_mean_ms, above: 5}}]}}
  - {name: fast_rtt, title: I, tree: {all: [{cause: edge}, {value: {metric: rtt_mean_ms, below: 5}}]}}
  - {name: latency_alarm, title: J, tree: {symptom: {family: latency, direction: up}}}
  - {name: error_alarm, title: K, tree: {symptom: {metric: error_rate}}}
)",
                               "gates.yaml");
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  Sit sit = SlowChain();
  sit.Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0, 20)
      .Add(EntityKind::kEdge, "api->db", Metric::kRttMeanMs, 0.2, 9)
      .Add(EntityKind::kEdge, "api->db", Metric::kDrops, 0);
  // All at priority 50: by true events (all2 has 3), then strength (two_of_three's retransmits
  // from a zero baseline), then name.
  EXPECT_EQ(Held(sit, kApiDb, *trees),
            (Names{"all2", "two_of_three", "either", "slow_rtt", "any1", "latency_alarm"}));
}

TEST(Explanation, TrueEventsCarryTheirSeriesAndFalseOnesTheClosestOrANote) {
  Sit sit = SlowChain();
  sit.Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0, 20)
      .Add(EntityKind::kEdge, "api->db", Metric::kRttMeanMs, 0.2);
  const Situation& s = sit.Get();
  const FaultTreeEvaluator ev(s, sit.attribution());
  const Classification c = ev.Classify(DefaultFaultTrees(), kApiDb);
  ASSERT_NE(c.top(), nullptr);
  EXPECT_EQ(c.top()->fault_class->name, "network_loss");
  EXPECT_EQ(c.top()->true_events, 2u);  // the cause is an edge; retransmits rose
  EXPECT_EQ(c.top()->strength, 1000);   // from a zero baseline
  const NodeTrace& loss = c.top()->trace.children[1].children[0];  // ref loss -> any
  ASSERT_EQ(loss.children.size(), 3u);
  const NodeTrace& retransmits = loss.children[0];
  EXPECT_TRUE(retransmits.held);
  EXPECT_EQ(retransmits.note, "cause edge api->db");
  ASSERT_EQ(retransmits.evidence.size(), 1u);
  EXPECT_EQ(retransmits.evidence[0].baseline, 0);
  EXPECT_NEAR(retransmits.evidence[0].observed, 20, 1);
  EXPECT_EQ(retransmits.evidence[0].start_s, 1120);
  EXPECT_FALSE(loss.children[1].held);
  EXPECT_EQ(loss.children[1].note, "cause edge api->db: no drops series");
  EXPECT_TRUE(loss.children[1].evidence.empty());
  const std::string text = TraceToText(c.top()->trace);
  EXPECT_NE(text.find("\u2713 retransmits of the cause up  [cause edge api->db]\n"), std::string::npos);
  EXPECT_NE(text.find("\u2717 drops of the cause up  [cause edge api->db: no drops series]\n"),
            std::string::npos);
  EXPECT_NE(text.find("api->db retransmits: 0 -> 20"), std::string::npos);
  // network_latency's rtt event is false with the series that did not move as its evidence.
  for (const ClassMatch& m : c.not_held) {
    if (m.fault_class->name != "network_latency") continue;
    const NodeTrace& rtt = m.trace.children[1].children[0];  // any: rtt, connect time
    EXPECT_FALSE(m.trace.children[1].held);
    EXPECT_FALSE(rtt.held);
    ASSERT_EQ(rtt.evidence.size(), 1u);
    EXPECT_FALSE(rtt.evidence[0].anomalous);
    EXPECT_EQ(rtt.evidence[0].ref.metric, Metric::kRttMeanMs);
  }
}

// Each default class on the situation it describes, and near misses that must not make it hold.
TEST(DefaultTrees, NetworkClassesOnACallEdge) {
  {
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0, 20);
    EXPECT_EQ(Held(sit, kApiDb), Names{"network_loss"});
  }
  {  // RTT alone: latency, not loss.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kRttMeanMs, 0.2, 30)
        .Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0);
    EXPECT_EQ(Held(sit, kApiDb), Names{"network_latency"});
  }
  {  // Connect time alone (handshakes held up on a path of short connections): latency too.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kConnectP99Ms, 0.2, 100)
        .Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0);
    EXPECT_EQ(Held(sit, kApiDb), Names{"network_latency"});
  }
  {  // Connect time and retransmitted SYNs: loss.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kConnectP99Ms, 0.2, 1000)
        .Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0, 12);
    EXPECT_EQ(Held(sit, kApiDb), Names{"network_loss"});
  }
  {  // RTT and loss: loss, not latency (network_latency requires no loss).
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kRttMeanMs, 0.2, 30)
        .Add(EntityKind::kEdge, "api->db", Metric::kDrops, 0, 9);
    EXPECT_EQ(Held(sit, kApiDb), Names{"network_loss"});
  }
  {
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kConnectsRefused, 0, 40);
    EXPECT_EQ(Held(sit, kApiDb), Names{"connection_refused"});
  }
  {  // Fewer refusals than before is no refusal fault (and no network signal either way).
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kConnectsRefused, 40, 2)
        .Add(EntityKind::kEdge, "api->db", Metric::kLatencyP99Ms, 22, 80);
    EXPECT_EQ(Held(sit, kApiDb), Names{"slow_downstream"});
  }
  {  // Slower as the caller sees it, no network signal: a slow dependency.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kLatencyP99Ms, 22, 80)
        .Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0);
    EXPECT_EQ(Held(sit, kApiDb), Names{"slow_downstream"});
  }
  {  // ... but with retransmits it is loss, not a slow dependency.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kLatencyP99Ms, 22, 80)
        .Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0, 15);
    EXPECT_EQ(Held(sit, kApiDb), Names{"network_loss"});
  }
  {  // Errors on the edge with no network signal: propagated from the callee.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kEdge, "api->db", Metric::kErrorRate, 0.01, 0.3);
    EXPECT_EQ(Held(sit, kApiDb), Names{"error_propagation"});
  }
}

TEST(DefaultTrees, ResourceClassesOnContainersAndMachines) {
  {
    Sit sit = SlowChain();
    sit.Add(EntityKind::kContainer, "ctr-db-1", Metric::kCpuThrottledRatio, 0.01, 0.8)
        .Add(EntityKind::kContainer, "ctr-db-1", Metric::kRunqP99Ms, 0.5, 30);
    EXPECT_EQ(Held(sit, kCtrDb), Names{"container_cpu_throttling"});
  }
  {  // Waiting for a CPU without reaching the quota: contention, not throttling.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kContainer, "ctr-db-1", Metric::kCpuThrottledRatio, 0.01)
        .Add(EntityKind::kContainer, "ctr-db-1", Metric::kRunqP99Ms, 0.5, 30);
    EXPECT_EQ(Held(sit, kCtrDb), Names{"cpu_contention"});
  }
  {
    Sit sit = SlowChain();
    sit.Add(EntityKind::kMachine, "m3", Metric::kCpuBusyRatio, 0.3, 0.99);
    EXPECT_EQ(Held(sit, kM3), Names{"machine_cpu_saturation"});
  }
  {  // An idle machine is no saturation.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kMachine, "m3", Metric::kCpuBusyRatio, 0.6, 0.1);
    EXPECT_EQ(Held(sit, kM3), Names{});
  }
  {  // Two classes hold: the kill ranks above the reclaim (pages read back) that led to it.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kContainer, "ctr-db-1", Metric::kOomKills, 0, 1)
        .Add(EntityKind::kContainer, "ctr-db-1", Metric::kMemoryWorkingSetMb, 800, 1900)
        .Add(EntityKind::kContainer, "ctr-db-1", Metric::kMajorFaults, 2, 500);
    EXPECT_EQ(Held(sit, kCtrDb), (Names{"oom_kill", "memory_pressure"}));
  }
  {  // A working set that grew within its limit is no pressure: nothing reclaims it yet.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kContainer, "ctr-db-1", Metric::kMemoryWorkingSetMb, 300, 370)
        .Add(EntityKind::kContainer, "ctr-db-1", Metric::kMemoryUsageRatio, 0.3, 0.37);
    EXPECT_EQ(Held(sit, kCtrDb), Names{});
  }
  {  // More CPU for the same requests, no quota reached: CPU consumed in the container.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kContainer, "ctr-db-1", Metric::kCpuUsageCores, 0.2, 0.9)
        .Add(EntityKind::kContainer, "ctr-db-1", Metric::kCpuThrottledRatio, 0.01);
    EXPECT_EQ(Held(sit, kCtrDb), Names{"cpu_consumption"});
    // ... throttled by its quota: throttling (the quota is the limit), not consumption.
    Sit quota = SlowChain();
    quota.Add(EntityKind::kContainer, "ctr-db-1", Metric::kCpuUsageCores, 0.2, 0.9)
        .Add(EntityKind::kContainer, "ctr-db-1", Metric::kCpuThrottledRatio, 0.01, 0.8);
    EXPECT_EQ(Held(quota, kCtrDb), Names{"container_cpu_throttling"});
    // ... with three times the requests at the entry point: the CPU went to the work.
    Sit busier;
    busier.Add(EntityKind::kService, "gateway", Metric::kLatencyP99Ms, 60, 120)
        .Add(EntityKind::kService, "gateway", Metric::kRequests, 500, 1500)
        .Add(EntityKind::kService, "gateway", Metric::kErrorRate, 0.01)
        .Service("api", 40, 100)
        .Add(EntityKind::kContainer, "ctr-db-1", Metric::kCpuUsageCores, 0.2, 0.9);
    EXPECT_EQ(Held(busier, kCtrDb), Names{});
  }
  {  // A kill only in the baseline is not this fault's.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kContainer, "ctr-db-1", Metric::kOomKills, 0, 1, 0);
    topology::MetricSeries& kills = sit.s_.series.back();
    for (int i = 0; i < kWindows; ++i) kills.values[static_cast<size_t>(i)] = i == 3 ? 1 : 0;
    EXPECT_EQ(Held(sit, kCtrDb), Names{});
  }
  {  // Available memory falling is pressure; rising is not.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kMachine, "m3", Metric::kMemoryAvailableMb, 8000, 300);
    EXPECT_EQ(Held(sit, kM3), Names{"memory_pressure"});
    Sit more = SlowChain();
    more.Add(EntityKind::kMachine, "m3", Metric::kMemoryAvailableMb, 3000, 8000);
    EXPECT_EQ(Held(more, kM3), Names{});
  }
  {
    Sit sit = SlowChain();
    sit.Add(EntityKind::kMachine, "m3", Metric::kIoLatencyP99Ms, 2, 60);
    EXPECT_EQ(Held(sit, kM3), Names{"disk_io_latency"});
  }
  {  // More bytes at the same latency is no disk fault.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kMachine, "m3", Metric::kIoBytes, 1e6, 9e6)
        .Add(EntityKind::kMachine, "m3", Metric::kIoLatencyP99Ms, 2);
    EXPECT_EQ(Held(sit, kM3), Names{});
  }
}

TEST(DefaultTrees, ServiceClasses) {
  {  // Requests down to a few, then none in the last window (the live outage opens on its first
     // silent window, after the partial one the fault began in): it stopped serving, judged on
     // the state now, whatever the test period's median (13). A fall to a fifth is no outage.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kService, "db", Metric::kRequests, 100, 13);
    sit.s_.series.back().values.back() = 0;
    EXPECT_EQ(Held(sit, kDb), Names{"service_unavailable"});
    Sit fewer = SlowChain();
    fewer.Add(EntityKind::kService, "db", Metric::kRequests, 100, 20);
    EXPECT_EQ(Held(fewer, kDb), Names{});
  }
  {  // A callee slower by a share of the service's own change: propagated, not its own code.
    const Located api{EntityKind::kService, "api", {"api", "gateway"}};
    Sit sit = SlowChain();  // api 40 -> 100 ms
    sit.Service("db", 20, 80);
    EXPECT_EQ(Held(sit, api), Names{"slow_downstream"});
    Sit tiny = SlowChain();  // db 20 -> 26 ms: anomalous, but it cannot explain api's 60 ms
    tiny.Service("db", 20, 26);
    EXPECT_EQ(Held(tiny, api), Names{"own_code"});
  }
  {  // Slower, nothing under it moved: its own code.
    Sit sit = SlowChain();
    sit.Service("db", 20, 80);
    EXPECT_EQ(Held(sit, kDb), Names{"own_code"});
  }
  {  // ... unless its container is throttled (then it is not "own code").
    Sit sit = SlowChain();
    sit.Service("db", 20, 80).Add(EntityKind::kContainer, "ctr-db-1", Metric::kCpuThrottledRatio, 0.01, 0.8);
    EXPECT_EQ(Held(sit, kDb), Names{});
  }
  {  // ... or the call into it shows network trouble.
    Sit sit = SlowChain();
    sit.Service("db", 20, 80).Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0, 20);
    EXPECT_EQ(Held(sit, kDb), Names{});
  }
  {  // RTT on the call into a slow handler rises with it (delayed ACKs): still its own code.
    Sit sit = SlowChain();
    sit.Service("db", 20, 80).Add(EntityKind::kEdge, "api->db", Metric::kRttMeanMs, 0.1, 40);
    EXPECT_EQ(Held(sit, kDb), Names{"own_code"});
  }
  {  // A busy machine under it was weighed by vertical attribution, which ranked db first.
    Sit sit = SlowChain();
    sit.Service("db", 20, 80).Add(EntityKind::kMachine, "m3", Metric::kCpuBusyRatio, 0.3, 0.99);
    EXPECT_EQ(Held(sit, kDb), Names{"own_code"});
  }
  {  // More requests and slower: a surge, not its code.
    Sit sit = SlowChain();
    sit.Service("db", 20, 80);
    sit.s_.series.pop_back(), sit.s_.series.pop_back();
    sit.Add(EntityKind::kService, "db", Metric::kRequests, 500, 1500)
        .Add(EntityKind::kService, "db", Metric::kErrorRate, 0.01);
    EXPECT_EQ(Held(sit, kDb), Names{"traffic_surge"});
  }
  {  // A leaf failing, its callers retrying (three times its requests, the entry point's
     // unchanged): its own code, not a surge.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kService, "db", Metric::kLatencyP99Ms, 20)
        .Add(EntityKind::kService, "db", Metric::kRequests, 500, 1500)
        .Add(EntityKind::kService, "db", Metric::kErrorRate, 0.01, 0.3);
    EXPECT_EQ(Held(sit, kDb), Names{"own_code"});
  }
  {  // ... and resetting its callers' keep-alive connections after its errors: still its code.
    Sit sit = SlowChain();
    sit.Add(EntityKind::kService, "db", Metric::kLatencyP99Ms, 20)
        .Add(EntityKind::kService, "db", Metric::kRequests, 500)
        .Add(EntityKind::kService, "db", Metric::kErrorRate, 0.01, 0.3)
        .Add(EntityKind::kEdge, "api->db", Metric::kResets, 0, 25);
    EXPECT_EQ(Held(sit, kDb), Names{"own_code"});
    // Resets into a service that is slower but answers no errors: not its code (the network,
    // or a proxy, cuts the calls).
    Sit slow = SlowChain();
    slow.Service("db", 20, 80).Add(EntityKind::kEdge, "api->db", Metric::kResets, 0, 25);
    EXPECT_EQ(Held(slow, kDb), Names{});
  }
  {  // Fewer requests and slower: not a surge.
    Sit sit = SlowChain();
    sit.Service("db", 20, 80);
    sit.s_.series.pop_back(), sit.s_.series.pop_back();
    sit.Add(EntityKind::kService, "db", Metric::kRequests, 500, 200)
        .Add(EntityKind::kService, "db", Metric::kErrorRate, 0.01);
    EXPECT_EQ(Held(sit, kDb), Names{"own_code"});
  }
  const Located api{EntityKind::kService, "api", {"api", "gateway"}};
  {  // A service slower because its callee is: a slow dependency.
    Sit sit = SlowChain();
    sit.Service("db", 20, 80);
    EXPECT_EQ(Held(sit, api), Names{"slow_downstream"});
  }
  {  // Failing because its callee fails: errors propagated.
    Sit sit;
    sit.Add(EntityKind::kService, "api", Metric::kErrorRate, 0.01, 0.3)
        .Add(EntityKind::kService, "db", Metric::kErrorRate, 0.01, 0.3);
    EXPECT_EQ(Held(sit, api), Names{"error_propagation"});
  }
  {  // The callee fails less than before: the service's own errors.
    Sit sit;
    sit.Add(EntityKind::kService, "api", Metric::kErrorRate, 0.01, 0.3)
        .Add(EntityKind::kService, "db", Metric::kErrorRate, 0.2, 0.01);
    EXPECT_EQ(Held(sit, api), Names{"own_code"});
  }
}

TEST(Ranking, PriorityThenTrueEventsThenStrengthThenName) {
  auto trees = ParseFaultTrees(R"(version: 1
classes:
  - {name: b_one, title: One, priority: 10, tree: {cause: edge}}
  - {name: a_one, title: One again, priority: 10, tree: {cause: edge}}
  - {name: two, title: Two, priority: 10, tree: {all: [{cause: edge}, {anomalous: {metric: retransmits}}]}}
  - {name: weak, title: Weak but first, priority: 20, tree: {cause: [edge, service]}}
  - {name: strong, title: Strong, priority: 10, tree: {all: [{cause: edge}, {anomalous: {metric: rtt_mean_ms}}]}}
)",
                               "rank.yaml");
  ASSERT_TRUE(trees.ok()) << trees.status().ToString();
  Sit sit = SlowChain();
  sit.Add(EntityKind::kEdge, "api->db", Metric::kRetransmits, 0, 20)  // z capped at 1000
      .Add(EntityKind::kEdge, "api->db", Metric::kRttMeanMs, 1, 3);   // z about 60
  EXPECT_EQ(Held(sit, kApiDb, *trees), (Names{"weak", "two", "strong", "a_one", "b_one"}));
}

}  // namespace
}  // namespace faultline::fta
