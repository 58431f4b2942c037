#include "kafka_changelog.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <thread>

#include "faultline/common/kafka.h"
#include "faultline/common/log.h"

namespace faultline::stream {
namespace {

using Clock = std::chrono::steady_clock;

// How long a Read waits for the broker before it gives up.
constexpr auto kReadTimeout = std::chrono::seconds(60);

// One Write's messages still unacknowledged, and the first error among them; shared with the
// delivery callbacks, which may outlive a Write that gave up.
struct Pending {
  std::atomic<int> left{0};
  std::atomic<int> error{RD_KAFKA_RESP_ERR_NO_ERROR};
};

void OnLog(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 4) FAULTLINE_WARN_RATE_LIMITED("changelog kafka {}: {}", fac, buf);
}

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  std::unique_ptr<std::shared_ptr<Pending>> p(static_cast<std::shared_ptr<Pending>*>(m->_private));
  if (!p) return;
  if (m->err) {
    int none = RD_KAFKA_RESP_ERR_NO_ERROR;
    (*p)->error.compare_exchange_strong(none, m->err);
  }
  (*p)->left--;
}

}  // namespace

struct KafkaChangelog::Impl {
  std::string brokers, topic;
  int partitions = 0;
  std::chrono::milliseconds write_timeout{5000};
  rd_kafka_t* producer = nullptr;
  ~Impl() {
    if (!producer) return;
    rd_kafka_flush(producer, 1000);
    rd_kafka_destroy(producer);
  }
  std::string Where(int32_t p) const { return "changelog " + topic + "-" + std::to_string(p); }
};

Result<std::unique_ptr<KafkaChangelog>> KafkaChangelog::Create(
    const std::string& brokers, const std::string& topic,
    std::chrono::milliseconds write_timeout) {
  std::unique_ptr<KafkaChangelog> c(new KafkaChangelog());
  c->impl_ = std::make_unique<Impl>();
  Impl& im = *c->impl_;
  im.brokers = brokers, im.topic = topic, im.write_timeout = write_timeout;
  // Idempotent: acks from all in-sync replicas, and a partition's records in the order
  // produced even through retries, which the replay relies on. The message timeout bounds a
  // Write: once it passes, every record of it is delivered or failed.
  FAULTLINE_ASSIGN_OR_RETURN(
      rd_kafka_conf_t * conf,
      kafka::Config("changelog Kafka producer",
                    {{"bootstrap.servers", brokers},
                     {"enable.idempotence", "true"},
                     {"compression.codec", "lz4"},
                     {"linger.ms", "1"},
                     {"message.timeout.ms", std::to_string(write_timeout.count())}}));
  rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
  rd_kafka_conf_set_log_cb(conf, OnLog);
  FAULTLINE_ASSIGN_OR_RETURN(im.producer,
                             kafka::Create(RD_KAFKA_PRODUCER, "changelog producer", conf));
  Result<int> partitions = kafka::PartitionCount(im.producer, topic, 10000);
  if (!partitions.ok()) {
    return Unavailable("--changelog-topic " + topic + ": cannot read its partitions (" +
                       partitions.status().message() + "); create it with as many partitions as "
                       "the events topic");
  }
  im.partitions = *partitions;
  return c;
}

KafkaChangelog::~KafkaChangelog() = default;

// One Send's records: the delivery callbacks count them down; Wait polls the producer (which
// serves every Send's callbacks) until they are all answered or the time is up.
class KafkaDelivery : public ChangelogLink::Delivery {
 public:
  KafkaDelivery(rd_kafka_t* producer, std::string where, std::chrono::milliseconds timeout)
      : producer_(producer),
        where_(std::move(where)),
        timeout_(timeout),
        deadline_(Clock::now() + timeout + std::chrono::seconds(1)),
        pending_(std::make_shared<Pending>()) {}
  void Fail(Status s) { failed_ = std::move(s); }
  Clock::time_point deadline() const { return deadline_; }
  const std::shared_ptr<Pending>& pending() const { return pending_; }
  Status Wait() override {
    // The message timeout ends every record within `timeout_`: then each is answered.
    while (pending_->left > 0 && Clock::now() < deadline_) rd_kafka_poll(producer_, 5);
    if (!failed_.ok()) return failed_;
    if (const int e = pending_->error.load())
      return Unavailable(where_ + ": not delivered: " +
                         rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(e)));
    if (pending_->left > 0)
      return Unavailable(where_ + ": not acknowledged within " +
                         std::to_string(timeout_.count()) + " ms");
    return Status::Ok();
  }

 private:
  rd_kafka_t* producer_;
  std::string where_;
  std::chrono::milliseconds timeout_;
  Clock::time_point deadline_;
  std::shared_ptr<Pending> pending_;
  Status failed_;
};

