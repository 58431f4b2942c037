// Live diagnosis: stage 2 of the pipeline as a state machine, without Kafka or RocksDB (the
// runtime, live_runtime.h, feeds it and stores what it changes).
//
// Input: the records of `faultline.metrics` (model::ToWindowRecord), partial windows of each
// series from every input partition of the event topic. They are merged into one window per
// series (counts add, sketches merge exactly). A window start is *complete* once, for every
// input partition that is not idle, every partition of the metrics topic has carried past it: a
// later window's partial from that input partition, or a watermark record covering it
// (metrics.proto: the stream publishes an input partition's windows in order and then one
// watermark record on every metrics partition, so either one comes after all of that input
// partition's partials of the window on that metrics partition). A later window on one metrics
// partition says nothing about the others: a consumer's catch-up, or one slow partition, does
// not judge a window whose partials are still on their way. A partition whose newest window is
// more than `idle_s` behind the newest of all no longer holds completion back. Without the
// metrics topic's partition count (`metrics_partitions` 0: a feed that is not a Kafka topic), a
// later window from an input partition completes its earlier ones. A partial that arrives for a window
// already judged is counted (late_partials) and dropped, never merged into a judged window.
//
// Each complete window is judged: every series the detector rules watch (services and call edges:
// golden metrics and network health; machines: resources) gets its value computed as the catalog
// says and observed by its detector. An anomaly of an entry point's golden metric (latency,
// errors) in the way that harms its users (a rise: a fall is good news, and so is normal for an
// open incident) opens a diagnosis over the last `lookback_s` of merged windows: situation,
// attribution, fault trees, drill-down (Diagnose), and an incident.
//
// Entry points: services that serve (have server-side windows) and whose callers are outside the
// observed system (server-side calls from unknown hosts, or no observed caller at all), or are
// observed processes that serve nothing themselves (load generators, curl, batch jobs), or are
// listed in `entry_points`. A service every one of whose observed callers serves is an inner
// service, diagnosed only through the entry points it slows down.
//
// Lifecycle: an incident opens (sequence 1) at the first anomalous window; while it is open,
// every complete window re-diagnoses it (over everything since it opened, against the baseline
// before it opened: the fault's own windows never become its baseline; merged windows are kept
// for that, up to an hour per incident), and an update (sequence + 1) is published only when the
// top root cause, its fault class, the severity or the impact (in steps of 10%) changed; it
// resolves after `resolve_after` consecutive windows in which the detector judged the entry
// point's alarmed metric normal. An anomaly whose diagnosis names the root cause of an incident
// already open is that incident (counted in merged_into_open), not a new one. A machine running
// hot with no entry-point symptom opens nothing. An incident's identity (id, dedup key) is fixed
// when it opens.
//
// Persistence: TakeChanges lists every key and value changed since its last call (merged windows,
// completion state, detector states, incidents), and Restore rebuilds the same state from all of
// them; together with the input offsets committed in the same write batch, a restart continues
// exactly. The same inputs in the same order give the same incidents (ids are hashes of the
// identity and event times, never of wall clocks).
//
// Thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/detectors/config.h"
#include "faultline/detectors/detector.h"
#include "faultline/diagnosis/diagnose.h"
#include "faultline/diagnosis/incident.h"
#include "faultline/fta/fault_tree.h"
#include "faultline/model/identity.h"
#include "faultline/model/window_stats.h"

