// The diagnosis service's /metrics: LiveDiagnosis's counters as increments since the last report,
// and each sink's outbox gauges. Private to diagnosis/.
#pragma once

#include <memory>
#include <vector>

#include "faultline/common/metrics.h"
#include "faultline/diagnosis/live.h"
#include "sinks.h"

namespace faultline::diagnosis {

// Adds what `live` counted since `reported` to the registry's counters (faultline_diagnosis_*),
// sets the gauges, and moves `reported` up.
void ReportLive(const LiveDiagnosis& live, const std::vector<std::unique_ptr<DeliveryStage>>& stages,
                MetricsRegistry* metrics, LiveCounters* reported);

}  // namespace faultline::diagnosis
