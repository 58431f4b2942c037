// libFuzzer target: the live diagnosis's YAML configuration (from operators). Any input must give
// settings or an error naming the source; never a crash or an exception. Inputs naming plugins
// are skipped: they would load whatever shared library the fuzzer spells.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/diagnosis/live_runtime.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  if (yaml.find("plugins") != std::string::npos) return 0;
  faultline::diagnosis::LiveRuntimeOptions o;
  faultline::Status s = faultline::diagnosis::ParseDiagnosisConfig(yaml, "fuzz.yaml", &o);
  if (!s.ok() && s.message().rfind("fuzz.yaml", 0) != 0) abort();
  if (s.ok() && (o.live.lookback_s < 30 || o.live.resolve_after < 1)) abort();
  return 0;
}
