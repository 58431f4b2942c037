#include "faultline/agent/agent.h"

#include "faultline/common/health.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <ctime>
#include <fstream>
#include <unordered_map>
#include <unordered_set>

#include <curl/curl.h>

#include "events.pb.h"
#include "faultline/agent/connection_table.h"
#include "faultline/common/text.h"
#include "faultline/agent/identity.h"
#include "faultline/common/log.h"
#include "resource_collector.h"

namespace faultline::agent {
namespace {

constexpr uint32_t kSchemaVersion = 1;
constexpr uint64_t kFlowForgetNs = 60'000'000'000ULL;

uint64_t NowNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + ts.tv_nsec;
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

void SetEndpoint(const uint8_t* addr, uint16_t family, uint16_t port, v1::Endpoint* ep) {
  ep->set_addr(std::string(reinterpret_cast<const char*>(addr), family == FL_AF_INET6 ? 16 : 4));
  ep->set_port(port);
}

void SetConnection(const fl_tuple& t, v1::Connection* c) {
  SetEndpoint(t.laddr, t.family, t.lport, c->mutable_local());
  SetEndpoint(t.raddr, t.family, t.rport, c->mutable_remote());
  c->set_netns(t.netns);
}

std::string FlowKeyBytes(const fl_flow_key& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

v1::Role RoleOf(uint8_t kernel_role) {
  return kernel_role == FL_ROLE_CLIENT   ? v1::ROLE_CLIENT
         : kernel_role == FL_ROLE_SERVER ? v1::ROLE_SERVER
                                         : v1::ROLE_UNKNOWN;
}

// IPv4-mapped IPv6 addresses as plain IPv4, as the kernel keys flows.
void NormalizeMapped(fl_flow_key* k) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  for (uint8_t* a : {k->laddr, k->raddr}) {
    if (std::memcmp(a, kMapped, 12) == 0) {
      std::memmove(a, a + 12, 4);
      std::memset(a + 4, 0, 12);
    }
  }
}

v1::Role ToProto(HttpRole r) {
  switch (r) {
    case HttpRole::kClient: return v1::ROLE_CLIENT;
    case HttpRole::kServer: return v1::ROLE_SERVER;
    default: return v1::ROLE_UNKNOWN;
  }
}

v1::HttpExchange::Outcome ToProto(HttpOutcome o) {
  switch (o) {
    case HttpOutcome::kConnectionClosed: return v1::HttpExchange::OUTCOME_CONNECTION_CLOSED;
    case HttpOutcome::kTruncated: return v1::HttpExchange::OUTCOME_TRUNCATED;
    default: return v1::HttpExchange::OUTCOME_COMPLETE;
  }
}

const char* kKernelStatNames[FL_KSTAT_MAX] = {
    "kernel_ringbuf_full", "kernel_inflight_full", "kernel_payload_fault", nullptr,
    "kernel_flow_map_full", "kernel_connect_map_full", "kernel_runq_pending_full",
    "kernel_runq_map_full", "kernel_io_pending_full", "kernel_io_map_full",
    "kernel_oom_ringbuf_full", nullptr, nullptr, nullptr, nullptr, nullptr};

// Every other reason the agent itself counts a loss for (the Kafka sink registers its own):
// exported from the start, at zero, so that nothing is lost before a dashboard knows its name.
constexpr const char* kUserSpaceDropReasons[] = {
    "parser_garbage",          "parser_header_too_large",   "parser_framing_lost",
    "parser_orphan_response",  "parser_pending_overflow",   "parser_unanswered_in_gap",
    "connection_table_evicted", "connection_idle_expired",  "resource_cgroups_over_limit",
    "resource_cgroup_unknown"};

}  // namespace

Result<std::vector<EndpointFilter>> ResolveEndpoints(const std::string& host_ports) {
  std::vector<EndpointFilter> out;
  size_t start = 0;
  while (start <= host_ports.size()) {
    size_t comma = host_ports.find(',', start);
    if (comma == std::string::npos) comma = host_ports.size();
    std::string entry = host_ports.substr(start, comma - start);
    start = comma + 1;
    while (!entry.empty() && entry.front() == ' ') entry.erase(0, 1);
    while (!entry.empty() && entry.back() == ' ') entry.pop_back();
    if (entry.empty()) continue;
    const size_t colon = entry.rfind(':');
    std::string host = colon == std::string::npos ? "" : entry.substr(0, colon);
    const std::string port = colon == std::string::npos ? "" : entry.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    char* end = nullptr;
    const unsigned long p = port.empty() ? 0 : std::strtoul(port.c_str(), &end, 10);
    if (host.empty() || port.empty() || *end != '\0' || p == 0 || p > 65535) {
      return InvalidArgument("endpoint '" + entry + "': expected HOST:PORT with a port from 1 to 65535");
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0) {
      return InvalidArgument("endpoint '" + entry + "': " + gai_strerror(rc));
    }
    for (addrinfo* a = res; a; a = a->ai_next) {
      EndpointFilter f;
      f.port = static_cast<uint16_t>(p);
      if (a->ai_family == AF_INET) {
        std::memcpy(f.addr.data(), &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, 4);
      } else if (a->ai_family == AF_INET6) {
        std::memcpy(f.addr.data(), &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, 16);
      } else {
        continue;
      }
      if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
    }
    freeaddrinfo(res);
  }
  return out;
}

struct Agent::Impl {
  AgentOptions opts;
  BatchSink* sink = nullptr;
  MetricsRegistry* metrics = nullptr;
  std::unique_ptr<KernelProbes> probes;
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
  void NameRemote(v1::Connection* c) {
    if (service_names.empty()) return;
    auto it = service_names.find(c->remote().addr());
    if (it != service_names.end()) c->mutable_remote()->set_name(it->second);
  }

