// Dimension drill-down: given an additive KPI broken down by several dimensions (one leaf per full
// combination of their values, each with its observed and expected value), find the smallest set
// of dimension-value combinations ("elements", such as host=h1&service=s1) that explains the
// deviation between observed and expected.
//
// The method rests on the ripple effect (Squeeze, Li et al. 2019): when an element is the root
// cause, its leaves deviate together, while leaves outside every root cause deviate only by the
// forecast's noise. So:
//   1. each leaf's relative deviation (expected - observed) / expected is judged against the
//      normal leaves' center and spread, estimated so that even half the leaves being abnormal
//      does not hide them: a leaf is abnormal beyond max(min_deviation, robust_z · spread);
//   2. cuboids are searched from one attribute up (fewer attributes explain more simply): in each,
//      an element whose leaves are mostly abnormal (purity >= min_purity) is a candidate; the
//      candidates that cover the most abnormal leaves not yet explained are taken greedily (purity
//      counts leaves another element explains too, since root causes may overlap), each
//      only if it explains at least min_share of all abnormal leaves (so noise is not "explained");
//   3. the search stops when (almost) every abnormal leaf is explained.
// Leaves with neither an observed nor an expected value carry no information and are skipped.
// For a ratio KPI the leaves' ratios are compared (so a leaf whose traffic merely grew is normal),
// and leaves whose denominators are not both positive carry no ratio and are skipped.
//
// Thread-compatible; pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::topology {

// Leaves in columns: value ids per dimension, interned.
struct Cube {
  std::vector<std::string> dims;                 // attribute names
  std::vector<std::vector<std::string>> values;  // per dimension: id -> value
  std::vector<uint32_t> cells;                   // leaf i, dimension j at i * dims.size() + j
  std::vector<double> real, predict;
  // A derived ratio KPI (error rate = errors / requests, mean latency = total / count): each
  // leaf's value is real / real_den against predict / predict_den, and an element's value the
  // ratio of its sums. Empty for an additive KPI.
  std::vector<double> real_den, predict_den;
  bool ratio() const { return !real_den.empty(); }
  size_t leaves() const { return real.size(); }
};

// The Squeeze layout: a header `real,predict,<dim>,…` then one row per leaf. A ratio KPI has two
// more columns after predict, `real_den,predict_den` (its denominators). Errors:
// kInvalidArgument naming `source`, the line and the problem.
Result<Cube> ParseSqueezeCsv(std::string_view text, const std::string& source);

struct DrillDownOptions {
  // Share of an element's leaves that must be abnormal. Default: 0.7.
  double min_purity = 0.7;
  // Abnormal beyond this many robust standard deviations of the leaves' deviations. Default: 5.
  double robust_z = 5;
  // ... and at least this relative deviation. Default: 0.05.
  double min_deviation = 0.05;
  // Share of all abnormal leaves an element must explain. Default: 0.05.
  double min_share = 0.05;
  // The largest cuboid searched (attributes per element; at most 3). Default: 3.
  size_t max_layer = 3;
};

struct RootCauseElement {
  std::vector<std::pair<size_t, uint32_t>> attrs;  // (dimension, value id), by dimension
  size_t leaves = 0;                               // leaves with data under the element
  size_t abnormal = 0;                             // of which abnormal
  double real = 0, predict = 0;                    // sums over its leaves
  double real_den = 0, predict_den = 0;            // ratio KPIs: the denominators' sums
};

struct DrillDownResult {
  std::vector<RootCauseElement> elements;  // in the order found (most explanatory first)
  size_t abnormal_leaves = 0;
  size_t unexplained = 0;  // abnormal leaves no element explains (noise)
  std::vector<char> abnormal;  // per leaf of the cube: 1 when it is abnormal
};

DrillDownResult DrillDown(const Cube& cube, const DrillDownOptions& options = {});

// "a=a1&b=b2;c=c3": attributes in dimension order within an element, elements sorted.
std::string FormatElements(const Cube& cube, const std::vector<RootCauseElement>& elements);

}  // namespace faultline::topology
