// Horizontal, vertical and network-edge attribution over a Situation: from the alarmed service,
// find the places whose own behaviour explains the symptom, rank them, and give the path by which
// each propagates to the alarm.
//
// Every series is judged the same way around the alarm: windows before (alarm - lead windows) are
// the baseline (median and MAD), the rest is the test period; a series is anomalous when, from the
// first test window beyond `z_threshold` robust standard deviations in the direction of its most
// extreme test window, the median of the test values still is (or the median from a later window,
// when that is at least twice as far: a lead window's noise does not hide a step at the alarm),
// and differs from the baseline median by at least `min_change` of it and by at least the
// metric's noise floor in the catalog (MetricInfo::min_delta: one major fault from a zero
// baseline is not an anomaly). A detector's verdict in the situation overrides the anomalous/normal call (the robust z still gives the
// direction). Two series "agree in shape" when their Pearson correlation over the situation is at
// least `min_correlation`.
//
//  * Horizontal: from a service, each callee (calls edges) whose metrics of the symptom's family
//    (latency explains latency; latency or errors explain errors; requests explain requests) are
//    anomalous in the same direction and agree in shape explains it; the walk recurses into the
//    explainers. A callee anomalous only the other way, or whose shape is the symptom's mirror
//    image, is set aside with the reason. A service nothing downstream explains is a root cause.
//  * Network edge: when the caller's view of an edge is anomalous but the callee's own view is
//    not, the edge is the candidate, with the edge's network health (retransmits, drops, resets,
//    failed connects, RTT) that rose at the same time as its evidence.
//  * Vertical: for a root-cause service, its instances, the containers they run in and the
//    machines under those: resource series (CPU, memory, I/O families) that rose anomalously and
//    agree in shape with the service's symptom make that container or machine the deeper cause,
//    the service one step of the path. For a service a callee explains (a hop on the path), only
//    the machines under it, and only when they show a saturation of their own (a busy machine
//    slows every service on it, whatever its callees do).
// Ranking: resource causes, then network edges with network evidence, then services, then edges
// seen only from the caller; within a class by strength (|z| and correlation). Among resource
// causes, evidence of a limit or saturation (a container's throttling, memory limit or OOM
// kills; a machine's CPU busy ratio, available memory or I/O latency) outranks run-queue
// latency alone, which any container on a busy machine shows.
// Metric families come from the catalog (faultline/common/catalog.h).
//
// Thread-compatible; pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "faultline/topology/situation.h"

namespace faultline::topology {

struct AttributionOptions {
  // Default: 4.
  double z_threshold = 4;
  // Relative to the baseline median. Default: 0.2.
  double min_change = 0.2;
  // Default: 0.6.
  double min_correlation = 0.6;
  // Shapes are compared over the test period and this many baseline windows before it, not over
  // the whole lookback: an earlier, unrelated episode in the lookback (a fault fixed a minute
  // before) would otherwise make two series agree or disagree by what they did then. Default: 6.
  size_t correlation_windows = 6;
  // A callee (or the caller's view of an edge) explains a symptom in the same unit only if its
  // change is at least this share of the symptom's: a callee 2 ms slower does not explain a
  // caller 300 ms slower, however alike their shapes. Default: 0.3.
  double min_explained_share = 0.3;
  // A cause may start this many windows before the alarm. Default: 2.
  int64_t lead_windows = 2;
  // Baseline windows needed to judge a series. Default: 6.
  size_t min_baseline = 6;
  // The smallest slowdown that makes calls time out: a callee's latency, or run-queue waits,
  // explain a caller's errors only from this many ms more (and, for a callee, twice its
  // baseline). Default: 100.
  double timeout_scale_ms = 100;
  // The least share of a latency symptom's rise that a rise of waits (run queue, block I/O) must
  // be to explain it. Default: 0.1.
  double contention_share = 0.1;
  // A machine this busy has no CPU to spare: its busy ratio is a saturation (a limit), not just
  // more work. Default: 0.8.
  double saturated_busy_ratio = 0.8;
};

// One series' behaviour around the alarm.
struct SeriesAnomaly {
  SeriesRef ref;
  bool anomalous = false;
  double z = 0;  // signed, of the test period's median against the baseline
  double baseline = 0, observed = 0;
  size_t baseline_windows = 0;  // with data; fewer than min_baseline: not judged
  int64_t start_s = 0;          // first test window beyond the threshold (when anomalous)
  double correlation = 0;       // with the series it is compared to (the symptom it may explain)
  std::string verdict_from;     // the detector whose verdict decided, "" when the robust z did
};

// Whether `part`'s change (observed - baseline) is at least `share` of `whole`'s, in size: a
// callee's change explaining its caller's (attribution and the fault trees' callee role).
inline bool ChangeAccountsFor(const SeriesAnomaly& part, const SeriesAnomaly& whole, double share) {
  const double p = part.observed - part.baseline, w = whole.observed - whole.baseline;
  return (p < 0 ? -p : p) >= share * (w < 0 ? -w : w);
}

// Judges series around a situation's alarm the way attribution does (the paragraph above):
// windows before alarm - lead_windows are the baseline, the rest the test period.
class SeriesJudge {
 public:
  // The situation must outlive the judge; the options are copied.
  SeriesJudge(const Situation& situation, const AttributionOptions& options);
  // `compare` (may be null) is the series whose shape the correlation is taken with.
  SeriesAnomaly Judge(const MetricSeries& series, const MetricSeries* compare = nullptr) const;
  // The first window of the test period.
  size_t split() const { return split_; }

 private:
  const Situation& s_;
  AttributionOptions o_;
  size_t split_ = 0;
};

// A located cause: a service, an edge ("caller->callee"), an instance, a container or a machine.
struct Candidate {
  EntityKind kind = EntityKind::kService;
  std::string entity;  // edges: "caller->callee"
  double score = 0;
  std::vector<SeriesAnomaly> evidence;
  std::vector<std::string> path;  // from the cause to the alarmed service
  std::string explanation;
};

struct SetAside {
  std::string entity;
  std::string reason;
};

struct AttributionResult {
  SeriesAnomaly symptom;
  std::vector<Candidate> candidates;  // best first
  std::vector<SetAside> set_aside;
  std::string summary;  // one line
};

AttributionResult Attribute(const Situation& situation, const AttributionOptions& options = {});

// For people: the summary, then each candidate with its evidence and path, then what was set
// aside. JSON: the same as one object.
std::string AttributionToText(const AttributionResult& result);
std::string AttributionToJson(const AttributionResult& result);

}  // namespace faultline::topology
