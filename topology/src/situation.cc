#include "faultline/topology/situation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "faultline/model/identity.h"
#include "faultline/model/window_stats.h"

namespace faultline::topology {
namespace {

using Json = nlohmann::json;
constexpr size_t kMaxSeries = 100000, kMaxValues = 100000, kMaxLeaves = 100000;

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
  if (ref.entity.empty()) return r.Error(path + ".entity", "empty");
  FAULTLINE_ASSIGN_OR_RETURN(std::string metric, r.String(j["metric"], path + ".metric"));
  auto m = ParseMetricFor(metric, ref.kind);
  if (!m.ok()) return r.Error(path + ".metric", m.status().message());
  ref.metric = *m;
  return ref;
}

// A JSON array of numbers or nulls (NaN), each finite and below 1e150 in magnitude.
Status ReadValues(const Reader& r, const Json& v, const std::string& path,
                  std::vector<double>* out) {
  if (!v.is_array()) return r.Error(path, "expected an array");
  if (v.size() > kMaxValues) return r.Error(path, "more than 100000 values");
  out->reserve(v.size());
  for (size_t k = 0; k < v.size(); ++k) {
    if (v[k].is_null()) {
      out->push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    const std::string vpath = path + "[" + std::to_string(k) + "]";
    if (!v[k].is_number()) return r.Error(vpath, "expected a number or null");
    const double x = v[k].get<double>();
    if (!std::isfinite(x) || std::abs(x) >= 1e150) return r.Error(vpath, "out of range");
    out->push_back(x);
  }
  return Status::Ok();
}

nlohmann::ordered_json ValuesJson(const std::vector<double>& values) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (double v : values) {
    if (std::isnan(v)) {
      out.push_back(nullptr);
    } else {
      out.push_back(v);
    }
  }
  return out;
}

}  // namespace

Result<EntityKind> ParseSeriesKind(std::string_view name) {
  return ParseEntityKind(name, kSeriesKinds);
}

std::string SeriesName(const SeriesRef& ref) {
  return ref.entity + " " + std::string(MetricName(ref.metric));
}

