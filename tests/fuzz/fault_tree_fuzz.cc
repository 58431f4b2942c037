// libFuzzer target: the fault-tree loader (YAML written by users). Anything must load or be
// refused with a message naming the source; what loads must describe itself and evaluate, on a
// small fixed situation, for every kind of cause, without crashing.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/fta/evaluator.h"

namespace {

using namespace faultline;

const topology::Situation& Fixed() {
  static const topology::Situation s = [] {
    topology::Situation s;
    s.window_s = 5;
    s.start_s = 0;
    s.alarm = {{EntityKind::kService, "a", Metric::kLatencyP99Ms}, 100};
    s.topology.ObserveEdge(topology::EdgeKind::kCalls, {EntityKind::kService, "a"},
                           {EntityKind::kService, "b"}, 0);
    s.topology.ObserveEdge(topology::EdgeKind::kInstanceOf, {EntityKind::kInstance, "b-1"},
                           {EntityKind::kService, "b"}, 0);
    s.topology.ObserveEdge(topology::EdgeKind::kRunsOn, {EntityKind::kInstance, "b-1"},
                           {EntityKind::kContainer, "c"}, 0);
    s.topology.ObserveEdge(topology::EdgeKind::kRunsOn, {EntityKind::kContainer, "c"},
                           {EntityKind::kMachine, "m"}, 0);
    for (const MetricInfo& m : Metrics()) {
      for (auto [kind, entity] : {std::pair{EntityKind::kService, "a"}, {EntityKind::kService, "b"},
                                  {EntityKind::kEdge, "a->b"}, {EntityKind::kContainer, "c"},
                                  {EntityKind::kMachine, "m"}}) {
        if (!m.kinds.Has(kind)) continue;
        topology::MetricSeries ms;
        ms.ref = {kind, entity, m.id};
        for (int i = 0; i < 30; ++i) ms.values.push_back(i < 20 ? 1 + 0.01 * std::sin(i) : 5);
        s.series.push_back(std::move(ms));
      }
    }
    return s;
  }();
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto trees = fta::ParseFaultTrees(in, "fuzz");
  if (!trees.ok()) {
    if (trees.status().message().rfind("fuzz:", 0) != 0) abort();
    return 0;
  }
  static const topology::AttributionResult attribution = topology::Attribute(Fixed());
  const fta::FaultTreeEvaluator ev(Fixed(), attribution);
  for (const fta::FaultClass& c : trees->classes) {
    if (fta::Describe(c.tree).empty()) abort();
  }
  for (const fta::Located& cause :
       {fta::Located{EntityKind::kService, "b", {"b", "a"}}, fta::Located{EntityKind::kEdge, "a->b", {"a->b", "a"}},
        fta::Located{EntityKind::kContainer, "c", {"c", "b", "a"}},
        fta::Located{EntityKind::kMachine, "m", {"m", "b", "a"}}}) {
    const fta::Classification c = ev.Classify(*trees, cause);
    if (c.held.size() + c.not_held.size() != trees->classes.size()) abort();
    for (const fta::ClassMatch& m : c.held) {
      if (!m.held || fta::TraceToText(m.trace).empty()) abort();
    }
  }
  return 0;
}