  // The watches' state in /metrics: objects kept, and what went wrong (errors back off and
  // retry; gone: a 410 made them list again; over_limit: objects not kept).
  struct KubeReported {
    KubeWatch::Stats last;
  } kube_reported[2];
  void ReportKube() {
    KubeWatch* watches[2] = {kube_pods.get(), kube_services.get()};
    const char* names[2] = {"pods", "services"};
    for (int i = 0; i < 2; ++i) {
      if (!watches[i]) continue;
      const KubeWatch::Stats s = watches[i]->stats();
      metrics->Gauge("faultline_agent_kube_objects", "Kubernetes objects the agent's watches hold",
                     {{"resource", names[i]}})
          .Set(static_cast<double>(watches[i]->Objects().size()));
      auto add = [&](const char* what, uint64_t now, uint64_t before) {
        metrics->Counter("faultline_agent_kube_watch_total",
                         "Kubernetes list/watch outcomes: lists, events, errors (backed off), gone "
                         "(410: listed again), over_limit (objects not kept)",
                         {{"resource", names[i]}, {"what", what}})
            .Increment(static_cast<double>(now - before));
      };
      const KubeWatch::Stats& b = kube_reported[i].last;
      add("lists", s.lists, b.lists);
      add("events", s.events, b.events);
      add("errors", s.errors, b.errors);
      add("gone", s.gone, b.gone);
      add("over_limit", s.over_limit, b.over_limit);
      kube_reported[i].last = s;
    }
  }

  void RefreshServiceNames() {
    if (!kube_services || kube_services->generation() == service_generation) return;
    service_generation = kube_services->generation();
    service_names.clear();
    for (const auto& [key, svc] : kube_services->Objects()) {
      for (const std::string& ip : svc.ips) {
        uint8_t b[16];
        if (inet_pton(AF_INET, ip.c_str(), b) == 1) {
          service_names[std::string(reinterpret_cast<char*>(b), 4)] = ValidUtf8(key);
        } else if (inet_pton(AF_INET6, ip.c_str(), b) == 1) {
          service_names[std::string(reinterpret_cast<char*>(b), 16)] = ValidUtf8(key);
        }
      }
    }
  }

  static void CopyMeta(const v1::ContainerMeta& src, v1::ContainerMeta* out) {
    const v1::ContainerMeta* m = &src;
    out->set_name(ValidUtf8(m->name()));
    out->set_image(ValidUtf8(m->image()));
    out->set_pod_namespace(ValidUtf8(m->pod_namespace()));
    out->set_pod_name(ValidUtf8(m->pod_name()));
    out->set_container_name(ValidUtf8(m->container_name()));
    out->set_pod_uid(ValidUtf8(m->pod_uid()));
    out->set_workload(ValidUtf8(m->workload()));
  }

  void ReportContainerMeta() {
    const auto& s = container_meta.stats();
    meta_resolved->Increment(static_cast<double>(s.resolved - meta_reported.resolved));
    meta_unknown->Increment(static_cast<double>(s.unknown - meta_reported.unknown));
    meta_errors->Increment(static_cast<double>(s.socket_errors - meta_reported.socket_errors));
    meta_evicted->Increment(static_cast<double>(s.evictions - meta_reported.evictions));
    meta_reported = s;
  }

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

