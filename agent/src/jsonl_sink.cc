#include <arpa/inet.h>

#include <nlohmann/json.hpp>
#include <ostream>
#include <unordered_map>

#include "events.pb.h"
#include "faultline/agent/sinks.h"

namespace faultline::agent {
// One event as a JSON line, with its process identity (null: none known) joined in.
std::string EventJson(const v1::EventBatch& batch, const v1::Event& e, const v1::ProcessIdentity* process);

namespace {

std::string EndpointText(const v1::Endpoint& ep) {
  char buf[INET6_ADDRSTRLEN] = "?";
  const std::string& a = ep.addr();
  if (a.size() == 4) {
    inet_ntop(AF_INET, a.data(), buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ep.port());
  }
  if (a.size() == 16) {
    inet_ntop(AF_INET6, a.data(), buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ep.port());
  }
  return "?:" + std::to_string(ep.port());
}

const char* RoleName(v1::Role r) {
  return r == v1::ROLE_CLIENT ? "client" : r == v1::ROLE_SERVER ? "server" : "unknown";
}

class JsonlSink : public BatchSink {
 public:
  explicit JsonlSink(std::ostream& out) : out_(out) {}
  void Publish(const v1::EventBatch& batch) override {
    // The process table is indexed once per batch, not searched once per event.
    std::unordered_map<uint32_t, const v1::ProcessIdentity*> processes;
    for (const auto& p : batch.processes()) processes.emplace(p.pid(), &p);
    for (const auto& e : batch.events()) {
      auto it = e.pid() ? processes.find(e.pid()) : processes.end();
      out_ << EventJson(batch, e, it == processes.end() ? nullptr : it->second) << '\n';
    }
    out_.flush();
  }

 private:
  std::ostream& out_;
};

}  // namespace

std::string EventToJson(const v1::EventBatch& batch, int index) {
  const v1::Event& e = batch.events(index);
  const v1::ProcessIdentity* process = nullptr;
  for (const auto& p : batch.processes()) {
    if (e.pid() != 0 && p.pid() == e.pid()) {
      process = &p;
      break;
    }
  }
  return EventJson(batch, e, process);
}

// count, mean and the p50/p90/p99 upper bucket bounds in ms, and the buckets themselves.
nlohmann::ordered_json HistogramJson(const v1::Log2Histogram& h) {
  nlohmann::ordered_json j;
  j["count"] = h.count();
  j["mean_ms"] = h.count() ? static_cast<double>(h.sum_ns()) / static_cast<double>(h.count()) / 1e6 : 0.0;
  for (auto [name, q] : {std::pair{"p50_ms", 0.5}, std::pair{"p90_ms", 0.9}, std::pair{"p99_ms", 0.99}}) {
    double bound = 0;
    uint64_t seen = 0;
    for (int i = 0; i < h.buckets_size(); ++i) {
      seen += h.buckets(i);
      if (static_cast<double>(seen) >= q * static_cast<double>(h.count())) {
        bound = static_cast<double>(uint64_t{2} << i) / 1e6;  // the bucket's upper bound
        break;
      }
    }
    j[name] = bound;
  }
  j["log2_ns_buckets"] = std::vector<uint64_t>(h.buckets().begin(), h.buckets().end());
  return j;
}

nlohmann::ordered_json BlockIoJson(const google::protobuf::RepeatedPtrField<v1::BlockIo>& ios) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& b : ios) {
    out.push_back({{"device", b.device()},
                   {"major", b.major()},
                   {"minor", b.minor()},
                   {"read_bytes", b.read_bytes()},
                   {"write_bytes", b.write_bytes()},
                   {"read_ops", b.read_ops()},
                   {"write_ops", b.write_ops()},
                   {"latency", HistogramJson(b.latency())}});
  }
  return out;
}

