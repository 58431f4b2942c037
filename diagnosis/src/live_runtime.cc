#include "faultline/diagnosis/live_runtime.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "diagnosis_store.h"
#include "faultline/common/health.h"
#include "faultline/common/http_server.h"
#include "faultline/common/kafka.h"
#include "faultline/common/log.h"
#include "faultline/common/text.h"
#include "live_report.h"
#include "sinks.h"

namespace faultline::diagnosis {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

struct LiveRuntime::Impl {
  LiveRuntimeOptions o;
  MetricsRegistry* metrics = nullptr;
  fta::FaultTrees loaded_trees;
  const fta::FaultTrees* trees = nullptr;
  std::unique_ptr<LiveDiagnosis> live;
  std::unique_ptr<DiagnosisStore> store;
  rd_kafka_t* consumer = nullptr;
  std::map<int32_t, int64_t> offsets;  // next offset to read, per metrics-topic partition
  uint64_t outbox_seq = 0;
  std::vector<std::unique_ptr<DeliveryStage>> stages;  // one per sink
  // Outbox entries the sinks are done with, forgotten by the next commit.
  std::mutex done_mu;
  std::vector<std::string> done;
  std::vector<std::string> TakeDone() {
    std::lock_guard<std::mutex> lock(done_mu);
    return std::move(done);
  }
  LiveCounters reported;

  std::mutex status_mu;
  std::vector<std::string> incidents_json;  // newest first
  nlohmann::json status = nlohmann::json::object();
  // Ready while the consume loop runs (the state is loaded before it starts).
  Health health;
  std::unique_ptr<HttpServer> http;

  ~Impl() {
    http.reset();
    stages.clear();
    if (consumer) {
      rd_kafka_consumer_close(consumer);
      rd_kafka_destroy(consumer);
    }
  }

  prometheus::Counter& Count(const std::string& name, const std::string& help,
                             const std::map<std::string, std::string>& labels = {}) {
    return metrics->Counter(name, help, labels);
  }
  prometheus::Counter& Dropped(const std::string& reason) {
    return Count("faultline_diagnosis_dropped_total", "Records or deliveries dropped, by reason",
                 {{"reason", reason}});
  }

