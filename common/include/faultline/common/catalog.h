// The one vocabulary: entity kinds, dimension names and the metric catalog that the stream, window
// queries, situations, detector rules, attribution and fault trees all use. A metric name that is
// not in the catalog is an error everywhere (the errors list the known names), never a new
// series. Each metric has one name, one unit, one family, the entity kinds that carry it, the
// direction in which it is bad, and how it is computed from a window (the text here documents
// it; model::ComputeMetric implements it from a WindowStats).
//
// Numbering: EntityKind values are stored on disk (the stream's series keys) and only ever added.
// Metric values are in-process ids; names are the contract.
//
// Thread-safe: constant tables.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "faultline/common/status.h"

namespace faultline {

// What a series, a topology node or a located cause is.
//   service:   a workload (all its instances), seen from its own server side
//   edge:      calls from a caller service to a callee, seen from the caller's side; its entity
//              is "caller->callee"
//   listener:  "this service listens on this address" (the stream's identity join)
//   machine:   a node (a host, a VM, an emulated machine)
//   instance:  one process (or pod replica) of a service: "machine/pid"
//   container: a cgroup that holds instances (a container, a pod's cgroup, a systemd unit)
//   external:  a peer that no observed process listens on, grouped by address
enum class EntityKind : uint8_t {
  kService = 1,
  kEdge = 2,
  kListener = 3,
  kMachine = 4,
  kInstance = 5,
  kContainer = 6,
  kExternal = 7,
};
inline constexpr int kMaxEntityKind = 7;

// A set of entity kinds.
class KindSet {
 public:
  constexpr KindSet() = default;
  constexpr KindSet(std::initializer_list<EntityKind> kinds) {
    for (EntityKind k : kinds) bits_ |= Bit(k);
  }
  static constexpr KindSet All() {
    KindSet s;
    s.bits_ = ((1u << (kMaxEntityKind + 1)) - 1) & ~1u;
    return s;
  }
  constexpr bool Has(EntityKind k) const { return (bits_ & Bit(k)) != 0; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr KindSet operator&(KindSet o) const { return FromBits(bits_ & o.bits_); }
  constexpr KindSet operator|(KindSet o) const { return FromBits(bits_ | o.bits_); }
  constexpr bool operator==(const KindSet&) const = default;
  // "service, edge or machine" (in EntityKind order).
  std::string Describe() const;

 private:
  static constexpr uint32_t Bit(EntityKind k) { return 1u << static_cast<int>(k); }
  static constexpr KindSet FromBits(uint32_t b) {
    KindSet s;
    s.bits_ = b;
    return s;
  }
  uint32_t bits_ = 0;
};

std::string_view EntityKindName(EntityKind kind);
// Errors: kInvalidArgument `kind "x": expected service, edge, …` listing the kinds in `allowed`.
Result<EntityKind> ParseEntityKind(std::string_view name, KindSet allowed = KindSet::All());

// Dimension names of the stream's series keys.
namespace dim {
inline constexpr std::string_view kService = "service";
inline constexpr std::string_view kEndpoint = "endpoint";
inline constexpr std::string_view kInstance = "instance";
inline constexpr std::string_view kMachine = "machine";
inline constexpr std::string_view kCaller = "caller";
inline constexpr std::string_view kCallee = "callee";
inline constexpr std::string_view kSide = "side";
inline constexpr std::string_view kAddress = "address";
inline constexpr std::string_view kContainer = "container";
// Values of kSide: which end of a call an edge window was seen from.
inline constexpr std::string_view kServerSide = "server";
inline constexpr std::string_view kClientSide = "client";
}  // namespace dim

// What a metric measures: the families decide what can explain what (latency explains latency,
// latency or errors explain errors, traffic explains traffic) and group predicates in fault trees.
enum class MetricFamily : uint8_t {
  kTraffic,
  kErrors,
  kLatency,
  kNetwork,
  kCpu,
  kMemory,
  kIo,
  kAgent,
};
inline constexpr int kMetricFamilies = 8;
std::string_view MetricFamilyName(MetricFamily family);
// Errors: kInvalidArgument naming the known families.
Result<MetricFamily> ParseMetricFamily(std::string_view name);

// Which way a value moved (a detector's verdict). Values are the plugin ABI's.
enum class Direction : uint8_t { kNone = 0, kUp = 1, kDown = 2 };

// Which way a metric goes when something is wrong.
enum class Polarity : uint8_t { kUpIsBad, kDownIsBad, kEither };

enum class Metric : uint8_t {
  // Golden metrics: services, edges, instances.
  kRequests,
  kErrors,
  kErrorRate,
  kClientErrors,
  kIncomplete,
  kLatencyMeanMs,
  kLatencyP50Ms,
  kLatencyP90Ms,
  kLatencyP99Ms,
  kLatencyMaxMs,
  // Network health: edges.
  kRetransmits,
  kDrops,
  kResets,
  kConnectsRefused,
  kConnectsFailed,
  kConnectP99Ms,
  kRttMeanMs,
  // Resources: machines and containers.
  kCpuBusyRatio,
  kCpuUsageCores,
  kCpuThrottledRatio,
  kRunqP99Ms,
  kRunqMeanMs,
  kMemoryAvailableMb,
  kMemoryWorkingSetMb,
  kMemoryUsageRatio,
  kMajorFaults,
  kOomKills,
  kIoLatencyP99Ms,
  kIoBytes,
  // The pipeline itself: machines.
  kAgentDropped,
};
inline constexpr int kMetricCount = static_cast<int>(Metric::kAgentDropped) + 1;

struct MetricInfo {
  Metric id;
  std::string_view name;  // snake_case with the unit as suffix where it has one
  std::string_view unit;  // "ms", "requests", "ratio", "cores", "MiB", "segments", …
  MetricFamily family;
  KindSet kinds;  // the entity kinds whose series carry it
  Polarity polarity;
  std::string_view computed;  // how it is computed from one window of the kind's series
  // The smallest change that is more than noise whatever the baseline, in the metric's unit
  // (one major fault, a jitter of 0.2 ms, one byte read is no incident); judging a series
  // requires at least this much change.
  double min_delta = 0;
};

// Every metric, in Metric order.
std::span<const MetricInfo> Metrics();
const MetricInfo& Info(Metric metric);
inline std::string_view MetricName(Metric metric) { return Info(metric).name; }
// nullptr when `name` is not in the catalog.
const MetricInfo* FindMetric(std::string_view name);
// Errors: kInvalidArgument `unknown metric "x" (known: requests, errors, …)`, and, when `kind` is
// given, `metric "x" does not apply to a <kind> (it applies to …; metrics of a <kind>: …)`.
Result<Metric> ParseMetric(std::string_view name);
Result<Metric> ParseMetricFor(std::string_view name, EntityKind kind);
// "requests, errors, …": every metric name, or those of one kind.
std::string KnownMetricNames();
std::string KnownMetricNames(EntityKind kind);

}  // namespace faultline
