// libFuzzer target: event batches from the wire (what any producer may put on the events topic),
// applied by a partition's state. Malformed bytes must be counted as undecodable and skipped;
// nothing may crash, and every event is accounted for once (applied, late or from the future).
//
// Each input is a partition's whole life from nothing: its batches (the input split at
// kSeparator; an input without one is a single batch, as the seeds are) applied in order to a
// state opened on an empty directory, with a commit after each. No state survives an input, so
// a crash reproduces from its input alone.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/stream/partition_state.h"

namespace {

constexpr std::string_view kSeparator = "FLB|";

// This process's scratch directory. Not on tmpfs: RocksDB preallocates its log, which tmpfs
// fills with zeros, and an input opens a database.
const std::string& StateDir() {
  static const std::string dir =
      (std::filesystem::temp_directory_path() / ("fl_fuzz_state_" + std::to_string(getpid())))
          .string();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = StateDir();
  std::filesystem::remove_all(dir);
  auto namer = faultline::stream::EntityNamer::Create({});
  if (!namer.ok()) abort();
  {
    auto opened = faultline::stream::PartitionState::Open(dir, "fuzz", 0, {}, *namer);
    if (!opened.ok()) abort();
    faultline::stream::PartitionState& state = **opened;
    // A fresh state: nothing applied, nothing open.
    if (state.next_offset() != -1 || state.open_series() != 0 || state.max_event_ns() != 0) abort();
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    int64_t offset = 0;
    for (size_t from = 0; from <= input.size(); ++offset) {
      size_t end = input.find(kSeparator, from);
      if (end == std::string_view::npos) end = input.size();
      faultline::stream::ApplyCounters c;
      state.Apply(input.substr(from, end - from), offset, -1, &c);
      if (c.messages != 1 || state.next_offset() != offset + 1) abort();
      if (c.undecodable > 1 || c.late + c.future > c.events) abort();
      if (!state.Commit().ok()) abort();
      from = end + kSeparator.size();
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
