#include "faultline/detectors/nab_scorer.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "faultline/common/text.h"
#include "faultline/detectors/detector.h"

namespace faultline::detectors {
namespace {

constexpr int kNoWindow = -1;
constexpr int kProbationary = -2;

// NAB's scaled sigmoid: 2 * sigmoid(-5x) - 1, and -1 well past a window.
double ScaledSigmoid(double x) {
  if (x > 3.0) return -1.0;
  return 2.0 / (1.0 + std::exp(5.0 * x)) - 1.0;
}

struct Point {
  double score;
  double sweep;  // what this point earns if it is a detection
  int window;    // global window id, kNoWindow or kProbationary
};

struct Scored {
  double threshold;
  double raw;
  int64_t tp, fp, fn, tn;
};

}  // namespace

Result<int64_t> ParseNabTimestamp(const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%d %H:%M:%S");
  if (in.fail()) return InvalidArgument("timestamp '" + text + "': expected YYYY-MM-DD HH:MM:SS");
  return static_cast<int64_t>(timegm(&tm));
}

Result<NabScore> ScoreNabCorpus(const std::vector<NabSeries>& corpus, const NabProfile& profile) {
  std::vector<Point> points;
  int windows = 0;
  const double max_tp = ScaledSigmoid(-1.0);
  for (const NabSeries& s : corpus) {
    if (s.scores.size() != s.timestamps.size()) {
      return InvalidArgument(s.name + ": " + std::to_string(s.scores.size()) + " scores for " +
                             std::to_string(s.timestamps.size()) + " timestamps");
    }
    const size_t n = s.timestamps.size();
    const size_t probation = std::min<size_t>(static_cast<size_t>(std::floor(0.15 * n)), 750);
    std::vector<std::pair<int64_t, int64_t>> pending = s.windows;
    std::sort(pending.begin(), pending.end());
    size_t next = 0;
    int cur = kNoWindow;
    int64_t cur_end = 0;
    size_t cur_right = 0;
    double cur_width = 0;
    bool have_prev = false;
    size_t prev_right = 0;
    double prev_width = 0;
    for (size_t i = 0; i < n; ++i) {
      if (cur == kNoWindow && next < pending.size() && s.timestamps[i] == pending[next].first) {
        cur_end = pending[next].second;
        auto it = std::find(s.timestamps.begin() + i, s.timestamps.end(), cur_end);
        if (it == s.timestamps.end()) {
          return InvalidArgument(s.name + ": window ending at " + std::to_string(cur_end) +
                                 " does not end on a timestamp of the series");
        }
        cur_right = static_cast<size_t>(it - s.timestamps.begin());
        cur_width = static_cast<double>(cur_right - i + 1);
        cur = windows++;
        next++;
      }
      double sweep;
      if (cur != kNoWindow) {
        const double position = -static_cast<double>(cur_right - i + 1) / cur_width;
        sweep = ScaledSigmoid(position) * profile.tp_weight / max_tp;
      } else if (!have_prev) {
        sweep = -1.0 * profile.fp_weight;
      } else {
        const double past = static_cast<double>(i - prev_right) / std::max(prev_width - 1.0, 1.0);
        sweep = ScaledSigmoid(past) * profile.fp_weight;
      }
      points.push_back({s.scores[i], sweep, i >= probation ? cur : kProbationary});
      if (cur != kNoWindow && s.timestamps[i] == cur_end) {
        have_prev = true;
        prev_right = i;
        prev_width = cur_width;
        cur = kNoWindow;
      }
    }
    if (next != pending.size()) {
      return InvalidArgument(s.name + ": a window starting at " + std::to_string(pending[next].first) +
                             " does not start on a timestamp of the series");
    }
  }

  // Sweep every threshold from above the highest score down, as NAB does, keeping per-window
  // best rewards and the running false-positive cost.
  std::vector<double> window_score(windows, -profile.fn_weight);
  std::vector<bool> window_scored(windows, false);
  for (const Point& p : points)
    if (p.window >= 0) window_scored[p.window] = true;
  int scored_windows = 0;
  double window_total = 0;
  for (int w = 0; w < windows; ++w) {
    if (window_scored[w]) {
      scored_windows++;
      window_total += window_score[w];
    }
  }
  std::sort(points.begin(), points.end(), [](const Point& a, const Point& b) { return a.score > b.score; });
  Scored state{1.1, window_total, 0, 0, 0, 0};
  for (const Point& p : points) {
    if (p.window >= 0) state.fn++;
    if (p.window == kNoWindow) state.tn++;
  }
  double fp_total = 0;
  Scored best = state;
  bool have_best = false;
  auto record = [&] {
    state.raw = window_total + fp_total;
    if (!have_best || state.raw > best.raw) {
      best = state;
      have_best = true;
    }
  };
  for (const Point& p : points) {
    if (p.score != state.threshold) {
      record();
      state.threshold = p.score;
    }
    if (p.window >= 0) {
      state.tp++;
      state.fn--;
      if (p.sweep > window_score[p.window]) {
        window_total += p.sweep - window_score[p.window];
        window_score[p.window] = p.sweep;
      }
    } else if (p.window == kNoWindow) {
      state.fp++;
      state.tn--;
      fp_total += p.sweep;
    }
  }
  record();

  NabScore out;
  out.threshold = best.threshold;
  out.raw = best.raw;
  out.tp = best.tp;
  out.fp = best.fp;
  out.fn = best.fn;
  out.tn = best.tn;
  const double null_score = -profile.fn_weight * scored_windows;
  const double perfect = profile.tp_weight * scored_windows;
  out.normalized = perfect > null_score ? 100.0 * (best.raw - null_score) / (perfect - null_score) : 0.0;
  return out;
}

Result<std::vector<NabProfile>> LoadNabProfiles(const std::string& path) {
  std::ifstream f(path);
  if (!f) return NotFound(path + ": cannot open the NAB profiles file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    return InvalidArgument(path + ": not JSON: " + e.what());
  }
  std::vector<NabProfile> out;
  for (const char* name : {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}) {
    if (!j.contains(name) || !j[name].contains("CostMatrix")) {
      return InvalidArgument(path + ": profile '" + name + "' with a CostMatrix is missing");
    }
    const auto& m = j[name]["CostMatrix"];
    try {
      out.push_back({name, m.at("tpWeight").get<double>(), m.at("fpWeight").get<double>(), m.at("fnWeight").get<double>()});
    } catch (const std::exception& e) {
      return InvalidArgument(path + ": profile '" + name + "': " + e.what());
    }
  }
  return out;
}

Result<std::map<std::string, std::vector<std::pair<int64_t, int64_t>>>> LoadNabWindows(const std::string& path) {
  std::ifstream f(path);
  if (!f) return NotFound(path + ": cannot open the NAB windows file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    return InvalidArgument(path + ": not JSON: " + e.what());
  }
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> out;
  for (const auto& [name, windows] : j.items()) {
    auto& list = out[name];
    for (const auto& w : windows) {
      if (!w.is_array() || w.size() != 2 || !w[0].is_string() || !w[1].is_string()) {
        return InvalidArgument(path + ": " + name + ": a window must be [\"start\", \"end\"]");
      }
      auto a = ParseNabTimestamp(w[0].get<std::string>());
      auto b = ParseNabTimestamp(w[1].get<std::string>());
      if (!a.ok()) return InvalidArgument(path + ": " + name + ": " + a.status().message());
      if (!b.ok()) return InvalidArgument(path + ": " + name + ": " + b.status().message());
      list.emplace_back(*a, *b);
    }
  }
  return out;
}

namespace {


}  // namespace

Status ParseSeriesCsv(std::string_view text, const std::string& source, const std::string& value_column,
                      std::vector<int64_t>* times, std::vector<double>* values) {
  size_t ts_col = 0, v_col = 1;
  int line_no = 0;
  while (!text.empty()) {
    const std::string_view line = NextLine(&text);  // some NAB files end lines with CRLF
    line_no++;
    if (line.empty()) continue;
    const auto where = [&] { return source + ":" + std::to_string(line_no) + ": "; };
    const std::vector<std::string_view> cells = SplitFields(line);
    if (line_no == 1 && std::find(cells.begin(), cells.end(), "timestamp") != cells.end()) {
      ts_col = size_t(std::find(cells.begin(), cells.end(), "timestamp") - cells.begin());
      v_col = size_t(std::find(cells.begin(), cells.end(), value_column) - cells.begin());
      if (v_col == cells.size()) return InvalidArgument(where() + "the header has no '" + value_column + "' column");
      continue;
    }
    if (cells.size() <= std::max(ts_col, v_col)) {
      return InvalidArgument(where() + std::to_string(cells.size()) + " columns, expected at least " +
                             std::to_string(std::max(ts_col, v_col) + 1));
    }
    const std::string ts(cells[ts_col]), val(cells[v_col]);
    char* end = nullptr;
    errno = 0;
    int64_t t = std::strtoll(ts.c_str(), &end, 10);
    if (ts.empty() || *end != '\0' || errno != 0) {
      auto parsed = ParseNabTimestamp(ts);
      if (!parsed.ok()) return InvalidArgument(where() + parsed.status().message());
      t = *parsed;
    }
    errno = 0;
    const double v = std::strtod(val.c_str(), &end);
    if (val.empty() || *end != '\0' || errno == ERANGE) {
      return InvalidArgument(where() + value_column + " '" + val + "' is not a number");
    }
    if (!(std::abs(v) < kMaxDetectorValue)) {
      return InvalidArgument(where() + value_column + " '" + val + "' is out of range (finite, magnitude below 1e150)");
    }
    times->push_back(t);
    values->push_back(v);
  }
  return Status::Ok();
}

Status ReadSeriesCsv(const std::string& path, const std::string& value_column, std::vector<int64_t>* times,
                     std::vector<double>* values) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound(path + ": cannot open");
  std::ostringstream text;
  text << f.rdbuf();
  return ParseSeriesCsv(text.str(), path, value_column, times, values);
}