Result<SeriesRef> ParseSeriesRef(std::string_view text, KindSet kinds) {
  const std::string where = "\"" + std::string(text) + "\": ";
  const size_t a = text.find(':'), b = text.rfind(':');
  if (a == std::string_view::npos || b == a || b == a + 1)
    return InvalidArgument(where + "expected KIND:ENTITY:METRIC with KIND " + kinds.Describe());
  SeriesRef ref;
  auto kind = ParseEntityKind(text.substr(0, a), kinds);
  if (!kind.ok()) return InvalidArgument(where + kind.status().message());
  ref.kind = *kind;
  ref.entity = std::string(text.substr(a + 1, b - a - 1));
  auto metric = ParseMetricFor(text.substr(b + 1), ref.kind);
  if (!metric.ok()) return InvalidArgument(where + metric.status().message());
  ref.metric = *metric;
  return ref;
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

std::vector<const MetricSeries*> Situation::SeriesOf(EntityKind kind,
                                                     std::string_view entity) const {
  std::vector<const MetricSeries*> out;
  for (const auto& s : series)
    if (s.ref.kind == kind && s.ref.entity == entity) out.push_back(&s);
  return out;
}

const Breakdown* Situation::BreakdownOf(std::string_view service) const {
  for (const Breakdown& b : breakdowns)
    if (b.service == service) return &b;
  return nullptr;
}

Result<Situation> ParseSituationJson(std::string_view text, const std::string& source) {
  const Reader r(source);
  Json j;
  try {
    j = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {  // parse_error, and out_of_range for a number too large
    return InvalidArgument(source + ": not JSON: " + e.what());
  }
  FAULTLINE_RETURN_IF_ERROR(
      r.Fields(j, "$",
               {"window_s", "start_s", "alarm", "topology", "series", "breakdowns", "verdicts"},
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
        static constexpr EntityKind kFrom[] = {EntityKind::kService, EntityKind::kService,
                                             EntityKind::kInstance, EntityKind::kInstance,
                                             EntityKind::kMachine};
        static constexpr EntityKind kTo[] = {EntityKind::kService, EntityKind::kService,
                                           EntityKind::kService, EntityKind::kMachine,
                                           EntityKind::kMachine};
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
    FAULTLINE_RETURN_IF_ERROR(ReadValues(r, m["values"], path + ".values", &ms.values));
    s.series.push_back(std::move(ms));
  }

  if (j.contains("breakdowns")) {
    const Json& bs = j["breakdowns"];
    if (!bs.is_array()) return r.Error("breakdowns", "expected an array");
    size_t leaves = 0;
    for (size_t i = 0; i < bs.size(); ++i) {
      const Json& b = bs[i];
      const std::string path = "breakdowns[" + std::to_string(i) + "]";
      FAULTLINE_RETURN_IF_ERROR(
          r.Fields(b, path, {"service", "dims", "leaves"}, {"service", "dims", "leaves"}));
      Breakdown out;
      FAULTLINE_ASSIGN_OR_RETURN(out.service, r.String(b["service"], path + ".service"));
      if (out.service.empty()) return r.Error(path + ".service", "empty");
      if (s.BreakdownOf(out.service))
        return r.Error(path + ".service", "a second breakdown of " + out.service);
      const Json& dims = b["dims"];
      if (!dims.is_array() || dims.empty() || dims.size() > 8)
        return r.Error(path + ".dims", "expected an array of 1 to 8 dimension names");
      for (size_t d = 0; d < dims.size(); ++d) {
        FAULTLINE_ASSIGN_OR_RETURN(std::string name, r.String(dims[d], path + ".dims[" +
                                                                           std::to_string(d) + "]"));
        if (std::find(out.dims.begin(), out.dims.end(), name) != out.dims.end())
          return r.Error(path + ".dims[" + std::to_string(d) + "]", "\"" + name + "\" twice");
        out.dims.push_back(std::move(name));
      }
      const Json& ls = b["leaves"];
      if (!ls.is_array()) return r.Error(path + ".leaves", "expected an array");
      leaves += ls.size();
      if (leaves > kMaxLeaves) return r.Error(path + ".leaves", "more than 100000 leaves in all");
      for (size_t l = 0; l < ls.size(); ++l) {
        const Json& leaf = ls[l];
        const std::string lpath = path + ".leaves[" + std::to_string(l) + "]";
        FAULTLINE_RETURN_IF_ERROR(
            r.Fields(leaf, lpath, {"values", "requests", "errors", "latency_sum_ms"},
                     {"values", "requests", "errors", "latency_sum_ms"}));
        BreakdownLeaf bl;
        const Json& vs = leaf["values"];
        if (!vs.is_array() || vs.size() != out.dims.size())
          return r.Error(lpath + ".values",
                         "expected " + std::to_string(out.dims.size()) + " dimension values");
        for (size_t d = 0; d < vs.size(); ++d) {
          FAULTLINE_ASSIGN_OR_RETURN(
              std::string v, r.String(vs[d], lpath + ".values[" + std::to_string(d) + "]"));
          bl.values.push_back(std::move(v));
        }
        FAULTLINE_RETURN_IF_ERROR(
            ReadValues(r, leaf["requests"], lpath + ".requests", &bl.requests));
        FAULTLINE_RETURN_IF_ERROR(ReadValues(r, leaf["errors"], lpath + ".errors", &bl.errors));
        FAULTLINE_RETURN_IF_ERROR(
            ReadValues(r, leaf["latency_sum_ms"], lpath + ".latency_sum_ms", &bl.latency_sum_ms));
        if (bl.errors.size() != bl.requests.size() ||
            bl.latency_sum_ms.size() != bl.requests.size())
          return r.Error(lpath, "requests, errors and latency_sum_ms differ in length");
        out.leaves.push_back(std::move(bl));
      }
      s.breakdowns.push_back(std::move(out));
    }
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
      RecordedVerdict out;
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
  j["alarm"] = {{"kind", EntityKindName(s.alarm.ref.kind)},
                {"entity", s.alarm.ref.entity},
                {"metric", MetricName(s.alarm.ref.metric)},
                {"at_s", s.alarm.at_s}};
  nlohmann::ordered_json nodes = nlohmann::ordered_json::array(),
                         edges = nlohmann::ordered_json::array();
  for (const NodeInfo& n : s.topology.Nodes())
    nodes.push_back({{"kind", EntityKindName(n.ref.kind)}, {"name", n.ref.name}});
  for (const EdgeInfo& e : s.topology.Edges()) {
    nlohmann::ordered_json o = {{"kind", EdgeKindName(e.kind)},
                                {"from_kind", EntityKindName(e.from.kind)},
                                {"from", e.from.name},
                                {"to_kind", EntityKindName(e.to.kind)},
                                {"to", e.to.name}};
    if (e.kind == EdgeKind::kCalls) o["requests"] = e.requests;
    edges.push_back(std::move(o));
  }
  j["topology"] = {{"nodes", std::move(nodes)}, {"edges", std::move(edges)}};
  nlohmann::ordered_json series = nlohmann::ordered_json::array();
  for (const MetricSeries& m : s.series) {
    series.push_back({{"kind", EntityKindName(m.ref.kind)},
                      {"entity", m.ref.entity},
                      {"metric", MetricName(m.ref.metric)},
                      {"values", ValuesJson(m.values)}});
  }
  j["series"] = std::move(series);
  nlohmann::ordered_json breakdowns = nlohmann::ordered_json::array();
  for (const Breakdown& b : s.breakdowns) {
    nlohmann::ordered_json leaves = nlohmann::ordered_json::array();
    for (const BreakdownLeaf& l : b.leaves) {
      leaves.push_back({{"values", l.values},
                        {"requests", ValuesJson(l.requests)},
                        {"errors", ValuesJson(l.errors)},
                        {"latency_sum_ms", ValuesJson(l.latency_sum_ms)}});
    }
    breakdowns.push_back(
        {{"service", b.service}, {"dims", b.dims}, {"leaves", std::move(leaves)}});
  }
  j["breakdowns"] = std::move(breakdowns);
  nlohmann::ordered_json verdicts = nlohmann::ordered_json::array();
  for (const RecordedVerdict& v : s.verdicts) {
    verdicts.push_back({{"kind", EntityKindName(v.ref.kind)},
                        {"entity", v.ref.entity},
                        {"metric", MetricName(v.ref.metric)},
                        {"at_s", v.at_s},
                        {"anomalous", v.anomalous},
                        {"score", v.score},
                        {"detector", v.detector}});
  }
  j["verdicts"] = std::move(verdicts);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Situation BuildSituation(const std::vector<model::StoredWindow>& windows, int64_t window_s,
                         int64_t from_s, int64_t to_s, const Alarm& alarm) {
  Situation s;
  s.window_s = window_s;
  s.start_s = from_s - from_s % window_s;
  s.alarm = alarm;
  const size_t n =
      to_s > s.start_s ? static_cast<size_t>((to_s - s.start_s + window_s - 1) / window_s) : 0;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Per (kind, entity), per window: merged stats.
  std::map<model::EntityRef, std::vector<model::WindowStats>> merged;
  // Per service, per (endpoint, instance, machine) leaf.
  std::map<std::string, std::map<std::vector<std::string>, BreakdownLeaf>> leaves;
  // Per (kind, entity): its first window in the range. A window with no record is a window of no
  // traffic only once the entity exists: before its first record the series is unknown (NaN), so
  // a service that started a minute ago has no baseline of zero requests to surge from.
  std::map<model::EntityRef, size_t> first_slot;
  std::vector<model::StoredWindow> in_range;
  for (const auto& w : windows) {
    if (w.start_s < s.start_s || w.start_s >= to_s) continue;
    in_range.push_back(w);
    const size_t slot = static_cast<size_t>((w.start_s - s.start_s) / window_s);
    const std::optional<model::EntityRef> id = model::SeriesOf(w);
    if (!id) continue;  // listeners: the topology's identity join reads them
    if (id->kind == EntityKind::kService) {
      BreakdownLeaf& leaf = leaves[id->name][{std::string(w.key.Dim(dim::kEndpoint)),
                                              std::string(w.key.Dim(dim::kInstance)),
                                              std::string(w.key.Dim(dim::kMachine))}];
      if (leaf.requests.empty()) {
        leaf.requests.assign(n, nan), leaf.errors.assign(n, nan);
        leaf.latency_sum_ms.assign(n, nan);
      }
      auto add = [&](double* slot_value, double v) {
        *slot_value = std::isnan(*slot_value) ? v : *slot_value + v;
      };
      add(&leaf.requests[slot], static_cast<double>(w.stats.requests));
      add(&leaf.errors[slot], static_cast<double>(w.stats.status_5xx));
      add(&leaf.latency_sum_ms[slot], w.stats.latency_ns.mean() *
                                          static_cast<double>(w.stats.latency_ns.count()) / 1e6);
    }
    auto& slots = merged[*id];
    slots.resize(n);
    auto [first, fresh] = first_slot.try_emplace(*id, slot);
    if (!fresh) first->second = std::min(first->second, slot);
    // Merge errors (different sketch accuracies) cannot happen within one stream's state.
    (void)slots[slot].Merge(w.stats);
  }
  s.topology.ObserveWindows(in_range, window_s);
  for (const auto& [id, slots] : merged) {
    bool resources = false;
    for (const auto& w : slots) resources = resources || w.resource_samples;
    for (const MetricInfo& m : Metrics()) {
      if (!m.kinds.Has(id.kind)) continue;
      // Machines without resource summaries carry only what the agent reports about itself.
      if (id.kind == EntityKind::kMachine && !resources && m.id != Metric::kAgentDropped) continue;
      MetricSeries series;
      series.ref = {id.kind, id.name, m.id};
      const size_t first = first_slot.at(id);
      for (size_t i = 0; i < slots.size(); ++i)
        series.values.push_back(i < first ? nan : model::ComputeMetric(m.id, slots[i], window_s));
      s.series.push_back(std::move(series));
    }
  }
  for (auto& [service, by_leaf] : leaves) {
    Breakdown b;
    b.service = service;
    b.dims = {std::string(dim::kEndpoint), std::string(dim::kInstance),
              std::string(dim::kMachine)};
    for (auto& [values, leaf] : by_leaf) {
      leaf.values = values;
      b.leaves.push_back(std::move(leaf));
    }
    s.breakdowns.push_back(std::move(b));
  }
  return s;
}

}  // namespace faultline::topology
