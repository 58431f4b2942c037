#include "faultline/diagnosis/live.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "faultline/common/stats.h"
#include "faultline/model/identity.h"
#include "faultline/model/window_record.h"
#include "faultline/model/window_stats.h"
#include "faultline/topology/situation.h"
#include "metrics.pb.h"

namespace faultline::diagnosis {
namespace {

constexpr std::string_view kExternalCaller = "\x01external";
constexpr size_t kResolvedKept = 1000;
// The chance, per entry point and window, that silence judged beyond chance is chance after all
// (JudgeSilence): one in a million windows, a false page every 58 days of 5 s windows per entry
// point if its traffic were Poisson at its usual rate.
constexpr double kSilenceFalseAlarm = 1e-6;
// Re-diagnosis of an open incident looks back at most this far from its opening.
constexpr int64_t kMaxIncidentSpan = 3600;
// Where the alarm of an incident open at `now_s` is re-diagnosed from.
int64_t RediagnosedFrom(int64_t opened_at_s, int64_t now_s) {
  return std::max(opened_at_s, now_s - kMaxIncidentSpan);
}

std::string StartKey(int64_t start) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%012lld", static_cast<long long>(start));
  return buf;
}

std::string WindowKey(int64_t start, const model::SeriesKey& key) {
  return "w|" + StartKey(start) + "|" + key.Encode();
}

std::string WatchKeyText(EntityKind kind, const std::string& entity, Metric metric) {
  std::string k = "d|";
  k.push_back(static_cast<char>(kind));
  k += entity;
  k.push_back('\0');
  k += MetricName(metric);
  return k;
}

// A state record Restore cannot read: its key (printable) and what is wrong.
Status BadRecord(const std::string& key, const std::string& what) {
  std::string shown;
  for (char c : key) shown += (c >= 32 && c < 127) ? c : '?';
  return InvalidArgument("diagnosis state: key \"" + shown + "\": " + what);
}

// Whether an anomaly that went `direction` harms the users of what the metric measures: latency
// and errors only when they rise (a fall is good news, as after a fault is reverted), a metric
// whose bad way is down (available memory) only when it falls; a metric bad either way, or a
// detector that does not say which way the value went, as the detector says.
bool Harms(Metric metric, Direction direction) {
  if (direction == Direction::kNone) return true;
  switch (Info(metric).polarity) {
    case Polarity::kUpIsBad: return direction == Direction::kUp;
    case Polarity::kDownIsBad: return direction == Direction::kDown;
    default: return true;
  }
}

// Which golden metrics of an entry point open a diagnosis, in the order they are tried.
constexpr Metric kTriggers[] = {Metric::kLatencyP99Ms, Metric::kErrorRate, Metric::kLatencyMeanMs,
                                Metric::kErrors, Metric::kLatencyP90Ms};

}  // namespace

std::string_view DefaultDetectorConfigYaml() {
  return R"(# faultline's default detector rules (docs/diagnosis.md). Each is a rolling median/MAD over
# the last 120 windows (10 minutes of 5 s windows): a point is anomalous beyond k robust
# deviations AND at least min_change (relative) or min_delta (absolute) away from the median, so
# a quiet system's jitter is not an incident; anomalous points are kept out of the window (hold),
# so a sustained fault stays anomalous until it ends. They need 12 windows (one minute) of
# history.
rules:
  - match: {kind: service, metric: latency_p99_ms}
    detector: mad
    params: {window: 120, k: 6, min_points: 12, hold: 1, min_change: 0.5, min_delta: 10}
  - match: {kind: service, metric: error_rate}
    detector: mad
    params: {window: 120, k: 6, min_points: 12, hold: 1, min_delta: 0.02}
  - match: {kind: edge, metric: latency_p99_ms}
    detector: mad
    params: {window: 120, k: 6, min_points: 12, hold: 1, min_change: 0.5, min_delta: 10}
  - match: {kind: edge, metric: error_rate}
    detector: mad
    params: {window: 120, k: 6, min_points: 12, hold: 1, min_delta: 0.02}
  - match: {kind: edge, metric: retransmits}
    detector: mad
    params: {window: 120, k: 6, min_points: 12, hold: 1, min_delta: 5}
  - match: {kind: edge, metric: connects_refused}
    detector: mad
    params: {window: 120, k: 6, min_points: 12, hold: 1, min_delta: 3}
  - match: {kind: machine, metric: cpu_busy_ratio}
    detector: mad
    params: {window: 120, k: 6, min_points: 12, hold: 1, min_delta: 0.2}
  - match: {kind: machine, metric: runq_p99_ms}
    detector: mad
    params: {window: 120, k: 6, min_points: 12, hold: 1, min_change: 1, min_delta: 5}
)";
}

