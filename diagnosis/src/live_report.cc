#include "live_report.h"

#include <chrono>

#include "faultline/common/log.h"

namespace faultline::diagnosis {

// The live counters into /metrics (as increments since the last report), and the outbox gauges.
void ReportLive(const LiveDiagnosis& live_diagnosis,
                const std::vector<std::unique_ptr<DeliveryStage>>& stages, MetricsRegistry* metrics,
                LiveCounters* reported_counters) {
  const LiveDiagnosis* live = &live_diagnosis;
  LiveCounters& reported = *reported_counters;
  auto Count = [&](const std::string& name, const std::string& help,
                   const std::map<std::string, std::string>& labels = {}) -> prometheus::Counter& {
    return metrics->Counter(name, help, labels);
  };
  auto Dropped = [&](const std::string& reason) -> prometheus::Counter& {
    return Count("faultline_diagnosis_dropped_total", "Records or deliveries dropped, by reason",
                 {{"reason", reason}});
  };
  const LiveCounters& c = live->counters();
  auto add = [](prometheus::Counter& counter, uint64_t now, uint64_t& before) {
    if (now > before) counter.Increment(static_cast<double>(now - before));
    before = now;
  };
  add(Count("faultline_diagnosis_records_total", "Window records applied"), c.records, reported.records);
  add(Dropped("undecodable"), c.undecodable, reported.undecodable);
  add(Dropped("late_partial"), c.late_partials, reported.late_partials);
  if (c.series_over_limit > reported.series_over_limit)
    FAULTLINE_WARN_RATE_LIMITED("diagnosis: {} series watched, the limit: new series are not "
                                "watched (faultline_diagnosis_dropped_total{{reason=\"series_over_limit\"}})",
                                live->watched_series());
  add(Dropped("series_over_limit"), c.series_over_limit, reported.series_over_limit);
  if (c.states_refused > reported.states_refused)
    FAULTLINE_WARN_RATE_LIMITED("diagnosis: {} restored detector states could not be read by "
                                "their detectors (the rules changed?); those series start afresh",
                                c.states_refused - reported.states_refused);
  add(Dropped("detector_state"), c.states_refused, reported.states_refused);
  add(Count("faultline_diagnosis_windows_judged_total", "Window starts judged"), c.windows_judged,
      reported.windows_judged);
  add(Count("faultline_diagnosis_evaluations_total", "Detector observations"), c.evaluations,
      reported.evaluations);
  add(Count("faultline_diagnosis_anomalies_total", "Anomalous verdicts"), c.anomalies,
      reported.anomalies);
  add(Count("faultline_diagnosis_diagnoses_total", "Situations diagnosed"), c.diagnoses,
      reported.diagnoses);
  add(Count("faultline_diagnosis_anomalies_merged_total",
            "Anomalies whose root cause was an open incident's"),
      c.merged_into_open, reported.merged_into_open);
  add(Count("faultline_diagnosis_anomalies_held_total",
            "Windows an anomaly with a service as its first cause waited for confirmation"),
      c.held, reported.held);
  add(Count("faultline_diagnosis_anomalies_unconfirmed_total",
            "Held anomalies normal again before confirmation (no incident)"),
      c.held_dropped, reported.held_dropped);
  add(Count("faultline_diagnosis_outage_windows_total",
            "Windows an entry point was silent beyond chance while its users were harmed"),
      c.outages, reported.outages);
  auto inc = [&](const char* status) -> prometheus::Counter& {
    return Count("faultline_diagnosis_incidents_total", "Incident changes, by status", {{"status", status}});
  };
  add(inc("opened"), c.opened, reported.opened);
  add(inc("updated"), c.updated, reported.updated);
  add(inc("resolved"), c.resolved, reported.resolved);
  metrics->Gauge("faultline_diagnosis_series", "Series watched by detectors")
      .Set(static_cast<double>(live->watched_series()));
  const int64_t now = WallSeconds();
  for (const auto& stage : stages) {
    const auto [n, oldest] = stage->Waiting();
    const std::map<std::string, std::string> sink{{"sink", stage->sink().name()}};
    metrics->Gauge("faultline_diagnosis_outbox_entries", "Deliveries waiting, by sink", sink)
        .Set(static_cast<double>(n));
    metrics->Gauge("faultline_diagnosis_outbox_oldest_seconds",
                   "Age of the oldest delivery waiting, by sink", sink)
        .Set(n ? static_cast<double>(now - oldest) : 0.0);
  }
}

}  // namespace faultline::diagnosis
