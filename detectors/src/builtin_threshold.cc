// threshold: anomalous above `upper` or below `lower`. Parameters: upper (default +inf),
// lower (default -inf). Stateless.
#include <cmath>
#include <limits>

#include "faultline/detectors/detector.h"
#include "state_codec.h"

namespace faultline::detectors {
namespace {

class StaticThreshold : public Detector {
 public:
  StaticThreshold(double lower, double upper) : lower_(lower), upper_(upper) {}
  Verdict Observe(int64_t, double x) override {
    Verdict v;
    v.has_band = std::isfinite(lower_) || std::isfinite(upper_);
    v.lower = lower_;
    v.upper = upper_;
    double excess = 0, scale = 1;
    if (x > upper_) {
      v.direction = Direction::kUp;
      excess = x - upper_;
      scale = std::max(std::abs(upper_), 1e-9);
    } else if (x < lower_) {
      v.direction = Direction::kDown;
      excess = lower_ - x;
      scale = std::max(std::abs(lower_), 1e-9);
    }
    v.anomalous = v.direction != Direction::kNone;
    v.score = v.anomalous ? 0.5 + 0.5 * excess / (excess + scale) : 0.0;
    return v;
  }
  std::string SaveState() const override { return StateWriter("threshold").Take(); }
  Status RestoreState(std::string_view b) override { return StateReader(b, "threshold").Finish(); }

 private:
  double lower_, upper_;
};

}  // namespace

FAULTLINE_REGISTER_DETECTOR(threshold, "static bounds: upper (default +inf), lower (default -inf)",
                            [](const Params& p) -> Result<std::unique_ptr<Detector>> {
                              ParamReader r("threshold", p);
                              FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"upper", "lower"}));
                              constexpr double kInf = std::numeric_limits<double>::infinity();
                              FAULTLINE_ASSIGN_OR_RETURN(double upper, r.Double("upper", kInf, -kInf, kInf));
                              FAULTLINE_ASSIGN_OR_RETURN(double lower, r.Double("lower", -kInf, -kInf, kInf));
                              if (lower > upper) return InvalidArgument("threshold: lower must not exceed upper");
                              return std::unique_ptr<Detector>(new StaticThreshold(lower, upper));
                            });

}  // namespace faultline::detectors
