#include "faultline/diagnosis/diagnose.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "faultline/fta/evaluator.h"

namespace faultline::diagnosis {
namespace {

using topology::Candidate;
using topology::SeriesAnomaly;
using topology::Situation;

MetricChange Change(const SeriesAnomaly& a) {
  return {{a.ref.kind, a.ref.entity}, a.ref.metric, a.baseline, a.observed, a.z, a.start_s,
          a.anomalous};
}

ExplainedNode Explain(const fta::NodeTrace& t) {
  ExplainedNode n;
  n.held = t.held;
  n.note = t.note;
  switch (t.node->type) {
    case fta::NodeType::kAll:
      n.type = "all", n.label = "all of";
      break;
    case fta::NodeType::kAny:
      n.type = "any", n.label = "any of";
      break;
    case fta::NodeType::kNot:
      n.type = "not", n.label = "not";
      break;
    case fta::NodeType::kAtLeast:
      n.type = "at_least", n.label = "at least " + std::to_string(t.node->k) + " of";
      break;
    case fta::NodeType::kRef:
      n.type = "ref", n.label = t.node->ref;
      break;
    case fta::NodeType::kEvent:
      n.type = "event", n.label = fta::Describe(t.node->event);
      break;
  }
  for (const SeriesAnomaly& a : t.evidence) n.evidence.push_back(Change(a));
  for (const fta::NodeTrace& c : t.children) n.children.push_back(Explain(c));
  return n;
}

std::vector<FaultClassMatch> Held(const fta::Classification& c) {
  std::vector<FaultClassMatch> out;
  for (const fta::ClassMatch& m : c.held) {
    const fta::FaultClass& f = *m.fault_class;
    out.push_back({f.name, f.title, f.description, f.action, f.priority, m.true_events, m.strength});
  }
  return out;
}

Metric KpiFor(Metric symptom) {
  switch (Info(symptom).family) {
    case MetricFamily::kErrors:
      return Metric::kErrorRate;
    case MetricFamily::kLatency:
      return Metric::kLatencyMeanMs;
    default:
      return Metric::kRequests;
  }
}

Severity SeverityOf(const Phenomenon& p) {
  const MetricChange& c = p.change;
  switch (Info(c.metric).family) {
    case MetricFamily::kErrors:
      if (c.metric == Metric::kErrorRate && c.observed >= 0.1) return Severity::kCritical;
      return Severity::kError;
    case MetricFamily::kLatency:
      if (p.change_ratio >= 5) return Severity::kCritical;
      if (p.change_ratio >= 2) return Severity::kError;
      return Severity::kWarning;
    case MetricFamily::kTraffic:
      return c.baseline > 0 && c.observed <= c.baseline / 2 ? Severity::kError : Severity::kWarning;
    default:
      return Severity::kWarning;
  }
}

// The median of a series over windows [from, to), NaN when none has data.
double SeriesTotal(const Situation& s, EntityKind kind, const std::string& entity, Metric m,
                   size_t from) {
  const topology::MetricSeries* ms = s.Find({kind, entity, m});
  if (!ms) return std::nan("");
  double sum = 0;
  size_t n = 0;
  for (size_t i = from; i < ms->values.size(); ++i)
    if (!std::isnan(ms->values[i])) sum += ms->values[i], ++n;
  return n ? sum : std::nan("");
}

size_t WindowIndex(const Situation& s, int64_t t) {
  return t <= s.start_s ? 0 : static_cast<size_t>((t - s.start_s) / s.window_s);
}

}  // namespace

std::optional<DrillDownFinding> DrillDownService(const Situation& s, const std::string& service,
                                                 Metric kpi, size_t baseline_until,
                                                 size_t test_from,
                                                 const topology::DrillDownOptions& options) {
  const topology::Breakdown* b = s.BreakdownOf(service);
  if (!b || b->leaves.empty()) return std::nullopt;
  topology::Cube cube;
  cube.dims = b->dims;
  cube.values.resize(b->dims.size());
  std::vector<std::map<std::string, uint32_t>> ids(b->dims.size());
  const bool ratio = kpi != Metric::kRequests;
  std::vector<double> test_requests;
  for (const topology::BreakdownLeaf& leaf : b->leaves) {
    struct Side {
      double req = 0, err = 0, lat = 0;
      size_t n = 0;
    } base, test;
    for (size_t i = 0; i < leaf.requests.size(); ++i) {
      if (std::isnan(leaf.requests[i])) continue;
      Side* side = i < baseline_until ? &base : i >= test_from ? &test : nullptr;
      if (!side) continue;
      side->req += leaf.requests[i];
      side->err += std::isnan(leaf.errors[i]) ? 0 : leaf.errors[i];
      side->lat += std::isnan(leaf.latency_sum_ms[i]) ? 0 : leaf.latency_sum_ms[i];
      side->n++;
    }
    if (!base.n && !test.n) continue;
    auto per_window = [](double v, size_t n) { return n ? v / static_cast<double>(n) : 0.0; };
    for (size_t d = 0; d < leaf.values.size(); ++d) {
      auto [it, fresh] = ids[d].emplace(leaf.values[d], static_cast<uint32_t>(ids[d].size()));
      if (fresh) cube.values[d].push_back(leaf.values[d]);
      cube.cells.push_back(it->second);
    }
    const double num_test = kpi == Metric::kErrorRate ? test.err : kpi == Metric::kLatencyMeanMs ? test.lat : test.req;
    const double num_base = kpi == Metric::kErrorRate ? base.err : kpi == Metric::kLatencyMeanMs ? base.lat : base.req;
    cube.real.push_back(per_window(num_test, test.n));
    cube.predict.push_back(per_window(num_base, base.n));
    if (ratio) {
      cube.real_den.push_back(per_window(test.req, test.n));
      cube.predict_den.push_back(per_window(base.req, base.n));
    }
    test_requests.push_back(per_window(test.req, test.n));
  }
  if (cube.real.empty()) return std::nullopt;
  const topology::DrillDownResult r = topology::DrillDown(cube, options);
  DrillDownFinding f;
  f.service = service;
  f.kpi = kpi;
  f.leaves = cube.leaves();
  f.abnormal_leaves = r.abnormal_leaves;
  f.unexplained = r.unexplained;
  double total = 0, covered = 0, affected = 0;
  const size_t endpoint_dim = static_cast<size_t>(
      std::find(cube.dims.begin(), cube.dims.end(), "endpoint") - cube.dims.begin());
  std::set<uint32_t> endpoints, endpoints_affected;
  for (size_t leaf = 0; leaf < cube.leaves(); ++leaf) {
    total += test_requests[leaf];
    const bool abnormal = leaf < r.abnormal.size() && r.abnormal[leaf];
    if (abnormal) affected += test_requests[leaf];
    if (endpoint_dim < cube.dims.size()) {
      const uint32_t e = cube.cells[leaf * cube.dims.size() + endpoint_dim];
      endpoints.insert(e);
      if (abnormal) endpoints_affected.insert(e);
    }
    bool under = false;
    for (const topology::RootCauseElement& e : r.elements) {
      bool all = true;
      for (const auto& [dim, value] : e.attrs) all = all && cube.cells[leaf * cube.dims.size() + dim] == value;
      under = under || all;
    }
    if (under) covered += test_requests[leaf];
  }
  for (const topology::RootCauseElement& e : r.elements)
    f.elements.push_back(topology::FormatElements(cube, {e}));
  f.share = total > 0 ? covered / total : 0;
  f.affected_share = total > 0 ? affected / total : 0;
  f.endpoints = endpoints.size();
  f.endpoints_affected = endpoints_affected.size();
  return f;
}

Diagnosis Diagnose(const Situation& s, const fta::FaultTrees& trees, const DiagnoseOptions& o) {
  Diagnosis d;
  d.attribution = topology::Attribute(s, o.attribution);
  const topology::AttributionResult& r = d.attribution;
  d.reason = r.summary;
  if (!r.symptom.anomalous || r.candidates.empty()) return d;

  const fta::FaultTreeEvaluator ev(s, r, o.attribution);
  const topology::SeriesJudge judge(s, o.attribution);
  Incident inc;
  const EntityRef entry{s.alarm.ref.kind, s.alarm.ref.entity};

  // The phenomenon.
  Phenomenon& p = inc.phenomenon;
  p.entry = entry;
  p.change = Change(r.symptom);
  p.change_ratio = r.symptom.baseline > 0 ? r.symptom.observed / r.symptom.baseline : 0;
  const size_t test_from =
      r.symptom.start_s ? WindowIndex(s, r.symptom.start_s) : judge.split();

  // Root causes, each classified.
  std::optional<fta::Classification> top_classes;
  for (size_t i = 0; i < r.candidates.size() && i < o.max_root_causes; ++i) {
    const Candidate& c = r.candidates[i];
    fta::Classification cls = ev.Classify(trees, c);
    RootCause rc;
    rc.entity = {c.kind, c.entity};
    rc.score = c.score;
    rc.explanation = c.explanation;
    for (const SeriesAnomaly& a : c.evidence) rc.evidence.push_back(Change(a));
    rc.path = c.path;
    rc.classes = Held(cls);
    inc.root_causes.push_back(std::move(rc));
    if (i == 0) top_classes = std::move(cls);
  }
  const RootCause& top = inc.root_causes.front();
  const Candidate& top_candidate = r.candidates.front();
  if (const fta::ClassMatch* m = top_classes->top()) {
    inc.fault_tree.fault_class = m->fault_class->name;
    inc.fault_tree.tree = Explain(m->trace);
  }
  for (const fta::ClassMatch& m : top_classes->not_held)
    inc.fault_tree.not_held.push_back(m.fault_class->name);

  // The propagation path, from the cause to the entry point.
  const Metric symptom_metric = s.alarm.ref.metric;
  for (size_t i = 0; i < top.path.size(); ++i) {
    Hop h;
    h.entity = i == 0 ? top.entity : EntityRef{EntityKind::kService, top.path[i]};
    h.role = i == 0 ? "cause" : i + 1 == top.path.size() ? "entry" : "hop";
    // A hop is on the path because attribution followed the symptom through it: it carries
    // the symptom's family; only the cause is classified.
    if (i > 0) {
      h.propagated = std::string(MetricFamilyName(Info(s.alarm.ref.metric).family));
    } else {
      h.fault_class = inc.fault_tree.fault_class;
    }
    if (const topology::MetricSeries* ms = s.Find({h.entity.kind, h.entity.name, symptom_metric}))
      h.change = Change(judge.Judge(*ms));
    inc.propagation.push_back(std::move(h));
  }

  // Drill-down: the first service of the path (the cause, or the one its host slows down), then
  // the entry point.
  std::vector<std::string> drill;
  if (top.entity.kind == EntityKind::kService) {
    drill.push_back(top.entity.name);
  } else if (top.path.size() > 1) {
    drill.push_back(top.path[1]);
  }
  if (std::find(drill.begin(), drill.end(), entry.name) == drill.end()) drill.push_back(entry.name);
  // The entry point's finding is kept for the impact even when no element came out of it (one
  // abnormal leaf of three names no element, yet says which share of the requests was hurt).
  std::optional<DrillDownFinding> at_entry;
  for (const std::string& service : drill) {
    auto f = DrillDownService(s, service, KpiFor(symptom_metric), judge.split(), test_from,
                              o.drilldown);
    if (!f) continue;
    if (service == entry.name) at_entry = *f;
    if (!f->elements.empty()) inc.drilldown.push_back(std::move(*f));
  }

  for (const topology::SetAside& a : r.set_aside) inc.set_aside.push_back({a.entity, a.reason});

  // Impact.
  if (Info(symptom_metric).family == MetricFamily::kErrors && symptom_metric == Metric::kErrorRate) {
    p.impact = {std::clamp(r.symptom.observed - r.symptom.baseline, 0.0, 1.0), "error_rate"};
  } else {
    if (at_entry && at_entry->abnormal_leaves > 0) {
      // The requests in the leaves that deviated themselves, not all those under the elements
      // (an element may hold normal leaves too): a slow catalog behind /browse touches /browse.
      p.impact = {at_entry->affected_share, "drilldown", at_entry->endpoints,
                  at_entry->endpoints_affected};
    } else {
      // The first call of the path out of the entry point.
      std::string first_call;
      if (top.path.size() >= 2) {
        const std::string& before_entry = top.path[top.path.size() - 2];
        first_call = before_entry.find("->") != std::string::npos
                         ? before_entry
                         : entry.name + "->" + before_entry;
      }
      const double through = first_call.empty() ? std::nan("")
                                                : SeriesTotal(s, EntityKind::kEdge, first_call,
                                                              Metric::kRequests, test_from);
      const double all = SeriesTotal(s, EntityKind::kService, entry.name, Metric::kRequests, test_from);
      if (!std::isnan(through) && !std::isnan(all) && all > 0) {
        p.impact = {std::clamp(through / all, 0.0, 1.0), "path"};
      } else {
        p.impact = {1.0, "entry"};
      }
    }
  }
  inc.severity = SeverityOf(p);

  // Key metrics: the phenomenon, the top cause's evidence, then each hop's change.
  auto add_key = [&](const MetricChange& c) {
    for (const MetricChange& k : inc.key_metrics)
      if (k.entity == c.entity && k.metric == c.metric) return;
    inc.key_metrics.push_back(c);
  };
  add_key(p.change);
  for (const MetricChange& c : top.evidence) add_key(c);
  for (const Hop& h : inc.propagation)
    if (h.change && h.change->anomalous) add_key(*h.change);

  // Identity and lifecycle.
  inc.dedup_key = DedupKey(entry, top.entity);
  inc.fingerprint = StableHash(inc.dedup_key);
  inc.opened_at_s = s.alarm.at_s;
  inc.updated_at_s = inc.opened_at_s;
  inc.id = "fl-" + StableHash(inc.dedup_key + "@" + std::to_string(inc.opened_at_s));
  inc.status = IncidentStatus::kOpen;
  inc.sequence = 1;

  // Words.
  const std::string moved = std::string(r.symptom.z > 0 ? "rose" : "fell");
  const std::string phenomenon =
      std::string(r.symptom.z > 0 ? "raised " : "lowered ") + SeriesName(s.alarm.ref) + " from " +
      FormatValue(p.change.baseline, symptom_metric) + " to " +
      FormatValue(p.change.observed, symptom_metric);
  const FaultClassMatch* cls = top.classes.empty() ? nullptr : &top.classes.front();
  const std::string kind_of = cls ? cls->title : "An unclassified fault";
  inc.title = kind_of + " at " + EntityText(top.entity) + ": " + SeriesName(s.alarm.ref) + " " + moved;
  std::string evidence;
  for (size_t i = 0; i < top.evidence.size() && i < 3; ++i) {
    const MetricChange& e = top.evidence[i];
    evidence += std::string(i ? ", " : "") + std::string(MetricName(e.metric)) + " " +
                FormatValue(e.baseline, e.metric) + " -> " + FormatValue(e.observed, e.metric);
  }
  std::string path;
  for (size_t i = 0; i < top.path.size(); ++i) path += (i ? " -> " : "") + top.path[i];
  inc.summary = kind_of + " at " + EntityText(top.entity) + " (" + evidence + ") " + phenomenon +
                (top.path.size() > 1 ? " through " + path : "") + "." +
                (cls && !cls->action.empty() ? " " + cls->action : "");

  // Alertmanager-shaped labels (identity, routing) and annotations (words).
  inc.labels = {{"alertname", "FaultlineIncident"},
                {"entry", entry.name},
                {"entry_kind", std::string(EntityKindName(entry.kind))},
                {"cause", top.entity.name},
                {"cause_kind", std::string(EntityKindName(top.entity.kind))},
                {"metric", std::string(MetricName(symptom_metric))},
                {"fault_class", cls ? cls->name : "unclassified"},
                {"severity", std::string(SeverityName(inc.severity))}};
  inc.annotations = {{"summary", inc.title}, {"description", inc.summary}};
  if (!top_candidate.explanation.empty()) inc.annotations["attribution"] = top_candidate.explanation;

  SituationLink& link = inc.situation;
  link.source = o.situation_source;
  link.window_s = s.window_s;
  link.start_s = s.start_s;
  link.end_s = s.WindowStart(s.windows());
  link.alarm_entity = entry;
  link.alarm_metric = symptom_metric;
  link.alarm_at_s = s.alarm.at_s;
  d.incident = std::move(inc);
  return d;
}

}  // namespace faultline::diagnosis