const detectors::DetectorConfig& DefaultDetectorConfig() {
  static const detectors::DetectorConfig config = [] {
    auto c = detectors::ParseDetectorConfig(std::string(DefaultDetectorConfigYaml()),
                                            "default detector rules (built in)");
    if (!c.ok()) {
      std::fprintf(stderr, "faultline: %s\n", c.status().message().c_str());
      std::abort();
    }
    return std::move(*c);
  }();
  return config;
}

LiveDiagnosis::LiveDiagnosis(LiveOptions options, const fta::FaultTrees* trees)
    : o_(std::move(options)), trees_(trees) {}

LiveDiagnosis::~LiveDiagnosis() = default;

void LiveDiagnosis::Dirty(std::string key, std::optional<std::string> value) {
  dirty_[std::move(key)] = std::move(value);
}

void LiveDiagnosis::Reached(int32_t input_partition, int32_t metrics_partition, int64_t before) {
  int64_t& r = reached_[input_partition][metrics_partition];
  if (before <= r) return;
  r = before;
  Dirty("m|reached|" + std::to_string(input_partition) + "|" + std::to_string(metrics_partition),
        std::to_string(r));
}

Status LiveDiagnosis::Apply(std::string_view bytes, int32_t metrics_partition) {
  v1::WindowRecord r;
  auto refuse = [&](const std::string& what) {
    counters_.undecodable++;
    return InvalidArgument("window record: " + what);
  };
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return refuse("not protobuf");
  if (r.kind() == model::kWatermarkRecordKind) {
    if (r.window_seconds() == 0 || r.window_seconds() > 86400)
      return refuse("watermark with window_seconds " + std::to_string(r.window_seconds()));
    Reached(r.input_partition(), metrics_partition,
            r.window_start_unix_s() + static_cast<int64_t>(r.window_seconds()));
    int64_t& newest = partition_newest_[r.input_partition()];
    newest = std::max(newest, r.window_start_unix_s());
    Dirty("m|partition|" + std::to_string(r.input_partition()), std::to_string(newest));
    counters_.records++;
    return Status::Ok();
  }
  if (r.schema_version() < 2 || r.window_stats().empty())
    return refuse("layout " + std::to_string(r.schema_version()) +
                  " carries no window state (needs a stream of layout 2 or later)");
  if (r.window_seconds() == 0 || r.window_seconds() > 86400)
    return refuse("window_seconds " + std::to_string(r.window_seconds()));
  if (window_s_ == 0) {
    window_s_ = r.window_seconds();
    Dirty("m|window_s", std::to_string(window_s_));
  } else if (window_s_ != static_cast<int64_t>(r.window_seconds())) {
    return refuse(std::to_string(r.window_seconds()) + " s windows, this stage judges " +
                  std::to_string(window_s_) + " s ones");
  }
  auto key = model::SeriesKey::Decode(r.series_key());
  if (!key.ok()) return refuse(key.status().message());
  auto stats = model::WindowStats::Decode(r.window_stats());
  if (!stats.ok()) return refuse(stats.status().message());
  const int64_t start = r.window_start_unix_s();
  if (start < 0 || start % window_s_ != 0) return refuse("window start " + std::to_string(start));
  counters_.records++;
  int64_t& newest = partition_newest_[r.input_partition()];
  newest = std::max(newest, start);
  Dirty("m|partition|" + std::to_string(r.input_partition()), std::to_string(newest));
  Reached(r.input_partition(), metrics_partition, start);
  if (judged_until_ != 0 && start <= judged_until_) {
    counters_.late_partials++;
    return Status::Ok();
  }
  auto [it, fresh] = windows_.try_emplace({start, *key});
  if (Status s = it->second.Merge(*stats); !s.ok()) return refuse(s.message());
  std::string encoded;
  it->second.EncodeTo(&encoded);
  Dirty(WindowKey(start, *key), std::move(encoded));
  identity_.Observe(*key, start);
  return Status::Ok();
}

std::vector<model::StoredWindow> LiveDiagnosis::History(int64_t from_s, int64_t to_s) const {
  std::vector<model::StoredWindow> out;
  for (auto it = windows_.lower_bound({from_s, model::SeriesKey{}});
       it != windows_.end() && it->first.first < to_s; ++it) {
    if (it->first.first > judged_until_) break;
    model::StoredWindow w;
    w.start_s = it->first.first;
    w.key = it->first.second;
    w.stats = it->second;
    identity_.Resolve(&w);
    out.push_back(std::move(w));
  }
  return out;
}

