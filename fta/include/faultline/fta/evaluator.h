// Evaluating fault trees on a located cause: which fault classes hold, ranked, and why. Each
// evaluation keeps a trace of every node: which gates held, which basic events were true with
// the series that made them so (before -> after, robust z, start time) and which were false with
// the closest series that did not make it (or a note that no such series exists).
//
// Series are judged the way attribution judges them (topology::SeriesJudge: the same baseline,
// test period, thresholds and detector verdicts), so a fault tree and the attribution it refines
// never disagree about what is anomalous.
//
// Ranking of the classes that hold: higher priority first, then more basic events true, then
// the stronger evidence (largest |z|), then the name. Deterministic.
//
// Thread-compatible: an evaluator caches judgements; use one per thread.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "faultline/fta/fault_tree.h"
#include "faultline/topology/attribution.h"

namespace faultline::fta {

struct NodeTrace {
  const Node* node = nullptr;
  bool held = false;
  std::vector<NodeTrace> children;  // gates' children in order; a ref's single child is its target
  // Basic events: what was looked at ("retransmits of edge gateway->api"), and the series.
  std::string note;
  std::vector<topology::SeriesAnomaly> evidence;
};

struct ClassMatch {
  const FaultClass* fault_class = nullptr;
  bool held = false;
  size_t true_events = 0;  // basic events true in the trace (outside any `not`)
  double strength = 0;     // the largest |z| of their evidence
  NodeTrace trace;
};

struct Classification {
  std::vector<ClassMatch> held;      // ranked, best first
  std::vector<ClassMatch> not_held;  // in the trees' order
  const ClassMatch* top() const { return held.empty() ? nullptr : &held.front(); }
};

// What one located entity is: its kind, its name ("caller->callee" for edges) and the path from it
// to the alarmed service (topology::Candidate::path).
struct Located {
  EntityKind kind = EntityKind::kService;
  std::string entity;
  std::vector<std::string> path;
};

class FaultTreeEvaluator {
 public:
  // The situation and the attribution result must outlive the evaluator; the options are copied.
  FaultTreeEvaluator(const topology::Situation& situation,
                     const topology::AttributionResult& attribution,
                     const topology::AttributionOptions& options = {});

  Classification Classify(const FaultTrees& trees, const Located& cause) const;
  Classification Classify(const FaultTrees& trees, const topology::Candidate& cause) const {
    return Classify(trees, Located{cause.kind, cause.entity, cause.path});
  }
  // The entities that fill `role` for `cause` (sorted, unique).
  std::vector<std::string> Bind(Role role, const Located& cause) const;

 private:
  NodeTrace Evaluate(const Node& node, const Located& cause) const;
  NodeTrace EvaluateEvent(const Node& node, const Located& cause) const;
  const topology::SeriesAnomaly& Judged(const topology::MetricSeries& series) const;
  // Whether a callee's change `a` is a big enough share of the service cause's own change of
  // the same metric to explain it.
  bool AccountsForCause(const topology::SeriesAnomaly& a, const Located& cause) const;

  const topology::Situation& s_;
  const topology::AttributionResult& a_;
  topology::AttributionOptions o_;
  topology::SeriesJudge judge_;
  mutable std::map<topology::SeriesRef, topology::SeriesAnomaly> judged_;
  // The situation's series by (kind, entity), and the bindings of the cause being classified.
  std::map<std::pair<EntityKind, std::string>, std::vector<const topology::MetricSeries*>, std::less<>>
      by_entity_;
  mutable const Located* bound_for_ = nullptr;
  mutable std::map<Role, std::vector<std::string>> bound_;
};

// For people: one line per node, indented, with ✓ / ✗ and the evidence of basic events.
std::string TraceToText(const NodeTrace& trace, int indent = 0);

}  // namespace faultline::fta
