#include "faultline/topology/situation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "faultline/stream/partition_state.h"

namespace faultline::topology {
namespace {

using Json = nlohmann::json;
constexpr size_t kMaxSeries = 100000, kMaxValues = 100000;
constexpr std::string_view kSeriesKinds[] = {"", "service", "instance", "machine", "edge"};

// Reads one JSON object's fields, refusing unknown ones, with errors naming the JSON path.
class Reader {
 public:
  Reader(const std::string& source) : source_(source) {}
  Status Error(const std::string& path, const std::string& what) const {
    return InvalidArgument(source_ + ": " + path + ": " + what);
  }
  Status Fields(const Json& j, const std::string& path,
                std::initializer_list<std::string_view> known,
                std::initializer_list<std::string_view> required) const {
    if (!j.is_object()) return Error(path, "expected an object");
    for (const auto& [k, v] : j.items()) {
      if (std::find(known.begin(), known.end(), k) == known.end())
        return Error(path, "unknown field \"" + k + "\"");
    }
    for (std::string_view r : required) {
      if (!j.contains(std::string(r)))
        return Error(path, "missing field \"" + std::string(r) + "\"");
    }
    return Status::Ok();
  }
  Result<std::string> String(const Json& j, const std::string& path) const {
    if (!j.is_string()) return Error(path, "expected a string");
    return j.get<std::string>();
  }
  Result<int64_t> Int(const Json& j, const std::string& path) const {
    if (!j.is_number_integer()) return Error(path, "expected an integer");
    if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return Error(path, "out of range");
    return j.get<int64_t>();
  }
  // Times are Unix seconds; bounded so that window arithmetic cannot overflow.
  Result<int64_t> Time(const Json& j, const std::string& path) const {
    FAULTLINE_ASSIGN_OR_RETURN(int64_t t, Int(j, path));
    if (t < -(int64_t{1} << 40) || t > (int64_t{1} << 40))
      return Error(path, "not a time in seconds");
    return t;
  }
  Result<double> Number(const Json& j, const std::string& path) const {
    if (!j.is_number()) return Error(path, "expected a number");
    const double v = j.get<double>();
    if (!std::isfinite(v)) return Error(path, "out of range");
    return v;
  }

