// ewma: exponentially weighted mean and variance; anomalous when |x - mean| > k * std.
// Parameters: alpha (0.05), k (3), min_points (10). O(1) time and 32 bytes of state.
#include <cmath>

#include "faultline/detectors/detector.h"
#include "state_codec.h"

namespace faultline::detectors {
namespace {

class Ewma : public Detector {
 public:
  Ewma(double alpha, double k, uint64_t min_points) : alpha_(alpha), k_(k), min_points_(min_points) {}
  Verdict Observe(int64_t, double x) override {
    Verdict v;
    if (n_ >= min_points_) {
      const double sd = std::max(std::sqrt(var_), 1e-9 * std::max(std::abs(mean_), 1.0));
      const double z = std::abs(x - mean_) / sd;
      v.has_band = true;
      v.expected = mean_;
      v.lower = mean_ - k_ * sd;
      v.upper = mean_ + k_ * sd;
      v.score = z / (z + k_);
      v.anomalous = z > k_;
      if (v.anomalous) v.direction = x > mean_ ? Direction::kUp : Direction::kDown;
    }
    if (n_ == 0) {
      mean_ = x;
    } else {
      const double diff = x - mean_;
      const double incr = alpha_ * diff;
      mean_ += incr;
      var_ = (1 - alpha_) * (var_ + diff * incr);
    }
    n_++;
    return v;
  }
  std::string SaveState() const override { return StateWriter("ewma").F64(mean_).F64(var_).U64(n_).Take(); }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "ewma");
    double mean = 0, var = 0;
    uint64_t n = 0;
    r.F64(&mean), r.F64(&var), r.U64(&n);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    mean_ = mean, var_ = var, n_ = n;
    return Status::Ok();
  }

 private:
  double alpha_, k_;
  uint64_t min_points_;
  double mean_ = 0, var_ = 0;
  uint64_t n_ = 0;
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(ewma, "EWMA mean/variance: alpha (0.05), k (3), min_points (10)",
                            [](const Params& p) -> Result<std::unique_ptr<Detector>> {
                              ParamReader r("ewma", p);
                              FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"alpha", "k", "min_points"}));
                              FAULTLINE_ASSIGN_OR_RETURN(double alpha, r.Double("alpha", 0.05, 1e-6, 1));
                              FAULTLINE_ASSIGN_OR_RETURN(double k, r.Double("k", 3, 0.1, 100));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t min_points, r.Int("min_points", 10, 1, 1'000'000));
                              return std::unique_ptr<Detector>(new Ewma(alpha, k, min_points));
                            });

}  // namespace faultline::detectors
