#include "faultline/topology/drilldown.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <sstream>

namespace faultline::topology {
namespace {

// A cube over host (4) x service (5) x region (3): every leaf expects 100 and observes 100 plus
// 1% noise, except leaves under `causes` ("host=h1&service=s2" style), which drop by `drop`.
std::string MakeCube(const std::set<std::string>& causes, double drop, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0, 1);
  std::ostringstream csv;
  csv << "real,predict,host,service,region\n";
  for (int h = 0; h < 4; ++h) {
    for (int s = 0; s < 5; ++s) {
      for (int r = 0; r < 3; ++r) {
        const std::string host = "h" + std::to_string(h), svc = "s" + std::to_string(s),
                          reg = "r" + std::to_string(r);
        bool hit = false;
        for (const std::string& c :
             {"host=" + host, "service=" + svc, "region=" + reg, "host=" + host + "&service=" + svc,
              "host=" + host + "&region=" + reg, "service=" + svc + "&region=" + reg}) {
          hit = hit || causes.count(c);
        }
        const double real = 100 * (hit ? 1 - drop : 1) + noise(rng);
        csv << real << ",100," << host << "," << svc << "," << reg << "\n";
      }
    }
  }
  return csv.str();
}

std::string Solve(const std::string& csv) {
  auto cube = ParseSqueezeCsv(csv, "cube.csv");
  EXPECT_TRUE(cube.ok()) << cube.status().ToString();
  return FormatElements(*cube, DrillDown(*cube).elements);
}

TEST(DrillDown, OneElementInOneDimension) {
  EXPECT_EQ(Solve(MakeCube({"service=s2"}, 0.5)), "service=s2");
}

TEST(DrillDown, SeveralElementsInOneDimension) {
  EXPECT_EQ(Solve(MakeCube({"host=h0", "host=h3"}, 0.4)), "host=h0;host=h3");
}

TEST(DrillDown, ACombinationOfTwoDimensionsIsNotMistakenForEitherAlone) {
  // host=h1 alone: only 1 of its 5 services is abnormal (purity 0.2); service=s4 alone: 1 of 4
  // hosts.
  EXPECT_EQ(Solve(MakeCube({"host=h1&service=s4"}, 0.6)), "host=h1&service=s4");
}

TEST(DrillDown, ElementsFromDifferentCuboidsAndLayers) {
  EXPECT_EQ(Solve(MakeCube({"region=r2", "host=h0&service=s1"}, 0.5)),
            "host=h0&service=s1;region=r2");
}

TEST(DrillDown, NoisyButNormalDataExplainsNothing) {
  auto cube = ParseSqueezeCsv(MakeCube({}, 0), "cube.csv");
  ASSERT_TRUE(cube.ok());
  const DrillDownResult r = DrillDown(*cube);
  EXPECT_TRUE(r.elements.empty());
  EXPECT_EQ(r.abnormal_leaves, 0u);
}

TEST(DrillDown, ElementStatisticsAddUp) {
  auto cube = ParseSqueezeCsv(MakeCube({"service=s2"}, 0.5), "cube.csv");
  ASSERT_TRUE(cube.ok());
  const DrillDownResult r = DrillDown(*cube);
  ASSERT_EQ(r.elements.size(), 1u);
  EXPECT_EQ(r.elements[0].leaves, 12u);  // 4 hosts x 3 regions
  EXPECT_EQ(r.elements[0].abnormal, 12u);
  EXPECT_NEAR(r.elements[0].predict, 1200, 1e-9);
  EXPECT_NEAR(r.elements[0].real, 600, 30);
  EXPECT_EQ(r.unexplained, 0u);
}

TEST(DrillDown, LeavesWithoutDataAreSkippedAndUnexpectedTrafficIsAbnormal) {
  // Leaves where nothing was expected nor seen carry no information; a leaf that expected
  // nothing but saw traffic deviates fully.
  std::string csv = "real,predict,a,b\n";
  for (int a = 0; a < 3; ++a) {
    for (int b = 0; b < 4; ++b) {
      const bool empty = b == 3;
      const bool surge = a == 2 && b < 3;  // a2 sees traffic nobody expected
      csv += std::to_string(empty   ? 0
                            : surge ? 50
                                    : 100) +
             "," + (empty || surge ? "0" : "100") + ",a" + std::to_string(a) + ",b" +
             std::to_string(b) + "\n";
    }
  }
  EXPECT_EQ(Solve(csv), "a=a2");
}

// A ratio KPI, the error rate (errors / requests) by host x service: every leaf expects 1000
// requests and a 1% error rate. Host h2's traffic triples (its error count triples with it, at
// the normal rate) while service s3's error rate goes to 10% on every host.
std::string ErrorRateCube() {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 1);
  std::ostringstream csv;
  csv << "real,predict,real_den,predict_den,host,service\n";
  for (int h = 0; h < 4; ++h) {
    for (int s = 0; s < 5; ++s) {
      const double requests = h == 2 ? 3000 : 1000;
      const double rate = s == 3 ? 0.10 : 0.01;
      csv << requests * rate + noise(rng) * 0.1 << "," << 10 << "," << requests << ",1000,h" << h
          << ",s" << s << "\n";
    }
  }
  return csv.str();
}

