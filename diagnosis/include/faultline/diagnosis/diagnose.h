// Diagnosis of one situation: attribution locates the causes of the alarm, the fault trees name
// the kind of fault of each (and of each hop of the propagation path), dimension drill-down
// finds the combination of endpoint, instance and machine that explains the deviation, and the
// result is one incident (faultline/diagnosis/incident.h), or none with the reason.
//
// No incident: the alarm's series is missing, has too little history, or is within its
// baseline; or the alarm is not on a service (attribution starts at a service).
//
// Severity (the phenomenon on the entry point): errors: critical from an observed error rate of
// 0.1, else error; latency: critical from 5x the baseline, error from 2x, else warning; traffic:
// error when it fell by half or more, else warning.
//
// Impact share (of the entry point's requests): errors: the error rate beyond the baseline's;
// latency and traffic: the share of the requests that the entry point's drill-down elements hold
// when drill-down found some ("drilldown"), else the share that goes through the first call of
// the propagation path ("path"), else all of them ("entry").
//
// Pure function of its inputs: the same situation and trees give the same incident (ids are
// hashes), which is what makes re-diagnosis after a restart deliver nothing twice.
#pragma once

#include <optional>
#include <string>

#include "faultline/diagnosis/incident.h"
#include "faultline/fta/fault_tree.h"
#include "faultline/topology/attribution.h"
#include "faultline/topology/drilldown.h"

namespace faultline::diagnosis {

struct DiagnoseOptions {
  topology::AttributionOptions attribution;
  topology::DrillDownOptions drilldown;
  // Root causes listed in the incident. Default: 5.
  size_t max_root_causes = 5;
  // Where the situation came from, for the incident's link. Default: "".
  std::string situation_source;
};

struct Diagnosis {
  std::optional<Incident> incident;
  std::string reason;  // attribution's summary: why there is an incident or none
  topology::AttributionResult attribution;
};

Diagnosis Diagnose(const topology::Situation& situation, const fta::FaultTrees& trees,
                   const DiagnoseOptions& options = {});

// Drill-down of one service's breakdown for a KPI (error_rate and latency_mean_ms as ratios,
// requests as an additive KPI), comparing the windows from `test_from` on with those before
// `baseline_until` (window indexes). nullopt when the service has no breakdown or no leaf has
// data on both sides.
std::optional<DrillDownFinding> DrillDownService(const topology::Situation& situation,
                                                 const std::string& service, Metric kpi,
                                                 size_t baseline_until, size_t test_from,
                                                 const topology::DrillDownOptions& options = {});

}  // namespace faultline::diagnosis
