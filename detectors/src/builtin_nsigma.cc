// nsigma: |x - mean| > k * std over the previous `window` points. Parameters: window (100),
// k (3), min_points (10: silent until this many points were seen).
#include <cmath>
#include <deque>

#include "faultline/detectors/detector.h"
#include "state_codec.h"
#include "zscore.h"

namespace faultline::detectors {
namespace {

class NSigma : public Detector {
 public:
  NSigma(size_t window, double k, size_t min_points) : window_(window), k_(k), min_points_(min_points) {}
  Verdict Observe(int64_t, double x) override {
    Verdict v;
    const size_t n = values_.size();
    if (n >= min_points_) {
      const double mean = sum_ / n;
      const double var = std::max(sumsq_ / n - mean * mean, 0.0);
      v = ZScoreVerdict(x, mean, SafeScale(std::sqrt(var), mean), k_);
    }
    values_.push_back(x);
    sum_ += x;
    sumsq_ += x * x;
    if (values_.size() > window_) {
      sum_ -= values_.front();
      sumsq_ -= values_.front() * values_.front();
      values_.pop_front();
    }
    // Running sums drift; re-derive them from the window once per window length.
    if (++since_resum_ >= window_) Resum();
    return v;
  }
  std::string SaveState() const override {
    return StateWriter("nsigma")
        .Doubles(std::vector<double>(values_.begin(), values_.end()))
        .F64(sum_)
        .F64(sumsq_)
        .U64(since_resum_)
        .Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "nsigma");
    std::vector<double> vals;
    double sum = 0, sumsq = 0;
    uint64_t since = 0;
    r.Doubles(&vals, window_), r.F64(&sum), r.F64(&sumsq), r.U64(&since);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    values_.assign(vals.begin(), vals.end());
    sum_ = sum, sumsq_ = sumsq, since_resum_ = since;
    return Status::Ok();
  }

 private:
  void Resum() {
    sum_ = sumsq_ = 0;
    for (double x : values_) {
      sum_ += x;
      sumsq_ += x * x;
    }
    since_resum_ = 0;
  }

  size_t window_;
  double k_;
  size_t min_points_;
  std::deque<double> values_;
  double sum_ = 0, sumsq_ = 0;
  uint64_t since_resum_ = 0;
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(nsigma, "rolling mean/std: window (100), k (3), min_points (10)",
                            [](const Params& p) -> Result<std::unique_ptr<Detector>> {
                              ParamReader r("nsigma", p);
                              FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"window", "k", "min_points"}));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t window, r.Int("window", 100, 2, 1'000'000));
                              FAULTLINE_ASSIGN_OR_RETURN(double k, r.Double("k", 3, 0.1, 100));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t min_points, r.Int("min_points", 10, 2, 1'000'000));
                              return std::unique_ptr<Detector>(new NSigma(window, k, std::min(min_points, window)));
                            });

}  // namespace faultline::detectors
