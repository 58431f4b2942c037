// The changelog (changelog.h) on a Kafka topic (private to stream/): one partition per input
// partition, written by an idempotent producer of its own (acks from all replicas, order kept
// through retries) and read by a short-lived consumer per partition, outside any group.
// Thread-safe: partitions open in parallel.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "faultline/common/status.h"
#include "faultline/stream/changelog.h"

namespace faultline::stream {

class KafkaChangelog : public ChangelogLink {
 public:
  // Reads `topic`'s partitions (a partition beyond them is an error of Read and Write).
  // `write_timeout`: how long a Write waits for the broker's acknowledgements. Errors:
  // kUnavailable naming the topic (missing, broker unreachable).
  static Result<std::unique_ptr<KafkaChangelog>> Create(const std::string& brokers,
                                                        const std::string& topic,
                                                        std::chrono::milliseconds write_timeout);
  ~KafkaChangelog() override;

  Status Read(int32_t partition,
              const std::function<Status(int64_t offset, std::string_view value)>& each) override;
  std::unique_ptr<Delivery> Send(int32_t partition,
                                 const std::vector<ChangelogRecord>& records) override;

 private:
  KafkaChangelog() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline::stream
