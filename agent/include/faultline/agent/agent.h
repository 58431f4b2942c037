// The node agent: loads the kernel probes, turns their events into HTTP exchanges, TCP connect
// outcomes, resets and per-flow health, ties each to its process, container and pod, and hands
// compact EventBatch messages (schema/events.proto) to a BatchSink (Kafka, JSON lines, a test).
//
// Everything that is dropped anywhere (kernel ring buffer, parser, connection table, sink) is
// counted in the metrics registry and reported in an AgentStats event every flow interval.
// An Agent is driven by one thread (Run or Step/Drain); it is not thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/agent/container_meta.h"
#include "faultline/agent/kernel_probes.h"
#include "faultline/agent/kube.h"
#include "faultline/common/metrics.h"
#include "faultline/common/status.h"

namespace faultline::v1 {
class EventBatch;
}

namespace faultline {
class Health;  // faultline/common/health.h
}  // namespace faultline

namespace faultline::agent {

// faultline_agent_dropped_total{reason}: every piece of data the agent lost or gave up on.
inline prometheus::Counter& AgentDropped(MetricsRegistry* metrics, const std::string& reason) {
  return metrics->Counter("faultline_agent_dropped_total",
                          "Data the agent lost or gave up on, by reason", {{"reason", reason}});
}

// Where finished batches go.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  // Takes one complete batch, on the agent's thread. Must not block for long; a sink that cannot
  // accept the batch counts the loss itself.
  virtual void Publish(const v1::EventBatch& batch) = 0;
  // Serves background work (delivery reports); called on every agent step.
  virtual void Poll() {}
  // Waits up to `timeout` for everything published so far to be delivered.
  virtual Status Flush(std::chrono::milliseconds timeout) { return Status::Ok(); }
};

// One end of a connection the agent does not report: an address (IPv4 in the first 4 bytes, the
// rest zero) and a port.
struct EndpointFilter {
  std::array<uint8_t, 16> addr{};
  uint16_t port = 0;
  bool operator==(const EndpointFilter&) const = default;
};

// "host:port,host:port" (the form of --brokers; "[v6]:port" for IPv6) -> every address each host
// resolves to. Errors: kInvalidArgument naming the entry that has no port or does not resolve.
Result<std::vector<EndpointFilter>> ResolveEndpoints(const std::string& host_ports);

// Opens the source of kernel events with the handlers the agent gives it.
using ProbeSourceFactory = std::function<Result<std::unique_ptr<ProbeSource>>(
    const ProbeOptions&, ProbeSource::Handlers)>;

struct AgentOptions {
  ProbeOptions probes;
  // Where kernel events come from. Default: empty, the kernel's (KernelProbes::Open); tests give
  // recorded events.
  ProbeSourceFactory probe_source;
  // Node name in every batch. Default: $NODE_NAME, else the host name.
  std::string node_name;
  // procfs of the host. Default: /proc.
  std::string proc_root = "/proc";
  // Bound of the connection table. Default: 65536.
  size_t max_connections = 65536;
  // A connection with no traffic for this long is forgotten. Default: 300 s.
  std::chrono::seconds connection_idle{300};
  // How often flow counters and agent stats are read out. Default: 1 s.
  std::chrono::milliseconds flow_interval{1000};
  // How often resource pressure (cgroups and the machine) is summarized, when probes.resources
  // is on. Default: 1 s.
  std::chrono::milliseconds resource_interval{1000};
  // A batch is published when it holds this many events... Default: 2000.
  size_t batch_max_events = 2000;
  // ...or when its oldest event is this old. Default: 200 ms.
  std::chrono::milliseconds batch_linger{200};
  // Connections with either end here are the pipeline's own (its Kafka brokers): their flows,
  // connects and resets are not reported (counted in faultline_agent_excluded_total). The agent's
  // own sockets are always left out. Default: none (the CLI adds the brokers it publishes to).
  std::vector<EndpointFilter> excluded_endpoints;
  // Container metadata from the runtimes' sockets (container_meta.h); off: processes and cgroups
  // carry only what their cgroup path says. Default: on, with the default sockets.
  bool container_meta = true;
  ContainerMetaOptions containers;
  // The Kubernetes API server, when the agent runs in a cluster (in-cluster config, or a server
  // given): it watches its own node's pods (fieldSelector spec.nodeName), whose owner references
  // name workloads exactly and whose UIDs name pods the runtime could not be asked about.
  // Default: none.
  std::optional<KubeConfig> kube;
  // An emulated machine (the fault-injection lab runs several on one host, one network namespace
  // and one cgroup subtree each, with one agent per machine): only this network namespace's
  // sockets are reported (probes.netns, its inode), and only cgroups under machine_cgroup, whose
  // CPU, memory, run queue and I/O stand for the machine's. Default: the whole host.
  std::string machine_cgroup;
  // Also watch Services, so that calls to a ClusterIP name their callee "{namespace}/{service}"
  // (one agent per cluster is enough: the rest of the pipeline sees the names). Default: off.
  bool kube_services = false;
};

class Agent {
 public:
  // Loads the probes (see KernelProbes::Open for errors). `sink` and `metrics` must outlive the
  // agent.
  static Result<std::unique_ptr<Agent>> Start(const AgentOptions& options, BatchSink* sink,
                                              MetricsRegistry* metrics);
  ~Agent();

  // Steps until `stop` is set or `deadline` passes, then drains.
  // `health`, when given, hears a beat every step (its /healthz).
  void Run(const std::atomic<bool>& stop, std::chrono::steady_clock::time_point deadline,
           Health* health = nullptr);
  // Waits up to `timeout_ms` for kernel events and processes them; reads flows and publishes the
  // batch when they are due.
  void Step(int timeout_ms);
  // Processes everything the kernel has queued, reads flows, and publishes the open batch.
  void Drain();

 private:
  Agent() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline::agent
