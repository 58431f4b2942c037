#include "faultline/model/window_record.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "faultline/common/text.h"
#include "metrics.pb.h"

namespace faultline::model {

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

}  // namespace faultline::model
