#include <librdkafka/rdkafka.h>

#include <cstring>

#include "events.pb.h"
#include "faultline/agent/sinks.h"
#include "faultline/common/kafka.h"
#include "faultline/common/log.h"

namespace faultline::agent {
namespace {

class KafkaSink : public BatchSink {
 public:
  KafkaSink(rd_kafka_t* rk, std::string topic, MetricsRegistry* m)
      : rk_(rk),
        topic_(std::move(topic)),
        sent_(m->Counter("faultline_agent_kafka_batches_total", "Batches handed to the Kafka producer")),
        delivered_(m->Counter("faultline_agent_kafka_delivered_total", "Batches the broker acknowledged")),
        queue_full_(AgentDropped(m, "kafka_queue_full")),
        failed_(AgentDropped(m, "kafka_delivery_failed")),
        refused_(AgentDropped(m, "kafka_produce_refused")),
        queue_len_(m->Gauge("faultline_agent_kafka_queue_messages", "Messages waiting in the producer queue")) {}

  ~KafkaSink() override {
    if (Status s = Flush(std::chrono::seconds(10)); !s.ok()) {
      // Broker unreachable: give up on what is left (each counted as kafka_delivery_failed by
      // its delivery report) rather than hang on exit.
      spdlog::warn("{}; dropping them", s.message());
      rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(rk_, 0);
    }
    rd_kafka_destroy(rk_);
  }

  void Publish(const v1::EventBatch& batch) override {
    batch.SerializeToString(&buf_);
    const std::string& key = batch.node().name();
    for (int attempt = 0; attempt < 2; ++attempt) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(buf_.data(), buf_.size()),
          RD_KAFKA_V_OPAQUE(this), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        sent_.Increment();
        return;
      }
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt == 1) {
        // Queue still full after one wait, or refused outright (message too large, unknown
        // topic or partition, fatal producer error): counted apart, the cures differ.
        (err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? queue_full_ : refused_).Increment();
        FAULTLINE_WARN_RATE_LIMITED("dropped a batch of {} events: {}", batch.events_size(), rd_kafka_err2str(err));
        return;
      }
      rd_kafka_poll(rk_, 100);  // let deliveries free the queue, once
    }
  }

  void Poll() override {
    rd_kafka_poll(rk_, 0);
    queue_len_.Set(rd_kafka_outq_len(rk_));
  }

  Status Flush(std::chrono::milliseconds timeout) override {
    rd_kafka_resp_err_t err = rd_kafka_flush(rk_, static_cast<int>(timeout.count()));
    queue_len_.Set(rd_kafka_outq_len(rk_));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Unavailable(std::string("Kafka: ") + std::to_string(rd_kafka_outq_len(rk_)) +
                         " batches still undelivered after " + std::to_string(timeout.count()) + " ms (" +
                         rd_kafka_err2str(err) + ")");
    }
    return Status::Ok();
  }

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    auto* self = static_cast<KafkaSink*>(m->_private);
    if (!self) return;
    if (m->err) {
      self->failed_.Increment();
      FAULTLINE_WARN_RATE_LIMITED("Kafka delivery failed: {}", rd_kafka_err2str(m->err));
    } else {
      self->delivered_.Increment();
    }
  }

 private:
  rd_kafka_t* rk_;
  std::string topic_;
  std::string buf_;
  prometheus::Counter& sent_;
  prometheus::Counter& delivered_;
  prometheus::Counter& queue_full_;
  prometheus::Counter& failed_;
  prometheus::Counter& refused_;
  prometheus::Gauge& queue_len_;
};

}  // namespace

Result<std::unique_ptr<BatchSink>> MakeKafkaSink(const KafkaSinkOptions& options, MetricsRegistry* metrics) {
  if (options.brokers.empty()) return InvalidArgument("--brokers: expected HOST:PORT[,HOST:PORT…]");
  FAULTLINE_ASSIGN_OR_RETURN(
      rd_kafka_conf_t * conf,
      kafka::Config("Kafka producer",
                    {{"bootstrap.servers", options.brokers},
                     {"enable.idempotence", "true"},
                     {"compression.codec", options.compression},
                     {"linger.ms", std::to_string(options.linger_ms)},
                     {"batch.size", "1000000"},
                     {"queue.buffering.max.kbytes", std::to_string(options.queue_max_kbytes)},
                     {"message.timeout.ms", std::to_string(options.message_timeout_ms)}}));
  rd_kafka_conf_set_dr_msg_cb(conf, KafkaSink::OnDelivery);
  FAULTLINE_ASSIGN_OR_RETURN(rd_kafka_t * rk, kafka::Create(RD_KAFKA_PRODUCER, "Kafka producer", conf));
  return std::unique_ptr<BatchSink>(std::make_unique<KafkaSink>(rk, options.topic, metrics));
}

}  // namespace faultline::agent