Result<std::vector<NabSeries>> LoadNabResults(const std::string& results_dir, const std::string& detector,
                                              const std::string& windows_path) {
  FAULTLINE_ASSIGN_OR_RETURN(auto windows, LoadNabWindows(windows_path));
  std::vector<NabSeries> corpus;
  for (const auto& [name, list] : windows) {
    const auto slash = name.find('/');
    const std::string file = results_dir + "/" + name.substr(0, slash) + "/" + detector + "_" + name.substr(slash + 1);
    NabSeries s{name, {}, {}, list, {}};
    FAULTLINE_RETURN_IF_ERROR(ReadSeriesCsv(file, "anomaly_score", &s.timestamps, &s.scores));
    corpus.push_back(std::move(s));
  }
  return corpus;
}

Result<std::vector<NabSeries>> LoadNabData(const std::string& nab_dir) {
  FAULTLINE_ASSIGN_OR_RETURN(auto windows, LoadNabWindows(nab_dir + "/labels/combined_windows.json"));
  std::vector<NabSeries> corpus;
  for (const auto& [name, list] : windows) {
    NabSeries s{name, {}, {}, list, {}};
    FAULTLINE_RETURN_IF_ERROR(ReadSeriesCsv(nab_dir + "/data/" + name, "value", &s.timestamps, &s.values));
    corpus.push_back(std::move(s));
  }
  return corpus;
}

}  // namespace faultline::detectors
