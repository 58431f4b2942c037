#include <gtest/gtest.h>

#include <array>
#include <numeric>
#include <random>

#include "faultline/detectors/multivariate.h"

namespace faultline::detectors {
namespace {

std::unique_ptr<MultiDetector> Make(size_t dims, const Params& p = {}) {
  auto d = CreateMultiDetector("mahalanobis", dims, p);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(d).value() : nullptr;
}

// Two metrics that move together: x2 = x1 + small noise (like requests and the connections they
// use).
struct Correlated {
  std::mt19937_64 rng{5};
  std::normal_distribution<double> unit{0.0, 1.0};
  std::array<double, 2> Next() {
    const double x1 = unit(rng);
    return {x1, x1 + 0.2 * unit(rng)};
  }
};

TEST(MahalanobisDetector, ABrokenCorrelationFiresWhereEachMetricAloneLooksNormal) {
  auto d = Make(2);
  ASSERT_NE(d, nullptr);
  Correlated gen;
  int false_alarms = 0;
  for (int i = 0; i < 3000; ++i) {
    const auto x = gen.Next();
    auto v = d->Observe(i, x);
    ASSERT_TRUE(v.ok());
    if (i >= 30 && v.value().verdict.anomalous) false_alarms++;
  }
  // k = 4 (one-sided normal, via Wilson-Hilferty): about 3e-5 per point under the model.
  EXPECT_LE(false_alarms, 3);
  // Each value is 1.5 marginal sd from its mean; their difference is 15 sd of the difference. With
  // shrinkage 0.1 toward the diagonal the variance along (1, -1) is about 0.9·0.02 + 0.1·1.02 =
  // 0.12, so d² ≈ (3/√2)² / 0.12 ≈ 37, above the alarm distance² for k = 4, p = 2 (about 21.9).
  const std::array<double, 2> broken = {1.5, -1.5};
  auto v = d->Observe(3000, broken);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v.value().verdict.anomalous);
  EXPECT_GT(v.value().distance2, 30.0);
  EXPECT_NEAR(v.value().contributions[0] + v.value().contributions[1], v.value().distance2,
              1e-9 * v.value().distance2);
  // The same values without the correlation in the model are unremarkable.
  auto independent = Make(2);
  std::mt19937_64 rng(9);
  std::normal_distribution<double> unit(0.0, 1.0);
  for (int i = 0; i < 3000; ++i) {
    const std::array<double, 2> x = {unit(rng), unit(rng) * 1.02};
    ASSERT_TRUE(independent->Observe(i, x).ok());
  }
  auto iv = independent->Observe(3000, broken);
  ASSERT_TRUE(iv.ok());
  EXPECT_FALSE(iv.value().verdict.anomalous) << "d2=" << iv.value().distance2;
}

TEST(MahalanobisDetector, NamesTheDimensionThatMoved) {
  auto d = Make(3);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> unit(0.0, 1.0);
  for (int i = 0; i < 2000; ++i) {
    const std::array<double, 3> x = {100 + unit(rng), 0.01 + 0.001 * unit(rng), 50 + 5 * unit(rng)};
    ASSERT_TRUE(d->Observe(i, x).ok());
  }
  const std::array<double, 3> latency_up = {100, 0.01, 100};  // latency +10 sd
  auto v = d->Observe(2000, latency_up);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v.value().verdict.anomalous);
  EXPECT_EQ(v.value().dominant, 2u);
  EXPECT_EQ(v.value().verdict.direction, Direction::kUp);
  EXPECT_NEAR(v.value().verdict.expected, 50.0, 0.5);
  EXPECT_GT(v.value().contributions[2], 0.9 * v.value().distance2);
}

TEST(MahalanobisDetector, ALastingShiftIsLearnedNotFlaggedForever) {
  auto d = Make(2);
  Correlated gen;
  int late = 0;
  bool at_shift = false;
  for (int i = 0; i < 4000; ++i) {
    auto x = gen.Next();
    if (i >= 2000) x[0] += 10, x[1] += 10;
    auto v = d->Observe(i, x);
    ASSERT_TRUE(v.ok());
    if (i == 2000) at_shift = v.value().verdict.anomalous;
    if (i >= 3000 && v.value().verdict.anomalous) late++;
  }
  EXPECT_TRUE(at_shift);
  EXPECT_LE(late, 3);
}

TEST(MahalanobisDetector, SaveAndRestoreGiveIdenticalVerdicts) {
  auto a = Make(2);
  auto b = Make(2);
  Correlated gen;
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(a->Observe(i, gen.Next()).ok());
  ASSERT_TRUE(b->RestoreState(a->SaveState()).ok());
  for (int i = 500; i < 1000; ++i) {
    auto x = gen.Next();
    if (i == 700) x[1] = -x[0];
    auto va = a->Observe(i, x);
    auto vb = b->Observe(i, x);
    ASSERT_EQ(va.value().verdict.anomalous, vb.value().verdict.anomalous) << i;
    ASSERT_EQ(va.value().distance2, vb.value().distance2) << i;
  }
  EXPECT_EQ(Make(3)->RestoreState(a->SaveState()).message(),
            "mahalanobis state: 2 dimensions, this detector has 3");
  EXPECT_EQ(b->RestoreState("junk").message(),
            "mahalanobis state: truncated or not this detector's state");
}

TEST(MahalanobisDetector, BadInputIsRefusedWithItsReason) {
  auto d = Make(2);
  const std::array<double, 3> three = {1, 2, 3};
  EXPECT_EQ(d->Observe(0, three).status().message(), "mahalanobis: expected 2 values, got 3");
  const std::array<double, 2> nan = {1, std::nan("")};
  EXPECT_EQ(d->Observe(0, nan).status().message(), "mahalanobis: value 1 is not finite");
  EXPECT_EQ(CreateMultiDetector("pca", 2, {}).status().message(),
            "no multivariate detector named 'pca' (known: mahalanobis)");
  EXPECT_EQ(CreateMultiDetector("mahalanobis", 0, {}).status().message(),
            "mahalanobis: 0 dimensions, expected 1 to 64");
  EXPECT_EQ(CreateMultiDetector("mahalanobis", 2, {{"shrinkage", "2"}}).status().message(),
            "mahalanobis: parameter shrinkage=2: must be in [0.000000, 1.000000]");
}

}  // namespace
}  // namespace faultline::detectors
