#include "faultline/diagnosis/incident.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "faultline/common/text.h"

namespace faultline::diagnosis {
namespace {

using Json = nlohmann::ordered_json;

double Finite(double v) { return std::isfinite(v) ? v : 0; }


Json EntityJson(const EntityRef& e) {
  return {{"kind", EntityKindName(e.kind)}, {"name", e.name}};
}

Json TimeJson(int64_t t) { return t ? Json(Rfc3339(t)) : Json(); }

Json ChangeJson(const MetricChange& c) {
  return {{"entity", EntityJson(c.entity)},
          {"metric", MetricName(c.metric)},
          {"unit", Info(c.metric).unit},
          {"baseline", Finite(c.baseline)},
          {"observed", Finite(c.observed)},
          {"z", Finite(c.z)},
          {"since", TimeJson(c.since_s)},
          {"anomalous", c.anomalous}};
}

Json NodeJson(const ExplainedNode& n) {
  Json j = {{"type", n.type}, {"label", n.label}, {"held", n.held}};
  if (!n.note.empty()) j["note"] = n.note;
  if (!n.evidence.empty()) {
    Json ev = Json::array();
    for (const MetricChange& c : n.evidence) ev.push_back(ChangeJson(c));
    j["evidence"] = std::move(ev);
  }
  if (!n.children.empty()) {
    Json ch = Json::array();
    for (const ExplainedNode& c : n.children) ch.push_back(NodeJson(c));
    j["children"] = std::move(ch);
  }
  return j;
}

const FaultClassMatch* TopClass(const Incident& inc) {
  if (inc.root_causes.empty() || inc.root_causes[0].classes.empty()) return nullptr;
  return &inc.root_causes[0].classes[0];
}

std::string ChangeText(const MetricChange& c) {
  std::string out = c.entity.name + " " + std::string(MetricName(c.metric)) + ": " +
                    FormatValue(c.baseline, c.metric) + " -> " + FormatValue(c.observed, c.metric) +
                    " (z " + FormatNumber(c.z);
  if (c.anomalous && c.since_s) out += ", since " + Rfc3339(c.since_s);
  return out + (c.anomalous ? ")" : ", normal)");
}

void NodeText(const ExplainedNode& n, int depth, std::string* out) {
  *out += std::string(static_cast<size_t>(depth) * 2 + 2, ' ') + (n.held ? "\u2713 " : "\u2717 ") +
          n.label;
  if (!n.note.empty()) *out += "  [" + n.note + "]";
  *out += "\n";
  for (const MetricChange& c : n.evidence)
    *out += std::string(static_cast<size_t>(depth) * 2 + 6, ' ') + ChangeText(c) + "\n";
  for (const ExplainedNode& c : n.children) NodeText(c, depth + 1, out);
}

std::string PhenomenonText(const Phenomenon& p) {
  const MetricChange& c = p.change;
  std::string out = c.entity.name + " " + std::string(MetricName(c.metric)) + " " +
                    (c.z > 0 ? "rose" : "fell") + " from " + FormatValue(c.baseline, c.metric) +
                    " to " + FormatValue(c.observed, c.metric);
  if (p.change_ratio > 0) out += " (" + FormatNumber(p.change_ratio) + "x, z " + FormatNumber(c.z) + ")";
  if (c.since_s) out += " since " + Rfc3339(c.since_s);
  return out;
}


}  // namespace

std::string FormatNumber(double v) {
  char buf[64];
  if (std::abs(v) >= 1000 && std::abs(v) < 1e12) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

std::string FormatValue(double v, Metric m) {
  const std::string_view unit = Info(m).unit;
  if (unit == "ms" || unit == "MiB") return FormatNumber(v) + " " + std::string(unit);
  if (unit == "ratio") return FormatNumber(v * 100) + "%";
  return FormatNumber(v);
}

std::string EntityText(const EntityRef& e) {
  return std::string(EntityKindName(e.kind)) + " " + e.name;
}

std::string_view IncidentStatusName(IncidentStatus s) {
  static constexpr std::string_view kNames[] = {"open", "updated", "resolved"};
  return kNames[static_cast<int>(s)];
}

std::string_view SeverityName(Severity s) {
  static constexpr std::string_view kNames[] = {"critical", "error", "warning", "info"};
  return kNames[static_cast<int>(s)];
}

std::string DedupKey(const EntityRef& entry, const EntityRef& cause) {
  return std::string(EntityKindName(entry.kind)) + ":" + entry.name + "|" +
         std::string(EntityKindName(cause.kind)) + ":" + cause.name;
}

std::string StableHash(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string Rfc3339(int64_t unix_s) {
  const time_t t = static_cast<time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string IncidentToJson(const Incident& inc) {
  Json j;
  j["schema_version"] = kIncidentSchemaVersion;
  j["id"] = inc.id;
  j["dedup_key"] = inc.dedup_key;
  j["fingerprint"] = inc.fingerprint;
  j["status"] = IncidentStatusName(inc.status);
  j["sequence"] = inc.sequence;
  j["opened_at"] = Rfc3339(inc.opened_at_s);
  j["updated_at"] = Rfc3339(inc.updated_at_s);
  j["resolved_at"] = inc.resolved_at_s ? Json(Rfc3339(*inc.resolved_at_s)) : Json();
  j["severity"] = SeverityName(inc.severity);
  j["title"] = inc.title;
  j["summary"] = inc.summary;
  const Phenomenon& p = inc.phenomenon;
  j["phenomenon"] = {{"entity", EntityJson(p.entry)},
                     {"metric", MetricName(p.change.metric)},
                     {"unit", Info(p.change.metric).unit},
                     {"family", MetricFamilyName(Info(p.change.metric).family)},
                     {"direction", p.change.z > 0 ? "up" : "down"},
                     {"baseline", Finite(p.change.baseline)},
                     {"observed", Finite(p.change.observed)},
                     {"z", Finite(p.change.z)},
                     {"change_ratio", Finite(p.change_ratio)},
                     {"since", TimeJson(p.change.since_s)},
                     {"impact", {{"share", Finite(p.impact.share)}, {"basis", p.impact.basis}}}};
  Json keys = Json::array();
  for (const MetricChange& c : inc.key_metrics) keys.push_back(ChangeJson(c));
  j["key_metrics"] = std::move(keys);
  Json causes = Json::array();
  for (size_t i = 0; i < inc.root_causes.size(); ++i) {
    const RootCause& rc = inc.root_causes[i];
    Json classes = Json::array();
    for (const FaultClassMatch& c : rc.classes) {
      classes.push_back({{"name", c.name},
                         {"title", c.title},
                         {"priority", c.priority},
                         {"true_events", c.true_events},
                         {"strength", Finite(c.strength)}});
    }
    Json evidence = Json::array();
    for (const MetricChange& c : rc.evidence) evidence.push_back(ChangeJson(c));
    causes.push_back({{"rank", i + 1},
                      {"entity", EntityJson(rc.entity)},
                      {"score", Finite(rc.score)},
                      {"fault_classes", std::move(classes)},
                      {"explanation", rc.explanation},
                      {"evidence", std::move(evidence)},
                      {"path", rc.path}});
  }
  j["root_causes"] = std::move(causes);
  const FaultClassMatch* top = TopClass(inc);
  Json ft = {{"class", top ? Json(top->name) : Json()},
             {"title", top ? Json(top->title) : Json()},
             {"description", top ? Json(top->description) : Json()},
             {"action", top ? Json(top->action) : Json()},
             {"tree", top ? NodeJson(inc.fault_tree.tree) : Json()},
             {"not_held", inc.fault_tree.not_held}};
  j["fault_tree"] = std::move(ft);
  Json hops = Json::array();
  for (const Hop& h : inc.propagation) {
    hops.push_back({{"entity", EntityJson(h.entity)},
                    {"role", h.role},
                    {"fault_class", h.fault_class.empty() ? Json() : Json(h.fault_class)},
                    {"propagated", h.propagated.empty() ? Json() : Json(h.propagated)},
                    {"change", h.change ? ChangeJson(*h.change) : Json()}});
  }
  j["propagation"] = std::move(hops);
  Json drill = Json::array();
  for (const DrillDownFinding& f : inc.drilldown) {
    drill.push_back({{"service", f.service},
                     {"kpi", MetricName(f.kpi)},
                     {"elements", f.elements},
                     {"leaves", f.leaves},
                     {"abnormal_leaves", f.abnormal_leaves},
                     {"unexplained", f.unexplained},
                     {"share", Finite(f.share)}});
  }
  j["drilldown"] = std::move(drill);
  const SituationLink& s = inc.situation;
  j["situation"] = {{"source", s.source},
                    {"window_s", s.window_s},
                    {"start", Rfc3339(s.start_s)},
                    {"end", Rfc3339(s.end_s)},
                    {"alarm",
                     {{"entity", EntityJson(s.alarm_entity)},
                      {"metric", MetricName(s.alarm_metric)},
                      {"at", Rfc3339(s.alarm_at_s)}}}};
  j["labels"] = inc.labels;
  j["annotations"] = inc.annotations;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string IncidentToText(const Incident& inc) {
  std::string out = "INCIDENT " + inc.id + "  [" + std::string(IncidentStatusName(inc.status)) +
                    " #" + std::to_string(inc.sequence) + "]  severity " +
                    std::string(SeverityName(inc.severity)) + "  opened " +
                    Rfc3339(inc.opened_at_s) + "\n" + inc.title + "\n\n";
  out += "What:    " + PhenomenonText(inc.phenomenon) + "\n";
  out += "Impact:  " + FormatNumber(inc.phenomenon.impact.share * 100) + "% of " +
         inc.phenomenon.entry.name + "'s requests (" + inc.phenomenon.impact.basis + ")\n";
  out += "Cause:   " + inc.summary + "\n";
  out += "\nKey metrics\n";
  for (const MetricChange& c : inc.key_metrics) out += "  " + ChangeText(c) + "\n";
  out += "\nRoot causes\n";
  for (size_t i = 0; i < inc.root_causes.size(); ++i) {
    const RootCause& rc = inc.root_causes[i];
    out += "  " + std::to_string(i + 1) + ". " + EntityText(rc.entity) + "  score " + FormatNumber(rc.score);
    std::string classes;
    for (const FaultClassMatch& c : rc.classes) classes += (classes.empty() ? "" : ", ") + c.name;
    out += "  [" + (classes.empty() ? std::string("unclassified") : classes) + "]\n";
    out += "     " + rc.explanation + "\n";
    for (const MetricChange& c : rc.evidence) out += "     - " + ChangeText(c) + "\n";
    std::string path;
    for (size_t k = 0; k < rc.path.size(); ++k) path += (k ? " -> " : "") + rc.path[k];
    out += "     path: " + path + "\n";
  }
  if (const FaultClassMatch* top = TopClass(inc)) {
    out += "\nWhy " + top->name + " (fault tree)\n";
    NodeText(inc.fault_tree.tree, 0, &out);
    if (!inc.fault_tree.not_held.empty()) {
      std::string others;
      for (const std::string& n : inc.fault_tree.not_held) others += (others.empty() ? "" : ", ") + n;
      out += "  did not hold: " + others + "\n";
    }
  }
  out += "\nPropagation\n";
  for (const Hop& h : inc.propagation) {
    out += "  " + std::string(&h == &inc.propagation.front() ? "   " : "-> ") + EntityText(h.entity) +
           "  (" + h.role + (h.fault_class.empty() ? "" : ": " + h.fault_class) +
           (h.propagated.empty() ? "" : ", " + h.propagated + " propagated") + ")";
    if (h.change) out += "  " + ChangeText(*h.change);
    out += "\n";
  }
  if (!inc.drilldown.empty()) {
    out += "\nDrill-down\n";
    for (const DrillDownFinding& f : inc.drilldown) {
      std::string elements;
      for (const std::string& e : f.elements) elements += (elements.empty() ? "" : "; ") + e;
      out += "  " + f.service + " " + std::string(MetricName(f.kpi)) + ": " + elements + "  (" +
             std::to_string(f.abnormal_leaves) + " of " + std::to_string(f.leaves) +
             " leaves abnormal, " + FormatNumber(f.share * 100) + "% of its requests)\n";
    }
  }
  out += "\nSituation: " + (inc.situation.source.empty() ? "(inline)" : inc.situation.source) +
         ", " + std::to_string(inc.situation.window_s) + " s windows " +
         Rfc3339(inc.situation.start_s) + " .. " + Rfc3339(inc.situation.end_s) + "\n";
  return out;
}

std::string IncidentToMarkdown(const Incident& inc) {
  std::string out = "## " + inc.title + "\n\n";
  out += "`" + inc.id + "` · **" + std::string(SeverityName(inc.severity)) + "** · " +
         std::string(IncidentStatusName(inc.status)) + " #" + std::to_string(inc.sequence) +
         " · opened " + Rfc3339(inc.opened_at_s) + "\n\n";
  out += "**What:** " + PhenomenonText(inc.phenomenon) + "  \n";
  out += "**Impact:** " + FormatNumber(inc.phenomenon.impact.share * 100) + "% of " +
         inc.phenomenon.entry.name + "'s requests (" + inc.phenomenon.impact.basis + ")  \n";
  out += "**Root cause:** " + inc.summary + "\n\n";
  out += "### Key metrics\n\n| entity | metric | before | after | z | since |\n|---|---|---|---|---|---|\n";
  for (const MetricChange& c : inc.key_metrics) {
    out += "| " + EntityText(c.entity) + " | " + std::string(MetricName(c.metric)) + " | " +
           FormatValue(c.baseline, c.metric) + " | " + FormatValue(c.observed, c.metric) + " | " +
           FormatNumber(c.z) + " | " + (c.since_s ? Rfc3339(c.since_s) : "") + " |\n";
  }
  out += "\n### Root causes\n\n";
  for (size_t i = 0; i < inc.root_causes.size(); ++i) {
    const RootCause& rc = inc.root_causes[i];
    std::string classes;
    for (const FaultClassMatch& c : rc.classes)
      classes += (classes.empty() ? "" : ", ") + ("`" + c.name + "`");
    std::string path;
    for (size_t k = 0; k < rc.path.size(); ++k) path += (k ? " → " : "") + rc.path[k];
    out += std::to_string(i + 1) + ". **" + EntityText(rc.entity) + "** (score " + FormatNumber(rc.score) +
           "; " + (classes.empty() ? std::string("unclassified") : classes) + "): " +
           rc.explanation + ". Path: " + path + "\n";
  }
  if (const FaultClassMatch* top = TopClass(inc)) {
    out += "\n### Why `" + top->name + "`\n\n" + top->description + "\n\n```\n";
    NodeText(inc.fault_tree.tree, 0, &out);
    out += "```\n\n**What to do:** " + top->action + "\n";
  }
  out += "\n### Propagation\n\n";
  for (const Hop& h : inc.propagation) {
    out += "- " + EntityText(h.entity) + " (" + h.role +
           (h.fault_class.empty() ? "" : ": `" + h.fault_class + "`") +
           (h.propagated.empty() ? "" : ", " + h.propagated + " propagated") + ")";
    if (h.change) out += ": " + ChangeText(*h.change);
    out += "\n";
  }
  if (!inc.drilldown.empty()) {
    out += "\n### Drill-down\n\n";
    for (const DrillDownFinding& f : inc.drilldown) {
      std::string elements;
      for (const std::string& e : f.elements) elements += (elements.empty() ? "" : "; ") + ("`" + e + "`");
      out += "- " + f.service + " " + std::string(MetricName(f.kpi)) + ": " + elements + " (" +
             FormatNumber(f.share * 100) + "% of its requests)\n";
    }
  }
  return out;
}

std::string PropagationToDot(const Incident& inc) {
  auto id = [](const EntityRef& e) { return DotQuote(EntityText(e)); };
  std::string out = "digraph incident {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", shape=box, style=rounded];\n";
  out += "  label=" + DotQuote(inc.title) + ";\n  labelloc=t;\n";
  for (size_t i = 0; i < inc.propagation.size(); ++i) {
    const Hop& h = inc.propagation[i];
    std::vector<std::string> lines = {EntityText(h.entity)};
    if (!h.fault_class.empty()) lines.push_back(h.fault_class);
    if (h.change) {
      lines.push_back(std::string(MetricName(h.change->metric)) + " " +
                      FormatValue(h.change->baseline, h.change->metric) + " -> " +
                      FormatValue(h.change->observed, h.change->metric));
    }
    // One quoted label, its lines joined by Graphviz's \n.
    std::string label;
    for (const std::string& l : lines) {
      const std::string q = DotQuote(l);
      label += (label.empty() ? "" : "\\n") + q.substr(1, q.size() - 2);
    }
    std::string style = h.role == "cause"   ? "style=\"rounded,filled\", fillcolor=\"#f4cccc\", color=red"
                        : h.role == "entry" ? "style=\"rounded,bold\""
                                            : "style=rounded";
    out += "  " + id(h.entity) + " [label=\"" + label + "\", " + style + "];\n";
    if (i > 0) out += "  " + id(inc.propagation[i - 1].entity) + " -> " + id(h.entity) + " [color=red, penwidth=2];\n";
  }
  for (size_t i = 1; i < inc.root_causes.size(); ++i) {
    const RootCause& rc = inc.root_causes[i];
    out += "  " + id(rc.entity) + " [style=dashed];\n";
    if (rc.path.size() > 1) {
      out += "  " + id(rc.entity) + " -> " + DotQuote(std::string("service ") + rc.path[1]) +
             " [style=dashed, color=gray40, label=" + DotQuote("#" + std::to_string(i + 1)) + "];\n";
    }
  }
  return out + "}\n";
}

}  // namespace faultline::diagnosis
