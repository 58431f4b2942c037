#include "sinks.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <random>

#include "faultline/common/kafka.h"
#include "faultline/common/log.h"

namespace faultline::diagnosis {
namespace {

// How long the producer tries one message (message.timeout.ms), and the backoff cap after that.
constexpr int kKafkaMessageTimeoutMs = 30000;
constexpr int kKafkaMaxBackoffMs = 30000;
// How far back the incident topic is read for what a previous run published.
constexpr int64_t kReadBackTail = 10000;

class KafkaSink : public Sink {
 public:
  static Result<std::unique_ptr<Sink>> Make(const std::string& brokers, const std::string& topic) {
    std::unique_ptr<KafkaSink> sink(new KafkaSink(brokers, topic));
    FAULTLINE_ASSIGN_OR_RETURN(
        rd_kafka_conf_t * conf,
        kafka::Config("Kafka producer",
                      {{"bootstrap.servers", brokers},
                       {"enable.idempotence", "true"},
                       {"linger.ms", "5"},
                       {"message.timeout.ms", std::to_string(kKafkaMessageTimeoutMs)},
                       {"log_level", "3"}}));
    rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
    rd_kafka_conf_set_opaque(conf, sink.get());
    FAULTLINE_ASSIGN_OR_RETURN(sink->producer_,
                               kafka::Create(RD_KAFKA_PRODUCER, "Kafka producer", conf));
    return std::unique_ptr<Sink>(std::move(sink));
  }
  ~KafkaSink() override {
    if (!producer_) return;
    rd_kafka_flush(producer_, 1000);
    rd_kafka_destroy(producer_);
  }
  const std::string& name() const override { return name_; }
  std::string Body(const Incident& i) const override { return IncidentToJson(i); }
  int max_backoff_ms() const override { return kKafkaMaxBackoffMs; }
  void Stop() override { stopping_ = true; }

  DeliveryResult Deliver(const OutboxEntry& e) override {
    rd_kafka_headers_t* h = rd_kafka_headers_new(8);
    auto add = [&](const char* name, const std::string& v) {
      rd_kafka_header_add(h, name, -1, v.data(), static_cast<ssize_t>(v.size()));
    };
    add("ce_specversion", "1.0");
    add("ce_id", e.webhook_id);
    add("ce_source", "urn:faultline:diagnosis");
    add("ce_type", "dev.faultline.incident." + e.status);
    add("ce_time", e.time);
    add("ce_subject", e.dedup_key);
    add("content-type", "application/json");
    // The report is found by number: one that comes after this attempt gave up finds nothing.
    const uintptr_t id = ++last_id_;
    Report& report = reports_[id];
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(e.incident_id.data(), e.incident_id.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(e.body.data()), e.body.size()), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(id)), RD_KAFKA_V_END);
    if (err) {
      rd_kafka_headers_destroy(h);
      reports_.erase(id);
      return {DeliveryOutcome::kRetry, -1, std::string("cannot produce: ") + rd_kafka_err2str(err)};
    }
    // The producer gives up on the message after its timeout, so its report comes by then.
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(kKafkaMessageTimeoutMs + 5000);
    while (!report.answered && !stopping_.load() && std::chrono::steady_clock::now() < deadline)
      rd_kafka_flush(producer_, 100);
    const Report r = report;
    reports_.erase(id);
    if (!r.answered) return {DeliveryOutcome::kRetry, -1, "no delivery report"};
    if (r.err) return {DeliveryOutcome::kRetry, -1, rd_kafka_err2str(r.err)};
    return {DeliveryOutcome::kDelivered, -1, {}};
  }

  // The CloudEvents ids (ce_id: "<incident id>.<sequence>") of the last messages of every
  // partition of the topic: what a previous run published.
  Result<std::set<std::string>> AlreadyDelivered(const std::vector<OutboxEntry>& left) override {
    std::set<std::string> ids;
    if (left.empty()) return ids;
    FAULTLINE_ASSIGN_OR_RETURN(rd_kafka_t * c,
                               kafka::Create(RD_KAFKA_CONSUMER, "incident topic reader",
                                             {{"bootstrap.servers", brokers_},
                                              {"group.id", "faultline-diagnosis-readback"},
                                              {"enable.auto.commit", "false"},
                                              {"log_level", "3"}}));
    std::unique_ptr<rd_kafka_t, void (*)(rd_kafka_t*)> owner(c, [](rd_kafka_t* k) {
      rd_kafka_consumer_close(k);
      rd_kafka_destroy(k);
    });
    Result<int> partitions = kafka::PartitionCount(c, topic_, 10000);
    if (partitions.status().code() == StatusCode::kNotFound) return ids;  // never published to
    if (!partitions.ok()) return Unavailable("incident " + partitions.status().message());
    std::map<int32_t, int64_t> until;  // partition -> high watermark
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(*partitions);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int32_t p = 0; p < *partitions; ++p) {
      int64_t lo = 0, hi = 0;
      if ((e = rd_kafka_query_watermark_offsets(c, topic_.c_str(), p, &lo, &hi, 10000))) break;
      if (hi > lo) {
        until[p] = hi;
        rd_kafka_topic_partition_list_add(list, topic_.c_str(), p)->offset =
            std::max(lo, hi - kReadBackTail);
      }
    }
    if (!e && !until.empty()) e = rd_kafka_assign(c, list);
    rd_kafka_topic_partition_list_destroy(list);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!e && !until.empty() && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 200);
      if (!m) continue;
      if (!m->err) {
        rd_kafka_headers_t* h = nullptr;
        const void* v = nullptr;
        size_t n = 0;
        if (!rd_kafka_message_headers(m, &h) && !rd_kafka_header_get_last(h, "ce_id", &v, &n))
          ids.emplace(static_cast<const char*>(v), n);
        if (auto it = until.find(m->partition); it != until.end() && m->offset + 1 >= it->second)
          until.erase(it);
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        e = m->err;
      }
      rd_kafka_message_destroy(m);
    }
    if (e) return Unavailable("incident topic " + topic_ + ": " + rd_kafka_err2str(e));
    if (!until.empty())
      return Unavailable("incident topic " + topic_ + ": not read to its end in 30 s");
    return ids;
  }

 private:
  KafkaSink(std::string brokers, std::string topic)
      : brokers_(std::move(brokers)), topic_(std::move(topic)) {}
  // Called from rd_kafka_flush on the stage's thread.
  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<KafkaSink*>(opaque);
    auto it = self->reports_.find(reinterpret_cast<uintptr_t>(m->_private));
    if (it == self->reports_.end()) return;
    it->second.answered = true;
    it->second.err = m->err;
  }
  struct Report {
    bool answered = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  };
  const std::string name_ = "kafka";
  rd_kafka_t* producer_ = nullptr;
  std::string brokers_, topic_;
  uintptr_t last_id_ = 0;
  std::atomic<bool> stopping_{false};
  std::map<uintptr_t, Report> reports_;
};

