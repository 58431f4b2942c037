// The detector configuration: which detector, with which parameters, watches which series.
//
//   rules:                       # first match wins
//     - match: {entity: service, metric: latency_p99, labels: {service: checkout}}
//       detector: ewma
//       params: {alpha: 0.1, k: 4}
//     - match: {metric: error_rate}          # omitted keys match anything
//       detector: threshold
//       params: {upper: 0.05}
//   default: {detector: ewma}               # optional: series no rule matches
//
// Loading validates everything up front: unknown keys, unknown detectors and bad parameters are
// errors naming the source, line and field. Thread-safe to read after loading.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/detectors/detector.h"

namespace faultline::detectors {

struct DetectorRule {
  // Empty entity/metric match anything; every label listed must be equal.
  std::string entity, metric;
  std::map<std::string, std::string> labels;
  std::string detector;
  Params params;
  int line = 0;  // where the rule starts in the source (1-based)
};

struct DetectorConfig {
  std::vector<DetectorRule> rules;
  std::optional<DetectorRule> fallback;

  // The rule for a series, or nullptr when nothing matches and there is no default.
  const DetectorRule* Match(const std::string& entity, const std::string& metric,
                            const std::map<std::string, std::string>& labels) const;
};

// Parses YAML text; `source` (a file name) prefixes every error: "<source>:<line>: <problem>".
Result<DetectorConfig> ParseDetectorConfig(const std::string& yaml, const std::string& source);
Result<DetectorConfig> LoadDetectorConfig(const std::string& path);

}  // namespace faultline::detectors