void LiveDiagnosis::TrackCallers(const std::vector<const model::StoredWindow*>& windows,
                                 int64_t start) {
  if (failed_calls_start_ != start) failed_calls_.clear(), failed_calls_start_ = start;
  for (const model::StoredWindow* w : windows) {
    if (w->key.kind == EntityKind::kService) serving_[std::string(w->key.Dim(dim::kService))] = start;
    if (w->key.kind == EntityKind::kEdge && w->key.Dim(dim::kSide) != dim::kServerSide &&
        !w->callee_service.empty()) {
      const model::WindowStats& st = w->stats;
      if (st.connects_refused + st.connects_failed + st.resets_received > 0)
        failed_calls_.insert(w->callee_service);
    }
    if (w->key.kind != EntityKind::kEdge || w->stats.requests == 0) continue;
    if (w->key.Dim(dim::kSide) == dim::kServerSide) {
      if (!identity_.IsExternalCaller(w->key)) continue;
      callers_[std::string(w->key.Dim(dim::kCallee))][std::string(kExternalCaller)] = start;
    } else if (!w->callee_service.empty()) {
      callers_[w->callee_service][std::string(w->key.Dim(dim::kCaller))] = start;
    }
  }
}

bool LiveDiagnosis::IsEntryPoint(const std::string& service) const {
  if (std::find(o_.entry_points.begin(), o_.entry_points.end(), service) != o_.entry_points.end())
    return true;
  const int64_t since = judged_until_ - o_.lookback_s;
  auto serves = [&](const std::string& s) {
    auto it = serving_.find(s);
    return it != serving_.end() && it->second >= since;
  };
  if (!serves(service)) return false;
  auto c = callers_.find(service);
  if (c == callers_.end()) return true;  // nobody observed calls it: its callers are outside
  bool any = false;
  for (const auto& [caller, seen] : c->second) {
    if (seen < since) continue;
    any = true;
    if (caller == kExternalCaller || !serves(caller)) return true;
  }
  return !any;
}

// Silence at an entry point that served in every window before is beyond chance when a Poisson
// stream of its usual rate would leave this many windows empty with probability below
// kSilenceFalseAlarm: at 100 requests a window one empty window is, at 2 a window seven are.
// An entry point with empty windows in its recent past (bursty or idle traffic) is never judged
// silent: its silence is not news. Whose silence it is: observed callers that kept calling and
// failed (refused, timed out, reset) are users harmed; observed callers that stopped calling
// altogether left (a load generator that ended, a batch job done); callers outside the observed
// system cannot be seen trying, and an entry point they stopped reaching is an outage for them
// (the entry point itself, or what routes to it, failed them).
LiveDiagnosis::Silence LiveDiagnosis::JudgeSilence(const std::string& entry, int64_t start) const {
  const auto last = serving_.find(entry);
  if (last == serving_.end() || last->second >= start || window_s_ <= 0) return Silence::kUnknown;
  // Request counts of the entry's windows over the lookback before its last one.
  std::map<int64_t, double> counts;
  const int64_t from = last->second - o_.lookback_s;
  for (auto it = windows_.lower_bound({from, model::SeriesKey{}});
       it != windows_.end() && it->first.first <= last->second; ++it) {
    if (it->first.second.kind != EntityKind::kService || it->first.second.Dim(dim::kService) != entry)
      continue;
    counts[it->first.first] += static_cast<double>(it->second.requests);
  }
  if (counts.size() < o_.diagnose.attribution.min_baseline) return Silence::kUnknown;
  const int64_t span = (last->second - counts.begin()->first) / window_s_ + 1;
  if (static_cast<int64_t>(counts.size()) < span) return Silence::kUnknown;  // empty windows before
  std::vector<double> v;
  for (const auto& [t, n] : counts) v.push_back(n);
  const double rate = Median(std::move(v));
  const double empty = static_cast<double>((start - last->second) / window_s_);
  if (empty * rate < -std::log(kSilenceFalseAlarm)) return Silence::kUnknown;
  if (failed_calls_start_ == start && failed_calls_.count(entry)) return Silence::kOutage;
  bool external = true;  // no caller inside the observed system in the lookback, or some outside
  if (auto c = callers_.find(entry); c != callers_.end()) {
    bool observed = false, outside = false;
    for (const auto& [caller, seen] : c->second) {
      if (seen < from) continue;
      (caller == kExternalCaller ? outside : observed) = true;
    }
    external = outside || !observed;
  }
  return external ? Silence::kOutage : Silence::kCallersLeft;
}