  void CountEvent(Kind kind) {
    kinds[kind].total->Increment();
    kinds[kind].interval++;
  }

  // Called per event with n == 0 mostly: nothing is built before that is known.
  void CountDrop(std::string_view reason_view, uint64_t n) {
    if (n == 0) return;
    const std::string reason(reason_view);
    metrics->Counter("faultline_agent_dropped_total",
                     "Data the agent lost or gave up on, by reason", {{"reason", reason}}).Increment(n);
    interval_dropped[reason] += n;
    LogRateLimiter& limiter =
        drop_log_limiters.try_emplace(reason, std::chrono::seconds(10)).first->second;
    uint64_t suppressed = 0;
    if (limiter.Allow(&suppressed)) {
      spdlog::warn("agent dropped {} ({}){}", n, reason,
                   suppressed ? fmt::format("; {} earlier reports of this reason suppressed", suppressed) : "");
    }
  }

  v1::Event* NewEvent(uint32_t pid, std::string_view comm, uint64_t cgroup_id, uint64_t now_mono) {
    if (batch->events_size() >= static_cast<int>(opts.batch_max_events)) PublishBatch();
    if (batch->events_size() == 0) batch_opened_ns = now_mono;
    if (pid != 0 && batch_pids.insert(pid).second) {
      const ProcessInfo& info = processes.Resolve(pid, comm, cgroup_id, now_mono);
      v1::ProcessIdentity* p = batch->add_processes();
      p->set_pid(pid);
      p->set_comm(ValidUtf8(info.comm));
      p->set_cgroup_id(info.cgroup_id);
      p->set_cgroup_path(ValidUtf8(info.cgroup_path));
      p->set_container_id(info.container.container_id);
      p->set_container_runtime(info.container.runtime);
      p->set_pod_uid(info.container.pod_uid);
      if (!info.container.container_id.empty() || !info.container.pod_uid.empty()) {
        v1::ContainerMeta meta;
        AddContainerMeta(info.container.container_id, info.container.runtime, info.container.pod_uid, &meta);
        if (meta.ByteSizeLong() > 0) *p->mutable_container() = std::move(meta);
      }
    }
    v1::Event* e = batch->add_events();
    e->set_pid(pid);
    return e;
  }

  void EmitExchanges(const TrackedConnection& c, std::string_view comm, uint64_t cgroup_id, uint64_t now) {
    for (HttpExchange& x : exchanges) {
      v1::Event* e = NewEvent(c.tgid, comm, cgroup_id, now);
      e->set_time_unix_ns(ToUnix(x.request_start_ns));
      SetConnection(c.tuple, e->mutable_connection());
      NameRemote(e->mutable_connection());
      v1::HttpExchange* h = e->mutable_http();
      h->set_role(ToProto(x.role));
      h->set_method(ValidUtf8(x.method));
      h->set_path(ValidUtf8(x.path));
      h->set_version(std::move(x.version));
      h->set_status(x.status);
      h->set_request_bytes(x.request_bytes);
      h->set_response_bytes(x.response_bytes);
      if (x.response_end_ns >= x.request_start_ns && x.response_end_ns != 0) {
        h->set_latency_ns(x.response_end_ns - x.request_start_ns);
      }
      if (x.response_first_ns >= x.request_start_ns && x.response_first_ns != 0) {
        h->set_time_to_first_byte_ns(x.response_first_ns - x.request_start_ns);
      }
      h->set_outcome(ToProto(x.outcome));
      CountEvent(kHttp);
    }
    exchanges.clear();
  }

  // Counts what the connection's parser gave up on since the last report.
  void ReportParserLosses(TrackedConnection& c) {
    const HttpParserStats& now = c.parser.stats();
    HttpParserStats& was = c.reported;
    CountDrop("parser_garbage", now.garbage - was.garbage);
    CountDrop("parser_header_too_large", now.header_too_large - was.header_too_large);
    CountDrop("parser_framing_lost", now.framing_lost - was.framing_lost);
    CountDrop("parser_orphan_response", now.orphan_responses - was.orphan_responses);
    CountDrop("parser_pending_overflow", now.pending_overflow - was.pending_overflow);
    CountDrop("parser_unanswered_in_gap", now.unanswered_dropped - was.unanswered_dropped);
    was = now;
  }

