#include "faultline/stream/window_query.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "faultline/common/text.h"
#include "metrics.pb.h"

namespace faultline::stream {
bool IsLoopbackAddress(std::string_view address) {
  // "[v6]:port" or "[v6]", a bare v6 address (two colons or more), else "v4[:port]".
  std::string_view host = address;
  if (!host.empty() && host[0] == '[') {
    host = host.substr(1, host.find(']') == std::string_view::npos ? host.npos : host.find(']') - 1);
    return host == "::1";
  }
  if (std::count(host.begin(), host.end(), ':') >= 2) return host == "::1";
  return host.rfind("127.", 0) == 0;
}

std::string ListenerKey(std::string_view address, std::string_view machine) {
  return IsLoopbackAddress(address) ? std::string(machine) + "|" + std::string(address)
                                    : std::string(address);
}

bool IsAddressHost(std::string_view caller) {
  if (!caller.empty() && caller.front() == '[') return true;
  const std::string s(caller);
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string ExternalName(std::string_view address) {
  const size_t colon = address.rfind(':');
  const size_t bracket = address.rfind(']');
  if (colon == std::string_view::npos || (bracket != std::string_view::npos && colon < bracket) ||
      (bracket == std::string_view::npos && std::count(address.begin(), address.end(), ':') >= 2)) {
    return std::string(address);  // no port
  }
  int port = 0;
  for (char c : address.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return std::string(address);
    port = port * 10 + (c - '0');
  }
  return port >= kFirstEphemeralPort ? std::string(address.substr(0, colon)) : std::string(address);
}

std::string StoredWindow::CalleeEntity() const {
  return callee_service.empty() ? ExternalName(key.Dim(dim::kCallee)) : callee_service;
}

namespace {

bool Matches(const StoredWindow& w, const WindowQuery& q) {
  if (q.kind && w.key.kind != *q.kind) return false;
  if (w.start_s < q.since_s) return false;
  if (w.open && !q.include_open) return false;
  if (q.entity.empty() || w.key.Entity() == q.entity) return true;
  return std::any_of(w.key.dims.begin(), w.key.dims.end(),
                     [&](const auto& d) { return d.second == q.entity; });
}

}  // namespace

Result<std::vector<StoredWindow>> QueryWindows(const std::string& state_dir,
                                               const std::string& topic, const WindowQuery& query,
                                               int64_t* window_s) {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.rfind(topic + "-", 0) == 0)
      dirs.push_back(entry.path().string());
  }
  if (ec) return NotFound("state dir " + state_dir + ": " + ec.message());
  if (dirs.empty())
    return NotFound("state dir " + state_dir + ": no partition state for topic " + topic);
  std::sort(dirs.begin(), dirs.end());
  std::vector<StoredWindow> out;
  std::map<std::pair<int64_t, SeriesKey>, size_t> index;
  std::map<std::string, std::pair<int64_t, std::string>>
      listeners;  // address -> (latest start, service)
  for (const std::string& dir : dirs) {
    FAULTLINE_ASSIGN_OR_RETURN(auto windows, PartitionState::ReadWindows(dir, true, window_s));
    for (StoredWindow& w : windows) {
      if (w.key.kind == EntityKind::kListener) {
        auto& l = listeners[ListenerKey(w.key.Dim("address"), w.key.Dim("machine"))];
        if (w.start_s >= l.first) l = {w.start_s, std::string(w.key.Dim("service"))};
      }
      if (!Matches(w, query)) continue;
      if (query.merge_partitions) {
        auto [it, fresh] = index.try_emplace({w.start_s, w.key}, out.size());
        if (!fresh) {
          StoredWindow& into = out[it->second];
          FAULTLINE_RETURN_IF_ERROR(into.stats.Merge(w.stats));
          into.open = into.open || w.open;
          continue;
        }
      }
      out.push_back(std::move(w));
    }
  }
  for (StoredWindow& w : out) {
    if (w.key.kind != EntityKind::kEdge) continue;
    if (w.key.Dim("side") == "server" || IsNamedCallee(w.key.Dim("callee"))) {
      w.callee_service = std::string(w.key.Dim("callee"));
    } else if (auto it = listeners.find(ListenerKey(w.key.Dim("callee"), w.key.Dim("machine")));
               it != listeners.end()) {
      w.callee_service = it->second.second;
    }
  }
  std::sort(out.begin(), out.end(), [](const StoredWindow& a, const StoredWindow& b) {
    return std::tie(a.start_s, a.key) < std::tie(b.start_s, b.key);
  });
  return out;
}

