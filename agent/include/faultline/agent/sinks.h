// BatchSinks the agent ships with: Kafka (the production path) and JSON lines on a stream (for
// people watching their own host).
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include "faultline/agent/agent.h"
#include "faultline/common/metrics.h"

namespace faultline::agent {

struct KafkaSinkOptions {
  // bootstrap.servers, "host:port[,host:port…]". Required.
  std::string brokers;
  // Default: faultline.events.
  std::string topic = "faultline.events";
  // Default: lz4.
  std::string compression = "lz4";
  // librdkafka linger.ms: how long the producer waits to fill a request. Default: 50.
  int linger_ms = 50;
  // The producer's local queue (queue.buffering.max.kbytes): beyond it a batch is dropped and
  // counted as kafka_queue_full. Default: 262144 (256 MiB).
  int queue_max_kbytes = 262144;
  // How long a batch may wait for the broker (message.timeout.ms) before it is dropped and
  // counted as kafka_delivery_failed. Default: 60000.
  int message_timeout_ms = 60000;
};

// An idempotent librdkafka producer; message key = node name, value = the serialized batch.
// A full local queue or a failed delivery is counted in faultline_agent_dropped_total.
Result<std::unique_ptr<BatchSink>> MakeKafkaSink(const KafkaSinkOptions& options,
                                                 MetricsRegistry* metrics);

// One JSON object per event, one per line, with the process identity joined in and addresses in
// text form. `out` must outlive the sink.
std::unique_ptr<BatchSink> MakeJsonlSink(std::ostream& out);

// The JSON line for event `index` of `batch` (what MakeJsonlSink prints).
std::string EventToJson(const v1::EventBatch& batch, int index);

}  // namespace faultline::agent