 private:
  const std::string& source_;
};

Result<SeriesRef> ReadRef(const Reader& r, const Json& j, const std::string& path) {
  SeriesRef ref;
  FAULTLINE_ASSIGN_OR_RETURN(std::string kind, r.String(j["kind"], path + ".kind"));
  auto k = ParseSeriesKind(kind);
  if (!k.ok()) return r.Error(path + ".kind", k.status().message());
  ref.kind = *k;
  FAULTLINE_ASSIGN_OR_RETURN(ref.entity, r.String(j["entity"], path + ".entity"));
  FAULTLINE_ASSIGN_OR_RETURN(ref.metric, r.String(j["metric"], path + ".metric"));
  if (ref.entity.empty()) return r.Error(path + ".entity", "empty");
  if (ref.metric.empty()) return r.Error(path + ".metric", "empty");
  return ref;
}

Json RefJson(const SeriesRef& ref) {
  return {{"kind", SeriesKindName(ref.kind)}, {"entity", ref.entity}, {"metric", ref.metric}};
}

}  // namespace

std::string_view SeriesKindName(SeriesKind kind) { return kSeriesKinds[static_cast<int>(kind)]; }

Result<SeriesKind> ParseSeriesKind(std::string_view name) {
  for (int k = 1; k <= 4; ++k)
    if (kSeriesKinds[k] == name) return static_cast<SeriesKind>(k);
  return InvalidArgument("kind \"" + std::string(name) +
                         "\": expected service, instance, machine or edge");
}

size_t Situation::windows() const {
  size_t n = 0;
  for (const auto& s : series) n = std::max(n, s.values.size());
  return n;
}

const MetricSeries* Situation::Find(const SeriesRef& ref) const {
  for (const auto& s : series)
    if (s.ref == ref) return &s;
  return nullptr;
}

std::vector<const MetricSeries*> Situation::SeriesOf(SeriesKind kind,
                                                     std::string_view entity) const {
  std::vector<const MetricSeries*> out;
  for (const auto& s : series)
    if (s.ref.kind == kind && s.ref.entity == entity) out.push_back(&s);
  return out;
}

Result<Situation> ParseSituationJson(std::string_view text, const std::string& source) {
  const Reader r(source);
  Json j;
  try {
    j = Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return InvalidArgument(source + ": not JSON: " + e.what());
  }
  FAULTLINE_RETURN_IF_ERROR(
      r.Fields(j, "$", {"window_s", "start_s", "alarm", "topology", "series", "verdicts"},
               {"window_s", "start_s", "alarm", "series"}));
  Situation s;
  FAULTLINE_ASSIGN_OR_RETURN(s.window_s, r.Int(j["window_s"], "window_s"));
  if (s.window_s <= 0 || s.window_s > 86400) return r.Error("window_s", "expected 1..86400");
  FAULTLINE_ASSIGN_OR_RETURN(s.start_s, r.Time(j["start_s"], "start_s"));

  const Json& a = j["alarm"];
  FAULTLINE_RETURN_IF_ERROR(r.Fields(a, "alarm", {"kind", "entity", "metric", "at_s"},
                                     {"kind", "entity", "metric", "at_s"}));
  FAULTLINE_ASSIGN_OR_RETURN(s.alarm.ref, ReadRef(r, a, "alarm"));
  FAULTLINE_ASSIGN_OR_RETURN(s.alarm.at_s, r.Time(a["at_s"], "alarm.at_s"));

  if (j.contains("topology")) {
    const Json& t = j["topology"];
    FAULTLINE_RETURN_IF_ERROR(r.Fields(t, "topology", {"nodes", "edges"}, {}));
    if (t.contains("nodes")) {
      if (!t["nodes"].is_array()) return r.Error("topology.nodes", "expected an array");
      for (size_t i = 0; i < t["nodes"].size(); ++i) {
        const Json& n = t["nodes"][i];
        const std::string path = "topology.nodes[" + std::to_string(i) + "]";
        FAULTLINE_RETURN_IF_ERROR(
            r.Fields(n, path, {"kind", "name", "first_seen_s", "last_seen_s"}, {"kind", "name"}));
        FAULTLINE_ASSIGN_OR_RETURN(std::string kind, r.String(n["kind"], path + ".kind"));
        auto k = ParseNodeKind(kind);
        if (!k.ok()) return r.Error(path + ".kind", k.status().message());
        FAULTLINE_ASSIGN_OR_RETURN(std::string name, r.String(n["name"], path + ".name"));
        int64_t seen = s.start_s;
        if (n.contains("last_seen_s")) {
          FAULTLINE_ASSIGN_OR_RETURN(seen, r.Time(n["last_seen_s"], path + ".last_seen_s"));
        }
        s.topology.ObserveNode({*k, name}, seen);
      }
    }
    if (t.contains("edges")) {
      if (!t["edges"].is_array()) return r.Error("topology.edges", "expected an array");
      for (size_t i = 0; i < t["edges"].size(); ++i) {
        const Json& e = t["edges"][i];
        const std::string path = "topology.edges[" + std::to_string(i) + "]";
        FAULTLINE_RETURN_IF_ERROR(r.Fields(e, path,
                                           {"kind", "from_kind", "from", "to_kind", "to",
                                            "first_seen_s", "last_seen_s", "requests"},
                                           {"kind", "from", "to"}));
        FAULTLINE_ASSIGN_OR_RETURN(std::string kind, r.String(e["kind"], path + ".kind"));
        auto k = ParseEdgeKind(kind);
        if (!k.ok()) return r.Error(path + ".kind", k.status().message());
        // Ends default to what the edge kind implies.
        static constexpr NodeKind kFrom[] = {NodeKind::kService, NodeKind::kService,
                                             NodeKind::kInstance, NodeKind::kInstance,
                                             NodeKind::kMachine};
        static constexpr NodeKind kTo[] = {NodeKind::kService, NodeKind::kService,
                                           NodeKind::kService, NodeKind::kMachine,
                                           NodeKind::kMachine};
        NodeRef from{kFrom[static_cast<int>(*k)], ""}, to{kTo[static_cast<int>(*k)], ""};
        for (auto [field, ref] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
          const std::string kf = std::string(field) + "_kind";
          if (e.contains(kf)) {
            FAULTLINE_ASSIGN_OR_RETURN(std::string nk, r.String(e[kf], path + "." + kf));
            auto parsed = ParseNodeKind(nk);
            if (!parsed.ok()) return r.Error(path + "." + kf, parsed.status().message());
            ref->kind = *parsed;
          }
          FAULTLINE_ASSIGN_OR_RETURN(ref->name, r.String(e[field], path + "." + field));
        }
        uint64_t requests = 0;
        if (e.contains("requests")) {
          FAULTLINE_ASSIGN_OR_RETURN(int64_t n, r.Int(e["requests"], path + ".requests"));
          if (n < 0) return r.Error(path + ".requests", "negative");
          requests = static_cast<uint64_t>(n);
        }
        int64_t seen = s.start_s;
        if (e.contains("last_seen_s")) {
          FAULTLINE_ASSIGN_OR_RETURN(seen, r.Time(e["last_seen_s"], path + ".last_seen_s"));
        }
        s.topology.ObserveEdge(*k, from, to, seen, requests);
      }
    }
  }

  const Json& series = j["series"];
  if (!series.is_array()) return r.Error("series", "expected an array");
  if (series.size() > kMaxSeries) return r.Error("series", "more than 100000 series");
  std::map<SeriesRef, size_t> seen;
  for (size_t i = 0; i < series.size(); ++i) {
    const Json& m = series[i];
    const std::string path = "series[" + std::to_string(i) + "]";
    FAULTLINE_RETURN_IF_ERROR(r.Fields(m, path, {"kind", "entity", "metric", "values"},
                                       {"kind", "entity", "metric", "values"}));
    MetricSeries ms;
    FAULTLINE_ASSIGN_OR_RETURN(ms.ref, ReadRef(r, m, path));
    if (auto [it, fresh] = seen.emplace(ms.ref, i); !fresh)
      return r.Error(path, "the same series as series[" + std::to_string(it->second) + "]");
    const Json& v = m["values"];
    if (!v.is_array()) return r.Error(path + ".values", "expected an array");
    if (v.size() > kMaxValues) return r.Error(path + ".values", "more than 100000 values");
    ms.values.reserve(v.size());
    for (size_t k = 0; k < v.size(); ++k) {
      if (v[k].is_null()) {
        ms.values.push_back(std::numeric_limits<double>::quiet_NaN());
        continue;
      }
      const std::string vpath = path + ".values[" + std::to_string(k) + "]";
      if (!v[k].is_number()) return r.Error(vpath, "expected a number or null");
      const double x = v[k].get<double>();
      if (!std::isfinite(x) || std::abs(x) >= 1e150) return r.Error(vpath, "out of range");
      ms.values.push_back(x);
    }
    s.series.push_back(std::move(ms));
  }

  if (j.contains("verdicts")) {
    const Json& vs = j["verdicts"];
    if (!vs.is_array()) return r.Error("verdicts", "expected an array");
    if (vs.size() > kMaxSeries) return r.Error("verdicts", "more than 100000 verdicts");
    for (size_t i = 0; i < vs.size(); ++i) {
      const Json& v = vs[i];
      const std::string path = "verdicts[" + std::to_string(i) + "]";
      FAULTLINE_RETURN_IF_ERROR(
          r.Fields(v, path, {"kind", "entity", "metric", "at_s", "anomalous", "score", "detector"},
                   {"kind", "entity", "metric", "at_s", "anomalous"}));
      Verdict out;
      FAULTLINE_ASSIGN_OR_RETURN(out.ref, ReadRef(r, v, path));
      FAULTLINE_ASSIGN_OR_RETURN(out.at_s, r.Time(v["at_s"], path + ".at_s"));
      if (!v["anomalous"].is_boolean())
        return r.Error(path + ".anomalous", "expected true or false");
      out.anomalous = v["anomalous"].get<bool>();
      if (v.contains("score")) {
        FAULTLINE_ASSIGN_OR_RETURN(out.score, r.Number(v["score"], path + ".score"));
      }
      if (v.contains("detector")) {
        FAULTLINE_ASSIGN_OR_RETURN(out.detector, r.String(v["detector"], path + ".detector"));
      }
      s.verdicts.push_back(std::move(out));
    }
  }
  return s;
}

std::string SituationToJson(const Situation& s) {
  nlohmann::ordered_json j;
  j["window_s"] = s.window_s;
  j["start_s"] = s.start_s;
  j["alarm"] = {{"kind", SeriesKindName(s.alarm.ref.kind)},
                {"entity", s.alarm.ref.entity},
                {"metric", s.alarm.ref.metric},
                {"at_s", s.alarm.at_s}};
  nlohmann::ordered_json nodes = nlohmann::ordered_json::array(),
                         edges = nlohmann::ordered_json::array();
  for (const NodeInfo& n : s.topology.Nodes())
    nodes.push_back({{"kind", NodeKindName(n.ref.kind)}, {"name", n.ref.name}});
  for (const EdgeInfo& e : s.topology.Edges()) {
    nlohmann::ordered_json o = {{"kind", EdgeKindName(e.kind)},
                                {"from_kind", NodeKindName(e.from.kind)},
                                {"from", e.from.name},
                                {"to_kind", NodeKindName(e.to.kind)},
                                {"to", e.to.name}};
    if (e.kind == EdgeKind::kCalls) o["requests"] = e.requests;
    edges.push_back(std::move(o));
  }
  j["topology"] = {{"nodes", std::move(nodes)}, {"edges", std::move(edges)}};
  nlohmann::ordered_json series = nlohmann::ordered_json::array();
  for (const MetricSeries& m : s.series) {
    nlohmann::ordered_json values = nlohmann::ordered_json::array();
    for (double v : m.values) {
      if (std::isnan(v)) {
        values.push_back(nullptr);
      } else {
        values.push_back(v);
      }
    }
    series.push_back({{"kind", SeriesKindName(m.ref.kind)},
                      {"entity", m.ref.entity},
                      {"metric", m.ref.metric},
                      {"values", std::move(values)}});
  }
  j["series"] = std::move(series);
  nlohmann::ordered_json verdicts = nlohmann::ordered_json::array();
  for (const Verdict& v : s.verdicts) {
    verdicts.push_back({{"kind", SeriesKindName(v.ref.kind)},
                        {"entity", v.ref.entity},
                        {"metric", v.ref.metric},
                        {"at_s", v.at_s},
                        {"anomalous", v.anomalous},
                        {"score", v.score},
                        {"detector", v.detector}});
  }
  j["verdicts"] = std::move(verdicts);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Situation BuildSituation(const std::vector<stream::StoredWindow>& windows, int64_t window_s,
                         int64_t from_s, int64_t to_s, const Alarm& alarm) {
  using stream::EntityKind;
  Situation s;
  s.window_s = window_s;
  s.start_s = from_s - from_s % window_s;
  s.alarm = alarm;
  const size_t n =
      to_s > s.start_s ? static_cast<size_t>((to_s - s.start_s + window_s - 1) / window_s) : 0;
  // Per (kind, entity), per window: merged stats.
  std::map<std::pair<SeriesKind, std::string>, std::vector<stream::WindowStats>> merged;
  std::vector<stream::StoredWindow> in_range;
  for (const auto& w : windows) {
    if (w.start_s < s.start_s || w.start_s >= to_s) continue;
    in_range.push_back(w);
    std::pair<SeriesKind, std::string> id;
    switch (w.key.kind) {
      case EntityKind::kService:
        id = {SeriesKind::kService, std::string(w.key.Dim("service"))};
        break;
      case EntityKind::kEdge:
        if (w.key.Dim("side") == "server") continue;  // the caller's view is the edge's
        id = {SeriesKind::kEdge,
              std::string(w.key.Dim("caller")) + "->" +
                  (w.callee_service.empty() ? std::string(w.key.Dim("callee")) : w.callee_service)};
        break;
      case EntityKind::kMachine:
        id = {SeriesKind::kMachine, std::string(w.key.Dim("machine"))};
        break;
      case EntityKind::kListener:
        continue;
    }
    auto& slots = merged[id];
    slots.resize(n);
    // Merge errors (different sketch accuracies) cannot happen within one stream's state.
    (void)slots[static_cast<size_t>((w.start_s - s.start_s) / window_s)].Merge(w.stats);
  }
  s.topology.ObserveWindows(in_range, window_s);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& entry : merged) {
    const auto& id = entry.first;  // not a structured binding: clang 14 cannot capture those
    const auto& slots = entry.second;
    auto add = [&](const char* metric, auto value_of) {
      MetricSeries m;
      m.ref = {id.first, id.second, metric};
      for (const auto& w : slots) m.values.push_back(value_of(w));
      s.series.push_back(std::move(m));
    };
    if (id.first == SeriesKind::kMachine) {
      add("agent_dropped", [](const stream::WindowStats& w) { return double(w.agent_dropped); });
      bool resources = false;
      for (const auto& w : slots) resources = resources || w.resource_samples;
      if (!resources) continue;
      add("cpu_busy_ratio", [&](const stream::WindowStats& w) {
        return w.cpu_total_ns ? double(w.cpu_busy_ns) / double(w.cpu_total_ns) : nan;
      });
      add("runq_p99_ms", [&](const stream::WindowStats& w) {
        return w.runq_ns.count() ? w.runq_ns.Quantile(0.99) / 1e6 : nan;
      });
      add("runq_mean_ms", [&](const stream::WindowStats& w) {
        return w.runq_ns.count() ? w.runq_ns.mean() / 1e6 : nan;
      });
      add("major_faults", [&](const stream::WindowStats& w) {
        return w.resource_samples ? double(w.major_faults) : nan;
      });
      add("memory_available_mb", [&](const stream::WindowStats& w) {
        return w.resource_samples
                   ? double(w.memory_available_sum) / double(w.resource_samples) / 1048576
                   : nan;
      });
      add("io_latency_p99_ms", [&](const stream::WindowStats& w) {
        return w.io_ns.count() ? w.io_ns.Quantile(0.99) / 1e6 : nan;
      });
      add("io_bytes", [&](const stream::WindowStats& w) {
        return w.resource_samples ? double(w.io_read_bytes + w.io_write_bytes) : nan;
      });
      continue;
    }
    add("requests", [](const stream::WindowStats& w) { return double(w.requests); });
    add("errors", [](const stream::WindowStats& w) { return double(w.status_5xx); });
    add("error_rate", [&](const stream::WindowStats& w) {
      return w.requests ? double(w.status_5xx) / double(w.requests) : nan;
    });
    add("latency_mean_ms", [&](const stream::WindowStats& w) {
      return w.latency_ns.count() ? w.latency_ns.mean() / 1e6 : nan;
    });
    add("latency_p99_ms", [&](const stream::WindowStats& w) {
      return w.latency_ns.count() ? w.latency_ns.Quantile(0.99) / 1e6 : nan;
    });
    if (id.first != SeriesKind::kEdge) continue;
    add("retransmits", [](const stream::WindowStats& w) { return double(w.retransmits); });
    add("drops", [](const stream::WindowStats& w) {
      uint64_t d = 0;
      for (const auto& [reason, count] : w.drops) d += count;
      return double(d);
    });
    add("resets",
        [](const stream::WindowStats& w) { return double(w.resets_sent + w.resets_received); });
    add("connects_failed", [](const stream::WindowStats& w) {
      return double(w.connects_failed + w.connects_refused);
    });
    add("rtt_mean_ms", [&](const stream::WindowStats& w) {
      return w.rtt_samples ? w.rtt_us_sum / double(w.rtt_samples) / 1e3 : nan;
    });
  }
  return s;
}

}  // namespace faultline::topology
