// `faultline stream`: the stream processor's runtime. It joins a Kafka consumer group on the events
// topic (cooperative-sticky rebalancing), and for each partition it is given opens that
// partition's PartitionState and resumes from the offset stored there, not from the group's
// committed offsets. It applies event batches, commits every partition's state and offset in one
// RocksDB batch per commit interval, publishes closed windows to the metrics topic (at least
// once; records carry the key consumers deduplicate on), and commits the offsets to Kafka as
// well, only so that lag tools see them.
//
// A partition's database follows the partition from processor to processor in one of two ways:
// processors share one state directory (a shared volume), and the database's lock keeps two from
// applying it at once, even when the group believes a dead processor is alive; or each has its
// own, and a changelog topic (changelog.h) carries every commit, from which the next owner
// rebuilds or catches up its copy before it resumes.
//
// Thread-compatible: Run() on one thread; the HTTP server (optional) reads through read-only
// database handles and a mutex-guarded status snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faultline/common/http_server.h"
#include "faultline/common/metrics.h"
#include "faultline/common/status.h"
#include "faultline/stream/entity_namer.h"
#include "faultline/stream/partition_state.h"

namespace faultline::stream {

struct StreamOptions {
  // Required: HOST:PORT[,HOST:PORT…].
  std::string brokers;
  // Default: "faultline.events".
  std::string events_topic = "faultline.events";
  // Closed windows are published here; "" publishes nothing. Default: "faultline.metrics".
  std::string metrics_topic = "faultline.metrics";
  // Default: "faultline-stream".
  std::string group_id = "faultline-stream";
  // Required.
  std::string state_dir;
  // Every commit goes here first, so that processors need not share the state directory
  // (changelog.h); as many partitions as the events topic; "" for none. Default: "".
  std::string changelog_topic;
  // Snapshots to the changelog: after this many commits of a partition, or this many bytes of
  // its deltas (or its last snapshot's size, if larger). Defaults: 1000, 1 MiB.
  uint64_t changelog_snapshot_commits = 1000;
  uint64_t changelog_snapshot_bytes = 1 << 20;
  // Default: 1000.
  int64_t commit_interval_ms = 1000;
  // Default: 6000 (a dead processor's partitions move after this long).
  int session_timeout_ms = 6000;
  // "host:port" for /metrics, /windows and /status; "" for none. Default: "".
  std::string http_addr;
  // Also print every closed window to stdout as a JSON line. Default: false.
  bool print_windows = false;
  // More GET endpoints on http_addr ("/situation"), for layers built on the stream. Default: none.
  std::vector<HttpRoute> http_routes;
  WindowOptions windows;
  NamingOptions naming;
};

// Reads a YAML configuration over `options` (keys: window_seconds, allowed_lateness_seconds,
// retention_seconds, max_future_seconds, max_endpoints_per_service, commit_interval_ms,
// sync_commits, session_timeout_ms, changelog_topic, changelog_snapshot_commits,
// changelog_snapshot_bytes, naming: {service: [templates…], instance: template}).
// Errors: kInvalidArgument naming `source`, the line and the field.
Status ParseStreamConfig(const std::string& yaml, const std::string& source,
                         StreamOptions* options);

class StreamProcessor {
 public:
  // Errors: kInvalidArgument for options (naming the flag), kUnavailable for Kafka set-up.
  static Result<std::unique_ptr<StreamProcessor>> Create(const StreamOptions& options,
                                                         MetricsRegistry* metrics);
  ~StreamProcessor();

  // Consumes until `stop` is set; then commits, publishes what it can within 5 s, and leaves the
  // group. Errors: kUnavailable when the consumer cannot start.
  Status Run(const std::atomic<bool>& stop);

  // The port the HTTP server bound (0 when there is none).
  int http_port() const;

 private:
  StreamProcessor() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline::stream
