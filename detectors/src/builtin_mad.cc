// mad: robust z-score against the median and the median absolute deviation (scaled by 1.4826)
// of the previous `window` points. Parameters: window (100), k (3.5), min_points (10).
#include <algorithm>
#include <cmath>
#include <deque>
#include <vector>

#include "faultline/detectors/detector.h"
#include "state_codec.h"
#include "zscore.h"

namespace faultline::detectors {
namespace {

double Median(std::vector<double>& v) {
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  double m = v[mid];
  if (v.size() % 2 == 0) m = (m + *std::max_element(v.begin(), v.begin() + mid)) / 2;
  return m;
}

class Mad : public Detector {
 public:
  Mad(size_t window, double k, size_t min_points) : window_(window), k_(k), min_points_(min_points) {}
  Verdict Observe(int64_t, double x) override {
    Verdict v;
    if (values_.size() >= min_points_) {
      scratch_.assign(values_.begin(), values_.end());
      const double med = Median(scratch_);
      double mean_abs_dev = 0;
      for (double& s : scratch_) {
        s = std::abs(s - med);
        mean_abs_dev += s;
      }
      mean_abs_dev /= scratch_.size();
      const double mad = 1.4826 * Median(scratch_);
      // On mostly flat data the MAD is 0 and every deviation would be infinite: the mean absolute
      // deviation (x sqrt(pi/2), consistent for Gaussian data) is the floor.
      v = ZScoreVerdict(x, med, SafeScale(std::max(mad, 1.2533 * mean_abs_dev), med), k_);
    }
    values_.push_back(x);
    if (values_.size() > window_) values_.pop_front();
    return v;
  }
  std::string SaveState() const override {
    return StateWriter("mad").Doubles(std::vector<double>(values_.begin(), values_.end())).Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "mad");
    std::vector<double> vals;
    r.Doubles(&vals, window_);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    values_.assign(vals.begin(), vals.end());
    return Status::Ok();
  }

 private:
  size_t window_;
  double k_;
  size_t min_points_;
  std::deque<double> values_;
  std::vector<double> scratch_;
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(mad, "rolling median/MAD: window (100), k (3.5), min_points (10)",
                            [](const Params& p) -> Result<std::unique_ptr<Detector>> {
                              ParamReader r("mad", p);
                              FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"window", "k", "min_points"}));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t window, r.Int("window", 100, 3, 1'000'000));
                              FAULTLINE_ASSIGN_OR_RETURN(double k, r.Double("k", 3.5, 0.1, 100));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t min_points, r.Int("min_points", 10, 3, 1'000'000));
                              return std::unique_ptr<Detector>(new Mad(window, k, std::min(min_points, window)));
                            });

}  // namespace faultline::detectors
