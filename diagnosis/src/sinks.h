// Where incidents go: sinks behind one interface (the incident topic, each webhook), and one
// delivery stage per sink that takes its outbox entries in order and retries each with
// exponential backoff and full jitter until the sink acknowledges or refuses it (as
// Alertmanager's notify pipeline wraps every integration in one retry stage). Private to
// diagnosis/.
//
// Thread-safety: a Sink is used by its stage's thread only (Recover before the stage starts);
// DeliveryStage's methods are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "diagnosis_store.h"
#include "faultline/common/metrics.h"
#include "faultline/common/status.h"
#include "faultline/diagnosis/incident.h"
#include "faultline/diagnosis/webhook.h"

namespace faultline::diagnosis {

struct DeliveryResult {
  DeliveryOutcome outcome = DeliveryOutcome::kRetry;
  int64_t retry_after_s = -1;  // the receiver's Retry-After, when it gave one
  std::string error;           // what went wrong, for the log
};

class Sink {
 public:
  virtual ~Sink() = default;
  // "kafka", "webhook:<name>": outbox keys and the sink label of /metrics.
  virtual const std::string& name() const = 0;
  // What this sink receives for an incident change.
  virtual std::string Body(const Incident& incident) const = 0;
  // One attempt, blocking until the sink answers or gives up.
  virtual DeliveryResult Deliver(const OutboxEntry& entry) = 0;
  // The longest wait between attempts.
  virtual int max_backoff_ms() const = 0;
  // Makes an attempt in progress give up soon (called from another thread at shutdown).
  virtual void Stop() {}
  // Of the entries a previous run left in the outbox, the webhook-ids the sink already holds (a
  // crash between its acknowledgement and the commit that forgot them). Default: none known.
  virtual Result<std::set<std::string>> AlreadyDelivered(const std::vector<OutboxEntry>& left) {
    return std::set<std::string>();
  }
};

// The incident topic: key = incident id, value = the incident JSON, CloudEvents 1.0 attributes
// as ce_* headers, an idempotent producer. Errors: kInvalidArgument for a setting, kUnavailable.
Result<std::unique_ptr<Sink>> MakeKafkaSink(const std::string& brokers, const std::string& topic);
// A webhook (webhook.h).
std::unique_ptr<Sink> MakeWebhookSink(const WebhookOptions& options);

class DeliveryStage {
 public:
  // `done` is called (on the stage's thread) with each entry's key once it was delivered or
  // refused for good (the runtime forgets it with its next commit). Counters: faultline_diagnosis_deliveries_total{sink,result} and
  // faultline_diagnosis_delivery_attempts_total{sink}.
  DeliveryStage(std::unique_ptr<Sink> sink, MetricsRegistry* metrics,
                std::function<void(const std::string& key)> done);
  ~DeliveryStage();  // stops at once; what is queued stays in the outbox
  DeliveryStage(const DeliveryStage&) = delete;
  DeliveryStage& operator=(const DeliveryStage&) = delete;

  Sink& sink() { return *sink_; }
  // Starts the stage's thread (after the previous run's entries were queued).
  void Start();
  void Enqueue(OutboxEntry entry);
  // Entries waiting, and the oldest one's creation time (0 when none).
  std::pair<size_t, int64_t> Waiting() const;
  // Waits until the queue is empty or `deadline` passes.
  void Drain(std::chrono::steady_clock::time_point deadline);

 private:
  void Run();
  std::unique_ptr<Sink> sink_;
  std::function<void(const std::string&)> done_;
  prometheus::Counter *delivered_, *failed_, *refused_, *attempts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<OutboxEntry> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace faultline::diagnosis