  Status OpenConsumer();
  Status StartSinks(std::vector<OutboxEntry> left);
  Status StartHttp();
  void Report();
  Status Commit();
};

// Every partition of the metrics topic, from the stored offsets. The stream creates the topic
// with its first windows: a topic not there yet is waited for (at most topic_wait_ms); a broker
// that does not answer fails after 10 s.
Status LiveRuntime::Impl::OpenConsumer() {
  FAULTLINE_ASSIGN_OR_RETURN(consumer, kafka::Create(RD_KAFKA_CONSUMER, "Kafka consumer",
                                                     {{"bootstrap.servers", o.brokers},
                                                      {"group.id", "faultline-diagnosis"},
                                                      {"enable.auto.commit", "false"},
                                                      {"enable.auto.offset.store", "false"},
                                                      {"log_level", "3"}}));
  rd_kafka_poll_set_consumer(consumer);
  const auto wait_until = Clock::now() + std::chrono::milliseconds(o.topic_wait_ms);
  Result<int> partitions = 0;
  for (bool logged = false;; logged = true) {
    partitions = kafka::PartitionCount(consumer, o.metrics_topic, 10000);
    if (partitions.status().code() != StatusCode::kNotFound || Clock::now() >= wait_until) break;
    if (!logged)
      spdlog::info("diagnosis: waiting for topic {} (the stream creates it with its first windows)",
                   o.metrics_topic);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (!partitions.ok())
    return Unavailable("--brokers " + o.brokers + ": no metadata for " + partitions.status().message());
  live->set_metrics_partitions(*partitions);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(*partitions);
  for (int32_t p = 0; p < *partitions; ++p) {
    auto it = offsets.find(p);
    rd_kafka_topic_partition_list_add(list, o.metrics_topic.c_str(), p)->offset =
        it != offsets.end() ? it->second : RD_KAFKA_OFFSET_BEGINNING;
  }
  const rd_kafka_resp_err_t aerr = rd_kafka_assign(consumer, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (aerr) return Unavailable(std::string("cannot assign the metrics topic: ") + rd_kafka_err2str(aerr));
  return Status::Ok();
}

// One delivery stage per sink, fed first with the deliveries a previous run left in the outbox,
// in order. Those a sink already holds (the incident topic: a crash between the broker's ack and
// the commit that forgets them) are not delivered again: it carries each (id, sequence) once.
Status LiveRuntime::Impl::StartSinks(std::vector<OutboxEntry> left) {
  std::vector<std::unique_ptr<Sink>> sinks;
  if (!o.incidents_topic.empty()) {
    FAULTLINE_ASSIGN_OR_RETURN(auto kafka, MakeKafkaSink(o.brokers, o.incidents_topic));
    sinks.push_back(std::move(kafka));
  }
  for (const WebhookOptions& wo : o.webhooks) sinks.push_back(MakeWebhookSink(wo));
  auto forget = [this](const std::string& key) {
    std::lock_guard<std::mutex> lock(done_mu);
    done.push_back(key);
  };
  for (auto& sink : sinks) stages.push_back(std::make_unique<DeliveryStage>(std::move(sink), metrics, forget));
  std::vector<std::string> already;
  for (auto& stage : stages) {
    std::vector<OutboxEntry> mine;
    for (const OutboxEntry& e : left)
      if (OutboxSink(e.key) == stage->sink().name()) mine.push_back(e);
    FAULTLINE_ASSIGN_OR_RETURN(std::set<std::string> held, stage->sink().AlreadyDelivered(mine));
    for (OutboxEntry& e : mine) {
      if (held.count(e.webhook_id)) {
        already.push_back(e.key);
        Count("faultline_diagnosis_redeliveries_skipped_total",
              "Outbox entries a previous run had already delivered, found on the incident topic")
            .Increment();
      } else {
        stage->Enqueue(std::move(e));
      }
    }
  }
  for (const OutboxEntry& e : left) {
    const std::string sink = OutboxSink(e.key);
    if (std::none_of(stages.begin(), stages.end(), [&](const auto& s) { return s->sink().name() == sink; })) {
      Dropped("sink_removed").Increment();  // a sink no longer configured: the entry stays
    }
  }
  FAULTLINE_RETURN_IF_ERROR(store->Forget(already));
  for (auto& stage : stages) stage->Start();
  return Status::Ok();
}

// /status, /incidents and /incidents/<id> beside /metrics, /healthz and /readyz.
Status LiveRuntime::Impl::StartHttp() {
  HttpServerOptions ho;
  ho.addr = o.http_addr, ho.metrics = metrics, ho.health = &health;
  ho.routes.push_back({"/status", [this](const HttpRequest&) {
                         std::lock_guard<std::mutex> lock(status_mu);
                         return HttpReply{200, status.dump() + "\n"};
                       }});
  ho.routes.push_back({"/incidents", [this](const HttpRequest&) {
                         std::lock_guard<std::mutex> lock(status_mu);
                         std::string body = "[";
                         for (size_t i = 0; i < incidents_json.size(); ++i)
                           body += (i ? ",\n" : "") + incidents_json[i];
                         return HttpReply{200, body + "]\n"};
                       }});
  ho.routes.push_back({R"(/incidents/([A-Za-z0-9_-]+))", [this](const HttpRequest& req) {
                         const std::string& id = req.matches.at(0);
                         std::lock_guard<std::mutex> lock(status_mu);
                         for (const std::string& j : incidents_json)
                           if (j.find("\"id\":\"" + id + "\"") != std::string::npos)
                             return HttpReply{200, j + "\n"};
                         return HttpReply::Text(404, "no incident " + id);
                       }});
  FAULTLINE_ASSIGN_OR_RETURN(http, HttpServer::Start(std::move(ho)));
  return Status::Ok();
}

void LiveRuntime::Impl::Report() { ReportLive(*live, stages, metrics, &reported); }

// Judges what is complete, then writes the state, the offsets and one outbox entry per incident
// change and sink in one batch; once that is durable, hands the entries to their stages.
Status LiveRuntime::Impl::Commit() {
  std::vector<Incident> changes = live->Advance();
  std::vector<LiveDiagnosis::Change> state;
  live->TakeChanges(&state);
  std::vector<std::pair<DeliveryStage*, OutboxEntry>> added;
  const int64_t now = WallSeconds();
  for (const Incident& i : changes) {
    OutboxEntry e;
    e.incident_id = i.id;
    e.sequence = i.sequence;
    e.webhook_id = i.id + "." + std::to_string(i.sequence);
    e.status = std::string(IncidentStatusName(i.status));
    e.dedup_key = i.dedup_key;
    e.time = Rfc3339(i.updated_at_s);
    e.created_s = now;
    for (auto& stage : stages) {
      OutboxEntry k = e;
      k.key = OutboxKey(stage->sink().name(), ++outbox_seq);
      k.body = stage->sink().Body(i);
      added.emplace_back(stage.get(), std::move(k));
    }
  }
  std::vector<OutboxEntry> entries;
  for (const auto& [stage, e] : added) entries.push_back(e);
  std::vector<std::string> forgotten = TakeDone();
  if (Status s = store->Commit(state, offsets, entries, forgotten, outbox_seq); !s.ok()) {
    Count("faultline_diagnosis_commit_errors_total", "Commits that failed").Increment();
    std::lock_guard<std::mutex> lock(done_mu);
    done.insert(done.end(), forgotten.begin(), forgotten.end());  // tried again next time
    return s;
  }
  Count("faultline_diagnosis_commits_total", "State commits").Increment();
  for (auto& [stage, e] : added) stage->Enqueue(std::move(e));
  for (const Incident& i : changes) {
    spdlog::info("incident {} {} #{}: {}", i.id, IncidentStatusName(i.status), i.sequence, i.title);
    if (o.on_incident) o.on_incident(i);
  }
  {
    std::lock_guard<std::mutex> lock(status_mu);
    incidents_json.clear();
    for (const Incident* i : live->Incidents()) incidents_json.push_back(IncidentToJson(*i));
    status = {{"judged_until", live->judged_until()},
              {"series", live->watched_series()},
              {"records", live->counters().records},
              {"late_partials", live->counters().late_partials},
              {"offsets", nlohmann::json(offsets)}};
  }
  Report();
  return Status::Ok();
}

Result<std::unique_ptr<LiveRuntime>> LiveRuntime::Create(LiveRuntimeOptions options,
                                                         MetricsRegistry* metrics) {
  if (options.brokers.empty()) return InvalidArgument("--brokers: expected HOST:PORT[,HOST:PORT…]");
  if (options.state_dir.empty()) return InvalidArgument("--state-dir: required");
  for (size_t i = 0; i < options.webhooks.size(); ++i)
    FAULTLINE_RETURN_IF_ERROR(ValidateWebhook(options.webhooks[i], "webhooks[" + std::to_string(i) + "]"));
  std::unique_ptr<LiveRuntime> rt(new LiveRuntime());
  rt->impl_ = std::make_unique<Impl>();
  Impl& im = *rt->impl_;
  im.o = std::move(options);
  im.metrics = metrics;
  im.trees = &fta::DefaultFaultTrees();
  if (!im.o.trees_path.empty()) {
    FAULTLINE_ASSIGN_OR_RETURN(im.loaded_trees, fta::LoadFaultTrees(im.o.trees_path));
    im.trees = &im.loaded_trees;
  }
  im.live = std::make_unique<LiveDiagnosis>(im.o.live, im.trees);
  StoredDiagnosis stored;
  FAULTLINE_ASSIGN_OR_RETURN(im.store, DiagnosisStore::Open(im.o.state_dir, &stored));
  im.offsets = std::move(stored.offsets);
  im.outbox_seq = stored.outbox_seq;
  FAULTLINE_RETURN_IF_ERROR(im.live->Restore(stored.live));
  spdlog::info("diagnosis: state of {} records restored from {} (windows judged until {}, {} deliveries waiting)",
               stored.live.size(), im.store->path(), im.live->judged_until(), stored.outbox.size());
  FAULTLINE_RETURN_IF_ERROR(im.OpenConsumer());
  FAULTLINE_RETURN_IF_ERROR(im.StartSinks(std::move(stored.outbox)));
  if (!im.o.http_addr.empty()) FAULTLINE_RETURN_IF_ERROR(im.StartHttp());
  im.Report();
  return rt;
}

LiveRuntime::~LiveRuntime() = default;

int LiveRuntime::http_port() const { return impl_->http ? impl_->http->port() : 0; }

Status LiveRuntime::Run(const std::atomic<bool>& stop) {
  Impl& im = *impl_;
  auto last_commit = Clock::now();
  prometheus::Counter& kafka_errors =
      im.Count("faultline_diagnosis_kafka_errors_total", "Consumer errors reported by Kafka");
  im.health.SetReady(true);
  while (!stop.load()) {
    im.health.Beat();
    rd_kafka_message_t* m = rd_kafka_consumer_poll(im.consumer, 100);
    if (m) {
      if (!m->err) {
        const uint64_t late = im.live->counters().late_partials;
        const Status s = im.live->Apply(
            std::string_view(static_cast<const char*>(m->payload), m->len), m->partition);
        if (!s.ok()) FAULTLINE_WARN_RATE_LIMITED("metrics topic partition {} offset {}: {}",
                                                 m->partition, m->offset, s.message());
        if (im.live->counters().late_partials != late)
          FAULTLINE_WARN_RATE_LIMITED(
              "metrics topic partition {} offset {}: a partial of a window already judged (until "
              "{}), dropped; counted in faultline_diagnosis_dropped_total{{reason=\"late_partial\"}}",
              m->partition, m->offset, im.live->judged_until());
        im.offsets[m->partition] = m->offset + 1;
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        kafka_errors.Increment();
        FAULTLINE_WARN_RATE_LIMITED("metrics topic: {}", rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
    if (Clock::now() - last_commit >= std::chrono::milliseconds(im.o.commit_interval_ms)) {
      FAULTLINE_RETURN_IF_ERROR(im.Commit());
      last_commit = Clock::now();
    }
  }
  FAULTLINE_RETURN_IF_ERROR(im.Commit());
  // The sinks get up to 5 s to empty their queues; what is left stays in the outbox.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (auto& stage : im.stages) stage->Drain(deadline);
  return im.store->Forget(im.TakeDone());
}

}  // namespace faultline::diagnosis
