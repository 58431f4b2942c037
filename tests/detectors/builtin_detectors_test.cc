#include <gtest/gtest.h>

#include <random>

#include "faultline/detectors/detector.h"

namespace faultline::detectors {
namespace {

std::unique_ptr<Detector> Make(const std::string& name, const Params& p = {}) {
  auto d = DetectorRegistry::Global().Create(name, p);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(d).value() : nullptr;
}

// Gaussian noise (mean 100, sd 1, fixed seed), then a step of +10 at `step`.
std::vector<double> NoiseThenStep(size_t n, size_t step) {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> noise(100.0, 1.0);
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = noise(rng) + (i >= step ? 10.0 : 0.0);
  return v;
}

class StatisticalDetectorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StatisticalDetectorTest, FiresUpwardAtTheStepAndRarelyOnNoise) {
  auto d = Make(GetParam());
  ASSERT_NE(d, nullptr);
  const auto series = NoiseThenStep(2000, 1500);
  int false_alarms = 0;
  Verdict at_step;
  for (size_t i = 0; i < series.size(); ++i) {
    Verdict v = d->Observe(static_cast<int64_t>(i * 60), series[i]);
    if (i >= 100 && i < 1500 && v.anomalous) false_alarms++;
    if (i == 1500) at_step = v;
  }
  EXPECT_TRUE(at_step.anomalous);
  EXPECT_EQ(at_step.direction, Direction::kUp);
  EXPECT_TRUE(at_step.has_band);
  EXPECT_NEAR(at_step.expected, 100.0, 0.5);
  EXPECT_GT(at_step.score, 0.5);
  // k = 3 (3.5 for MAD) on Gaussian noise: a two-sided rate of ~0.3% (~4 of 1400).
  EXPECT_LE(false_alarms, 14) << GetParam();
}

TEST_P(StatisticalDetectorTest, SaveAndRestoreGiveIdenticalVerdicts) {
  auto a = Make(GetParam());
  auto b = Make(GetParam());
  const auto series = NoiseThenStep(1000, 800);
  for (size_t i = 0; i < 600; ++i) a->Observe(i, series[i]);
  ASSERT_TRUE(b->RestoreState(a->SaveState()).ok());
  for (size_t i = 600; i < series.size(); ++i) {
    Verdict va = a->Observe(i, series[i]);
    Verdict vb = b->Observe(i, series[i]);
    ASSERT_EQ(va.anomalous, vb.anomalous) << i;
    ASSERT_EQ(va.score, vb.score) << i;
  }
}

TEST_P(StatisticalDetectorTest, GarbageStateIsRefusedWithItsReason) {
  auto d = Make(GetParam());
  Status s = d->RestoreState("not a state");
  EXPECT_EQ(s.message(), GetParam() + " state: truncated or not this detector's state");
  std::string good = d->SaveState();
  s = d->RestoreState(good + "xx");
  EXPECT_EQ(s.message(), GetParam() + " state: 2 trailing bytes");
}

INSTANTIATE_TEST_SUITE_P(Builtins, StatisticalDetectorTest, ::testing::Values("nsigma", "ewma", "mad", "cusum", "spot", "dspot"));

TEST(CusumDetector, CatchesASustainedShiftTooSmallForAPointDetector) {
  // A shift of +1 sigma: no single point stands out at k=3, but the sum does.
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 1.0);
  auto cusum = Make("cusum");
  auto ewma = Make("ewma", {{"alpha", "0.01"}});
  int cusum_after = -1, ewma_hits = 0;
  for (int i = 0; i < 3000; ++i) {
    const double x = noise(rng) + (i >= 2000 ? 1.0 : 0.0);
    const bool c = cusum->Observe(i, x).anomalous;
    const bool e = ewma->Observe(i, x).anomalous;
    if (i >= 2000 && c && cusum_after < 0) cusum_after = i - 2000;
    if (i >= 2000 && i < 2100 && e) ewma_hits++;
  }
  ASSERT_GE(cusum_after, 0);
  EXPECT_LT(cusum_after, 40);  // ARL of a 1-sigma shift with k=0.5, h=5 is about 10 points
  EXPECT_LE(ewma_hits, 10);
}

