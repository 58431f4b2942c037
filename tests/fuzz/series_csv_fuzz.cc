// libFuzzer target: the series CSV reader (files from users: `faultline detectors run/test`, NAB
// data), and every built-in detector on what it reads. Any input must give a series or an error
// naming the source; a detector fed finite values must answer with a score in [0, 1].
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/detectors/detector.h"
#include "faultline/detectors/nab_scorer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace faultline::detectors;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<int64_t> times;
  std::vector<double> values;
  const faultline::Status s = ParseSeriesCsv(text, "fuzz.csv", "value", &times, &values);
  if (!s.ok()) {
    if (s.message().rfind("fuzz.csv:", 0) != 0) abort();
    return 0;
  }
  if (times.size() != values.size()) abort();
  for (const DetectorInfo* info : DetectorRegistry::Global().List()) {
    auto det = DetectorRegistry::Global().Create(info->name, {});
    if (!det.ok()) abort();
    for (size_t i = 0; i < values.size(); ++i) {
      const Verdict v = (*det)->Observe(times[i], values[i]);
      if (!(v.score >= 0 && v.score <= 1)) abort();
    }
    auto copy = DetectorRegistry::Global().Create(info->name, {});
    if (!(*copy)->RestoreState((*det)->SaveState()).ok()) abort();
  }
  return 0;
}