LiveDiagnosis::Watched* LiveDiagnosis::WatchFor(const WatchKey& key,
                                                const std::map<std::string, std::string>& labels) {
  auto it = watch_.find(key);
  if (it != watch_.end()) return &it->second;
  const auto& [kind, entity, metric] = key;
  const detectors::DetectorRule* rule = o_.detectors.Match(kind, entity, metric, labels);
  if (!rule) return nullptr;
  if (!restored_states_.count(key) && watched_series() >= o_.max_series) {
    counters_.series_over_limit++;
    return nullptr;
  }
  auto det = detectors::DetectorRegistry::Global().Create(rule->detector, rule->params);
  if (!det.ok()) return nullptr;  // validated when the rules were loaded: cannot happen
  Watched w;
  w.detector = std::move(*det);
  w.rule = rule;
  // A state restored for this series goes into the detector its rule gives now, matched with the
  // series' own labels; one the detector cannot read (the rule changed) is counted, and the
  // detector starts afresh.
  if (auto saved = restored_states_.find(key); saved != restored_states_.end()) {
    if (!w.detector->RestoreState(saved->second).ok()) counters_.states_refused++;
    restored_states_.erase(saved);
  }
  return &watch_.emplace(key, std::move(w)).first->second;
}

void LiveDiagnosis::ObserveSeries(int64_t start,
                                  const std::vector<const model::StoredWindow*>& windows) {
  // Per entity, as situations see them: services merged over instances and endpoints, client-side
  // edges by caller and resolved callee, machines.
  std::map<model::EntityRef, std::pair<model::WindowStats, std::map<std::string, std::string>>>
      merged;
  for (const model::StoredWindow* w : windows) {
    const std::optional<model::EntityRef> id = model::SeriesOf(*w);
    if (!id) continue;
    auto& slot = merged[*id];
    (void)slot.first.Merge(w->stats);  // one stream's sketches: the same accuracy
    slot.second = model::SeriesLabels(*w, *id);
  }
  for (const auto& entry : merged) {
    const auto& [kind, entity] = entry.first;
    const auto& [stats, labels] = entry.second;
    for (const MetricInfo& m : Metrics()) {
      if (!m.kinds.Has(kind)) continue;
      const double v = model::ComputeMetric(m.id, stats, window_s_);
      if (std::isnan(v) || std::abs(v) >= detectors::kMaxDetectorValue) continue;
      const WatchKey key{kind, entity, m.id};
      Watched* w = WatchFor(key, labels);
      if (!w) continue;
      const detectors::Verdict verdict = w->detector->Observe(start, v);
      counters_.evaluations++;
      w->last_anomalous = verdict.anomalous;
      if (verdict.anomalous) counters_.anomalies++;
      verdicts_[key] = {start, verdict.anomalous && Harms(m.id, verdict.direction)};
      Dirty(WatchKeyText(kind, entity, m.id), w->detector->SaveState());
    }
  }
}

std::optional<Incident> LiveDiagnosis::DiagnoseAt(const std::string& entry, Metric metric,
                                                  int64_t at_s, int64_t until_s) {
  const int64_t from = at_s - o_.lookback_s;
  topology::Alarm alarm{{EntityKind::kService, entry, metric}, at_s};
  topology::Situation s = topology::BuildSituation(History(from, until_s + window_s_), window_s_,
                                                   from, until_s + window_s_, alarm);
  // The detector's verdict on the alarm decides that it is anomalous.
  topology::RecordedVerdict v;
  v.ref = alarm.ref;
  v.at_s = at_s;
  v.anomalous = true;
  auto w = watch_.find({EntityKind::kService, entry, metric});
  v.detector = w != watch_.end() && w->second.rule ? w->second.rule->detector : "detector";
  s.verdicts.push_back(v);
  DiagnoseOptions opts = o_.diagnose;
  if (opts.situation_source.empty()) opts.situation_source = "live";
  counters_.diagnoses++;
  Diagnosis d = Diagnose(s, *trees_, opts);
  return std::move(d.incident);
}

