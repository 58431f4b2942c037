#include "faultline/agent/kernel_probes.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unordered_map>
#include <utility>

#include "faultline/common/log.h"
#include "resource.skel.h"
#include "sock_io.skel.h"
#include "tcp_health.skel.h"

namespace faultline::agent {
namespace {

static_assert(sizeof(fl_tuple) == 44, "fl_tuple layout is shared with the kernel");
static_assert(sizeof(fl_sock_event) == 152, "fl_sock_event layout is shared with the kernel");
static_assert(sizeof(fl_tcp_event) == 104, "fl_tcp_event layout is shared with the kernel");
static_assert(sizeof(fl_flow_key) == 40 && sizeof(fl_flow_stats) == 64, "flow map layout");
static_assert(sizeof(fl_hist) == 272 && sizeof(fl_io_key) == 16 && sizeof(fl_io_stats) == 280,
              "resource map layout");
static_assert(sizeof(fl_sock_owner) == 32, "socket-owner map layout is shared with the kernel");
static_assert(sizeof(fl_oom_event) == 72, "fl_oom_event layout is shared with the kernel");

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  char line[1024];
  int n = vsnprintf(line, sizeof(line), fmt, args);
  if (n > 0 && line[std::min<size_t>(n, sizeof(line)) - 1] == '\n') line[std::min<size_t>(n, sizeof(line)) - 1] = 0;
  if (level == LIBBPF_WARN) {
    spdlog::warn("libbpf: {}", line);
  } else {
    spdlog::debug("libbpf: {}", line);
  }
  return 0;
}

// Why the kernel answered EPERM to bpf() or perf_event_open() for a process running as root: the
// first of a missing CAP_BPF, a missing CAP_PERFMON (CAP_SYS_ADMIN stands for both, as in the
// kernel's bpf_capable() and perfmon_capable()), a seccomp filter (container runtimes' default
// profiles allow bpf() only with CAP_SYS_ADMIN), or else a security module. Read from
// /proc/self/status, so that no libcap is needed. One sentence, starting "the kernel refused to".
std::string WhyRefused(const std::string& what) {
  constexpr int kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;
  uint64_t effective = 0;
  int seccomp = 0;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("CapEff:")) effective = strtoull(line.c_str() + 7, nullptr, 16);
    if (line.starts_with("Seccomp:")) seccomp = atoi(line.c_str() + 8);
  }
  auto has = [&](int cap) {
    return ((effective >> cap) & 1) != 0 || ((effective >> kCapSysAdmin) & 1) != 0;
  };
  const std::string refused = "the kernel refused to " + what + ": ";
  for (auto [cap, cap_name] :
       {std::pair{kCapBpf, "CAP_BPF"}, std::pair{kCapPerfmon, "CAP_PERFMON"}}) {
    if (!has(cap))
      return refused + "this process lacks " + cap_name + " (run it as root, or add " + cap_name +
             " to the container's capabilities)";
  }
  if (seccomp == 2)
    return refused +
           "this process has CAP_BPF and CAP_PERFMON but a seccomp filter blocks bpf() or "
           "perf_event_open() (run the container with a seccomp profile that allows both, such as "
           "deploy/seccomp/faultline-agent.json)";
  return refused +
         "this process has CAP_BPF and CAP_PERFMON and no seccomp filter, so a security module "
         "(lockdown, SELinux, AppArmor) refused it";
}

// One RAII owner for any bpftool-generated skeleton.
template <typename Skel, void (*Destroy)(Skel*)>
struct SkeletonPtr {
  Skel* skel = nullptr;
  SkeletonPtr() = default;
  SkeletonPtr(const SkeletonPtr&) = delete;
  SkeletonPtr& operator=(const SkeletonPtr&) = delete;
  ~SkeletonPtr() {
    if (skel) Destroy(skel);
  }
};

template <typename Skel, Skel* (*OpenFn)(const bpf_object_open_opts*), int (*LoadFn)(Skel*),
          int (*AttachFn)(Skel*)>
