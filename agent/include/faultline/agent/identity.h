// Who a process is: its cgroup, and the container and Kubernetes pod that cgroup belongs to.
//
// ParseCgroupPath understands the cgroup path forms of docker, containerd and cri-o under both
// the cgroupfs and the systemd cgroup drivers. ProcessResolver reads /proc/<pid>/cgroup once per
// process and caches the answer (bounded; the oldest entries are evicted and counted).
// ProcessResolver is not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace faultline::agent {

struct ContainerRef {
  std::string container_id;  // 64 lowercase hex characters, or empty
  std::string runtime;       // "docker", "containerd", "crio", or empty when the path does not say
  std::string pod_uid;       // with dashes, or empty
};

// Extracts container id, runtime and pod UID from a cgroup path such as
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope".
ContainerRef ParseCgroupPath(std::string_view path);

// Picks the path that identifies a process from the text of /proc/<pid>/cgroup: the unified
// ("0::") hierarchy's unless it is "/" and a v1 controller has a deeper one.
std::string CgroupPathFromProcFile(std::string_view contents);

struct ProcessInfo {
  uint32_t pid = 0;
  std::string comm;
  uint64_t cgroup_id = 0;
  std::string cgroup_path;
  ContainerRef container;
};

class ProcessResolver {
 public:
  // `proc_root` is where procfs is mounted (a host's /proc mounted elsewhere in a container).
  // Default capacity: 16384 processes; entries older than `ttl_ns` are re-read (pids get reused).
  explicit ProcessResolver(std::string proc_root = "/proc", size_t capacity = 16384,
                           uint64_t ttl_ns = 60'000'000'000ULL);

  // The identity of `pid`. `comm` and `cgroup_id` come from the kernel event and are used when the
  // process has already exited. The reference is valid until the next call.
  const ProcessInfo& Resolve(uint32_t pid, std::string_view comm, uint64_t cgroup_id, uint64_t now_ns);

  // How a process that already exited is placed: its kernel cgroup id (from the event) -> the
  // cgroup path, "" when unknown. Without one, such a process has no cgroup path.
  void SetCgroupPathOf(std::function<std::string(uint64_t)> f) { cgroup_path_of_ = std::move(f); }

  uint64_t evictions() const { return evictions_; }
  size_t size() const { return cache_.size(); }

 private:
  struct Entry {
    ProcessInfo info;
    uint64_t loaded_ns = 0;
  };
  void EvictOldest();

  std::string proc_root_;
  size_t capacity_;
  uint64_t ttl_ns_;
  std::unordered_map<uint32_t, Entry> cache_;
  std::function<std::string(uint64_t)> cgroup_path_of_;
  uint64_t evictions_ = 0;
};

}  // namespace faultline::agent