namespace {

// A residual cause: a service (what is left when nothing under it, along its calls or on the
// network explains it), or a call edge seen slower or failing only by its caller with no network
// signal (attribution scores those at most 1, an edge with a network signal from 2:
// schema/incident.schema.json). Neither has evidence of its own beyond the symptom, so a
// one-window blip must not open an incident on it.
bool IsResidual(const RootCause& c) {
  return c.entity.kind == EntityKind::kService || (c.entity.kind == EntityKind::kEdge && c.score < 2);
}

std::string CauseKey(const Incident& i) {
  return i.root_causes.empty() ? ""
                               : std::string(EntityKindName(i.root_causes[0].entity.kind)) + ":" +
                                     i.root_causes[0].entity.name;
}
int ImpactStep(const Incident& i) {
  return static_cast<int>(std::floor(std::clamp(i.phenomenon.impact.share, 0.0, 1.0) * 10 + 1e-9));
}

}  // namespace

void LiveDiagnosis::PutTracked(const Tracked& t) {
  nlohmann::json j = {{"incident", nlohmann::json::parse(IncidentToJson(t.incident))},
                      {"metric", MetricName(t.metric)},
                      {"normal_streak", t.normal_streak},
                      {"cause_key", t.cause_key},
                      {"fault_class", t.fault_class},
                      {"impact_step", t.impact_step}};
  // Names come from the wire and may not be UTF-8: replaced, never thrown on.
  Dirty(std::string(kIncidentPrefix) + t.incident.id, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Result<Incident> LiveDiagnosis::IncidentOfRecord(const std::string& key,
                                                 const std::string& value) {
  const nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("incident"))
    return BadRecord(key, "not an incident record");
  auto inc = IncidentFromJson(j["incident"].dump());
  if (!inc.ok()) return BadRecord(key, inc.status().message());
  return inc;
}

// "h|<entry>" -> "<metric> <since>"; `held` null: the record goes.
void LiveDiagnosis::PutHeld(const std::string& entry, const Held* held) {
  Dirty("h|" + entry, held ? std::optional<std::string>(std::string(MetricName(held->metric)) + " " +
                                                        std::to_string(held->since))
                           : std::nullopt);
}

void LiveDiagnosis::Step(int64_t start, std::vector<Incident>* changes) {
  auto verdict_at = [&](const std::string& entry, Metric m) -> std::optional<bool> {
    auto it = verdicts_.find({EntityKind::kService, entry, m});
    if (it == verdicts_.end() || it->second.first != start) return std::nullopt;
    return it->second.second;
  };
  // Entry points with no window now, judged once each (JudgeSilence).
  std::map<std::string, Silence> silences;
  auto silence_of = [&](const std::string& entry) {
    auto [it, fresh] = silences.try_emplace(entry, Silence::kUnknown);
    if (fresh) {
      it->second = JudgeSilence(entry, start);
      if (it->second == Silence::kOutage) counters_.outages++;
    }
    return it->second;
  };
  auto serves_now = [&](const std::string& entry) {
    auto it = serving_.find(entry);
    return it != serving_.end() && it->second == start;
  };
  // Open incidents: re-diagnose, update on a change that matters, resolve after normal windows.
  std::set<std::string> open_entries;
  std::set<std::string> open_causes;
  for (auto& [id, t] : tracked_) {
    if (t.incident.status == IncidentStatus::kResolved) continue;
    const std::string entry = t.incident.phenomenon.entry.name;
    std::optional<bool> anomalous =
        t.metric == Metric::kRequests ? std::nullopt : verdict_at(entry, t.metric);
    if (!serves_now(entry)) {
      // Silent: an outage keeps (or makes) it an outage, revised openly; callers that left end
      // the harm; otherwise nothing can be judged yet.
      const Silence silence = silence_of(entry);
      if (silence == Silence::kOutage) {
        t.metric = Metric::kRequests;
        anomalous = true;
      } else if (silence == Silence::kCallersLeft) {
        anomalous = false;
      }
    } else if (t.metric == Metric::kRequests) {
      anomalous = false;  // an outage is over when the entry point serves again
    }
    if (!anomalous) {
      open_entries.insert(entry), open_causes.insert(t.cause_key);
      continue;  // no data for the entry point in this window: nothing to judge
    }
    if (!*anomalous) {
      if (++t.normal_streak >= o_.resolve_after) {
        t.incident.status = IncidentStatus::kResolved;
        t.incident.sequence++;
        t.incident.updated_at_s = start;
        t.incident.resolved_at_s = start;
        counters_.resolved++;
        changes->push_back(t.incident);
        resolved_order_.push_back(id);
      } else {
        open_entries.insert(entry), open_causes.insert(t.cause_key);
      }
      PutTracked(t);
      continue;
    }
    open_entries.insert(entry), open_causes.insert(t.cause_key);
    t.normal_streak = 0;
    std::optional<Incident> fresh =
        DiagnoseAt(entry, t.metric, RediagnosedFrom(t.incident.opened_at_s, start), start);
    if (fresh) {
      const std::string cause = CauseKey(*fresh);
      const std::string cls = fresh->fault_tree.fault_class;
      const int step = ImpactStep(*fresh);
      if (cause != t.cause_key || cls != t.fault_class || fresh->severity != t.incident.severity ||
          step != t.impact_step) {
        Incident next = std::move(*fresh);
        next.id = t.incident.id;
        next.dedup_key = t.incident.dedup_key;
        next.fingerprint = t.incident.fingerprint;
        next.opened_at_s = t.incident.opened_at_s;
        next.updated_at_s = start;
        next.status = IncidentStatus::kUpdated;
        next.sequence = t.incident.sequence + 1;
        next.labels = fresh->labels;
        t.incident = std::move(next);
        t.cause_key = cause, t.fault_class = cls, t.impact_step = step;
        counters_.updated++;
        changes->push_back(t.incident);
        open_causes.insert(cause);
      }
    }
    PutTracked(t);
  }
  // A held anomaly whose entry point is no longer anomalous (or no longer judged) is dropped.
  for (auto it = held_.begin(); it != held_.end();) {
    const std::optional<bool> still = verdict_at(it->first, it->second.metric);
    if (still && *still && !open_entries.count(it->first)) {
      ++it;
      continue;
    }
    if (!open_entries.count(it->first)) counters_.held_dropped++;
    PutHeld(it->first, nullptr);
    it = held_.erase(it);
  }
  auto open = [&](Metric m, Incident inc) {
    inc.updated_at_s = start;  // opened_at: the window its anomaly was first seen in
    const std::string cause = CauseKey(inc);
    if (open_causes.count(cause)) {
      counters_.merged_into_open++;
      return;
    }
    Tracked t;
    t.metric = m;
    t.cause_key = cause;
    t.fault_class = inc.fault_tree.fault_class;
    t.impact_step = ImpactStep(inc);
    t.incident = std::move(inc);
    t.incident.status = IncidentStatus::kOpen;
    t.incident.sequence = 1;
    counters_.opened++;
    changes->push_back(t.incident);
    open_causes.insert(cause);
    PutTracked(t);
    tracked_.emplace(t.incident.id, std::move(t));
  };
  // New anomalies on entry points.
  for (const auto& [entry, seen] : serving_) {
    if (open_entries.count(entry) || !IsEntryPoint(entry)) continue;
    if (seen != start) {
      // A total outage: silent beyond chance while its users are harmed. The silence is its own
      // confirmation (JudgeSilence's test), so it opens at once, from its first silent window.
      if (silence_of(entry) != Silence::kOutage) continue;
      if (held_.erase(entry)) PutHeld(entry, nullptr);
      std::optional<Incident> inc = DiagnoseAt(entry, Metric::kRequests, seen + window_s_, start);
      if (inc) open(Metric::kRequests, std::move(*inc));
      continue;
    }
    for (Metric m : kTriggers) {
      const std::optional<bool> anomalous = verdict_at(entry, m);
      if (!anomalous || !*anomalous) continue;
      // A held anomaly is diagnosed again from the window it was first seen in: the alarm there,
      // the windows since as its test period (as an open incident's updates are).
      auto h = held_.find(entry);
      const bool confirming = h != held_.end() && h->second.metric == m;
      std::optional<Incident> inc = DiagnoseAt(entry, m, confirming ? h->second.since : start, start);
      if (!inc) break;  // attribution cannot judge it yet (too little history): say nothing
      if (!inc->root_causes.empty() && IsResidual(inc->root_causes.front()) &&
          o_.confirm_windows > 0) {
        if (!confirming) {
          h = held_.insert_or_assign(entry, Held{m, start}).first;
          PutHeld(entry, &h->second);
        }
        if (start - h->second.since < o_.confirm_windows * window_s_) {
          counters_.held++;
          break;
        }
      }
      if (held_.erase(entry)) PutHeld(entry, nullptr);
      open(m, std::move(*inc));
      break;
    }
  }
  // Keep the last resolved ones only.
  while (resolved_order_.size() > kResolvedKept) {
    tracked_.erase(resolved_order_.front());
    Dirty(std::string(kIncidentPrefix) + resolved_order_.front(), std::nullopt);
    resolved_order_.erase(resolved_order_.begin());
  }
}

void LiveDiagnosis::Judge(int64_t start) {
  std::vector<model::StoredWindow> now = History(start, start + 1);
  std::vector<const model::StoredWindow*> ptrs;
  for (const auto& w : now) ptrs.push_back(&w);
  TrackCallers(ptrs, start);
  ObserveSeries(start, ptrs);
  counters_.windows_judged++;
}

std::vector<Incident> LiveDiagnosis::Advance() {
  std::vector<Incident> changes;
  if (partition_newest_.empty()) return changes;
  int64_t newest = 0;
  for (const auto& [p, t] : partition_newest_) newest = std::max(newest, t);
  int64_t complete_before = std::numeric_limits<int64_t>::max();
  for (const auto& [p, t] : partition_newest_) {
    if (t < newest - o_.idle_s) continue;  // idle: holds nothing back
    int64_t until = t;  // no partition count: windows before the newest one seen are complete
    if (o_.metrics_partitions > 0) {
      // Every metrics partition must have carried past the window; one that has carried nothing
      // of this input partition yet holds everything back.
      const auto r = reached_.find(p);
      for (int32_t m = 0; m < o_.metrics_partitions; ++m) {
        int64_t at = 0;
        if (r != reached_.end()) {
          const auto it = r->second.find(m);
          if (it != r->second.end()) at = it->second;
        }
        until = m == 0 ? at : std::min(until, at);
      }
    }
    complete_before = std::min(complete_before, until);
  }
  // Every start below complete_before with data, oldest first.
  std::vector<int64_t> starts;
  for (auto it = windows_.upper_bound({judged_until_, model::SeriesKey{}}); it != windows_.end();
       ++it) {
    if (it->first.first <= judged_until_) continue;
    if (it->first.first >= complete_before) break;
    if (starts.empty() || starts.back() != it->first.first) starts.push_back(it->first.first);
  }
  for (int64_t start : starts) {
    judged_until_ = start;
    Judge(start);
    Step(start, &changes);
  }
  if (!starts.empty()) {
    Dirty("m|judged_until", std::to_string(judged_until_));
    // Forget what is older than the lookback (before the oldest open incident, for its
    // re-diagnosis, within an hour).
    int64_t keep_from = judged_until_ - o_.lookback_s;
    for (const auto& [id, t] : tracked_)
      if (t.incident.status != IncidentStatus::kResolved)
        keep_from = std::min(keep_from, RediagnosedFrom(t.incident.opened_at_s, judged_until_) - o_.lookback_s);
    while (!windows_.empty() && windows_.begin()->first.first < keep_from) {
      Dirty(WindowKey(windows_.begin()->first.first, windows_.begin()->first.second), std::nullopt);
      windows_.erase(windows_.begin());
    }
  }
  return changes;
}

std::vector<const Incident*> LiveDiagnosis::Incidents() const {
  std::vector<const Incident*> out;
  for (const auto& [id, t] : tracked_)
    if (t.incident.status != IncidentStatus::kResolved) out.push_back(&t.incident);
  std::sort(out.begin(), out.end(),
            [](const Incident* a, const Incident* b) { return a->opened_at_s > b->opened_at_s; });
  for (auto it = resolved_order_.rbegin(); it != resolved_order_.rend(); ++it) {
    auto t = tracked_.find(*it);
    if (t != tracked_.end()) out.push_back(&t->second.incident);
  }
  return out;
}

void LiveDiagnosis::TakeChanges(std::vector<Change>* out) {
  for (auto& [k, v] : dirty_) out->emplace_back(k, std::move(v));
  dirty_.clear();
}

Status LiveDiagnosis::Restore(const std::vector<std::pair<std::string, std::string>>& all) {
  const auto& bad = BadRecord;
  auto number = [](const std::string& s, int64_t* v) {
    char* end = nullptr;
    *v = std::strtoll(s.c_str(), &end, 10);
    return !s.empty() && *end == '\0';
  };
  std::vector<std::pair<std::string, std::string>> detector_states;
  for (const auto& [key, value] : all) {
    if (key == "m|window_s") {
      if (!number(value, &window_s_) || window_s_ <= 0) return bad(key, "not a window length");
    } else if (key == "m|judged_until") {
      if (!number(value, &judged_until_)) return bad(key, "not a time");
    } else if (key.rfind("m|reached|", 0) == 0 || key.rfind("m|watermark|", 0) == 0) {
      // m|watermark| (before 2026-12-07) held the newest start a watermark covered; read as
      // "reached", it holds that one window back until the next record: never judged early.
      int64_t p = 0, m = 0, t = 0;
      const std::string rest = key.substr(key.find('|', 2) + 1);
      const size_t bar = rest.find('|');
      if (bar == std::string::npos || !number(rest.substr(0, bar), &p) ||
          !number(rest.substr(bar + 1), &m) || !number(value, &t))
        return bad(key, "not a partition's progress (expected m|reached|<input>|<metrics> = <start>)");
      int64_t& r = reached_[static_cast<int32_t>(p)][static_cast<int32_t>(m)];
      r = std::max(r, t);
    } else if (key.rfind("m|partition|", 0) == 0) {
      int64_t p = 0, t = 0;
      if (!number(key.substr(12), &p) || !number(value, &t)) return bad(key, "not a partition");
      partition_newest_[static_cast<int32_t>(p)] = t;
    } else if (key.rfind("w|", 0) == 0) {
      int64_t start = 0;
      if (key.size() < 15 || key[14] != '|' || !number(key.substr(2, 12), &start))
        return bad(key, "not a window key");
      auto sk = model::SeriesKey::Decode(std::string_view(key).substr(15));
      if (!sk.ok()) return bad(key, sk.status().message());
      auto stats = model::WindowStats::Decode(value);
      if (!stats.ok()) return bad(key, stats.status().message());
      identity_.Observe(*sk, start);
      windows_.emplace(std::make_pair(start, std::move(*sk)), std::move(*stats));
    } else if (key.rfind("h|", 0) == 0) {
      const size_t space = value.find(' ');
      int64_t since = 0;
      if (space == std::string::npos || !number(value.substr(space + 1), &since))
        return bad(key, "not a held anomaly (expected \"<metric> <window start>\")");
      auto m = ParseMetric(value.substr(0, space));
      if (!m.ok()) return bad(key, m.status().message());
      held_[key.substr(2)] = {*m, since};
    } else if (key.rfind("d|", 0) == 0) {
      detector_states.emplace_back(key, value);
    } else if (key.starts_with(kIncidentPrefix)) {
      auto inc = IncidentOfRecord(key, value);
      if (!inc.ok()) return inc.status();
      const nlohmann::json j = nlohmann::json::parse(value);  // IncidentOfRecord parsed it
      Tracked t;
      t.incident = std::move(*inc);
      auto m = ParseMetric(j.value("metric", ""));
      if (!m.ok()) return bad(key, m.status().message());
      t.metric = *m;
      t.normal_streak = j.value("normal_streak", 0);
      t.cause_key = j.value("cause_key", "");
      t.fault_class = j.value("fault_class", "");
      t.impact_step = j.value("impact_step", 0);
      tracked_.emplace(t.incident.id, std::move(t));
    } else {
      return bad(key, "unknown record");
    }
  }
  // Callers and servers, from the judged windows in order.
  int64_t last = -1;
  for (const auto& [k, stats] : windows_) {
    if (k.first > judged_until_) break;
    if (k.first != last) {
      last = k.first;
      std::vector<model::StoredWindow> now = History(last, last + 1);
      std::vector<const model::StoredWindow*> ptrs;
      for (const auto& w : now) ptrs.push_back(&w);
      TrackCallers(ptrs, last);
    }
  }
  for (const auto& [key, value] : detector_states) {
    const size_t nul = key.rfind('\0');  // metric names hold no NUL; entity names might
    if (key.size() < 4 || nul == std::string::npos) return bad(key, "not a detector key");
    const auto kind = static_cast<EntityKind>(key[2]);
    const std::string entity = key.substr(3, nul - 3);
    auto metric = ParseMetric(key.substr(nul + 1));
    if (!metric.ok()) return bad(key, metric.status().message());
    // Applied when the series is next observed, with its labels (WatchFor).
    restored_states_[{kind, entity, *metric}] = value;
  }
  for (const auto& [id, t] : tracked_)
    if (t.incident.status == IncidentStatus::kResolved) resolved_order_.push_back(id);
  std::sort(resolved_order_.begin(), resolved_order_.end(), [&](const auto& a, const auto& b) {
    return tracked_.at(a).incident.updated_at_s < tracked_.at(b).incident.updated_at_s;
  });
  dirty_.clear();
  return Status::Ok();
}

}  // namespace faultline::diagnosis
