// cusum: two-sided tabular CUSUM (Page, 1954) on values standardised by a slowly adapting EWMA
// baseline; detects sustained small shifts that point detectors miss. S+ = max(0, S+ + z - k),
// S- = max(0, S- - z - k); anomalous when either exceeds h, after which both restart.
// Parameters: alpha (baseline adaptation, 0.01), k (slack in sigmas, 0.5), h (decision interval
// in sigmas, 5), min_points (30). O(1) time, 48 bytes of state.
#include <cmath>

#include "faultline/detectors/detector.h"
#include "state_codec.h"
#include "zscore.h"

namespace faultline::detectors {
namespace {

class Cusum : public Detector {
 public:
  Cusum(double alpha, double k, double h, uint64_t min_points) : alpha_(alpha), k_(k), h_(h), min_points_(min_points) {}
  Verdict Observe(int64_t, double x) override {
    Verdict v;
    if (base_.n >= min_points_) {
      const double mean = base_.mean, sd = base_.Sd();
      const double z = (x - mean) / sd;
      up_ = std::max(0.0, up_ + z - k_);
      down_ = std::max(0.0, down_ - z - k_);
      const double s = std::max(up_, down_);
      v.has_band = true;
      v.expected = mean;
      v.lower = mean - h_ * sd;
      v.upper = mean + h_ * sd;
      v.score = s / (s + h_);
      if (s > h_) {
        v.anomalous = true;
        v.direction = up_ >= down_ ? Direction::kUp : Direction::kDown;
        up_ = down_ = 0;
      }
    }
    base_.Update(x, alpha_);
    return v;
  }
  std::string SaveState() const override {
    return StateWriter("cusum").F64(base_.mean).F64(base_.var).F64(up_).F64(down_).U64(base_.n).Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "cusum");
    double mean = 0, var = 0, up = 0, down = 0;
    uint64_t n = 0;
    r.F64(&mean), r.F64(&var), r.F64(&up), r.F64(&down), r.U64(&n);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    base_.mean = mean, base_.var = var, up_ = up, down_ = down, base_.n = n;
    return Status::Ok();
  }

 private:
  double alpha_, k_, h_;
  uint64_t min_points_;
  EwmaBaseline base_;
  double up_ = 0, down_ = 0;
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(cusum, "two-sided CUSUM: alpha (0.01), k (0.5), h (5), min_points (30)",
                            [](const Params& p) -> Result<std::unique_ptr<Detector>> {
                              ParamReader r("cusum", p);
                              FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"alpha", "k", "h", "min_points"}));
                              FAULTLINE_ASSIGN_OR_RETURN(double alpha, r.Double("alpha", 0.01, 1e-6, 1));
                              FAULTLINE_ASSIGN_OR_RETURN(double k, r.Double("k", 0.5, 0, 10));
                              FAULTLINE_ASSIGN_OR_RETURN(double h, r.Double("h", 5, 0.1, 100));
                              FAULTLINE_ASSIGN_OR_RETURN(int64_t min_points, r.Int("min_points", 30, 2, 1'000'000));
                              return std::unique_ptr<Detector>(new Cusum(alpha, k, h, min_points));
                            });

}  // namespace faultline::detectors
