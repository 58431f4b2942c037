#include <gtest/gtest.h>

#include <algorithm>
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

INSTANTIATE_TEST_SUITE_P(Builtins, StatisticalDetectorTest, ::testing::Values("nsigma", "ewma", "mad", "cusum", "spot", "dspot", "seasonal", "combined",
                                                                     "sequence"));

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

TEST(SpotDetector, ANoisyShiftWithPointsThatStillLookNormalIsAcceptedToo) {
  // A shift from 100 to 90 where every 4th point is still at the old level: a run of anomalies
  // never reaches `patience`, but most recent points are anomalous.
  std::mt19937_64 rng(21);
  std::normal_distribution<double> noise(0.0, 1.0);
  for (const char* name : {"spot", "dspot"}) {
    auto d = Make(name);
    int flagged_late = 0;
    for (int i = 0; i < 3000; ++i) {
      const double x = noise(rng) + ((i >= 1500 && i % 4 != 0) ? 90.0 : 100.0);
      if (d->Observe(i, x).anomalous && i >= 2200) flagged_late++;
    }
    EXPECT_LE(flagged_late, 20) << name << ": the new regime was never accepted";
  }
}

TEST(MadDetector, RollingMedianEqualsTheMedianOfTheWindowAtEveryPoint) {
  // Values with many ties (rounded), windows of odd and even length: the detector's expected value
  // is the median of the previous `window` values, computed here by sorting.
  std::mt19937_64 rng(17);
  std::uniform_int_distribution<int> small(0, 9);
  for (int window : {7, 8}) {
    auto d = Make("mad", {{"window", std::to_string(window)}, {"min_points", "3"}});
    std::vector<double> seen;
    for (int i = 0; i < 2000; ++i) {
      const double x = small(rng) * 0.5;
      const Verdict v = d->Observe(i, x);
      if (seen.size() >= 3) {
        std::vector<double> w(seen.end() - std::min<size_t>(seen.size(), window), seen.end());
        std::sort(w.begin(), w.end());
        const size_t n = w.size();
        const double median = n % 2 ? w[n / 2] : (w[n / 2 - 1] + w[n / 2]) / 2;
        ASSERT_EQ(v.expected, median) << "window " << window << " point " << i;
      }
      seen.push_back(x);
    }
  }
}

TEST(SeasonalDetector, AValueNormalForTheDayButWrongForTheHourFires) {
  // One point every 5 minutes, a daily sine between 20 and 80 plus noise (sd 1). On day 3 at the
  // trough (03:00 by the phase below) the value is 75: ordinary for the day, wrong for the hour.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0.0, 1.0);
  auto seasonal = Make("seasonal", {{"slot_s", "900"}});
  auto nsigma = Make("nsigma");
  const int per_day = 288, anomaly = 2 * per_day + 36;  // 03:00 on day 3
  int seasonal_false = 0;
  Verdict at_anomaly, nsigma_at_anomaly;
  for (int i = 0; i < 3 * per_day; ++i) {
    const int64_t t = 1'700'000'000 / 86400 * 86400 + int64_t(i) * 300;
    const double phase = 2 * M_PI * ((i % per_day) - 36) / per_day;  // the trough at 03:00
    double x = 50 - 30 * std::cos(phase) + noise(rng);
    if (i == anomaly) x = 75;
    const Verdict v = seasonal->Observe(t, x);
    const Verdict n = nsigma->Observe(t, x);
    if (i == anomaly) at_anomaly = v, nsigma_at_anomaly = n;
    if (i >= per_day && i != anomaly && v.anomalous) seasonal_false++;
  }
  EXPECT_TRUE(at_anomaly.anomalous);
  EXPECT_EQ(at_anomaly.direction, Direction::kUp);
  EXPECT_NEAR(at_anomaly.expected, 20.0, 2.0);
  EXPECT_FALSE(nsigma_at_anomaly.anomalous) << "75 is inside the daily range: only a seasonal model can tell";
  // k = 4 on Gaussian residuals: about 6e-5 per point, with some excess from the slot model.
  EXPECT_LE(seasonal_false, 3);
}

TEST(SeasonalDetector, LearnsForAWholePeriodBeforeJudging) {
  auto d = Make("seasonal", {{"period_s", "3600"}, {"slot_s", "60"}});
  for (int i = 0; i < 60; ++i) {
    const Verdict v = d->Observe(i * 60, i == 30 ? 1e6 : 1.0);
    EXPECT_FALSE(v.anomalous) << i;
    EXPECT_FALSE(v.has_band) << i;
  }
  EXPECT_TRUE(d->Observe(3600, 1.0).has_band);
  EXPECT_EQ(DetectorRegistry::Global().Create("seasonal", {{"period_s", "86400"}, {"slot_s", "0"}}).status().message(),
            "seasonal: parameter slot_s=0: must be in [1, 86400]");
}

