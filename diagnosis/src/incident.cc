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

Json ImpactJson(const Impact& i) {
  Json j = {{"share", Finite(i.share)}, {"basis", i.basis}};
  if (i.endpoints > 0) {
    j["endpoints"] = i.endpoints;
    j["endpoints_affected"] = i.endpoints_affected;
  }
  return j;
}

std::string ImpactText(const Impact& i, const std::string& entry) {
  std::string out = FormatNumber(i.share * 100) + "% of " + entry + "'s requests (" + i.basis;
  if (i.endpoints > 0)
    out += "; " + std::to_string(i.endpoints_affected) + " of " + std::to_string(i.endpoints) +
           " endpoints";
  return out + ")";
}

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
                     {"impact", ImpactJson(p.impact)}};
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
  Json aside = Json::array();
  for (const Incident::SetAside& a : inc.set_aside)
    aside.push_back({{"entity", a.entity}, {"reason", a.reason}});
  j["set_aside"] = std::move(aside);
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
  out += "Impact:  " + ImpactText(inc.phenomenon.impact, inc.phenomenon.entry.name) + "\n";
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
  if (!inc.set_aside.empty()) {
    out += "\nSet aside\n";
    for (const Incident::SetAside& a : inc.set_aside) out += "  " + a.entity + ": " + a.reason + "\n";
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
  out += "**Impact:** " + ImpactText(inc.phenomenon.impact, inc.phenomenon.entry.name) + "  \n";
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
  if (!inc.set_aside.empty()) {
    out += "\n### Set aside\n\n";
    for (const Incident::SetAside& a : inc.set_aside) out += "- " + a.entity + ": " + a.reason + "\n";
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

namespace faultline::diagnosis {
namespace {

// Reads IncidentToJson's layout; every error names the JSON path.
class IncidentReader {
 public:
  Status error;
  const nlohmann::json& At(const nlohmann::json& j, const std::string& path, const char* key) {
    static const nlohmann::json kNull;
    if (!error.ok()) return kNull;
    if (!j.is_object() || !j.contains(key)) {
      error = InvalidArgument("incident: " + path + key + ": missing");
      return kNull;
    }
    return j[key];
  }
  // A field that must be an array (or an object, for Obj); an empty one on error.
  const nlohmann::json& Arr(const nlohmann::json& j, const std::string& path, const char* key) {
    static const nlohmann::json kEmpty = nlohmann::json::array();
    const auto& v = At(j, path, key);
    if (!error.ok()) return kEmpty;
    if (!v.is_array()) {
      error = InvalidArgument("incident: " + path + key + ": expected an array");
      return kEmpty;
    }
    return v;
  }
  const nlohmann::json& Obj(const nlohmann::json& j, const std::string& path, const char* key) {
    static const nlohmann::json kEmpty = nlohmann::json::object();
    const auto& v = At(j, path, key);
    if (!error.ok()) return kEmpty;
    if (!v.is_object()) {
      error = InvalidArgument("incident: " + path + key + ": expected an object");
      return kEmpty;
    }
    return v;
  }
  std::string Str(const nlohmann::json& j, const std::string& path, const char* key) {
    const auto& v = At(j, path, key);
    if (!error.ok()) return "";
    if (v.is_null()) return "";
    if (!v.is_string()) error = InvalidArgument("incident: " + path + key + ": expected a string");
    return error.ok() ? v.get<std::string>() : "";
  }
  double Num(const nlohmann::json& j, const std::string& path, const char* key) {
    const auto& v = At(j, path, key);
    if (!error.ok()) return 0;
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      error = InvalidArgument("incident: " + path + key + ": expected a number");
    return error.ok() ? v.get<double>() : 0;
  }
  // A whole number in [0, 2^53] (what a double holds exactly).
  int64_t Count(const nlohmann::json& j, const std::string& path, const char* key) {
    const double v = Num(j, path, key);
    if (!error.ok()) return 0;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != std::floor(v)) {
      error = InvalidArgument("incident: " + path + key + ": expected a whole number from 0 to 2^53");
      return 0;
    }
    return static_cast<int64_t>(v);
  }
  int64_t Time(const nlohmann::json& j, const std::string& path, const char* key) {
    const auto& v = At(j, path, key);
    if (!error.ok() || v.is_null()) return 0;
    std::tm tm{};
    const std::string s = v.is_string() ? v.get<std::string>() : "";
    if (!strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
      error = InvalidArgument("incident: " + path + key + ": expected an RFC 3339 UTC time");
      return 0;
    }
    return static_cast<int64_t>(timegm(&tm));
  }
  EntityRef Entity(const nlohmann::json& j, const std::string& path) {
    EntityRef e;
    auto k = ParseEntityKind(Str(j, path, "kind"));
    if (error.ok() && !k.ok()) error = InvalidArgument("incident: " + path + "kind: " + k.status().message());
    if (error.ok()) e.kind = *k;
    e.name = Str(j, path, "name");
    return e;
  }
  Metric MetricOf(const nlohmann::json& j, const std::string& path, const char* key) {
    auto m = ParseMetric(Str(j, path, key));
    if (error.ok() && !m.ok()) error = InvalidArgument("incident: " + path + key + ": " + m.status().message());
    return error.ok() ? *m : Metric::kRequests;
  }
  MetricChange Change(const nlohmann::json& j, const std::string& path) {
    MetricChange c;
    c.entity = Entity(At(j, path, "entity"), path + "entity.");
    c.metric = MetricOf(j, path, "metric");
    c.baseline = Num(j, path, "baseline");
    c.observed = Num(j, path, "observed");
    c.z = Num(j, path, "z");
    c.since_s = Time(j, path, "since");
    const auto& a = At(j, path, "anomalous");
    c.anomalous = a.is_boolean() && a.get<bool>();
    return c;
  }
  ExplainedNode Node(const nlohmann::json& j, const std::string& path, int depth) {
    ExplainedNode n;
    if (depth > 200) {
      error = InvalidArgument("incident: " + path + ": nested too deep");
      return n;
    }
    n.type = Str(j, path, "type");
    n.label = Str(j, path, "label");
    const auto& h = At(j, path, "held");
    n.held = h.is_boolean() && h.get<bool>();
    if (j.contains("note")) n.note = Str(j, path, "note");
    if (j.is_object() && j.contains("evidence")) {
      const auto& ev = Arr(j, path, "evidence");
      for (size_t i = 0; error.ok() && i < ev.size(); ++i)
        n.evidence.push_back(Change(ev[i], path + "evidence[" + std::to_string(i) + "]."));
    }
    if (j.is_object() && j.contains("children")) {
      const auto& ch = Arr(j, path, "children");
      for (size_t i = 0; error.ok() && i < ch.size(); ++i)
        n.children.push_back(Node(ch[i], path + "children[" + std::to_string(i) + "].", depth + 1));
    }
    return n;
  }
};

}  // namespace

Result<Incident> IncidentFromJson(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("incident: not a JSON object");
  IncidentReader r;
  Incident i;
  if (r.Num(j, "", "schema_version") != kIncidentSchemaVersion && r.error.ok())
    return InvalidArgument("incident: schema_version: expected 1");
  i.id = r.Str(j, "", "id");
  i.dedup_key = r.Str(j, "", "dedup_key");
  i.fingerprint = r.Str(j, "", "fingerprint");
  const std::string status = r.Str(j, "", "status");
  i.status = status == "resolved" ? IncidentStatus::kResolved
             : status == "updated" ? IncidentStatus::kUpdated
                                   : IncidentStatus::kOpen;
  i.sequence = static_cast<uint64_t>(r.Count(j, "", "sequence"));
  i.opened_at_s = r.Time(j, "", "opened_at");
  i.updated_at_s = r.Time(j, "", "updated_at");
  if (r.error.ok() && j.contains("resolved_at") && !j["resolved_at"].is_null()) i.resolved_at_s = r.Time(j, "", "resolved_at");
  const std::string severity = r.Str(j, "", "severity");
  for (Severity s : {Severity::kCritical, Severity::kError, Severity::kWarning, Severity::kInfo})
    if (SeverityName(s) == severity) i.severity = s;
  i.title = r.Str(j, "", "title");
  i.summary = r.Str(j, "", "summary");
  const auto& p = r.At(j, "", "phenomenon");
  i.phenomenon.entry = r.Entity(r.At(p, "phenomenon.", "entity"), "phenomenon.entity.");
  i.phenomenon.change.entity = i.phenomenon.entry;
  i.phenomenon.change.metric = r.MetricOf(p, "phenomenon.", "metric");
  i.phenomenon.change.baseline = r.Num(p, "phenomenon.", "baseline");
  i.phenomenon.change.observed = r.Num(p, "phenomenon.", "observed");
  i.phenomenon.change.z = r.Num(p, "phenomenon.", "z");
  i.phenomenon.change.since_s = r.Time(p, "phenomenon.", "since");
  i.phenomenon.change.anomalous = true;
  i.phenomenon.change_ratio = r.Num(p, "phenomenon.", "change_ratio");
  const auto& impact = r.At(p, "phenomenon.", "impact");
  i.phenomenon.impact.share = r.Num(impact, "phenomenon.impact.", "share");
  i.phenomenon.impact.basis = r.Str(impact, "phenomenon.impact.", "basis");
  if (r.error.ok() && impact.is_object() && impact.contains("endpoints")) {
    i.phenomenon.impact.endpoints = static_cast<size_t>(r.Count(impact, "phenomenon.impact.", "endpoints"));
    i.phenomenon.impact.endpoints_affected =
        static_cast<size_t>(r.Count(impact, "phenomenon.impact.", "endpoints_affected"));
  }
  const auto& keys = r.Arr(j, "", "key_metrics");
  for (size_t k = 0; r.error.ok() && k < keys.size(); ++k)
    i.key_metrics.push_back(r.Change(keys[k], "key_metrics[" + std::to_string(k) + "]."));
  const auto& causes = r.Arr(j, "", "root_causes");
  for (size_t k = 0; r.error.ok() && k < causes.size(); ++k) {
    const std::string path = "root_causes[" + std::to_string(k) + "].";
    const auto& c = causes[k];
    RootCause rc;
    rc.entity = r.Entity(r.At(c, path, "entity"), path + "entity.");
    rc.score = r.Num(c, path, "score");
    rc.explanation = r.Str(c, path, "explanation");
    const auto& ev = r.Arr(c, path, "evidence");
    for (size_t e = 0; r.error.ok() && e < ev.size(); ++e)
      rc.evidence.push_back(r.Change(ev[e], path + "evidence[" + std::to_string(e) + "]."));
    const auto& pa = r.Arr(c, path, "path");
    for (size_t e = 0; r.error.ok() && e < pa.size(); ++e)
      rc.path.push_back(pa[e].is_string() ? pa[e].get<std::string>() : "");
    const auto& fc = r.Arr(c, path, "fault_classes");
    for (size_t e = 0; r.error.ok() && e < fc.size(); ++e) {
      const std::string fp = path + "fault_classes[" + std::to_string(e) + "].";
      FaultClassMatch m;
      m.name = r.Str(fc[e], fp, "name");
      m.title = r.Str(fc[e], fp, "title");
      m.priority = static_cast<int>(r.Count(fc[e], fp, "priority"));
      m.true_events = static_cast<size_t>(r.Count(fc[e], fp, "true_events"));
      m.strength = r.Num(fc[e], fp, "strength");
      rc.classes.push_back(std::move(m));
    }
    i.root_causes.push_back(std::move(rc));
  }
  const auto& ft = r.At(j, "", "fault_tree");
  i.fault_tree.fault_class = r.Str(ft, "fault_tree.", "class");
  if (r.error.ok() && !i.root_causes.empty() && !i.root_causes[0].classes.empty()) {
    i.root_causes[0].classes[0].description = r.Str(ft, "fault_tree.", "description");
    i.root_causes[0].classes[0].action = r.Str(ft, "fault_tree.", "action");
  }
  if (r.error.ok() && ft.is_object() && ft.contains("tree") && !ft["tree"].is_null())
    i.fault_tree.tree = r.Node(ft["tree"], "fault_tree.tree.", 0);
  const auto& nh = r.Arr(ft, "fault_tree.", "not_held");
  for (size_t e = 0; r.error.ok() && e < nh.size(); ++e)
    i.fault_tree.not_held.push_back(nh[e].is_string() ? nh[e].get<std::string>() : "");
  const auto& hops = r.Arr(j, "", "propagation");
  for (size_t k = 0; r.error.ok() && k < hops.size(); ++k) {
    const std::string path = "propagation[" + std::to_string(k) + "].";
    Hop h;
    h.entity = r.Entity(r.At(hops[k], path, "entity"), path + "entity.");
    h.role = r.Str(hops[k], path, "role");
    h.fault_class = r.Str(hops[k], path, "fault_class");
    h.propagated = r.Str(hops[k], path, "propagated");
    if (r.error.ok() && hops[k].contains("change") && !hops[k]["change"].is_null()) h.change = r.Change(hops[k]["change"], path + "change.");
    i.propagation.push_back(std::move(h));
  }
  const auto& drill = r.Arr(j, "", "drilldown");
  for (size_t k = 0; r.error.ok() && k < drill.size(); ++k) {
    const std::string path = "drilldown[" + std::to_string(k) + "].";
    DrillDownFinding f;
    f.service = r.Str(drill[k], path, "service");
    f.kpi = r.MetricOf(drill[k], path, "kpi");
    const auto& el = r.Arr(drill[k], path, "elements");
    for (size_t e = 0; r.error.ok() && e < el.size(); ++e)
      f.elements.push_back(el[e].is_string() ? el[e].get<std::string>() : "");
    f.leaves = static_cast<size_t>(r.Count(drill[k], path, "leaves"));
    f.abnormal_leaves = static_cast<size_t>(r.Count(drill[k], path, "abnormal_leaves"));
    f.unexplained = static_cast<size_t>(r.Count(drill[k], path, "unexplained"));
    f.share = r.Num(drill[k], path, "share");
    i.drilldown.push_back(std::move(f));
  }
  if (r.error.ok() && j.contains("set_aside")) {  // absent from incidents stored before it existed
    const auto& aside = r.Arr(j, "", "set_aside");
    for (size_t k = 0; r.error.ok() && k < aside.size(); ++k) {
      const std::string path = "set_aside[" + std::to_string(k) + "].";
      i.set_aside.push_back({r.Str(aside[k], path, "entity"), r.Str(aside[k], path, "reason")});
    }
  }
  const auto& s = r.At(j, "", "situation");
  i.situation.source = r.Str(s, "situation.", "source");
  i.situation.window_s = static_cast<int64_t>(r.Count(s, "situation.", "window_s"));
  i.situation.start_s = r.Time(s, "situation.", "start");
  i.situation.end_s = r.Time(s, "situation.", "end");
  const auto& alarm = r.At(s, "situation.", "alarm");
  i.situation.alarm_entity = r.Entity(r.At(alarm, "situation.alarm.", "entity"), "situation.alarm.entity.");
  i.situation.alarm_metric = r.MetricOf(alarm, "situation.alarm.", "metric");
  i.situation.alarm_at_s = r.Time(alarm, "situation.alarm.", "at");
  for (const char* field : {"labels", "annotations"}) {
    const auto& m = r.Obj(j, "", field);
    if (!r.error.ok()) break;
    auto& into = std::string(field) == "labels" ? i.labels : i.annotations;
    for (const auto& [k, v] : m.items())
      if (v.is_string()) into[k] = v.get<std::string>();
  }
  if (!r.error.ok()) return r.error;
  return i;
}

}  // namespace faultline::diagnosis
