// mahalanobis: the multivariate detector (Eigen).
//
// The model is an exponentially weighted mean μ and covariance Σ (weight alpha). A point x is
// judged by d² = (x-μ)ᵀ Σ̂⁻¹ (x-μ) with Σ̂ = (1-λ)Σ + λ·diag(Σ) (shrinkage toward the diagonal keeps
// Σ̂ well conditioned when metrics are nearly collinear or a window is short) plus a floor on each
// variance. Under normality d² is chi-square with p degrees of freedom; Wilson–Hilferty turns it
// into z = ((d²/p)^(1/3) - (1 - 2/(9p))) / sqrt(2/(9p)), anomalous when z > k. Contributions
// c_i = (x-μ)_i (Σ̂⁻¹(x-μ))_i sum to d² and name the dimension to blame.
//
// Learning is robust: the update uses x pulled toward μ so that its distance is at most the alarm
// distance (a Huber-like weight), so an outlier moves the model no more than a borderline point,
// and a lasting shift is still learned, gradually.
//
// It is not in the univariate registry, so NAB does not score it: an embedding of one series into
// (x, x - previous, x - recent mean) was tried and scored about 0-2 there, because the real
// series' heavy tails make a Gaussian chi-square alarm on 2% of points. Its job is the joint view
// of metrics that move together, which NAB's single series do not have.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "faultline/detectors/detector.h"
#include "faultline/detectors/multivariate.h"
#include "state_codec.h"
#include "zscore.h"

namespace faultline::detectors {
namespace {

struct MahalanobisParams {
  double alpha = 0.01;
  double k = 4;
  double shrinkage = 0.1;
  uint64_t min_points = 30;
  double min_sd = 0;  // a floor on every dimension's standard deviation, in the metrics' unit
};

Result<MahalanobisParams> ReadParams(const std::string& name, const Params& params) {
  ParamReader r(name, params);
  FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown({"alpha", "k", "shrinkage", "min_points", "min_sd"}));
  MahalanobisParams p;
  FAULTLINE_ASSIGN_OR_RETURN(p.alpha, r.Double("alpha", p.alpha, 1e-6, 1));
  FAULTLINE_ASSIGN_OR_RETURN(p.k, r.Double("k", p.k, 0.1, 100));
  FAULTLINE_ASSIGN_OR_RETURN(p.shrinkage, r.Double("shrinkage", p.shrinkage, 0, 1));
  FAULTLINE_ASSIGN_OR_RETURN(int64_t min_points, r.Int("min_points", 30, 2, 1'000'000));
  p.min_points = static_cast<uint64_t>(min_points);
  FAULTLINE_ASSIGN_OR_RETURN(p.min_sd, r.Double("min_sd", 0, 0, 1e300));
  return p;
}

// The one-sided normal z of a chi-square value with p degrees of freedom (Wilson–Hilferty 1931).
double ChiSquareZ(double d2, double p) {
  const double v = 2.0 / (9.0 * p);
  return (std::cbrt(std::max(d2, 0.0) / p) - (1 - v)) / std::sqrt(v);
}

// The chi-square value whose Wilson–Hilferty z is k: the alarm distance².
double ChiSquareAt(double k, double p) {
  const double v = 2.0 / (9.0 * p);
  return p * std::pow(std::max(k * std::sqrt(v) + 1 - v, 0.0), 3);
}

class Mahalanobis : public MultiDetector {
 public:
  Mahalanobis(size_t dims, const MahalanobisParams& p)
      : p_(p),
        mean_(Eigen::VectorXd::Zero(dims)),
        cov_(Eigen::MatrixXd::Zero(dims, dims)),
        alarm_d2_(ChiSquareAt(p.k, double(dims))) {}

  size_t dimensions() const override { return static_cast<size_t>(mean_.size()); }

