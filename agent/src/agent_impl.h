// The agent's state and what it does with each kind of kernel event, split by concern: socket
// syscalls to HTTP exchanges (agent_sockets.cc), TCP and flows (agent_network.cc), resources
// (agent_resources.cc), identities (agent_identity.cc), the batch and its counters
// (agent_batch.cc); agent.cc starts, steps and drains it. Private to agent/.
#pragma once

#include <sys/utsname.h>
#include <time.h>

#include <array>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <google/protobuf/arena.h>

#include "events.pb.h"
#include "faultline/agent/agent.h"
#include "faultline/agent/connection_table.h"
#include "faultline/agent/identity.h"
#include "faultline/common/log.h"
#include "faultline/common/text.h"
#include "resource_collector.h"

namespace faultline::agent {

inline constexpr uint32_t kSchemaVersion = 1;
// A flow unseen this long is forgotten (its counters restart if it comes back).
inline constexpr uint64_t kFlowForgetNs = 60'000'000'000ULL;

inline uint64_t NowNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + ts.tv_nsec;
}

inline std::string ReadFirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

inline void SetEndpoint(const uint8_t* addr, uint16_t family, uint16_t port, v1::Endpoint* ep) {
  ep->set_addr(std::string(reinterpret_cast<const char*>(addr), family == FL_AF_INET6 ? 16 : 4));
  ep->set_port(port);
}

inline void SetConnection(const fl_tuple& t, v1::Connection* c) {
  SetEndpoint(t.laddr, t.family, t.lport, c->mutable_local());
  SetEndpoint(t.raddr, t.family, t.rport, c->mutable_remote());
  c->set_netns(t.netns);
}

inline std::string FlowKeyBytes(const fl_flow_key& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

inline v1::Role RoleOf(uint8_t kernel_role) {
  return kernel_role == FL_ROLE_CLIENT   ? v1::ROLE_CLIENT
         : kernel_role == FL_ROLE_SERVER ? v1::ROLE_SERVER
                                         : v1::ROLE_UNKNOWN;
}

// IPv4-mapped IPv6 addresses as plain IPv4, as the kernel keys flows.
inline void NormalizeMapped(fl_flow_key* k) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  for (uint8_t* a : {k->laddr, k->raddr}) {
    if (std::memcmp(a, kMapped, 12) == 0) {
      std::memmove(a, a + 12, 4);
      std::memset(a + 4, 0, 12);
    }
  }
}

inline v1::Role ToProto(HttpRole r) {
  switch (r) {
    case HttpRole::kClient: return v1::ROLE_CLIENT;
    case HttpRole::kServer: return v1::ROLE_SERVER;
    default: return v1::ROLE_UNKNOWN;
  }
}

inline v1::HttpExchange::Outcome ToProto(HttpOutcome o) {
  switch (o) {
    case HttpOutcome::kConnectionClosed: return v1::HttpExchange::OUTCOME_CONNECTION_CLOSED;
    case HttpOutcome::kTruncated: return v1::HttpExchange::OUTCOME_TRUNCATED;
    default: return v1::HttpExchange::OUTCOME_COMPLETE;
  }
}

// The kernel side's loss counters (enum fl_kstat) by name; null: not a loss.
inline const char* const kKernelStatNames[FL_KSTAT_MAX] = {
    "kernel_ringbuf_full", "kernel_inflight_full", "kernel_payload_fault", nullptr,
    "kernel_flow_map_full", "kernel_connect_map_full", "kernel_runq_pending_full",
    "kernel_runq_map_full", "kernel_io_pending_full", "kernel_io_map_full",
    "kernel_oom_ringbuf_full", nullptr, nullptr, nullptr, nullptr, nullptr};

// Every other reason the agent itself counts a loss for (the Kafka sink registers its own):
// exported from the start, at zero, so that nothing is lost before a dashboard knows its name.
inline constexpr const char* kUserSpaceDropReasons[] = {
    "parser_garbage",          "parser_header_too_large",   "parser_framing_lost",
    "parser_orphan_response",  "parser_pending_overflow",   "parser_unanswered_in_gap",
    "connection_table_evicted", "connection_idle_expired",  "resource_cgroups_over_limit",
    "resource_cgroup_unknown"};


struct Agent::Impl {
  AgentOptions opts;
  BatchSink* sink = nullptr;
  MetricsRegistry* metrics = nullptr;
  std::unique_ptr<ProbeSource> probes;
  ConnectionTable connections{65536};
  ProcessResolver processes;
  ContainerMetaResolver container_meta;
  std::unique_ptr<KubeWatch> kube_pods, kube_services;
  uint64_t service_generation = ~0ULL;
  std::unordered_map<std::string, std::string> service_names;  // ClusterIP bytes -> ns/name
  ContainerMetaResolver::Stats meta_reported;
  prometheus::Counter *meta_resolved = nullptr, *meta_unknown = nullptr, *meta_errors = nullptr,
                      *meta_evicted = nullptr;
  uint64_t start_unix_ns = 0;
  int64_t mono_to_unix = 0;

  // The batch being filled lives on an arena that is reset after each publish: its events, strings
  // and sub-messages cost a bump of a pointer, not a malloc and a free each (a third of the agent's
  // time went to the allocator before, bench/RESULTS.md).
  v1::EventBatch batch_header;  // schema, agent start, node: copied into every batch
  std::unique_ptr<google::protobuf::Arena> arena;
  v1::EventBatch* batch = nullptr;
  std::unordered_set<uint32_t> batch_pids;
  uint64_t batch_opened_ns = 0;
  uint64_t sequence = 0;
  std::vector<HttpExchange> exchanges;

