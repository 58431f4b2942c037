#include "faultline/model/window_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "faultline/common/varint.h"

namespace faultline::model {

std::string_view SeriesKey::Dim(std::string_view name) const {
  for (const auto& [k, v] : dims) {
    if (k == name) return v;
  }
  return {};
}

std::string SeriesKey::Entity() const {
  switch (kind) {
    case EntityKind::kService:
      return std::string(Dim(dim::kService));
    case EntityKind::kEdge:
      return std::string(Dim(dim::kCaller)) + "->" + std::string(Dim(dim::kCallee));
    case EntityKind::kListener:
      return std::string(Dim(dim::kService));
    case EntityKind::kMachine:
      return std::string(Dim(dim::kMachine));
    case EntityKind::kContainer:
      return std::string(Dim(dim::kContainer));
    default:
      break;  // the stream makes no series of other kinds
  }
  return {};
}

std::string SeriesKey::Encode() const {
  std::string out;
  out.push_back(static_cast<char>(kind));
  for (const auto& [k, v] : dims) {
    PutBytes(&out, k);
    PutBytes(&out, v);
  }
  return out;
}

Result<SeriesKey> SeriesKey::Decode(std::string_view bytes) {
  if (bytes.empty()) return InvalidArgument("series key: empty");
  SeriesKey key;
  const auto kind = static_cast<uint8_t>(bytes[0]);
  if (kind < 1 || kind > kMaxEntityKind || !kStreamKinds.Has(static_cast<EntityKind>(kind)))
    return InvalidArgument("series key: unknown kind " + std::to_string(kind));
  key.kind = static_cast<EntityKind>(kind);
  ByteReader r(bytes.substr(1));
  while (!r.empty()) {
    std::string_view k, v;
    if (!r.Bytes(&k) || !r.Bytes(&v)) return InvalidArgument("series key: truncated dimension");
    if (!key.dims.empty() && key.dims.back().first >= k) {
      return InvalidArgument("series key: dimension '" + std::string(k) + "' out of order");
    }
    key.dims.emplace_back(k, v);
  }
  return key;
}

Status WindowStats::Merge(const WindowStats& o) {
  requests += o.requests, status_4xx += o.status_4xx, status_5xx += o.status_5xx,
      incomplete += o.incomplete;
  FAULTLINE_RETURN_IF_ERROR(latency_ns.Merge(o.latency_ns));
  retransmits += o.retransmits;
  for (const auto& [reason, n] : o.drops) drops[reason] += n;
  resets_sent += o.resets_sent, resets_received += o.resets_received;
  connects_ok += o.connects_ok, connects_refused += o.connects_refused,
      connects_failed += o.connects_failed;
  FAULTLINE_RETURN_IF_ERROR(connect_ns.Merge(o.connect_ns));
  rtt_samples += o.rtt_samples, rtt_us_sum = SaturatingAdd(rtt_us_sum, o.rtt_us_sum);
  packets_out += o.packets_out, bytes_out += o.bytes_out, packets_in += o.packets_in,
      bytes_in += o.bytes_in;
  agent_dropped += o.agent_dropped;
  resource_samples += o.resource_samples;
  cpu_busy_ns += o.cpu_busy_ns, cpu_total_ns += o.cpu_total_ns;
  FAULTLINE_RETURN_IF_ERROR(runq_ns.Merge(o.runq_ns));
  major_faults += o.major_faults;
  memory_available_sum += o.memory_available_sum;
  io_read_bytes += o.io_read_bytes, io_write_bytes += o.io_write_bytes, io_ops += o.io_ops;
  FAULTLINE_RETURN_IF_ERROR(io_ns.Merge(o.io_ns));
  oom_kills += o.oom_kills;
  cpu_usage_ns += o.cpu_usage_ns;
  cpu_periods += o.cpu_periods, cpu_throttled_periods += o.cpu_throttled_periods,
      cpu_throttled_ns += o.cpu_throttled_ns;
  memory_working_set_sum += o.memory_working_set_sum;
  memory_limited_samples += o.memory_limited_samples;
  memory_usage_ratio_sum = SaturatingAdd(memory_usage_ratio_sum, o.memory_usage_ratio_sum);
  return Status::Ok();
}

namespace {
// 1: golden metrics, network health, agent_dropped. 2: 1 + resource pressure. 3: 2 + OOM kills
// and container figures. Read: all three.
constexpr uint64_t kFormat = 3;
}  // namespace

void WindowStats::EncodeTo(std::string* out) const {
  PutVarint(out, kFormat);
  for (uint64_t v : {requests, status_4xx, status_5xx, incomplete}) PutVarint(out, v);
  std::string sketch;
  latency_ns.EncodeTo(&sketch);
  PutBytes(out, sketch);
  PutVarint(out, retransmits);
  PutVarint(out, drops.size());
  for (const auto& [reason, n] : drops) {
    PutBytes(out, reason);
    PutVarint(out, n);
  }
  for (uint64_t v : {resets_sent, resets_received, connects_ok, connects_refused, connects_failed})
    PutVarint(out, v);
  sketch.clear();
  connect_ns.EncodeTo(&sketch);
  PutBytes(out, sketch);
  PutVarint(out, rtt_samples);
  PutDouble(out, rtt_us_sum);
  for (uint64_t v : {packets_out, bytes_out, packets_in, bytes_in, agent_dropped})
    PutVarint(out, v);
  for (uint64_t v : {resource_samples, cpu_busy_ns, cpu_total_ns, major_faults,
                     memory_available_sum, io_read_bytes, io_write_bytes, io_ops})
    PutVarint(out, v);
  sketch.clear();
  runq_ns.EncodeTo(&sketch);
  PutBytes(out, sketch);
  sketch.clear();
  io_ns.EncodeTo(&sketch);
  PutBytes(out, sketch);
  for (uint64_t v : {oom_kills, cpu_usage_ns, cpu_periods, cpu_throttled_periods, cpu_throttled_ns,
                     memory_working_set_sum, memory_limited_samples})
    PutVarint(out, v);
  PutDouble(out, memory_usage_ratio_sum);
}

Result<WindowStats> WindowStats::Decode(std::string_view bytes) {
  ByteReader r(bytes);
  WindowStats s;
  uint64_t format = 0;
  if (!r.Varint(&format)) return InvalidArgument("window stats: empty");
  if (format < 1 || format > 3)
    return InvalidArgument("window stats: format " + std::to_string(format) + ", expected 1 to 3");
  auto truncated = [](const char* where) {
    return InvalidArgument(std::string("window stats: truncated at ") + where);
  };
  for (uint64_t* v : {&s.requests, &s.status_4xx, &s.status_5xx, &s.incomplete}) {
    if (!r.Varint(v)) return truncated("golden counts");
  }
  std::string_view sketch;
  if (!r.Bytes(&sketch)) return truncated("latency");
  FAULTLINE_ASSIGN_OR_RETURN(s.latency_ns, LatencySketch::Decode(sketch));
  uint64_t n = 0;
  if (!r.Varint(&s.retransmits) || !r.Varint(&n)) return truncated("retransmits");
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view reason;
    uint64_t count = 0;
    if (!r.Bytes(&reason) || !r.Varint(&count)) return truncated("drops");
    s.drops[std::string(reason)] = count;
  }
  for (uint64_t* v : {&s.resets_sent, &s.resets_received, &s.connects_ok, &s.connects_refused,
                      &s.connects_failed}) {
    if (!r.Varint(v)) return truncated("resets and connects");
  }
  if (!r.Bytes(&sketch)) return truncated("connect latency");
  FAULTLINE_ASSIGN_OR_RETURN(s.connect_ns, LatencySketch::Decode(sketch));
  if (!r.Varint(&s.rtt_samples) || !r.Double(&s.rtt_us_sum)) return truncated("rtt");
  if (!(std::isfinite(s.rtt_us_sum) && s.rtt_us_sum >= 0)) {
    return InvalidArgument("window stats: rtt sum " + std::to_string(s.rtt_us_sum) +
                           " is not a finite non-negative number");
  }
  for (uint64_t* v : {&s.packets_out, &s.bytes_out, &s.packets_in, &s.bytes_in, &s.agent_dropped}) {
    if (!r.Varint(v)) return truncated("packets");
  }
  if (format >= 2) {
    for (uint64_t* v : {&s.resource_samples, &s.cpu_busy_ns, &s.cpu_total_ns, &s.major_faults,
                        &s.memory_available_sum, &s.io_read_bytes, &s.io_write_bytes, &s.io_ops}) {
      if (!r.Varint(v)) return truncated("resources");
    }
    if (!r.Bytes(&sketch)) return truncated("run-queue latency");
    FAULTLINE_ASSIGN_OR_RETURN(s.runq_ns, LatencySketch::Decode(sketch));
    if (!r.Bytes(&sketch)) return truncated("block I/O latency");
    FAULTLINE_ASSIGN_OR_RETURN(s.io_ns, LatencySketch::Decode(sketch));
  }
  if (format >= 3) {
    for (uint64_t* v : {&s.oom_kills, &s.cpu_usage_ns, &s.cpu_periods, &s.cpu_throttled_periods,
                        &s.cpu_throttled_ns, &s.memory_working_set_sum, &s.memory_limited_samples}) {
      if (!r.Varint(v)) return truncated("container figures");
    }
    if (!r.Double(&s.memory_usage_ratio_sum)) return truncated("memory usage ratio");
    if (!(std::isfinite(s.memory_usage_ratio_sum) && s.memory_usage_ratio_sum >= 0)) {
      return InvalidArgument("window stats: memory usage ratio sum " +
                             std::to_string(s.memory_usage_ratio_sum) +
                             " is not a finite non-negative number");
    }
  }
  if (!r.empty())
    return InvalidArgument("window stats: " + std::to_string(r.remaining()) + " trailing bytes");
  return s;
}

}  // namespace faultline::model