Status LoadAndAttach(Skel** out, const char* name, const std::function<void(Skel*)>& configure) {
  Skel* s = OpenFn(nullptr);
  if (!s) return Unavailable(std::string("cannot open the ") + name + " BPF object: " + strerror(errno));
  *out = s;
  configure(s);
  if (int err = LoadFn(s)) {
    // No privilege or no BPF in this kernel is the machine's; anything else (EINVAL, E2BIG,
    // EACCES from the verifier's checks …) is a program this kernel's verifier refused.
    if (-err == EPERM)
      return PermissionDenied(WhyRefused(std::string("load the ") + name + " BPF programs"));
    if (-err == ENOSYS || -err == EOPNOTSUPP)
      return Unavailable(std::string("this kernel has no BPF support for the ") + name +
                         " programs (" + strerror(-err) + ")");
    return Internal(std::string("the kernel's verifier refused the ") + name + " BPF programs (" +
                    strerror(-err) + "); run with --log-level debug for the verifier log");
  }
  if (int err = AttachFn(s)) {
    constexpr int kKernelEnotsupp = 524;  // ENOTSUPP: kernel-internal, not in the C library's errno
    if (-err == EPERM || -err == EACCES)
      return PermissionDenied(
          WhyRefused(std::string("attach the ") + name + " BPF programs to their tracepoints"));
    if (-err == ENOENT || -err == EOPNOTSUPP || -err == kKernelEnotsupp)
      return Unavailable(std::string("this kernel lacks a tracepoint the ") + name +
                         " BPF programs attach to (" + strerror(-err) + ")");
    return Internal(std::string("cannot attach the ") + name + " BPF programs to their tracepoints: " +
                    strerror(-err));
  }
  return Status::Ok();
}

}  // namespace

Status CheckKernelPrerequisites() {
  if (geteuid() != 0) {
    return PermissionDenied("must run as root: it loads eBPF programs into the kernel");
  }
  struct stat st;
  if (stat("/sys/kernel/btf/vmlinux", &st) != 0) {
    return Unavailable("this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing); "
                       "faultline needs a kernel built with CONFIG_DEBUG_INFO_BTF=y");
  }
  if (stat("/sys/kernel/tracing/events", &st) != 0 &&
      mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0) {
    return Unavailable(
        std::string(
            "tracefs is not mounted at /sys/kernel/tracing and this process cannot mount it (") +
        strerror(errno) +
        "): mount it there, or in a container mount the host's /sys/kernel/tracing");
  }
  return Status::Ok();
}

struct KernelProbes::Impl {
  SkeletonPtr<sock_io, sock_io__destroy> sock;
  SkeletonPtr<tcp_health, tcp_health__destroy> tcp;
  SkeletonPtr<resource, resource__destroy> res;
  ring_buffer* rings = nullptr;
  SockHandler on_sock;
  TcpHandler on_tcp;
  OomHandler on_oom;
  btf* vmlinux = nullptr;
  std::unordered_map<uint32_t, std::string> reason_names;
  int ncpus = 1;

  ~Impl() {
    if (rings) ring_buffer__free(rings);
    if (vmlinux) btf__free(vmlinux);
  }

  static int OnSock(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    if (size < sizeof(fl_sock_event)) return 0;
    const auto* e = static_cast<const fl_sock_event*>(data);
    const size_t payload = std::min<size_t>(e->captured, size - sizeof(fl_sock_event));
    self->on_sock(*e, std::string_view(static_cast<const char*>(data) + sizeof(fl_sock_event), payload));
    return 0;
  }
  static int OnTcp(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    if (size < sizeof(fl_tcp_event)) return 0;
    self->on_tcp(*static_cast<const fl_tcp_event*>(data));
    return 0;
  }
  static int OnOom(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Impl*>(ctx);
    if (size < sizeof(fl_oom_event) || !self->on_oom) return 0;
    self->on_oom(*static_cast<const fl_oom_event*>(data));
    return 0;
  }
};

