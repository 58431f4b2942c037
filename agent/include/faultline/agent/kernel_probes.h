// The agent's kernel side, loaded and attached: faultline's CO-RE eBPF programs (sock_io and
// tcp_health) and their ring buffers and maps, behind a small C++ interface. Only this unit
// includes libbpf and the generated skeletons.
//
// Open() checks the prerequisites (root, BTF, tracefs) and fails with one sentence naming what is
// missing. Poll() delivers ring-buffer events to the callbacks on the calling thread. Not
// thread-safe: one thread polls and reads maps.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/common/status.h"
#include "resource_event.h"
#include "sock_io_event.h"
#include "tcp_health_event.h"

namespace faultline::agent {

struct ProbeOptions {
  // Payload prefix captured per socket syscall, 0..4096. Default: 1024.
  uint32_t capture_bytes = 1024;
  // Size of the socket-event ring buffer in bytes: a power of two, at least 4096. Default: 16 MiB.
  uint32_t ring_bytes = 16u << 20;
  // Pid whose sockets are never traced (the agent itself, so its Kafka traffic is not traced).
  // 0 traces everything. Default: 0.
  uint32_t ignore_tgid = 0;
  // Only sockets of tasks in this network namespace (its inode number) are traced; 0 traces every
  // namespace. Flows, connects and resets of other namespaces are counted by the kernel and left
  // out by the agent. Default: 0.
  uint32_t netns = 0;
  // Load the resource-pressure programs (run-queue latency, block I/O, OOM kills). Default: true.
  bool resources = true;
  // How socket syscalls are hooked: kTracepoints, a pair of programs per traced syscall on the
  // syscalls:* tracepoints (only those syscalls run them, each paying the classic tracepoint's
  // record), or kRaw, two programs on the raw syscall tracepoints (every syscall of every task
  // runs them; untraced ones leave after a switch on the number). Measured side by side
  // (bench/RESULTS.md): the same cost per HTTP request through nginx, kRaw about a quarter
  // cheaper per file read or write. kRaw needs x86-64; elsewhere kTracepoints is used.
  // Default: kTracepoints.
  enum class SyscallHooks { kTracepoints, kRaw };
  SyscallHooks syscall_hooks = SyscallHooks::kTracepoints;
};

struct RunqSample {
  uint64_t cgroup_id;
  fl_hist hist;
};

struct IoSample {
  fl_io_key key;
  fl_io_stats stats;
};

struct FlowSample {
  fl_flow_key key;
  fl_flow_stats stats;
};

struct DropSample {
  fl_drop_key key;
  uint64_t count;
};

// Where the agent's kernel events come from: ring-buffer events delivered to the handlers it was
// opened with, and the kernel's maps. KernelProbes is the real one; a test gives recorded events
// and maps (tests/agent/agent_events_test.cc), so the agent's translation of kernel events into
// EventBatches is tested without a kernel.
class ProbeSource {
 public:
  using SockHandler = std::function<void(const fl_sock_event&, std::string_view payload)>;
  using TcpHandler = std::function<void(const fl_tcp_event&)>;
  using OomHandler = std::function<void(const fl_oom_event&)>;
  struct Handlers {
    SockHandler on_sock;
    TcpHandler on_tcp;
    OomHandler on_oom;  // may be empty
  };
  virtual ~ProbeSource() = default;

  // Waits up to `timeout_ms` for events, then delivers everything queued to the handlers.
  // Returns the number of events delivered, or a negative errno.
  virtual int Poll(int timeout_ms) = 0;
  // Snapshots the per-flow counters and per-flow drop counts (cumulative since the entry was made).
  virtual void ReadFlows(std::vector<FlowSample>* flows, std::vector<DropSample>* drops) const = 0;
  // Forgets flows that have gone quiet (their counters restart if they come back), and the
  // owner records of their sockets.
  virtual void ForgetFlows(const std::vector<fl_flow_key>& keys) = 0;
  // The process that owns the flow's socket, as recorded when it connected, accepted or first
  // moved bytes; false when none is recorded (not seen by a traced syscall, or pushed out).
  virtual bool Owner(const fl_flow_key& key, fl_sock_owner* owner) const = 0;
  // Whether resource pressure is sampled.
  virtual bool resources() const = 0;
  // Snapshots the cumulative run-queue histograms per cgroup and I/O counters per (device,
  // cgroup, op); empty when resources() is false.
  virtual void ReadResources(std::vector<RunqSample>* runq, std::vector<IoSample>* io) const = 0;
  // Forgets entries that have gone quiet (their counters restart if they come back).
  virtual void ForgetResources(const std::vector<uint64_t>& runq_cgroups,
                               const std::vector<fl_io_key>& io) = 0;
  // The kernel side's loss counters (enum fl_kstat), summed over CPUs and programs.
  virtual std::array<uint64_t, FL_KSTAT_MAX> KernelStats() const = 0;
  // Kernel drop-reason value -> name ("NETFILTER_DROP").
  virtual std::string DropReasonName(uint32_t reason) const = 0;
};

class KernelProbes : public ProbeSource {
 public:
  // Loads and attaches every program. Errors, each one sentence saying what is wrong: a missing
  // capability of this machine (IsMissingCapability: kPermissionDenied without root, CAP_BPF or
  // CAP_PERFMON or under a seccomp filter that blocks bpf() or perf_event_open(),
  // kUnavailable without BTF, tracefs, BPF support or a tracepoint), or kInternal when the
  // kernel's verifier refused a program.
  static Result<std::unique_ptr<KernelProbes>> Open(const ProbeOptions& options,
                                                    SockHandler on_sock, TcpHandler on_tcp,
                                                    OomHandler on_oom = nullptr);
  ~KernelProbes() override;

  int Poll(int timeout_ms) override;
  void ReadFlows(std::vector<FlowSample>* flows, std::vector<DropSample>* drops) const override;
  void ForgetFlows(const std::vector<fl_flow_key>& keys) override;
  bool Owner(const fl_flow_key& key, fl_sock_owner* owner) const override;
  bool resources() const override;
  void ReadResources(std::vector<RunqSample>* runq, std::vector<IoSample>* io) const override;
  void ForgetResources(const std::vector<uint64_t>& runq_cgroups,
                       const std::vector<fl_io_key>& io) override;
  // Summed over CPUs and both programs.
  std::array<uint64_t, FL_KSTAT_MAX> KernelStats() const override;
  // From this kernel's BTF.
  std::string DropReasonName(uint32_t reason) const override;

 private:
  KernelProbes() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Checks root, BTF and tracefs (mounting tracefs if it is missing). OK, or the one sentence.
Status CheckKernelPrerequisites();

// Whether an error of Open (or of Agent::Start) means that this machine lacks something the
// agent needs (privilege, BTF, tracefs, BPF support, a tracepoint): kPermissionDenied or
// kUnavailable. Anything else (kInternal: the verifier refused a program; kInvalidArgument) is a
// fault of faultline or of its options, not of the machine.
inline bool IsMissingCapability(const Status& s) {
  return s.code() == StatusCode::kPermissionDenied || s.code() == StatusCode::kUnavailable;
}

}  // namespace faultline::agent