namespace faultline::model {

double ComputeMetric(Metric metric, const WindowStats& w, int64_t window_s) {
  constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
  constexpr double kNsPerMs = 1e6, kBytesPerMiB = 1048576;
  auto ratio = [&](double num, double den) { return den > 0 ? num / den : kNan; };
  auto quantile_ms = [&](const LatencySketch& s, double q) {
    return s.count() ? s.Quantile(q) / kNsPerMs : kNan;
  };
  auto mean_ms = [&](const LatencySketch& s) { return s.count() ? s.mean() / kNsPerMs : kNan; };
  auto resources = [&](double v) { return w.resource_samples ? v : kNan; };
  switch (metric) {
    case Metric::kRequests:
      return static_cast<double>(w.requests);
    case Metric::kErrors:
      return static_cast<double>(w.status_5xx);
    case Metric::kErrorRate:
      return ratio(static_cast<double>(w.status_5xx), static_cast<double>(w.requests));
    case Metric::kClientErrors:
      return static_cast<double>(w.status_4xx);
    case Metric::kIncomplete:
      return static_cast<double>(w.incomplete);
    case Metric::kLatencyMeanMs:
      return mean_ms(w.latency_ns);
    case Metric::kLatencyP50Ms:
      return quantile_ms(w.latency_ns, 0.5);
    case Metric::kLatencyP90Ms:
      return quantile_ms(w.latency_ns, 0.9);
    case Metric::kLatencyP99Ms:
      return quantile_ms(w.latency_ns, 0.99);
    case Metric::kLatencyMaxMs:
      return w.latency_ns.count() ? w.latency_ns.max() / kNsPerMs : kNan;
    case Metric::kRetransmits:
      return static_cast<double>(w.retransmits);
    case Metric::kDrops: {
      uint64_t d = 0;
      for (const auto& [reason, n] : w.drops) d += n;
      return static_cast<double>(d);
    }
    case Metric::kResets:
      return static_cast<double>(w.resets_sent + w.resets_received);
    case Metric::kConnectsRefused:
      return static_cast<double>(w.connects_refused);
    case Metric::kConnectsFailed:
      return static_cast<double>(w.connects_failed);
    case Metric::kConnectP99Ms:
      return quantile_ms(w.connect_ns, 0.99);
    case Metric::kRttMeanMs:
      return w.rtt_samples ? w.rtt_us_sum / static_cast<double>(w.rtt_samples) / 1e3 : kNan;
    case Metric::kCpuBusyRatio:
      return ratio(static_cast<double>(w.cpu_busy_ns), static_cast<double>(w.cpu_total_ns));
    case Metric::kRunqP99Ms:
      return quantile_ms(w.runq_ns, 0.99);
    case Metric::kRunqMeanMs:
      return mean_ms(w.runq_ns);
    case Metric::kMemoryAvailableMb:
      return resources(static_cast<double>(w.memory_available_sum) /
                       static_cast<double>(std::max<uint64_t>(w.resource_samples, 1)) /
                       kBytesPerMiB);
    case Metric::kMajorFaults:
      return resources(static_cast<double>(w.major_faults));
    case Metric::kIoLatencyP99Ms:
      return quantile_ms(w.io_ns, 0.99);
    case Metric::kIoBytes:
      return resources(static_cast<double>(w.io_read_bytes + w.io_write_bytes));
    case Metric::kAgentDropped:
      return static_cast<double>(w.agent_dropped);
    case Metric::kCpuUsageCores:
      return resources(static_cast<double>(w.cpu_usage_ns) /
                       (static_cast<double>(std::max<int64_t>(window_s, 1)) * 1e9));
    case Metric::kCpuThrottledRatio:  // no quota, no periods: it was not throttled
      return w.cpu_periods ? ratio(static_cast<double>(w.cpu_throttled_periods),
                                   static_cast<double>(w.cpu_periods))
                           : resources(0);
    case Metric::kMemoryWorkingSetMb:
      return resources(static_cast<double>(w.memory_working_set_sum) /
                       static_cast<double>(std::max<uint64_t>(w.resource_samples, 1)) /
                       kBytesPerMiB);
    case Metric::kMemoryUsageRatio:  // undefined without a memory limit
      return ratio(w.memory_usage_ratio_sum, static_cast<double>(w.memory_limited_samples));
    case Metric::kOomKills:
      return resources(static_cast<double>(w.oom_kills));
  }
  return kNan;
}

}  // namespace faultline::model
