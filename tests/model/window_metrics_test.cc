// The catalog's metrics computed from windows, and how windows carry them: the JSON of window
// queries and the WindowRecord published to faultline.metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "faultline/model/window_record.h"
#include "faultline/model/identity.h"
#include "faultline/model/window_stats.h"
#include "metrics.pb.h"

namespace faultline::model {
namespace {

WindowStats Sample() {
  WindowStats w;
  w.requests = 10, w.status_4xx = 1, w.status_5xx = 2, w.incomplete = 1;
  for (int ms = 1; ms <= 9; ++ms) w.latency_ns.Add(ms * 1e6);
  w.retransmits = 3;
  w.drops = {{"NETFILTER_DROP", 2}, {"TCP_OLD_DATA", 1}};
  w.resets_sent = 1, w.resets_received = 1;
  w.connects_ok = 5, w.connects_refused = 4, w.connects_failed = 1;
  w.connect_ns.Add(2e6);
  w.rtt_samples = 2, w.rtt_us_sum = 3000;
  w.agent_dropped = 7;
  w.resource_samples = 2;
  w.cpu_busy_ns = 1'000'000'000, w.cpu_total_ns = 4'000'000'000;
  w.runq_ns.Add(5e5);
  w.major_faults = 6;
  w.memory_available_sum = 2 * (uint64_t{1} << 30);
  w.io_read_bytes = 100, w.io_write_bytes = 28, w.io_ops = 2;
  w.io_ns.Add(3e6);
  return w;
}

TEST(WindowMetrics, EachCatalogMetricFromAWindow) {
  const WindowStats w = Sample();
  auto m = [&](Metric metric) { return ComputeMetric(metric, w, 5); };
  EXPECT_EQ(m(Metric::kRequests), 10);
  EXPECT_EQ(m(Metric::kErrors), 2);
  EXPECT_EQ(m(Metric::kErrorRate), 0.2);
  EXPECT_EQ(m(Metric::kClientErrors), 1);
  EXPECT_EQ(m(Metric::kIncomplete), 1);
  EXPECT_NEAR(m(Metric::kLatencyMeanMs), 5, 1e-9);
  EXPECT_NEAR(m(Metric::kLatencyP50Ms), 5, 0.05);
  EXPECT_NEAR(m(Metric::kLatencyP99Ms), 8, 0.08);  // rank 0.99 · (9 - 1): the 8th of 9
  EXPECT_NEAR(m(Metric::kLatencyMaxMs), 9, 1e-9);
  EXPECT_EQ(m(Metric::kRetransmits), 3);
  EXPECT_EQ(m(Metric::kDrops), 3);
  EXPECT_EQ(m(Metric::kResets), 2);
  EXPECT_EQ(m(Metric::kConnectsRefused), 4);
  EXPECT_EQ(m(Metric::kConnectsFailed), 1);
  EXPECT_NEAR(m(Metric::kConnectP99Ms), 2, 0.02);
  EXPECT_EQ(m(Metric::kRttMeanMs), 1.5);
  EXPECT_EQ(m(Metric::kCpuBusyRatio), 0.25);
  EXPECT_NEAR(m(Metric::kRunqP99Ms), 0.5, 0.005);
  EXPECT_EQ(m(Metric::kMemoryAvailableMb), 1024);
  EXPECT_EQ(m(Metric::kMajorFaults), 6);
  EXPECT_NEAR(m(Metric::kIoLatencyP99Ms), 3, 0.03);
  EXPECT_EQ(m(Metric::kIoBytes), 128);
  EXPECT_EQ(m(Metric::kAgentDropped), 7);
}

TEST(WindowMetrics, UndefinedWithoutDataIsNan) {
  const WindowStats empty;
  for (Metric metric : {Metric::kErrorRate, Metric::kLatencyP99Ms, Metric::kLatencyMeanMs,
                        Metric::kRttMeanMs, Metric::kCpuBusyRatio, Metric::kMemoryAvailableMb,
                        Metric::kRunqP99Ms, Metric::kIoBytes, Metric::kConnectP99Ms})
    EXPECT_TRUE(std::isnan(ComputeMetric(metric, empty, 5))) << MetricName(metric);
  EXPECT_EQ(ComputeMetric(Metric::kRequests, empty, 5), 0);
  EXPECT_EQ(ComputeMetric(Metric::kRetransmits, empty, 5), 0);
}

StoredWindow Window(EntityKind kind, std::vector<std::pair<std::string, std::string>> dims) {
  StoredWindow w;
  w.start_s = 100;
  w.key.kind = kind;
  w.key.dims = std::move(dims);
  w.stats = Sample();
  return w;
}

TEST(WindowMetrics, QueriesNameEveryMetricOfTheKindByItsCatalogName) {
  const auto j = nlohmann::json::parse(
      WindowToJson(Window(EntityKind::kService, {{"service", "api"}}), 5));
  EXPECT_EQ(j["requests"], 10);
  EXPECT_EQ(j["latency_samples"], 9);
  ASSERT_TRUE(j["metrics"].is_object());
  EXPECT_EQ(j["metrics"].size(), 10u);
  for (const MetricInfo& m : Metrics()) {
    EXPECT_EQ(j["metrics"].contains(std::string(m.name)), m.kinds.Has(EntityKind::kService))
        << m.name;
  }
  EXPECT_EQ(j["metrics"]["error_rate"], 0.2);
  EXPECT_FALSE(j.contains("latency_ms"));

  StoredWindow edge = Window(EntityKind::kEdge, {{"callee", "10.0.0.1:80"}, {"caller", "api"}});
  edge.stats.latency_ns = LatencySketch();
  const auto e = nlohmann::json::parse(WindowToJson(edge, 5));
  EXPECT_EQ(e["metrics"].size(), 17u);
  EXPECT_EQ(e["metrics"]["retransmits"], 3);
  EXPECT_TRUE(e["metrics"]["latency_p99_ms"].is_null());  // no complete exchange
  EXPECT_EQ(e["network"]["connects_refused"], 4);

  const auto m = nlohmann::json::parse(WindowToJson(Window(EntityKind::kMachine, {{"machine", "m"}}), 5));
  EXPECT_EQ(m["metrics"]["cpu_busy_ratio"], 0.25);
  EXPECT_EQ(m["metrics"]["memory_available_mb"], 1024);
  EXPECT_EQ(m["metrics"]["oom_kills"], 0);  // summaries came, no OOM kill among them
  EXPECT_EQ(m["resources"]["samples"], 2);
  EXPECT_FALSE(m.contains("requests"));

  const auto l = nlohmann::json::parse(
      WindowToJson(Window(EntityKind::kListener, {{"address", "1.2.3.4:80"}}), 5));
  EXPECT_FALSE(l.contains("metrics"));
}

TEST(WindowMetrics, PublishedRecordsCarryCatalogMetricsAndMergeableState) {
  const StoredWindow w = Window(EntityKind::kEdge, {{"callee", "10.0.0.1:80"}, {"caller", "api"}});
  v1::WindowRecord r;
  ToWindowRecord(w, 5, 3, &r);
  EXPECT_EQ(r.schema_version(), 2u);
  EXPECT_EQ(r.metrics().size(), 17u);
  EXPECT_EQ(r.metrics().at("drops"), 3);
  EXPECT_EQ(r.metrics().at("rtt_mean_ms"), 1.5);
  EXPECT_FALSE(r.metrics().contains("cpu_busy_ratio"));
  auto stats = WindowStats::Decode(r.window_stats());
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(*stats, w.stats);
}

}  // namespace
}  // namespace faultline::model
