// libFuzzer target: the parsers of cgroup and procfs files (/proc/mounts, cpu.stat, cpuacct.usage,
// memory.*, /proc/stat). The input holds up to four files separated by NUL bytes. Nothing may
// crash; figures must stay consistent (a working set never exceeds the usage).
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "faultline/agent/cgroups.h"

using namespace faultline::agent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  while (parts.size() < 3) {
    const size_t nul = in.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(in.substr(0, nul));
    in.remove_prefix(nul + 1);
  }
  parts.push_back(in);
  while (parts.size() < 4) parts.push_back({});
  const CgroupLayout layout = ParseCgroupMounts(parts[0], parts[1]);
  for (const char* c : {"cpu", "cpuacct", "memory", "io", "blkio"}) {
    int version = -1;
    const std::string mount = layout.MountFor(c, &version);
    if (mount.empty() != (version == 0)) abort();
  }
  (void)ParseCpuStatV2(parts[0]);
  (void)ParseCpuStatV1(parts[0], parts[1]);
  if (ParseCpuMaxV2(parts[0]) < 0 || ParseCfsQuotaV1(parts[0], parts[1]) < 0) abort();
  const MemoryFigures v2 = ParseMemoryV2(parts[0], parts[1], parts[2], parts[3]);
  const MemoryFigures v1 = ParseMemoryV1(parts[0], parts[1], parts[2], parts[3]);
  if (v2.working_set > v2.usage || v1.working_set > v1.usage) abort();
  uint64_t busy = 0, total = 0;
  (void)ParseProcStatCpu(parts[0], &busy, &total);
  (void)ParseSingleValue(parts[3], 0);
  return 0;
}
