// Multivariate detectors: one verdict for a vector of related metrics observed together, such as a
// service's golden metrics (request rate, error ratio, p99 latency) in one window. They see what
// per-metric detectors cannot: a combination that is unusual although each value alone is not
// (latency up while traffic is down, errors without the traffic that usually brings them).
//
// Thread-safety: as Detector, one thread at a time per instance.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"
#include "faultline/detectors/detector.h"

namespace faultline::detectors {

struct MultiVerdict {
  // anomalous, score in [0, 1), and the direction of the dominant dimension; expected/lower/upper
  // are those of the dominant dimension (its mean and ± k marginal standard deviations).
  Verdict verdict;
  size_t dominant = 0;                // the dimension that contributes most to the distance
  std::vector<double> contributions;  // per dimension; they sum to the squared distance
  double distance2 = 0;               // squared Mahalanobis distance
};

class MultiDetector {
 public:
  virtual ~MultiDetector() = default;
  virtual size_t dimensions() const = 0;
  // Errors: kInvalidArgument when x has the wrong number of dimensions or a non-finite value.
  virtual Result<MultiVerdict> Observe(int64_t time_s, std::span<const double> x) = 0;
  virtual std::string SaveState() const = 0;
  virtual Status RestoreState(std::string_view bytes) = 0;
};

// "mahalanobis": squared Mahalanobis distance of x from an exponentially weighted mean under an
// exponentially weighted covariance, shrunk toward its diagonal; judged as a chi-square with
// `dimensions` degrees of freedom, turned into a one-sided normal z (Wilson–Hilferty) and compared
// with k. Parameters: alpha (0.01), k (4), shrinkage (0.1), min_points (30), min_sd (0: a floor on
// every dimension's standard deviation, in the metrics' unit). Errors name the
// parameter (kInvalidArgument), or an unknown name (kNotFound).
Result<std::unique_ptr<MultiDetector>> CreateMultiDetector(const std::string& name,
                                                           size_t dimensions, const Params& params);

}  // namespace faultline::detectors
