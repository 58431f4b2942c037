// ewma: exponentially weighted mean and variance; anomalous when |x - mean| > k * std.
// Parameters: alpha (0.05), k (3), min_points (10). O(1) time and 32 bytes of state.
#include <cmath>

#include "faultline/detectors/detector.h"
#include "state_codec.h"
#include "zscore.h"

namespace faultline::detectors {
namespace {

class Ewma : public Detector {
 public:
  Ewma(double alpha, double k, uint64_t min_points) : alpha_(alpha), k_(k), min_points_(min_points) {}
  Verdict Observe(int64_t, double x) override {
    Verdict v;
    if (base_.n >= min_points_) v = ZScoreVerdict(x, base_.mean, base_.Sd(), k_);
    base_.Update(x, alpha_);
    return v;
  }
  std::string SaveState() const override { return StateWriter("ewma").F64(base_.mean).F64(base_.var).U64(base_.n).Take(); }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "ewma");
    double mean = 0, var = 0;
    uint64_t n = 0;
    r.F64(&mean), r.F64(&var), r.U64(&n);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    base_.mean = mean, base_.var = var, base_.n = n;
    return Status::Ok();
  }

 private:
  double alpha_, k_;
  uint64_t min_points_;
  EwmaBaseline base_;
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
