// Scoring on the Numenta Anomaly Benchmark (NAB), written from its published rules so that any
// detector's per-point scores can be scored here exactly as NAB scores them.
//
// Rules: each labelled anomaly has a window; the first detection inside a window earns a
// sigmoid-weighted reward (earlier is better), later ones in the same window add nothing; a
// detection outside every window costs the profile's FP weight, scaled by how far it is past the
// preceding window; a missed window costs the FN weight; the first 15% of a series (at most 750
// points) is a probationary period that is not scored. One threshold per profile is chosen to
// maximise the total over the whole corpus, and the total is normalised so that the null detector
// scores 0 and a perfect one 100. Pure functions; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::detectors {

struct NabProfile {
  std::string name;  // "standard", "reward_low_FP_rate", "reward_low_FN_rate"
  double tp_weight = 1.0;
  double fp_weight = 0.11;
  double fn_weight = 1.0;
};

// One series: its timestamps (seconds), a detector's anomaly score per point (0..1), and the
// labelled windows as [first, last] timestamps that occur in `timestamps`.
struct NabSeries {
  std::string name;  // "realKnownCause/nyc_taxi.csv"
  std::vector<int64_t> timestamps;
  std::vector<double> scores;
  std::vector<std::pair<int64_t, int64_t>> windows;
  std::vector<double> values;  // the raw series, when loaded with LoadNabData
};

struct NabScore {
  double threshold = 0;   // the corpus-wide threshold that maximised the raw score
  double raw = 0;         // total raw score at that threshold
  double normalized = 0;  // 100 * (raw - null) / (perfect - null)
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;  // points, NAB's counting
};

// Scores the corpus under `profile`. A window whose first timestamp is not in its series is an
// InvalidArgument naming the series and the window.
Result<NabScore> ScoreNabCorpus(const std::vector<NabSeries>& corpus, const NabProfile& profile);

// The three profiles of config/profiles.json, from that file.
Result<std::vector<NabProfile>> LoadNabProfiles(const std::string& path);
// labels/combined_windows.json: series name -> windows.
Result<std::map<std::string, std::vector<std::pair<int64_t, int64_t>>>> LoadNabWindows(const std::string& path);
// A detector's results directory in NAB's layout (<dir>/<category>/<detector>_<file>.csv with a
// timestamp and an anomaly_score column), joined with the windows of `windows_path`.
Result<std::vector<NabSeries>> LoadNabResults(const std::string& results_dir, const std::string& detector,
                                              const std::string& windows_path);
// The raw series (<nab_dir>/data/<name>: timestamp,value) with their windows; scores empty.
Result<std::vector<NabSeries>> LoadNabData(const std::string& nab_dir);
// "2014-04-10 07:15:00[.000000]" (UTC) -> seconds since the epoch.
Result<int64_t> ParseNabTimestamp(const std::string& text);

// A series from CSV text: with a header line (one that names a `timestamp` column), the columns
// `timestamp` and `value_column` by name; without one, the first two columns. Timestamps are
// seconds since the epoch or NAB's "YYYY-MM-DD HH:MM:SS"; CRLF line ends and blank lines are
// accepted. Errors: kInvalidArgument naming `source`, the line and what was wrong.
Status ParseSeriesCsv(std::string_view text, const std::string& source, const std::string& value_column,
                      std::vector<int64_t>* times, std::vector<double>* values);
// The same from a file (kNotFound when it cannot be opened).
Status ReadSeriesCsv(const std::string& path, const std::string& value_column, std::vector<int64_t>* times,
                     std::vector<double>* values);

}  // namespace faultline::detectors
