// seasonal: additive seasonal baseline (Holt-Winters style, on time-of-period slots) for daily or
// weekly patterns. The period `period_s` is cut into slots of `slot_s` seconds by timestamp (not by
// point count, so irregular sampling and gaps are fine). The model is x ≈ level + season[slot].
//   - Learning: for the first `min_periods` periods (by time) each slot is the plain mean of its
//     values; no verdicts are given (score 0, no band). Then the level becomes the mean of the
//     slot means, each slot its difference from it, and the residual variance the pooled
//     within-slot variance.
//   - Judging: e = x - level - season[slot]; anomalous when |e| > k·sd. Then e, clipped to ±k·sd
//     so that one outlier does not bend the profile, updates the level (weight `alpha` per point)
//     and the slot (so that it moves by about `gamma` of its error per period: the per-point
//     weight is scaled by the points a slot receives per period, from the observed sampling
//     interval). The residual variance (weight `alpha`) learns the unclipped e: a variance of
//     clipped residuals is biased low, which clips more, and on NAB's series it alarmed on about 3%
//     of points (NAB score 0; 41 unclipped).
// Parameters: period_s (86400), slot_s (1800), alpha (0.01), gamma (0.3), k (4), min_periods (1).
// O(1) per point; state: 2 doubles per slot (48 slots a day by default).
#include <algorithm>
#include <cmath>
#include <vector>

#include "faultline/detectors/detector.h"
#include "state_codec.h"
#include "zscore.h"

namespace faultline::detectors {
namespace {

class Seasonal : public Detector {
 public:
  Seasonal(int64_t period_s, int64_t slot_s, double alpha, double gamma, double k,
           int64_t min_periods)
      : period_s_(period_s),
        slot_s_(slot_s),
        alpha_(alpha),
        gamma_(gamma),
        k_(k),
        min_periods_(min_periods),
        season_(static_cast<size_t>((period_s + slot_s - 1) / slot_s), 0.0),
        seen_(season_.size(), 0.0) {}

  Verdict Observe(int64_t time_s, double x) override {
    Verdict v;
    const size_t slot = Slot(time_s);
    if (n_ == 0) first_time_ = time_s;
    if (n_ > 0)
      gap_ = n_ == 1 ? double(time_s - last_time_)
                     : gap_ + alpha_ * (double(time_s - last_time_) - gap_);
    last_time_ = time_s;
    n_++;
    if (!profiled_) {
      if (time_s - first_time_ < min_periods_ * period_s_) {
        // Learning: each slot is the plain mean of its values.
        seen_[slot] += 1;
        const double before = season_[slot];
        season_[slot] += (x - before) / seen_[slot];
        learn_m2_ += (x - before) * (x - season_[slot]);  // Welford, pooled over the slots
        return v;
      }
      StartProfile();
    }
    if (seen_[slot] == 0) {  // a slot the learning periods never saw: it starts here
      seen_[slot] = 1;
      season_[slot] = x - level_;
      return v;
    }
    const double expected = level_ + season_[slot];
    const double sd = SafeScale(std::sqrt(var_), expected);
    v = ZScoreVerdict(x, expected, sd, k_);
    // The level moves by a share of the clipped residual; the slot takes a share of what is left,
    // scaled so that it moves by about `gamma` of its error per period (a slot receives about
    // slot_s / gap points per period).
    const double raw = x - expected;
    const double e = std::clamp(raw, -k_ * sd, k_ * sd);
    level_ += alpha_ * e;
    seen_[slot] += 1;
    const double per_point = gamma_ * std::min(1.0, std::max(gap_, 1.0) / double(slot_s_));
    season_[slot] += per_point * (1 - alpha_) * e;
    var_ = (1 - alpha_) * (var_ + alpha_ * raw * raw);
    return v;
  }

