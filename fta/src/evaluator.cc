#include "faultline/fta/evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "faultline/common/stats.h"

namespace faultline::fta {
namespace {

using topology::EdgeKind;
using topology::MetricSeries;
using topology::NodeRef;
using topology::SeriesAnomaly;

std::pair<std::string, std::string> SplitEdge(const std::string& edge) {
  const size_t at = edge.find("->");
  if (at == std::string::npos) return {edge, ""};
  return {edge.substr(0, at), edge.substr(at + 2)};
}

bool Matches(const BasicEvent& e, Metric m) {
  return e.metric ? *e.metric == m : Info(m).family == *e.family;
}

bool InDirection(DirectionMatch d, Metric m, const SeriesAnomaly& a) {
  if (!a.anomalous) return false;
  switch (d) {
    case DirectionMatch::kUp:
      return a.z > 0;
    case DirectionMatch::kDown:
      return a.z < 0;
    case DirectionMatch::kAny:
      return true;
    case DirectionMatch::kBad:
      break;
  }
  switch (Info(m).polarity) {
    case Polarity::kUpIsBad:
      return a.z > 0;
    case Polarity::kDownIsBad:
      return a.z < 0;
    case Polarity::kEither:
      break;
  }
  return true;
}

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

void Count(const NodeTrace& t, bool negated, size_t* events, double* strength) {
  if (t.node && t.node->type == NodeType::kEvent) {
    if (t.held && !negated) {
      ++*events;
      for (const SeriesAnomaly& a : t.evidence) *strength = std::max(*strength, std::abs(a.z));
    }
    return;
  }
  const bool neg = negated || (t.node && t.node->type == NodeType::kNot);
  for (const NodeTrace& c : t.children) Count(c, neg, events, strength);
}

}  // namespace

FaultTreeEvaluator::FaultTreeEvaluator(const topology::Situation& situation,
                                       const topology::AttributionResult& attribution,
                                       const topology::AttributionOptions& options)
    : s_(situation), a_(attribution), o_(options), judge_(situation, options) {
  for (const MetricSeries& ms : s_.series) by_entity_[{ms.ref.kind, ms.ref.entity}].push_back(&ms);
}

const SeriesAnomaly& FaultTreeEvaluator::Judged(const MetricSeries& series) const {
  auto it = judged_.find(series.ref);
  if (it == judged_.end()) it = judged_.emplace(series.ref, judge_.Judge(series)).first;
  return it->second;
}

std::vector<std::string> FaultTreeEvaluator::Bind(Role role, const Located& cause) const {
  const auto& t = s_.topology;
  std::set<std::string> out;
  auto service_instances = [&](const std::string& service) {
    std::vector<std::string> v;
    for (const NodeRef& i : t.Predecessors({EntityKind::kService, service}, EdgeKind::kInstanceOf))
      v.push_back(i.name);
    return v;
  };
  // The instances (and from them containers and machines) the role's resources are looked up in.
  std::vector<NodeRef> hosts_of;  // instances, containers or machines to walk from
  switch (cause.kind) {
    case EntityKind::kService:
      for (const std::string& i : service_instances(cause.entity))
        hosts_of.push_back({EntityKind::kInstance, i});
      break;
    case EntityKind::kEdge:
      for (const std::string& i : service_instances(SplitEdge(cause.entity).second))
        hosts_of.push_back({EntityKind::kInstance, i});
      break;
    default:
      hosts_of.push_back({cause.kind, cause.entity});
      break;
  }
  // Everything above (instances, containers running on it) and below (containers, machines).
  auto walk = [&](EntityKind want) {
    std::set<NodeRef> seen;
    std::vector<NodeRef> todo = hosts_of;
    // Down: runs_on successors.
    while (!todo.empty()) {
      const NodeRef n = todo.back();
      todo.pop_back();
      if (!seen.insert(n).second) continue;
      if (n.kind == want) out.insert(n.name);
      for (const NodeRef& m : t.Successors(n, EdgeKind::kRunsOn)) todo.push_back(m);
    }
    // Up, from a machine or container cause: what runs on it.
    if (cause.kind == EntityKind::kMachine || cause.kind == EntityKind::kContainer) {
      std::set<NodeRef> up_seen;
      todo = {NodeRef{cause.kind, cause.entity}};
      while (!todo.empty()) {
        const NodeRef n = todo.back();
        todo.pop_back();
        if (!up_seen.insert(n).second) continue;
        if (n.kind == want) out.insert(n.name);
        for (const NodeRef& m : t.Predecessors(n, EdgeKind::kRunsOn)) todo.push_back(m);
      }
    }
  };
  const std::string caller =
      cause.kind == EntityKind::kEdge ? SplitEdge(cause.entity).first
      : cause.path.size() > 1         ? cause.path[1]
                                      : std::string();
  switch (role) {
    case Role::kCause:
      out.insert(cause.entity);
      break;
    case Role::kEntry:
      out.insert(s_.alarm.ref.entity);
      break;
    case Role::kCaller:
      if (!caller.empty()) out.insert(caller);
      break;
    case Role::kCallee:
      if (cause.kind == EntityKind::kEdge) {
        out.insert(SplitEdge(cause.entity).second);
      } else if (cause.kind == EntityKind::kService) {
        for (const NodeRef& c : t.Successors({EntityKind::kService, cause.entity}, EdgeKind::kCalls))
          out.insert(c.name);
      }
      break;
    case Role::kDownstream: {
      std::string from;
      if (cause.kind == EntityKind::kEdge) from = SplitEdge(cause.entity).second;
      if (cause.kind == EntityKind::kService) from = cause.entity;
      if (from.empty()) break;
      for (const auto& [n, hops] : t.Downstream({EntityKind::kService, from}))
        if (hops > 0 || cause.kind == EntityKind::kEdge) out.insert(n.name);
      if (cause.kind == EntityKind::kEdge) out.insert(from);
      break;
    }
    case Role::kEdge:
      if (cause.kind == EntityKind::kEdge) out.insert(cause.entity);
      if (cause.kind == EntityKind::kService && !caller.empty())
        out.insert(caller + "->" + cause.entity);
      // The entry point has no caller on the path: every observed call into it.
      if (cause.kind == EntityKind::kService && caller.empty())
        for (const NodeRef& c : t.Predecessors({EntityKind::kService, cause.entity}, EdgeKind::kCalls))
          out.insert(c.name + "->" + cause.entity);
      break;
    case Role::kInstance:
      walk(EntityKind::kInstance);
      break;
    case Role::kContainer:
      walk(EntityKind::kContainer);
      break;
    case Role::kMachine:
      walk(EntityKind::kMachine);
      break;
  }
  return {out.begin(), out.end()};
}

bool FaultTreeEvaluator::AccountsForCause(const SeriesAnomaly& a, const Located& cause) const {
  const auto series = by_entity_.find(std::pair<EntityKind, std::string>(cause.kind, cause.entity));
  if (series == by_entity_.end()) return true;
  for (const MetricSeries* ms : series->second) {
    if (ms->ref.metric != a.ref.metric) continue;
    return topology::ChangeAccountsFor(a, Judged(*ms), o_.min_explained_share);
  }
  return true;
}

NodeTrace FaultTreeEvaluator::EvaluateEvent(const Node& node, const Located& cause) const {
  NodeTrace t;
  t.node = &node;
  const BasicEvent& e = node.event;
  if (e.type == EventType::kCauseIs) {
    t.held = e.kinds.Has(cause.kind);
    t.note = std::string(EntityKindName(cause.kind)) + " " + cause.entity;
    return t;
  }
  if (e.type == EventType::kSymptom) {
    const SeriesAnomaly& s = a_.symptom;
    t.held = Matches(e, s.ref.metric) && InDirection(e.direction, s.ref.metric, s);
    t.note = "the alarm: " + SeriesName(s.ref);
    t.evidence.push_back(s);
    return t;
  }
  const EntityKind kind = e.of == Role::kCause ? cause.kind : *RoleKind(e.of);
  if (bound_for_ != &cause) bound_.clear(), bound_for_ = &cause;
  auto bound = bound_.find(e.of);
  if (bound == bound_.end()) bound = bound_.emplace(e.of, Bind(e.of, cause)).first;
  const std::vector<std::string>& entities = bound->second;
  std::string who = std::string(RoleName(e.of));
  if (entities.empty()) {
    t.note = "no " + who + " in the situation";
    return t;
  }
  std::string names;
  for (const std::string& n : entities) names += (names.empty() ? "" : ", ") + n;
  const std::string_view kind_name = EntityKindName(kind);
  t.note = (who == kind_name ? who : who + " " + std::string(kind_name)) + " " + names;
  const SeriesAnomaly* closest = nullptr;
  bool any_series = false;
  for (const std::string& entity : entities) {
    const auto series = by_entity_.find(std::pair<EntityKind, std::string>(kind, entity));
    if (series == by_entity_.end()) continue;
    for (const MetricSeries* ms : series->second) {
      const Metric m = ms->ref.metric;
      if (e.type == EventType::kOomKill) {
        if (m != Metric::kOomKills) continue;
        any_series = true;
        double kills = 0;
        for (size_t i = judge_.split(); i < ms->values.size(); ++i)
          if (!std::isnan(ms->values[i])) kills += ms->values[i];
        SeriesAnomaly a = Judged(*ms);
        a.observed = kills;  // the kills counted in the test period
        if (kills > 0) {
          if (closest) t.evidence.clear(), closest = nullptr;
          t.held = true;
          t.evidence.push_back(a);
        } else if (!t.held && !closest) {
          t.evidence.push_back(a);
          closest = &t.evidence.back();
        }
        continue;
      }
      if (!Matches(e, m)) continue;
      any_series = true;
      const SeriesAnomaly& a = Judged(*ms);
      bool yes = false;
      SeriesAnomaly shown = a;
      if (e.type == EventType::kAnomalous) {
        yes = InDirection(e.direction, m, a);
        // A callee of a service cause must account for the cause's own change as attribution
        // requires of it (AttributionOptions::min_explained_share): a callee 2 ms slower under a
        // service 300 ms slower did not make it slow.
        if (yes && e.of == Role::kCallee && cause.kind == EntityKind::kService)
          yes = AccountsForCause(a, cause);
      } else {  // kValue: the test period's median, from the anomaly's start when there is one
        double v = a.observed;
        if (e.last) {  // the state now: the test period's last window with data
          v = std::nan("");
          for (size_t i = ms->values.size(); i-- > judge_.split();)
            if (!std::isnan(ms->values[i])) {
              v = ms->values[i];
              break;
            }
          shown.observed = v;
        } else if (a.baseline_windows < o_.min_baseline) {
          std::vector<double> test;
          for (size_t i = judge_.split(); i < ms->values.size(); ++i)
            if (!std::isnan(ms->values[i])) test.push_back(ms->values[i]);
          v = Median(std::move(test));
          shown.observed = v;
        }
        yes = !std::isnan(v) && (e.above ? v > *e.above : v < *e.below);
      }
      if (yes) {
        if (closest) {  // drop the near miss once something holds
          t.evidence.clear();
          closest = nullptr;
        }
        t.held = true;
        t.evidence.push_back(shown);
      } else if (!t.held && (!closest || std::abs(a.z) > std::abs(closest->z))) {
        t.evidence.clear();
        t.evidence.push_back(shown);
        closest = &t.evidence.back();
      }
    }
  }
  if (!any_series) {
    t.note += ": no " + (e.type == EventType::kOomKill ? std::string("oom_kills")
                         : e.metric                    ? std::string(MetricName(*e.metric))
                                   : std::string(MetricFamilyName(*e.family)) + " metric") +
              " series";
  }
  return t;
}

NodeTrace FaultTreeEvaluator::Evaluate(const Node& node, const Located& cause) const {
  if (node.type == NodeType::kEvent) return EvaluateEvent(node, cause);
  NodeTrace t;
  t.node = &node;
  if (node.type == NodeType::kRef) {
    t.children.push_back(Evaluate(*node.target, cause));
    t.held = t.children[0].held;
    return t;
  }
  size_t held = 0;
  for (const Node& c : node.children) {
    t.children.push_back(Evaluate(c, cause));
    held += t.children.back().held;
  }
  switch (node.type) {
    case NodeType::kAll:
      t.held = held == node.children.size();
      break;
    case NodeType::kAny:
      t.held = held > 0;
      break;
    case NodeType::kNot:
      t.held = held == 0;
      break;
    case NodeType::kAtLeast:
      t.held = held >= node.k;
      break;
    default:
      break;
  }
  return t;
}

Classification FaultTreeEvaluator::Classify(const FaultTrees& trees, const Located& cause) const {
  bound_.clear();
  bound_for_ = &cause;
  Classification out;
  for (const FaultClass& fc : trees.classes) {
    ClassMatch m;
    m.fault_class = &fc;
    m.trace = Evaluate(fc.tree, cause);
    m.held = m.trace.held;
    Count(m.trace, false, &m.true_events, &m.strength);
    m.strength = std::min(m.strength, 1000.0);
    (m.held ? out.held : out.not_held).push_back(std::move(m));
  }
  std::sort(out.held.begin(), out.held.end(), [](const ClassMatch& a, const ClassMatch& b) {
    if (a.fault_class->priority != b.fault_class->priority)
      return a.fault_class->priority > b.fault_class->priority;
    if (a.true_events != b.true_events) return a.true_events > b.true_events;
    if (a.strength != b.strength) return a.strength > b.strength;
    return a.fault_class->name < b.fault_class->name;
  });
  return out;
}

std::string TraceToText(const NodeTrace& t, int indent) {
  std::string out(static_cast<size_t>(indent) * 2, ' ');
  out += t.held ? "\u2713 " : "\u2717 ";
  const Node& n = *t.node;
  switch (n.type) {
    case NodeType::kAll:
      out += "all of";
      break;
    case NodeType::kAny:
      out += "any of";
      break;
    case NodeType::kNot:
      out += "not";
      break;
    case NodeType::kAtLeast:
      out += "at least " + std::to_string(n.k) + " of";
      break;
    case NodeType::kRef:
      out += n.ref;
      break;
    case NodeType::kEvent:
      out += Describe(n.event);
      if (!t.note.empty()) out += "  [" + t.note + "]";
      break;
  }
  out += "\n";
  for (const SeriesAnomaly& a : t.evidence) {
    out += std::string(static_cast<size_t>(indent) * 2 + 4, ' ') + SeriesName(a.ref) + ": " +
           Num(a.baseline) + " -> " + Num(a.observed) + " (z " + Num(a.z) +
           (a.anomalous ? ", from " + std::to_string(a.start_s) : ", normal") + ")\n";
  }
  for (const NodeTrace& c : t.children) out += TraceToText(c, indent + 1);
  return out;
}

}  // namespace faultline::fta
