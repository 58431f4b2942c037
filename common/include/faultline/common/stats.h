// Order statistics shared by attribution, the fault trees' evaluator and the live diagnosis.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace faultline {

// The median of `v` (the mean of the two middle values when their number is even); NaN when `v`
// is empty. Takes `v` by value: it is partly reordered.
inline double Median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  const double upper = v[mid];
  if (v.size() % 2) return upper;
  return (upper + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid))) / 2;
}

}  // namespace faultline
