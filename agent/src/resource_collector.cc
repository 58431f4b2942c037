#include "resource_collector.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "faultline/agent/identity.h"
#include "faultline/common/text.h"

namespace faultline::agent {
namespace {

constexpr uint64_t kForgetNs = 60'000'000'000ULL;
constexpr uint32_t kMinorBits = 20;

fl_hist Minus(const fl_hist& cur, const fl_hist& prev) {
  if (cur.count < prev.count) return cur;  // the entry was recreated: all of it is new
  fl_hist d{};
  d.count = cur.count - prev.count;
  d.sum_ns = cur.sum_ns - prev.sum_ns;
  for (int i = 0; i < FL_HIST_BUCKETS; ++i)
    d.buckets[i] = cur.buckets[i] >= prev.buckets[i] ? cur.buckets[i] - prev.buckets[i] : 0;
  return d;
}

void Accumulate(const fl_hist& h, fl_hist* into) {
  into->count += h.count;
  into->sum_ns += h.sum_ns;
  for (int i = 0; i < FL_HIST_BUCKETS; ++i) into->buckets[i] += h.buckets[i];
}

void AddTo(const fl_hist& h, v1::Log2Histogram* out) {
  out->set_count(out->count() + h.count);
  out->set_sum_ns(out->sum_ns() + h.sum_ns);
  int last = FL_HIST_BUCKETS;
  while (last > 0 && h.buckets[last - 1] == 0) last--;
  while (out->buckets_size() < last) out->add_buckets(0);
  for (int i = 0; i < last; ++i) out->set_buckets(i, out->buckets(i) + h.buckets[i]);
}

void AddIo(const fl_io_key& k, uint64_t bytes, const fl_hist& lat, const std::string& device,
           std::map<uint32_t, v1::BlockIo>* by_dev) {
  v1::BlockIo& b = (*by_dev)[k.dev];
  b.set_major(k.dev >> kMinorBits);
  b.set_minor(k.dev & ((1u << kMinorBits) - 1));
  b.set_device(device);
  if (k.op == FL_IO_READ) {
    b.set_read_bytes(b.read_bytes() + bytes);
    b.set_read_ops(b.read_ops() + lat.count);
  } else if (k.op == FL_IO_WRITE) {
    b.set_write_bytes(b.write_bytes() + bytes);
    b.set_write_ops(b.write_ops() + lat.count);
  }
  AddTo(lat, b.mutable_latency());
}

}  // namespace

ResourceCollector::ResourceCollector(CgroupReader reader, std::string proc_root, size_t max_cgroups)
    : reader_(std::move(reader)), proc_root_(std::move(proc_root)), max_cgroups_(max_cgroups) {}

std::string ResourceCollector::DeviceName(uint32_t dev) {
  auto it = device_names_.find(dev);
  if (it != device_names_.end()) return it->second;
  const std::string link = "/sys/dev/block/" + std::to_string(dev >> kMinorBits) + ":" +
                           std::to_string(dev & ((1u << kMinorBits) - 1));
  char buf[PATH_MAX];
  const ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  std::string name;
  if (n > 0) {
    name.assign(buf, static_cast<size_t>(n));
    name = name.substr(name.rfind('/') + 1);
  }
  if (device_names_.size() < 4096) device_names_.emplace(dev, name);
  return name;
}

void ResourceCollector::Collect(const std::vector<RunqSample>& runq,
                                const std::vector<IoSample>& io, uint64_t now_ns,
                                uint64_t interval_ns, Output* out,
                                std::vector<uint64_t>* forget_runq,
                                std::vector<fl_io_key>* forget_io) {
  reader_.Tick();
  out->cgroups.clear();
  out->machine.Clear();
  out->cgroups_over_limit = out->unknown_cgroups = 0;
  forget_runq->clear();
  forget_io->clear();

  struct Agg {
    fl_hist runq{};
    std::map<uint32_t, v1::BlockIo> io;
  };
  std::map<std::string, Agg> by_path;
  fl_hist machine_runq{};
  auto path_of = [&](const char* controller, uint64_t id) -> std::string {
    if (const std::string* p = reader_.PathOf(controller, id)) return *p;
    out->unknown_cgroups++;
    return "";
  };

  for (const RunqSample& s : runq) {
    Tracked<fl_hist>& prev = runq_prev_[s.cgroup_id];
    const fl_hist d = Minus(s.hist, prev.value);
    prev.value = s.hist;
    if (d.count == 0) {
      if (prev.changed_ns && now_ns - prev.changed_ns > kForgetNs) {
        forget_runq->push_back(s.cgroup_id);
        runq_prev_.erase(s.cgroup_id);
      }
      continue;
    }
    prev.changed_ns = now_ns;
    const std::string path = path_of("cpu", s.cgroup_id);
    if (!OnMachine(path)) continue;  // another emulated machine's
    Accumulate(d, &machine_runq);
    if (!path.empty()) Accumulate(d, &by_path[path].runq);
  }

  std::map<uint32_t, v1::BlockIo> machine_io;
  for (const IoSample& s : io) {
    const std::string key(reinterpret_cast<const char*>(&s.key), sizeof(s.key));
    Tracked<fl_io_stats>& prev = io_prev_[key];
    const fl_hist d = Minus(s.stats.latency, prev.value.latency);
    const uint64_t bytes = s.stats.latency.count < prev.value.latency.count
                               ? s.stats.bytes
                               : CounterDelta(s.stats.bytes, prev.value.bytes);
    prev.value = s.stats;
    if (d.count == 0) {
      if (prev.changed_ns && now_ns - prev.changed_ns > kForgetNs) {
        forget_io->push_back(s.key);
        io_prev_.erase(key);
      }
      continue;
    }
    prev.changed_ns = now_ns;
    const std::string path = path_of("io", s.key.cgroup_id);
    if (!OnMachine(path)) continue;
    const std::string device = DeviceName(s.key.dev);
    AddIo(s.key, bytes, d, device, &machine_io);
    if (!path.empty()) AddIo(s.key, bytes, d, device, &by_path[path].io);
  }

  // The busiest cgroups first when there are more than the bound.
  std::vector<std::pair<uint64_t, const std::string*>> order;
  for (const auto& [path, agg] : by_path) order.emplace_back(agg.runq.count, &path);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : *a.second < *b.second;
  });
  if (order.size() > max_cgroups_) {
    out->cgroups_over_limit = order.size() - max_cgroups_;
    order.resize(max_cgroups_);
  }
  int cpu_version = 0, memory_version = 0;
  reader_.layout().MountFor("cpu", &cpu_version);
  reader_.layout().MountFor("memory", &memory_version);
  for (const auto& [count, path_ptr] : order) {
    const std::string& path = *path_ptr;
    const Agg& agg = by_path[path];
    v1::CgroupResources c;
    c.set_interval_ns(interval_ns);
    c.set_cgroup_path(ValidUtf8(path));
    const ContainerRef ref = ParseCgroupPath(path);
    c.set_container_id(ref.container_id);
    c.set_container_runtime(ref.runtime);
    c.set_pod_uid(ref.pod_uid);
    c.set_cgroup_version(static_cast<uint32_t>(std::max(cpu_version, memory_version)));
    auto [prev_it, fresh] = cgroup_prev_.try_emplace(path);
    CgroupPrev& prev = prev_it->second;
    const CpuFigures cpu = reader_.ReadCpu(path);
    if (cpu.valid && !fresh && prev.cpu.valid) {
      c.set_cpu_usage_ns(CounterDelta(cpu.usage_ns, prev.cpu.usage_ns));
      c.set_cpu_periods(CounterDelta(cpu.periods, prev.cpu.periods));
      c.set_cpu_throttled_periods(CounterDelta(cpu.throttled_periods, prev.cpu.throttled_periods));
      c.set_cpu_throttled_ns(CounterDelta(cpu.throttled_ns, prev.cpu.throttled_ns));
    }
    prev.cpu = cpu;
    AddTo(agg.runq, c.mutable_runq_latency());
    const MemoryFigures mem = reader_.ReadMemory(path);
    if (mem.valid) {
      c.set_memory_usage_bytes(mem.usage);
      c.set_memory_limit_bytes(mem.limit);
      c.set_memory_working_set_bytes(mem.working_set);
      if (!fresh && prev.memory.valid) {
        c.set_major_page_faults(CounterDelta(mem.major_faults, prev.memory.major_faults));
        c.set_oom_kills(CounterDelta(mem.oom_kills, prev.memory.oom_kills));
      }
    }
    prev.memory = mem;
    for (const auto& [dev, b] : agg.io) *c.add_block_io() = b;
    out->cgroups.push_back(std::move(c));
  }
  // Cgroups not active for a minute are forgotten (their next interval primes again).
  if (cgroup_prev_.size() > 4 * max_cgroups_) cgroup_prev_.clear();

  v1::MachineResources& m = out->machine;
  m.set_interval_ns(interval_ns);
  m.set_cpus(static_cast<uint32_t>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))));
  if (!machine_cgroup_.empty()) {
    CollectMachineCgroup(interval_ns, &m);
    AddTo(machine_runq, m.mutable_runq_latency());
    for (const auto& [dev, b] : machine_io) *m.add_block_io() = b;
    return;
  }
  uint64_t busy = 0, total = 0;
  const uint64_t ns_per_tick =
      1'000'000'000ULL / static_cast<uint64_t>(std::max(1L, sysconf(_SC_CLK_TCK)));
  const uint64_t majfault = ParseKeyValues(ReadSmallFile(proc_root_ + "/vmstat"))["pgmajfault"];
  if (ParseProcStatCpu(ReadSmallFile(proc_root_ + "/stat"), &busy, &total) && machine_primed_) {
    m.set_cpu_busy_ns(CounterDelta(busy, stat_busy_prev_) * ns_per_tick);
    m.set_cpu_total_ns(CounterDelta(total, stat_total_prev_) * ns_per_tick);
    m.set_major_page_faults(CounterDelta(majfault, majfault_prev_));
  }
  stat_busy_prev_ = busy, stat_total_prev_ = total, majfault_prev_ = majfault;
  machine_primed_ = true;
  auto meminfo = ParseKeyValues(ReadSmallFile(proc_root_ + "/meminfo"));  // "MemTotal:" keys, kB
  m.set_memory_total_bytes(meminfo["MemTotal:"] * 1024);
  m.set_memory_available_bytes(meminfo["MemAvailable:"] * 1024);
  AddTo(machine_runq, m.mutable_runq_latency());
  for (const auto& [dev, b] : machine_io) *m.add_block_io() = b;
}

