// The `sequence` detector: what it alarms on, how often, and that its state survives a restart.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "faultline/detectors/detector.h"

namespace faultline::detectors {
namespace {

std::unique_ptr<Detector> Make(const Params& p = {}) {
  auto d = DetectorRegistry::Global().Create("sequence", p);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(d).value() : nullptr;
}

// A wave between 0 and 10 with a period of 50 points.
double Wave(int i) { return 5 + 5 * std::sin(2 * M_PI * i / 50); }

std::vector<int> Alarms(Detector* d, const std::vector<double>& series) {
  std::vector<int> out;
  for (size_t i = 0; i < series.size(); ++i) {
    if (d->Observe(static_cast<int64_t>(i) * 60, series[i]).anomalous) out.push_back(static_cast<int>(i));
  }
  return out;
}

TEST(SequenceDetector, ASpikeOnAPeriodicSeriesAlarmsAtTheSpikeAndNotBefore) {
  std::vector<double> series;
  for (int i = 0; i < 3000; ++i) series.push_back(i == 2500 ? 30.0 : Wave(i));
  auto d = Make();
  std::vector<Verdict> verdicts;
  for (size_t i = 0; i < series.size(); ++i) verdicts.push_back(d->Observe(int64_t(i) * 60, series[i]));
  for (int i = 0; i < 2500; ++i) ASSERT_FALSE(verdicts[i].anomalous) << i;
  const Verdict& spike = verdicts[2500];
  EXPECT_TRUE(spike.anomalous);
  EXPECT_EQ(spike.score, 1.0);  // beyond the range seen so far: a new extreme
  EXPECT_EQ(spike.direction, Direction::kUp);
  EXPECT_TRUE(spike.has_band);
  // The band: the range of the values before, widened by 5% of it on each side.
  const double lo = *std::min_element(series.begin(), series.begin() + 2500);
  const double hi = *std::max_element(series.begin(), series.begin() + 2500);
  EXPECT_DOUBLE_EQ(spike.upper, hi + 0.05 * (hi - lo));
  EXPECT_DOUBLE_EQ(spike.lower, lo - 0.05 * (hi - lo));
}

TEST(SequenceDetector, AValueInTheWrongPlaceOfTheWaveAlarmsThoughItIsInTheUsualRange) {
  // At 2500 (the wave at 5, rising) the series gives 9.75, its value 8 points later. Every value
  // is inside the band: only the order is new. The runs (level before -> this level) and (the two
  // levels before -> this level) are new at 2500 (raw surprise 1) and 2501 (1), so the mean of the
  // last 10 raw scores is 0.1 then 0.2 against a history of 0: tail 2.7e-5 (score 0.46, under the
  // alarm level) then far beyond 1e-10 (score 1).
  std::vector<double> series;
  for (int i = 0; i < 3000; ++i) series.push_back(i == 2500 ? Wave(2508) : Wave(i));
  auto d = Make();
  std::vector<Verdict> verdicts;
  for (size_t i = 0; i < series.size(); ++i) verdicts.push_back(d->Observe(int64_t(i) * 60, series[i]));
  for (int i = 0; i < 2500; ++i) ASSERT_FALSE(verdicts[i].anomalous) << i;
  EXPECT_FALSE(verdicts[2500].anomalous);
  EXPECT_NEAR(verdicts[2500].score, 0.46, 0.01);
  EXPECT_GE(verdicts[2500].upper, series[2500]);
  EXPECT_TRUE(verdicts[2501].anomalous);
  EXPECT_GT(verdicts[2501].score, 0.999);
  int later = 0;
  for (int i = 2502; i < 3000; ++i) later += verdicts[i].anomalous;
  EXPECT_EQ(later, 0) << "one alarm for one misplaced value";
}

TEST(SequenceDetector, ALastingLevelShiftAlarmsAFewTimesThenIsLearned) {
  // Gaussian noise (mean 100, sd 1), +10 for good at 1500: the step is a new extreme. The new
  // level's first highs are new extremes too while they top the last by 5% of the range (here 2,
  // at 1501 and 1545); the model's alarms on the new level's runs fall in the rest period, which
  // lasts while they stay high. Then nothing. (Before the step: one new low of the noise, at 605.)
  std::mt19937_64 rng(42);
  std::normal_distribution<double> noise(100.0, 1.0);
  std::vector<double> series;
  for (int i = 0; i < 8000; ++i) series.push_back(noise(rng) + (i >= 1500 ? 10.0 : 0.0));
  auto d = Make();
  const std::vector<int> alarms = Alarms(d.get(), series);
  ASSERT_FALSE(alarms.empty());
  int before = 0, at_step = 0, after = 0, late = 0;
  for (int a : alarms) {
    before += a < 1500;
    at_step += a == 1500;
    after += a > 1500;
    late += a > 2000;
  }
  EXPECT_LE(before, 2) << "noise alone";
  EXPECT_EQ(at_step, 1);
  EXPECT_LE(after, 3);
  EXPECT_EQ(late, 0);
}

TEST(SequenceDetector, TheRestPeriodHoldsBackTheModelsAlarmsButNotANewExtreme) {
  // Two misplaced values 60 points apart (the second is the trough's value at the crest): the
  // second falls in the rest period (150 points) after the first one's alarm. A spike beyond the
  // range 30 points later still alarms; the model's own alarm on the point after it does not.
  std::vector<double> series;
  for (int i = 0; i < 3000; ++i) series.push_back(Wave(i));
  series[2500] = Wave(2508);
  series[2560] = Wave(2585);
  series[2590] = 30;
  auto d = Make();
  EXPECT_EQ(Alarms(d.get(), series), (std::vector<int>{2501, 2590}));
  auto no_rest = Make({{"rest", "0"}});
  EXPECT_EQ(Alarms(no_rest.get(), series), (std::vector<int>{2501, 2561, 2590, 2591}));
}

TEST(SequenceDetector, RestoredStateContinuesWithIdenticalVerdicts) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.5);
  std::vector<double> series;
  for (int i = 0; i < 4000; ++i) series.push_back(Wave(i) + noise(rng) + (i == 3000 ? 20 : 0));
  for (size_t cut : {size_t{60}, size_t{150}, size_t{2990}}) {  // learning, its end, judging
    auto a = Make();
    for (size_t i = 0; i < cut; ++i) a->Observe(int64_t(i), series[i]);
    auto b = Make();
    const std::string saved = a->SaveState();
    ASSERT_TRUE(b->RestoreState(saved).ok()) << cut;
    EXPECT_EQ(b->SaveState(), saved);
    int alarms = 0;
    for (size_t i = cut; i < series.size(); ++i) {
      const Verdict va = a->Observe(int64_t(i), series[i]);
      const Verdict vb = b->Observe(int64_t(i), series[i]);
      ASSERT_EQ(va.score, vb.score) << cut << " " << i;
      ASSERT_EQ(va.anomalous, vb.anomalous) << cut << " " << i;
      ASSERT_EQ(va.expected, vb.expected) << cut << " " << i;
      alarms += va.anomalous;
    }
    EXPECT_GE(alarms, 1) << cut;  // the spike at 3000 at least
  }
}

