// Anomaly likelihood (private to detectors/): turns a detector's raw surprise per point, in [0, 1],
// into a score that means the same on every series, after Numenta's HTM post-processing (Ahmad et
// al., "Unsupervised real-time anomaly detection for streaming data", 2017; nupic's
// anomaly_likelihood). A raw score that is often high on a noisy series and one that is always 0
// on a clean one are made comparable: what alarms is a recent mean far in the tail of that series'
// own history.
//
// The mean of the last `average` raw scores is judged against a normal fitted to that mean's
// history: the tail probability of |mean - mu| / sd (two-sided, as nupic), floored at mu >= 0.03
// and sd^2 >= 0.0003 (nupic's floors: a series that is almost always predicted must not alarm on
// its first small blip). A second tail at or below 1e-5 in a row is raised to 1e-3 (nupic's
// red/yellow filter: one sharp alarm, not a run of them). The score is log(tail) / log(1e-10):
// 0.5 at nupic's red level (tail 1e-5), 1 at 1e-10. The first `estimate` means only train the fit
// (score 0).
//
// One difference from nupic: mu and sd^2 are a running mean and variance, weighted equally until
// `history` points and exponentially (weight 1/history) after, instead of being recomputed from a
// window of the last `history` values every 100 points: O(1) state and cost per point.
// Thread-compatible.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "state_codec.h"

namespace faultline::detectors {

struct AnomalyLikelihoodParams {
  static constexpr size_t kMaxAverage = 1000;
  size_t average = 10;      // nupic's averagingWindow; at most kMaxAverage
  uint64_t estimate = 100;  // nupic's estimationSamples
  double history = 8640;    // nupic's historicWindowSize
};

class AnomalyLikelihood {
 public:
  explicit AnomalyLikelihood(const AnomalyLikelihoodParams& p) : p_(p), recent_(p.average, 0.0) {}

  // Takes the next raw score (in [0, 1]) and returns the likelihood score in [0, 1].
  double Update(double raw) {
    recent_[recent_pos_] = raw;
    recent_pos_ = (recent_pos_ + 1) % recent_.size();
    n_++;
    double sum = 0;  // summed afresh: a running sum would drift over millions of points
    for (double r : recent_) sum += r;
    const double mean = sum / double(std::min<uint64_t>(n_, recent_.size()));
    const double w = std::max(1.0 / double(n_), 1.0 / p_.history);
    const double d = mean - mu_;
    mu_ += w * d;
    var_ = (1 - w) * (var_ + w * d * d);
    if (n_ <= p_.estimate) return 0;
    const double z = std::abs(mean - std::max(mu_, kMinMean)) / std::sqrt(std::max(var_, kMinVariance));
    double tail = 0.5 * std::erfc(z / std::sqrt(2.0));
    const bool red = tail <= kRedTail;
    if (red && previous_red_) tail = kYellowTail;
    previous_red_ = red;
    return std::min(1.0, std::log(tail + kMinTail) / std::log(kMinTail));
  }

  void Save(StateWriter* w) const {
    w->Doubles(recent_).U64(recent_pos_).U64(n_).F64(mu_).F64(var_).U64(previous_red_);
  }
  // Reads what Save wrote. Bytes that are cut short leave this unchanged and `r` failed (its
  // Finish() says so); values that cannot come from Save with these parameters are an
  // InvalidArgument naming the field, prefixed with `what`.
  Status Restore(StateReader* r, const std::string& what) {
    std::vector<double> recent;
    uint64_t pos = 0, n = 0, red = 0;
    double mu = 0, var = 0;
    if (!r->Doubles(&recent, AnomalyLikelihoodParams::kMaxAverage) || !r->U64(&pos) || !r->U64(&n) || !r->F64(&mu) ||
        !r->F64(&var) || !r->U64(&red)) {
      return Status::Ok();
    }
    if (recent.size() != p_.average || pos >= recent.size()) {
      return InvalidArgument(what + ": likelihood window of " + std::to_string(recent.size()) +
                             " scores at position " + std::to_string(pos) + ", expected " +
                             std::to_string(p_.average) + " (saved with another `average`?)");
    }
    if (red > 1 || !(var >= 0) || !std::isfinite(mu)) {
      return InvalidArgument(what + ": likelihood fit is not valid (mean " + std::to_string(mu) +
                             ", variance " + std::to_string(var) + ", red flag " +
                             std::to_string(red) + ")");
    }
    recent_ = std::move(recent), recent_pos_ = pos, n_ = n, mu_ = mu, var_ = var;
    previous_red_ = red == 1;
    return Status::Ok();
  }

 private:
  static constexpr double kMinMean = 0.03, kMinVariance = 0.0003;
  static constexpr double kRedTail = 1e-5, kYellowTail = 1e-3, kMinTail = 1e-10;
  AnomalyLikelihoodParams p_;
  std::vector<double> recent_;  // ring of the last `average` raw scores
  uint64_t recent_pos_ = 0;
  uint64_t n_ = 0;
  double mu_ = 0, var_ = 0;
  bool previous_red_ = false;
};

}  // namespace faultline::detectors
