#include "faultline/agent/cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <vector>

namespace faultline::agent {
namespace {

std::string_view NextToken(std::string_view* s) {
  size_t i = 0;
  while (i < s->size() && ((*s)[i] == ' ' || (*s)[i] == '\t')) i++;
  size_t j = i;
  while (j < s->size() && (*s)[j] != ' ' && (*s)[j] != '\t') j++;
  std::string_view tok = s->substr(i, j - i);
  s->remove_prefix(j);
  return tok;
}

bool ParseU64(std::string_view s, uint64_t* v) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
    s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

uint64_t Get(const std::unordered_map<std::string, uint64_t>& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

bool HasWord(std::string_view list, std::string_view word) {
  while (!list.empty()) {
    const std::string_view tok = NextToken(&list);
    if (tok == word) return true;
    if (tok.empty()) break;
  }
  return false;
}

// "cpu,cpuacct" -> controllers of a v1 mount's options.
std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (size_t pos = 0; pos <= s.size();) {
    size_t next = s.find(sep, pos);
    if (next == std::string_view::npos) next = s.size();
    out.push_back(s.substr(pos, next - pos));
    pos = next + 1;
  }
  return out;
}

}  // namespace

std::string ReadSmallFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0 && out.size() < (1u << 20);)
    out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

std::string CgroupLayout::MountFor(std::string_view controller, int* version) const {
  // v1 calls the io controller "blkio".
  const std::string_view v1_name = controller == "io" ? "blkio" : controller;
  if (auto it = v1.find(std::string(v1_name)); it != v1.end()) {
    if (version) *version = 1;
    return it->second;
  }
  const std::string_view v2_name = controller == "blkio"     ? "io"
                                   : controller == "cpuacct" ? "cpu"
                                                             : controller;
  // v2 keeps CPU usage (cpu.stat usage_usec) in every cgroup, the cpu controller or not.
  if (!unified.empty() && (HasWord(unified_controllers, v2_name) || v2_name == "cpu")) {
    if (version) *version = 2;
    return unified;
  }
  if (version) *version = 0;
  return {};
}

void CgroupLayout::SetUnifiedControllers(std::string_view text) {
  unified_controllers = std::string(text);
  while (!unified_controllers.empty() &&
         (unified_controllers.back() == '\n' || unified_controllers.back() == ' '))
    unified_controllers.pop_back();
}

CgroupLayout ParseCgroupMounts(std::string_view mounts, std::string_view unified_controllers) {
  CgroupLayout layout;
  layout.SetUnifiedControllers(unified_controllers);
  while (!mounts.empty()) {
    const size_t nl = mounts.find('\n');
    std::string_view line = mounts.substr(0, nl);
    mounts.remove_prefix(nl == std::string_view::npos ? mounts.size() : nl + 1);
    NextToken(&line);  // device
    const std::string_view point = NextToken(&line);
    const std::string_view type = NextToken(&line);
    const std::string_view options = NextToken(&line);
    if (point.empty()) continue;
    if (type == "cgroup2") {
      if (layout.unified.empty()) layout.unified = std::string(point);
    } else if (type == "cgroup") {
      for (std::string_view opt : Split(options, ',')) {
        if (opt == "cpu" || opt == "cpuacct" || opt == "memory" || opt == "blkio" ||
            opt == "cpuset" || opt == "pids") {
          layout.v1.try_emplace(std::string(opt), std::string(point));
        }
      }
    }
  }
  return layout;
}

std::unordered_map<std::string, uint64_t> ParseKeyValues(std::string_view text) {
  std::unordered_map<std::string, uint64_t> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    const std::string_view key = NextToken(&line);
    const std::string_view value = NextToken(&line);
    uint64_t v = 0;
    if (!key.empty() && ParseU64(value, &v)) out[std::string(key)] = v;
  }
  return out;
}

uint64_t ParseSingleValue(std::string_view text, uint64_t otherwise) {
  uint64_t v = 0;
  return ParseU64(text, &v) ? v : otherwise;
}