  void CloseConnection(std::unique_ptr<TrackedConnection> c, const fl_sock_event& e) {
    c->parser.OnClose(e.ts_ns, &exchanges);
    EmitExchanges(*c, std::string_view(c->comm, strnlen(c->comm, sizeof(c->comm))), c->cgroup_id,
                  e.ts_ns);
    ReportParserLosses(*c);
  }

  void OnSock(const fl_sock_event& e, std::string_view payload) {
    const HttpRole role = e.role == FL_ROLE_SERVER   ? HttpRole::kServer
                          : e.role == FL_ROLE_CLIENT ? HttpRole::kClient
                                                     : HttpRole::kUnknown;
    const uint64_t evicted_before = connections.evictions();
    // The connection's owner, as this event names it.
    auto own = [&e](TrackedConnection& c) {
      c.tgid = e.tgid;
      std::memcpy(c.comm, e.comm, sizeof(c.comm));
      c.cgroup_id = e.cgroup_id;
    };
    switch (e.kind) {
      case FL_SOCK_OPEN: {
        // A new connection may reuse a socket address: finish whatever was there.
        if (auto old = connections.Remove(e.sock_id)) CloseConnection(std::move(old), e);
        TrackedConnection& c = connections.Touch(e.sock_id, role, e.ts_ns);
        c.tuple = e.tuple;
        own(c);
        break;
      }
      case FL_SOCK_CLOSE:
        if (auto c = connections.Remove(e.sock_id)) CloseConnection(std::move(c), e);
        break;
      case FL_SOCK_DATA: {
        TrackedConnection& c = connections.Touch(e.sock_id, role, e.ts_ns);
        if (e.flags & FL_SOCK_F_TUPLE) c.tuple = e.tuple;  // else: as remembered for this socket
        own(c);
        const size_t tail_len = std::min<size_t>(e.tail_len, FL_TAIL_LEN);
        const uint64_t total = std::max<uint64_t>(e.total_bytes, payload.size() + tail_len);
        const Direction dir = e.direction == FL_DIR_EGRESS ? Direction::kEgress : Direction::kIngress;
        const int d = dir == Direction::kEgress ? 0 : 1;
        if (c.offset_known[d] && e.stream_offset > c.next_offset[d]) {
          // Events of this stream were lost (already counted where they were dropped): the parser
          // treats the gap as bytes it did not see, exact inside a body, a resync elsewhere.
          const uint64_t gap = e.stream_offset - c.next_offset[d];
          c.parser.OnData(dir, {}, gap, {}, e.ts_ns, &exchanges);
          stream_gaps->Increment();
        }
        c.offset_known[d] = true;
        c.next_offset[d] = e.stream_offset + total;
        c.parser.OnData(dir, payload, total,
                        std::string_view(reinterpret_cast<const char*>(e.tail), tail_len), e.ts_ns,
                        &exchanges);
        EmitExchanges(c, e.comm, e.cgroup_id, e.ts_ns);
        ReportParserLosses(c);
        break;
      }
      default: break;
    }
    CountDrop("connection_table_evicted", connections.evictions() - evicted_before);
  }

  bool Excluded(const uint8_t* addr, uint16_t port) const {
    for (const EndpointFilter& f : opts.excluded_endpoints) {
      if (f.port == port && std::memcmp(f.addr.data(), addr, 16) == 0) return true;
    }
    return false;
  }
  // Whether a connection is the pipeline's own (either end at an excluded endpoint).
  bool PipelineOwn(const fl_flow_key& k) const {
    return !opts.excluded_endpoints.empty() && (Excluded(k.laddr, k.lport) || Excluded(k.raddr, k.rport));
  }

  // Another emulated machine's connection (see AgentOptions::machine_cgroup).
  bool OtherNetns(uint32_t netns) const { return opts.probes.netns != 0 && netns != opts.probes.netns; }

