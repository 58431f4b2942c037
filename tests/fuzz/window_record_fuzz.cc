// libFuzzer target: records of faultline.metrics as the live diagnosis reads them (from the
// wire). The input is a sequence of records, each either raw bytes or a window record built from
// the fuzzer's choices (kind, dimensions, counts, latencies, start, partitions) and then possibly
// corrupted, so that both the decoder and the merge/completion/judging paths are reached. Every
// record must be applied or refused with "window record: …"; Advance must never crash; and the
// state written must restore into a fresh instance.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "faultline/diagnosis/live.h"
#include "faultline/model/window_record.h"
#include "metrics.pb.h"

using namespace faultline;

namespace {

std::string Built(FuzzedDataProvider* in) {
  static const char* kDims[] = {"service", "endpoint", "instance", "machine", "caller",
                                "callee",  "side",     "address"};
  model::StoredWindow w;
  w.key.kind = static_cast<EntityKind>(in->ConsumeIntegralInRange<int>(1, 4));
  for (const char* d : kDims)
    if (in->ConsumeBool()) w.key.dims.emplace_back(d, in->ConsumeRandomLengthString(12));
  std::sort(w.key.dims.begin(), w.key.dims.end());
  w.start_s = 1'800'000'000 + 5 * in->ConsumeIntegralInRange<int64_t>(-3, 60);
  w.stats.requests = in->ConsumeIntegralInRange<uint64_t>(0, 1000);
  w.stats.status_5xx = in->ConsumeIntegralInRange<uint64_t>(0, w.stats.requests);
  const int samples = in->ConsumeIntegralInRange<int>(0, 20);
  for (int i = 0; i < samples; ++i) w.stats.latency_ns.Add(in->ConsumeFloatingPointInRange<double>(0, 1e10));
  w.stats.retransmits = in->ConsumeIntegral<uint16_t>();
  w.stats.resource_samples = in->ConsumeIntegralInRange<uint64_t>(0, 5);
  w.stats.cpu_total_ns = in->ConsumeIntegral<uint32_t>();
  w.stats.cpu_busy_ns = in->ConsumeIntegralInRange<uint64_t>(0, w.stats.cpu_total_ns);
  v1::WindowRecord r;
  model::ToWindowRecord(w, in->ConsumeBool() ? 5 : in->ConsumeIntegral<uint8_t>(),
                         in->ConsumeIntegralInRange<int32_t>(0, 3), &r);
  if (in->ConsumeBool()) {
    r.Clear();
    r.set_kind("watermark");
    r.set_schema_version(2);
    r.set_input_partition(in->ConsumeIntegralInRange<int32_t>(0, 3));
    r.set_window_start_unix_s(w.start_s);
  }
  std::string bytes = r.SerializeAsString();
  const int flips = in->ConsumeIntegralInRange<int>(0, 2);
  for (int i = 0; i < flips && !bytes.empty(); ++i)
    bytes[in->ConsumeIntegralInRange<size_t>(0, bytes.size() - 1)] ^= in->ConsumeIntegral<uint8_t>();
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  diagnosis::LiveOptions o;
  o.metrics_partitions = in.ConsumeIntegralInRange<int>(0, 2);
  diagnosis::LiveDiagnosis live(o, &fta::DefaultFaultTrees());
  for (int n = 0; n < 64 && in.remaining_bytes() > 0; ++n) {
    const std::string record = in.ConsumeBool() ? Built(&in) : in.ConsumeRandomLengthString(256);
    const Status s = live.Apply(record, in.ConsumeIntegralInRange<int32_t>(0, 1));
    if (!s.ok() && s.message().rfind("window record: ", 0) != 0) abort();
    if (in.ConsumeBool()) (void)live.Advance();
  }
  (void)live.Advance();
  std::vector<diagnosis::LiveDiagnosis::Change> changes;
  live.TakeChanges(&changes);
  std::vector<std::pair<std::string, std::string>> state;
  for (auto& [k, v] : changes)
    if (v) state.emplace_back(k, *v);
  diagnosis::LiveDiagnosis again(o, &fta::DefaultFaultTrees());
  if (!again.Restore(state).ok()) abort();  // what it wrote, it reads back
  if (again.judged_until() != live.judged_until()) abort();
  return 0;
}
