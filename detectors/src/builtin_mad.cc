// mad: robust z-score against the median and the median absolute deviation (scaled by 1.4826)
// of the previous `window` points. Parameters: window (100), k (3.5), min_points (10), and two
// floors on what counts as a change (both 0 by default): min_change, relative to the median, and
// min_delta, absolute: a point is anomalous only when it is beyond k robust deviations and at
// least max(min_change · |median|, min_delta) away from the median. Live series of a quiet
// system (a latency steady to the microsecond, an error rate of 0) need them: a jitter of a
// fraction of a millisecond is many deviations of nothing. With hold (0 by default) anomalous
// points are kept out of the window, so a sustained fault stays anomalous until it ends instead
// of becoming the new normal after half a window (live incidents resolve when the fault does).
// Cost: O(log window) per point for the median, plus O(window) every 10 points for the MAD.
#include <algorithm>
#include <cmath>
#include <deque>
#include <iterator>
#include <set>
#include <vector>

#include "faultline/detectors/detector.h"
#include "state_codec.h"
#include "zscore.h"

namespace faultline::detectors {
namespace {

// A sliding-window median in O(log n) per update: the window split into a lower and an upper
// half (multisets), the lower holding the extra element when the count is odd.
class RollingMedian {
 public:
  void Insert(double x) {
    if (lo_.empty() || x <= *lo_.rbegin()) {
      lo_.insert(x), lo_sum_ += x;
    } else {
      hi_.insert(x), hi_sum_ += x;
    }
    Balance();
  }
  void Erase(double x) {
    if (!lo_.empty() && x <= *lo_.rbegin()) {
      lo_.erase(lo_.find(x)), lo_sum_ -= x;
    } else {
      hi_.erase(hi_.find(x)), hi_sum_ -= x;
    }
    Balance();
  }
  double Median() const {
    return lo_.size() > hi_.size() ? *lo_.rbegin() : (*lo_.rbegin() + *hi_.begin()) / 2;
  }
  // The mean of |x - median| over the window, in O(1): the halves are the values below and above.
  double MeanAbsDeviation() const {
    const double m = Median();
    return (m * double(lo_.size()) - lo_sum_ + hi_sum_ - m * double(hi_.size())) / double(size());
  }
  size_t size() const { return lo_.size() + hi_.size(); }
  // The running sums are part of the state: rebuilt from the values they would round differently.
  std::pair<double, double> sums() const { return {lo_sum_, hi_sum_}; }
  void set_sums(double lo, double hi) { lo_sum_ = lo, hi_sum_ = hi; }

 private:
  void Balance() {
    if (lo_.size() > hi_.size() + 1) {
      const double v = *lo_.rbegin();
      hi_.insert(v), hi_sum_ += v;
      lo_.erase(std::prev(lo_.end())), lo_sum_ -= v;
    } else if (hi_.size() > lo_.size()) {
      const double v = *hi_.begin();
      lo_.insert(v), lo_sum_ += v;
      hi_.erase(hi_.begin()), hi_sum_ -= v;
    }
  }
  // Sums of each half.
  std::multiset<double> lo_, hi_;
  double lo_sum_ = 0, hi_sum_ = 0;
};

// The MAD needs the median of |x - median| over the window, which moves with the median: it is
// computed exactly by a selection over the window (O(window)) only every `kMadEvery` points and
// otherwise reused, while the median and the mean absolute deviation are exact at every point.
class Mad : public Detector {
 public:
  Mad(size_t window, double k, size_t min_points, double min_change, double min_delta, bool hold)
      : window_(window), k_(k), min_points_(min_points), min_change_(min_change),
        min_delta_(min_delta), hold_(hold) {}
  Verdict Observe(int64_t, double x) override {
    Verdict v;
    if (values_.size() >= min_points_) {
      const double med = median_.Median();
      if (since_refresh_ >= kMadEvery || mad_ == 0) Refresh(med);
      since_refresh_++;
      const double scale = std::max(1.4826 * mad_, 1.2533 * median_.MeanAbsDeviation());
      v = ZScoreVerdict(x, med, SafeScale(scale, med), k_);
      if (v.anomalous && std::abs(x - med) < std::max(min_change_ * std::abs(med), min_delta_)) {
        v.anomalous = false;
        v.direction = Direction::kNone;
      }
    }
    if (hold_ && v.anomalous) return v;
    values_.push_back(x);
    median_.Insert(x);
    if (values_.size() > window_) {
      median_.Erase(values_.front());
      values_.pop_front();
    }
    return v;
  }
  std::string SaveState() const override {
    const auto [lo_sum, hi_sum] = median_.sums();
    return StateWriter("mad")
        .Doubles(std::vector<double>(values_.begin(), values_.end()))
        .F64(mad_)
        .U64(since_refresh_)
        .F64(lo_sum)
        .F64(hi_sum)
        .Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "mad");
    std::vector<double> vals;
    double mad = 0, lo_sum = 0, hi_sum = 0;
    uint64_t since = 0;
    r.Doubles(&vals, window_), r.F64(&mad), r.U64(&since), r.F64(&lo_sum), r.F64(&hi_sum);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    values_.assign(vals.begin(), vals.end());
    median_ = RollingMedian();
    for (double v : vals) median_.Insert(v);
    median_.set_sums(lo_sum, hi_sum);
    mad_ = mad, since_refresh_ = since;
    return Status::Ok();
  }

 private:
  static constexpr uint64_t kMadEvery = 10;
  // The scale is max(1.4826 · MAD, 1.2533 · mean absolute deviation): on mostly flat data the
  // MAD is 0 and every deviation would be infinite, so the mean absolute deviation (× sqrt(pi/2),
  // consistent for Gaussian data; exact at every point) is the floor.
  void Refresh(double med) {
    scratch_.assign(values_.begin(), values_.end());
    for (double& s : scratch_) s = std::abs(s - med);
    const size_t mid = scratch_.size() / 2;
    std::nth_element(scratch_.begin(), scratch_.begin() + mid, scratch_.end());
    mad_ = scratch_[mid];
    if (scratch_.size() % 2 == 0) mad_ = (mad_ + *std::max_element(scratch_.begin(), scratch_.begin() + mid)) / 2;
    since_refresh_ = 0;
  }

  size_t window_;
  double k_;
  size_t min_points_;
  double min_change_, min_delta_;
  bool hold_;
  std::deque<double> values_;
  RollingMedian median_;
  double mad_ = 0;
  uint64_t since_refresh_ = 0;
  std::vector<double> scratch_;
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(mad,
                            "rolling median/MAD: window (100), k (3.5), min_points (10), "
                            "min_change (0, relative), min_delta (0, absolute), hold (0: learn anomalies; 1: keep them out)",
                            [](const Params& p) -> Result<std::unique_ptr<Detector>> {
                              ParamReader r("mad", p);
                              FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"window", "k", "min_points", "min_change", "min_delta", "hold"}));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t window, r.Int("window", 100, 3, 1'000'000));
                              FAULTLINE_ASSIGN_OR_RETURN(double k, r.Double("k", 3.5, 0.1, 100));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t min_points, r.Int("min_points", 10, 3, 1'000'000));
                              FAULTLINE_ASSIGN_OR_RETURN(double min_change, r.Double("min_change", 0, 0, 1000));
                              FAULTLINE_ASSIGN_OR_RETURN(double min_delta, r.Double("min_delta", 0, 0, 1e12));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t hold, r.Int("hold", 0, 0, 1));
                              return std::unique_ptr<Detector>(new Mad(
                                  window, k, std::min(min_points, window), min_change, min_delta, hold == 1));
                            });

}  // namespace faultline::detectors
