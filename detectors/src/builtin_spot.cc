// spot / dspot: extreme-value thresholds (Siffer, Fouque, Termier, Largouet, "Anomaly Detection in
// Streams with Extreme Value Theory", KDD 2017), both tails.
//
// After `init` points, the initial threshold t is their empirical `level` quantile; the excesses
// over t (peaks) follow a Generalized Pareto distribution whose fit gives the threshold z_q that
// a normal point exceeds with probability q. A point above z_q is anomalous (and not learned); a
// point between t and z_q is a new peak (the fit and z_q are updated). dspot runs the same on the
// deviation from a moving average of the last `depth` normal points, which follows drift.
//
// As in the paper, anomalies are not learned; unlike it, when `patience` of the last 2·patience
// points were anomalous the new regime is accepted: the detector recalibrates on the next `init`
// points (and dspot's moving average restarts at the new level), so a lasting level shift is
// reported once instead of forever. Counting over a window rather than a run matters: after a
// noisy shift the occasional point still looks normal, and a run-based rule never fired; worse,
// dspot then averaged only those "normal" points, the ones farthest toward the old level, and
// stayed stuck (NAB score 0 before this rule, 24 after).
//
// The GPD is fitted by the method of moments on the peaks' sum and sum of squares (valid for
// shape < 1/2; Hosking & Wallis 1987) instead of the paper's Grimshaw root search: O(1) per
// update and no numerical search. Parameters: q (1e-4), level (0.98), init (200), patience (10),
// depth (dspot only, 20). State: the init buffer until calibrated, then a few numbers (peaks are not stored).
#include <algorithm>
#include <bit>
#include <cmath>
#include <deque>
#include <string>
#include <vector>

#include "faultline/detectors/detector.h"
#include "state_codec.h"

namespace faultline::detectors {
namespace {

// One tail: learns from values (already oriented so that large = extreme).
struct Tail {
  double t = 0;        // initial threshold
  double zq = 0;       // anomaly threshold
  double n = 0;        // normal points seen since calibration (including init)
  double peaks = 0, sum = 0, sumsq = 0;

  void Fit(double q) {
    if (peaks < 2) {
      zq = t + (peaks ? 2 * sum / peaks : 1e-9) * 10;  // too few peaks: a wide, finite guard
      return;
    }
    const double m = sum / peaks;
    const double var = std::max(sumsq / peaks - m * m, 1e-18);
    double gamma = 0.5 * (1 - m * m / var);
    double sigma = 0.5 * m * (1 + m * m / var);
    gamma = std::clamp(gamma, -0.5, 0.49);
    const double r = q * n / peaks;
    zq = std::abs(gamma) < 1e-9 ? t - sigma * std::log(r) : t + sigma / gamma * (std::pow(r, -gamma) - 1);
  }
  // Returns the excess ratio (x - t) / (zq - t): > 1 means anomalous.
  double Ratio(double x) const { return (x - t) / std::max(zq - t, 1e-12); }
  void Learn(double x, double q) {
    n++;
    if (x > t) {
      const double e = x - t;
      peaks++;
      sum += e;
      sumsq += e * e;
      Fit(q);
    }
  }
};

class Spot : public Detector {
 public:
  Spot(std::string name, double q, double level, size_t init, size_t depth, uint64_t patience)
      : name_(std::move(name)), q_(q), level_(level), init_(init), depth_(depth), patience_(patience) {}

  Verdict Observe(int64_t, double x) override {
    Verdict v;
    const double base = depth_ ? Mean() : 0;
    const double y = x - base;
    if (!calibrated_) {
      // dspot learns deviations only once its moving average is full.
      if (!depth_ || window_.size() >= depth_) buffer_.push_back(y);
      Remember(x);
      if (buffer_.size() >= init_) Calibrate();
      return v;
    }
    const double up = upper_.Ratio(y), down = lower_.Ratio(-y);
    const double r = std::max(up, down);
    v.has_band = true;
    v.expected = base + center_;
    v.upper = base + upper_.zq;
    v.lower = base - lower_.zq;
    v.score = r > 0 ? r / (r + 1) : 0;
    if (r > 1) {
      v.anomalous = true;
      v.direction = up >= down ? Direction::kUp : Direction::kDown;
      history_ = (history_ << 1) | 1;
      if (static_cast<uint64_t>(std::popcount(history_ & RecentMask())) >= patience_) {  // a new regime: accept it
        history_ = 0;
        if (depth_) {
          for (size_t i = 0; i < depth_; ++i) Remember(x);
        }
        calibrated_ = false;
        buffer_.clear();
      }
      return v;  // anomalies are not learned
    }
    history_ <<= 1;
    upper_.Learn(y, q_);
    lower_.Learn(-y, q_);
    Remember(x);
    return v;
  }