namespace faultline::diagnosis {

// The rules a fresh install uses (docs/diagnosis.md): robust median/MAD detectors with floors on
// what counts as a change, on the golden metrics and network health of services and call edges
// and on the resources of machines.
const detectors::DetectorConfig& DefaultDetectorConfig();
std::string_view DefaultDetectorConfigYaml();

struct LiveOptions {
  // History kept for situations, and each diagnosis's lookback. Default: 180.
  int64_t lookback_s = 180;
  // An input partition whose newest window is this far behind the newest of all no longer holds
  // completion back. Default: 30.
  int64_t idle_s = 30;
  // Consecutive normal windows of the entry point's alarmed metric that resolve an incident.
  // Default: 3.
  int resolve_after = 3;
  // An anomaly whose first root cause is residual (a service: what is left when nothing under it,
  // along its calls or on the network explains it; or a call edge seen slower or failing only by
  // its caller, with no network signal) opens an incident only if it is still anomalous
  // this many windows later: resources sampled once a window, and connection counts that cross
  // their floor a window after the first failed requests, get their chance to name a deeper
  // cause before the on-call engineer reads the first one. A one-window blip opens nothing.
  // Causes with evidence of their own (a network signal on an edge, a container, a machine) open
  // at once. Default: 1.
  int confirm_windows = 1;
  // Services that are entry points whatever their callers. Default: none.
  std::vector<std::string> entry_points;
  // Which detector watches which series (series no rule matches are not watched). Default:
  // DefaultDetectorConfig().
  detectors::DetectorConfig detectors = DefaultDetectorConfig();
  DiagnoseOptions diagnose;
  // Series watched at most; more are counted in series_over_limit and not watched. Default: 100000.
  size_t max_series = 100000;
  // Partitions of the metrics topic: a window is complete once all of them carried past it (0:
  // a later window from an input partition completes its earlier ones). Default: 0.
  int metrics_partitions = 0;
};

struct LiveCounters {
  uint64_t records = 0;          // records applied
  uint64_t undecodable = 0;      // records refused
  uint64_t late_partials = 0;    // partials of a window already judged, dropped
  uint64_t windows_judged = 0;   // window starts judged
  uint64_t evaluations = 0;      // detector observations
  uint64_t anomalies = 0;        // anomalous verdicts
  uint64_t diagnoses = 0;        // Diagnose calls
  uint64_t opened = 0, updated = 0, resolved = 0;
  uint64_t merged_into_open = 0;  // anomalies whose root cause was already an open incident's
  uint64_t held = 0;              // windows an anomaly with a service cause waited (confirm_windows)
  uint64_t held_dropped = 0;      // held anomalies normal again before they were confirmed
  uint64_t series_over_limit = 0;
  uint64_t states_refused = 0;    // restored detector states their detector could not read
  uint64_t outages = 0;           // windows an entry point was silent while its users were harmed
};

class LiveDiagnosis {
 public:
  // `trees` must outlive the object.
  LiveDiagnosis(LiveOptions options, const fta::FaultTrees* trees);
  ~LiveDiagnosis();
  LiveDiagnosis(const LiveDiagnosis&) = delete;
  LiveDiagnosis& operator=(const LiveDiagnosis&) = delete;

  // One record of faultline.metrics, as its bytes, read from metrics-topic partition
  // `metrics_partition`. Errors: kInvalidArgument naming what is wrong (the caller counts it and
  // goes on).
  Status Apply(std::string_view record, int32_t metrics_partition = 0);
  // Judges every window now complete, oldest first; returns the incidents that opened, changed
  // or resolved, in that order (each with its new status and sequence).
  std::vector<Incident> Advance();

  const LiveCounters& counters() const { return counters_; }
  // Every incident kept: open ones and the last resolved ones (at most 1000), newest first.
  std::vector<const Incident*> Incidents() const;
  // The last window start judged (0 before any).
  int64_t judged_until() const { return judged_until_; }
  // Series with a detector, including those whose restored state waits for their next window.
  size_t watched_series() const { return watch_.size() + restored_states_.size(); }
  void set_metrics_partitions(int n) { o_.metrics_partitions = n; }

  // Keys and values changed since the last call; a value of nullopt deletes the key.
  using Change = std::pair<std::string, std::optional<std::string>>;
  void TakeChanges(std::vector<Change>* out);
  // Rebuilds the state from every key and value TakeChanges ever wrote and did not delete.
  // Errors: kInvalidArgument naming the key that is malformed.
  Status Restore(const std::vector<std::pair<std::string, std::string>>& all);
  // Incidents are the records whose keys start with this; IncidentOfRecord reads one (for readers
  // of a stored state that do not restore it: `faultline incidents`). Errors: kInvalidArgument
  // naming the key.
  static constexpr std::string_view kIncidentPrefix = "i|";
  static Result<Incident> IncidentOfRecord(const std::string& key, const std::string& value);