class WebhookSink : public Sink {
 public:
  explicit WebhookSink(const WebhookOptions& o) : name_("webhook:" + o.name), client_(o) {}
  const std::string& name() const override { return name_; }
  std::string Body(const Incident& i) const override {
    return client_.options().format == WebhookFormat::kAlertmanager ? AlertmanagerPayload(i)
                                                                     : IncidentToJson(i);
  }
  int max_backoff_ms() const override { return client_.options().max_backoff_ms; }
  DeliveryResult Deliver(const OutboxEntry& e) override {
    const HttpAnswer a = client_.Post(e.webhook_id, WallSeconds(), e.body);
    return {OutcomeOf(a.status), a.retry_after_s,
            a.status ? "HTTP " + std::to_string(a.status) + " from " + client_.options().url
                     : a.error};
  }

 private:
  std::string name_;
  WebhookClient client_;
};

}  // namespace

Result<std::unique_ptr<Sink>> MakeKafkaSink(const std::string& brokers, const std::string& topic) {
  return KafkaSink::Make(brokers, topic);
}

std::unique_ptr<Sink> MakeWebhookSink(const WebhookOptions& options) {
  return std::make_unique<WebhookSink>(options);
}

DeliveryStage::DeliveryStage(std::unique_ptr<Sink> sink, MetricsRegistry* metrics,
                             std::function<void(const std::string& key)> done)
    : sink_(std::move(sink)), done_(std::move(done)) {
  auto counter = [&](const char* result) {
    return &metrics->Counter("faultline_diagnosis_deliveries_total", "Deliveries by sink and result",
                             {{"sink", sink_->name()}, {"result", result}});
  };
  delivered_ = counter("delivered");
  failed_ = counter("failed");
  refused_ = counter("refused");
  attempts_ = &metrics->Counter("faultline_diagnosis_delivery_attempts_total",
                                "Delivery attempts by sink", {{"sink", sink_->name()}});
}

DeliveryStage::~DeliveryStage() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  sink_->Stop();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DeliveryStage::Start() { thread_ = std::thread([this] { Run(); }); }

void DeliveryStage::Enqueue(OutboxEntry entry) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(entry));
  }
  cv_.notify_all();
}

std::pair<size_t, int64_t> DeliveryStage::Waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t oldest = 0;
  for (const OutboxEntry& e : queue_) oldest = oldest ? std::min(oldest, e.created_s) : e.created_s;
  return {queue_.size(), oldest};
}

void DeliveryStage::Drain(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return queue_.empty(); });
}

void DeliveryStage::Run() {
  std::mt19937_64 rng(std::hash<std::string>{}(sink_->name()));
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const OutboxEntry e = queue_.front();
    lock.unlock();
    for (int attempt = 1;; ++attempt) {
      attempts_->Increment();
      const DeliveryResult r = sink_->Deliver(e);
      if (r.outcome != DeliveryOutcome::kRetry) {
        (r.outcome == DeliveryOutcome::kDelivered ? delivered_ : refused_)->Increment();
        if (r.outcome == DeliveryOutcome::kRefused)
          FAULTLINE_WARN_RATE_LIMITED("{}: {} refused for good ({})", sink_->name(), e.webhook_id,
                                      r.error);
        done_(e.key);
        break;
      }
      failed_->Increment();
      FAULTLINE_WARN_RATE_LIMITED("{}: {} (attempt {}): {}; retried", sink_->name(), e.webhook_id,
                                  attempt, r.error);
      const int64_t delay = RetryDelayMs(attempt, r.retry_after_s, sink_->max_backoff_ms(), &rng);
      lock.lock();
      if (cv_.wait_for(lock, std::chrono::milliseconds(delay), [&] { return stop_; })) return;
      lock.unlock();
    }
    lock.lock();
    queue_.pop_front();
    cv_.notify_all();  // Drain
  }
}

}  // namespace faultline::diagnosis
