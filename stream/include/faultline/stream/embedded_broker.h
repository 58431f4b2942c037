// faultline's embedded Kafka broker: librdkafka's mock cluster, a real Kafka-protocol server on
// 127.0.0.1, with faultline's topics created. It is the default wherever no --brokers is given
// and the broker every test uses. Known limits (librdkafka 2.0.2): see DESIGN.md.
//
// The mock cluster listens on an ephemeral port; when a fixed port is asked for, a small TCP
// forwarder on that port leads clients to it (bootstrap only: metadata then names the real
// listener, also on 127.0.0.1). Thread-safe to read; destroy from one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::stream {

struct EmbeddedBrokerOptions {
  // 0 = any free port. Default: 0.
  int port = 0;
  // Partitions per topic. Default: 4.
  int partitions = 4;
  // Topics created at start. Default: faultline.events, faultline.metrics, faultline.incidents,
  // faultline.changelog.
  std::vector<std::string> topics = {"faultline.events", "faultline.metrics",
                                     "faultline.incidents", "faultline.changelog"};
};

class EmbeddedBroker {
 public:
  static Result<std::unique_ptr<EmbeddedBroker>> Start(const EmbeddedBrokerOptions& options);
  ~EmbeddedBroker();
  // "127.0.0.1:PORT": what clients pass as bootstrap.servers.
  const std::string& bootstrap() const;

  // Fault injection, for tests: the cluster's broker goes down (its connections close and new
  // ones are refused) or comes back up.
  void SetDown(bool down);
  // The next `count` requests of Kafka API `api_key` (0 = Produce, 1 = Fetch) fail with the Kafka
  // error code `error` (an rd_kafka_resp_err_t).
  void FailNextRequests(int api_key, int count, int error);

 private:
  EmbeddedBroker() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline::stream
