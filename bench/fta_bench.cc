// Cost of classifying a located cause with the default fault trees, and of a whole diagnosis
// (attribution, fault trees on every root cause, drill-down, the incident), on the recorded
// situations of tests/data/situations. Each iteration builds a fresh evaluator: the judgements it
// caches are part of what one incident costs.
//   build/bench/fta_bench [--benchmark_filter=…]
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "faultline/diagnosis/diagnose.h"
#include "faultline/fta/evaluator.h"

namespace {

using namespace faultline;

topology::Situation Load(const std::string& name) {
  std::ifstream in(std::string(FAULTLINE_SOURCE_DIR) + "/tests/data/situations/" + name + ".json");
  std::stringstream text;
  text << in.rdbuf();
  auto s = topology::ParseSituationJson(text.str(), name);
  if (!s.ok()) std::abort();
  return std::move(*s);
}

const char* const kSituations[] = {"slow_leaf", "edge_loss", "cpu_exhaustion", "oom_kill",
                                   "callee_refused", "traffic_surge"};

void BM_ClassifyTopCause(benchmark::State& state) {
  const topology::Situation s = Load(kSituations[state.range(0)]);
  const topology::AttributionResult r = topology::Attribute(s);
  const fta::FaultTrees& trees = fta::DefaultFaultTrees();
  size_t held = 0;
  for (auto _ : state) {
    const fta::FaultTreeEvaluator ev(s, r);
    const fta::Classification c = ev.Classify(trees, r.candidates.front());
    held += c.held.size();
    benchmark::DoNotOptimize(c);
  }
  state.SetLabel(kSituations[state.range(0)]);
  state.counters["classes"] = static_cast<double>(trees.classes.size());
  state.counters["held"] = static_cast<double>(held) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ClassifyTopCause)->DenseRange(0, 5)->Unit(benchmark::kMicrosecond);

void BM_Diagnose(benchmark::State& state) {
  const topology::Situation s = Load(kSituations[state.range(0)]);
  for (auto _ : state) {
    const diagnosis::Diagnosis d = diagnosis::Diagnose(s, fta::DefaultFaultTrees());
    if (!d.incident) std::abort();
    benchmark::DoNotOptimize(d);
  }
  state.SetLabel(kSituations[state.range(0)]);
}
BENCHMARK(BM_Diagnose)->DenseRange(0, 5)->Unit(benchmark::kMicrosecond);

void BM_AttributeOnly(benchmark::State& state) {
  const topology::Situation s = Load(kSituations[state.range(0)]);
  for (auto _ : state) benchmark::DoNotOptimize(topology::Attribute(s));
  state.SetLabel(kSituations[state.range(0)]);
}
BENCHMARK(BM_AttributeOnly)->DenseRange(0, 5)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