  uint64_t last_flow_read_ns = 0;
  uint64_t last_resource_read_ns = 0;
  std::unique_ptr<ResourceCollector> resources;
  std::unique_ptr<CgroupReader> unified_cgroups;  // exited processes' cgroups, by kernel id
  ResourceCollector::Output resource_out;
  std::vector<RunqSample> runq_samples;
  std::vector<IoSample> io_samples;
  std::vector<uint64_t> forget_runq;
  std::vector<fl_io_key> forget_io;
  std::unordered_map<std::string, fl_flow_stats> flow_prev;
  std::unordered_map<std::string, uint64_t> drop_prev;
  std::vector<FlowSample> flow_samples;
  std::vector<DropSample> drop_samples;
  std::array<uint64_t, FL_KSTAT_MAX> kstats_prev{};
  // One log limiter per drop reason, so that a frequent reason cannot hide a rare one.
  std::map<std::string, LogRateLimiter> drop_log_limiters;

  // Per-interval tally of drops for AgentStats.
  std::map<std::string, uint64_t> interval_dropped;

  prometheus::Counter* excluded_self = nullptr;
  prometheus::Counter* excluded_pipeline = nullptr;
  prometheus::Counter* excluded_netns = nullptr;
  prometheus::Counter* flows_unattributed = nullptr;
  prometheus::Gauge* connections_gauge = nullptr;
  prometheus::Counter* stream_gaps = nullptr;
  prometheus::Counter* skipped_other = nullptr;

  Impl(const AgentOptions& o)
      : opts(o), connections(o.max_connections), processes(o.proc_root), container_meta(o.containers) {}

  // The runtime's metadata of a container, when the runtimes are asked and one knows it, and the
  // API server's word on its pod (the workload from the owner references wins over the pod-name
  // rule; the pod's names stand in when no runtime answered).
  void AddContainerMeta(const std::string& id, const std::string& runtime, const std::string& pod_uid,
                        v1::ContainerMeta* out) {
    const v1::ContainerMeta* m =
        opts.container_meta && !id.empty() ? container_meta.Lookup(id, runtime, std::chrono::steady_clock::now())
                                           : nullptr;
    if (m) CopyMeta(*m, out);
    const std::string& uid = !out->pod_uid().empty() ? out->pod_uid() : pod_uid;
    if (kube_pods && !uid.empty()) {
      if (auto pod = kube_pods->ByUid(uid)) {
        out->set_pod_uid(uid);
        out->set_pod_namespace(ValidUtf8(pod->ns));
        out->set_pod_name(ValidUtf8(pod->name));
        out->set_workload(ValidUtf8(pod->workload));
      }
    }
  }

  // A Service's ClusterIP names the callee of a call to it.
  void NameRemote(v1::Connection* c);

  // The watches' state in /metrics: objects kept, and what went wrong (errors back off and
  // retry; gone: a 410 made them list again; over_limit: objects not kept).
  struct KubeReported {
    KubeWatch::Stats last;
  } kube_reported[2];
  void ReportKube();

  void RefreshServiceNames();

  static void CopyMeta(const v1::ContainerMeta& src, v1::ContainerMeta* out);

  void ReportContainerMeta();

  uint64_t ToUnix(uint64_t mono_ns) const { return static_cast<uint64_t>(static_cast<int64_t>(mono_ns) + mono_to_unix); }

  // Counters are looked up once per kind: the registry lookup costs more than the event.
  struct KindCounter {
    prometheus::Counter* total = nullptr;
    uint64_t interval = 0;
  };
  enum Kind { kHttp, kTcpConnect, kTcpReset, kFlowStats, kCgroupResources, kMachineResources, kOomKill, kKinds };
  static constexpr const char* kKindNames[kKinds] = {"http", "tcp_connect", "tcp_reset", "flow_stats",
                                                     "cgroup_resources", "machine_resources", "oom_kill"};
  std::array<KindCounter, kKinds> kinds;

  void CountEvent(Kind kind);

  // Called per event with n == 0 mostly: nothing is built before that is known.
  void CountDrop(std::string_view reason_view, uint64_t n);

  v1::Event* NewEvent(uint32_t pid, std::string_view comm, uint64_t cgroup_id, uint64_t now_mono);

  void EmitExchanges(const TrackedConnection& c, std::string_view comm, uint64_t cgroup_id, uint64_t now);

  // Counts what the connection's parser gave up on since the last report.
  void ReportParserLosses(TrackedConnection& c);

  void CloseConnection(std::unique_ptr<TrackedConnection> c, const fl_sock_event& e);

  void OnSock(const fl_sock_event& e, std::string_view payload);

  bool Excluded(const uint8_t* addr, uint16_t port) const;
  // Whether a connection is the pipeline's own (either end at an excluded endpoint).
  bool PipelineOwn(const fl_flow_key& k) const;

  // Another emulated machine's connection (see AgentOptions::machine_cgroup).
  bool OtherNetns(uint32_t netns) const { return opts.probes.netns != 0 && netns != opts.probes.netns; }

  void OnTcp(const fl_tcp_event& t);

  void OnOom(const fl_oom_event& o);

  void ReadResources(uint64_t now);

  void ReadFlows(uint64_t now);

  void PublishBatch();

  void NewBatch();
};

}  // namespace faultline::agent
