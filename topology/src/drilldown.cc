#include "faultline/topology/drilldown.h"

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include "faultline/common/text.h"

namespace faultline::topology {
namespace {

// Element keys pack up to three value ids of 21 bits each into 64 bits.
constexpr size_t kMaxValues = size_t{1} << 21;
constexpr size_t kMaxLayer = 3;

bool ParseDouble(std::string_view s, double* out) {
  const std::string text(s);
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return !text.empty() && *end == '\0' && std::isfinite(*out);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  return v[mid];
}

// Every subset of `n` dimensions with `k` members, in lexicographic order.
std::vector<std::vector<size_t>> Cuboids(size_t n, size_t k) {
  std::vector<std::vector<size_t>> out;
  std::vector<size_t> idx(k);
  for (size_t i = 0; i < k; ++i) idx[i] = i;
  while (k <= n) {
    out.push_back(idx);
    size_t i = k;
    while (i > 0 && idx[i - 1] == n - k + i - 1) i--;
    if (i == 0) break;
    idx[i - 1]++;
    for (size_t j = i; j < k; ++j) idx[j] = idx[j - 1] + 1;
  }
  return out;
}

}  // namespace

Result<Cube> ParseSqueezeCsv(std::string_view text, const std::string& source) {
  Cube cube;
  std::vector<std::unordered_map<std::string, uint32_t>> ids;
  int line_no = 0;
  bool header = true, ratio = false;
  size_t first_dim = 2;
  while (!text.empty()) {
    const std::string_view line = NextLine(&text);
    line_no++;
    if (line.empty()) continue;
    const auto where = [&] { return source + ":" + std::to_string(line_no) + ": "; };
    const std::vector<std::string_view> cells = SplitFields(line);
    if (header) {
      if (cells.size() < 3 || cells[0] != "real" || cells[1] != "predict") {
        return InvalidArgument(where() + "expected the header real,predict,<dimension>,…");
      }
      ratio = cells.size() >= 4 && cells[2] == "real_den" && cells[3] == "predict_den";
      first_dim = ratio ? 4 : 2;
      if (cells.size() <= first_dim)
        return InvalidArgument(where() + "expected at least one dimension after the values");
      for (size_t i = first_dim; i < cells.size(); ++i) {
        if (cells[i].empty()) {
          return InvalidArgument(where() + "dimension " + std::to_string(i - first_dim + 1) +
                                 " has no name");
        }
        cube.dims.emplace_back(cells[i]);
      }
      cube.values.resize(cube.dims.size());
      ids.resize(cube.dims.size());
      header = false;
      continue;
    }
    if (cells.size() != cube.dims.size() + first_dim) {
      return InvalidArgument(where() + std::to_string(cells.size()) + " columns, the header has " +
                             std::to_string(cube.dims.size() + first_dim));
    }
    double real = 0, predict = 0;
    if (!ParseDouble(cells[0], &real))
      return InvalidArgument(where() + "real '" + std::string(cells[0]) + "' is not a number");
    if (!ParseDouble(cells[1], &predict)) {
      return InvalidArgument(where() + "predict '" + std::string(cells[1]) + "' is not a number");
    }
    cube.real.push_back(real);
    cube.predict.push_back(predict);
    if (ratio) {
      double real_den = 0, predict_den = 0;
      if (!ParseDouble(cells[2], &real_den)) {
        return InvalidArgument(where() + "real_den '" + std::string(cells[2]) +
                               "' is not a number");
      }
      if (!ParseDouble(cells[3], &predict_den)) {
        return InvalidArgument(where() + "predict_den '" + std::string(cells[3]) +
                               "' is not a number");
      }
      cube.real_den.push_back(real_den);
      cube.predict_den.push_back(predict_den);
    }
    for (size_t j = 0; j < cube.dims.size(); ++j) {
      auto [it, fresh] = ids[j].try_emplace(std::string(cells[j + first_dim]),
                                            static_cast<uint32_t>(cube.values[j].size()));
      if (fresh) {
        if (cube.values[j].size() >= kMaxValues) {
          return InvalidArgument(where() + "dimension " + cube.dims[j] + " has more than " +
                                 std::to_string(kMaxValues) + " values");
        }
        cube.values[j].emplace_back(cells[j + first_dim]);
      }
      cube.cells.push_back(it->second);
    }
  }
  if (header)
    return InvalidArgument(source + ": empty (expected the header real,predict,<dimension>,…)");
  return cube;
}

DrillDownResult DrillDown(const Cube& cube, const DrillDownOptions& o) {
  DrillDownResult result;
  const size_t n = cube.leaves(), nd = cube.dims.size();
  // 1. Abnormal leaves: relative deviation far from the bulk of the leaves'.
  std::vector<double> dev(n, 0);
  std::vector<char> valid(n, 0);
  std::vector<double> devs;
  devs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    double real = cube.real[i], predict = cube.predict[i];
    if (cube.ratio()) {
      if (!(cube.real_den[i] > 0 && cube.predict_den[i] > 0)) continue;
      real /= cube.real_den[i], predict /= cube.predict_den[i];
    }
    if (predict <= 0 && real <= 0) continue;
    valid[i] = 1;
    // A leaf with nothing expected but something observed deviates fully (upward).
    dev[i] = predict > 0 ? (predict - real) / predict : -1.0;
    if (predict > 0) devs.push_back(dev[i]);
  }
  // The normal leaves' center and spread, robust to a large share of abnormal leaves (up to half
  // of them and more): the center is the median of the 40% of deviations closest to zero (the
  // forecast is meant to be unbiased, and the normal bulk is where it is right), the spread comes
  // from the 20th percentile of distances to it (for Gaussian noise that percentile is
  // 0.2533 sd). A plain median and MAD break down when half the leaves are abnormal.
  std::vector<double> by_size = devs;
  std::sort(by_size.begin(), by_size.end(),
            [](double a, double b) { return std::abs(a) < std::abs(b); });
  by_size.resize(std::max<size_t>(1, by_size.size() * 2 / 5));
  const double center = devs.empty() ? 0 : Median(by_size);
  for (double& d : devs) d = std::abs(d - center);
  double spread = 0;
  if (!devs.empty()) {
    const size_t q = devs.size() / 5;
    std::nth_element(devs.begin(), devs.begin() + static_cast<std::ptrdiff_t>(q), devs.end());
    spread = devs[q] / 0.2533;
  }
  const double cut = std::max(o.min_deviation, o.robust_z * spread);
  std::vector<char> abnormal(n, 0), remaining(n, 0);
  for (size_t i = 0; i < n; ++i) {
    if (valid[i] && std::abs(dev[i] - center) > cut)
      abnormal[i] = remaining[i] = 1, result.abnormal_leaves++;
  }
  result.abnormal = abnormal;
  size_t left = result.abnormal_leaves;
  const double min_cover = std::max(2.0, o.min_share * static_cast<double>(result.abnormal_leaves));