 private:
  struct Watched {
    std::unique_ptr<detectors::Detector> detector;
    const detectors::DetectorRule* rule = nullptr;
    bool last_anomalous = false;
  };
  struct Tracked {
    Incident incident;
    Metric metric = Metric::kLatencyP99Ms;  // the entry point's alarmed metric
    int normal_streak = 0;
    std::string cause_key, fault_class;
    int impact_step = 0;
  };
  using WatchKey = std::tuple<EntityKind, std::string, Metric>;

  void Judge(int64_t start);
  void ObserveSeries(int64_t start, const std::vector<const model::StoredWindow*>& windows);
  void TrackCallers(const std::vector<const model::StoredWindow*>& windows, int64_t start);
  bool IsEntryPoint(const std::string& service) const;
  // An entry point with no window at `start`: whether its users are harmed (Silence::kOutage),
  // its observed callers stopped calling (kCallersLeft), or neither can be said yet (kUnknown).
  enum class Silence { kUnknown, kOutage, kCallersLeft };
  Silence JudgeSilence(const std::string& entry, int64_t start) const;
  // The alarm at `at_s` (its baseline is the lookback before it), the situation up to `until_s`.
  std::optional<Incident> DiagnoseAt(const std::string& entry, Metric metric, int64_t at_s,
                                     int64_t until_s);
  void Step(int64_t start, std::vector<Incident>* changes);
  std::vector<model::StoredWindow> History(int64_t from_s, int64_t to_s) const;
  void Dirty(std::string key, std::optional<std::string> value);
  // Every partial of `input_partition` on `metrics_partition` before `before` has been read.
  void Reached(int32_t input_partition, int32_t metrics_partition, int64_t before);
  void PutTracked(const Tracked& t);
  Watched* WatchFor(const WatchKey& key, const std::map<std::string, std::string>& labels);

  LiveOptions o_;
  const fta::FaultTrees* trees_;
  int64_t window_s_ = 0;
  // Merged windows by (start, series key), complete (judged) or pending.
  std::map<std::pair<int64_t, model::SeriesKey>, model::WindowStats> windows_;
  std::map<int32_t, int64_t> partition_newest_;  // input partition -> newest window start seen
  // input partition -> metrics partition -> every window of that input partition that starts
  // before this has been read on that metrics partition (a later window's partial, or a watermark
  // record covering it, came after it in the partition's order).
  std::map<int32_t, std::map<int32_t, int64_t>> reached_;
  int64_t judged_until_ = 0;
  // Every listener binding seen: edges resolve their callees against it.
  model::Identity identity_;
  // Who calls whom (HTTP requests seen), and who serves: by service, with the last window start.
  std::map<std::string, std::map<std::string, int64_t>> callers_;
  std::map<std::string, int64_t> serving_;
  // The callee services whose observed callers' calls failed (refused, timed out, reset by the
  // peer) in the window TrackCallers last saw, `failed_calls_start_`.
  int64_t failed_calls_start_ = -1;
  std::set<std::string> failed_calls_;
  std::map<WatchKey, Watched> watch_;
  // Detector states restored and not yet applied: a series' state goes into its detector when
  // the series is next observed, so that its rule is matched with the series' own labels.
  std::map<WatchKey, std::string> restored_states_;
  // The last verdict of each series: (window, anomalous in the way that harms users).
  std::map<WatchKey, std::pair<int64_t, bool>> verdicts_;
  std::map<std::string, Tracked> tracked_;  // by incident id
  // Entry points whose anomaly with a service cause waits for confirm_windows: by entry, the
  // metric and the window it was first seen in.
  struct Held {
    Metric metric = Metric::kLatencyP99Ms;
    int64_t since = 0;
  };
  std::map<std::string, Held> held_;
  void PutHeld(const std::string& entry, const Held* held);
  std::vector<std::string> resolved_order_;  // resolved incident ids, oldest first
  std::map<std::string, std::optional<std::string>> dirty_;
  LiveCounters counters_;
};

}  // namespace faultline::diagnosis
