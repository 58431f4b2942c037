// libFuzzer target: the detector configuration loader (YAML from operators). Any input must give
// a config or an error naming the source; never a crash or an exception.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/detectors/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  auto c = faultline::detectors::ParseDetectorConfig(yaml, "fuzz.yaml");
  if (!c.ok() && c.status().message().rfind("fuzz.yaml:", 0) != 0) abort();
  if (c.ok()) (void)c->Match(faultline::EntityKind::kService, "a", faultline::Metric::kLatencyP99Ms, {{"service", "a"}});
  return 0;
}
