#include "faultline/topology/attribution.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "faultline/common/stats.h"

namespace faultline::topology {
namespace {

using Family = MetricFamily;

Family FamilyOf(Metric metric) { return Info(metric).family; }

// Which families of a callee can explain a symptom of family `f`.
bool Explains(Family cause, Family symptom) {
  switch (symptom) {
    case Family::kErrors:
      return cause == Family::kErrors || cause == Family::kLatency;
    case Family::kLatency:
      return cause == symptom;
    // A callee's traffic follows its callers', never the other way: a service that stopped
    // calling is not explained by its callees getting fewer calls.
    case Family::kTraffic:
    default:
      return false;
  }
}

std::string MName(Metric m) { return std::string(MetricName(m)); }

bool IsNetworkMetric(Metric m) { return FamilyOf(m) == Family::kNetwork; }

// A network event count per window (retransmitted segments, drops, resets, refused or failed
// connects): rare events whose baseline is often zero.
bool IsNetworkCount(Metric m) {
  return m == Metric::kRetransmits || m == Metric::kDrops || m == Metric::kResets ||
         m == Metric::kConnectsRefused || m == Metric::kConnectsFailed;
}

// P(X >= k) for X ~ Poisson(mu), mu > 0: the tail summed from k on (in logs: no 1 - CDF
// cancellation when it is tiny).
double PoissonTail(double mu, double k) {
  if (k <= 0) return 1;
  double log_term = -mu + k * std::log(mu) - std::lgamma(k + 1), sum = 0;
  for (double i = k; i < k + 10000; ++i) {
    const double term = std::exp(log_term);
    sum += term;
    if (term <= sum * 1e-15) break;
    log_term += std::log(mu) - std::log(i + 1);
  }
  return std::min(1.0, sum);
}

bool IsResourceMetric(Metric m) {
  const Family f = FamilyOf(m);
  return f == Family::kCpu || f == Family::kMemory || f == Family::kIo;
}

// Evidence of a limit reached or a resource saturated, rather than contention alone. A machine
// whose busy ratio rose but stays well below saturation (one throttled container's busy loop on
// an otherwise idle machine) is not short of CPU, and a machine's OOM kills are those of its
// containers' memory limits unless its own available memory fell too. A container's memory limit
// shows as reclaim (major faults: pages it still uses read back) or OOM kills, not as its working
// set growing: that slows nothing while it fits (a working set from 30% to 37% of its limit).
bool IsLimitEvidence(EntityKind kind, const SeriesAnomaly& a, double saturated_busy_ratio) {
  const Metric m = a.ref.metric;
  if (kind == EntityKind::kContainer)  // its own limits, and its own waits for its disk
    return m == Metric::kCpuThrottledRatio || m == Metric::kOomKills ||
           m == Metric::kIoLatencyP99Ms || m == Metric::kMajorFaults;
  if (m == Metric::kCpuBusyRatio) return a.observed >= saturated_busy_ratio;
  return m == Metric::kMemoryAvailableMb || m == Metric::kIoLatencyP99Ms ||
         m == Metric::kMajorFaults;
}

// Over a[from..], b[from..].
double Pearson(const std::vector<double>& a, const std::vector<double>& b, size_t from) {
  double sa = 0, sb = 0;
  size_t n = 0;
  for (size_t i = from; i < std::min(a.size(), b.size()); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) continue;
    sa += a[i], sb += b[i], n++;
  }
  if (n < 3) return 0;
  const double ma = sa / static_cast<double>(n), mb = sb / static_cast<double>(n);
  double cov = 0, va = 0, vb = 0;
  for (size_t i = from; i < std::min(a.size(), b.size()); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) continue;
    cov += (a[i] - ma) * (b[i] - mb), va += (a[i] - ma) * (a[i] - ma),
        vb += (b[i] - mb) * (b[i] - mb);
  }
  if (va <= 0 || vb <= 0) return 0;
  return cov / std::sqrt(va * vb);
}

