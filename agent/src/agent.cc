#include "faultline/agent/agent.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <curl/curl.h>

#include "agent_impl.h"
#include "faultline/common/health.h"

namespace faultline::agent {

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
  for (const char* name : kUserSpaceDropReasons) AgentDropped(metrics, name);
  for (const char* name : kKernelStatNames) {
    if (name) AgentDropped(metrics, name);
  }
  ProbeSource::Handlers handlers{
      [impl](const fl_sock_event& e, std::string_view p) { impl->OnSock(e, p); },
      [impl](const fl_tcp_event& e) { impl->OnTcp(e); },
      [impl](const fl_oom_event& e) { impl->OnOom(e); }};
  if (options.probe_source) {
    FAULTLINE_ASSIGN_OR_RETURN(impl->probes, options.probe_source(options.probes, std::move(handlers)));
  } else {
    FAULTLINE_ASSIGN_OR_RETURN(impl->probes,
                               KernelProbes::Open(options.probes, std::move(handlers.on_sock),
                                                  std::move(handlers.on_tcp),
                                                  std::move(handlers.on_oom)));
  }
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
