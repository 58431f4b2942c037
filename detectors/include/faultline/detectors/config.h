// The detector configuration: which detector, with which parameters, watches which series.
//
//   rules:                       # first match wins
//     - match: {kind: service, metric: latency_p99_ms, entity: checkout}
//       detector: ewma
//       params: {alpha: 0.1, k: 4}
//     - match: {metric: error_rate, labels: {endpoint: GET /cart}}   # omitted keys match anything
//       detector: threshold
//       params: {upper: 0.05}
//   default: {detector: ewma}               # optional: series no rule matches
//
// `kind` is an entity kind and `metric` a name of the metric catalog (faultline/common/catalog.h;
// `faultline detectors metrics` lists them); a metric given with a kind must apply to it.
// `entity` is the entity's name ("checkout", "gateway->api", "node-3"); every label listed must
// be equal to the series' dimension of that name.
//
// Loading validates everything up front: unknown keys, kinds, metrics and detectors, and bad
// parameters are errors naming the source, line and field (unknown names list the known ones).
// Thread-safe to read after loading.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/catalog.h"
#include "faultline/common/status.h"
#include "faultline/detectors/detector.h"

namespace faultline::detectors {

struct DetectorRule {
  // Unset / empty match anything; every label listed must be equal.
  std::optional<EntityKind> kind;
  std::optional<Metric> metric;
  std::string entity;
  std::map<std::string, std::string> labels;
  std::string detector;
  Params params;
  int line = 0;  // where the rule starts in the source (1-based)
};

struct DetectorConfig {
  std::vector<DetectorRule> rules;
  std::optional<DetectorRule> fallback;

  // The rule for a series, or nullptr when nothing matches and there is no default.
  const DetectorRule* Match(EntityKind kind, std::string_view entity, Metric metric,
                            const std::map<std::string, std::string>& labels) const;
};

// Parses YAML text; `source` (a file name) prefixes every error: "<source>:<line>: <problem>".
Result<DetectorConfig> ParseDetectorConfig(const std::string& yaml, const std::string& source);
Result<DetectorConfig> LoadDetectorConfig(const std::string& path);

}  // namespace faultline::detectors
