// Turns the resource programs' cumulative maps and the cgroup and /proc files into per-interval
// CgroupResources and MachineResources summaries, and OOM kill events into OomKill messages.
// Private to the agent library. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "events.pb.h"
#include "faultline/agent/cgroups.h"
#include "faultline/agent/kernel_probes.h"

namespace faultline::agent {

// The growth of a cumulative counter since `prev`; a counter that went back was reset (its map
// entry or cgroup was recreated), so all of `cur` is new.
inline uint64_t CounterDelta(uint64_t cur, uint64_t prev) { return cur >= prev ? cur - prev : cur; }

class ResourceCollector {
 public:
  // At most `max_cgroups` cgroups are reported per interval (the busiest by run-queue samples).
  ResourceCollector(CgroupReader reader, std::string proc_root, size_t max_cgroups = 512);

  struct Output {
    std::vector<v1::CgroupResources> cgroups;
    v1::MachineResources machine;
    uint64_t cgroups_over_limit = 0;  // active cgroups left out of this interval
    uint64_t unknown_cgroups = 0;     // kernel ids no hierarchy walk could name
  };

  // Deltas since the previous call. `forget_*` receive map entries quiet for a minute.
  void Collect(const std::vector<RunqSample>& runq, const std::vector<IoSample>& io,
               uint64_t now_ns, uint64_t interval_ns, Output* out,
               std::vector<uint64_t>* forget_runq, std::vector<fl_io_key>* forget_io);

  // The victim's memory cgroup resolved to a path and a container.
  v1::OomKill Oom(const fl_oom_event& e);

  // An emulated machine (the fault-injection lab): only cgroups at or under `path` (relative to
  // each hierarchy's root, "/faultline-lab/m1") are reported, and the machine's figures are that
  // subtree's: its CPU use against its CPU limit, its memory against its memory limit, its run
  // queue, block I/O and major faults. "" (the default): the whole host.
  void SetMachineCgroup(std::string path) { machine_cgroup_ = std::move(path); }
  // Whether `path` is on this machine (always, without a machine cgroup).
  bool OnMachine(const std::string& path) const;

 private:
  struct CgroupPrev {
    CpuFigures cpu;
    MemoryFigures memory;
  };
  template <typename V>
  struct Tracked {
    V value{};
    uint64_t changed_ns = 0;
  };
  std::string DeviceName(uint32_t dev);
  void CollectMachineCgroup(uint64_t interval_ns, v1::MachineResources* m);

  CgroupReader reader_;
  std::string proc_root_;
  size_t max_cgroups_;
  std::unordered_map<uint64_t, Tracked<fl_hist>> runq_prev_;
  std::map<std::string, Tracked<fl_io_stats>> io_prev_;  // by key bytes
  std::unordered_map<std::string, CgroupPrev> cgroup_prev_;
  std::unordered_map<uint32_t, std::string> device_names_;
  std::string machine_cgroup_;
  CpuFigures machine_cpu_prev_;
  uint64_t machine_majfault_prev_ = 0;
  uint64_t stat_busy_prev_ = 0, stat_total_prev_ = 0, majfault_prev_ = 0;
  bool machine_primed_ = false;
};

}  // namespace faultline::agent