TEST(SpotDetector, ALastingLevelShiftIsReportedOnceNotForever) {
  for (const char* name : {"spot", "dspot"}) {
    auto d = Make(name);
    const auto series = NoiseThenStep(3000, 1500);
    int flagged_late = 0;
    bool at_step = false;
    for (size_t i = 0; i < series.size(); ++i) {
      const bool a = d->Observe(i, series[i]).anomalous;
      if (i == 1500) at_step = a;
      if (i >= 2200 && a) flagged_late++;
    }
    EXPECT_TRUE(at_step) << name;
    EXPECT_LE(flagged_late, 5) << name << ": still flagging the new level 700 points later";
  }
}

TEST(BurnRateDetector, PagesWhenBothWindowsOfAPairBurnFastEnough) {
  // One point a minute. 2 h at 0.05% errors (burn 0.5), then 2% errors (burn 20): the 1 h window
  // reaches 14.4 when 0.02 t + 0.0005 (60 - t) >= 0.0144 * 60, i.e. after 43 minutes (t = 42.8).
  auto d = Make("burn_rate");
  int first = -1;
  for (int m = 0; m < 240; ++m) {
    const double ratio = m < 120 ? 0.0005 : 0.02;
    const Verdict v = d->Observe(m * 60, ratio);
    if (m < 120) EXPECT_FALSE(v.anomalous) << m;
    if (v.anomalous && first < 0) first = m - 120;
  }
  EXPECT_EQ(first, 42);
  // The short windows end the alert after the burning stops: the fast pair within 5 minutes, the
  // slow pair (6 h burn 10.2) once its 30-minute window holds fewer than 9 burning minutes:
  // (29 - q) * 0.02 / 30 < 0.006 first at q = 21.
  int quiet_after = -1;
  for (int m = 240; m < 300; ++m) {
    if (!d->Observe(m * 60, 0.0).anomalous && quiet_after < 0) quiet_after = m - 240;
  }
  EXPECT_EQ(quiet_after, 21);
}

TEST(BurnRateDetector, SlowBurnPagesOnTheSixHourPair) {
  // 0.7% errors (burn 7) from the start: the 6 h and 30 min windows both reach 6 at once; the
  // 1 h pair never reaches 14.4.
  auto d = Make("burn_rate");
  EXPECT_TRUE(d->Observe(0, 0.007).anomalous);
  auto e = Make("burn_rate", {{"slow_burn", "8"}});
  bool any = false;
  for (int m = 0; m < 600; ++m) any = any || e->Observe(m * 60, 0.007).anomalous;
  EXPECT_FALSE(any);
}

TEST(ThresholdDetector, ExactBoundsAndDirection) {
  auto d = Make("threshold", {{"upper", "10"}, {"lower", "2"}});
  EXPECT_FALSE(d->Observe(0, 10).anomalous);
  EXPECT_EQ(d->Observe(1, 10.5).direction, Direction::kUp);
  EXPECT_EQ(d->Observe(2, 1).direction, Direction::kDown);
  EXPECT_FALSE(d->Observe(3, 2).anomalous);
}

TEST(DetectorRegistry, ErrorsNameTheDetectorAndTheParameter) {
  auto& r = DetectorRegistry::Global();
  EXPECT_EQ(r.Create("nope", {}).status().message(),
            "no detector named 'nope' (known: burn_rate, cusum, dspot, ewma, mad, nsigma, spot, threshold)");
  EXPECT_EQ(r.Create("ewma", {{"alpah", "0.1"}}).status().message(),
            "ewma: unknown parameter 'alpah' (known: alpha, k, min_points)");
  EXPECT_EQ(r.Create("ewma", {{"alpha", "x"}}).status().message(), "ewma: parameter alpha='x': expected a number");
  EXPECT_EQ(r.Create("nsigma", {{"window", "1"}}).status().message(),
            "nsigma: parameter window=1: must be in [2, 1000000]");
  EXPECT_EQ(r.Create("threshold", {{"upper", "1"}, {"lower", "2"}}).status().message(),
            "threshold: lower must not exceed upper");
  EXPECT_EQ(r.Register({"ewma", "again", nullptr}).message(), "detector 'ewma' is registered twice");
}

}  // namespace
}  // namespace faultline::detectors
