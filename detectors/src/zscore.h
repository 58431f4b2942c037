// Pieces shared by the built-in detectors that judge a value against a center and a scale
// (private to detectors/).
#pragma once

#include <cmath>
#include <cstdint>

#include "faultline/detectors/detector.h"

namespace faultline::detectors {

// A scale that is never zero: at least 1e-9 of the center's magnitude (or of 1).
inline double SafeScale(double scale, double center) {
  return std::max(scale, 1e-9 * std::max(std::abs(center), 1.0));
}

// The verdict for x judged by z = |x - center| / scale against k: band center ± k·scale, score
// z / (z + k), anomalous when z > k.
inline Verdict ZScoreVerdict(double x, double center, double scale, double k) {
  Verdict v;
  const double z = std::abs(x - center) / scale;
  v.has_band = true;
  v.expected = center;
  v.lower = center - k * scale;
  v.upper = center + k * scale;
  v.score = std::isinf(z) ? 1.0 : z / (z + k);
  v.anomalous = z > k;
  if (v.anomalous) v.direction = x > center ? Direction::kUp : Direction::kDown;
  return v;
}

// Exponentially weighted mean and variance (West's incremental form).
struct EwmaBaseline {
  double mean = 0, var = 0;
  uint64_t n = 0;
  void Update(double x, double alpha) {
    if (n == 0) {
      mean = x;
    } else {
      const double diff = x - mean;
      const double incr = alpha * diff;
      mean += incr;
      var = (1 - alpha) * (var + diff * incr);
    }
    n++;
  }
  double Sd() const { return SafeScale(std::sqrt(var), mean); }
};

}  // namespace faultline::detectors
