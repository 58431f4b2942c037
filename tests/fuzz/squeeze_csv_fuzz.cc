// libFuzzer target: root-cause cases in the Squeeze layout (files from users, `faultline
// attribute`), parsed and drilled down. Any input must give a cube or an error naming the source;
// the drill-down of any cube must return elements made of its own dimensions and values.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/topology/drilldown.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace faultline::topology;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cube = ParseSqueezeCsv(text, "fuzz.csv");
  if (!cube.ok()) {
    if (cube.status().message().rfind("fuzz.csv", 0) != 0) abort();
    return 0;
  }
  const DrillDownResult r = DrillDown(*cube);
  for (const RootCauseElement& e : r.elements) {
    if (e.attrs.empty() || e.abnormal > e.leaves) abort();
    for (const auto& [d, v] : e.attrs) {
      if (d >= cube->dims.size() || v >= cube->values[d].size()) abort();
    }
  }
  if (r.unexplained > r.abnormal_leaves) abort();
  (void)FormatElements(*cube, r.elements);
  return 0;
}