  void OnTcp(const fl_tcp_event& t) {
    if (t.self || (t.tgid != 0 && t.tgid == opts.probes.ignore_tgid)) {
      excluded_self->Increment();
      return;
    }
    if (OtherNetns(t.tuple.netns)) {
      excluded_netns->Increment();
      return;
    }
    if (!opts.excluded_endpoints.empty()) {
      fl_flow_key k{};
      std::memcpy(k.laddr, t.tuple.laddr, 16);
      std::memcpy(k.raddr, t.tuple.raddr, 16);
      k.lport = t.tuple.lport, k.rport = t.tuple.rport;
      NormalizeMapped(&k);
      if (PipelineOwn(k)) {
        excluded_pipeline->Increment();
        return;
      }
    }
    v1::Event* e = NewEvent(t.tgid, t.comm, t.cgroup_id, t.ts_ns);
    e->set_time_unix_ns(ToUnix(t.ts_ns));
    SetConnection(t.tuple, e->mutable_connection());
    NameRemote(e->mutable_connection());
    if (t.kind == FL_TCP_CONNECT) {
      auto* c = e->mutable_tcp_connect();
      c->set_result(t.result == FL_CONNECT_ESTABLISHED ? v1::TcpConnect::RESULT_ESTABLISHED
                    : t.result == FL_CONNECT_REFUSED   ? v1::TcpConnect::RESULT_REFUSED
                                                       : v1::TcpConnect::RESULT_FAILED);
      c->set_duration_ns(t.duration_ns);
      CountEvent(kTcpConnect);
    } else {
      auto* r = e->mutable_tcp_reset();
      r->set_direction(t.kind == FL_TCP_RESET_SENT ? v1::TcpReset::DIRECTION_SENT
                                                   : v1::TcpReset::DIRECTION_RECEIVED);
      r->set_tcp_state(t.tcp_state);
      r->set_role(RoleOf(t.role));
      CountEvent(kTcpReset);
    }
  }

  void OnOom(const fl_oom_event& o) {
    if (!resources) return;
    v1::OomKill kill = resources->Oom(o);
    if (!resources->OnMachine(kill.cgroup_path())) return;  // another emulated machine's
    v1::Event* e = NewEvent(o.victim_pid, kill.victim_comm(), 0, o.ts_ns);
    e->set_time_unix_ns(ToUnix(o.ts_ns));
    *e->mutable_oom_kill() = std::move(kill);
    CountEvent(kOomKill);
    spdlog::info("OOM kill: pid {} ({}) in memory cgroup {}", o.victim_pid, e->oom_kill().victim_comm(),
                 e->oom_kill().cgroup_path().empty() ? "?" : e->oom_kill().cgroup_path());
  }

  void ReadResources(uint64_t now) {
    const uint64_t interval = last_resource_read_ns ? now - last_resource_read_ns : 0;
    last_resource_read_ns = now;
    probes->ReadResources(&runq_samples, &io_samples);
    resources->Collect(runq_samples, io_samples, now, interval, &resource_out, &forget_runq, &forget_io);
    probes->ForgetResources(forget_runq, forget_io);
    CountDrop("resource_cgroups_over_limit", resource_out.cgroups_over_limit);
    CountDrop("resource_cgroup_unknown", resource_out.unknown_cgroups);
    for (v1::CgroupResources& c : resource_out.cgroups) {
      if (!c.container_id().empty() || !c.pod_uid().empty()) {
        v1::ContainerMeta meta;
        AddContainerMeta(c.container_id(), c.container_runtime(), c.pod_uid(), &meta);
        if (meta.ByteSizeLong() > 0) *c.mutable_container() = std::move(meta);
      }
      v1::Event* e = NewEvent(0, {}, 0, now);
      e->set_time_unix_ns(ToUnix(now));
      *e->mutable_cgroup_resources() = std::move(c);
      CountEvent(kCgroupResources);
    }
    v1::Event* e = NewEvent(0, {}, 0, now);
    e->set_time_unix_ns(ToUnix(now));
    *e->mutable_machine_resources() = std::move(resource_out.machine);
    CountEvent(kMachineResources);
  }