std::unique_ptr<ChangelogLink::Delivery> KafkaChangelog::Send(
    int32_t partition, const std::vector<ChangelogRecord>& records) {
  Impl& im = *impl_;
  auto d = std::make_unique<KafkaDelivery>(im.producer, im.Where(partition), im.write_timeout);
  if (partition >= im.partitions) {
    d->Fail(Unavailable(im.Where(partition) + ": the topic has only " +
                        std::to_string(im.partitions) +
                        " partitions; it needs as many as the events topic"));
    return d;
  }
  const std::shared_ptr<Pending>& pending = d->pending();
  pending->left = static_cast<int>(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    std::string value = EncodeChangelogRecord(records[i]);
    // Unique per record, so that a topic compacted by mistake still keeps every one (a claim
    // names the seq its writer's snapshot may have too).
    const std::string key =
        (records[i].kind == ChangelogKind::kClaim
             ? "claim" + std::to_string(records[i].epoch)
             : std::to_string(records[i].seq) + "." + std::to_string(records[i].part)) +
        "@" + std::to_string(records[i].chain);
    auto* opaque = new std::shared_ptr<Pending>(pending);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(im.producer, RD_KAFKA_V_TOPIC(im.topic.c_str()),
                                  RD_KAFKA_V_PARTITION(partition),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(key.data(), key.size()),
                                  RD_KAFKA_V_VALUE(value.data(), value.size()),
                                  RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL &&
           Clock::now() < d->deadline()) {
      rd_kafka_poll(im.producer, 10);
    }
    if (e) {
      delete opaque;
      pending->left -= static_cast<int>(records.size() - i);
      d->Fail(Unavailable(im.Where(partition) + ": not delivered: " + rd_kafka_err2str(e)));
      break;
    }
  }
  return d;
}

Status KafkaChangelog::Read(
    int32_t partition, const std::function<Status(int64_t offset, std::string_view value)>& each) {
  Impl& im = *impl_;
  if (partition >= im.partitions) {
    return Unavailable(im.Where(partition) + ": the topic has only " +
                       std::to_string(im.partitions) +
                       " partitions; it needs as many as the events topic");
  }
  // assign() wants a group id; this consumer never joins the group nor commits to it.
  FAULTLINE_ASSIGN_OR_RETURN(rd_kafka_conf_t * conf,
                             kafka::Config("changelog Kafka consumer",
                                           {{"bootstrap.servers", im.brokers},
                                            {"group.id", "faultline-changelog-reader"},
                                            {"enable.auto.commit", "false"},
                                            {"enable.partition.eof", "true"},
                                            {"auto.offset.reset", "error"},
                                            {"fetch.max.bytes", std::to_string(64 << 20)}}));
  rd_kafka_conf_set_log_cb(conf, OnLog);
  Result<rd_kafka_t*> consumer =
      kafka::Create(RD_KAFKA_CONSUMER, "changelog consumer", conf);
  if (!consumer.ok()) return Unavailable(im.Where(partition) + ": " + consumer.status().message());
  rd_kafka_t* c = *consumer;
  std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> owner(c, [](rd_kafka_t* k) {
    rd_kafka_assign(k, nullptr);
    rd_kafka_destroy_flags(k, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  });
  rd_kafka_poll_set_consumer(c);
  int64_t low = 0, high = 0;
  if (rd_kafka_resp_err_t e =
          rd_kafka_query_watermark_offsets(c, im.topic.c_str(), partition, &low, &high, 10000)) {
    return Unavailable(im.Where(partition) + ": " + rd_kafka_err2str(e));
  }
  if (high <= low) return Status::Ok();
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, im.topic.c_str(), partition)->offset = low;
  rd_kafka_resp_err_t e = rd_kafka_assign(c, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e) return Unavailable(im.Where(partition) + ": " + rd_kafka_err2str(e));
  const auto deadline = Clock::now() + kReadTimeout;
  int64_t next = low;
  while (next < high) {
    if (Clock::now() > deadline) {
      return Unavailable(im.Where(partition) + ": read only to offset " + std::to_string(next) +
                         " of " + std::to_string(high) + " in " +
                         std::to_string(kReadTimeout.count()) + " s");
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 100);
    if (!m) continue;
    std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> msg(
        m, rd_kafka_message_destroy);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      next = std::max(next, m->offset);
      continue;
    }
    if (m->err) {
      // Out of range: the log's start moved past what was being read (retention).
      return Unavailable(im.Where(partition) + " at offset " + std::to_string(next) + ": " +
                         rd_kafka_message_errstr(m));
    }
    FAULTLINE_RETURN_IF_ERROR(
        each(m->offset, std::string_view(static_cast<const char*>(m->payload), m->len)));
    next = m->offset + 1;
  }
  return Status::Ok();
}

}  // namespace faultline::stream
