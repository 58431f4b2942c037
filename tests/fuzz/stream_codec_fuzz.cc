// libFuzzer target: the stream's stored and published encodings (window stats, series keys,
// latency sketches), which come back from disk and from the metrics topic. Anything must decode or
// be refused with a message; what decodes must encode back to bytes that decode to the same value.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/model/latency_sketch.h"
#include "faultline/model/window_stats.h"

using faultline::model::LatencySketch;
using faultline::model::SeriesKey;
using faultline::model::WindowStats;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto s = WindowStats::Decode(in); s.ok()) {
    std::string again;
    s->EncodeTo(&again);
    auto back = WindowStats::Decode(again);
    if (!back.ok() || !(*back == *s)) abort();
    WindowStats sum = *s;
    if (!sum.Merge(*s).ok() || sum.requests != 2 * s->requests) abort();
  } else if (s.status().message().rfind("window stats:", 0) != 0 &&
             s.status().message().rfind("latency sketch:", 0) != 0) {
    abort();
  }
  if (auto k = SeriesKey::Decode(in); k.ok()) {
    if (k->Encode() != in) abort();
  }
  if (auto sk = LatencySketch::Decode(in); sk.ok()) {
    const double q = sk->Quantile(0.99);
    if (sk->count() && !(q >= sk->min() && q <= sk->max())) abort();
  }
  return 0;
}
