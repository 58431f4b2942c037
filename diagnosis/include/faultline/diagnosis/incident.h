// The incident: what faultline's users consume. One object says what is wrong (the phenomenon on
// an entry point, how far from normal, since when, how many requests it touches), where (the
// ranked root causes, with evidence), what kind of fault (the fault-tree classes that hold and
// the explanation of the first), and how it propagated (the path from the cause to the entry
// point), plus the dimension drill-down and a link to the situation it was built from.
//
// Identity and lifecycle: `dedup_key` is the incident's identity (entry point + root cause),
// never its severity or class; `id` is stable for one incident (a hash of the dedup key and the
// time it opened); `status` goes open -> updated* -> resolved and `sequence` grows by one with
// every change, so consumers can order and de-duplicate deliveries. The JSON form is defined by
// schema/incident.schema.json (JSON Schema 2020-12; `schema_version` 1); its `labels` and
// `annotations` follow Alertmanager's shape, `dedup_key` PagerDuty's, and `id` + `sequence` make a
// CloudEvents id.
//
// Thread-compatible value types; the renderers are pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/catalog.h"
#include "faultline/common/status.h"

namespace faultline::diagnosis {

inline constexpr int kIncidentSchemaVersion = 1;

struct EntityRef {
  EntityKind kind = EntityKind::kService;
  std::string name;
  friend bool operator==(const EntityRef&, const EntityRef&) = default;
};

// A metric of an entity before and after: the baseline's median, the test period's median, the
// robust z of the change and when it started (0 when it did not change).
struct MetricChange {
  EntityRef entity;
  Metric metric = Metric::kRequests;
  double baseline = 0, observed = 0, z = 0;
  int64_t since_s = 0;
  bool anomalous = false;
};

enum class IncidentStatus : uint8_t { kOpen, kUpdated, kResolved };
std::string_view IncidentStatusName(IncidentStatus s);
// PagerDuty's severities (critical, error, warning, info), which Alertmanager receivers map too.
enum class Severity : uint8_t { kCritical, kError, kWarning, kInfo };
std::string_view SeverityName(Severity s);

struct Impact {
  double share = 0;   // of the entry point's requests, in [0, 1]
  std::string basis;  // how the share was computed (see schema/incident.schema.json)
  // With basis drilldown: the entry point's endpoints, and those affected (0: not known).
  size_t endpoints = 0, endpoints_affected = 0;
};

struct Phenomenon {
  EntityRef entry;
  MetricChange change;      // the entry point's alarmed metric
  double change_ratio = 0;  // observed / baseline (0 when the baseline is 0)
  Impact impact;
};

struct FaultClassMatch {
  std::string name, title, description, action;
  int priority = 0;
  size_t true_events = 0;
  double strength = 0;
};

// One node of a fault tree as evaluated: the explanation.
struct ExplainedNode {
  std::string type;   // all, any, not, at_least, ref, event
  std::string label;  // "at least 2 of", the ref's name, the basic event in words
  bool held = false;
  std::string note;   // basic events: what was looked at
  std::vector<MetricChange> evidence;
  std::vector<ExplainedNode> children;
};

struct RootCause {
  EntityRef entity;
  double score = 0;
  std::string explanation;  // attribution's, in words
  std::vector<MetricChange> evidence;
  std::vector<std::string> path;  // from the cause to the entry point
  std::vector<FaultClassMatch> classes;  // the fault classes that hold, best first
};

struct FaultTreeExplanation {
  std::string fault_class;  // the top root cause's first class ("" when none held)
  ExplainedNode tree;       // its evaluation
  std::vector<std::string> not_held;  // the classes that did not hold for the top cause
};

// One step of the propagation path, from the cause to the entry point.
struct Hop {
  EntityRef entity;
  std::string role;         // cause, hop or entry
  std::string fault_class;  // the cause's first class ("" on hops and the entry, or none held)
  // Hops and the entry: the metric family the fault reached them in (latency, errors, traffic).
  std::string propagated;
  std::optional<MetricChange> change;  // the symptom's metric on this hop, when it has one
};

struct DrillDownFinding {
  std::string service;
  Metric kpi = Metric::kRequests;  // error_rate, latency_mean_ms or requests
  std::vector<std::string> elements;  // "endpoint=GET /cart&instance=db-2", most explanatory first
  size_t leaves = 0, abnormal_leaves = 0, unexplained = 0;
  double share = 0;  // of the service's requests in the test period that the elements hold
  // Of the service's requests in the test period, the share in abnormal leaves (the endpoint,
  // instance and machine combinations whose KPI itself deviated): what the fault touched.
  double affected_share = 0;
  size_t endpoints = 0, endpoints_affected = 0;  // distinct endpoints, and those with an abnormal leaf
};

struct SituationLink {
  std::string source;  // the file or URL it was read from
  int64_t window_s = 0, start_s = 0, end_s = 0;
  EntityRef alarm_entity;
  Metric alarm_metric = Metric::kRequests;
  int64_t alarm_at_s = 0;
};

struct Incident {
  std::string id, dedup_key, fingerprint;
  IncidentStatus status = IncidentStatus::kOpen;
  uint64_t sequence = 1;
  int64_t opened_at_s = 0, updated_at_s = 0;
  std::optional<int64_t> resolved_at_s;
  Severity severity = Severity::kWarning;
  std::string title;    // one line
  std::string summary;  // the root-cause summary: one sentence a person can act on
  Phenomenon phenomenon;
  std::vector<MetricChange> key_metrics;
  std::vector<RootCause> root_causes;  // ranked
  FaultTreeExplanation fault_tree;
  std::vector<Hop> propagation;
  std::vector<DrillDownFinding> drilldown;
  // Services attribution looked at along the calls and set aside, with why (a callee that moved
  // the opposite way, say): what the reader would otherwise wonder about.
  struct SetAside {
    std::string entity, reason;
  };
  std::vector<SetAside> set_aside;
  SituationLink situation;
  std::map<std::string, std::string> labels, annotations;
};

// "service:gateway|edge:gateway->api": the identity of an incident.
std::string DedupKey(const EntityRef& entry, const EntityRef& cause);
// 16 lower-case hex digits of a 64-bit FNV-1a hash: stable across builds and platforms.
std::string StableHash(std::string_view text);
// RFC 3339 UTC, "2026-12-01T22:29:52Z".
std::string Rfc3339(int64_t unix_s);
// For reports: 3 significant digits ("0.197", "44.1"; "1897" from 1000 on); a metric's value in
// its unit ("44.1 ms", "800 MiB", ratios as "16%"); "service db".
std::string FormatNumber(double v);
std::string FormatValue(double v, Metric m);
std::string EntityText(const EntityRef& e);

// The JSON form (schema/incident.schema.json), one line.
std::string IncidentToJson(const Incident& incident);
// Back from that form (what the incident store and consumers read). Errors: kInvalidArgument
// naming the JSON path of what is missing or malformed.
Result<Incident> IncidentFromJson(std::string_view json);
// For people in a terminal: the phenomenon, the summary, root causes, explanation, path.
std::string IncidentToText(const Incident& incident);
std::string IncidentToMarkdown(const Incident& incident);
// The propagation path (and the other root causes) as a Graphviz digraph.
std::string PropagationToDot(const Incident& incident);

}  // namespace faultline::diagnosis
