#include "faultline/model/latency_sketch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "faultline/common/varint.h"

namespace faultline::model {
namespace {

// Values below this count as zero: far below a nanosecond, and it keeps indexes small.
constexpr double kMinValue = 1e-9;
// Bucket indexes of finite doubles at the coarsest accuracy allowed stay far inside this.
constexpr int64_t kMaxIndex = 1 << 24;

}  // namespace

LatencySketch::LatencySketch(double relative_accuracy, uint32_t max_buckets)
    : alpha_(std::clamp(relative_accuracy, 1e-4, 0.49)),
      gamma_((1 + alpha_) / (1 - alpha_)),
      log_gamma_(std::log(gamma_)),
      max_buckets_(std::max<uint32_t>(max_buckets, 16)) {}

int32_t LatencySketch::IndexOf(double value) const {
  return static_cast<int32_t>(std::ceil(std::log(value) / log_gamma_));
}

double LatencySketch::ValueOf(int32_t index) const {
  return 2 * std::exp(index * log_gamma_) / (gamma_ + 1);
}

void LatencySketch::Grow(int32_t index) {
  if (counts_.empty()) {
    offset_ = index;
    counts_.assign(1, 0);
    return;
  }
  if (index < offset_) {
    counts_.insert(counts_.begin(), static_cast<size_t>(offset_ - index), 0);
    offset_ = index;
  } else if (index >= offset_ + static_cast<int32_t>(counts_.size())) {
    counts_.resize(static_cast<size_t>(index - offset_) + 1, 0);
  }
  // Over the bound: fold the lowest buckets into the lowest one kept (the paper's collapsing
  // store), so high quantiles keep their guarantee.
  if (counts_.size() > max_buckets_) {
    const size_t excess = counts_.size() - max_buckets_;
    uint64_t folded = 0;
    for (size_t i = 0; i <= excess; ++i) folded += counts_[i];
    counts_.erase(counts_.begin(), counts_.begin() + static_cast<std::ptrdiff_t>(excess));
    counts_[0] = folded;
    offset_ += static_cast<int32_t>(excess);
  }
}

void LatencySketch::Add(double value, uint64_t count) {
  if (std::isnan(value) || count == 0) return;
  value = std::clamp(value, 0.0, std::numeric_limits<double>::max());
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  count_ += count;
  sum_ = SaturatingAdd(sum_, value * static_cast<double>(count));
  if (value < kMinValue) {
    zero_count_ += count;
    return;
  }
  int32_t index = IndexOf(value);
  Grow(index);
  index = std::max(index, offset_);  // folded away: counts in the lowest bucket kept
  counts_[static_cast<size_t>(index - offset_)] += count;
}

Status LatencySketch::Merge(const LatencySketch& other) {
  if (other.alpha_ != alpha_) {
    return InvalidArgument("sketch merge: relative accuracy " + std::to_string(other.alpha_) +
                           " into " + std::to_string(alpha_));
  }
  if (other.count_ == 0) return Status::Ok();
  if (count_ == 0) {
    min_ = other.min_, max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_), max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  sum_ = SaturatingAdd(sum_, other.sum_);
  zero_count_ += other.zero_count_;
  if (!other.counts_.empty()) {
    Grow(other.offset_);
    Grow(other.offset_ + static_cast<int32_t>(other.counts_.size()) - 1);
    for (size_t i = 0; i < other.counts_.size(); ++i) {
      const int32_t index = std::max(other.offset_ + static_cast<int32_t>(i), offset_);
      counts_[static_cast<size_t>(index - offset_)] += other.counts_[i];
    }
  }
  return Status::Ok();
}

double LatencySketch::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  if (q == 0) return min_;
  if (q == 1) return max_;
  const double rank = q * static_cast<double>(count_ - 1);
  double seen = static_cast<double>(zero_count_);
  if (rank < seen) return min_;  // the zero bucket: min_ is below kMinValue
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += static_cast<double>(counts_[i]);
    if (rank < seen) return std::clamp(ValueOf(offset_ + static_cast<int32_t>(i)), min_, max_);
  }
  return max_;
}

void LatencySketch::EncodeTo(std::string* out) const {
  // Trim empty buckets at both ends so that the bytes depend only on the distribution.
  size_t first = 0, last = counts_.size();
  while (first < last && counts_[first] == 0) first++;
  while (last > first && counts_[last - 1] == 0) last--;
  PutDouble(out, alpha_);
  PutVarint(out, max_buckets_);
  PutVarint(out, count_);
  PutDouble(out, sum_);
  PutDouble(out, min_);
  PutDouble(out, max_);
  PutVarint(out, zero_count_);
  PutVarint(out, ZigZag(offset_ + static_cast<int32_t>(first)));
  PutVarint(out, last - first);
  for (size_t i = first; i < last; ++i) PutVarint(out, counts_[i]);
}

Result<LatencySketch> LatencySketch::Decode(std::string_view bytes) {
  ByteReader r(bytes);
  double alpha = 0, sum = 0, min = 0, max = 0;
  uint64_t max_buckets = 0, count = 0, zero = 0, offset = 0, n = 0;
  if (!r.Double(&alpha) || !r.Varint(&max_buckets) || !r.Varint(&count) || !r.Double(&sum) ||
      !r.Double(&min) || !r.Double(&max) || !r.Varint(&zero) || !r.Varint(&offset) ||
      !r.Varint(&n)) {
    return InvalidArgument("latency sketch: truncated header");
  }
  if (!(alpha >= 1e-4 && alpha <= 0.49) || max_buckets < 16 || max_buckets > (1u << 20) ||
      n > max_buckets) {
    return InvalidArgument("latency sketch: accuracy " + std::to_string(alpha) + ", " +
                           std::to_string(n) + " of " + std::to_string(max_buckets) +
                           " buckets: not a sketch");
  }
  if (!(std::isfinite(sum) && std::isfinite(min) && std::isfinite(max) && min >= 0 && min <= max)) {
    return InvalidArgument("latency sketch: min, max or sum is not a valid summary");
  }
  LatencySketch s(alpha, static_cast<uint32_t>(max_buckets));
  s.count_ = count, s.sum_ = sum, s.min_ = min, s.max_ = max, s.zero_count_ = zero;
  const int64_t first = UnZigZag(offset);
  if (first < -kMaxIndex || first > kMaxIndex) {
    return InvalidArgument("latency sketch: first bucket " + std::to_string(first) +
                           " is out of range");
  }
  s.offset_ = static_cast<int32_t>(first);
  s.counts_.resize(n);
  uint64_t total = zero;
  for (uint64_t i = 0; i < n; ++i) {
    if (!r.Varint(&s.counts_[i]))
      return InvalidArgument("latency sketch: truncated at bucket " + std::to_string(i));
    total += s.counts_[i];
  }
  if (!r.empty())
    return InvalidArgument("latency sketch: " + std::to_string(r.remaining()) + " trailing bytes");
  if (total != count) {
    return InvalidArgument("latency sketch: buckets hold " + std::to_string(total) +
                           " values, count says " + std::to_string(count));
  }
  return s;
}

bool operator==(const LatencySketch& a, const LatencySketch& b) {
  std::string x, y;
  a.EncodeTo(&x);
  b.EncodeTo(&y);
  return x == y;
}

}  // namespace faultline::model
