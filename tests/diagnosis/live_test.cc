// LiveDiagnosis on synthetic window records, made the way the stream makes them
// (model::ToWindowRecord of StoredWindows), for a chain loadgen -> frontend -> api -> db on one
// machine, split into partials over two input partitions: completion and watermarks, idle and
// late partitions, the entry-point rule, the incident lifecycle, restarts from TakeChanges, and
// refused records.
#include "faultline/diagnosis/live.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "faultline/model/window_record.h"
#include "metrics.pb.h"

namespace faultline::diagnosis {
namespace {

constexpr int64_t kW = 5;
constexpr int64_t kT0 = 1'800'000'000;  // a window start (divisible by 5)

model::SeriesKey Key(EntityKind kind, std::vector<std::pair<std::string, std::string>> dims) {
  std::sort(dims.begin(), dims.end());
  return model::SeriesKey{kind, std::move(dims)};
}

// What goes wrong in one window.
struct Fault {
  double db_extra_ms = 0;     // added to every db request
  double db_error_share = 0;  // of db's requests answered 500 (and passed up as 500s)
  double api_db_extra_ms = 0;  // added to api's calls to db as api sees them (db itself no slower)
  double cpu_busy = 0;        // machine busy ratio instead of ~0.3
  bool entry_down = false;    // the entry point serves nothing; loadgen's connects are refused
  bool load_stopped = false;  // loadgen calls nothing: no service or edge has a window
};

// The windows of one start: server side of each tier, client-side edges, listeners, the machine.
// Every series is cut into two partials (input partitions 0 and 1) unless `only` is 0 or 1.
class Chain {
 public:
  explicit Chain(uint64_t seed = 7, std::string entry = "frontend")
      : rng_(seed), entry_(std::move(entry)) {}
  // The tiers listen on `ip` instead of 127.0.0.1, and each tier's server side also reports who
  // called it: frontend from `loadgen_host`, api from `api_caller_host` (frontend's is `ip`).
  Chain(std::string ip, std::string loadgen_host, std::string api_caller_host)
      : rng_(7), entry_("frontend"), ip_(std::move(ip)), loadgen_host_(std::move(loadgen_host)),
        api_caller_host_(std::move(api_caller_host)) {}

