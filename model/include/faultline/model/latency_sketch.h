// A mergeable quantile sketch with a relative-error guarantee (DDSketch: Masson, Rim and Lee,
// "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with Relative-Error Guarantees",
// VLDB 2019), for latencies and other non-negative values.
//
// Values are counted in logarithmic buckets: bucket i holds (γ^(i-1), γ^i] with
// γ = (1 + α) / (1 - α), and reports 2γ^i / (γ + 1), which is within a relative error α of every
// value in the bucket. So any quantile estimate is within α (default 1%) of the true value of
// that rank, as long as the bucket count stays under the bound (after which the lowest buckets
// are merged, which only affects the lowest quantiles, as in the paper's collapsing store). Two
// sketches with the same α merge exactly (bucket counts add). Count, sum, min and max are exact.
//
// Thread-compatible. Encode/Decode give a compact byte form (varints); Decode names what is wrong
// in bytes that did not come from Encode.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::model {

class LatencySketch {
 public:
  // relative_accuracy in (0, 0.5); max_buckets >= 16. Defaults: 1%, 2048 buckets (from 1 ns to
  // beyond 10^17 ns at 1%, so the bound is never reached for latencies).
  explicit LatencySketch(double relative_accuracy = 0.01, uint32_t max_buckets = 2048);

  // Negative values count as 0; NaN is ignored.
  void Add(double value, uint64_t count = 1);
  // Errors: kInvalidArgument when the relative accuracies differ.
  Status Merge(const LatencySketch& other);

  // The value at quantile q in [0, 1] (rank q·(count-1), as numpy's default); 0 when empty.
  double Quantile(double q) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double min() const { return count_ ? min_ : 0; }
  double max() const { return count_ ? max_ : 0; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  double relative_accuracy() const { return alpha_; }

  void EncodeTo(std::string* out) const;
  static Result<LatencySketch> Decode(std::string_view bytes);

  friend bool operator==(const LatencySketch& a, const LatencySketch& b);

 private:
  int32_t IndexOf(double value) const;
  double ValueOf(int32_t index) const;
  void Grow(int32_t index);

  double alpha_, gamma_, log_gamma_;
  uint32_t max_buckets_;
  // counts_[i] is bucket offset_ + i. Values below kMinValue go to zero_count_.
  int32_t offset_ = 0;
  std::vector<uint64_t> counts_;
  uint64_t zero_count_ = 0;
  uint64_t count_ = 0;
  double sum_ = 0, min_ = 0, max_ = 0;
};

}  // namespace faultline::model
