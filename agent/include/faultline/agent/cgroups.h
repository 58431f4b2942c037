// Reading cgroup resource files, under cgroup v1 (one hierarchy per controller), v2 (one unified
// hierarchy) or both at once (hybrid: v1 controllers next to a v2 hierarchy without them).
//
// CgroupLayout says which hierarchy each controller lives in, from /proc/mounts and the unified
// root's cgroup.controllers. CgroupReader maps the kernfs ids the BPF programs report (a cgroup
// directory's inode number) to paths relative to the hierarchy root, by walking the hierarchy
// (bounded), and reads CPU and memory figures of a path from whichever version holds the
// controller. The file parsers are pure functions (tested and fuzzed on their own).
//
// Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

namespace faultline::agent {

struct CgroupLayout {
  std::string unified;                    // the v2 mount point, "" when none
  std::string unified_controllers;        // its root's cgroup.controllers, space separated
  std::map<std::string, std::string> v1;  // controller -> v1 mount point

  // The mount point of the hierarchy that has `controller` ("cpu", "cpuacct", "memory", "blkio"
  // / "io"), and its version (1 or 2); "" and 0 when no hierarchy has it.
  std::string MountFor(std::string_view controller, int* version = nullptr) const;
  // Keeps the v2 root's cgroup.controllers text without its trailing newline.
  void SetUnifiedControllers(std::string_view text);
};

// From the text of /proc/mounts (or /proc/self/mounts) and the unified root's cgroup.controllers.
CgroupLayout ParseCgroupMounts(std::string_view proc_mounts, std::string_view unified_controllers);
// This host's layout: <proc_root>/mounts, then the v2 root's cgroup.controllers if there is one.
CgroupLayout ReadCgroupLayout(const std::string& proc_root);

// "key value" lines (cpu.stat, memory.stat, memory.events, memory.oom_control, /proc/vmstat):
// unparsable lines are skipped.
std::unordered_map<std::string, uint64_t> ParseKeyValues(std::string_view text);
// A single number ("max" or empty gives `otherwise`).
uint64_t ParseSingleValue(std::string_view text, uint64_t otherwise);

struct CpuFigures {
  bool valid = false;
  uint64_t usage_ns = 0, periods = 0, throttled_periods = 0, throttled_ns = 0;
};
// v2 cpu.stat (usage_usec, nr_periods, nr_throttled, throttled_usec).
CpuFigures ParseCpuStatV2(std::string_view cpu_stat);
// v1: cpu.stat (nr_periods, nr_throttled, throttled_time in ns) and cpuacct.usage (ns).
CpuFigures ParseCpuStatV1(std::string_view cpu_stat, std::string_view cpuacct_usage);

// The CPU limit in cores (quota over period), 0 when there is none. v2: cpu.max ("max 100000" or
// "50000 100000"); v1: cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us.
double ParseCpuMaxV2(std::string_view cpu_max);
double ParseCfsQuotaV1(std::string_view quota_us, std::string_view period_us);

struct MemoryFigures {
  bool valid = false;
  uint64_t usage = 0, limit = 0 /* 0: none */, working_set = 0, major_faults = 0, oom_kills = 0;
};
// v2: memory.current, memory.max, memory.stat (inactive_file, pgmajfault), memory.events
// (oom_kill).
MemoryFigures ParseMemoryV2(std::string_view current, std::string_view max, std::string_view stat,
                            std::string_view events);
// v1: memory.usage_in_bytes, memory.limit_in_bytes (a huge value means none), memory.stat
// (total_inactive_file, total_pgmajfault), memory.oom_control (oom_kill).
MemoryFigures ParseMemoryV1(std::string_view usage, std::string_view limit, std::string_view stat,
                            std::string_view oom_control);

// /proc/stat's first line as (busy, total) clock ticks: busy leaves out idle and iowait; false
// when the line is not there.
bool ParseProcStatCpu(std::string_view proc_stat, uint64_t* busy, uint64_t* total);

class CgroupReader {
 public:
  // `max_dirs` bounds each hierarchy walk.
  explicit CgroupReader(CgroupLayout layout, size_t max_dirs = 20000);

  const CgroupLayout& layout() const { return layout_; }

  // The path (relative to the hierarchy root, "/" for the root) of the cgroup with kernfs id `id`
  // in `controller`'s hierarchy, or nullptr. An unknown id re-walks the hierarchy, at most once
  // per `Tick` per hierarchy.
  const std::string* PathOf(std::string_view controller, uint64_t id);
  // The same in the v2 hierarchy (the one bpf_get_current_cgroup_id's ids name), controllers or
  // not; nullptr without one.
  const std::string* PathOfUnified(uint64_t id);
  // Allows another walk of each hierarchy (call once per read-out interval).
  void Tick() { walked_.clear(); }

  CpuFigures ReadCpu(const std::string& path) const;
  MemoryFigures ReadMemory(const std::string& path) const;
  // The CPU limit of `path` in cores, 0 when it has none (or no cpu controller is mounted).
  double ReadCpuLimit(const std::string& path) const;

  // Directories past `max_dirs` in walks so far (not mapped: their ids stay unknown).
  uint64_t dirs_over_limit() const { return dirs_over_limit_; }

 private:
  void Walk(const std::string& mount);
  const std::string* PathIn(const std::string& mount, uint64_t id);

  CgroupLayout layout_;
  size_t max_dirs_;
  // mount point -> (id -> relative path)
  std::map<std::string, std::unordered_map<uint64_t, std::string>> ids_;
  std::map<std::string, bool> walked_;
  uint64_t dirs_over_limit_ = 0;
};

// The whole file, or "" when it cannot be read.
std::string ReadSmallFile(const std::string& path);

}  // namespace faultline::agent