  Result<MultiVerdict> Observe(int64_t, std::span<const double> xs) override {
    if (xs.size() != dimensions()) {
      return InvalidArgument("mahalanobis: expected " + std::to_string(dimensions()) +
                             " values, got " + std::to_string(xs.size()));
    }
    for (size_t i = 0; i < xs.size(); ++i) {
      if (!std::isfinite(xs[i]))
        return InvalidArgument("mahalanobis: value " + std::to_string(i) + " is not finite");
    }
    const Eigen::Map<const Eigen::VectorXd> x(xs.data(), static_cast<Eigen::Index>(xs.size()));
    MultiVerdict out;
    out.contributions.assign(xs.size(), 0.0);
    Eigen::VectorXd delta = x - mean_;
    double d2 = 0;
    if (n_ >= p_.min_points) {
      const Eigen::MatrixXd shrunk = Shrunk();
      const Eigen::LDLT<Eigen::MatrixXd> ldlt(shrunk);
      const Eigen::VectorXd w = ldlt.solve(delta);
      d2 = std::max(delta.dot(w), 0.0);
      Eigen::Index dominant = 0;
      for (Eigen::Index i = 0; i < delta.size(); ++i) {
        out.contributions[size_t(i)] = delta[i] * w[i];
        if (out.contributions[size_t(i)] > out.contributions[size_t(dominant)]) dominant = i;
      }
      const double z = ChiSquareZ(d2, double(delta.size()));
      Verdict& v = out.verdict;
      v.score = z > 0 ? z / (z + p_.k) : 0;
      v.anomalous = z > p_.k;
      const double sd = std::sqrt(shrunk(dominant, dominant));
      v.has_band = true;
      v.expected = mean_[dominant];
      v.lower = v.expected - p_.k * sd;
      v.upper = v.expected + p_.k * sd;
      if (v.anomalous) v.direction = delta[dominant] >= 0 ? Direction::kUp : Direction::kDown;
      out.dominant = size_t(dominant);
      out.distance2 = d2;
    }
    // Learn from x pulled toward the mean so that its distance is at most the alarm distance.
    if (n_ >= p_.min_points && d2 > alarm_d2_) delta *= std::sqrt(alarm_d2_ / d2);
    if (n_ == 0) {
      mean_ = x;
    } else {
      const double a = n_ < p_.min_points ? std::max(p_.alpha, 1.0 / double(n_ + 1)) : p_.alpha;
      mean_ += a * delta;
      cov_ = (1 - a) * (cov_ + a * delta * delta.transpose());
    }
    n_++;
    return out;
  }

  std::string SaveState() const override {
    std::vector<double> mean(mean_.data(), mean_.data() + mean_.size());
    std::vector<double> cov(cov_.data(), cov_.data() + cov_.size());
    return StateWriter("mahalanobis").U64(n_).Doubles(mean).Doubles(cov).Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, "mahalanobis");
    uint64_t n = 0;
    std::vector<double> mean, cov;
    const size_t p = dimensions();
    r.U64(&n), r.Doubles(&mean, p), r.Doubles(&cov, p * p);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    if (mean.size() != p || cov.size() != p * p) {
      return InvalidArgument("mahalanobis state: " + std::to_string(mean.size()) +
                             " dimensions, this detector has " + std::to_string(p));
    }
    n_ = n;
    mean_ = Eigen::Map<const Eigen::VectorXd>(mean.data(), Eigen::Index(p));
    cov_ = Eigen::Map<const Eigen::MatrixXd>(cov.data(), Eigen::Index(p), Eigen::Index(p));
    return Status::Ok();
  }

 private:
  Eigen::MatrixXd Shrunk() const {
    Eigen::MatrixXd s = (1 - p_.shrinkage) * cov_;
    for (Eigen::Index i = 0; i < s.rows(); ++i) {
      const double var =
          std::max(std::pow(SafeScale(std::sqrt(std::max(cov_(i, i), 0.0)), mean_[i]), 2),
                   p_.min_sd * p_.min_sd);
      s(i, i) = (1 - p_.shrinkage) * cov_(i, i) + p_.shrinkage * var;
      s(i, i) = std::max(s(i, i), var);
    }
    return s;
  }

  MahalanobisParams p_;
  Eigen::VectorXd mean_;
  Eigen::MatrixXd cov_;
  double alarm_d2_;
  uint64_t n_ = 0;
};

}  // namespace

Result<std::unique_ptr<MultiDetector>> CreateMultiDetector(const std::string& name,
                                                           size_t dimensions,
                                                           const Params& params) {
  if (name != "mahalanobis")
    return NotFound("no multivariate detector named '" + name + "' (known: mahalanobis)");
  if (dimensions < 1 || dimensions > 64) {
    return InvalidArgument("mahalanobis: " + std::to_string(dimensions) +
                           " dimensions, expected 1 to 64");
  }
  FAULTLINE_ASSIGN_OR_RETURN(MahalanobisParams p, ReadParams(name, params));
  return std::unique_ptr<MultiDetector>(new Mahalanobis(dimensions, p));
}

}  // namespace faultline::detectors