TEST(CombinedDetector, ANewShapeInsideTheUsualRangeFires) {
  // A slow sine (period 200) between 0 and 10, then (at 3000) flapping between -5 and 15 from one
  // point to the next. Against the long-run mean (5) and sd (3.5) no value is more than 2.9 sd
  // away, so the level channel (alarm at 7) stays silent; the flapping window is 1.0 of the
  // learned range away from every remembered shape (10 rho): the novelty channel fires.
  auto combined = Make("combined");
  auto level_only = Make("combined", {{"rho", "10"}});  // novelty can never reach the alarm
  int first = -1, before = 0, level_only_after = 0;
  for (int i = 0; i < 4000; ++i) {
    const double x = i < 3000 ? 5 + 5 * std::sin(2 * M_PI * i / 200) : (i % 2 ? 15.0 : -5.0);
    const Verdict v = combined->Observe(i, x);
    if (i >= 150 && i < 3000 && v.anomalous) before++;
    if (i >= 3000 && v.anomalous && first < 0) first = i - 3000;
    if (i >= 3000 && level_only->Observe(i, x).anomalous) level_only_after++;
  }
  EXPECT_EQ(before, 0);
  ASSERT_GE(first, 0);
  EXPECT_LE(first, 8);  // as soon as the window holds enough of the new shape
  EXPECT_EQ(level_only_after, 0) << "the level channel alone cannot see it";
}

TEST(CombinedDetector, ALastingShiftAlarmsAFewTimesAndIsThenLearned) {
  // +10 sd for good at 1500: the step alarms; while the new level is still novel, at most one
  // alarm per quiet period (100 points) with the bar raised 1.5x each time; the bar does not come
  // down while the series is not calm, so nothing alarms again in the next 6000 points.
  auto d = Make("combined");
  const auto series = NoiseThenStep(8000, 1500);
  int soon = 0, later = 0;
  bool at_step = false;
  for (size_t i = 0; i < series.size(); ++i) {
    const bool a = d->Observe(i, series[i]).anomalous;
    if (i == 1500) at_step = a;
    if (i > 1500 && i <= 1800 && a) soon++;
    if (i > 1800 && a) later++;
  }
  EXPECT_TRUE(at_step);
  EXPECT_LE(soon, 2);
  EXPECT_EQ(later, 0);
}

TEST(CombinedDetector, QuietPeriodAndHabituationThinRepeatedAlarms) {
  // Noise with a spike of +12 sigma every 50 points from 1000 on: 40 spikes. The quiet period
  // (100 points) skips every other one at most; habituation then raises the bar (gain 1.5 per
  // alarm), so a 12-sigma spike stops alarming after log(12/7)/log(1.5) = 1.3 -> 2 alarms, until
  // the gain decays (0.1% per point) below 12/7 again.
  std::mt19937_64 rng(11);
  std::normal_distribution<double> noise(0.0, 1.0);
  auto d = Make("combined");
  auto no_habit = Make("combined", {{"habituation", "1"}});
  int alarms = 0, alarms_no_habit = 0;
  for (int i = 0; i < 3000; ++i) {
    const double x = noise(rng) + ((i >= 1000 && i % 50 == 0) ? 12.0 : 0.0);
    alarms += d->Observe(i, x).anomalous;
    alarms_no_habit += no_habit->Observe(i, x).anomalous;
  }
  EXPECT_EQ(alarms_no_habit, 20);  // one per quiet period: every other spike
  EXPECT_LT(alarms, 8);
  EXPECT_GE(alarms, 2);
}

TEST(BurnRateDetector, PagesWhenBothWindowsOfAPairBurnFastEnough) {
  // One point a minute. 2 h at 0.05% errors (burn 0.5), then 2% errors (burn 20): the 1 h window
  // reaches 14.4 when 0.02 t + 0.0005 (60 - t) >= 0.0144 * 60, i.e. after 43 minutes (t = 42.8).
  auto d = Make("burn_rate");
  int first = -1;
  for (int m = 0; m < 240; ++m) {
    const double ratio = m < 120 ? 0.0005 : 0.02;
    const Verdict v = d->Observe(m * 60, ratio);
    if (m < 120) {
      EXPECT_FALSE(v.anomalous) << m;
    }
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
            "no detector named 'nope' (known: burn_rate, combined, cusum, dspot, ewma, mad, nsigma, seasonal, sequence, spot, threshold)");
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