  void ReadFlows(uint64_t now) {
    const uint64_t interval = last_flow_read_ns ? now - last_flow_read_ns : 0;
    last_flow_read_ns = now;
    mono_to_unix = static_cast<int64_t>(NowNs(CLOCK_REALTIME)) - static_cast<int64_t>(NowNs(CLOCK_MONOTONIC));
    probes->ReadFlows(&flow_samples, &drop_samples);

    std::unordered_map<std::string, std::map<std::string, uint64_t>> drops_by_flow;
    for (const DropSample& d : drop_samples) {
      const std::string key(reinterpret_cast<const char*>(&d.key), sizeof(d.key));
      uint64_t& prev = drop_prev[key];
      if (d.count > prev) drops_by_flow[FlowKeyBytes(d.key.flow)][probes->DropReasonName(d.key.reason)] += d.count - prev;
      prev = d.count;
    }
    std::vector<fl_flow_key> forget;
    for (const FlowSample& f : flow_samples) {
      const std::string key = FlowKeyBytes(f.key);
      fl_flow_stats& prev = flow_prev[key];
      const fl_flow_stats& cur = f.stats;
      v1::FlowStats fs;
      fs.set_packets_out(CounterDelta(cur.packets_out, prev.packets_out));
      fs.set_bytes_out(CounterDelta(cur.bytes_out, prev.bytes_out));
      fs.set_packets_in(CounterDelta(cur.packets_in, prev.packets_in));
      fs.set_bytes_in(CounterDelta(cur.bytes_in, prev.bytes_in));
      fs.set_retransmits(CounterDelta(cur.retransmits, prev.retransmits));
      auto drops = drops_by_flow.find(key);
      const bool active = fs.packets_out() || fs.packets_in() || fs.retransmits() ||
                          drops != drops_by_flow.end();
      fl_sock_owner owner{};
      const bool owned = active && probes->Owner(f.key, &owner);
      if (active && owned && owner.self) {
        excluded_self->Increment();
      } else if (active && OtherNetns(f.key.netns)) {
        excluded_netns->Increment();
      } else if (active && PipelineOwn(f.key)) {
        excluded_pipeline->Increment();
      } else if (active) {
        fs.set_interval_ns(interval);
        fs.set_srtt_us(cur.srtt_us);
        if (drops != drops_by_flow.end()) fs.mutable_drops()->insert(drops->second.begin(), drops->second.end());
        // The socket's owner names the flow's process (and so its service and container); a flow
        // with none goes out without one and is counted (the stream keeps it per machine).
        if (!owned) flows_unattributed->Increment();
        fs.set_role(owned ? RoleOf(owner.role) : v1::ROLE_UNKNOWN);
        v1::Event* e = owned ? NewEvent(owner.tgid, owner.comm, owner.cgroup_id, now) : NewEvent(0, {}, 0, now);
        e->set_time_unix_ns(ToUnix(now));
        fl_tuple t{};
        std::memcpy(t.laddr, f.key.laddr, 16);
        std::memcpy(t.raddr, f.key.raddr, 16);
        t.lport = f.key.lport;
        t.rport = f.key.rport;
        t.netns = f.key.netns;
        const bool v4 = std::all_of(f.key.laddr + 4, f.key.laddr + 16, [](uint8_t b) { return b == 0; }) &&
                        std::all_of(f.key.raddr + 4, f.key.raddr + 16, [](uint8_t b) { return b == 0; });
        t.family = v4 ? FL_AF_INET : FL_AF_INET6;
        SetConnection(t, e->mutable_connection());
        NameRemote(e->mutable_connection());
        *e->mutable_flow_stats() = std::move(fs);
        CountEvent(kFlowStats);
      }
      prev = cur;
      if (now > cur.last_seen_ns + kFlowForgetNs) {
        forget.push_back(f.key);
        flow_prev.erase(key);
      }
    }
    if (!forget.empty()) probes->ForgetFlows(forget);

    const auto kstats = probes->KernelStats();
    for (int i = 0; i < FL_KSTAT_MAX; ++i) {
      const uint64_t d = kstats[i] - kstats_prev[i];
      if (kKernelStatNames[i]) CountDrop(kKernelStatNames[i], d);
    }
    skipped_other->Increment(kstats[FL_KSTAT_SKIPPED_OTHER] - kstats_prev[FL_KSTAT_SKIPPED_OTHER]);
    kstats_prev = kstats;
    ReportContainerMeta();
    RefreshServiceNames();
    ReportKube();
    unified_cgroups->Tick();
    CountDrop("connection_idle_expired", connections.ExpireIdle(now, std::chrono::nanoseconds(opts.connection_idle).count()));
    connections_gauge->Set(static_cast<double>(connections.size()));

    v1::Event* e = NewEvent(0, {}, 0, now);
    e->set_time_unix_ns(ToUnix(now));
    auto* s = e->mutable_agent_stats();
    s->set_interval_ns(interval);
    for (int k = 0; k < kKinds; ++k) {
      if (kinds[k].interval) (*s->mutable_events())[kKindNames[k]] = kinds[k].interval;
      kinds[k].interval = 0;
    }
    s->mutable_dropped()->insert(interval_dropped.begin(), interval_dropped.end());
    interval_dropped.clear();
  }

