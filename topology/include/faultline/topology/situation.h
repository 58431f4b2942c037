// A situation: what attribution needs at one moment, as one self-contained value that can be
// written to JSON, recorded, and replayed: the topology, each entity's and edge's recent metric
// series (aligned windows), the detectors' verdicts if any, and the alarm (which entity's which
// metric raised it, and when).
//
// JSON layout (fields in this order when written; unknown fields are refused when read):
//   {"window_s": 5, "start_s": 1000,
//    "alarm": {"kind": "service", "entity": "gateway", "metric": "latency_p99_ms", "at_s": 1100},
//    "topology": {"nodes": [{"kind": "service", "name": "gateway"}, …],
//                 "edges": [{"kind": "calls", "from_kind": "service", "from": "gateway",
//                            "to_kind": "service", "to": "cart"}, …]},
//    "series": [{"kind": "service", "entity": "gateway", "metric": "latency_p99_ms",
//                "values": [12.1, 11.8, null, …]}, …],
//    "verdicts": [{"kind": "service", "entity": "cart", "metric": "latency_p99_ms",
//                  "at_s": 1095, "anomalous": true, "score": 9.5, "detector": "combined"}, …]}
// Series kinds: service, instance, machine (as topology nodes) and edge, whose entity is
// "caller->callee". values[i] covers [start_s + i·window_s, +window_s); null is a missing window.
//
// Metric names the stream produces (BuildSituation): requests, errors (5xx), error_rate,
// latency_mean_ms, latency_p99_ms on services and edges; retransmits, drops, resets,
// connects_failed, rtt_mean_ms on edges. Resource series (cpu_*, runq_*, memory_*, io_*) use the
// same layout on instances and machines.
//
// Thread-compatible value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/topology/graph.h"

namespace faultline::stream {
struct StoredWindow;
}  // namespace faultline::stream

namespace faultline::topology {

enum class SeriesKind : uint8_t { kService = 1, kInstance = 2, kMachine = 3, kEdge = 4 };
std::string_view SeriesKindName(SeriesKind kind);
// Errors: kInvalidArgument naming the known kinds.
Result<SeriesKind> ParseSeriesKind(std::string_view name);

struct SeriesRef {
  SeriesKind kind = SeriesKind::kService;
  std::string entity;  // a node name, or "caller->callee" for edges
  std::string metric;
  friend bool operator==(const SeriesRef&, const SeriesRef&) = default;
  friend auto operator<=>(const SeriesRef&, const SeriesRef&) = default;
};

struct MetricSeries {
  SeriesRef ref;
  std::vector<double> values;  // NaN: no data in that window
};

struct Verdict {
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

struct Situation {
  int64_t window_s = 5;
  int64_t start_s = 0;
  Alarm alarm;
  Topology topology;
  std::vector<MetricSeries> series;
  std::vector<Verdict> verdicts;

  size_t windows() const;  // the longest series' length
  // The series, or nullptr.
  const MetricSeries* Find(const SeriesRef& ref) const;
  // Every series of an entity.
  std::vector<const MetricSeries*> SeriesOf(SeriesKind kind, std::string_view entity) const;
};

// Errors: kInvalidArgument naming `source` and the JSON path of what is wrong
// ("series[3].values[7]: expected a number or null"); at most 100000 series of at most 100000
// values.
Result<Situation> ParseSituationJson(std::string_view text, const std::string& source);
std::string SituationToJson(const Situation& s);

// The situation the stream's windows describe: series per service, client-side call edge and
// machine over [from_s, to_s), the topology they imply, and the alarm given. Windows from several
// instances and endpoints of one service are merged (requests and latency sketches are additive).
Situation BuildSituation(const std::vector<stream::StoredWindow>& windows, int64_t window_s,
                         int64_t from_s, int64_t to_s, const Alarm& alarm);

}  // namespace faultline::topology
