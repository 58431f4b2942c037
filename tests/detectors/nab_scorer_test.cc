#include "faultline/detectors/nab_scorer.h"

#include <gtest/gtest.h>

namespace faultline::detectors {
namespace {

const std::string kNab = std::string(FAULTLINE_SOURCE_DIR) + "/../shared/data/nab";

TEST(NabScorer, ReproducesThePublishedWindowedGaussianScores) {
  auto profiles = LoadNabProfiles(kNab + "/config/profiles.json");
  ASSERT_TRUE(profiles.ok()) << profiles.status().ToString();
  auto corpus = LoadNabResults(kNab + "/results/windowedGaussian", "windowedGaussian",
                               kNab + "/labels/combined_windows.json");
  ASSERT_TRUE(corpus.ok()) << corpus.status().ToString();
  ASSERT_EQ(corpus->size(), 58u);
  // results/final_results.json: 39.65 / 20.87 / 47.41; the issue asks for 0.2.
  const std::map<std::string, double> published = {
      {"standard", 39.6495}, {"reward_low_FP_rate", 20.8680}, {"reward_low_FN_rate", 47.4100}};
  for (const NabProfile& p : *profiles) {
    auto score = ScoreNabCorpus(*corpus, p);
    ASSERT_TRUE(score.ok()) << score.status().ToString();
    EXPECT_NEAR(score->normalized, published.at(p.name), 0.2) << p.name;
  }
}

TEST(NabScorer, EarlyDetectionEarnsMoreThanLateAndFalsePositivesCost) {
  NabProfile standard{"standard", 1.0, 0.11, 1.0};
  NabSeries s;
  s.name = "toy";
  for (int i = 0; i < 1000; ++i) s.timestamps.push_back(i * 60);
  s.windows = {{800 * 60, 899 * 60}};
  auto with_detection_at = [&](int i) {
    NabSeries t = s;
    t.scores.assign(1000, 0.0);
    if (i >= 0) t.scores[i] = 1.0;
    return ScoreNabCorpus({t}, standard).value();
  };
  const NabScore early = with_detection_at(800);
  const NabScore late = with_detection_at(890);
  const NabScore none = with_detection_at(-1);
  EXPECT_NEAR(early.normalized, 100.0, 1e-9);  // the window's first point is a perfect detection
  EXPECT_GT(early.raw, late.raw);
  EXPECT_GT(late.raw, none.raw);
  EXPECT_NEAR(none.normalized, 0.0, 1e-9);
  // A lone false positive far from any window is not worth reporting: the best threshold is 1.1.
  const NabScore fp = with_detection_at(500);
  EXPECT_NEAR(fp.raw, -1.0, 1e-9);
  EXPECT_NEAR(fp.normalized, 0.0, 1e-9);
}

TEST(NabScorer, WindowNotOnATimestampIsAClearError) {
  NabSeries s{"bad.csv", {0, 60, 120}, {0, 0, 0}, {{30, 60}}, {}};
  auto r = ScoreNabCorpus({s}, NabProfile{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "bad.csv: a window starting at 30 does not start on a timestamp of the series");
}

TEST(SeriesCsv, HeaderNamesTheColumnsOtherwiseTheFirstTwo) {
  std::vector<int64_t> t;
  std::vector<double> v;
  ASSERT_TRUE(ParseSeriesCsv("value,timestamp,x\r\n1.5,2014-04-10 07:15:00,9\r\n\n-2,60,9\n", "a.csv", "value", &t, &v).ok());
  EXPECT_EQ(t, (std::vector<int64_t>{1397114100, 60}));
  EXPECT_EQ(v, (std::vector<double>{1.5, -2}));
  t.clear(), v.clear();
  ASSERT_TRUE(ParseSeriesCsv("0,1\n60,2.5", "b.csv", "value", &t, &v).ok());
  EXPECT_EQ(t, (std::vector<int64_t>{0, 60}));
  EXPECT_EQ(v, (std::vector<double>{1, 2.5}));
}

TEST(SeriesCsv, ErrorsNameTheSourceLineAndWhatWasWrong) {
  std::vector<int64_t> t;
  std::vector<double> v;
  EXPECT_EQ(ParseSeriesCsv("timestamp,score\n", "a.csv", "value", &t, &v).message(),
            "a.csv:1: the header has no 'value' column");
  EXPECT_EQ(ParseSeriesCsv("0,1\n60\n", "a.csv", "value", &t, &v).message(), "a.csv:2: 1 columns, expected at least 2");
  EXPECT_EQ(ParseSeriesCsv("0,1\n60,1x\n", "a.csv", "value", &t, &v).message(), "a.csv:2: value '1x' is not a number");
  EXPECT_EQ(ParseSeriesCsv("0,1\n60,\n", "a.csv", "value", &t, &v).message(), "a.csv:2: value '' is not a number");
  EXPECT_EQ(ParseSeriesCsv("0,nan\n", "a.csv", "value", &t, &v).message(),
            "a.csv:1: value 'nan' is out of range (finite, magnitude below 1e150)");
  EXPECT_EQ(ParseSeriesCsv("0,-1e200\n", "a.csv", "value", &t, &v).message(),
            "a.csv:1: value '-1e200' is out of range (finite, magnitude below 1e150)");
  EXPECT_EQ(ParseSeriesCsv("yesterday,1\n", "a.csv", "value", &t, &v).message(),
            "a.csv:1: timestamp 'yesterday': expected YYYY-MM-DD HH:MM:SS");
  EXPECT_EQ(ReadSeriesCsv("/nonexistent/x.csv", "value", &t, &v).message(), "/nonexistent/x.csv: cannot open");
}

}  // namespace
}  // namespace faultline::detectors
