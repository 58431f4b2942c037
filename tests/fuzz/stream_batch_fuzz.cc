// libFuzzer target: event batches from the wire (what any producer may put on the events topic),
// applied by a partition's state. Malformed bytes must be counted as undecodable and skipped;
// nothing may crash, and every event is accounted for once (applied, late or from the future).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "faultline/stream/partition_state.h"

namespace {

struct Fixture {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("fl_fuzz_state_" + std::to_string(getpid())))
          .string();
  faultline::stream::EntityNamer namer = faultline::stream::EntityNamer::Create({}).value();
  std::unique_ptr<faultline::stream::PartitionState> state;
  int64_t offset = 0;
  Fixture() {
    std::filesystem::remove_all(dir);
    state = faultline::stream::PartitionState::Open(dir, "fuzz", 0, {}, namer).value();
  }
  ~Fixture() {
    state.reset();
    std::filesystem::remove_all(dir);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture f;
  faultline::stream::ApplyCounters c;
  f.state->Apply(std::string_view(reinterpret_cast<const char*>(data), size), f.offset, -1, &c);
  f.offset++;
  if (c.messages != 1 || f.state->next_offset() != f.offset) abort();
  if (c.undecodable > 1 || c.late + c.future > c.events) abort();
  // Keep the state small: commit and let retention work now and then.
  if (f.offset % 256 == 0 && !f.state->Commit().ok()) abort();
  return 0;
}