Result<std::unique_ptr<KernelProbes>> KernelProbes::Open(const ProbeOptions& options,
                                                         SockHandler on_sock, TcpHandler on_tcp,
                                                         OomHandler on_oom) {
  FAULTLINE_RETURN_IF_ERROR(CheckKernelPrerequisites());
  if (options.capture_bytes > FL_MAX_CAPTURE) {
    return InvalidArgument("--capture-bytes " + std::to_string(options.capture_bytes) +
                           ": must be at most " + std::to_string(FL_MAX_CAPTURE));
  }
  if (options.ring_bytes < 4096 || (options.ring_bytes & (options.ring_bytes - 1)) != 0) {
    return InvalidArgument("ring buffer size " + std::to_string(options.ring_bytes) +
                           ": must be a power of two of at least 4096 bytes");
  }
  libbpf_set_print(LibbpfPrint);
  std::unique_ptr<KernelProbes> probes(new KernelProbes());
  auto& impl = probes->impl_;
  impl = std::make_unique<Impl>();
  impl->on_sock = std::move(on_sock);
  impl->on_tcp = std::move(on_tcp);
  impl->on_oom = std::move(on_oom);
  impl->ncpus = libbpf_num_possible_cpus();

  FAULTLINE_RETURN_IF_ERROR((LoadAndAttach<sock_io, sock_io__open_opts, sock_io__load, sock_io__attach>(
      &impl->sock.skel, "sock_io", [&](sock_io* s) {
        s->rodata->cfg_capture_bytes = options.capture_bytes;
        s->rodata->cfg_ignore_tgid = options.ignore_tgid;
        s->rodata->cfg_netns = options.netns;
        // Per CPU (sock_io.bpf.c counts what each CPU queued): all of them together fill an
        // eighth of the ring before the reader is woken. Wakeups are rare on purpose: each is an
        // irq_work (a self-IPI, a VM exit on a virtual machine) and cost ~200 ns per event at a
        // 64 KiB threshold; the reader drains every poll interval (20 ms) without one.
        const int cpus = std::max(1, libbpf_num_possible_cpus());
        s->rodata->cfg_wakeup_bytes = std::max<uint64_t>(4096, options.ring_bytes / 8 / cpus);
        bpf_map__set_max_entries(s->maps.sock_events, options.ring_bytes);
        // One of the two sets of syscall hooks.
#if defined(__x86_64__)
        const bool raw = options.syscall_hooks == ProbeOptions::SyscallHooks::kRaw;
#else
        const bool raw = false;
#endif
        bpf_program* prog;
        bpf_object__for_each_program(prog, s->obj) {
          const bool is_raw = std::string_view(bpf_program__name(prog)).starts_with("fl_raw_");
          bpf_program__set_autoload(prog, is_raw == raw);
        }
      })));
  FAULTLINE_RETURN_IF_ERROR(
      (LoadAndAttach<tcp_health, tcp_health__open_opts, tcp_health__load, tcp_health__attach>(
          &impl->tcp.skel, "tcp_health", [&](tcp_health* t) {
            // One socket-owner map: sock_io fills it, tcp_health reads it for resets.
            bpf_map__reuse_fd(t->maps.sock_owner, bpf_map__fd(impl->sock.skel->maps.sock_owner));
          })));

  if (options.resources) {
    FAULTLINE_RETURN_IF_ERROR(
        (LoadAndAttach<resource, resource__open_opts, resource__load, resource__attach>(
            &impl->res.skel, "resource", [](resource*) {})));
  }

  impl->rings = ring_buffer__new(bpf_map__fd(impl->sock.skel->maps.sock_events), Impl::OnSock,
                                 impl.get(), nullptr);
  if (!impl->rings ||
      ring_buffer__add(impl->rings, bpf_map__fd(impl->tcp.skel->maps.tcp_events), Impl::OnTcp, impl.get()) != 0 ||
      (impl->res.skel && ring_buffer__add(impl->rings, bpf_map__fd(impl->res.skel->maps.oom_events),
                                          Impl::OnOom, impl.get()) != 0)) {
    return Unavailable(std::string("cannot set up the BPF ring buffers: ") + strerror(errno));
  }
  impl->vmlinux = btf__load_vmlinux_btf();
  return probes;
}

KernelProbes::~KernelProbes() = default;

int KernelProbes::Poll(int timeout_ms) {
  int n = ring_buffer__poll(impl_->rings, timeout_ms);
  if (n < 0 && n != -EINTR) return n;
  // Producers mostly skip the wake-up to save CPU, so consume whatever is queued anyway.
  int m = ring_buffer__consume(impl_->rings);
  if (m < 0) return m;
  return std::max(n, 0) + m;
}

namespace {

// Calls fn(key, value) for every entry of a BPF hash map (entries may come and go meanwhile).
template <typename Key, typename Value, typename Fn>
void ForEachEntry(int fd, Fn fn) {
  Key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    Value value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) fn(next, value);
    key = next;
    prev = &key;
  }
}

}  // namespace

