#include "faultline/diagnosis/live_runtime.h"

#include <httplib.h>
#include <librdkafka/rdkafka.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "faultline/common/health.h"
#include "faultline/common/http_health.h"
#include "faultline/common/log.h"
#include "faultline/common/yaml_load.h"
#include "faultline/common/text.h"
#include "faultline/detectors/plugin_loader.h"

namespace faultline::diagnosis {
namespace {

using Clock = std::chrono::steady_clock;

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// An outbox entry: one delivery of one incident change to one sink.
struct OutboxEntry {
  std::string key;  // "x|<sink>|<seq>"
  std::string incident_id, webhook_id, status, dedup_key, time;
  uint64_t sequence = 0;
  std::string body;
  int64_t created_s = 0;
};

std::string EncodeEntry(const OutboxEntry& e) {
  return nlohmann::json{{"incident_id", e.incident_id}, {"webhook_id", e.webhook_id},
                        {"status", e.status},           {"dedup_key", e.dedup_key},
                        {"time", e.time},               {"sequence", e.sequence},
                        {"body", e.body},               {"created_s", e.created_s}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);  // names may not be UTF-8
}

Result<OutboxEntry> DecodeEntry(const std::string& key, const std::string& value) {
  const nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("body") || !j["body"].is_string())
    return InvalidArgument("diagnosis state: outbox entry " + key + ": malformed");
  OutboxEntry e;
  e.key = key;
  e.incident_id = j.value("incident_id", "");
  e.webhook_id = j.value("webhook_id", "");
  e.status = j.value("status", "");
  e.dedup_key = j.value("dedup_key", "");
  e.time = j.value("time", "");
  e.sequence = j.value("sequence", uint64_t{0});
  e.body = j["body"].get<std::string>();
  e.created_s = j.value("created_s", int64_t{0});
  return e;
}

std::string OutboxKey(const std::string& sink, uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llu", static_cast<unsigned long long>(seq));
  return "x|" + sink + "|" + buf;
}

Status ConfError(const std::string& source, const YAML::Node& n, const std::string& what) {
  return InvalidArgument(source + ":" + std::to_string(n.Mark().line + 1) + ": " + what);
}

// The CloudEvents ids (ce_id: "<incident id>.<sequence>") of the last `tail` messages of every
// partition of `topic`: what a previous run published. Errors: kUnavailable.
Result<std::set<std::string>> PublishedIds(const std::string& brokers, const std::string& topic,
                                           int64_t tail) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] : {std::pair<const char*, std::string>{"bootstrap.servers", brokers},
                      {"group.id", "faultline-diagnosis-readback"},
                      {"enable.auto.commit", "false"},
                      {"log_level", "3"}})
    rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof(err));
  rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!c) return Unavailable(std::string("cannot create a Kafka consumer: ") + err);
  std::set<std::string> ids;
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(c, topic.c_str(), nullptr);
  rd_kafka_resp_err_t e = rd_kafka_metadata(c, 0, t, &md, 10000);
  rd_kafka_topic_destroy(t);
  if (e || md->topic_cnt != 1 || md->topics[0].err) {
    const bool absent = !e && md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    const std::string why = e ? rd_kafka_err2str(e) : rd_kafka_err2str(md->topics[0].err);
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(c);
    if (absent) return ids;  // nothing was ever published
    return Unavailable("incident topic " + topic + ": " + why);
  }
  std::map<int32_t, int64_t> until;  // partition -> high watermark
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
  for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
    const int32_t p = md->topics[0].partitions[i].id;
    int64_t lo = 0, hi = 0;
    if ((e = rd_kafka_query_watermark_offsets(c, topic.c_str(), p, &lo, &hi, 10000))) break;
    if (hi > lo) {
      until[p] = hi;
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = std::max(lo, hi - tail);
    }
  }
  rd_kafka_metadata_destroy(md);
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
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  if (e) return Unavailable("incident topic " + topic + ": " + rd_kafka_err2str(e));
  if (!until.empty()) return Unavailable("incident topic " + topic + ": not read to its end in 30 s");
  return ids;
}

}  // namespace

