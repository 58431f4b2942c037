// What the stream keeps per window and per series: the golden metrics (requests, 4xx, 5xx, a
// latency sketch) and the network health of a call edge (retransmits, drops by reason, resets,
// connects, RTT, packets and bytes), under a SeriesKey that names the entity kind and every
// dimension the numbers were built from (service, endpoint, instance, machine, caller, callee…),
// so that later stages can roll up or drill down by any of them. Everything here is additive:
// Merge of two windows' stats for the same key is the stats of the union of their events.
//
// Thread-compatible value types.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/common/catalog.h"
#include "faultline/common/status.h"
#include "faultline/model/latency_sketch.h"

namespace faultline::model {

// Entity kinds of a series (faultline::EntityKind; the stream makes these five):
//   service:  a workload seen from its own (server) side; dims service, endpoint, instance, machine
//   edge:     calls from a caller to a callee seen from the caller's side, and the network health
//             of those connections; dims caller, callee, endpoint, instance, machine. The callee
//             is the peer address "ip:port" (resolved to a service by the listener records)
//   listener: "this service listens on this address": dims service, address, machine; requests
//             counts the server-side exchanges seen there
//   machine:  a node; dims machine
//   container: a cgroup holding processes (a container, a pod's cgroup, a systemd unit) and its
//             resource pressure; dims container (its name: ContainerName in entity_namer.h),
//             machine
using faultline::EntityKind;
inline constexpr KindSet kStreamKinds{EntityKind::kService, EntityKind::kEdge,
                                      EntityKind::kListener, EntityKind::kMachine,
                                      EntityKind::kContainer};
// Errors: kInvalidArgument naming the kinds the stream makes.
inline Result<EntityKind> ParseStreamKind(std::string_view name) {
  return ParseEntityKind(name, kStreamKinds);
}

struct SeriesKey {
  EntityKind kind = EntityKind::kService;
  // Sorted by name, names unique.
  std::vector<std::pair<std::string, std::string>> dims;

  // The value of a dimension, or "" when absent.
  std::string_view Dim(std::string_view name) const;
  // "service" entity name: the dimension that names the entity (service, caller→callee, machine).
  std::string Entity() const;
  // Compact, order-preserving bytes (kind, then the dims); Decode names what is wrong.
  std::string Encode() const;
  static Result<SeriesKey> Decode(std::string_view bytes);
  friend bool operator==(const SeriesKey&, const SeriesKey&) = default;
  friend auto operator<=>(const SeriesKey&, const SeriesKey&) = default;
};

struct WindowStats {
  // Golden metrics.
  uint64_t requests = 0;
  uint64_t status_4xx = 0;
  uint64_t status_5xx = 0;
  uint64_t incomplete = 0;  // exchanges cut short (connection closed, truncated)
  LatencySketch latency_ns;

  // Network health (edges).
  uint64_t retransmits = 0;
  std::map<std::string, uint64_t> drops;  // by kernel drop reason
  uint64_t resets_sent = 0, resets_received = 0;
  uint64_t connects_ok = 0, connects_refused = 0, connects_failed = 0;
  LatencySketch connect_ns;
  uint64_t rtt_samples = 0;
  double rtt_us_sum = 0;
  uint64_t packets_out = 0, bytes_out = 0, packets_in = 0, bytes_in = 0;

  // Events the agent reported losing (machines).
  uint64_t agent_dropped = 0;

  // Resource pressure (machines), from the agents' MachineResources summaries.
  uint64_t resource_samples = 0;           // summaries merged in
  uint64_t cpu_busy_ns = 0, cpu_total_ns = 0;
  LatencySketch runq_ns;                   // run-queue latency of every task
  uint64_t major_faults = 0;
  uint64_t memory_available_sum = 0;       // bytes, summed over the summaries (mean = / samples)
  uint64_t io_read_bytes = 0, io_write_bytes = 0, io_ops = 0;
  LatencySketch io_ns;                     // block request latency, every device
  uint64_t oom_kills = 0;                  // machines: OOM kill events; containers: memory.events

  // Containers, from the agents' CgroupResources summaries (resource_samples counts them too).
  uint64_t cpu_usage_ns = 0;
  uint64_t cpu_periods = 0, cpu_throttled_periods = 0, cpu_throttled_ns = 0;
  uint64_t memory_working_set_sum = 0;     // bytes, summed over the summaries
  uint64_t memory_limited_samples = 0;     // summaries with a memory limit...
  double memory_usage_ratio_sum = 0;       // ...and their working set / limit, summed

  Status Merge(const WindowStats& other);
  void EncodeTo(std::string* out) const;
  static Result<WindowStats> Decode(std::string_view bytes);
  friend bool operator==(const WindowStats&, const WindowStats&) = default;
};

// The catalog metric `metric` of one window of a series, as the catalog describes it (units of
// the catalog: ms, MiB, ratios), over a window of `window_s` seconds. NaN where the window has no
// data for it (latency without complete exchanges, resources without summaries, a ratio over 0).
// Callers ask for the metrics of the series' kind (MetricInfo::kinds); the others read fields
// that kind leaves empty.
double ComputeMetric(Metric metric, const WindowStats& w, int64_t window_s);

// One window of one series, as the stream stored it and every analysis reads it.
struct StoredWindow {
  int64_t start_s = 0;
  SeriesKey key;
  WindowStats stats;
  bool open = false;
  // Edges, as the identity join resolves them (Identity::Resolve, identity.h): the service
  // listening at the callee address ("" when no listener is known there: an external endpoint).
  std::string callee_service;
  // A client-side edge's callee as an entity: callee_service, else the external endpoint's
  // name (ExternalName of the callee address, identity.h).
  std::string CalleeEntity() const;
};

}  // namespace faultline::model