  std::string SaveState() const override {
    StateWriter w(name_);
    w.U64(calibrated_).Doubles(buffer_).Doubles(std::vector<double>(window_.begin(), window_.end())).F64(window_sum_).F64(center_).U64(history_);
    for (const Tail* t : {&upper_, &lower_}) w.F64(t->t).F64(t->zq).F64(t->n).F64(t->peaks).F64(t->sum).F64(t->sumsq);
    return w.Take();
  }
  Status RestoreState(std::string_view b) override {
    StateReader r(b, name_);
    uint64_t calibrated = 0;
    std::vector<double> buffer, window;
    double window_sum = 0, center = 0;
    uint64_t history = 0;
    Tail tails[2];
    r.U64(&calibrated), r.Doubles(&buffer, init_), r.Doubles(&window, depth_), r.F64(&window_sum), r.F64(&center),
        r.U64(&history);
    for (Tail& t : tails) r.F64(&t.t), r.F64(&t.zq), r.F64(&t.n), r.F64(&t.peaks), r.F64(&t.sum), r.F64(&t.sumsq);
    FAULTLINE_RETURN_IF_ERROR(r.Finish());
    calibrated_ = calibrated != 0;
    buffer_ = std::move(buffer);
    window_.assign(window.begin(), window.end());
    window_sum_ = window_sum;
    center_ = center;
    history_ = history;
    upper_ = tails[0];
    lower_ = tails[1];
    return Status::Ok();
  }

 private:
  double Mean() const { return window_.empty() ? 0 : window_sum_ / window_.size(); }
  void Remember(double x) {
    if (!depth_) return;
    window_.push_back(x);
    window_sum_ += x;
    if (window_.size() > depth_) {
      window_sum_ -= window_.front();
      window_.pop_front();
    }
  }
  void Calibrate() {
    std::vector<double> sorted = buffer_;
    std::sort(sorted.begin(), sorted.end());
    auto quantile = [&](double p) { return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))]; };
    upper_ = Tail{};
    lower_ = Tail{};
    center_ = quantile(0.5);
    upper_.t = quantile(level_);
    lower_.t = -quantile(1 - level_);
    for (double y : buffer_) {
      upper_.Learn(y, q_);
      lower_.Learn(-y, q_);
    }
    upper_.Fit(q_);
    lower_.Fit(q_);
    buffer_.clear();
    calibrated_ = true;
  }

  std::string name_;
  double q_, level_;
  size_t init_, depth_;
  uint64_t patience_;
  // The last 64 verdicts, newest in bit 0 (1 = anomalous).
  uint64_t history_ = 0;
  uint64_t RecentMask() const { return patience_ >= 32 ? ~0ULL : (1ULL << (2 * patience_)) - 1; }
  double center_ = 0;
  bool calibrated_ = false;
  std::vector<double> buffer_;
  std::deque<double> window_;
  double window_sum_ = 0;
  Tail upper_, lower_;
};

Result<std::unique_ptr<Detector>> MakeSpot(const std::string& name, const Params& p, bool drift) {
  ParamReader r(name, p);
  FAULTLINE_RETURN_IF_ERROR(r.CheckAllKnown(drift ? std::vector<std::string>{"q", "level", "init", "patience", "depth"}
                                                  : std::vector<std::string>{"q", "level", "init", "patience"}));
  FAULTLINE_ASSIGN_OR_RETURN(double q, r.Double("q", 1e-4, 1e-12, 0.1));
  FAULTLINE_ASSIGN_OR_RETURN(double level, r.Double("level", 0.98, 0.5, 0.9999));
  FAULTLINE_ASSIGN_OR_RETURN(int64_t init, r.Int("init", 200, 20, 1'000'000));
  FAULTLINE_ASSIGN_OR_RETURN(int64_t depth, r.Int("depth", drift ? 20 : 0, drift ? 1 : 0, 100'000));
  FAULTLINE_ASSIGN_OR_RETURN(int64_t patience, r.Int("patience", 10, 1, 32));
  return std::unique_ptr<Detector>(new Spot(name, q, level, init, depth, patience));
}

}  // namespace

FAULTLINE_REGISTER_DETECTOR(spot, "extreme-value threshold (SPOT), both tails: q (1e-4), level (0.98), init (200), patience (10)",
                            [](const Params& p) { return MakeSpot("spot", p, false); });
FAULTLINE_REGISTER_DETECTOR(dspot, "SPOT on the deviation from a moving average (DSPOT): q (1e-4), level (0.98), init (200), patience (10), depth (20)",
                            [](const Params& p) { return MakeSpot("dspot", p, true); });

}  // namespace faultline::detectors
