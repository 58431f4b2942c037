// burn_rate: multi-window, multi-burn-rate SLO alerting (Google SRE workbook, "Alerting on SLOs").
// Each point is the bad-event ratio (errors / requests, or slow / requests) of its interval. The
// burn rate of a window is its mean ratio divided by the error budget (1 - objective). The alert
// fires when both the long and the short window of a pair burn at least that pair's rate: by
// default 1 h and 5 min at 14.4 (2% of a 30-day budget in an hour), or 6 h and 30 min at 6 (5% in
// six hours). The short window makes the alert stop soon after the burning stops.
// Parameters: objective (0.999), fast_burn (14.4), fast_long_s (3600), fast_short_s (300),
// slow_burn (6), slow_long_s (21600), slow_short_s (1800). Windows are in event time. Values are
// ratios: anything outside [0, 1] is clamped to it.
#include <algorithm>
#include <array>
#include <deque>
#include <vector>

#include "faultline/detectors/detector.h"
#include "state_codec.h"

namespace faultline::detectors {
namespace {

// Mean of the values whose time lies in (now - width, now].
class TimeWindow {
 public:
  explicit TimeWindow(int64_t width) : width_(width) {}
  void Add(int64_t t, double v) {
    points_.emplace_back(t, v);
    sum_ += v;
    while (!points_.empty() && points_.front().first <= t - width_) {
      sum_ -= points_.front().second;
      points_.pop_front();
    }
  }
  double Mean() const { return points_.empty() ? 0 : sum_ / points_.size(); }
  void Save(StateWriter& w) const {
    std::vector<double> flat;
    for (const auto& [t, v] : points_) flat.push_back(static_cast<double>(t)), flat.push_back(v);
    w.Doubles(flat);
  }
  bool Load(StateReader& r) {
    std::vector<double> flat;
    if (!r.Doubles(&flat, 1u << 24) || flat.size() % 2) return false;
    points_.clear();
    sum_ = 0;
    for (size_t i = 0; i < flat.size(); i += 2) {
      points_.emplace_back(static_cast<int64_t>(flat[i]), flat[i + 1]);
      sum_ += flat[i + 1];
    }
    return true;
  }

 private:
  int64_t width_;
  std::deque<std::pair<int64_t, double>> points_;
  double sum_ = 0;
};

class BurnRate : public Detector {
 public:
  BurnRate(double objective, double fast_burn, double slow_burn, std::array<int64_t, 4> widths)
      : budget_(1 - objective), fast_burn_(fast_burn), slow_burn_(slow_burn),
        windows_{TimeWindow(widths[0]), TimeWindow(widths[1]), TimeWindow(widths[2]), TimeWindow(widths[3])} {}

  Verdict Observe(int64_t t, double ratio) override {
    ratio = std::clamp(ratio, 0.0, 1.0);  // a ratio; outside [0, 1] is a caller's unit mistake
    for (TimeWindow& w : windows_) w.Add(t, ratio);
    auto burn = [&](int i) { return windows_[i].Mean() / budget_; };
    const double fast = std::min(burn(0), burn(1)) / fast_burn_;
    const double slow = std::min(burn(2), burn(3)) / slow_burn_;
    const double b = std::max({fast, slow, 0.0});  // the running sums may round below 0
    Verdict v;
    v.score = b / (b + 1);
    v.anomalous = b >= 1;
    v.direction = v.anomalous ? Direction::kUp : Direction::kNone;
    v.has_band = true;
    v.expected = budget_;
    v.lower = 0;
    v.upper = budget_ * std::min(fast_burn_, slow_burn_);
    return v;
  }
  std::string SaveState() const override {
    StateWriter w("burn_rate");
    for (const TimeWindow& tw : windows_) tw.Save(w);
    return w.Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "burn_rate");
    std::array<TimeWindow, 4> loaded = windows_;
    for (TimeWindow& tw : loaded) tw.Load(r);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    windows_ = std::move(loaded);
    return Status::Ok();
  }

 private:
  double budget_, fast_burn_, slow_burn_;
  std::array<TimeWindow, 4> windows_;  // fast long, fast short, slow long, slow short
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(
    burn_rate,
    "SLO burn rate, multi-window: objective (0.999), fast_burn (14.4) over fast_long_s (3600) and "
    "fast_short_s (300), slow_burn (6) over slow_long_s (21600) and slow_short_s (1800)",
    [](const Params& p) -> Result<std::unique_ptr<Detector>> {
      ParamReader r("burn_rate", p);
      FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"objective", "fast_burn", "fast_long_s", "fast_short_s",
                                                 "slow_burn", "slow_long_s", "slow_short_s"}));
      FAULTLINE_ASSIGN_OR_RETURN(double objective, r.Double("objective", 0.999, 0.5, 0.999999));
      FAULTLINE_ASSIGN_OR_RETURN(double fast_burn, r.Double("fast_burn", 14.4, 1, 1000));
      FAULTLINE_ASSIGN_OR_RETURN(double slow_burn, r.Double("slow_burn", 6, 1, 1000));
      std::array<int64_t, 4> widths{};
      const char* names[4] = {"fast_long_s", "fast_short_s", "slow_long_s", "slow_short_s"};
      const int64_t defaults[4] = {3600, 300, 21600, 1800};
      for (int i = 0; i < 4; ++i) {
        FAULTLINE_ASSIGN_OR_RETURN(widths[i], r.Int(names[i], defaults[i], 1, 90 * 86400));
      }
      if (widths[1] >= widths[0] || widths[3] >= widths[2]) {
        return InvalidArgument("burn_rate: each short window must be shorter than its long window");
      }
      return std::unique_ptr<Detector>(new BurnRate(objective, fast_burn, slow_burn, widths));
    });

}  // namespace faultline::detectors