  std::vector<std::string> Records(int64_t start, const Fault& f, int only = -1) {
    std::vector<std::string> out;
    auto emit = [&](model::StoredWindow w) {
      for (int p = 0; p < 2; ++p) {
        if (only >= 0 && p != only) continue;
        model::StoredWindow part = w;
        part.stats = Half(w.stats, p, only >= 0);
        v1::WindowRecord r;
        model::ToWindowRecord(part, kW, p, &r);
        out.push_back(r.SerializeAsString());
      }
    };
    const double db_ms = 2 + f.db_extra_ms, api_ms = db_ms + 3 + f.api_db_extra_ms,
                 fe_ms = api_ms + 2;
    const double err = f.db_error_share;
    const std::vector<std::tuple<std::string, std::string, double>> tiers = {
        {entry_, ip_ + ":8000", fe_ms},
        {"api", ip_ + ":8001", api_ms},
        {"db", ip_ + ":8002", db_ms}};
    for (const auto& [svc, addr, ms] : tiers) {
      if (f.entry_down || f.load_stopped) break;  // nobody serves
      model::StoredWindow s;
      s.start_s = start;
      s.key = Key(
          EntityKind::kService,
          {{"service", svc}, {"endpoint", "GET /"}, {"instance", svc + "-1"}, {"machine", "m1"}});
      s.stats = Requests(100, ms, err);
      emit(s);
      model::StoredWindow l;
      l.start_s = start;
      l.key = Key(EntityKind::kListener, {{"service", svc}, {"address", addr}, {"machine", "m1"}});
      l.stats.requests = 100;
      emit(l);
    }
    const std::vector<std::tuple<std::string, std::string, double>> edges = {
        {"loadgen", ip_ + ":8000", fe_ms + 0.2},
        {entry_, ip_ + ":8001", api_ms + 0.2},
        {"api", ip_ + ":8002", db_ms + 0.2 + f.api_db_extra_ms}};
    for (const auto& [caller, callee, ms] : edges) {
      if (f.load_stopped || (f.entry_down && caller != "loadgen")) continue;
      model::StoredWindow e;
      e.start_s = start;
      e.key = Key(EntityKind::kEdge, {{"caller", caller},
                                      {"callee", callee},
                                      {"endpoint", "GET /"},
                                      {"instance", caller + "-1"},
                                      {"machine", "m1"},
                                      {"side", "client"}});
      e.stats = Requests(100, ms, err);
      e.stats.rtt_samples = 10;
      e.stats.rtt_us_sum = 10 * 40;
      e.stats.packets_out = e.stats.packets_in = 200;
      if (f.entry_down) {  // every attempt refused: no exchange, no RTT
        e.stats = model::WindowStats();
        e.stats.connects_refused = 100;
      }
      emit(e);
    }
    const std::vector<std::pair<std::string, std::string>> server_sides = {
        {loadgen_host_, entry_}, {api_caller_host_, "api"}};  // a server side's callee is itself
    for (const auto& [caller, callee] : server_sides) {
      if (caller.empty() || f.entry_down || f.load_stopped) continue;
      model::StoredWindow e;
      e.start_s = start;
      e.key = Key(EntityKind::kEdge, {{"caller", caller},
                                      {"callee", callee},
                                      {"endpoint", "GET /"},
                                      {"machine", "m1"},
                                      {"side", "server"}});
      e.stats.requests = 100;
      emit(e);
    }
    model::StoredWindow m;
    m.start_s = start;
    m.key = Key(EntityKind::kMachine, {{"machine", "m1"}});
    m.stats.resource_samples = 2;
    m.stats.cpu_total_ns = 2 * 5'000'000'000ull;
    const double busy = f.cpu_busy > 0 ? f.cpu_busy : 0.3 + Noise() * 0.02;
    m.stats.cpu_busy_ns = static_cast<uint64_t>(busy * m.stats.cpu_total_ns);
    for (int i = 0; i < 50; ++i) m.stats.runq_ns.Add(50'000 * (1 + 0.2 * Noise()));
    m.stats.memory_available_sum = 2 * (8ull << 30);
    emit(m);
    return out;
  }

 private:
  double Noise() { return std::uniform_real_distribution<double>(-1, 1)(rng_); }
  model::WindowStats Requests(int n, double ms, double error_share) {
    model::WindowStats s;
    s.requests = n;
    s.status_5xx = static_cast<uint64_t>(std::lround(n * error_share));
    for (int i = 0; i < n; ++i) s.latency_ns.Add(ms * 1e6 * (1 + 0.1 * Noise()));
    return s;
  }
  // Partial p of a window: requests split in halves, the sketch by alternate samples (so that the
  // merge is the whole), machine counters in halves.
  static model::WindowStats Half(const model::WindowStats& w, int p, bool whole) {
    if (whole) return w;
    model::WindowStats h = w;
    auto half = [&](uint64_t v) { return p == 0 ? v / 2 : v - v / 2; };
    h.requests = half(w.requests);
    h.status_5xx = half(w.status_5xx);
    h.rtt_samples = half(w.rtt_samples);
    h.rtt_us_sum =
        w.rtt_us_sum * (static_cast<double>(h.rtt_samples) / std::max<uint64_t>(1, w.rtt_samples));
    h.packets_in = half(w.packets_in), h.packets_out = half(w.packets_out);
    h.resource_samples = half(w.resource_samples);
    h.cpu_total_ns = half(w.cpu_total_ns), h.cpu_busy_ns = half(w.cpu_busy_ns);
    h.memory_available_sum = half(w.memory_available_sum);
    // Sketches: partial 0 keeps them, partial 1 carries none (sketch merges are exact either way).
    if (p == 1) h.latency_ns = model::LatencySketch(), h.runq_ns = model::LatencySketch();
    return h;
  }
  std::mt19937_64 rng_;
  std::string entry_;
  std::string ip_ = "127.0.0.1", loadgen_host_, api_caller_host_;
};

struct Feed {
  explicit Feed(LiveOptions o = {}) : live(std::move(o), &fta::DefaultFaultTrees()) {}
  // Feeds window `start` and judges what is complete; returns the incident changes.
  std::vector<Incident> Window(Chain& chain, int64_t start, const Fault& f = {}) {
    for (const std::string& r : chain.Records(start, f)) {
      Status s = live.Apply(r);
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    auto changes = live.Advance();
    all.insert(all.end(), changes.begin(), changes.end());
    return changes;
  }
  LiveDiagnosis live;
  std::vector<Incident> all;
};

// A minute and a half of baseline, `fault_windows` with the fault, then normal windows.
void Scenario(Feed* run, Chain* chain, const Fault& f, int fault_windows, int after = 8,
              int baseline = 20) {
  int64_t t = kT0;
  for (int i = 0; i < baseline; ++i, t += kW) run->Window(*chain, t);
  for (int i = 0; i < fault_windows; ++i, t += kW) run->Window(*chain, t, f);
  for (int i = 0; i < after; ++i, t += kW) run->Window(*chain, t);
}

TEST(LiveDiagnosis, SlowDeepestTierIsOneIncidentThatResolves) {
  Feed run;
  Chain chain;
  Scenario(&run, &chain, Fault{.db_extra_ms = 200}, 6);
  ASSERT_EQ(run.all.size(), 2u) << "open and resolve, no update: cause, class and severity held";
  const Incident& open = run.all[0];
  EXPECT_EQ(open.status, IncidentStatus::kOpen);
  EXPECT_EQ(open.sequence, 1u);
  // The fault's first window is kT0 + 100, judged when window kT0 + 105 arrives; its cause is
  // a service, so it waits for one more window (confirm_windows): diagnosed again from kT0 + 100
  // then, published at kT0 + 105.
  EXPECT_EQ(open.opened_at_s, kT0 + 100);
  EXPECT_EQ(open.updated_at_s, kT0 + 105);
  EXPECT_EQ(open.phenomenon.change.since_s, kT0 + 100);
  EXPECT_EQ(open.phenomenon.entry, (EntityRef{EntityKind::kService, "frontend"}));
  EXPECT_EQ(open.phenomenon.change.metric, Metric::kLatencyP99Ms);
  ASSERT_FALSE(open.root_causes.empty());
  EXPECT_EQ(open.root_causes[0].entity, (EntityRef{EntityKind::kService, "db"}));
  EXPECT_EQ(open.fault_tree.fault_class, "own_code");
  ASSERT_EQ(open.propagation.size(), 3u);
  EXPECT_EQ(open.propagation[0].entity.name, "db");
  EXPECT_EQ(open.propagation[1].entity.name, "api");
  EXPECT_EQ(open.propagation[2].entity.name, "frontend");
  EXPECT_EQ(open.situation.source, "live");
  EXPECT_EQ(open.dedup_key, "service:frontend|service:db");
  const Incident& resolved = run.all[1];
  EXPECT_EQ(resolved.id, open.id);
  EXPECT_EQ(resolved.status, IncidentStatus::kResolved);
  EXPECT_EQ(resolved.sequence, 2u);
  // Normal again from kT0 + 130: resolved on the third normal window.
  ASSERT_TRUE(resolved.resolved_at_s);
  EXPECT_EQ(*resolved.resolved_at_s, kT0 + 140);
  const LiveCounters& c = run.live.counters();
  EXPECT_EQ(c.opened, 1u);
  EXPECT_EQ(c.resolved, 1u);
  EXPECT_EQ(c.updated, 0u);
  EXPECT_EQ(c.undecodable, 0u);
  EXPECT_EQ(c.late_partials, 0u);
  EXPECT_EQ(c.held, 1u);
  EXPECT_EQ(c.held_dropped, 0u);
  // 34 windows fed, the last one waits for its successor.
  EXPECT_EQ(c.windows_judged, 33u);
  EXPECT_EQ(run.live.judged_until(), kT0 + 32 * kW);
  ASSERT_EQ(run.live.Incidents().size(), 1u);
  EXPECT_EQ(run.live.Incidents()[0]->status, IncidentStatus::kResolved);
}

TEST(LiveDiagnosis, AOneWindowBlipWithAServiceCauseOpensNothing) {
  Feed run;
  Chain chain;
  Scenario(&run, &chain, Fault{.db_extra_ms = 200}, 1);
  EXPECT_TRUE(run.all.empty());
  EXPECT_EQ(run.live.counters().opened, 0u);
  EXPECT_EQ(run.live.counters().held, 1u);
  EXPECT_EQ(run.live.counters().held_dropped, 1u);
  // Without confirmation it opens in its first window.
  LiveOptions o;
  o.confirm_windows = 0;
  Feed at_once(o);
  Chain same;
  Scenario(&at_once, &same, Fault{.db_extra_ms = 200}, 1);
  ASSERT_FALSE(at_once.all.empty());
  EXPECT_EQ(at_once.all[0].opened_at_s, kT0 + 100);
  EXPECT_EQ(at_once.live.counters().held, 0u);
}

// A call edge slower only as its caller sees it, with no network signal, is a residual cause like
// a service: a one-window blip on it opens nothing (diagnosis_live_test's fault-free phase once
// paged on "api->db latency_max_ms 5 -> 21 ms" for one window of a busy host); held, it opens.
TEST(LiveDiagnosis, AOneWindowBlipOnACallEdgeWithoutNetworkSignalOpensNothing) {
  Feed run;
  Chain chain;
  Scenario(&run, &chain, Fault{.api_db_extra_ms = 200}, 1);
  EXPECT_TRUE(run.all.empty()) << run.all.front().title;
  EXPECT_EQ(run.live.counters().held, 1u);
  EXPECT_EQ(run.live.counters().held_dropped, 1u);
  Feed held;
  Chain same;
  Scenario(&held, &same, Fault{.api_db_extra_ms = 200}, 4);
  ASSERT_FALSE(held.all.empty());
  const Incident& open = held.all[0];
  EXPECT_EQ(open.opened_at_s, kT0 + 100);
  EXPECT_EQ(open.updated_at_s, kT0 + 105);
  ASSERT_FALSE(open.root_causes.empty());
  EXPECT_EQ(open.root_causes[0].entity, (EntityRef{EntityKind::kEdge, "api->db"}));
  EXPECT_LE(open.root_causes[0].score, 1);  // no network signal: at most 1
  EXPECT_EQ(open.fault_tree.fault_class, "slow_downstream");
}

// Latency that falls harms nobody: the chain slow for its whole baseline (db 200 ms more), then
// fast again, is no incident (it used to open one: "frontend latency_p99_ms fell"). The detectors
// still call the fall anomalous.
TEST(LiveDiagnosis, LatencyThatFallsIsNoIncident) {
  Feed run;
  Chain chain;
  int64_t t = kT0;
  for (int i = 0; i < 20; ++i, t += kW) run.Window(chain, t, Fault{.db_extra_ms = 200});
  for (int i = 0; i < 8; ++i, t += kW) run.Window(chain, t);
  EXPECT_TRUE(run.all.empty()) << run.all.front().title;
  EXPECT_EQ(run.live.counters().opened, 0u);
  EXPECT_EQ(run.live.counters().held, 0u);
  EXPECT_GT(run.live.counters().anomalies, 0u);
}

TEST(LiveDiagnosis, FailingDeepestTierIsAnErrorIncident) {
  Feed run;
  Chain chain;
  Scenario(&run, &chain, Fault{.db_error_share = 0.3}, 6);
  ASSERT_GE(run.all.size(), 2u);
  EXPECT_EQ(run.live.counters().opened, 1u);
  const Incident& open = run.all[0];
  EXPECT_EQ(open.phenomenon.change.metric, Metric::kErrorRate);
  ASSERT_FALSE(open.root_causes.empty());
  EXPECT_EQ(open.root_causes[0].entity.name, "db");
  EXPECT_EQ(open.fault_tree.fault_class, "own_code");
  EXPECT_EQ(run.all.back().status, IncidentStatus::kResolved);
}

// A total outage: frontend serves nothing for 4 windows while loadgen's connects are refused.
// Its silence at 100 requests a window is beyond chance from the first empty window (JudgeSilence),
// so the incident opens then, as the service that stopped serving, and resolves once frontend has
// served three windows again.
TEST(LiveDiagnosis, ATotalOutageIsOneIncidentThatResolvesWhenServingAgain) {
  Feed run;
  Chain chain;
  Scenario(&run, &chain, Fault{.entry_down = true}, 4);
  ASSERT_EQ(run.all.size(), 2u);
  const Incident& open = run.all[0];
  EXPECT_EQ(open.status, IncidentStatus::kOpen);
  EXPECT_EQ(open.opened_at_s, kT0 + 100);
  EXPECT_EQ(open.updated_at_s, kT0 + 100);
  EXPECT_EQ(open.phenomenon.entry, (EntityRef{EntityKind::kService, "frontend"}));
  EXPECT_EQ(open.phenomenon.change.metric, Metric::kRequests);
  ASSERT_FALSE(open.root_causes.empty());
  EXPECT_EQ(open.root_causes[0].entity, (EntityRef{EntityKind::kService, "frontend"}));
  EXPECT_EQ(open.fault_tree.fault_class, "service_unavailable");
  EXPECT_EQ(open.severity, Severity::kError);
  const Incident& resolved = run.all[1];
  EXPECT_EQ(resolved.id, open.id);
  EXPECT_EQ(resolved.status, IncidentStatus::kResolved);
  ASSERT_TRUE(resolved.resolved_at_s);
  EXPECT_EQ(*resolved.resolved_at_s, kT0 + 130);  // serving from kT0 + 120, the third window
  EXPECT_EQ(run.live.counters().outages, 4u);
  EXPECT_EQ(run.live.counters().opened, 1u);
}

// The load generator stops calling: every service is silent, and its observed callers did not
// try and fail, they left. No incident; and an incident open when they leave resolves.
TEST(LiveDiagnosis, CallersThatLeaveAreNoOutageAndEndAnOpenIncident) {
  Feed run;
  Chain chain;
  Scenario(&run, &chain, Fault{.load_stopped = true}, 10, 0);
  EXPECT_TRUE(run.all.empty()) << run.all.front().title;
  EXPECT_EQ(run.live.counters().outages, 0u);
  Feed slow;
  Chain same;
  int64_t t = kT0;
  for (int i = 0; i < 20; ++i, t += kW) slow.Window(same, t);
  for (int i = 0; i < 4; ++i, t += kW) slow.Window(same, t, Fault{.db_extra_ms = 200});
  ASSERT_EQ(slow.all.size(), 1u);
  for (int i = 0; i < 5; ++i, t += kW) slow.Window(same, t, Fault{.load_stopped = true});
  ASSERT_EQ(slow.all.size(), 2u);
  EXPECT_EQ(slow.all[1].status, IncidentStatus::kResolved);
  ASSERT_TRUE(slow.all[1].resolved_at_s);
  EXPECT_EQ(*slow.all[1].resolved_at_s, kT0 + 130);  // silent from kT0 + 120, the third window
  EXPECT_EQ(slow.live.counters().outages, 0u);
}

// An entry point slow, then down: the open incident is revised openly (an update, the same id)
// into the outage, not a second incident.
TEST(LiveDiagnosis, AnOpenIncidentWhoseEntryPointGoesDownIsRevisedIntoTheOutage) {
  Feed run;
  Chain chain;
  int64_t t = kT0;
  for (int i = 0; i < 20; ++i, t += kW) run.Window(chain, t);
  for (int i = 0; i < 4; ++i, t += kW) run.Window(chain, t, Fault{.db_extra_ms = 200});
  ASSERT_EQ(run.all.size(), 1u);
  for (int i = 0; i < 3; ++i, t += kW) run.Window(chain, t, Fault{.entry_down = true});
  ASSERT_EQ(run.all.size(), 2u);
  EXPECT_EQ(run.all[1].id, run.all[0].id);
  EXPECT_EQ(run.all[1].status, IncidentStatus::kUpdated);
  EXPECT_EQ(run.all[1].sequence, 2u);
  EXPECT_EQ(run.all[1].phenomenon.change.metric, Metric::kRequests);
  ASSERT_FALSE(run.all[1].root_causes.empty());
  EXPECT_EQ(run.all[1].root_causes[0].entity, (EntityRef{EntityKind::kService, "frontend"}));
  EXPECT_EQ(run.all[1].fault_tree.fault_class, "service_unavailable");
  EXPECT_EQ(run.live.counters().opened, 1u);
}

TEST(LiveDiagnosis, FaultFreeRunOpensNothing) {
  Feed run;
  Chain chain(11);
  int64_t t = kT0;
  for (int i = 0; i < 150; ++i, t += kW) run.Window(chain, t);
  EXPECT_TRUE(run.all.empty());
  EXPECT_EQ(run.live.counters().opened, 0u);
  EXPECT_EQ(run.live.counters().windows_judged, 149u);
  // Watched: 3 services x 2 metrics, 3 edges x 4 metrics, the machine x 2 = 20 series.
  EXPECT_EQ(run.live.watched_series(), 20u);
  // History beyond the lookback (180 s) is forgotten: 37 windows' starts kept.
  std::vector<LiveDiagnosis::Change> changes;
  run.live.TakeChanges(&changes);
  size_t windows = 0;
  for (const auto& [k, v] : changes)
    if (k.rfind("w|", 0) == 0 && v) windows++;
  // 3 services + 3 listeners + 3 edges + 1 machine = 10 series per window.
  EXPECT_EQ(windows, 10u * 38);
}

TEST(LiveDiagnosis, HotMachineWithoutEntryPointSymptomIsNoIncident) {
  Feed run;
  Chain chain;
  Scenario(&run, &chain, Fault{.cpu_busy = 0.97}, 6);
  EXPECT_GE(run.live.counters().anomalies, 6u);  // the machine's CPU, every fault window
  EXPECT_EQ(run.live.counters().opened, 0u);
  EXPECT_EQ(run.live.counters().diagnoses, 0u);
  EXPECT_TRUE(run.all.empty());
}

TEST(LiveDiagnosis, InnerServicesAreNotEntryPointsUnlessListed) {
  // db is slow, but only api and frontend see it; with "api" listed as an entry point, api's
  // anomaly names the same root cause as frontend's incident: one incident, the other merged.
  LiveOptions o;
  o.entry_points = {"api"};
  Feed run(o);
  Chain chain;
  Scenario(&run, &chain, Fault{.db_extra_ms = 200}, 6);
  EXPECT_EQ(run.live.counters().opened, 1u);
  EXPECT_GE(run.live.counters().merged_into_open, 1u);
  ASSERT_FALSE(run.all.empty());
  EXPECT_EQ(run.all[0].root_causes[0].entity.name, "db");
}

TEST(LiveDiagnosis, ServerSideCallersFromAListenersHostAreNotExternal) {
  // The shop's addresses (not loopback, longer than a short string's inline buffer): api's
  // server side sees calls from frontend's host, a host with listeners, so api is an inner service
  // and only frontend's anomaly opens an incident.
  Feed run;
  Chain chain("198.18.0.11", "198.18.0.200", "198.18.0.11");
  Scenario(&run, &chain, Fault{.db_extra_ms = 200}, 6);
  EXPECT_EQ(run.live.counters().opened, 1u);
  EXPECT_EQ(run.live.counters().merged_into_open, 0u);
  ASSERT_FALSE(run.all.empty());
  EXPECT_EQ(run.all[0].phenomenon.entry, (EntityRef{EntityKind::kService, "frontend"}));
  EXPECT_EQ(run.all[0].root_causes[0].entity.name, "db");
  // The same calls from a host nothing listens on come from outside: api is an entry point too,
  // and its anomaly joins frontend's incident.
  Feed outside;
  Chain from_outside("198.18.0.11", "198.18.0.200", "198.18.0.77");
  Scenario(&outside, &from_outside, Fault{.db_extra_ms = 200}, 6);
  EXPECT_EQ(outside.live.counters().opened, 1u);
  EXPECT_GE(outside.live.counters().merged_into_open, 1u);
}

std::string Watermark(int32_t input_partition, int64_t start) {
  v1::WindowRecord r;
  r.set_schema_version(2);
  r.set_kind(std::string(model::kWatermarkRecordKind));
  r.set_input_partition(input_partition);
  r.set_window_start_unix_s(start);
  r.set_window_seconds(kW);
  return r.SerializeAsString();
}

TEST(LiveDiagnosis, WindowCompletesWhenEveryPartitionMovedOnOrItsWatermarksCoverIt) {
  LiveOptions o;
  o.metrics_partitions = 2;
  Feed run(o);
  Chain chain;
  for (const auto& r : chain.Records(kT0, {})) ASSERT_TRUE(run.live.Apply(r).ok());
  EXPECT_TRUE(run.live.Advance().empty());
  EXPECT_EQ(run.live.judged_until(), 0);  // nobody moved on
  // Partition 0 moves on; partition 1 has not: kT0 waits.
  for (const auto& r : chain.Records(kT0 + kW, {}, 0)) ASSERT_TRUE(run.live.Apply(r).ok());
  run.live.Advance();
  EXPECT_EQ(run.live.judged_until(), 0);
  // Partition 1's watermark covers kT0 on one metrics partition only: still waiting.
  ASSERT_TRUE(run.live.Apply(Watermark(1, kT0), 0).ok());
  run.live.Advance();
  EXPECT_EQ(run.live.judged_until(), 0);
  // ... and on the other: partition 1 is done with kT0, but partition 0 moved on only on metrics
  // partition 0; its partials of kT0 on metrics partition 1 may still be on their way.
  ASSERT_TRUE(run.live.Apply(Watermark(1, kT0), 1).ok());
  run.live.Advance();
  EXPECT_EQ(run.live.judged_until(), 0);
  // Partition 0's watermark on metrics partition 1: kT0 is complete, kT0 + 5 is not (partition 1
  // covered only kT0).
  ASSERT_TRUE(run.live.Apply(Watermark(0, kT0), 1).ok());
  run.live.Advance();
  EXPECT_EQ(run.live.judged_until(), kT0);
  EXPECT_EQ(run.live.counters().windows_judged, 1u);
  // Partition 0's watermarks cover kT0 + 5 and partition 1's too: judged without a later window.
  for (int32_t m : {0, 1}) {
    ASSERT_TRUE(run.live.Apply(Watermark(0, kT0 + kW), m).ok());
    ASSERT_TRUE(run.live.Apply(Watermark(1, kT0 + kW), m).ok());
  }
  run.live.Advance();
  EXPECT_EQ(run.live.judged_until(), kT0 + kW);
  EXPECT_EQ(run.live.counters().windows_judged, 2u);
  EXPECT_EQ(run.live.counters().records, 20u + 10u + 7u);
}

// Each series' partials go to the metrics partition its key hashes to. A later window read on one
// metrics partition (a consumer catching up on it first, or the other partition slow) does not
// complete a window whose partials on the other partition have not been read.
TEST(LiveDiagnosis, AWindowWaitsForItsPartialsOnEveryMetricsPartition) {
  LiveOptions o;
  o.metrics_partitions = 2;
  Feed run(o);
  Chain chain;
  // Records come in pairs (input partition 0's partial, then 1's) per series: pair k on k % 2.
  auto metrics_partition = [](size_t i) { return static_cast<int32_t>((i / 2) % 2); };
  const auto first = chain.Records(kT0, {});
  for (size_t i = 0; i < first.size(); ++i)
    if (metrics_partition(i) == 0) ASSERT_TRUE(run.live.Apply(first[i], 0).ok());
  const auto second = chain.Records(kT0 + kW, {});
  for (size_t i = 0; i < second.size(); ++i)
    if (metrics_partition(i) == 0) ASSERT_TRUE(run.live.Apply(second[i], 0).ok());
  run.live.Advance();
  EXPECT_EQ(run.live.judged_until(), 0) << "kT0 judged with metrics partition 1 unread";
  // Metrics partition 1 delivers kT0: still nothing says it is done with it.
  for (size_t i = 0; i < first.size(); ++i)
    if (metrics_partition(i) == 1) ASSERT_TRUE(run.live.Apply(first[i], 1).ok());
  run.live.Advance();
  EXPECT_EQ(run.live.judged_until(), 0);
  // ... and then kT0 + 5: kT0 is complete, with every partial merged and none late.
  for (size_t i = 0; i < second.size(); ++i)
    if (metrics_partition(i) == 1) ASSERT_TRUE(run.live.Apply(second[i], 1).ok());
  run.live.Advance();
  EXPECT_EQ(run.live.judged_until(), kT0);
  EXPECT_EQ(run.live.counters().windows_judged, 1u);
  EXPECT_EQ(run.live.counters().late_partials, 0u);
  EXPECT_EQ(run.live.counters().records, first.size() + second.size());
}

TEST(LiveDiagnosis, AnIdlePartitionStopsHoldingCompletionBack) {
  Feed run;  // idle_s 30
  Chain chain;
  for (const auto& r : chain.Records(kT0, {})) ASSERT_TRUE(run.live.Apply(r).ok());
  // From here only partition 0 publishes.
  int64_t t = kT0 + kW;
  for (; t <= kT0 + 30; t += kW) {
    for (const auto& r : chain.Records(t, {}, 0)) ASSERT_TRUE(run.live.Apply(r).ok());
    run.live.Advance();
    EXPECT_EQ(run.live.judged_until(), 0) << "partition 1 is 30 s behind or less at " << t - kT0;
  }
  for (const auto& r : chain.Records(t, {}, 0)) ASSERT_TRUE(run.live.Apply(r).ok());
  run.live.Advance();
  // 35 s behind: idle. Everything before partition 0's newest window is complete.
  EXPECT_EQ(run.live.judged_until(), t - kW);
  EXPECT_EQ(run.live.counters().windows_judged, 7u);
}

TEST(LiveDiagnosis, LatePartialsAreCountedAndNeverMergedIntoAJudgedWindow) {
  Feed run;
  Chain chain;
  run.Window(chain, kT0);
  run.Window(chain, kT0 + kW);
  ASSERT_EQ(run.live.judged_until(), kT0);
  std::vector<LiveDiagnosis::Change> before;
  run.live.TakeChanges(&before);
  const auto late = chain.Records(kT0, {}, 1);
  for (const auto& r : late) ASSERT_TRUE(run.live.Apply(r).ok());
  EXPECT_EQ(run.live.counters().late_partials, late.size());
  std::vector<LiveDiagnosis::Change> after;
  run.live.TakeChanges(&after);
  for (const auto& [k, v] : after) EXPECT_NE(k.rfind("w|", 0), 0u) << "a judged window changed";
}

TEST(LiveDiagnosis, RefusedRecordsNameWhatIsWrong) {
  Feed run;
  Chain chain;
  EXPECT_EQ(run.live.Apply("\xff\xff\xff").message(), "window record: not protobuf");
  v1::WindowRecord r;
  r.set_schema_version(1);
  r.set_kind("service");
  EXPECT_EQ(
      run.live.Apply(r.SerializeAsString()).message(),
      "window record: layout 1 carries no window state (needs a stream of layout 2 or later)");
  ASSERT_TRUE(r.ParseFromString(chain.Records(kT0, {})[0]));
  r.set_window_seconds(0);
  EXPECT_EQ(run.live.Apply(r.SerializeAsString()).message(), "window record: window_seconds 0");
  r.set_window_seconds(kW);
  r.set_window_start_unix_s(kT0 + 2);
  ASSERT_TRUE(run.live.Apply(chain.Records(kT0, {})[0]).ok());  // fixes the window length
  EXPECT_EQ(run.live.Apply(r.SerializeAsString()).message(),
            "window record: window start " + std::to_string(kT0 + 2));
  r.set_window_start_unix_s(kT0);
  r.set_window_seconds(10);
  EXPECT_EQ(run.live.Apply(r.SerializeAsString()).message(),
            "window record: 10 s windows, this stage judges 5 s ones");
  r.set_window_seconds(kW);
  r.set_series_key("\x63");
  EXPECT_EQ(run.live.Apply(r.SerializeAsString()).message().rfind("window record: ", 0), 0u);
  EXPECT_EQ(run.live.counters().undecodable, 6u);
  EXPECT_EQ(run.live.counters().records, 1u);
}

// Applies TakeChanges to a key-value map, as the runtime's write batch does.
void Absorb(LiveDiagnosis* live, std::map<std::string, std::string>* store) {
  std::vector<LiveDiagnosis::Change> changes;
  live->TakeChanges(&changes);
  for (auto& [k, v] : changes) {
    if (v)
      (*store)[k] = *v;
    else
      store->erase(k);
  }
}

TEST(LiveDiagnosis, RestartFromItsChangesContinuesWithIdenticalIncidents) {
  const Fault slow{.db_extra_ms = 200};
  auto fault_at = [&](int i) { return i >= 20 && i < 26 ? slow : Fault{}; };
  // Uninterrupted.
  Feed whole;
  {
    Chain chain;
    for (int i = 0; i < 34; ++i) whole.Window(chain, kT0 + i * kW, fault_at(i));
  }
  std::map<std::string, std::string> whole_state;
  Absorb(&whole.live, &whole_state);
  // Stopped after window 21 (the anomaly held for confirmation) or 22 (mid-incident), restored
  // from its changes, continued.
  for (int stop : {21, 22}) {
    SCOPED_TRACE(stop);
    Chain chain;
    std::map<std::string, std::string> store;
    std::vector<Incident> seen;
    {
      Feed first;
      for (int i = 0; i <= stop; ++i) first.Window(chain, kT0 + i * kW, fault_at(i));
      Absorb(&first.live, &store);
      seen = first.all;
      ASSERT_EQ(seen.size(), stop == 22 ? 1u : 0u);  // open, or held
      EXPECT_EQ(store.count("h|frontend"), stop == 22 ? 0u : 1u);
    }
    Feed second;
    ASSERT_TRUE(second.live.Restore({store.begin(), store.end()}).ok());
    EXPECT_EQ(second.live.judged_until(), kT0 + (stop - 1) * kW);
    ASSERT_EQ(second.live.Incidents().size(), stop == 22 ? 1u : 0u);
    for (int i = stop + 1; i < 34; ++i) second.Window(chain, kT0 + i * kW, fault_at(i));
    seen.insert(seen.end(), second.all.begin(), second.all.end());
    ASSERT_EQ(seen.size(), whole.all.size());
    for (size_t i = 0; i < seen.size(); ++i)
      EXPECT_EQ(IncidentToJson(seen[i]), IncidentToJson(whole.all[i])) << i;
    // The state written after the restart equals the uninterrupted run's.
    std::map<std::string, std::string> b = store;
    Absorb(&second.live, &b);
    EXPECT_EQ(whole_state, b);
  }
}

// A detector state goes into its detector when its series is next observed, with the series' own
// labels; a state the detector cannot read (its rule changed) is counted and the series starts
// afresh, while the rest of the state restores.
TEST(LiveDiagnosis, ADetectorStateItsDetectorCannotReadStartsAfresh) {
  Chain chain;
  std::map<std::string, std::string> store;
  {
    Feed first;
    for (int i = 0; i < 20; ++i) first.Window(chain, kT0 + i * kW);
    Absorb(&first.live, &store);
  }
  size_t states = 0, spoiled = 0;
  for (auto& [key, value] : store) {
    if (key.rfind("d|", 0) != 0) continue;
    states++;
    if (key.find("frontend") != std::string::npos && key.find("latency_p99_ms") != std::string::npos)
      value = "not a detector state", spoiled++;
  }
  ASSERT_GT(states, 10u);
  ASSERT_GT(spoiled, 0u);
  Feed second;
  ASSERT_TRUE(second.live.Restore({store.begin(), store.end()}).ok());
  EXPECT_EQ(second.live.watched_series(), states);
  EXPECT_EQ(second.live.counters().states_refused, 0u);  // not read until their series come
  second.Window(chain, kT0 + 20 * kW);
  second.Window(chain, kT0 + 21 * kW);
  EXPECT_EQ(second.live.counters().states_refused, spoiled);
  EXPECT_EQ(second.live.watched_series(), states);
}

TEST(LiveDiagnosis, NamesThatAreNotUtf8OrHoldNulStillOpenAndRestore) {
  // Service names come from the wire (process and container names): any bytes.
  Feed run;
  Chain chain(7, std::string("front\xff\0end", 9));
  Scenario(&run, &chain, Fault{.db_extra_ms = 200}, 6, 0);
  ASSERT_EQ(run.live.counters().opened, 1u);
  std::map<std::string, std::string> store;
  Absorb(&run.live, &store);
  LiveDiagnosis again({}, &fta::DefaultFaultTrees());
  const Status s = again.Restore({store.begin(), store.end()});
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(again.Incidents().size(), 1u);
  EXPECT_EQ(again.watched_series(), run.live.watched_series());
  EXPECT_EQ(again.Incidents()[0]->root_causes[0].entity.name, "db");
}

TEST(LiveDiagnosis, RestoreNamesTheMalformedKey) {
  LiveDiagnosis live({}, &fta::DefaultFaultTrees());
  EXPECT_EQ(live.Restore({{"m|window_s", "x"}}).message(),
            "diagnosis state: key \"m|window_s\": not a window length");
  EXPECT_EQ(live.Restore({{"q|what", ""}}).message(),
            "diagnosis state: key \"q|what\": unknown record");
  EXPECT_EQ(live.Restore({{"i|fl-1", "{}"}}).message(),
            "diagnosis state: key \"i|fl-1\": not an incident record");
  EXPECT_EQ(live.Restore({{"m|reached|1", "5"}}).message(),
            "diagnosis state: key \"m|reached|1\": not a partition's progress (expected "
            "m|reached|<input>|<metrics> = <start>)");
}

TEST(LiveDiagnosis, DefaultRulesWatchTheCatalogsSeries) {
  const detectors::DetectorConfig& c = DefaultDetectorConfig();
  ASSERT_NE(c.Match(EntityKind::kService, "x", Metric::kLatencyP99Ms, {}), nullptr);
  EXPECT_EQ(c.Match(EntityKind::kService, "x", Metric::kLatencyP99Ms, {})->detector, "mad");
  EXPECT_NE(c.Match(EntityKind::kEdge, "a->b", Metric::kRetransmits, {}), nullptr);
  EXPECT_NE(c.Match(EntityKind::kMachine, "m", Metric::kCpuBusyRatio, {}), nullptr);
  EXPECT_EQ(c.Match(EntityKind::kService, "x", Metric::kRequests, {}), nullptr);
}

}  // namespace
}  // namespace faultline::diagnosis
