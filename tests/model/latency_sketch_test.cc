#include "faultline/model/latency_sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "faultline/model/window_stats.h"

namespace faultline::model {
namespace {

double Exact(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

TEST(LatencySketch, QuantilesAreWithinTheRelativeErrorOnRandomData) {
  // Log-normal latencies (median 2 ms, heavy tail) and uniform ones: every tested quantile must
  // be within 1% of the exact value of its rank.
  std::mt19937_64 rng(123);
  std::lognormal_distribution<double> lognormal(std::log(2e6), 1.5);
  std::uniform_real_distribution<double> uniform(1e3, 1e9);
  for (int dist = 0; dist < 2; ++dist) {
    LatencySketch sketch;
    std::vector<double> values;
    for (int i = 0; i < 100'000; ++i) {
      const double v = dist == 0 ? lognormal(rng) : uniform(rng);
      values.push_back(v);
      sketch.Add(v);
    }
    for (double q : {0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999}) {
      const double exact = Exact(values, q);
      EXPECT_LE(std::abs(sketch.Quantile(q) - exact), 0.01 * exact)
          << "dist " << dist << " q " << q;
    }
    EXPECT_EQ(sketch.count(), 100'000u);
    EXPECT_EQ(sketch.min(), *std::min_element(values.begin(), values.end()));
    EXPECT_EQ(sketch.max(), *std::max_element(values.begin(), values.end()));
  }
}

TEST(LatencySketch, MergeEqualsTheSketchOfTheUnion) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> exp(1e-6);
  LatencySketch a, b, all;
  for (int i = 0; i < 5000; ++i) {
    const double v = exp(rng);
    (i % 3 ? a : b).Add(v);
    all.Add(v);
  }
  a.Add(0);  // zero bucket
  all.Add(0);
  ASSERT_TRUE(a.Merge(b).ok());
  EXPECT_EQ(a.count(), all.count());
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 1.0}) EXPECT_EQ(a.Quantile(q), all.Quantile(q)) << q;
  EXPECT_EQ(LatencySketch(0.02).Merge(LatencySketch(0.01)).message(),
            "sketch merge: relative accuracy 0.010000 into 0.020000");
}

TEST(LatencySketch, EncodeDecodeRoundTripAndBadBytes) {
  LatencySketch s;
  for (int i = 1; i <= 1000; ++i) s.Add(i * 1000.0);
  std::string bytes;
  s.EncodeTo(&bytes);
  auto back = LatencySketch::Decode(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == s);
  EXPECT_EQ(back->Quantile(0.5), s.Quantile(0.5));
  EXPECT_LT(bytes.size(), 700u);  // 1000 distinct values in ~350 buckets of 1-2 bytes each
  EXPECT_EQ(LatencySketch::Decode(bytes.substr(0, 10)).status().message(),
            "latency sketch: truncated header");
  EXPECT_EQ(LatencySketch::Decode(bytes + "x").status().message(),
            "latency sketch: 1 trailing bytes");
  std::string wrong = bytes;
  wrong[wrong.size() - 1] ^= 0x01;  // the last bucket's count changes
  EXPECT_EQ(LatencySketch::Decode(wrong).status().message(),
            "latency sketch: buckets hold 999 values, count says 1000");
}

TEST(LatencySketch, TheBucketBoundKeepsHighQuantilesAccurate) {
  LatencySketch s(0.01, 64);
  std::vector<double> values;
  for (int i = 0; i < 10000; ++i) {
    const double v = std::pow(10.0, 1 + 8.0 * i / 10000);  // 10 ns .. 1 s: ~900 buckets' worth
    values.push_back(v);
    s.Add(v);
  }
  for (double q : {0.99, 0.999})
    EXPECT_LE(std::abs(s.Quantile(q) - Exact(values, q)), 0.01 * Exact(values, q)) << q;
  EXPECT_EQ(s.count(), 10000u);
  std::string bytes;
  s.EncodeTo(&bytes);
  EXPECT_LT(bytes.size(), 64u * 3 + 64);
}

TEST(LatencySketch, EmptyAndEdgeValues) {
  LatencySketch s;
  EXPECT_EQ(s.Quantile(0.5), 0);
  s.Add(-5);
  s.Add(std::nan(""));
  EXPECT_EQ(s.count(), 1u);
  EXPECT_EQ(s.Quantile(0.5), 0);
  s.Add(100, 3);
  EXPECT_EQ(s.count(), 4u);
  EXPECT_EQ(s.mean(), 75);
  EXPECT_NEAR(s.Quantile(0.9), 100, 1);
}

TEST(LatencySketch, HugeValuesSaturateTheSumInsteadOfMakingItUnreadable) {
  constexpr double kMax = std::numeric_limits<double>::max();
  LatencySketch s;
  s.Add(kMax, 3);  // the sum would be infinite
  s.Add(std::numeric_limits<double>::infinity());
  EXPECT_EQ(s.count(), 4u);
  EXPECT_EQ(s.sum(), kMax);
  EXPECT_EQ(s.Quantile(1), kMax);
  LatencySketch twice = s;
  ASSERT_TRUE(twice.Merge(s).ok());
  EXPECT_EQ(twice.sum(), kMax);
  std::string bytes;
  twice.EncodeTo(&bytes);
  auto back = LatencySketch::Decode(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->count(), 8u);
}

TEST(WindowStats, RttSumMustBeFiniteAndMergesSaturate) {
  WindowStats w;
  w.rtt_samples = 2;
  w.rtt_us_sum = std::numeric_limits<double>::max();
  WindowStats twice = w;
  ASSERT_TRUE(twice.Merge(w).ok());
  EXPECT_EQ(twice.rtt_samples, 4u);
  EXPECT_EQ(twice.rtt_us_sum, std::numeric_limits<double>::max());
  std::string bytes;
  twice.EncodeTo(&bytes);
  ASSERT_TRUE(WindowStats::Decode(bytes).ok());

  w.rtt_us_sum = std::nan("");  // a record written by something else: refused, not compared
  bytes.clear();
  w.EncodeTo(&bytes);
  EXPECT_EQ(WindowStats::Decode(bytes).status().message(),
            "window stats: rtt sum nan is not a finite non-negative number");
}

TEST(WindowStats, AVarintWithBitsPastTheSixtyFourthIsRefused) {
  // UINT64_MAX is nine 0xff bytes and a final 0x01; a final 0x03 would spell the same value a
  // second way (the extra bit falls off), which breaks "one value, one encoding": refused.
  WindowStats w;
  w.requests = std::numeric_limits<uint64_t>::max();
  std::string bytes;
  w.EncodeTo(&bytes);
  ASSERT_EQ(bytes[10], '\x01');  // after the one-byte format
  ASSERT_TRUE(WindowStats::Decode(bytes).ok());
  bytes[10] = '\x03';
  EXPECT_EQ(WindowStats::Decode(bytes).status().message(),
            "window stats: truncated at golden counts");
}

}  // namespace
}  // namespace faultline::model
