#include "faultline/detectors/config.h"

#include <gtest/gtest.h>

namespace faultline::detectors {
namespace {

TEST(DetectorConfig, FirstMatchingRuleWinsAndTheDefaultCatchesTheRest) {
  auto c = ParseDetectorConfig(R"(
rules:
  - match: {entity: service, metric: latency_p99, labels: {service: checkout}}
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
  const DetectorRule* r = c->Match("service", "latency_p99", {{"service", "checkout"}, {"instance", "a"}});
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->detector, "ewma");
  EXPECT_EQ(r->params.at("k"), "4");
  EXPECT_EQ(c->Match("edge", "error_rate", {})->detector, "threshold");
  EXPECT_EQ(c->Match("service", "latency_p99", {{"service", "cart"}})->detector, "cusum");
}

TEST(DetectorConfig, ErrorsNameTheLineAndTheField) {
  const std::map<std::string, std::string> cases = {
      {"rules:\n  - detector: nope\n", "d.yaml:2: rules[0]: no detector named 'nope' (known: burn_rate, combined, cusum, dspot, ewma, mad, nsigma, seasonal, spot, threshold)"},
      {"rules:\n  - detector: ewma\n    params: {alpha: 7}\n", "d.yaml:2: rules[0]: ewma: parameter alpha=7: must be in [0.000001, 1.000000]"},
      {"rules:\n  - match: {metrc: x}\n    detector: ewma\n", "d.yaml:2: rules[0].match: unknown key 'metrc' (expected entity, metric, labels)"},
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
  auto c = ParseDetectorConfig("rules:\n  - match: {entity: machine}\n    detector: mad\n", "d.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Match("service", "x", {}), nullptr);
  EXPECT_EQ(c->Match("machine", "cpu", {})->detector, "mad");
}

}  // namespace
}  // namespace faultline::detectors
