// A situation: what attribution needs at one moment, as one self-contained value that can be
// written to JSON, recorded, and replayed: the topology, each entity's and edge's recent metric
// series (aligned windows), per-dimension breakdowns of services for drill-down, the detectors'
// verdicts if any, and the alarm (which entity's which metric raised it, and when).
//
// JSON layout (fields in this order when written; unknown fields are refused when read):
//   {"window_s": 5, "start_s": 1000,
//    "alarm": {"kind": "service", "entity": "gateway", "metric": "latency_p99_ms", "at_s": 1100},
//    "topology": {"nodes": [{"kind": "service", "name": "gateway"}, …],
//                 "edges": [{"kind": "calls", "from_kind": "service", "from": "gateway",
//                            "to_kind": "service", "to": "cart"}, …]},
//    "series": [{"kind": "service", "entity": "gateway", "metric": "latency_p99_ms",
//                "values": [12.1, 11.8, null, …]}, …],
//    "breakdowns": [{"service": "gateway", "dims": ["endpoint", "instance", "machine"],
//                    "leaves": [{"values": ["GET /cart", "m1/41", "m1"],
//                                "requests": [..], "errors": [..], "latency_sum_ms": [..]}, …]}],
//    "verdicts": [{"kind": "service", "entity": "cart", "metric": "latency_p99_ms",
//                  "at_s": 1095, "anomalous": true, "score": 9.5, "detector": "combined"}, …]}
// Series kinds: service, instance, container, machine (as topology nodes) and edge, whose entity
// is "caller->callee". values[i] covers [start_s + i·window_s, +window_s); null is a missing
// window. Metric names are the catalog's (faultline/common/catalog.h), and each must apply to its
// series' kind: anything else is refused with the known names.
//
// A breakdown splits one service's traffic into leaves, one per combination of its dimensions'
// values, with per-window requests, 5xx errors and the sum of latencies (additive, so drill-down
// can compare any combination's error rate or mean latency before and after).
//
// Thread-compatible value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/catalog.h"
#include "faultline/common/status.h"
#include "faultline/topology/graph.h"

namespace faultline::model {
struct StoredWindow;  // window_stats.h
}  // namespace faultline::model

namespace faultline::topology {

// The kinds a series can have.
inline constexpr KindSet kSeriesKinds{EntityKind::kService, EntityKind::kEdge,
                                      EntityKind::kInstance, EntityKind::kContainer,
                                      EntityKind::kMachine};
// Errors: kInvalidArgument naming the series kinds.
Result<EntityKind> ParseSeriesKind(std::string_view name);

struct SeriesRef {
  EntityKind kind = EntityKind::kService;
  std::string entity;  // a node name, or "caller->callee" for edges
  Metric metric = Metric::kRequests;
  friend bool operator==(const SeriesRef&, const SeriesRef&) = default;
  friend auto operator<=>(const SeriesRef&, const SeriesRef&) = default;
};
// "gateway latency_p99_ms"
std::string SeriesName(const SeriesRef& ref);
// "KIND:ENTITY:METRIC" ("service:gateway:latency_p99_ms", "edge:api->10.0.0.9:80:retransmits":
// the entity runs from the first colon to the last). Errors: kInvalidArgument naming the text and
// what was expected (the kinds in `kinds`, a catalog metric of that kind).
Result<SeriesRef> ParseSeriesRef(std::string_view text, KindSet kinds = kSeriesKinds);

struct MetricSeries {
  SeriesRef ref;
  std::vector<double> values;  // NaN: no data in that window
};

// A detector's verdict (detectors::Verdict) on one window of a series, as a situation records it.
struct RecordedVerdict {
  SeriesRef ref;
  int64_t at_s = 0;
  bool anomalous = false;
  double score = 0;
  std::string detector;
};

struct Alarm {
  SeriesRef ref;
  int64_t at_s = 0;
};

// One leaf of a service's breakdown: its dimension values and per-window additive figures
// (NaN: no data in that window).
struct BreakdownLeaf {
  std::vector<std::string> values;  // one per Breakdown::dims
  std::vector<double> requests, errors, latency_sum_ms;
};

struct Breakdown {
  std::string service;
  std::vector<std::string> dims;  // e.g. endpoint, instance, machine
  std::vector<BreakdownLeaf> leaves;
};

struct Situation {
  int64_t window_s = 5;
  int64_t start_s = 0;
  Alarm alarm;
  Topology topology;
  std::vector<MetricSeries> series;
  std::vector<Breakdown> breakdowns;
  std::vector<RecordedVerdict> verdicts;

  size_t windows() const;  // the longest series' length
  // The series, or nullptr.
  const MetricSeries* Find(const SeriesRef& ref) const;
  // Every series of an entity.
  std::vector<const MetricSeries*> SeriesOf(EntityKind kind, std::string_view entity) const;
  // The service's breakdown, or nullptr.
  const Breakdown* BreakdownOf(std::string_view service) const;
  // The time window i starts at.
  int64_t WindowStart(size_t i) const { return start_s + static_cast<int64_t>(i) * window_s; }
};

// Errors: kInvalidArgument naming `source` and the JSON path of what is wrong
// ("series[3].values[7]: expected a number or null", "series[2].metric: unknown metric …");
// at most 100000 series of at most 100000 values, at most 100000 leaves in all breakdowns.
Result<Situation> ParseSituationJson(std::string_view text, const std::string& source);
std::string SituationToJson(const Situation& s);

// The situation the stream's windows describe: series of every catalog metric per service,
// client-side call edge and machine over [from_s, to_s), each service's breakdown by endpoint,
// instance and machine, the topology they imply, and the alarm given. Windows from several
// instances and endpoints of one service are merged (requests and latency sketches are additive).
// Machine resource series appear only for machines whose agents sent resource summaries.
Situation BuildSituation(const std::vector<model::StoredWindow>& windows, int64_t window_s,
                         int64_t from_s, int64_t to_s, const Alarm& alarm);

}  // namespace faultline::topology
