// combined: two cheap views of a series, one alarm policy. Built for what an on-call engineer (and
// NAB's scoring) rewards: one early alarm per incident, few alarms on a merely noisy series.
//
// Channels (each gives r, "how many scales away"):
//   - level: |x - mean| / sd against a slow EWMA baseline (weight `alpha`, default 0.0005: a memory
//     of about 2000 points), so a shift or spike stands out against the long-run behaviour;
//   - shape novelty: the last `window` values, scaled to [0, 1] by the range of the first `learn`
//     points, are matched against up to `prototypes` remembered shapes (leader clustering, L∞
//     distance). A shape farther than `rho` from every prototype is novel with r = distance / rho
//     and becomes a prototype while there is room; a familiar one pulls its prototype toward itself
//     (weight 0.05). With the defaults a shape alarms when it is 0.7 of the learned range away from
//     every remembered one: flapping, or a new swing that the level channel, scaled by a noisy
//     series' sd, still calls ordinary. (Smaller distances made NAB's score worse.)
// Alarm policy: r = max(level, novelty) / gain. An alarm is raised when r >= `alarm`, unless one
// was raised in the last `quiet` points (then the score is halved, so a threshold tuned on scores
// does not count the same incident twice). Every alarm multiplies gain by `habituation`, and gain
// decays back toward 1 by `recovery` per calm point (both channels under half the alarm level): a
// series that keeps alarming must deviate further to alarm again, like an engineer who learns
// which pager is noisy, and a lasting shift alarms a few times, not every time the bar decays.
//
// The score is r / (r + alarm): 0.5 at the alarm level. Parameters: alpha (0.0005), window (8),
// rho (0.1), prototypes (32), learn (150), alarm (7), quiet (100), habituation (1.5),
// recovery (0.001). Cost: O(prototypes · window) per point; state: at most prototypes · window + 16
// doubles (about 2.2 KiB with the defaults).
#include <algorithm>
#include <cmath>
#include <vector>

#include "faultline/detectors/detector.h"
#include "state_codec.h"
#include "zscore.h"

namespace faultline::detectors {
namespace {

struct CombinedParams {
  double alpha = 0.0005;
  size_t window = 8;
  double rho = 0.1;
  size_t prototypes = 32;
  uint64_t learn = 150;
  double alarm = 7;
  uint64_t quiet = 100;
  double habituation = 1.5;
  double recovery = 0.001;
};

class Combined : public Detector {
 public:
  explicit Combined(const CombinedParams& p) : p_(p) {}

  Verdict Observe(int64_t, double x) override {
    Verdict v;
    const double novelty = Novelty(x);
    if (level_.n >= p_.learn) {
      const double sd = level_.Sd();
      const double level = std::abs(x - level_.mean) / sd;
      const double r = std::max(level, novelty) / gain_;
      v.score = r / (r + p_.alarm);
      v.has_band = true;
      v.expected = level_.mean;
      v.lower = level_.mean - p_.alarm * gain_ * sd;
      v.upper = level_.mean + p_.alarm * gain_ * sd;
      // The bar comes back down only while the series is calm (under half the alarm level), so a
      // lasting new regime that stays noisy does not re-alarm each time the gain has decayed.
      if (std::max(level, novelty) < 0.5 * p_.alarm) gain_ = 1 + (gain_ - 1) * (1 - p_.recovery);
      since_alarm_++;
      if (r >= p_.alarm && since_alarm_ > p_.quiet) {
        v.anomalous = true;
        v.direction = x >= level_.mean ? Direction::kUp : Direction::kDown;
        since_alarm_ = 0;
        gain_ *= p_.habituation;
      } else if (since_alarm_ <= p_.quiet) {
        v.score *= 0.5;
      }
    }
    level_.Update(x, p_.alpha);
    return v;
  }

  std::string SaveState() const override {
    StateWriter w("combined");
    w.F64(level_.mean).F64(level_.var).U64(level_.n).F64(lo_).F64(hi_).F64(gain_).U64(since_alarm_);
    w.Doubles(recent_).U64(recent_pos_).U64(prototype_count_).Doubles(prototypes_);
    return w.Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "combined");
    double mean = 0, var = 0, lo = 0, hi = 0, gain = 0;
    uint64_t n = 0, since = 0, pos = 0, count = 0;
    std::vector<double> recent, prototypes;
    r.F64(&mean), r.F64(&var), r.U64(&n), r.F64(&lo), r.F64(&hi), r.F64(&gain), r.U64(&since);
    r.Doubles(&recent, p_.window), r.U64(&pos), r.U64(&count),
        r.Doubles(&prototypes, p_.prototypes * p_.window);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    if (pos >= std::max<size_t>(recent.size(), 1) || count * p_.window != prototypes.size() ||
        !(gain >= 1)) {
      return InvalidArgument(
          "combined state: inconsistent (window position " + std::to_string(pos) + ", " +
          std::to_string(count) + " prototypes in " + std::to_string(prototypes.size()) +
          " values, gain " + std::to_string(gain) + "); saved with other parameters?");
    }
    level_.mean = mean, level_.var = var, level_.n = n, lo_ = lo, hi_ = hi, gain_ = gain,
    since_alarm_ = since;
    recent_ = std::move(recent), recent_pos_ = pos, prototype_count_ = count,
    prototypes_ = std::move(prototypes);
    return Status::Ok();
  }

