#include "faultline/agent/identity.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

namespace faultline::agent {
namespace {

bool IsHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

bool IsContainerId(std::string_view s) { return s.size() == 64 && IsHex(s); }

std::string_view StripSuffix(std::string_view s, std::string_view suffix) {
  if (s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix) {
    s.remove_suffix(suffix.size());
  }
  return s;
}

// "pod1234abcd_..." or "kubepods-besteffort-pod<uid>.slice" -> the UID with dashes.
std::string PodUidOf(std::string_view segment) {
  const size_t at = segment.rfind("pod");
  if (at == std::string_view::npos) return {};
  std::string uid(StripSuffix(segment.substr(at + 3), ".slice"));
  std::replace(uid.begin(), uid.end(), '_', '-');
  if (uid.size() != 36) return {};
  for (size_t i = 0; i < uid.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (uid[i] == '-')) return {};
    if (!dash && !IsHex(std::string_view(&uid[i], 1))) return {};
  }
  return uid;
}

}  // namespace

ContainerRef ParseCgroupPath(std::string_view path) {
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    std::string_view seg = path.substr(0, slash);
    if (!seg.empty()) segments.push_back(seg);
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash + 1);
  }
  ContainerRef ref;
  struct Prefix {
    std::string_view prefix, runtime;
  };
  constexpr Prefix kPrefixes[] = {{"docker-", "docker"},
                                  {"cri-containerd-", "containerd"},
                                  {"containerd-", "containerd"},
                                  {"crio-", "crio"},
                                  {"libpod-", "podman"}};
  for (size_t i = segments.size(); i-- > 0;) {
    std::string_view seg = StripSuffix(segments[i], ".scope");
    if (ref.container_id.empty()) {
      for (const Prefix& p : kPrefixes) {
        if (seg.substr(0, p.prefix.size()) == p.prefix && IsContainerId(seg.substr(p.prefix.size()))) {
          ref.container_id = std::string(seg.substr(p.prefix.size()));
          ref.runtime = std::string(p.runtime);
        }
      }
      if (ref.container_id.empty() && IsContainerId(seg)) {
        ref.container_id = std::string(seg);
        if (i > 0 && segments[i - 1] == "docker") ref.runtime = "docker";
      }
    }
    if (ref.pod_uid.empty() && seg.find("pod") != std::string_view::npos) {
      ref.pod_uid = PodUidOf(seg);
    }
  }
  return ref;
}

std::string CgroupPathFromProcFile(std::string_view contents) {
  std::string unified;
  std::string deepest_v1;
  std::istringstream in{std::string(contents)};
  std::string line;
  while (std::getline(in, line)) {
    // hierarchy-id:controllers:path
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string p = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && b == a + 1) {
      unified = p;
    } else if (p.size() > deepest_v1.size()) {
      deepest_v1 = p;
    }
  }
  if (!unified.empty() && unified != "/") return unified;
  return deepest_v1.empty() ? unified : deepest_v1;
}

ProcessResolver::ProcessResolver(std::string proc_root, size_t capacity, uint64_t ttl_ns)
    : proc_root_(std::move(proc_root)), capacity_(std::max<size_t>(capacity, 1)), ttl_ns_(ttl_ns) {}

const ProcessInfo& ProcessResolver::Resolve(uint32_t pid, std::string_view comm, uint64_t cgroup_id,
                                            uint64_t now_ns) {
  auto it = cache_.find(pid);
  if (it != cache_.end() && now_ns - it->second.loaded_ns < ttl_ns_ &&
      (cgroup_id == 0 || it->second.info.cgroup_id == cgroup_id)) {
    return it->second.info;
  }
  if (it == cache_.end() && cache_.size() >= capacity_) EvictOldest();
  Entry& e = cache_[pid];
  e.loaded_ns = now_ns;
  e.info = ProcessInfo{};
  e.info.pid = pid;
  // The process's name is its main thread's (a worker thread's name, "rdk:broker-1" or
  // "node-worker", does not name a workload); the event's thread name stands in once it exited.
  std::ifstream comm_file(proc_root_ + "/" + std::to_string(pid) + "/comm");
  if (!std::getline(comm_file, e.info.comm) || e.info.comm.empty()) {
    e.info.comm = std::string(comm.substr(0, comm.find('\0')));
  }
  e.info.cgroup_id = cgroup_id;
  std::ifstream f(proc_root_ + "/" + std::to_string(pid) + "/cgroup");
  if (f) {
    std::stringstream ss;
    ss << f.rdbuf();
    e.info.cgroup_path = CgroupPathFromProcFile(ss.str());
  } else if (cgroup_id != 0 && cgroup_path_of_) {
    // Gone already (a forked worker that served one request): its cgroup from the kernel's id.
    e.info.cgroup_path = cgroup_path_of_(cgroup_id);
  }
  if (!e.info.cgroup_path.empty()) e.info.container = ParseCgroupPath(e.info.cgroup_path);
  return e.info;
}

void ProcessResolver::EvictOldest() {
  // Evict the oldest eighth in one pass so that a full cache costs O(1) amortized per insert.
  std::vector<std::pair<uint64_t, uint32_t>> ages;
  ages.reserve(cache_.size());
  for (const auto& [pid, e] : cache_) ages.emplace_back(e.loaded_ns, pid);
  const size_t n = std::max<size_t>(1, ages.size() / 8);
  std::nth_element(ages.begin(), ages.begin() + (n - 1), ages.end());
  for (size_t i = 0; i < n; ++i) cache_.erase(ages[i].second);
  evictions_ += n;
}

}  // namespace faultline::agent
