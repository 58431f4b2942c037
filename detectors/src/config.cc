#include "faultline/detectors/config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "faultline/common/text.h"
#include "faultline/common/yaml_load.h"

namespace faultline::detectors {
namespace {

std::string At(const std::string& source, const YAML::Node& n) {
  return source + ":" + std::to_string(n.Mark().line + 1) + ": ";
}

Result<std::map<std::string, std::string>> StringMap(const std::string& source, const YAML::Node& n,
                                                     const std::string& field) {
  std::map<std::string, std::string> out;
  if (!n) return out;
  if (!n.IsMap()) return InvalidArgument(At(source, n) + field + ": expected a mapping of names to values");
  for (const auto& kv : n) {
    if (!kv.second.IsScalar()) {
      return InvalidArgument(At(source, kv.second) + field + "." + kv.first.as<std::string>() + ": expected a scalar");
    }
    out[kv.first.as<std::string>()] = kv.second.as<std::string>();
  }
  return out;
}

Status CheckKeys(const std::string& source, const YAML::Node& n, const std::string& where,
                 const std::vector<std::string>& known) {
  for (const auto& kv : n) {
    const std::string key = kv.first.as<std::string>();
    bool ok = false;
    for (const auto& k : known) ok = ok || k == key;
    if (!ok) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return InvalidArgument(At(source, kv.first) + where + ": unknown key '" + key + "' (expected " + list + ")");
    }
  }
  return Status::Ok();
}

Result<DetectorRule> ParseRule(const std::string& source, const YAML::Node& n, const std::string& where, bool with_match) {
  if (!n.IsMap()) return InvalidArgument(At(source, n) + where + ": expected a mapping");
  FAULTLINE_RETURN_IF_ERROR(CheckKeys(source, n, where, with_match ? std::vector<std::string>{"match", "detector", "params"}
                                                                     : std::vector<std::string>{"detector", "params"}));
  DetectorRule rule;
  rule.line = n.Mark().line + 1;
  if (!n["detector"] || !n["detector"].IsScalar()) {
    return InvalidArgument(At(source, n) + where + ".detector: required, the name of a detector");
  }
  rule.detector = n["detector"].as<std::string>();
  FAULTLINE_ASSIGN_OR_RETURN(rule.params, StringMap(source, n["params"], where + ".params"));
  if (with_match && n["match"]) {
    const YAML::Node m = n["match"];
    if (!m.IsMap()) return InvalidArgument(At(source, m) + where + ".match: expected a mapping");
    FAULTLINE_RETURN_IF_ERROR(
        CheckKeys(source, m, where + ".match", {"kind", "entity", "metric", "labels"}));
    for (const char* key : {"kind", "entity", "metric"}) {
      if (m[key] && !m[key].IsScalar()) return InvalidArgument(At(source, m[key]) + where + ".match." + key + ": expected a string");
    }
    if (m["entity"]) rule.entity = m["entity"].as<std::string>();
    if (rule.entity == "*") rule.entity.clear();
    if (m["kind"] && m["kind"].as<std::string>() != "*") {
      auto kind = ParseEntityKind(m["kind"].as<std::string>());
      if (!kind.ok()) return InvalidArgument(At(source, m["kind"]) + where + ".match.kind: " + kind.status().message());
      rule.kind = *kind;
    }
    if (m["metric"] && m["metric"].as<std::string>() != "*") {
      const std::string name = m["metric"].as<std::string>();
      auto metric = rule.kind ? ParseMetricFor(name, *rule.kind) : ParseMetric(name);
      if (!metric.ok()) return InvalidArgument(At(source, m["metric"]) + where + ".match.metric: " + metric.status().message());
      rule.metric = *metric;
    }
    FAULTLINE_ASSIGN_OR_RETURN(rule.labels, StringMap(source, m["labels"], where + ".match.labels"));
  }
  // Validate the detector and its parameters now, not when the first series arrives.
  auto probe = DetectorRegistry::Global().Create(rule.detector, rule.params);
  if (!probe.ok()) return InvalidArgument(At(source, n) + where + ": " + probe.status().message());
  return rule;
}

}  // namespace

const DetectorRule* DetectorConfig::Match(EntityKind kind, std::string_view entity, Metric metric,
                                          const std::map<std::string, std::string>& labels) const {
  for (const DetectorRule& r : rules) {
    if (r.kind && *r.kind != kind) continue;
    if (r.metric && *r.metric != metric) continue;
    if (!r.entity.empty() && r.entity != entity) continue;
    bool all = true;
    for (const auto& [k, v] : r.labels) {
      auto it = labels.find(k);
      all = all && it != labels.end() && it->second == v;
    }
    if (all) return &r;
  }
  return fallback ? &*fallback : nullptr;
}

Result<DetectorConfig> ParseDetectorConfig(const std::string& yaml, const std::string& source) {
  YAML::Node root;
  FAULTLINE_RETURN_IF_ERROR(LoadYaml(yaml, source, &root));
  DetectorConfig config;
  try {
    if (!root.IsMap()) return InvalidArgument(source + ":1: expected a mapping with 'rules' (and optionally 'default')");
    FAULTLINE_RETURN_IF_ERROR(CheckKeys(source, root, "top level", {"rules", "default"}));
    const YAML::Node rules = root["rules"];
    if (!rules || !rules.IsSequence()) return InvalidArgument(At(source, root) + "rules: required, a list of rules");
    for (size_t i = 0; i < rules.size(); ++i) {
      FAULTLINE_ASSIGN_OR_RETURN(DetectorRule rule, ParseRule(source, rules[i], "rules[" + std::to_string(i) + "]", true));
      config.rules.push_back(std::move(rule));
    }
    if (root["default"]) {
      FAULTLINE_ASSIGN_OR_RETURN(DetectorRule rule, ParseRule(source, root["default"], "default", false));
      config.fallback = std::move(rule);
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return config;
}

Result<DetectorConfig> LoadDetectorConfig(const std::string& path) {
  std::ifstream f(path);
  if (!f) return NotFound(path + ": cannot open the detector configuration");
  std::stringstream ss;
  ss << f.rdbuf();
  return ParseDetectorConfig(ss.str(), path);
}

}  // namespace faultline::detectors
