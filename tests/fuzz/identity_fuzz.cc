// libFuzzer target: /proc/<pid>/cgroup contents and cgroup paths (bytes from outside the agent).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "faultline/agent/identity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string path = faultline::agent::CgroupPathFromProcFile(text);
  for (std::string_view p : {std::string_view(path), text}) {
    const auto ref = faultline::agent::ParseCgroupPath(p);
    if (!ref.container_id.empty() && ref.container_id.size() != 64) abort();
    if (!ref.pod_uid.empty() && ref.pod_uid.size() != 36) abort();
  }
  return 0;
}
