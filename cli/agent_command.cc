#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "faultline/agent/agent.h"
#include "faultline/agent/sinks.h"
#include "faultline/common/log.h"
#include "faultline/common/health.h"
#include "faultline/common/http_server.h"
#include "faultline/common/metrics.h"
#include "faultline/stream/embedded_broker.h"

namespace faultline::cli {
namespace {

struct AgentFlags {
  std::string brokers;
  std::string topic = "faultline.events";
  std::string output = "kafka";
  double duration_s = -1;  // < 0: until signalled
  std::string metrics_addr;
  uint32_t capture_bytes = 1024;
  std::string syscall_hooks = "tracepoints";
  std::string node_name;
  std::string proc_root = "/proc";
  std::string netns;           // a path to a network namespace (/run/netns/NAME)
  std::string machine_cgroup;  // a cgroup subtree standing for the machine
  int flow_interval_ms = 1000;
  int resource_interval_ms = 1000;
  bool no_resources = false;
  size_t max_connections = 65536;
  std::vector<std::string> exclude_endpoints;
  bool trace_pipeline = false;
  std::vector<std::string> runtime_sockets;
  bool no_container_meta = false;
  std::string kube_api, kube_token_file, kube_ca_file;
  bool kube_services = false;
};

int RunAgent(const AgentFlags& f) {
  MetricsRegistry metrics;
  Health health;
  health.SetReady(false, "loading the eBPF programs");
  std::unique_ptr<HttpServer> metrics_server;
  if (!f.metrics_addr.empty()) {
    HttpServerOptions ho;
    ho.addr = f.metrics_addr, ho.flag = "--metrics-addr", ho.metrics = &metrics, ho.health = &health;
    auto server = HttpServer::Start(std::move(ho));
    if (!server.ok()) {
      std::cerr << "faultline agent: " << server.status().message() << "\n";
      return 2;
    }
    metrics_server = std::move(server).value();
    spdlog::info("metrics on http://{}/metrics, liveness on /healthz, readiness on /readyz",
                 f.metrics_addr);
  }

  std::unique_ptr<stream::EmbeddedBroker> broker;
  std::unique_ptr<agent::BatchSink> sink;
  std::string ko_brokers;
  if (f.output == "jsonl") {
    sink = agent::MakeJsonlSink(std::cout);
  } else {
    agent::KafkaSinkOptions ko;
    ko.brokers = f.brokers;
    ko.topic = f.topic;
    if (ko.brokers.empty()) {
      auto b = stream::EmbeddedBroker::Start({});
      if (!b.ok()) {
        std::cerr << "faultline agent: " << b.status().message() << "\n";
        return 1;
      }
      broker = std::move(b).value();
      ko.brokers = broker->bootstrap();
      spdlog::info("no --brokers given: publishing to the embedded broker at {}", ko.brokers);
    }
    ko_brokers = ko.brokers;
    auto k = agent::MakeKafkaSink(ko, &metrics);
    if (!k.ok()) {
      std::cerr << "faultline agent: " << k.status().message() << "\n";
      return 2;
    }
    sink = std::move(k).value();
  }

  agent::AgentOptions opts;
  opts.probes.capture_bytes = f.capture_bytes;
  opts.probes.syscall_hooks = f.syscall_hooks == "raw" ? agent::ProbeOptions::SyscallHooks::kRaw
                                                      : agent::ProbeOptions::SyscallHooks::kTracepoints;
  opts.probes.ignore_tgid = static_cast<uint32_t>(getpid());
  opts.node_name = f.node_name;
  opts.proc_root = f.proc_root;
  if (!f.netns.empty()) {
    struct stat st {};
    if (stat(f.netns.c_str(), &st) != 0) {
      std::cerr << "faultline agent: --netns " << f.netns << ": " << std::strerror(errno) << "\n";
      return 2;
    }
    opts.probes.netns = static_cast<uint32_t>(st.st_ino);  // a namespace file's inode is its number
  }
  if (!f.machine_cgroup.empty() && f.machine_cgroup.front() != '/') {
    std::cerr << "faultline agent: --machine-cgroup " << f.machine_cgroup
              << ": must be a path from the hierarchy's root, like /faultline-lab/m1\n";
    return 2;
  }
  opts.machine_cgroup = f.machine_cgroup;
  opts.flow_interval = std::chrono::milliseconds(f.flow_interval_ms);
  opts.resource_interval = std::chrono::milliseconds(f.resource_interval_ms);
  opts.probes.resources = !f.no_resources;
  opts.max_connections = f.max_connections;
  // The pipeline's own connections (to the brokers this agent publishes to, and any named) are
  // not the cluster's traffic.
  std::string excluded;
  for (const std::string& e : f.exclude_endpoints) excluded += e + ",";
  if (!f.trace_pipeline && f.output == "kafka") excluded += ko_brokers;
  auto filters = agent::ResolveEndpoints(excluded);
  if (!filters.ok()) {
    std::cerr << "faultline agent: --exclude-endpoint: " << filters.status().message() << "\n";
    return 2;
  }
  opts.excluded_endpoints = std::move(filters).value();
  opts.container_meta = !f.no_container_meta;
  if (f.kube_api == "in-cluster") {
    auto c = agent::InClusterConfig();
    if (!c.ok()) {
      std::cerr << "faultline agent: --kube-api in-cluster: " << c.status().message() << "\n";
      return 2;
    }
    opts.kube = std::move(c).value();
  } else if (!f.kube_api.empty()) {
    if (f.kube_api.rfind("http://", 0) != 0 && f.kube_api.rfind("https://", 0) != 0) {
      std::cerr << "faultline agent: --kube-api '" << f.kube_api
                << "': expected in-cluster or an http(s):// URL\n";
      return 2;
    }
    agent::KubeConfig c{f.kube_api, "", f.kube_ca_file};
    if (!f.kube_token_file.empty()) {
      std::ifstream t(f.kube_token_file);
      if (!t) {
        std::cerr << "faultline agent: --kube-token-file " << f.kube_token_file << ": cannot be read\n";
        return 2;
      }
      std::getline(t, c.token);
    }
    opts.kube = c;
  }
  opts.kube_services = f.kube_services;
  if (!f.runtime_sockets.empty()) {
    opts.containers.sockets.clear();
    for (const std::string& s : f.runtime_sockets) {
      const size_t eq = s.find('=');
      const std::string runtime = eq == std::string::npos ? "" : s.substr(0, eq);
      if (runtime != "docker" && runtime != "podman" && runtime != "crio" && runtime != "containerd") {
        std::cerr << "faultline agent: --runtime-socket '" << s
                  << "': expected RUNTIME=PATH with RUNTIME docker, podman, crio or containerd\n";
        return 2;
      }
      opts.containers.sockets.push_back({runtime, s.substr(eq + 1)});
    }
  }
  auto a = agent::Agent::Start(opts, sink.get(), &metrics);
  if (!a.ok()) {
    // 3: this machine lacks something the agent needs (privilege, BTF, tracefs, BPF, a
    // tracepoint); 2: bad flags; 1: anything else (a program the verifier refused included).
    std::cerr << "faultline agent: " << a.status().message() << "\n";
    if (agent::IsMissingCapability(a.status())) return 3;
    return a.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  const auto deadline = f.duration_s >= 0
                            ? std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(f.duration_s * 1000))
                            : std::chrono::steady_clock::time_point::max();
  health.SetReady(true);
  (*a)->Run(g_stop, deadline, &health);
  if (Status s = sink->Flush(std::chrono::seconds(10)); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  return 0;
}

}  // namespace

Runner RegisterAgent(CLI::App& app) {
  auto f = std::make_shared<AgentFlags>();
  CLI::App* sub = app.add_subcommand("agent", "Watch this node's HTTP traffic and TCP health with eBPF and publish it");
  sub->add_option("--brokers", f->brokers, "Kafka bootstrap servers HOST:PORT[,…]; default: an embedded broker");
  sub->add_option("--topic", f->topic, "Kafka topic")->capture_default_str();
  sub->add_option("--output", f->output, "kafka: publish protobuf batches; jsonl: print one JSON object per event")
      ->check(CLI::IsMember({"kafka", "jsonl"}))
      ->capture_default_str();
  sub->add_option("--duration", f->duration_s, "Stop cleanly after this many seconds; 0 loads the probes and stops (default: run until signalled)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--metrics-addr", f->metrics_addr, "Serve Prometheus /metrics on HOST:PORT (default: off)");
  sub->add_option("--capture-bytes", f->capture_bytes, "Payload bytes captured per socket syscall")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  sub->add_option("--syscall-hooks", f->syscall_hooks,
                  "How socket syscalls are hooked: raw (the raw syscall tracepoints, x86-64) or "
                  "tracepoints (one syscalls:* tracepoint per syscall)")
      ->check(CLI::IsMember({"raw", "tracepoints"}))
      ->capture_default_str();
  sub->add_option("--node-name", f->node_name, "Node name in every batch (default: $NODE_NAME or the host name)");
  sub->add_option("--proc-root", f->proc_root, "Where the host's procfs is mounted")->capture_default_str();
  sub->add_option("--netns", f->netns,
                  "An emulated machine: trace only the sockets of this network namespace (a path such "
                  "as /run/netns/NAME); default: every namespace");
  sub->add_option("--machine-cgroup", f->machine_cgroup,
                  "An emulated machine: report only cgroups under this path (as /faultline-lab/m1, "
                  "in each hierarchy) and take the machine's CPU, memory, run queue and I/O from it");
  sub->add_option("--flow-interval-ms", f->flow_interval_ms, "Read-out period of flow counters")
      ->check(CLI::Range(50, 600000))
      ->capture_default_str();
  sub->add_option("--resource-interval-ms", f->resource_interval_ms,
                  "Period of the CPU, run-queue, memory and block I/O summaries")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  sub->add_flag("--no-resources", f->no_resources,
                "Do not load the resource-pressure programs (run queue, block I/O, OOM kills)");
  sub->add_option("--exclude-endpoint", f->exclude_endpoints,
                  "Do not report connections with an end at HOST:PORT (repeatable; the brokers "
                  "published to are left out already)");
  sub->add_flag("--trace-pipeline", f->trace_pipeline,
                "Report the connections to the brokers this agent publishes to as well");
  sub->add_option("--runtime-socket", f->runtime_sockets,
                  "Ask this container runtime socket for container names, images and Kubernetes "
                  "labels: RUNTIME=PATH, RUNTIME docker, podman or crio, or containerd=its runtime v2 "
                  "task directory (repeatable; replaces the defaults /run/docker.sock, "
                  "/run/podman/podman.sock, /run/crio/crio.sock, "
                  "/run/containerd/io.containerd.runtime.v2.task)");
  sub->add_flag("--no-container-meta", f->no_container_meta,
                "Do not ask container runtimes; name containers by their cgroup path only");
  sub->add_option("--kube-api", f->kube_api,
                  "Watch this node's pods (and with --kube-watch-services the Services) on the "
                  "Kubernetes API: in-cluster (service-account token and CA) or a URL (default: off)");
  sub->add_option("--kube-token-file", f->kube_token_file, "Bearer token for --kube-api URL");
  sub->add_option("--kube-ca-file", f->kube_ca_file, "CA bundle for --kube-api URL");
  sub->add_flag("--kube-watch-services", f->kube_services,
                "Also watch Services: calls to a ClusterIP are named {namespace}/{service}");
  sub->add_option("--max-connections", f->max_connections, "Bound of the connection table")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  return [f] { return RunAgent(*f); };
}

}  // namespace faultline::cli