  // 2. Cuboids from one attribute up; greedy cover by the purest, most explanatory elements.
  for (size_t layer = 1; layer <= std::min({o.max_layer, nd, kMaxLayer}); ++layer) {
    if (static_cast<double>(left) <
        std::max(1.0, 0.01 * static_cast<double>(result.abnormal_leaves)))
      break;
    struct Candidate {
      std::vector<size_t> cuboid;
      uint64_t key;
      size_t leaves, abnormal;
      double weight;
    };
    std::vector<Candidate> candidates;
    for (const std::vector<size_t>& cuboid : Cuboids(nd, layer)) {
      // Element key: the value ids of the cuboid's dimensions, 21 bits each.
      // Purity counts every abnormal leaf, also those another element already explains (two
      // root causes may share leaves); the weight counts only the ones still unexplained.
      struct Count {
        size_t leaves = 0, abnormal = 0, unexplained = 0;
      };
      absl::flat_hash_map<uint64_t, Count> counts;
      for (size_t i = 0; i < n; ++i) {
        if (!valid[i]) continue;
        uint64_t key = 0;
        for (size_t d : cuboid) key = (key << 21) | cube.cells[i * nd + d];
        Count& c = counts[key];
        c.leaves++;
        c.abnormal += abnormal[i];
        c.unexplained += remaining[i];
      }
      for (const auto& [key, c] : counts) {
        if (c.unexplained == 0) continue;
        const double purity = static_cast<double>(c.abnormal) / static_cast<double>(c.leaves);
        if (purity >= o.min_purity) {
          candidates.push_back(
              {cuboid, key, c.leaves, c.unexplained, purity * static_cast<double>(c.unexplained)});
        }
      }
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.weight, a.abnormal, b.key) > std::tie(b.weight, b.abnormal, a.key);
    });
    for (const Candidate& c : candidates) {
      // Abnormal leaves this element explains that no element taken before does.
      RootCauseElement e;
      size_t fresh = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!valid[i]) continue;
        uint64_t key = 0;
        for (size_t d : c.cuboid) key = (key << 21) | cube.cells[i * nd + d];
        if (key != c.key) continue;
        fresh += remaining[i];
      }
      if (static_cast<double>(fresh) < min_cover) continue;
      for (size_t i = 0; i < n; ++i) {
        if (!valid[i]) continue;
        uint64_t key = 0;
        for (size_t d : c.cuboid) key = (key << 21) | cube.cells[i * nd + d];
        if (key != c.key) continue;
        e.leaves++;
        e.abnormal += abnormal[i];
        e.real += cube.real[i];
        e.predict += cube.predict[i];
        if (cube.ratio()) e.real_den += cube.real_den[i], e.predict_den += cube.predict_den[i];
        if (remaining[i]) remaining[i] = 0, left--;
      }
      uint64_t key = c.key;
      for (size_t k = c.cuboid.size(); k-- > 0;) {
        e.attrs.insert(e.attrs.begin(),
                       {c.cuboid[k], static_cast<uint32_t>(key & ((1u << 21) - 1))});
        key >>= 21;
      }
      result.elements.push_back(std::move(e));
    }
  }
  result.unexplained = left;
  return result;
}

std::string FormatElements(const Cube& cube, const std::vector<RootCauseElement>& elements) {
  std::vector<std::string> parts;
  for (const RootCauseElement& e : elements) {
    std::string s;
    for (const auto& [d, v] : e.attrs) {
      if (!s.empty()) s += '&';
      s += cube.dims[d] + "=" + cube.values[d][v];
    }
    parts.push_back(std::move(s));
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += ';';
    out += p;
  }
  return out;
}

}  // namespace faultline::topology