std::string WindowToJson(const StoredWindow& w, int64_t window_s) {
  const WindowStats& s = w.stats;
  nlohmann::ordered_json j;
  j["start"] = w.start_s;
  j["end"] = w.start_s + window_s;
  j["open"] = w.open;
  j["kind"] = std::string(EntityKindName(w.key.kind));
  j["entity"] = w.key.Entity();
  nlohmann::ordered_json dims = nlohmann::ordered_json::object();
  for (const auto& [k, v] : w.key.dims) dims[k] = v;
  j["dims"] = dims;
  // Raw additive counts, then every catalog metric of the kind (null where undefined).
  const bool resources = w.key.kind == EntityKind::kMachine || w.key.kind == EntityKind::kContainer;
  if (!resources) {
    j["requests"] = s.requests;
    j["status_4xx"] = s.status_4xx;
    j["status_5xx"] = s.status_5xx;
    j["incomplete"] = s.incomplete;
    j["latency_samples"] = s.latency_ns.count();
  }
  if (w.key.kind == EntityKind::kEdge) {
    j["callee_service"] = w.callee_service;
    j["external"] = w.callee_service.empty();
    j["network"] = {{"retransmits", s.retransmits},
                    {"drops", s.drops},
                    {"resets_sent", s.resets_sent},
                    {"resets_received", s.resets_received},
                    {"connects_ok", s.connects_ok},
                    {"connects_refused", s.connects_refused},
                    {"connects_failed", s.connects_failed},
                    {"rtt_samples", s.rtt_samples},
                    {"packets_out", s.packets_out},
                    {"bytes_out", s.bytes_out},
                    {"packets_in", s.packets_in},
                    {"bytes_in", s.bytes_in}};
  }
  if (w.key.kind == EntityKind::kMachine) j["agent_dropped"] = s.agent_dropped;
  if (resources) {
    j["resources"] = {{"samples", s.resource_samples},
                      {"io_read_bytes", s.io_read_bytes},
                      {"io_write_bytes", s.io_write_bytes},
                      {"io_ops", s.io_ops},
                      {"oom_kills", s.oom_kills}};
  }
  if (w.key.kind == EntityKind::kContainer) {
    j["resources"]["cpu_usage_ns"] = s.cpu_usage_ns;
    j["resources"]["cpu_periods"] = s.cpu_periods;
    j["resources"]["cpu_throttled_periods"] = s.cpu_throttled_periods;
    j["resources"]["cpu_throttled_ns"] = s.cpu_throttled_ns;
  }
  // Listeners carry requests only; their metrics would repeat the service's.
  if (w.key.kind != EntityKind::kListener) {
    nlohmann::ordered_json metrics = nlohmann::ordered_json::object();
    for (const MetricInfo& m : Metrics()) {
      if (!m.kinds.Has(w.key.kind)) continue;
      const double v = ComputeMetric(m.id, s, window_s);
      metrics[std::string(m.name)] = std::isnan(v) ? nlohmann::ordered_json() : nlohmann::ordered_json(v);
    }
    j["metrics"] = std::move(metrics);
  }
  return j.dump();
}

void ToWindowRecord(const StoredWindow& w, int64_t window_s, int32_t partition,
                    v1::WindowRecord* r) {
  const WindowStats& s = w.stats;
  r->set_schema_version(2);
  r->set_kind(std::string(EntityKindName(w.key.kind)));
  // Names in the key may hold any bytes (it is bytes on the wire); the readable fields are UTF-8.
  r->set_entity(ValidUtf8(w.key.Entity()));
  for (const auto& [k, v] : w.key.dims) (*r->mutable_dims())[ValidUtf8(k)] = ValidUtf8(v);
  r->set_window_start_unix_s(w.start_s);
  r->set_window_seconds(static_cast<uint32_t>(window_s));
  r->set_input_partition(partition);
  r->set_series_key(w.key.Encode());
  r->set_requests(s.requests);
  r->set_status_4xx(s.status_4xx);
  r->set_status_5xx(s.status_5xx);
  r->set_incomplete(s.incomplete);
  std::string sketch;
  s.latency_ns.EncodeTo(&sketch);
  r->set_latency_sketch(sketch);
  r->set_latency_p50_ns(s.latency_ns.Quantile(0.5));
  r->set_latency_p90_ns(s.latency_ns.Quantile(0.9));
  r->set_latency_p99_ns(s.latency_ns.Quantile(0.99));
  r->set_latency_mean_ns(s.latency_ns.mean());
  r->set_retransmits(s.retransmits);
  for (const auto& [reason, n] : s.drops) (*r->mutable_drops())[reason] = n;
  r->set_resets_sent(s.resets_sent);
  r->set_resets_received(s.resets_received);
  r->set_connects_ok(s.connects_ok);
  r->set_connects_refused(s.connects_refused);
  r->set_connects_failed(s.connects_failed);
  r->set_connect_p99_ns(s.connect_ns.Quantile(0.99));
  r->set_rtt_samples(s.rtt_samples);
  r->set_rtt_mean_us(s.rtt_samples ? s.rtt_us_sum / static_cast<double>(s.rtt_samples) : 0);
  r->set_packets_out(s.packets_out);
  r->set_bytes_out(s.bytes_out);
  r->set_packets_in(s.packets_in);
  r->set_bytes_in(s.bytes_in);
  r->set_agent_dropped(s.agent_dropped);
  if (s.resource_samples) {
    r->set_resource_samples(s.resource_samples);
    r->set_cpu_busy_ratio(s.cpu_total_ns ? static_cast<double>(s.cpu_busy_ns) /
                                               static_cast<double>(s.cpu_total_ns)
                                         : 0);
    r->set_runq_p99_ns(s.runq_ns.Quantile(0.99));
    r->set_runq_mean_ns(s.runq_ns.mean());
    r->set_major_faults(s.major_faults);
    r->set_memory_available_bytes(s.memory_available_sum / s.resource_samples);
    r->set_io_read_bytes(s.io_read_bytes);
    r->set_io_write_bytes(s.io_write_bytes);
    r->set_io_ops(s.io_ops);
    r->set_io_p99_ns(s.io_ns.Quantile(0.99));
  }
  for (const MetricInfo& m : Metrics()) {
    if (!m.kinds.Has(w.key.kind) || w.key.kind == EntityKind::kListener) continue;
    const double v = ComputeMetric(m.id, s, window_s);
    if (!std::isnan(v)) (*r->mutable_metrics())[std::string(m.name)] = v;
  }
  std::string stats;
  s.EncodeTo(&stats);
  r->set_window_stats(std::move(stats));
}

}  // namespace faultline::stream