std::string Fixed(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

SeriesJudge::SeriesJudge(const Situation& s, const AttributionOptions& o) : s_(s), o_(o) {
  const int64_t alarm_index = (s.alarm.at_s - s.start_s) / s.window_s;
  split_ = static_cast<size_t>(std::max<int64_t>(0, alarm_index - o.lead_windows));
}

SeriesAnomaly SeriesJudge::Judge(const MetricSeries& m, const MetricSeries* compare) const {
  SeriesAnomaly a;
  a.ref = m.ref;
  if (compare)
    a.correlation = Pearson(m.values, compare->values,
                            split_ - std::min(split_, o_.correlation_windows));
  std::vector<double> base;
  for (size_t i = 0; i < std::min(split_, m.values.size()); ++i)
    if (!std::isnan(m.values[i])) base.push_back(m.values[i]);
  a.baseline_windows = base.size();
  if (base.empty() || base.size() < o_.min_baseline) return a;
  const double med = Median(base);
  std::vector<double> dev;
  for (double v : base) dev.push_back(std::abs(v - med));
  const double sigma = std::max({1.4826 * Median(dev), 0.05 * std::abs(med), 1e-6});
  a.baseline = med;
  // The change's direction: that of the test period's value furthest from the baseline (a lead
  // window's dip does not start a rise). Its first window beyond the threshold that way starts
  // the test period, and the level is the median from there, or from a later window when that is
  // at least twice as far from the baseline: noise in a lead window must not hide a step at the
  // alarm (4.9, 5.2, 303 ms after a baseline of 2.3 is 303, not 5.2).
  double extreme = 0;
  for (size_t i = split_; i < m.values.size(); ++i)
    if (!std::isnan(m.values[i]) && std::abs(m.values[i] - med) > std::abs(extreme))
      extreme = m.values[i] - med;
  const double way = extreme < 0 ? -1 : 1;
  size_t first = m.values.size();
  for (size_t i = split_; i < m.values.size(); ++i) {
    if (!std::isnan(m.values[i]) && way * (m.values[i] - med) / sigma >= o_.z_threshold) {
      first = i;
      break;
    }
  }
  std::vector<double> test;
  double from_first = 0;  // the level from the first window
  bool judged = false;     // some test window has data
  for (size_t from = first < m.values.size() ? first : split_; from < m.values.size(); ++from) {
    test.clear();
    for (size_t i = from; i < m.values.size(); ++i)
      if (!std::isnan(m.values[i])) test.push_back(m.values[i]);
    if (test.empty()) break;
    const double level = Median(test);
    judged = true;
    if (from == first || first == m.values.size()) {
      a.observed = from_first = level;
      if (first == m.values.size()) break;  // nothing beyond the threshold: the whole test period
    } else if (way * (level - med) >= 2 * way * (from_first - med) &&
               way * (level - med) > way * (a.observed - med)) {
      a.observed = level;
    }
  }
  if (!judged) return a;
  a.z = std::clamp((a.observed - med) / sigma, -1000.0, 1000.0);  // from a zero baseline: huge
  a.anomalous = first < m.values.size() && std::abs(a.z) >= o_.z_threshold &&
                std::abs(a.observed - med) >=
                    std::max(o_.min_change * std::abs(med), Info(m.ref.metric).min_delta);
  // A network event count below the catalog's per-window floor (2 retransmits a window, where
  // there were none) is still a change when the events since the first window beyond the
  // threshold are beyond chance for the baseline's rate: a Poisson test at the z threshold's
  // one-sided false-alarm rate (3.2e-5 at z 4). A baseline without events is taken at one event
  // over its windows, the least rate it cannot tell from none.
  if (!a.anomalous && IsNetworkCount(m.ref.metric) && first < m.values.size() && a.z >= o_.z_threshold) {
    double events = 0, windows = 0, base_events = 0;
    for (size_t i = first; i < m.values.size(); ++i)
      if (!std::isnan(m.values[i])) events += m.values[i], windows += 1;
    for (double v : base) base_events += v;
    const double rate = std::max(base_events, 1.0) / static_cast<double>(base.size());
    const double alpha = 0.5 * std::erfc(o_.z_threshold / std::sqrt(2.0));
    a.anomalous = windows > 0 && PoissonTail(rate * windows, std::round(events)) < alpha;
  }
  if (a.anomalous) a.start_s = s_.start_s + static_cast<int64_t>(first) * s_.window_s;
  // A detector's verdict in the test period decides.
  const int64_t from = s_.start_s + static_cast<int64_t>(split_) * s_.window_s;
  for (const RecordedVerdict& v : s_.verdicts) {
    if (!(v.ref == m.ref) || v.at_s < from) continue;
    a.verdict_from = v.detector.empty() ? "verdict" : v.detector;
    a.anomalous = v.anomalous;
    if (v.anomalous && a.start_s == 0) a.start_s = v.at_s;
  }
  // Anomalous by the detector from a window the robust z did not single out (its baseline is
  // wider, an earlier episode in it, say): the test period is the detector's, from its first
  // anomalous window, not the lead windows before it, whose median can even point the other way.
  if (a.anomalous && first == m.values.size() && a.start_s > 0) {
    const size_t at = static_cast<size_t>(std::max<int64_t>(0, (a.start_s - s_.start_s) / s_.window_s));
    std::vector<double> tail;
    for (size_t i = at; i < m.values.size(); ++i)
      if (!std::isnan(m.values[i])) tail.push_back(m.values[i]);
    if (!tail.empty()) {
      a.observed = Median(tail);
      a.z = std::clamp((a.observed - med) / sigma, -1000.0, 1000.0);
    }
  }
  return a;
}

namespace {

class Attributor {
 public:
  Attributor(const Situation& s, const AttributionOptions& o) : s_(s), o_(o), judge_(s, o) {}

  SeriesAnomaly Judge(const MetricSeries& m, const MetricSeries* compare) const {
    return judge_.Judge(m, compare);
  }

  AttributionResult Run() {
    const MetricSeries* symptom = s_.Find(s_.alarm.ref);
    if (!symptom) {
      result_.summary = "no series " + Name(s_.alarm.ref) + " in the situation";
      return std::move(result_);
    }
    result_.symptom = Judge(*symptom, nullptr);
    result_.symptom.correlation = 1;
    if (result_.symptom.baseline_windows < o_.min_baseline &&
        result_.symptom.verdict_from.empty()) {
      result_.summary = "cannot judge " + Name(s_.alarm.ref) + ": " +
                        std::to_string(result_.symptom.baseline_windows) +
                        " windows of history before the alarm, " + std::to_string(o_.min_baseline) +
                        " needed";
      return std::move(result_);
    }
    if (!result_.symptom.anomalous) {
      result_.summary = "no anomaly: " + Name(s_.alarm.ref) + " is within its baseline (z " +
                        Fixed(result_.symptom.z) + ")";
      return std::move(result_);
    }
    if (s_.alarm.ref.kind != EntityKind::kService) {
      result_.summary = "attribution starts at a service; the alarm is on " +
                        std::string(EntityKindName(s_.alarm.ref.kind)) + " " + s_.alarm.ref.entity;
      return std::move(result_);
    }
    Visit(s_.alarm.ref.entity, result_.symptom, *symptom, {s_.alarm.ref.entity});
    NarrowestHost();
    std::stable_sort(result_.candidates.begin(), result_.candidates.end(),
                     [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
    // A host reached along two paths (under a hop and under a refusing callee) is one candidate,
    // its best-scored.
    std::set<std::pair<EntityKind, std::string>> seen;
    std::erase_if(result_.candidates,
                  [&](const Candidate& c) { return !seen.insert({c.kind, c.entity}).second; });
    if (result_.candidates.empty()) {
      result_.summary = Name(s_.alarm.ref) + " is anomalous but nothing explains it";
    } else {
      const Candidate& top = result_.candidates.front();
      result_.summary = Name(s_.alarm.ref) + " " + (result_.symptom.z > 0 ? "rose" : "fell") +
                        "; most likely cause: " + std::string(EntityKindName(top.kind)) + " " +
                        top.entity + " (" + top.explanation + ")";
    }
    return std::move(result_);
  }

 private:
  static std::string Name(const SeriesRef& r) { return SeriesName(r); }

  // The best anomaly among `series` of families that explain `symptom`, in its direction and
  // agreeing in shape with it; also reports a contrary anomaly if there is one.
  struct Match {
    std::optional<SeriesAnomaly> same;
    std::optional<SeriesAnomaly> contrary;
  };
  Match Compare(const std::vector<const MetricSeries*>& series, const SeriesAnomaly& symptom,
                const MetricSeries& symptom_series, const std::string& caller) const {
    Match m;
    const Family f = FamilyOf(symptom.ref.metric);
    for (const MetricSeries* ms : series) {
      if (!Explains(FamilyOf(ms->ref.metric), f)) continue;
      SeriesAnomaly a = Judge(*ms, &symptom_series);
      const bool same_way = (a.z > 0) == (symptom.z > 0);
      if (a.anomalous && same_way && a.correlation >= o_.min_correlation && Accounts(a, symptom) &&
          AccountsForTheSameStatistic(a, caller)) {
        if (!m.same || Strength(a) > Strength(*m.same)) m.same = a;
      } else if ((a.anomalous && !same_way) || a.correlation <= -o_.min_correlation) {
        if (!m.contrary || std::abs(a.z) > std::abs(m.contrary->z)) m.contrary = a;
      }
    }
    return m;
  }

  // Whether `a`'s change is big enough to explain the symptom's, when both are in one unit. A
  // callee's latency explains a caller's errors only when it is slow enough for calls to time
  // out: at least twice its baseline and timeout_scale_ms more (a callee 1.4 ms slower did not
  // make every call into it fail). A round-trip time is in the symptom's unit too: a call pays it
  // once per round trip, so an RTT 0.3 ms higher does not explain a caller 300 ms slower (loss
  // shows as retransmits, which are counts and are not compared).
  bool Accounts(const SeriesAnomaly& a, const SeriesAnomaly& symptom) const {
    if (FamilyOf(symptom.ref.metric) == Family::kErrors && FamilyOf(a.ref.metric) == Family::kLatency)
      return a.observed >= 2 * a.baseline && a.observed - a.baseline >= o_.timeout_scale_ms;
    if (Info(a.ref.metric).unit != Info(symptom.ref.metric).unit) return true;
    return ChangeAccountsFor(a, symptom, o_.min_explained_share);
  }

  // A latency statistic of a callee (or of the caller's view of a call) explains its caller only
  // if its change is also a fair share of the caller's own change in that statistic: a callee's
  // p90 4 -> 11 ms is a third of its caller's mean 4 -> 27 ms, but not of the caller's p90,
  // which went 7 -> 75 ms. Comparing like with like, not only with the symptom's statistic,
  // since one noisy statistic (a p99 spike in a lead window) can understate a change the others
  // show plainly.
  bool AccountsForTheSameStatistic(const SeriesAnomaly& a, const std::string& caller) const {
    if (FamilyOf(a.ref.metric) != Family::kLatency) return true;
    const MetricSeries* own = s_.Find({EntityKind::kService, caller, a.ref.metric});
    if (!own) return true;
    const SeriesAnomaly whole = Judge(*own, nullptr);
    if ((whole.observed - whole.baseline) * (a.observed - a.baseline) <= 0) return true;
    return ChangeAccountsFor(a, whole, o_.min_explained_share);
  }

  // In [0, 1]: how far beyond the baseline and how alike in shape. Class bases (3.5 a resource's
  // limit, 2 a network edge or contention, 1 service, 0 edge seen only by the caller) keep the
  // classes apart.
  static double Strength(const SeriesAnomaly& a) {
    return (std::min(std::abs(a.z), 100.0) / 100 + std::abs(a.correlation)) / 2;
  }

  static std::vector<std::string> Prepend(const std::string& head, std::vector<std::string> path) {
    path.insert(path.begin(), head);
    return path;
  }

  // `path` runs from `service` to the alarmed service.
  void Visit(const std::string& service, const SeriesAnomaly& symptom,
             const MetricSeries& symptom_series, const std::vector<std::string>& path) {
    if (!visited_.insert(service).second) return;
    bool explained = false;
    // Explained only by edges that its callees do not show and the network does not either: the
    // time may be the caller's own (a starved caller reads its answers late), so its hosts are
    // looked at too.
    bool only_unseen_edges = true;
    // An edge candidate; behind refused connections, the callee's hosts too.
    auto add_edge = [&](Candidate c, const std::string& callee) {
      c.path = Prepend(c.entity, path);
      const bool refused = Refused(c);
      result_.candidates.push_back(std::move(c));
      if (refused) Vertical(callee, symptom, symptom_series, Prepend(callee, path), nullptr);
    };
    for (const NodeRef& callee :
         s_.topology.Successors({EntityKind::kService, service}, EdgeKind::kCalls)) {
      const std::string edge = service + "->" + callee.name;
      const Match own =
          Compare(s_.SeriesOf(EntityKind::kService, callee.name), symptom, symptom_series, service);
      if (own.same) {
        explained = true;
        only_unseen_edges = false;
        const MetricSeries* next = s_.Find(own.same->ref);
        Visit(callee.name, *own.same, *next, Prepend(callee.name, path));
        continue;
      }
      const Match seen =
          Compare(s_.SeriesOf(EntityKind::kEdge, edge), symptom, symptom_series, service);
      if (seen.same) {
        explained = true;
        Candidate c;
        c.kind = EntityKind::kEdge;
        c.entity = edge;
        c.evidence.push_back(*seen.same);
        const MetricSeries* edge_symptom = s_.Find(seen.same->ref);
        for (const MetricSeries* ms : s_.SeriesOf(EntityKind::kEdge, edge)) {
          if (!IsNetworkMetric(ms->ref.metric)) continue;
          SeriesAnomaly a = Judge(*ms, edge_symptom);
          if (a.anomalous && a.z > 0 && Accounts(a, *seen.same)) c.evidence.push_back(a);
        }
        const bool network = c.evidence.size() > 1;
        std::string what;
        for (size_t i = 1; i < c.evidence.size(); ++i)
          what += (i > 1 ? ", " : "") + MName(c.evidence[i].ref.metric);
        c.explanation =
            network
                ? "the caller sees " + MName(seen.same->ref.metric) + " " +
                      (seen.same->z > 0 ? "rise" : "fall") + " while " + callee.name +
                      " itself does not, and " + what + " rose with it: the network between them"
                : "the caller sees " + MName(seen.same->ref.metric) + " change while " + callee.name +
                      " itself does not, with no network signal (queueing before "
                      "the server, or an unobserved hop)";
        c.score = (network ? 2 : 0) + Strength(*seen.same);
        only_unseen_edges = only_unseen_edges && !network;
        add_edge(std::move(c), callee.name);
        // Without a network signal the time was spent at one of the two ends: the caller's
        // (its hosts are judged below) or the callee's before its server read the request (a
        // starved machine's accept and read queues), which the callee's own latency never shows.
        if (!network && edge_symptom)
          Vertical(callee.name, *seen.same, *edge_symptom, Prepend(callee.name, path), nullptr);
        continue;
      }
      // Connections refused, reset or lost explain a caller's errors or latency even when no
      // exchange on the edge completed to show them.
      if (Candidate c = NetworkOnly(edge, symptom, symptom_series); !c.evidence.empty()) {
        explained = true;
        only_unseen_edges = false;
        add_edge(std::move(c), callee.name);
        continue;
      }
      const SeriesAnomaly* contrary = own.contrary    ? &*own.contrary
                                      : seen.contrary ? &*seen.contrary
                                                      : nullptr;
      if (contrary) {
        result_.set_aside.push_back(
            {callee.name,
             MName(contrary->ref.metric) + " " +
                 (contrary->anomalous ? (contrary->z > 0 ? "rose" : "fell") : "moved") + " (z " +
                 Fixed(contrary->z) + ", correlation " + Fixed(contrary->correlation) + " with " +
                 SeriesName(symptom.ref) +
                 "): the opposite of the symptom, so it cannot explain it"});
      }
    }
    if (explained) {
      // A hop: a callee explains it, but the machine it runs on may be saturated too (a busy
      // machine slows every service on it, and its callees' answers come back late to it as
      // well). Only a machine's own saturation counts here: a hop's containers share its
      // symptom's shape without being its cause.
      Vertical(service, symptom, symptom_series, path, nullptr,
               only_unseen_edges ? Hosts::kAll : Hosts::kSaturatedMachines);
      return;
    }
    // Nothing downstream explains this service: it is a root cause; look under it.
    Candidate c;
    c.kind = EntityKind::kService;
    c.entity = service;
    c.evidence.push_back(symptom);
    c.score = 1 + Strength(symptom);
    c.path = path;
    c.explanation = MName(symptom.ref.metric) + " " + (symptom.z > 0 ? "rose" : "fell") + " from " +
                    Fixed(symptom.baseline) + " to " + Fixed(symptom.observed) +
                    " and no service it calls explains it";
    Vertical(service, symptom, symptom_series, path, &c);
    result_.candidates.push_back(std::move(c));
  }

  // A machine whose every limit signal one container on it shows too, and no other (the
  // machine's I/O latency is that container's; a run queue alone is contention, not the
  // machine's own), is not the narrower place: it ranks just below the container. A machine
  // with a limit signal of its own (its CPUs saturated, its memory short) keeps its rank; one
  // whose signal several of its containers share is the common place and ranks above them.
  void NarrowestHost() {
    for (Candidate& m : result_.candidates) {
      if (m.kind != EntityKind::kMachine) continue;
      const Candidate* only = nullptr;
      size_t covering = 0;
      double best = 0;
      std::string names;
      for (const Candidate& c : result_.candidates) {
        if (c.kind != EntityKind::kContainer) continue;
        const auto under = s_.topology.Successors({EntityKind::kContainer, c.entity}, EdgeKind::kRunsOn);
        if (std::find(under.begin(), under.end(), NodeRef{EntityKind::kMachine, m.entity}) == under.end())
          continue;
        bool any_limit = false;
        const bool covered =
            std::all_of(m.evidence.begin(), m.evidence.end(), [&](const SeriesAnomaly& a) {
              if (!IsLimitEvidence(EntityKind::kMachine, a, o_.saturated_busy_ratio)) return true;
              any_limit = true;
              return std::any_of(c.evidence.begin(), c.evidence.end(), [&](const SeriesAnomaly& b) {
                return b.ref.metric == a.ref.metric;
              });
            });
        if (!covered || !any_limit) continue;
        covering++;
        only = &c;
        best = std::max(best, c.score);
        names += (names.empty() ? "" : ", ") + c.entity;
      }
      if (covering >= 2 && m.score <= best) {
        m.score = best + 0.01;
        m.explanation += " (containers " + names + " on it show the same: the common place)";
      } else if (covering == 1 && only->score <= m.score) {
        m.score = only->score - 0.01;
        m.explanation += " (container " + only->entity + " on it shows the same: the narrower place)";
      }
    }
  }

  // Connections refused or reset: the callee was not there to answer. Why (killed for memory,
  // say) is under it, so its hosts are looked at too.
  static bool Refused(const Candidate& c) {
    return std::any_of(c.evidence.begin(), c.evidence.end(), [](const SeriesAnomaly& a) {
      return a.ref.metric == Metric::kConnectsRefused || a.ref.metric == Metric::kResets;
    });
  }

  // The edge's network series that rose with the symptom, as a candidate (no evidence: none).
  Candidate NetworkOnly(const std::string& edge, const SeriesAnomaly& symptom,
                        const MetricSeries& symptom_series) const {
    Candidate c;
    c.kind = EntityKind::kEdge;
    c.entity = edge;
    const Family f = FamilyOf(symptom.ref.metric);
    if (symptom.z <= 0 || (f != Family::kErrors && f != Family::kLatency)) return c;
    double best = 0;
    for (const MetricSeries* ms : s_.SeriesOf(EntityKind::kEdge, edge)) {
      if (!IsNetworkMetric(ms->ref.metric)) continue;
      SeriesAnomaly a = Judge(*ms, &symptom_series);
      if (a.anomalous && a.z > 0 && a.correlation >= o_.min_correlation && Accounts(a, symptom)) {
        best = std::max(best, Strength(a));
        c.evidence.push_back(std::move(a));
      }
    }
    if (c.evidence.empty()) return c;
    std::string what;
    for (size_t i = 0; i < c.evidence.size(); ++i)
      what += (i ? ", " : "") + MName(c.evidence[i].ref.metric);
    c.explanation = what + " on the connections of " + edge + " rose with " +
                    SeriesName(symptom.ref) + ": the network or the callee's listener";
    c.score = 2 + best;
    return c;
  }

  // Instances -> the containers they run in -> machines (or instances -> machines directly).
  // `service_candidate`, when there is one, gets "it runs on …" added to its explanation.
  enum class Hosts { kAll, kSaturatedMachines };
  void Vertical(const std::string& service, const SeriesAnomaly& symptom,
                const MetricSeries& symptom_series, const std::vector<std::string>& path,
                Candidate* service_candidate, Hosts which = Hosts::kAll) {
    std::set<NodeRef> done;
    auto visit = [&](const NodeRef& host, auto& self) -> void {
      if (!done.insert(host).second) return;
      if (host.kind != EntityKind::kContainer && host.kind != EntityKind::kMachine) return;
      if (which == Hosts::kAll || host.kind == EntityKind::kMachine)
        ResourceCandidate(host.kind, host.name, symptom, symptom_series, path, service_candidate,
                          which == Hosts::kSaturatedMachines);
      if (host.kind == EntityKind::kContainer) {
        for (const NodeRef& under : s_.topology.Successors(host, EdgeKind::kRunsOn))
          self(under, self);
      }
    };
    for (const NodeRef& inst :
         s_.topology.Predecessors({EntityKind::kService, service}, EdgeKind::kInstanceOf)) {
      for (const NodeRef& host : s_.topology.Successors(inst, EdgeKind::kRunsOn))
        visit(host, visit);
    }
  }

  // A resource explains a service's errors only by killing its processes (OOM kills, a
  // container's or a machine's), through a limit (throttled or short of memory so that calls
  // time out), or through run-queue waits long enough for calls
  // to time out (timeout_scale_ms, as a callee's latency must be): a few milliseconds of
  // contention, which a service that now fails every request can cause itself (each failure
  // logs, unwinds and reconnects), does not make it fail. Any of them explains latency.
  // Block-request latency is a wait like the run queue's, limit evidence or not: a disk 1.5 ms
  // slower makes no call time out.
  bool ExplainsErrors(EntityKind kind, const SeriesAnomaly& a, const SeriesAnomaly& symptom) const {
    if (FamilyOf(symptom.ref.metric) != Family::kErrors) return true;
    const Metric m = a.ref.metric;
    if (m == Metric::kRunqP99Ms || m == Metric::kRunqMeanMs || m == Metric::kIoLatencyP99Ms)
      return a.observed - a.baseline >= o_.timeout_scale_ms;
    return m == Metric::kOomKills || IsLimitEvidence(kind, a, o_.saturated_busy_ratio);
  }

  // Waits (for a CPU, for a block request) explain a latency symptom only when they grew by a
  // fair share of it. A request waits at each of its wakeups (accept, read, each callee's answer,
  // write) and for each of its block requests, so waits can add up to several times their p99,
  // hence the small share; but a container whose p99 wait went from 0.7 to 3 ms did not make its
  // service 300 ms slower (the service's own slowness shifts its wakeups together and moves that
  // percentile a little).
  bool WaitsAccountFor(const SeriesAnomaly& a, const SeriesAnomaly& symptom) const {
    const Metric m = a.ref.metric;
    if ((m != Metric::kRunqP99Ms && m != Metric::kRunqMeanMs && m != Metric::kIoLatencyP99Ms) ||
        FamilyOf(symptom.ref.metric) != Family::kLatency)
      return true;
    return ChangeAccountsFor(a, symptom, o_.contention_share);
  }

  // Whether `service` or the entry point serves anomalously more requests than before.
  bool MoreRequests(const std::string& service) const {
    for (const std::string& name : {service, s_.alarm.ref.entity}) {
      const MetricSeries* r = s_.Find({EntityKind::kService, name, Metric::kRequests});
      if (!r) continue;
      const SeriesAnomaly a = Judge(*r, nullptr);
      if (a.anomalous && a.z > 0) return true;
    }
    return false;
  }

  // With `limit_only`, a candidate only when there is evidence of a limit or saturation.
  void ResourceCandidate(EntityKind kind, const std::string& name, const SeriesAnomaly& symptom,
                         const MetricSeries& symptom_series, const std::vector<std::string>& path,
                         Candidate* service_candidate, bool limit_only) {
    Candidate c;
    c.kind = kind;
    c.entity = name;
    // A container's memory use is not pressure (IsLimitEvidence): without reclaim or kills it
    // explains nothing. Its CPU time is work: it explains the service's slowness only when the
    // service did not get more of it (more requests use more CPU by themselves), i.e. when the
    // CPU spent per request rose. Such series are not judged at all.
    std::optional<bool> more_work;  // judged once, when a CPU-use series is met
    const auto not_evidence = [&](Metric m) {
      if (kind != EntityKind::kContainer) return false;
      if (m == Metric::kMemoryWorkingSetMb || m == Metric::kMemoryUsageRatio) return true;
      if (m != Metric::kCpuUsageCores) return false;
      if (!more_work) more_work = !path.empty() && MoreRequests(path.front());  // path: the service first
      return *more_work;
    };
    for (const MetricSeries* ms : s_.SeriesOf(kind, name)) {
      if (!IsResourceMetric(ms->ref.metric) || not_evidence(ms->ref.metric)) continue;
      SeriesAnomaly a = Judge(*ms, &symptom_series);
      // Pressure shows as a rise (a fall for available memory); its shape must follow the
      // symptom's, or mirror it when the symptom is a fall (throughput dropping while CPU
      // saturates).
      const double pressure = Info(ms->ref.metric).polarity == Polarity::kDownIsBad ? -1 : 1;
      const double agree = (symptom.z > 0 ? 1 : -1) * pressure * a.correlation;
      if (a.anomalous && a.z * pressure > 0 && agree >= o_.min_correlation &&
          ExplainsErrors(kind, a, symptom) && WaitsAccountFor(a, symptom))
        c.evidence.push_back(std::move(a));
    }
    // Bytes moved are load, not pressure: a disk that moves more bytes at the same request
    // latency delays no request (another process's writes, a build, a backup on the same
    // machine). They are evidence only beside block requests that take longer.
    const auto has = [&](Metric m) {
      return std::any_of(c.evidence.begin(), c.evidence.end(),
                         [m](const SeriesAnomaly& a) { return a.ref.metric == m; });
    };
    if (!has(Metric::kIoLatencyP99Ms))
      std::erase_if(c.evidence,
                    [](const SeriesAnomaly& a) { return a.ref.metric == Metric::kIoBytes; });
    double best = 0;
    bool limit = false;
    for (const SeriesAnomaly& a : c.evidence) {
      best = std::max(best, Strength(a));
      limit = limit || IsLimitEvidence(kind, a, o_.saturated_busy_ratio);
    }
    if (c.evidence.empty() || (limit_only && !limit)) return;
    std::string what;
    for (size_t i = 0; i < c.evidence.size(); ++i)
      what += (i ? ", " : "") + MName(c.evidence[i].ref.metric);
    c.explanation = what + " moved with " + SeriesName(symptom.ref) + ": " +
                    (kind == EntityKind::kMachine ? "the machine under it is starved"
                                                  : "the container it runs in is starved");
    // A limit or a saturation is a cause by itself; waiting in a run queue alone is contention,
    // which every container on a busy machine (and a host's jitter) shows: it ranks below a
    // call edge with a network signal of its own (refused, reset, retransmitted).
    c.score = (limit ? 3.5 : 2) + best / 2;
    c.path = Prepend(name, path);
    if (service_candidate)
      service_candidate->explanation += "; it runs on " + std::string(EntityKindName(kind)) + " " +
                                      name + " whose " + what + " moved at the same time";
    result_.candidates.push_back(std::move(c));
  }

  const Situation& s_;
  const AttributionOptions& o_;
  SeriesJudge judge_;
  std::set<std::string> visited_;
  AttributionResult result_;
};

nlohmann::ordered_json AnomalyJson(const SeriesAnomaly& a) {
  nlohmann::ordered_json j = {{"kind", EntityKindName(a.ref.kind)},
                              {"entity", a.ref.entity},
                              {"metric", MetricName(a.ref.metric)},
                              {"anomalous", a.anomalous},
                              {"z", a.z},
                              {"baseline", a.baseline},
                              {"baseline_windows", a.baseline_windows},
                              {"observed", a.observed},
                              {"start_s", a.start_s},
                              {"correlation", a.correlation}};
  if (!a.verdict_from.empty()) j["verdict_from"] = a.verdict_from;
  return j;
}

}  // namespace

AttributionResult Attribute(const Situation& situation, const AttributionOptions& options) {
  return Attributor(situation, options).Run();
}

std::string AttributionToText(const AttributionResult& r) {
  std::string out = r.summary + "\n";
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const Candidate& c = r.candidates[i];
    out += std::to_string(i + 1) + ". " + std::string(EntityKindName(c.kind)) + " " + c.entity +
           "  score " + Fixed(c.score) + "\n   " + c.explanation + "\n";
    for (const SeriesAnomaly& a : c.evidence) {
      out += "   - " + SeriesName(a.ref) + ": " + Fixed(a.baseline) + " -> " +
             Fixed(a.observed) + " (z " + Fixed(a.z) + ", from " + std::to_string(a.start_s) +
             ", correlation " + Fixed(a.correlation) + ")\n";
    }
    out += "   path:";
    for (size_t k = 0; k < c.path.size(); ++k) out += (k ? " -> " : " ") + c.path[k];
    out += "\n";
  }
  for (const SetAside& s : r.set_aside) out += "set aside " + s.entity + ": " + s.reason + "\n";
  return out;
}

std::string AttributionToJson(const AttributionResult& r) {
  nlohmann::ordered_json j;
  j["summary"] = r.summary;
  j["symptom"] = AnomalyJson(r.symptom);
  j["candidates"] = nlohmann::ordered_json::array();
  for (const Candidate& c : r.candidates) {
    nlohmann::ordered_json ev = nlohmann::ordered_json::array();
    for (const SeriesAnomaly& a : c.evidence) ev.push_back(AnomalyJson(a));
    j["candidates"].push_back({{"kind", EntityKindName(c.kind)},
                               {"entity", c.entity},
                               {"score", c.score},
                               {"explanation", c.explanation},
                               {"evidence", std::move(ev)},
                               {"path", c.path}});
  }
  j["set_aside"] = nlohmann::ordered_json::array();
  for (const SetAside& s : r.set_aside)
    j["set_aside"].push_back({{"entity", s.entity}, {"reason", s.reason}});
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace faultline::topology