void KernelProbes::ReadFlows(std::vector<FlowSample>* flows, std::vector<DropSample>* drops) const {
  flows->clear();
  drops->clear();
  ForEachEntry<fl_flow_key, fl_flow_stats>(bpf_map__fd(impl_->tcp.skel->maps.flows),
                                           [&](const fl_flow_key& k, const fl_flow_stats& v) { flows->push_back({k, v}); });
  ForEachEntry<fl_drop_key, uint64_t>(bpf_map__fd(impl_->tcp.skel->maps.flow_drops),
                                      [&](const fl_drop_key& k, uint64_t n) { drops->push_back({k, n}); });
}

void KernelProbes::ForgetFlows(const std::vector<fl_flow_key>& keys) {
  const int flow_fd = bpf_map__fd(impl_->tcp.skel->maps.flows);
  const int owner_fd = bpf_map__fd(impl_->sock.skel->maps.sock_owner);
  for (const auto& k : keys) {
    bpf_map_delete_elem(flow_fd, &k);
    bpf_map_delete_elem(owner_fd, &k);
  }
}

bool KernelProbes::Owner(const fl_flow_key& key, fl_sock_owner* owner) const {
  return bpf_map_lookup_elem(bpf_map__fd(impl_->sock.skel->maps.sock_owner), &key, owner) == 0;
}

bool KernelProbes::resources() const { return impl_->res.skel != nullptr; }

void KernelProbes::ReadResources(std::vector<RunqSample>* runq, std::vector<IoSample>* io) const {
  runq->clear();
  io->clear();
  if (!impl_->res.skel) return;
  ForEachEntry<fl_runq_key, fl_hist>(bpf_map__fd(impl_->res.skel->maps.runq_hist),
                                     [&](const fl_runq_key& k, const fl_hist& h) { runq->push_back({k.cgroup_id, h}); });
  ForEachEntry<fl_io_key, fl_io_stats>(bpf_map__fd(impl_->res.skel->maps.io_stats),
                                       [&](const fl_io_key& k, const fl_io_stats& v) { io->push_back({k, v}); });
}

void KernelProbes::ForgetResources(const std::vector<uint64_t>& runq_cgroups, const std::vector<fl_io_key>& io) {
  if (!impl_->res.skel) return;
  const int runq_fd = bpf_map__fd(impl_->res.skel->maps.runq_hist);
  for (uint64_t id : runq_cgroups) {
    const fl_runq_key k{id};
    bpf_map_delete_elem(runq_fd, &k);
  }
  const int io_fd = bpf_map__fd(impl_->res.skel->maps.io_stats);
  for (const auto& k : io) bpf_map_delete_elem(io_fd, &k);
}

std::array<uint64_t, FL_KSTAT_MAX> KernelProbes::KernelStats() const {
  std::array<uint64_t, FL_KSTAT_MAX> total{};
  std::vector<uint64_t> per_cpu(impl_->ncpus);
  std::vector<int> fds = {bpf_map__fd(impl_->sock.skel->maps.fl_kstats), bpf_map__fd(impl_->tcp.skel->maps.fl_kstats)};
  if (impl_->res.skel) fds.push_back(bpf_map__fd(impl_->res.skel->maps.fl_kstats));
  for (int fd : fds) {
    for (uint32_t i = 0; i < FL_KSTAT_MAX; ++i) {
      if (bpf_map_lookup_elem(fd, &i, per_cpu.data()) != 0) continue;
      for (uint64_t v : per_cpu) total[i] += v;
    }
  }
  return total;
}

std::string KernelProbes::DropReasonName(uint32_t reason) const {
  auto it = impl_->reason_names.find(reason);
  if (it != impl_->reason_names.end()) return it->second;
  std::string name = "REASON_" + std::to_string(reason);
  if (impl_->vmlinux) {
    int id = btf__find_by_name_kind(impl_->vmlinux, "skb_drop_reason", BTF_KIND_ENUM);
    const btf_type* t = id > 0 ? btf__type_by_id(impl_->vmlinux, id) : nullptr;
    if (t) {
      const struct btf_enum* e = btf_enum(t);
      for (int i = 0; i < btf_vlen(t); ++i) {
        if (static_cast<uint32_t>(e[i].val) == reason) {
          name = btf__name_by_offset(impl_->vmlinux, e[i].name_off);
          constexpr std::string_view kPrefix = "SKB_DROP_REASON_";
          if (name.compare(0, kPrefix.size(), kPrefix) == 0) name = name.substr(kPrefix.size());
          break;
        }
      }
    }
  }
  impl_->reason_names.emplace(reason, name);
  return name;
}

}  // namespace faultline::agent