TEST(SequenceDetector, TheDefaultOrderIsTheLongestContextTheLearningPeriodCanCover) {
  // levels^order <= learn: 8^2 = 64 <= 150 < 512, so order 2; with 4 levels, 4^3 = 64, order 3.
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 10);
  std::vector<double> series;
  for (int i = 0; i < 1500; ++i) series.push_back(u(rng));
  auto same = [&](const Params& implicit, const Params& explicit_order) {
    auto a = Make(implicit), b = Make(explicit_order);
    for (size_t i = 0; i < series.size(); ++i) {
      if (a->Observe(int64_t(i), series[i]).score != b->Observe(int64_t(i), series[i]).score) return false;
    }
    return true;
  };
  EXPECT_TRUE(same({}, {{"order", "2"}}));
  EXPECT_FALSE(same({}, {{"order", "3"}}));
  EXPECT_TRUE(same({{"levels", "4"}}, {{"levels", "4"}, {"order", "3"}}));
}

TEST(SequenceDetector, BadParametersAreRefusedNamingTheParameter) {
  auto& r = DetectorRegistry::Global();
  EXPECT_EQ(r.Create("sequence", {{"levels", "1"}}).status().message(),
            "sequence: parameter levels=1: must be in [2, 4096]");
  EXPECT_EQ(r.Create("sequence", {{"memory", "1002"}}).status().message(),
            "sequence: parameter memory=1002: must be a multiple of 4 (the table is 4-way)");
  EXPECT_EQ(r.Create("sequence", {{"tolerance", "x"}}).status().message(),
            "sequence: parameter tolerance='x': expected a number");
  EXPECT_EQ(r.Create("sequence", {{"lvels", "8"}}).status().message(),
            "sequence: unknown parameter 'lvels' (known: levels, order, learn, memory, average, "
            "estimate, history, tolerance, rest, alarm)");
}

TEST(SequenceDetector, MalformedStateIsRefusedWithItsReason) {
  auto d = Make();
  for (int i = 0; i < 400; ++i) d->Observe(i, Wave(i));
  const std::string good = d->SaveState();
  auto fresh = Make();
  EXPECT_EQ(fresh->RestoreState("not a state").message(),
            "sequence state: truncated or not this detector's state");
  EXPECT_EQ(fresh->RestoreState(good.substr(0, good.size() - 10)).message(),
            "sequence state: truncated or not this detector's state");
  EXPECT_EQ(fresh->RestoreState(good + "xx").message(), "sequence state: 2 trailing bytes");
  EXPECT_EQ(Make({{"memory", "1024"}})->RestoreState(good).message(),
            "sequence state: memory of 32768 bytes, expected 8192 (saved with another `memory`?)");
  EXPECT_EQ(Make({{"average", "5"}})->RestoreState(good).message(),
            "sequence state: likelihood window of 10 scores at position 0, expected 5 (saved "
            "with another `average`?)");
  EXPECT_EQ(Make({{"order", "1"}})->RestoreState(good).message(),
            "sequence state: 3 recent levels, at most order + 1 = 2 (saved with another `order`?)");
  // A refused state leaves the detector as it was.
  auto twin = Make();
  for (int i = 0; i < 400; ++i) twin->Observe(i, Wave(i));
  EXPECT_FALSE(d->RestoreState(good + "xx").ok());
  EXPECT_EQ(d->SaveState(), twin->SaveState());
}

}  // namespace
}  // namespace faultline::detectors