 private:
  // Remembers x and returns the novelty of the shape it completes (0 while learning or familiar).
  double Novelty(double x) {
    if (recent_.size() < p_.window) {
      recent_.push_back(x);
    } else {
      recent_[recent_pos_] = x;
      recent_pos_ = (recent_pos_ + 1) % p_.window;
    }
    if (level_.n < p_.learn) {  // the range is learned on the first `learn` points
      lo_ = level_.n == 0 ? x : std::min(lo_, x);
      hi_ = level_.n == 0 ? x : std::max(hi_, x);
      return 0;
    }
    if (recent_.size() < p_.window) return 0;
    const double range = std::max(hi_ - lo_, 1e-9 * std::max(1.0, std::abs(hi_)));
    shape_.resize(p_.window);
    for (size_t i = 0; i < p_.window; ++i)
      shape_[i] = (recent_[(recent_pos_ + i) % p_.window] - lo_) / range;
    double best = INFINITY;
    size_t nearest = 0;
    for (size_t c = 0; c < prototype_count_; ++c) {
      const double* proto = &prototypes_[c * p_.window];
      double d = 0;
      for (size_t i = 0; i < p_.window && d < best; ++i)
        d = std::max(d, std::abs(shape_[i] - proto[i]));
      if (d < best) best = d, nearest = c;
    }
    if (best <= p_.rho) {
      double* proto = &prototypes_[nearest * p_.window];
      for (size_t i = 0; i < p_.window; ++i) proto[i] += kPrototypeRate * (shape_[i] - proto[i]);
      return 0;
    }
    const bool first = prototype_count_ == 0;
    if (prototype_count_ < p_.prototypes) {
      prototypes_.insert(prototypes_.end(), shape_.begin(), shape_.end());
      prototype_count_++;
    }
    return first ? 0 : best / p_.rho;
  }

  static constexpr double kPrototypeRate = 0.05;
  CombinedParams p_;
  EwmaBaseline level_;
  double lo_ = 0, hi_ = 0;
  double gain_ = 1;
  uint64_t since_alarm_ = UINT64_MAX / 2;
  std::vector<double> recent_;  // ring of the last `window` values, oldest at recent_pos_
  uint64_t recent_pos_ = 0;
  uint64_t prototype_count_ = 0;
  std::vector<double> prototypes_;  // prototype_count_ rows of `window` values
  std::vector<double> shape_;       // scratch
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(
    combined,
    "level (slow EWMA) + shape novelty with quiet period and habituation: alpha (0.0005), window "
    "(8), rho (0.1), "
    "prototypes (32), learn (150), alarm (7), quiet (100), habituation (1.5), recovery (0.001)",
    [](const Params& params) -> Result<std::unique_ptr<Detector>> {
      ParamReader r("combined", params);
      FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"alpha", "window", "rho", "prototypes", "learn",
                                                 "alarm", "quiet", "habituation", "recovery"}));
      CombinedParams p;
      FAULTLINE_ASSIGN_OR_RETURN(p.alpha, r.Double("alpha", p.alpha, 1e-6, 1));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t window, r.Int("window", 8, 1, 256));
      FAULTLINE_ASSIGN_OR_RETURN(p.rho, r.Double("rho", p.rho, 1e-6, 10));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t prototypes, r.Int("prototypes", 32, 1, 4096));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t learn, r.Int("learn", 150, 2, 1'000'000));
      FAULTLINE_ASSIGN_OR_RETURN(p.alarm, r.Double("alarm", p.alarm, 0.1, 1000));
      FAULTLINE_ASSIGN_OR_RETURN(int64_t quiet, r.Int("quiet", 100, 0, 1'000'000'000));
      FAULTLINE_ASSIGN_OR_RETURN(p.habituation, r.Double("habituation", p.habituation, 1, 100));
      FAULTLINE_ASSIGN_OR_RETURN(p.recovery, r.Double("recovery", p.recovery, 0, 1));
      p.window = static_cast<size_t>(window), p.prototypes = static_cast<size_t>(prototypes);
      p.learn = static_cast<uint64_t>(learn), p.quiet = static_cast<uint64_t>(quiet);
      return std::unique_ptr<Detector>(new Combined(p));
    });

}  // namespace faultline::detectors