std::string EventJson(const v1::EventBatch& batch, const v1::Event& e, const v1::ProcessIdentity* process) {
  nlohmann::ordered_json j;
  j["time_unix_ns"] = e.time_unix_ns();
  j["node"] = batch.node().name();
  if (e.pid() != 0) {
    j["pid"] = e.pid();
    if (process) {
      j["comm"] = process->comm();
      if (!process->container_id().empty()) j["container_id"] = process->container_id();
      if (!process->pod_uid().empty()) j["pod_uid"] = process->pod_uid();
      j["cgroup"] = process->cgroup_path();
    }
  }
  if (e.has_connection()) {
    j["local"] = EndpointText(e.connection().local());
    j["remote"] = EndpointText(e.connection().remote());
    j["netns"] = e.connection().netns();
  }
  switch (e.kind_case()) {
    case v1::Event::kHttp: {
      const auto& h = e.http();
      j["type"] = "http";
      j["role"] = RoleName(h.role());
      j["method"] = h.method();
      j["path"] = h.path();
      j["status"] = h.status();
      j["version"] = h.version();
      j["request_bytes"] = h.request_bytes();
      j["response_bytes"] = h.response_bytes();
      j["latency_ms"] = static_cast<double>(h.latency_ns()) / 1e6;
      j["ttfb_ms"] = static_cast<double>(h.time_to_first_byte_ns()) / 1e6;
      j["outcome"] = v1::HttpExchange::Outcome_Name(h.outcome());
      break;
    }
    case v1::Event::kTcpConnect:
      j["type"] = "tcp_connect";
      j["result"] = v1::TcpConnect::Result_Name(e.tcp_connect().result());
      j["duration_ms"] = static_cast<double>(e.tcp_connect().duration_ns()) / 1e6;
      break;
    case v1::Event::kTcpReset:
      j["type"] = "tcp_reset";
      j["direction"] = v1::TcpReset::Direction_Name(e.tcp_reset().direction());
      j["tcp_state"] = e.tcp_reset().tcp_state();
      j["role"] = RoleName(e.tcp_reset().role());
      break;
    case v1::Event::kFlowStats: {
      const auto& f = e.flow_stats();
      j["type"] = "flow_stats";
      j["role"] = RoleName(f.role());
      j["interval_ms"] = f.interval_ns() / 1'000'000;
      j["packets_out"] = f.packets_out();
      j["bytes_out"] = f.bytes_out();
      j["packets_in"] = f.packets_in();
      j["bytes_in"] = f.bytes_in();
      j["retransmits"] = f.retransmits();
      j["srtt_us"] = f.srtt_us();
      j["drops"] = nlohmann::ordered_json::object();
      for (const auto& [reason, n] : f.drops()) j["drops"][reason] = n;
      break;
    }
    case v1::Event::kAgentStats: {
      const auto& s = e.agent_stats();
      j["type"] = "agent_stats";
      j["interval_ms"] = s.interval_ns() / 1'000'000;
      j["events"] = nlohmann::ordered_json::object();
      for (const auto& [k, n] : s.events()) j["events"][k] = n;
      j["dropped"] = nlohmann::ordered_json::object();
      for (const auto& [k, n] : s.dropped()) j["dropped"][k] = n;
      break;
    }
    case v1::Event::kCgroupResources: {
      const auto& c = e.cgroup_resources();
      j["type"] = "cgroup_resources";
      j["interval_ms"] = c.interval_ns() / 1'000'000;
      j["cgroup"] = c.cgroup_path();
      if (!c.container_id().empty()) j["container_id"] = c.container_id();
      if (!c.pod_uid().empty()) j["pod_uid"] = c.pod_uid();
      j["cgroup_version"] = c.cgroup_version();
      j["cpu_usage_ms"] = static_cast<double>(c.cpu_usage_ns()) / 1e6;
      j["cpu_periods"] = c.cpu_periods();
      j["cpu_throttled_periods"] = c.cpu_throttled_periods();
      j["cpu_throttled_ms"] = static_cast<double>(c.cpu_throttled_ns()) / 1e6;
      j["runq_latency"] = HistogramJson(c.runq_latency());
      j["memory_usage_bytes"] = c.memory_usage_bytes();
      j["memory_limit_bytes"] = c.memory_limit_bytes();
      j["memory_working_set_bytes"] = c.memory_working_set_bytes();
      j["major_page_faults"] = c.major_page_faults();
      j["oom_kills"] = c.oom_kills();
      j["block_io"] = BlockIoJson(c.block_io());
      break;
    }
    case v1::Event::kMachineResources: {
      const auto& m = e.machine_resources();
      j["type"] = "machine_resources";
      j["interval_ms"] = m.interval_ns() / 1'000'000;
      j["cpus"] = m.cpus();
      j["cpu_busy_ms"] = static_cast<double>(m.cpu_busy_ns()) / 1e6;
      j["cpu_total_ms"] = static_cast<double>(m.cpu_total_ns()) / 1e6;
      j["runq_latency"] = HistogramJson(m.runq_latency());
      j["memory_total_bytes"] = m.memory_total_bytes();
      j["memory_available_bytes"] = m.memory_available_bytes();
      j["major_page_faults"] = m.major_page_faults();
      j["block_io"] = BlockIoJson(m.block_io());
      break;
    }
    case v1::Event::kOomKill: {
      const auto& k = e.oom_kill();
      j["type"] = "oom_kill";
      j["victim_comm"] = k.victim_comm();
      j["memory_cgroup"] = k.cgroup_path();
      if (!k.container_id().empty()) j["victim_container_id"] = k.container_id();
      if (!k.pod_uid().empty()) j["victim_pod_uid"] = k.pod_uid();
      j["total_vm_kb"] = k.total_vm_kb();
      j["anon_rss_kb"] = k.anon_rss_kb();
      j["trigger_pid"] = k.trigger_pid();
      j["trigger_comm"] = k.trigger_comm();
      break;
    }
    default: j["type"] = "unknown"; break;
  }
  return j.dump();
}

std::unique_ptr<BatchSink> MakeJsonlSink(std::ostream& out) { return std::make_unique<JsonlSink>(out); }

}  // namespace faultline::agent