  std::string SaveState() const override {
    return StateWriter("seasonal")
        .U64(profiled_)
        .U64(static_cast<uint64_t>(first_time_))
        .U64(static_cast<uint64_t>(last_time_))
        .U64(n_)
        .F64(gap_)
        .F64(learn_m2_)
        .F64(level_)
        .F64(var_)
        .Doubles(season_)
        .Doubles(seen_)
        .Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "seasonal");
    uint64_t profiled = 0, first = 0, last = 0, n = 0;
    double gap = 0, m2 = 0, level = 0, var = 0;
    std::vector<double> season, seen;
    r.U64(&profiled), r.U64(&first), r.U64(&last), r.U64(&n), r.F64(&gap), r.F64(&m2),
        r.F64(&level), r.F64(&var);
    r.Doubles(&season, season_.size()), r.Doubles(&seen, seen_.size());
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    if (season.size() != season_.size() || seen.size() != seen_.size()) {
      return InvalidArgument("seasonal state: " + std::to_string(season.size()) +
                             " slots, this detector has " + std::to_string(season_.size()) +
                             " (period_s / slot_s changed?)");
    }
    profiled_ = profiled != 0, first_time_ = static_cast<int64_t>(first),
    last_time_ = static_cast<int64_t>(last);
    n_ = n, gap_ = gap, learn_m2_ = m2, level_ = level, var_ = var;
    season_ = std::move(season);
    seen_ = std::move(seen);
    return Status::Ok();
  }

 private:
  // After learning: the level is the mean of the slot means, each slot its difference from it,
  // and the residual variance starts as the pooled variance of the learned points around their
  // slots' means.
  void StartProfile() {
    double sum = 0, count = 0, points = 0;
    for (size_t i = 0; i < season_.size(); ++i) {
      if (seen_[i] > 0) sum += season_[i], count++, points += seen_[i];
    }
    level_ = count ? sum / count : 0;
    for (size_t i = 0; i < season_.size(); ++i) {
      if (seen_[i] > 0) season_[i] -= level_;
    }
    var_ = points > count ? learn_m2_ / (points - count) : 0;
    profiled_ = true;
  }
  size_t Slot(int64_t time_s) const {
    int64_t phase = time_s % period_s_;
    if (phase < 0) phase += period_s_;
    return static_cast<size_t>(phase / slot_s_);
  }

  int64_t period_s_, slot_s_;
  double alpha_, gamma_, k_;
  int64_t min_periods_;
  std::vector<double> season_, seen_;  // per slot: the profile, and how many points shaped it
  bool profiled_ = false;              // learning is over
  int64_t first_time_ = 0, last_time_ = 0;
  uint64_t n_ = 0;
  double gap_ = 0;       // EWMA of the time between points
  double learn_m2_ = 0;  // while learning: sum of squared deviations from the slot means
  double level_ = 0, var_ = 0;
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(
    seasonal,
    "seasonal baseline (level + per-slot profile): period_s (86400), slot_s (1800), alpha (0.01), "
    "gamma (0.3), k (4), min_periods (1)",
    [](const Params& p) -> Result<std::unique_ptr<Detector>> {
      ParamReader r("seasonal", p);
      FAULTLINE_RETURN_IF_ERROR(
          r.CheckAllKnown({"period_s", "slot_s", "alpha", "gamma", "k", "min_periods"}));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t period_s, r.Int("period_s", 86400, 2, 366LL * 86400));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t slot_s, r.Int("slot_s", 1800, 1, period_s));
      if (period_s / slot_s > 100'000) {
        return InvalidArgument("seasonal: period_s / slot_s is " +
                               std::to_string(period_s / slot_s) +
                               " slots, at most 100000 (make slot_s larger)");
      }
      FAULTLINE_ASSIGN_OR_RETURN(double alpha, r.Double("alpha", 0.01, 1e-6, 1));
      FAULTLINE_ASSIGN_OR_RETURN(double gamma, r.Double("gamma", 0.3, 1e-6, 1));
      FAULTLINE_ASSIGN_OR_RETURN(double k, r.Double("k", 4, 0.1, 100));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t min_periods, r.Int("min_periods", 1, 1, 1000));
      return std::unique_ptr<Detector>(
          new Seasonal(period_s, slot_s, alpha, gamma, k, min_periods));
    });

}  // namespace faultline::detectors