TEST(DrillDown, ARatioKpiComparesRatesNotCounts) {
  auto cube = ParseSqueezeCsv(ErrorRateCube(), "rate.csv");
  ASSERT_TRUE(cube.ok()) << cube.status().ToString();
  EXPECT_TRUE(cube->ratio());
  const DrillDownResult r = DrillDown(*cube);
  EXPECT_EQ(FormatElements(*cube, r.elements), "service=s3");
  ASSERT_EQ(r.elements.size(), 1u);
  EXPECT_EQ(r.elements[0].leaves, 4u);
  EXPECT_EQ(r.elements[0].real_den, 6000);  // h2 carries three times the traffic
  EXPECT_NEAR(r.elements[0].real / r.elements[0].real_den, 0.10, 0.001);
  EXPECT_EQ(r.elements[0].predict / r.elements[0].predict_den, 0.01);

  // The same numbers read as an additive KPI (error counts): host h2's tripled count is a
  // deviation too, which the ratio view rightly does not blame.
  std::string additive = ErrorRateCube();
  std::string out;
  std::istringstream lines(additive);
  for (std::string line; std::getline(lines, line);) {
    const size_t a = line.find(','), b = line.find(',', a + 1), c = line.find(',', b + 1),
                 d = line.find(',', c + 1);
    out += line.substr(0, b) + line.substr(d) + "\n";
  }
  auto counts = ParseSqueezeCsv(out, "counts.csv");
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_FALSE(counts->ratio());
  EXPECT_EQ(FormatElements(*counts, DrillDown(*counts).elements), "host=h2;service=s3");
}

TEST(DrillDown, RatioLeavesWithoutADenominatorAreSkipped) {
  auto cube = ParseSqueezeCsv(
      "real,predict,real_den,predict_den,host\n5,1,0,100,h0\n1,1,100,100,h1\n", "r.csv");
  ASSERT_TRUE(cube.ok());
  const DrillDownResult r = DrillDown(*cube);
  EXPECT_EQ(r.abnormal_leaves, 0u);
  EXPECT_EQ(ParseSqueezeCsv("real,predict,real_den,predict_den,host\n1,1,x,1,h0\n", "r.csv")
                .status()
                .message(),
            "r.csv:2: real_den 'x' is not a number");
  EXPECT_EQ(ParseSqueezeCsv("real,predict,real_den,predict_den\n", "r.csv").status().message(),
            "r.csv:1: expected at least one dimension after the values");
}

TEST(SqueezeCsv, ErrorsNameTheSourceLineAndProblem) {
  EXPECT_EQ(ParseSqueezeCsv("", "c.csv").status().message(),
            "c.csv: empty (expected the header real,predict,<dimension>,…)");
  EXPECT_EQ(ParseSqueezeCsv("predict,real,a\n", "c.csv").status().message(),
            "c.csv:1: expected the header real,predict,<dimension>,…");
  EXPECT_EQ(ParseSqueezeCsv("real,predict,a\n1,2\n", "c.csv").status().message(),
            "c.csv:2: 2 columns, the header has 3");
  EXPECT_EQ(ParseSqueezeCsv("real,predict,a\n1,x,a1\n", "c.csv").status().message(),
            "c.csv:2: predict 'x' is not a number");
  auto ok = ParseSqueezeCsv("real,predict,a,b\r\n1,2,a1,b1\r\n3,4,a2,b1\r\n", "c.csv");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->leaves(), 2u);
  EXPECT_EQ(ok->values[0], (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(ok->values[1], (std::vector<std::string>{"b1"}));
}

}  // namespace
}  // namespace faultline::topology