CpuFigures ParseCpuStatV2(std::string_view cpu_stat) {
  CpuFigures f;
  const auto kv = ParseKeyValues(cpu_stat);
  if (!kv.count("usage_usec")) return f;
  f.valid = true;
  f.usage_ns = Get(kv, "usage_usec") * 1000;
  f.periods = Get(kv, "nr_periods");
  f.throttled_periods = Get(kv, "nr_throttled");
  f.throttled_ns = Get(kv, "throttled_usec") * 1000;
  return f;
}

double ParseCfsQuotaV1(std::string_view quota_us, std::string_view period_us) {
  uint64_t quota = 0, period = 0;
  // -1 (no quota) does not parse as unsigned.
  if (!ParseU64(quota_us, &quota) || !ParseU64(period_us, &period) || period == 0) return 0;
  return static_cast<double>(quota) / static_cast<double>(period);
}

double ParseCpuMaxV2(std::string_view cpu_max) {
  const size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return 0;
  return ParseCfsQuotaV1(cpu_max.substr(0, space), cpu_max.substr(space + 1));  // "max": no limit
}

CpuFigures ParseCpuStatV1(std::string_view cpu_stat, std::string_view cpuacct_usage) {
  CpuFigures f;
  const auto kv = ParseKeyValues(cpu_stat);
  uint64_t usage = 0;
  const bool has_usage = ParseU64(cpuacct_usage, &usage);
  if (kv.empty() && !has_usage) return f;
  f.valid = true;
  f.usage_ns = usage;
  f.periods = Get(kv, "nr_periods");
  f.throttled_periods = Get(kv, "nr_throttled");
  f.throttled_ns = Get(kv, "throttled_time");
  return f;
}

MemoryFigures ParseMemoryV2(std::string_view current, std::string_view max, std::string_view stat,
                            std::string_view events) {
  MemoryFigures m;
  if (!ParseU64(current, &m.usage)) return m;
  m.valid = true;
  m.limit = ParseSingleValue(max, 0);
  const auto s = ParseKeyValues(stat);
  const uint64_t inactive = Get(s, "inactive_file");
  m.working_set = m.usage > inactive ? m.usage - inactive : 0;
  m.major_faults = Get(s, "pgmajfault");
  m.oom_kills = Get(ParseKeyValues(events), "oom_kill");
  return m;
}

MemoryFigures ParseMemoryV1(std::string_view usage, std::string_view limit, std::string_view stat,
                            std::string_view oom_control) {
  MemoryFigures m;
  if (!ParseU64(usage, &m.usage)) return m;
  m.valid = true;
  m.limit = ParseSingleValue(limit, 0);
  if (m.limit >= (uint64_t{1} << 62)) m.limit = 0;  // PAGE_COUNTER_MAX * page size: no limit
  const auto s = ParseKeyValues(stat);
  const uint64_t inactive =
      s.count("total_inactive_file") ? Get(s, "total_inactive_file") : Get(s, "inactive_file");
  m.working_set = m.usage > inactive ? m.usage - inactive : 0;
  m.major_faults = s.count("total_pgmajfault") ? Get(s, "total_pgmajfault") : Get(s, "pgmajfault");
  m.oom_kills = Get(ParseKeyValues(oom_control), "oom_kill");
  return m;
}

bool ParseProcStatCpu(std::string_view proc_stat, uint64_t* busy, uint64_t* total) {
  if (proc_stat.rfind("cpu ", 0) != 0) return false;
  const std::string_view line = proc_stat.substr(0, proc_stat.find('\n'));
  uint64_t v[10] = {};
  size_t n = 0;
  std::string_view rest = line.substr(4);
  while (n < 10 && !rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const size_t end = std::min(rest.find(' '), rest.size());
    const uint64_t x = ParseSingleValue(rest.substr(0, end), UINT64_MAX);
    if (x == UINT64_MAX) break;
    v[n++] = x;
    rest.remove_prefix(end);
  }
  if (n < 4) return false;
  // user nice system idle iowait irq softirq steal (guest time is inside user already)
  *total = 0;
  for (size_t i = 0; i < std::min<size_t>(n, 8); ++i) *total += v[i];
  *busy = *total - v[3] - (n > 4 ? v[4] : 0);
  return true;
}

