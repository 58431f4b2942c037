#include "faultline/common/catalog.h"

#include <array>

namespace faultline {
namespace {

constexpr std::string_view kKindNames[] = {"",        "service",  "edge",      "listener",
                                           "machine", "instance", "container", "external"};
constexpr std::string_view kFamilyNames[] = {"traffic", "errors", "latency", "network",
                                             "cpu",     "memory", "io",      "agent"};

using K = EntityKind;
using F = MetricFamily;
using P = Polarity;
constexpr KindSet kGolden{K::kService, K::kEdge, K::kInstance};
constexpr KindSet kEdgeOnly{K::kEdge};
constexpr KindSet kMachineOnly{K::kMachine};
constexpr KindSet kContainerOnly{K::kContainer};
constexpr KindSet kResources{K::kMachine, K::kContainer};

constexpr std::array<MetricInfo, kMetricCount> kCatalog = {{
    {Metric::kRequests, "requests", "requests", F::kTraffic, kGolden, P::kEither,
     "HTTP exchanges in the window (a service's server side; an edge's client side)", 5.0},
    {Metric::kErrors, "errors", "requests", F::kErrors, kGolden, P::kUpIsBad,
     "exchanges answered with a 5xx status", 3.0},
    {Metric::kErrorRate, "error_rate", "ratio", F::kErrors, kGolden, P::kUpIsBad,
     "errors / requests; undefined without requests", 0.01},
    {Metric::kClientErrors, "client_errors", "requests", F::kErrors, kGolden, P::kUpIsBad,
     "exchanges answered with a 4xx status", 3.0},
    {Metric::kIncomplete, "incomplete", "requests", F::kErrors, kGolden, P::kUpIsBad,
     "exchanges cut short: the connection closed or the parser lost the framing", 3.0},
    {Metric::kLatencyMeanMs, "latency_mean_ms", "ms", F::kLatency, kGolden, P::kUpIsBad,
     "mean latency of complete exchanges, request start to response end", 1.0},
    {Metric::kLatencyP50Ms, "latency_p50_ms", "ms", F::kLatency, kGolden, P::kUpIsBad,
     "median latency (DDSketch, 1% relative error)", 1.0},
    {Metric::kLatencyP90Ms, "latency_p90_ms", "ms", F::kLatency, kGolden, P::kUpIsBad,
     "90th percentile latency (DDSketch, 1% relative error)", 1.0},
    {Metric::kLatencyP99Ms, "latency_p99_ms", "ms", F::kLatency, kGolden, P::kUpIsBad,
     "99th percentile latency (DDSketch, 1% relative error)", 1.0},
    {Metric::kLatencyMaxMs, "latency_max_ms", "ms", F::kLatency, kGolden, P::kUpIsBad,
     "largest latency in the window", 1.0},
    {Metric::kRetransmits, "retransmits", "segments", F::kNetwork, kEdgeOnly, P::kUpIsBad,
     "TCP segments retransmitted on the edge's connections", 3.0},
    {Metric::kDrops, "drops", "packets", F::kNetwork, kEdgeOnly, P::kUpIsBad,
     "packets of the edge's connections the kernel dropped, any reason", 3.0},
    {Metric::kResets, "resets", "resets", F::kNetwork, kEdgeOnly, P::kUpIsBad,
     "TCP resets sent and received on the edge's connections", 3.0},
    {Metric::kConnectsRefused, "connects_refused", "connections", F::kNetwork, kEdgeOnly,
     P::kUpIsBad, "connection attempts answered with a reset (nothing listening)", 2.0},
    {Metric::kConnectsFailed, "connects_failed", "connections", F::kNetwork, kEdgeOnly,
     P::kUpIsBad, "connection attempts that failed otherwise (timed out, unreachable)", 2.0},
    {Metric::kConnectP99Ms, "connect_p99_ms", "ms", F::kNetwork, kEdgeOnly, P::kUpIsBad,
     "99th percentile TCP handshake time of established connections", 1.0},
    {Metric::kRttMeanMs, "rtt_mean_ms", "ms", F::kNetwork, kEdgeOnly, P::kUpIsBad,
     "mean of the smoothed RTT samples of the edge's flows", 0.2},
    {Metric::kCpuBusyRatio, "cpu_busy_ratio", "ratio", F::kCpu, kMachineOnly, P::kUpIsBad,
     "CPU time not idle or waiting for I/O / CPU time of all CPUs (/proc/stat)", 0.05},
    {Metric::kCpuUsageCores, "cpu_usage_cores", "cores", F::kCpu, kContainerOnly, P::kUpIsBad,
     "CPU time the cgroup used / the window's length", 0.05},
    {Metric::kCpuThrottledRatio, "cpu_throttled_ratio", "ratio", F::kCpu, kContainerOnly,
     P::kUpIsBad, "CFS periods in which the cgroup was throttled / periods elapsed (0 without a CPU quota)", 0.05},
    {Metric::kRunqP99Ms, "runq_p99_ms", "ms", F::kCpu, kResources, P::kUpIsBad,
     "99th percentile run-queue latency: runnable to running (sched tracepoints)", 1.0},
    {Metric::kRunqMeanMs, "runq_mean_ms", "ms", F::kCpu, kResources, P::kUpIsBad,
     "mean run-queue latency", 0.5},
    {Metric::kMemoryAvailableMb, "memory_available_mb", "MiB", F::kMemory, kMachineOnly,
     P::kDownIsBad, "MemAvailable (/proc/meminfo), mean over the window's summaries", 64.0},
    {Metric::kMemoryWorkingSetMb, "memory_working_set_mb", "MiB", F::kMemory, kContainerOnly,
     P::kUpIsBad, "usage minus inactive file pages, mean over the window's summaries", 32.0},
    {Metric::kMemoryUsageRatio, "memory_usage_ratio", "ratio", F::kMemory, kContainerOnly,
     P::kUpIsBad, "working set / memory limit; undefined when unlimited", 0.05},
    {Metric::kMajorFaults, "major_faults", "faults", F::kMemory, kResources, P::kUpIsBad,
     "major page faults (pages read from disk)", 50.0},
    {Metric::kOomKills, "oom_kills", "kills", F::kMemory, kResources, P::kUpIsBad,
     "processes the kernel's OOM killer killed", 0.5},
    {Metric::kIoLatencyP99Ms, "io_latency_p99_ms", "ms", F::kIo, kResources, P::kUpIsBad,
     "99th percentile block request latency, issue to completion, every device", 1.0},
    {Metric::kIoBytes, "io_bytes", "bytes", F::kIo, kResources, P::kUpIsBad,
     "bytes read and written by block requests", 1048576.0},
    {Metric::kAgentDropped, "agent_dropped", "events", F::kAgent, kMachineOnly, P::kUpIsBad,
     "events the machine's agent reported losing (every reason)", 1.0},
}};

constexpr bool CatalogInOrder() {
  for (int i = 0; i < kMetricCount; ++i)
    if (static_cast<int>(kCatalog[static_cast<size_t>(i)].id) != i) return false;
  return true;
}
static_assert(CatalogInOrder(), "kCatalog must list the metrics in Metric order");

}  // namespace

std::string KindSet::Describe() const {
  std::string out;
  int n = 0, total = 0;
  for (int k = 1; k <= kMaxEntityKind; ++k) total += Has(static_cast<EntityKind>(k));
  for (int k = 1; k <= kMaxEntityKind; ++k) {
    if (!Has(static_cast<EntityKind>(k))) continue;
    ++n;
    if (n > 1) out += n == total ? " or " : ", ";
    out += kKindNames[k];
  }
  return out;
}

std::string_view EntityKindName(EntityKind kind) {
  const int k = static_cast<int>(kind);
  return k >= 1 && k <= kMaxEntityKind ? kKindNames[k] : "?";
}

Result<EntityKind> ParseEntityKind(std::string_view name, KindSet allowed) {
  for (int k = 1; k <= kMaxEntityKind; ++k) {
    if (kKindNames[k] == name && allowed.Has(static_cast<EntityKind>(k)))
      return static_cast<EntityKind>(k);
  }
  return InvalidArgument("kind \"" + std::string(name) + "\": expected " + allowed.Describe());
}

std::string_view MetricFamilyName(MetricFamily family) {
  return kFamilyNames[static_cast<int>(family)];
}

Result<MetricFamily> ParseMetricFamily(std::string_view name) {
  for (int f = 0; f < kMetricFamilies; ++f)
    if (kFamilyNames[f] == name) return static_cast<MetricFamily>(f);
  std::string known;
  for (int f = 0; f < kMetricFamilies; ++f) known += (f ? ", " : "") + std::string(kFamilyNames[f]);
  return InvalidArgument("unknown metric family \"" + std::string(name) + "\" (known: " + known +
                         ")");
}

std::span<const MetricInfo> Metrics() { return kCatalog; }

const MetricInfo& Info(Metric metric) { return kCatalog[static_cast<size_t>(metric)]; }

const MetricInfo* FindMetric(std::string_view name) {
  for (const MetricInfo& m : kCatalog)
    if (m.name == name) return &m;
  return nullptr;
}

std::string KnownMetricNames() {
  std::string out;
  for (const MetricInfo& m : kCatalog) out += (out.empty() ? "" : ", ") + std::string(m.name);
  return out;
}

std::string KnownMetricNames(EntityKind kind) {
  std::string out;
  for (const MetricInfo& m : kCatalog)
    if (m.kinds.Has(kind)) out += (out.empty() ? "" : ", ") + std::string(m.name);
  return out;
}

Result<Metric> ParseMetric(std::string_view name) {
  if (const MetricInfo* m = FindMetric(name)) return m->id;
  return InvalidArgument("unknown metric \"" + std::string(name) +
                         "\" (known: " + KnownMetricNames() + ")");
}

Result<Metric> ParseMetricFor(std::string_view name, EntityKind kind) {
  FAULTLINE_ASSIGN_OR_RETURN(Metric m, ParseMetric(name));
  if (!Info(m).kinds.Has(kind)) {
    const std::string k(EntityKindName(kind));
    return InvalidArgument("metric \"" + std::string(name) + "\" does not apply to a " + k +
                           " (it applies to " + Info(m).kinds.Describe() + "; metrics of a " + k +
                           ": " + KnownMetricNames(kind) + ")");
  }
  return m;
}

}  // namespace faultline