Status ParseDiagnosisConfig(const std::string& yaml, const std::string& source,
                            LiveRuntimeOptions* o) {
  YAML::Node root;
  FAULTLINE_RETURN_IF_ERROR(LoadYaml(yaml, source, &root));
  try {
    if (root.IsNull()) return Status::Ok();  // an empty file: every default
    if (!root.IsMap()) return ConfError(source, root, "expected a mapping of settings");
    auto integer = [&](const YAML::Node& v, const std::string& key, int64_t lo, int64_t hi,
                       int64_t* out) -> Status {
      char* end = nullptr;
      const std::string s = v.IsScalar() ? v.Scalar() : "";
      const long long n = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end || n < lo || n > hi)
        return ConfError(source, v, key + ": expected an integer in " + std::to_string(lo) + ".." +
                                        std::to_string(hi) + ", got '" + s + "'");
      *out = n;
      return Status::Ok();
    };
    // Plugins first: the rules may name them.
    if (root["plugins"]) {
      const YAML::Node p = root["plugins"];
      if (!p.IsSequence()) return ConfError(source, p, "plugins: expected a list of .so paths");
      for (size_t i = 0; i < p.size(); ++i) {
        const std::string where = "plugins[" + std::to_string(i) + "]";
        if (!p[i].IsScalar()) return ConfError(source, p[i], where + ": expected a path");
        if (Status s = detectors::RegisterDetectorPlugin(p[i].Scalar()); !s.ok())
          return ConfError(source, p[i], where + ": " + s.message());
      }
    }
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node v = kv.second;
      int64_t n = 0;
      if (key == "lookback_seconds") {
        FAULTLINE_RETURN_IF_ERROR(integer(v, key, 30, 86400, &n));
        o->live.lookback_s = n;
      } else if (key == "idle_seconds") {
        FAULTLINE_RETURN_IF_ERROR(integer(v, key, 5, 86400, &n));
        o->live.idle_s = n;
      } else if (key == "resolve_after_windows") {
        FAULTLINE_RETURN_IF_ERROR(integer(v, key, 1, 10000, &n));
        o->live.resolve_after = static_cast<int>(n);
      } else if (key == "confirm_windows") {
        FAULTLINE_RETURN_IF_ERROR(integer(v, key, 0, 100, &n));
        o->live.confirm_windows = static_cast<int>(n);
      } else if (key == "commit_interval_ms") {
        FAULTLINE_RETURN_IF_ERROR(integer(v, key, 10, 60000, &n));
        o->commit_interval_ms = n;
      } else if (key == "entry_points") {
        if (!v.IsSequence()) return ConfError(source, v, "entry_points: expected a list of services");
        o->live.entry_points.clear();
        for (const auto& e : v) {
          if (!e.IsScalar()) return ConfError(source, e, "entry_points: expected a service name");
          o->live.entry_points.push_back(e.Scalar());
        }
      } else if (key == "detectors") {
        YAML::Emitter out;
        out << v;
        // Line numbers of the nested document are offset by where it starts in this file.
        auto c = detectors::ParseDetectorConfig(out.c_str(), source + " (detectors, from line " +
                                                                  std::to_string(v.Mark().line + 1) + ")");
        if (!c.ok()) return c.status();
        o->live.detectors = std::move(*c);
      } else if (key == "trees") {
        if (!v.IsScalar()) return ConfError(source, v, "trees: expected a file or directory");
        o->trees_path = v.Scalar();
      } else if (key == "incidents_topic") {
        if (!v.IsScalar()) return ConfError(source, v, "incidents_topic: expected a topic name");
        o->incidents_topic = v.Scalar();
      } else if (key == "plugins") {
        continue;
      } else if (key == "webhooks") {
        if (!v.IsSequence()) return ConfError(source, v, "webhooks: expected a list of endpoints");
        o->webhooks.clear();
        for (size_t i = 0; i < v.size(); ++i) {
          const YAML::Node w = v[i];
          const std::string where = "webhooks[" + std::to_string(i) + "]";
          if (!w.IsMap()) return ConfError(source, w, where + ": expected a mapping");
          WebhookOptions wo;
          for (const auto& f : w) {
            const std::string fk = f.first.as<std::string>();
            const YAML::Node fv = f.second;
            if (!fv.IsScalar()) return ConfError(source, fv, where + "." + fk + ": expected a value");
            if (fk == "name") {
              wo.name = fv.Scalar();
            } else if (fk == "url") {
              wo.url = fv.Scalar();
            } else if (fk == "secret") {
              wo.secret = fv.Scalar();
            } else if (fk == "secret_env") {
              const char* s = std::getenv(fv.Scalar().c_str());
              if (!s || !*s)
                return ConfError(source, fv, where + ".secret_env: the environment variable " +
                                                 fv.Scalar() + " is not set");
              wo.secret = s;
            } else if (fk == "format") {
              if (fv.Scalar() == "native") {
                wo.format = WebhookFormat::kNative;
              } else if (fv.Scalar() == "alertmanager") {
                wo.format = WebhookFormat::kAlertmanager;
              } else {
                return ConfError(source, fv, where + ".format: '" + fv.Scalar() +
                                                 "': expected native or alertmanager");
              }
            } else if (fk == "timeout_ms" || fk == "max_backoff_ms") {
              FAULTLINE_RETURN_IF_ERROR(integer(fv, where + "." + fk, 0, 3600000, &n));
              (fk == "timeout_ms" ? wo.timeout_ms : wo.max_backoff_ms) = static_cast<int>(n);
            } else {
              return ConfError(source, f.first, where + ": unknown key '" + fk +
                                                    "' (expected name, url, secret, secret_env, "
                                                    "format, timeout_ms, max_backoff_ms)");
            }
          }
          if (Status s = ValidateWebhook(wo, where); !s.ok())
            return ConfError(source, w, s.message());
          for (const WebhookOptions& other : o->webhooks)
            if (other.name == wo.name)
              return ConfError(source, w, where + ".name: '" + wo.name + "' is used twice");
          o->webhooks.push_back(std::move(wo));
        }
      } else {
        return ConfError(source, kv.first,
                         "unknown key '" + key +
                             "' (expected lookback_seconds, idle_seconds, resolve_after_windows, confirm_windows, "
                             "commit_interval_ms, entry_points, detectors, plugins, trees, "
                             "incidents_topic, webhooks)");
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return Status::Ok();
}

struct LiveRuntime::Impl {
  LiveRuntimeOptions o;
  MetricsRegistry* metrics = nullptr;
  fta::FaultTrees loaded_trees;
  const fta::FaultTrees* trees = nullptr;
  std::unique_ptr<LiveDiagnosis> live;
  std::unique_ptr<rocksdb::DB> db;
  rd_kafka_t* consumer = nullptr;
  rd_kafka_t* producer = nullptr;
  std::map<int32_t, int64_t> offsets;  // next offset to read, per metrics-topic partition
  uint64_t outbox_seq = 0;
  // Kafka sink: entries handed to the producer and not yet acknowledged, by key.
  std::map<std::string, OutboxEntry> kafka_pending;
  std::vector<std::string> kafka_delivered;  // keys to delete at the next commit
  std::vector<std::string> kafka_failed;     // keys to produce again
  LiveCounters reported;

  struct Webhook {
    std::unique_ptr<WebhookClient> client;
    std::string sink;
    std::mutex mu;
    std::condition_variable cv;
    std::deque<OutboxEntry> queue;
    bool stop = false;
    std::thread thread;
    prometheus::Counter *delivered = nullptr, *failed = nullptr, *refused = nullptr,
                        *attempts = nullptr;
  };
  std::vector<std::unique_ptr<Webhook>> webhooks;

  std::mutex status_mu;
  std::vector<std::string> incidents_json;  // newest first
  nlohmann::json status = nlohmann::json::object();
  // Ready while the consume loop runs (the state is loaded before it starts).
  Health health;
  std::unique_ptr<httplib::Server> http;
  std::thread http_thread;
  int http_port = 0;

  ~Impl() {
    for (auto& w : webhooks) {
      {
        std::lock_guard<std::mutex> lock(w->mu);
        w->stop = true;
      }
      w->cv.notify_all();
      if (w->thread.joinable()) w->thread.join();
    }
    if (http) http->stop();
    if (http_thread.joinable()) http_thread.join();
    if (consumer) {
      rd_kafka_consumer_close(consumer);
      rd_kafka_destroy(consumer);
    }
    if (producer) rd_kafka_destroy(producer);
  }

  prometheus::Counter& Count(const std::string& name, const std::string& help,
                             const std::map<std::string, std::string>& labels = {}) {
    return metrics->Counter(name, help, labels);
  }
  prometheus::Counter& Dropped(const std::string& reason) {
    return Count("faultline_diagnosis_dropped_total", "Records or deliveries dropped, by reason",
                 {{"reason", reason}});
  }

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    auto* key = static_cast<std::string*>(m->_private);
    if (!key) return;
    if (m->err) {
      FAULTLINE_WARN_RATE_LIMITED("incident topic: delivery failed ({}); retried",
                                  rd_kafka_err2str(m->err));
      self->Count("faultline_diagnosis_deliveries_total", "Deliveries by sink and result",
                  {{"sink", "kafka"}, {"result", "failed"}})
          .Increment();
      self->kafka_failed.push_back(*key);
    } else {
      self->Count("faultline_diagnosis_deliveries_total", "Deliveries by sink and result",
                  {{"sink", "kafka"}, {"result", "delivered"}})
          .Increment();
      self->kafka_delivered.push_back(*key);
    }
    delete key;
  }

  void Produce(const OutboxEntry& e) {
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
    auto* opaque = new std::string(e.key);
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(o.incidents_topic.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(e.incident_id.data(), e.incident_id.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(e.body.data()), e.body.size()), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err) {
      rd_kafka_headers_destroy(h);
      delete opaque;
      kafka_failed.push_back(e.key);  // tried again at the next commit
      FAULTLINE_WARN_RATE_LIMITED("incident topic: cannot produce ({}); retried", rd_kafka_err2str(err));
    }
  }

  void RunWebhook(Webhook* w) {
    std::mt19937_64 rng(std::hash<std::string>{}(w->sink));
    std::unique_lock<std::mutex> lock(w->mu);
    while (true) {
      w->cv.wait(lock, [&] { return w->stop || !w->queue.empty(); });
      if (w->stop) return;
      OutboxEntry e = w->queue.front();
      lock.unlock();
      int attempt = 0;
      bool done = false;
      while (!done) {
        w->attempts->Increment();
        const HttpAnswer a = w->client->Post(e.webhook_id, WallSeconds(), e.body);
        const DeliveryOutcome outcome = OutcomeOf(a.status);
        if (outcome == DeliveryOutcome::kDelivered || outcome == DeliveryOutcome::kRefused) {
          (outcome == DeliveryOutcome::kDelivered ? w->delivered : w->refused)->Increment();
          if (outcome == DeliveryOutcome::kRefused)
            FAULTLINE_WARN_RATE_LIMITED("webhook {}: {} refused {} for good (HTTP {})",
                                        w->client->options().name, w->client->options().url,
                                        e.webhook_id, a.status);
          rocksdb::WriteOptions wo;
          if (rocksdb::Status s = db->Delete(wo, e.key); !s.ok())
            spdlog::error("diagnosis state: cannot forget delivered {}: {}", e.key, s.ToString());
          done = true;
          break;
        }
        w->failed->Increment();
        FAULTLINE_WARN_RATE_LIMITED("webhook {}: {} (attempt {}): {}", w->client->options().name,
                                    e.webhook_id, attempt + 1,
                                    a.status ? "HTTP " + std::to_string(a.status) : a.error);
        const int64_t delay = RetryDelayMs(++attempt, a.retry_after_s,
                                           w->client->options().max_backoff_ms, &rng);
        lock.lock();
        if (w->cv.wait_for(lock, std::chrono::milliseconds(delay), [&] { return w->stop; })) return;
        lock.unlock();
      }
      lock.lock();
      w->queue.pop_front();
    }
  }

  std::string WebhookBody(const Webhook& w, const Incident& i) {
    return w.client->options().format == WebhookFormat::kAlertmanager ? AlertmanagerPayload(i)
                                                                       : IncidentToJson(i);
  }

  void Report() {
    const LiveCounters& c = live->counters();
    auto add = [](prometheus::Counter& counter, uint64_t now, uint64_t& before) {
      if (now > before) counter.Increment(static_cast<double>(now - before));
      before = now;
    };
    add(Count("faultline_diagnosis_records_total", "Window records applied"), c.records, reported.records);
    add(Dropped("undecodable"), c.undecodable, reported.undecodable);
    add(Dropped("late_partial"), c.late_partials, reported.late_partials);
    if (c.series_over_limit > reported.series_over_limit)
      FAULTLINE_WARN_RATE_LIMITED("diagnosis: {} series watched, the limit: new series are not "
                                  "watched (faultline_diagnosis_dropped_total{{reason=\"series_over_limit\"}})",
                                  live->watched_series());
    add(Dropped("series_over_limit"), c.series_over_limit, reported.series_over_limit);
    add(Count("faultline_diagnosis_windows_judged_total", "Window starts judged"), c.windows_judged,
        reported.windows_judged);
    add(Count("faultline_diagnosis_evaluations_total", "Detector observations"), c.evaluations,
        reported.evaluations);
    add(Count("faultline_diagnosis_anomalies_total", "Anomalous verdicts"), c.anomalies,
        reported.anomalies);
    add(Count("faultline_diagnosis_diagnoses_total", "Situations diagnosed"), c.diagnoses,
        reported.diagnoses);
    add(Count("faultline_diagnosis_anomalies_merged_total",
              "Anomalies whose root cause was an open incident's"),
        c.merged_into_open, reported.merged_into_open);
    add(Count("faultline_diagnosis_anomalies_held_total",
              "Windows an anomaly with a service as its first cause waited for confirmation"),
        c.held, reported.held);
    add(Count("faultline_diagnosis_anomalies_unconfirmed_total",
              "Held anomalies normal again before confirmation (no incident)"),
        c.held_dropped, reported.held_dropped);
    auto inc = [&](const char* status) -> prometheus::Counter& {
      return Count("faultline_diagnosis_incidents_total", "Incident changes, by status", {{"status", status}});
    };
    add(inc("opened"), c.opened, reported.opened);
    add(inc("updated"), c.updated, reported.updated);
    add(inc("resolved"), c.resolved, reported.resolved);
    metrics->Gauge("faultline_diagnosis_series", "Series watched by detectors")
        .Set(static_cast<double>(live->watched_series()));
    std::map<std::string, std::pair<size_t, int64_t>> outbox;  // sink -> (entries, oldest created)
    const int64_t now = WallSeconds();
    auto note = [&](const std::string& sink, const OutboxEntry& e) {
      auto& [n, oldest] = outbox[sink];
      n++;
      oldest = oldest ? std::min(oldest, e.created_s) : e.created_s;
    };
    if (producer) {
      outbox["kafka"];
      for (const auto& [k, e] : kafka_pending) note("kafka", e);
    }
    for (auto& w : webhooks) {
      std::lock_guard<std::mutex> lock(w->mu);
      outbox[w->sink];
      for (const auto& e : w->queue) note(w->sink, e);
    }
    for (const auto& [sink, v] : outbox) {
      metrics->Gauge("faultline_diagnosis_outbox_entries", "Deliveries waiting, by sink", {{"sink", sink}})
          .Set(static_cast<double>(v.first));
      metrics->Gauge("faultline_diagnosis_outbox_oldest_seconds",
                     "Age of the oldest delivery waiting, by sink", {{"sink", sink}})
          .Set(v.first ? static_cast<double>(now - v.second) : 0.0);
    }
  }

  Status Commit() {
    std::vector<Incident> changes = live->Advance();
    std::vector<LiveDiagnosis::Change> state;
    live->TakeChanges(&state);
    rocksdb::WriteBatch batch;
    for (const auto& [k, v] : state) {
      if (v) {
        batch.Put(k, *v);
      } else {
        batch.Delete(k);
      }
    }
    for (const auto& [p, off] : offsets) batch.Put("o|" + std::to_string(p), std::to_string(off));
    const std::vector<std::string> delivered = std::move(kafka_delivered);
    kafka_delivered.clear();
    for (const std::string& k : delivered) {
      batch.Delete(k);
      kafka_pending.erase(k);
    }
    std::vector<std::pair<Webhook*, OutboxEntry>> to_webhooks;
    std::vector<OutboxEntry> to_kafka;
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
      if (producer) {
        OutboxEntry k = e;
        k.key = OutboxKey("kafka", ++outbox_seq);
        k.body = IncidentToJson(i);
        batch.Put(k.key, EncodeEntry(k));
        to_kafka.push_back(std::move(k));
      }
      for (auto& w : webhooks) {
        OutboxEntry k = e;
        k.key = OutboxKey(w->sink, ++outbox_seq);
        k.body = WebhookBody(*w, i);
        batch.Put(k.key, EncodeEntry(k));
        to_webhooks.emplace_back(w.get(), std::move(k));
      }
    }
    batch.Put("m|outbox_seq", std::to_string(outbox_seq));
    if (rocksdb::Status s = db->Write(rocksdb::WriteOptions(), &batch); !s.ok()) {
      Count("faultline_diagnosis_commit_errors_total", "Commits that failed").Increment();
      return Internal("diagnosis state " + o.state_dir + ": " + s.ToString());
    }
    Count("faultline_diagnosis_commits_total", "State commits").Increment();
    // Durable: now hand the deliveries out.
    for (OutboxEntry& e : to_kafka) {
      Produce(e);
      kafka_pending.emplace(e.key, std::move(e));
    }
    std::vector<std::string> retry = std::move(kafka_failed);
    kafka_failed.clear();
    for (const std::string& k : retry)
      if (auto it = kafka_pending.find(k); it != kafka_pending.end()) Produce(it->second);
    for (auto& [w, e] : to_webhooks) {
      {
        std::lock_guard<std::mutex> lock(w->mu);
        w->queue.push_back(std::move(e));
      }
      w->cv.notify_one();
    }
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

  Status StartHttp() {
    const size_t colon = o.http_addr.rfind(':');
    if (colon == std::string::npos)
      return InvalidArgument("--http-addr '" + o.http_addr + "': expected HOST:PORT");
    const std::string host = o.http_addr.substr(0, colon);
    int port = 0;
    try {
      port = std::stoi(o.http_addr.substr(colon + 1));
    } catch (...) {
      return InvalidArgument("--http-addr '" + o.http_addr + "': the port is not a number");
    }
    http = std::make_unique<httplib::Server>();
    http->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics->RenderText(), "text/plain; version=0.0.4");
    });
    ServeHealth(health, http.get());
    http->Get("/status", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(status_mu);
      res.set_content(status.dump() + "\n", "application/json");
    });
    http->Get("/incidents", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(status_mu);
      std::string body = "[";
      for (size_t i = 0; i < incidents_json.size(); ++i) body += (i ? ",\n" : "") + incidents_json[i];
      res.set_content(body + "]\n", "application/json");
    });
    http->Get(R"(/incidents/([A-Za-z0-9_-]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string id = req.matches[1];
      std::lock_guard<std::mutex> lock(status_mu);
      for (const std::string& j : incidents_json) {
        if (j.find("\"id\":\"" + id + "\"") != std::string::npos) {
          res.set_content(j + "\n", "application/json");
          return;
        }
      }
      res.status = 404;
      res.set_content("no incident " + id + "\n", "text/plain");
    });
    if (port == 0) {
      http_port = http->bind_to_any_port(host);
    } else if (http->bind_to_port(host, port)) {
      http_port = port;
    }
    if (http_port <= 0) return Unavailable("--http-addr " + o.http_addr + ": cannot listen there");
    http_thread = std::thread([this] { http->listen_after_bind(); });
    return Status::Ok();
  }
};

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

  // The state: everything LiveDiagnosis wrote, the offsets, the outbox.
  std::error_code ec;
  std::filesystem::create_directories(im.o.state_dir, ec);
  const std::string path = im.o.state_dir + "/diagnosis";
  rocksdb::Options dbo;
  dbo.create_if_missing = true;
  dbo.max_open_files = 256;
  rocksdb::DB* raw = nullptr;
  if (rocksdb::Status s = rocksdb::DB::Open(dbo, path, &raw); !s.ok())
    return Unavailable("diagnosis state " + path + ": " + s.ToString());
  im.db.reset(raw);
  std::vector<std::pair<std::string, std::string>> live_state;
  std::vector<OutboxEntry> outbox;
  {
    std::unique_ptr<rocksdb::Iterator> it(im.db->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string k = it->key().ToString(), v = it->value().ToString();
      if (k.rfind("o|", 0) == 0) {
        im.offsets[static_cast<int32_t>(std::strtol(k.c_str() + 2, nullptr, 10))] = std::strtoll(v.c_str(), nullptr, 10);
      } else if (k == "m|outbox_seq") {
        im.outbox_seq = std::strtoull(v.c_str(), nullptr, 10);
      } else if (k.rfind("x|", 0) == 0) {
        FAULTLINE_ASSIGN_OR_RETURN(OutboxEntry e, DecodeEntry(k, v));
        outbox.push_back(std::move(e));
      } else {
        live_state.emplace_back(std::move(k), std::move(v));
      }
    }
  }
  FAULTLINE_RETURN_IF_ERROR(im.live->Restore(live_state));
  spdlog::info("diagnosis: state of {} records restored from {} (windows judged until {}, {} deliveries waiting)",
               live_state.size(), path, im.live->judged_until(), outbox.size());

  char err[512];
  auto set = [&](rd_kafka_conf_t* conf, const char* k, const std::string& v) -> Status {
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK)
      return InvalidArgument(std::string("Kafka setting ") + k + "=" + v + ": " + err);
    return Status::Ok();
  };
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] : {std::pair<const char*, std::string>{"bootstrap.servers", im.o.brokers},
                      {"group.id", "faultline-diagnosis"},
                      {"enable.auto.commit", "false"},
                      {"enable.auto.offset.store", "false"},
                      {"log_level", "3"}}) {
    if (Status s = set(conf, k, v); !s.ok()) {
      rd_kafka_conf_destroy(conf);
      return s;
    }
  }
  im.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!im.consumer) return Unavailable(std::string("cannot create the Kafka consumer: ") + err);
  rd_kafka_poll_set_consumer(im.consumer);
  // Every partition of the metrics topic, from the stored offsets.
  // The stream creates the topic with its first windows: a topic not there yet is waited for (at
  // most topic_wait_ms); a broker that does not answer fails after 10 s.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t merr = RD_KAFKA_RESP_ERR_NO_ERROR;
  const auto wait_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(im.o.topic_wait_ms);
  for (bool logged = false;; logged = true) {
    if (md) rd_kafka_metadata_destroy(md), md = nullptr;
    rd_kafka_topic_t* t = rd_kafka_topic_new(im.consumer, im.o.metrics_topic.c_str(), nullptr);
    merr = rd_kafka_metadata(im.consumer, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    const bool absent = !merr && md->topic_cnt == 1 &&
                        (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                         (!md->topics[0].err && md->topics[0].partition_cnt == 0));
    if (!absent || std::chrono::steady_clock::now() >= wait_until) break;
    if (!logged)
      spdlog::info("diagnosis: waiting for topic {} (the stream creates it with its first windows)",
                   im.o.metrics_topic);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (merr || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
    const std::string why = merr ? rd_kafka_err2str(merr)
                            : md->topic_cnt != 1 ? "no such topic"
                                                 : rd_kafka_err2str(md->topics[0].err);
    if (md) rd_kafka_metadata_destroy(md);
    return Unavailable("--brokers " + im.o.brokers + ": no metadata for topic " + im.o.metrics_topic +
                       " (" + why + ")");
  }
  im.live->set_metrics_partitions(md->topics[0].partition_cnt);
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
  for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
    auto it = im.offsets.find(p);
    rd_kafka_topic_partition_list_add(list, im.o.metrics_topic.c_str(), p)->offset =
        it != im.offsets.end() ? it->second : RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_metadata_destroy(md);
  const rd_kafka_resp_err_t aerr = rd_kafka_assign(im.consumer, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (aerr) return Unavailable(std::string("cannot assign the metrics topic: ") + rd_kafka_err2str(aerr));

  if (!im.o.incidents_topic.empty()) {
    rd_kafka_conf_t* pconf = rd_kafka_conf_new();
    for (auto [k, v] : {std::pair<const char*, std::string>{"bootstrap.servers", im.o.brokers},
                        {"enable.idempotence", "true"},
                        {"linger.ms", "5"},
                        {"message.timeout.ms", "30000"},
                        {"log_level", "3"}}) {
      if (Status s = set(pconf, k, v); !s.ok()) {
        rd_kafka_conf_destroy(pconf);
        return s;
      }
    }
    rd_kafka_conf_set_dr_msg_cb(pconf, Impl::OnDelivery);
    rd_kafka_conf_set_opaque(pconf, &im);
    im.producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof(err));
    if (!im.producer) return Unavailable(std::string("cannot create the Kafka producer: ") + err);
  }

  for (const WebhookOptions& wo : im.o.webhooks) {
    auto w = std::make_unique<Impl::Webhook>();
    w->sink = "webhook:" + wo.name;
    w->client = std::make_unique<WebhookClient>(wo);
    auto counter = [&](const char* result) {
      return &im.Count("faultline_diagnosis_deliveries_total", "Deliveries by sink and result",
                       {{"sink", w->sink}, {"result", result}});
    };
    w->delivered = counter("delivered");
    w->failed = counter("failed");
    w->refused = counter("refused");
    w->attempts = &im.Count("faultline_diagnosis_delivery_attempts_total", "Delivery attempts by sink",
                            {{"sink", w->sink}});
    im.webhooks.push_back(std::move(w));
  }
  // Deliveries a previous run left in the outbox, in order. Those for the incident topic that
  // the topic already holds (a crash between the broker's ack and the commit that forgets them)
  // are not produced again: the topic carries each (id, sequence) once.
  std::sort(outbox.begin(), outbox.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  std::set<std::string> published;
  const bool kafka_waiting = std::any_of(outbox.begin(), outbox.end(), [](const OutboxEntry& e) {
    return e.key.rfind("x|kafka|", 0) == 0;
  });
  if (kafka_waiting && im.producer) {
    auto ids = PublishedIds(im.o.brokers, im.o.incidents_topic, 10000);
    if (!ids.ok()) return ids.status();
    published = std::move(*ids);
  }
  for (OutboxEntry& e : outbox) {
    const std::string sink = e.key.substr(2, e.key.rfind('|') - 2);
    if (sink == "kafka" && im.producer && published.count(e.webhook_id)) {
      im.kafka_delivered.push_back(e.key);  // forgotten at the first commit
      im.Count("faultline_diagnosis_redeliveries_skipped_total",
               "Outbox entries a previous run had already delivered, found on the incident topic")
          .Increment();
      continue;
    }
    if (sink == "kafka" && im.producer) {
      im.kafka_failed.push_back(e.key);  // produced again at the first commit
      im.kafka_pending.emplace(e.key, std::move(e));
      continue;
    }
    bool placed = false;
    for (auto& w : im.webhooks) {
      if (w->sink != sink) continue;
      w->queue.push_back(std::move(e));
      placed = true;
      break;
    }
    if (!placed) im.Dropped("sink_removed").Increment();  // a sink no longer configured
  }
  for (auto& w : im.webhooks) {
    Impl::Webhook* p = w.get();
    w->thread = std::thread([&im, p] { im.RunWebhook(p); });
  }
  if (!im.o.http_addr.empty()) FAULTLINE_RETURN_IF_ERROR(im.StartHttp());
  im.Report();
  return rt;
}

LiveRuntime::~LiveRuntime() = default;

int LiveRuntime::http_port() const { return impl_->http_port; }

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
    if (im.producer) rd_kafka_poll(im.producer, 0);
    if (Clock::now() - last_commit >= std::chrono::milliseconds(im.o.commit_interval_ms)) {
      FAULTLINE_RETURN_IF_ERROR(im.Commit());
      last_commit = Clock::now();
    }
  }
  FAULTLINE_RETURN_IF_ERROR(im.Commit());
  if (im.producer) {
    rd_kafka_flush(im.producer, 5000);
    rd_kafka_poll(im.producer, 0);
    if (!im.kafka_delivered.empty()) {
      rocksdb::WriteBatch b;
      for (const std::string& k : im.kafka_delivered) b.Delete(k);
      (void)im.db->Write(rocksdb::WriteOptions(), &b);
    }
  }
  // Webhooks get up to 5 s to empty their queues; what is left stays in the outbox.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (auto& w : im.webhooks) {
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(w->mu);
        if (w->queue.empty()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return Status::Ok();
}

Result<std::vector<Incident>> ReadIncidents(const std::string& state_dir) {
  const std::string path = state_dir + "/diagnosis";
  rocksdb::Options dbo;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(dbo, path, &raw);
  std::unique_ptr<rocksdb::DB> db(raw);
  if (!s.ok()) {
    if (s.IsNotFound() || s.IsIOError()) return NotFound(path + ": no diagnosis state there");
    return Internal(path + ": " + s.ToString());
  }
  std::vector<Incident> open, resolved;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("i|"); it->Valid() && it->key().starts_with("i|"); it->Next()) {
    const nlohmann::json j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (j.is_discarded() || !j.contains("incident")) continue;
    auto inc = IncidentFromJson(j["incident"].dump());
    if (!inc.ok()) return Status(inc.status().code(), path + ": " + inc.status().message());
    (inc->status == IncidentStatus::kResolved ? resolved : open).push_back(std::move(*inc));
  }
  auto newest = [](const Incident& a, const Incident& b) { return a.updated_at_s > b.updated_at_s; };
  std::sort(open.begin(), open.end(), newest);
  std::sort(resolved.begin(), resolved.end(), newest);
  open.insert(open.end(), std::make_move_iterator(resolved.begin()), std::make_move_iterator(resolved.end()));
  return open;
}

}  // namespace faultline::diagnosis
