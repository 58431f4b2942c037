// libFuzzer target: the stream processor's YAML configuration (from operators). Any input must
// give settings or an error naming the source; never a crash or an exception.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/stream/stream_processor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  faultline::stream::StreamOptions o;
  faultline::Status s = faultline::stream::ParseStreamConfig(yaml, "fuzz.yaml", &o);
  if (!s.ok() && s.message().rfind("fuzz.yaml:", 0) != 0) abort();
  if (s.ok() && (o.windows.window_s < 1 || o.naming.service_templates.empty())) abort();
  return 0;
}