bool ResourceCollector::OnMachine(const std::string& path) const {
  if (machine_cgroup_.empty()) return true;
  return path.starts_with(machine_cgroup_) &&
         (path.size() == machine_cgroup_.size() || path[machine_cgroup_.size()] == '/');
}

void ResourceCollector::CollectMachineCgroup(uint64_t interval_ns, v1::MachineResources* m) {
  // The subtree's CPU limit is the machine's size (the host's CPUs when it has none, or more).
  const double host_cpus = static_cast<double>(m->cpus());
  const double limit = reader_.ReadCpuLimit(machine_cgroup_);
  const double cores = limit > 0 ? std::min(limit, host_cpus) : host_cpus;
  m->set_cpus(static_cast<uint32_t>(std::max(1.0, std::round(cores))));
  const CpuFigures cpu = reader_.ReadCpu(machine_cgroup_);
  const MemoryFigures mem = reader_.ReadMemory(machine_cgroup_);
  if (cpu.valid && machine_cpu_prev_.valid && interval_ns > 0) {
    m->set_cpu_busy_ns(CounterDelta(cpu.usage_ns, machine_cpu_prev_.usage_ns));
    m->set_cpu_total_ns(static_cast<uint64_t>(static_cast<double>(interval_ns) * cores));
    if (mem.valid) m->set_major_page_faults(CounterDelta(mem.major_faults, machine_majfault_prev_));
  }
  machine_cpu_prev_ = cpu;
  if (mem.valid) machine_majfault_prev_ = mem.major_faults;
  auto meminfo = ParseKeyValues(ReadSmallFile(proc_root_ + "/meminfo"));  // kB
  const uint64_t host_total = meminfo["MemTotal:"] * 1024;
  if (mem.valid && mem.limit > 0 && mem.limit < host_total) {
    m->set_memory_total_bytes(mem.limit);
    m->set_memory_available_bytes(mem.limit > mem.working_set ? mem.limit - mem.working_set : 0);
  } else {  // no limit of its own: the host's memory is what it can have
    m->set_memory_total_bytes(host_total);
    m->set_memory_available_bytes(meminfo["MemAvailable:"] * 1024);
  }
}

v1::OomKill ResourceCollector::Oom(const fl_oom_event& e) {
  reader_.Tick();  // a cgroup made for the victim may be new
  v1::OomKill k;
  k.set_victim_comm(ValidUtf8(std::string_view(e.victim_comm, strnlen(e.victim_comm, sizeof e.victim_comm))));
  k.set_trigger_pid(e.trigger_pid);
  k.set_trigger_comm(std::string(e.trigger_comm, strnlen(e.trigger_comm, sizeof e.trigger_comm)));
  const uint64_t page_kb = static_cast<uint64_t>(std::max(1L, sysconf(_SC_PAGESIZE))) / 1024;
  k.set_total_vm_kb(e.total_vm_pages * page_kb);
  k.set_anon_rss_kb(e.anon_rss_pages * page_kb);
  if (const std::string* path = reader_.PathOf("memory", e.memcg_id)) {
    k.set_cgroup_path(ValidUtf8(*path));
    const ContainerRef ref = ParseCgroupPath(*path);
    k.set_container_id(ref.container_id);
    k.set_container_runtime(ref.runtime);
    k.set_pod_uid(ref.pod_uid);
  }
  return k;
}

}  // namespace faultline::agent