CgroupLayout ReadCgroupLayout(const std::string& proc_root) {
  CgroupLayout layout = ParseCgroupMounts(ReadSmallFile(proc_root + "/mounts"), "");
  if (!layout.unified.empty())
    layout.SetUnifiedControllers(ReadSmallFile(layout.unified + "/cgroup.controllers"));
  return layout;
}

CgroupReader::CgroupReader(CgroupLayout layout, size_t max_dirs)
    : layout_(std::move(layout)), max_dirs_(max_dirs) {}

void CgroupReader::Walk(const std::string& mount) {
  auto& ids = ids_[mount];
  ids.clear();
  std::vector<std::string> todo = {"/"};
  size_t dirs = 0;
  while (!todo.empty()) {
    const std::string rel = std::move(todo.back());
    todo.pop_back();
    const std::string full = rel == "/" ? mount : mount + rel;
    struct stat st {};
    if (stat(full.c_str(), &st) != 0) continue;
    if (++dirs > max_dirs_) {
      dirs_over_limit_++;
      continue;
    }
    ids[st.st_ino] = rel;
    DIR* d = opendir(full.c_str());
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
      todo.push_back((rel == "/" ? "" : rel) + "/" + e->d_name);
    }
    closedir(d);
  }
}

const std::string* CgroupReader::PathOf(std::string_view controller, uint64_t id) {
  return PathIn(layout_.MountFor(controller), id);
}

const std::string* CgroupReader::PathOfUnified(uint64_t id) { return PathIn(layout_.unified, id); }

const std::string* CgroupReader::PathIn(const std::string& mount, uint64_t id) {
  if (mount.empty()) return nullptr;
  auto find = [&]() -> const std::string* {
    auto m = ids_.find(mount);
    if (m == ids_.end()) return nullptr;
    auto it = m->second.find(id);
    return it == m->second.end() ? nullptr : &it->second;
  };
  if (const std::string* p = find()) return p;
  if (walked_[mount]) return nullptr;
  walked_[mount] = true;
  Walk(mount);
  return find();
}

CpuFigures CgroupReader::ReadCpu(const std::string& path) const {
  int version = 0;
  const std::string mount = layout_.MountFor("cpu", &version);
  if (mount.empty()) return {};
  const std::string dir = mount + (path == "/" ? "" : path);
  if (version == 2) return ParseCpuStatV2(ReadSmallFile(dir + "/cpu.stat"));
  const std::string acct = layout_.MountFor("cpuacct");
  return ParseCpuStatV1(ReadSmallFile(dir + "/cpu.stat"),
                        acct.empty()
                            ? std::string()
                            : ReadSmallFile(acct + (path == "/" ? "" : path) + "/cpuacct.usage"));
}

double CgroupReader::ReadCpuLimit(const std::string& path) const {
  int version = 0;
  const std::string mount = layout_.MountFor("cpu", &version);
  if (mount.empty()) return 0;
  const std::string dir = mount + (path == "/" ? "" : path);
  if (version == 2) return ParseCpuMaxV2(ReadSmallFile(dir + "/cpu.max"));
  return ParseCfsQuotaV1(ReadSmallFile(dir + "/cpu.cfs_quota_us"), ReadSmallFile(dir + "/cpu.cfs_period_us"));
}

MemoryFigures CgroupReader::ReadMemory(const std::string& path) const {
  int version = 0;
  const std::string mount = layout_.MountFor("memory", &version);
  if (mount.empty()) return {};
  const std::string dir = mount + (path == "/" ? "" : path);
  if (version == 2) {
    return ParseMemoryV2(ReadSmallFile(dir + "/memory.current"), ReadSmallFile(dir + "/memory.max"),
                         ReadSmallFile(dir + "/memory.stat"),
                         ReadSmallFile(dir + "/memory.events"));
  }
  return ParseMemoryV1(
      ReadSmallFile(dir + "/memory.usage_in_bytes"), ReadSmallFile(dir + "/memory.limit_in_bytes"),
      ReadSmallFile(dir + "/memory.stat"), ReadSmallFile(dir + "/memory.oom_control"));
}

}  // namespace faultline::agent