  void PublishBatch() {
    if (batch->events_size() == 0) return;
    batch->set_sequence(sequence++);
    sink->Publish(*batch);
    NewBatch();
  }

  void NewBatch() {
    if (!arena) {
      google::protobuf::ArenaOptions o;
      o.start_block_size = 256 << 10;
      o.max_block_size = 4 << 20;
      arena = std::make_unique<google::protobuf::Arena>(o);
    } else {
      arena->Reset();
    }
    batch = google::protobuf::Arena::CreateMessage<v1::EventBatch>(arena.get());
    batch->CopyFrom(batch_header);
    batch_pids.clear();
  }
};

Result<std::unique_ptr<Agent>> Agent::Start(const AgentOptions& options, BatchSink* sink,
                                            MetricsRegistry* metrics) {
  std::unique_ptr<Agent> agent(new Agent());
  agent->impl_ = std::make_unique<Impl>(options);
  Impl* impl = agent->impl_.get();
  impl->sink = sink;
  impl->metrics = metrics;
  for (int k = 0; k < Impl::kKinds; ++k) {
    impl->kinds[k].total = &metrics->Counter("faultline_agent_events_total", "Events published by the agent, by kind",
                                             {{"kind", Impl::kKindNames[k]}});
  }
  impl->stream_gaps = &metrics->Counter(
      "faultline_agent_stream_gaps_total",
      "Jumps in a connection's byte stream (events lost upstream), skipped by the parser");
  auto excluded = [&](const char* reason) {
    return &metrics->Counter("faultline_agent_excluded_total",
                             "Connection events not reported by rule (not a loss): the agent's own sockets, the "
                             "pipeline's own connections, another emulated machine's network namespace",
                             {{"reason", reason}});
  };
  impl->excluded_self = excluded("self");
  impl->excluded_pipeline = excluded("pipeline_endpoint");
  impl->excluded_netns = excluded("other_netns");
  impl->flows_unattributed = &metrics->Counter(
      "faultline_agent_flows_unattributed_total",
      "Flow reports whose socket has no recorded owner process (reported per machine only)");
  auto meta_counter = [&](const char* result) {
    return &metrics->Counter("faultline_agent_container_lookups_total",
                             "Containers asked of the runtimes' sockets, by result (unknown: no runtime "
                             "knew it; socket_error: a socket failed and is skipped for a while; "
                             "evicted: cache entries dropped to stay bounded)",
                             {{"result", result}});
  };
  impl->meta_resolved = meta_counter("resolved");
  impl->meta_unknown = meta_counter("unknown");
  impl->meta_errors = meta_counter("socket_error");
  impl->meta_evicted = meta_counter("evicted");
  impl->connections_gauge = &metrics->Gauge("faultline_agent_connections", "HTTP connections being tracked");
  impl->skipped_other = &metrics->Counter(
      "faultline_agent_kernel_skipped_total",
      "Socket syscalls on connections classified as not HTTP, skipped in the kernel (not a loss)");
  // Pre-register the loss counters so /metrics shows them at zero.
  for (const char* name : kUserSpaceDropReasons)
    metrics->Counter("faultline_agent_dropped_total", "Data the agent lost or gave up on, by reason", {{"reason", name}});
  for (const char* name : kKernelStatNames) {
    if (name) metrics->Counter("faultline_agent_dropped_total", "Data the agent lost or gave up on, by reason", {{"reason", name}});
  }
  auto probes = KernelProbes::Open(
      options.probes, [impl](const fl_sock_event& e, std::string_view p) { impl->OnSock(e, p); },
      [impl](const fl_tcp_event& e) { impl->OnTcp(e); },
      [impl](const fl_oom_event& e) { impl->OnOom(e); });
  if (!probes.ok()) return probes.status();
  impl->probes = std::move(probes).value();
  impl->unified_cgroups = std::make_unique<CgroupReader>(ReadCgroupLayout(options.proc_root));
  impl->processes.SetCgroupPathOf([impl](uint64_t id) {
    const std::string* p = impl->unified_cgroups->PathOfUnified(id);
    return p ? *p : std::string();
  });
  if (impl->probes->resources()) {
    CgroupLayout layout = ReadCgroupLayout(options.proc_root);
    int cpu_version = 0, memory_version = 0;
    const std::string cpu_mount = layout.MountFor("cpu", &cpu_version);
    const std::string memory_mount = layout.MountFor("memory", &memory_version);
    spdlog::info("resource pressure: cpu from cgroup v{} at {}, memory from cgroup v{} at {}", cpu_version,
                 cpu_mount.empty() ? "-" : cpu_mount, memory_version, memory_mount.empty() ? "-" : memory_mount);
    impl->resources = std::make_unique<ResourceCollector>(CgroupReader(std::move(layout)), options.proc_root);
    if (!options.machine_cgroup.empty()) {
      impl->resources->SetMachineCgroup(options.machine_cgroup);
      spdlog::info("emulated machine: cgroups under {}, network namespace {}", options.machine_cgroup,
                   options.probes.netns);
    }
  }

  std::string node = options.node_name;
  if (node.empty() && getenv("NODE_NAME")) node = getenv("NODE_NAME");
  utsname u{};
  uname(&u);
  if (node.empty()) node = u.nodename;
  if (options.kube) {
    KubeWatchOptions pods;
    pods.path = "/api/v1/pods";
    pods.kind = "Pod";
    char* escaped = curl_easy_escape(nullptr, ("spec.nodeName=" + node).c_str(), 0);
    pods.selector = "fieldSelector=" + std::string(escaped);
    curl_free(escaped);
    impl->kube_pods = std::make_unique<KubeWatch>(*options.kube, pods);
    if (options.kube_services) {
      KubeWatchOptions services;
      services.path = "/api/v1/services";
      services.kind = "Service";
      impl->kube_services = std::make_unique<KubeWatch>(*options.kube, services);
    }
    spdlog::info("watching the Kubernetes API at {}: pods on node {}{}", options.kube->server, node,
                 options.kube_services ? ", services" : "");
  }
  impl->start_unix_ns = NowNs(CLOCK_REALTIME);
  impl->mono_to_unix = static_cast<int64_t>(impl->start_unix_ns) - static_cast<int64_t>(NowNs(CLOCK_MONOTONIC));
  impl->batch_header.set_schema_version(kSchemaVersion);
  impl->batch_header.set_agent_start_unix_ns(impl->start_unix_ns);
  impl->batch_header.mutable_node()->set_name(node);
  impl->batch_header.mutable_node()->set_boot_id(ReadFirstLine("/proc/sys/kernel/random/boot_id"));
  impl->batch_header.mutable_node()->set_kernel(u.release);
  impl->NewBatch();
  impl->last_flow_read_ns = NowNs(CLOCK_MONOTONIC);
  impl->last_resource_read_ns = impl->last_flow_read_ns;
  spdlog::info("agent started on node {} (capture {} bytes per syscall)", node, options.probes.capture_bytes);
  return agent;
}

Agent::~Agent() = default;

void Agent::Step(int timeout_ms) {
  Impl& d = *impl_;
  const int n = d.probes->Poll(timeout_ms);
  if (n < 0) FAULTLINE_WARN_RATE_LIMITED("polling the BPF ring buffers failed: {}", strerror(-n));
  const uint64_t now = NowNs(CLOCK_MONOTONIC);
  if (now - d.last_flow_read_ns >= static_cast<uint64_t>(std::chrono::nanoseconds(d.opts.flow_interval).count())) {
    d.ReadFlows(now);
  }
  if (d.resources && now - d.last_resource_read_ns >=
                         static_cast<uint64_t>(std::chrono::nanoseconds(d.opts.resource_interval).count())) {
    d.ReadResources(now);
  }
  if (d.batch->events_size() >= static_cast<int>(d.opts.batch_max_events) ||
      (d.batch->events_size() > 0 &&
       now - d.batch_opened_ns >= static_cast<uint64_t>(std::chrono::nanoseconds(d.opts.batch_linger).count()))) {
    d.PublishBatch();
  }
  d.sink->Poll();
}

void Agent::Drain() {
  Impl& d = *impl_;
  while (d.probes->Poll(0) > 0) {
  }
  d.ReadFlows(NowNs(CLOCK_MONOTONIC));
  if (d.resources) d.ReadResources(NowNs(CLOCK_MONOTONIC));
  d.PublishBatch();
  d.sink->Poll();
}

void Agent::Run(const std::atomic<bool>& stop, std::chrono::steady_clock::time_point deadline,
                Health* health) {
  while (!stop.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < deadline) {
    Step(20);
    if (health) health->Beat();
  }
  Drain();
}

}  // namespace faultline::agent
