// The Kafka sink against the embedded broker with faults injected: every batch is either
// delivered or counted under exactly one reason of faultline_agent_dropped_total, and the counts
// are exact.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "events.pb.h"
#include "faultline/agent/sinks.h"
#include "faultline/stream/embedded_broker.h"

namespace faultline::agent {
namespace {

double Value(const MetricsRegistry& m, const std::string& series) {
  const std::string text = m.RenderText();
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}
double Dropped(const MetricsRegistry& m, const std::string& reason) {
  return Value(m, "faultline_agent_dropped_total{reason=\"" + reason + "\"}");
}

v1::EventBatch Batch(size_t path_bytes = 100) {
  v1::EventBatch b;
  b.set_schema_version(1);
  b.mutable_node()->set_name("node-k");
  b.add_events()->mutable_http()->set_path(std::string(path_bytes, 'p'));
  return b;
}

// Polls the sink until `done` holds, for at most 20 s.
template <typename Done>
bool PollUntil(BatchSink* sink, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    sink->Poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

class KafkaSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = stream::EmbeddedBroker::Start({});
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    broker_ = std::move(*b);
  }
  std::unique_ptr<BatchSink> Sink(KafkaSinkOptions o = {}) {
    o.brokers = broker_->bootstrap();
    o.linger_ms = 5;
    auto s = MakeKafkaSink(o, &metrics_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<stream::EmbeddedBroker> broker_;
  MetricsRegistry metrics_;
};

TEST_F(KafkaSinkTest, DeliveredBatchesAreCountedAndNothingIsDropped) {
  auto sink = Sink();
  for (int i = 0; i < 5; ++i) sink->Publish(Batch());
  ASSERT_TRUE(sink->Flush(std::chrono::seconds(20)).ok());
  EXPECT_EQ(Value(metrics_, "faultline_agent_kafka_batches_total"), 5);
  EXPECT_EQ(Value(metrics_, "faultline_agent_kafka_delivered_total"), 5);
  for (const char* reason : {"kafka_queue_full", "kafka_delivery_failed", "kafka_produce_refused"})
    EXPECT_EQ(Dropped(metrics_, reason), 0) << reason;
}

TEST_F(KafkaSinkTest, ABatchLargerThanAMessageMayBeIsRefused) {
  auto sink = Sink();
  sink->Publish(Batch(2'000'000));  // message.max.bytes is 1,000,000
  sink->Publish(Batch());
  ASSERT_TRUE(sink->Flush(std::chrono::seconds(20)).ok());
  EXPECT_EQ(Dropped(metrics_, "kafka_produce_refused"), 1);
  EXPECT_EQ(Value(metrics_, "faultline_agent_kafka_delivered_total"), 1);
  EXPECT_EQ(Dropped(metrics_, "kafka_queue_full"), 0);
}

TEST_F(KafkaSinkTest, AFullQueueWhileTheBrokerIsDownDropsAndCountsTheRest) {
  broker_->SetDown(true);
  KafkaSinkOptions o;
  o.queue_max_kbytes = 1;  // one ~600-byte batch fits, a second does not
  auto sink = Sink(o);
  for (int i = 0; i < 3; ++i) sink->Publish(Batch(600));
  EXPECT_EQ(Value(metrics_, "faultline_agent_kafka_batches_total"), 1);
  EXPECT_EQ(Dropped(metrics_, "kafka_queue_full"), 2);
  broker_->SetDown(false);
  ASSERT_TRUE(sink->Flush(std::chrono::seconds(20)).ok());
  EXPECT_EQ(Value(metrics_, "faultline_agent_kafka_delivered_total"), 1);
  EXPECT_EQ(Dropped(metrics_, "kafka_delivery_failed"), 0);
}

TEST_F(KafkaSinkTest, BatchesTheBrokerNeverTakesFailAfterTheMessageTimeout) {
  broker_->SetDown(true);
  KafkaSinkOptions o;
  o.message_timeout_ms = 300;
  auto sink = Sink(o);
  for (int i = 0; i < 3; ++i) sink->Publish(Batch());
  ASSERT_TRUE(PollUntil(sink.get(), [&] { return Dropped(metrics_, "kafka_delivery_failed") == 3; }))
      << metrics_.RenderText();
  EXPECT_EQ(Value(metrics_, "faultline_agent_kafka_batches_total"), 3);
  EXPECT_EQ(Value(metrics_, "faultline_agent_kafka_delivered_total"), 0);
  EXPECT_EQ(Dropped(metrics_, "kafka_queue_full"), 0);
}

}  // namespace
}  // namespace faultline::agent
