#include "faultline/detectors/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace faultline::detectors {
namespace {

TEST(DetectorConfig, FirstMatchingRuleWinsAndTheDefaultCatchesTheRest) {
  auto c = ParseDetectorConfig(R"(
rules:
  - match: {kind: service, metric: latency_p99_ms, labels: {service: checkout}}
    detector: ewma
    params: {alpha: 0.1, k: 4}
  - match: {metric: error_rate}
    detector: threshold
    params: {upper: 0.05}
default: {detector: cusum}
)", "d.yaml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->rules.size(), 2u);
  EXPECT_EQ(c->rules[0].line, 3);
  const DetectorRule* r = c->Match(EntityKind::kService, "checkout", Metric::kLatencyP99Ms,
                                   {{"service", "checkout"}, {"instance", "a"}});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->detector, "ewma");
  EXPECT_EQ(r->params.at("k"), "4");
  EXPECT_EQ(c->Match(EntityKind::kEdge, "a->b", Metric::kErrorRate, {})->detector, "threshold");
  EXPECT_EQ(c->Match(EntityKind::kService, "cart", Metric::kLatencyP99Ms, {{"service", "cart"}})
                ->detector,
            "cusum");
  // A rule for a service's latency does not match an edge's.
  EXPECT_EQ(c->Match(EntityKind::kEdge, "checkout", Metric::kLatencyP99Ms, {{"service", "checkout"}})
                ->detector,
            "cusum");
}

TEST(DetectorConfig, ErrorsNameTheLineAndTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"rules:\n  - detector: nope\n", "d.yaml:2: rules[0]: no detector named 'nope' (known: burn_rate, combined, cusum, dspot, ewma, mad, nsigma, seasonal, sequence, spot, threshold)"},
      {"rules:\n  - detector: ewma\n    params: {alpha: 7}\n", "d.yaml:2: rules[0]: ewma: parameter alpha=7: must be in [0.000001, 1.000000]"},
      {"rules:\n  - match: {metrc: x}\n    detector: ewma\n", "d.yaml:2: rules[0].match: unknown key 'metrc' (expected kind, entity, metric, labels)"},
      {"rules:\n  - match: {metric: latency_p99}\n    detector: ewma\n", "d.yaml:2: rules[0].match.metric: unknown metric \"latency_p99\" (known: " + KnownMetricNames() + ")"},
      {"rules:\n  - match: {kind: services}\n    detector: ewma\n", "d.yaml:2: rules[0].match.kind: kind \"services\": expected service, edge, listener, machine, instance, container or external"},
      {"rules:\n  - match: {kind: machine, metric: retransmits}\n    detector: ewma\n", "d.yaml:2: rules[0].match.metric: metric \"retransmits\" does not apply to a machine (it applies to edge; metrics of a machine: cpu_busy_ratio, runq_p99_ms, runq_mean_ms, memory_available_mb, major_faults, oom_kills, io_latency_p99_ms, io_bytes, agent_dropped)"},
      {"rules:\n  - params: {k: 3}\n", "d.yaml:2: rules[0].detector: required, the name of a detector"},
      {"rulez: []\n", "d.yaml:1: top level: unknown key 'rulez' (expected rules, default)"},
      {"rules: {a: 1}\n", "d.yaml:1: rules: required, a list of rules"},
      {"rules: [\n", "d.yaml:2: not valid YAML: end of sequence flow not found"},
      {"rules: " + std::string(300, '[') + "\n", "d.yaml:1: nested deeper than 200 levels"},
  };
  for (const auto& [yaml, message] : cases) {
    auto c = ParseDetectorConfig(yaml, "d.yaml");
    ASSERT_FALSE(c.ok()) << yaml;
    EXPECT_EQ(c.status().message(), message) << yaml;
  }
}

TEST(DetectorConfig, NoRuleAndNoDefaultMatchesNothing) {
  auto c = ParseDetectorConfig("rules:\n  - match: {kind: machine}\n    detector: mad\n", "d.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Match(EntityKind::kService, "x", Metric::kRequests, {}), nullptr);
  EXPECT_EQ(c->Match(EntityKind::kMachine, "m1", Metric::kCpuBusyRatio, {})->detector, "mad");
}

TEST(DetectorConfig, LoadsAFileAndNamesAMissingOne) {
  const std::string path = testing::TempDir() + "/detectors.yaml";
  std::ofstream(path) << "rules:\n  - match: {metric: error_rate}\n    detector: threshold\n"
                         "    params: {upper: 0.05}\n  - match: {metric: retransmit}\n    detector: mad\n";
  // The file's own name prefixes its errors.
  EXPECT_EQ(LoadDetectorConfig(path).status().message(),
            path + ":5: rules[1].match.metric: unknown metric \"retransmit\" (known: " +
                KnownMetricNames() + ")");
  std::ofstream(path) << "rules:\n  - match: {metric: error_rate}\n    detector: threshold\n"
                         "    params: {upper: 0.05}\n";
  auto c = LoadDetectorConfig(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->rules.size(), 1u);
  EXPECT_EQ(c->rules[0].detector, "threshold");
  EXPECT_EQ(c->rules[0].metric, Metric::kErrorRate);
  std::filesystem::remove(path);
  EXPECT_EQ(LoadDetectorConfig(path).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(LoadDetectorConfig(path).status().message(),
            path + ": cannot open the detector configuration");
}

}  // namespace
}  // namespace faultline::detectors
