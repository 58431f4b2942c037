#include "faultline/stream/stream_processor.h"

#include <google/protobuf/stubs/logging.h>
#include <librdkafka/rdkafka.h>
#include <yaml-cpp/yaml.h>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "faultline/common/health.h"
#include "faultline/common/config_section.h"
#include "faultline/common/http_server.h"
#include "faultline/common/kafka.h"
#include "faultline/common/log.h"
#include "faultline/common/yaml_load.h"
#include "faultline/model/window_record.h"
#include "faultline/stream/window_query.h"
#include "kafka_changelog.h"
#include "metrics.pb.h"

namespace faultline::stream {
namespace {

using Clock = std::chrono::steady_clock;

// How long a newly assigned partition waits for its previous owner to release the database.
constexpr auto kLockWait = std::chrono::seconds(30);
// How long a commit waits for the changelog to acknowledge it (then it fails, and is retried).
constexpr auto kChangelogWait = std::chrono::milliseconds(5000);
// How often a newly assigned partition tries to read its changelog (a second apart) before it
// gives up until the next assignment.
constexpr int kChangelogReadAttempts = 3;

}  // namespace

Status ParseStreamConfig(const std::string& yaml, const std::string& source, StreamOptions* o) {
  YAML::Node root;
  FAULTLINE_RETURN_IF_ERROR(LoadYaml(yaml, source, &root));
  WindowOptions& w = o->windows;
  ConfigSection naming("naming.", "fields");
  naming
      .Custom("service",
              [&](const YAML::Node& v, const std::string& field) -> Status {
                if (!v.IsSequence() || v.size() == 0)
                  return InvalidArgument(field + ": expected a list of templates");
                std::vector<std::string> templates;
                for (const auto& t : v) {
                  if (!t.IsScalar()) return ConfigError(source, t, field + ": expected a template string");
                  templates.push_back(t.Scalar());
                }
                o->naming.service_templates = std::move(templates);
                return Status::Ok();
              })
      .Text("instance", &o->naming.instance_template, "a template string");
  ConfigSection settings;
  settings.Integer("window_seconds", 1, 86400, &w.window_s)
      .Integer("allowed_lateness_seconds", 0, 86400, &w.allowed_lateness_s)
      .Integer("retention_seconds", 0, 90 * 86400, &w.retention_s)
      .Integer("max_future_seconds", 1, 86400, &w.max_future_s)
      .Integer("max_endpoints_per_service", 1, 100000, &w.max_endpoints_per_service)
      .Integer("max_peers", 1, 1 << 24, &w.max_peers)
      .Integer("commit_interval_ms", 10, 600000, &o->commit_interval_ms)
      .Integer("session_timeout_ms", 1000, 3600000, &o->session_timeout_ms)
      .Text("changelog_topic", &o->changelog_topic, "a topic name")
      .Integer("changelog_snapshot_commits", 1, 1000000000, &o->changelog_snapshot_commits)
      .Integer("changelog_snapshot_bytes", 4096, int64_t{1} << 40, &o->changelog_snapshot_bytes)
      .Bool("sync_commits", &w.sync_commits)
      .Custom("naming", [&](const YAML::Node& v, const std::string&) -> Status {
        if (!v.IsMap()) return InvalidArgument("naming: expected a mapping with service and instance");
        FAULTLINE_RETURN_IF_ERROR(naming.Read(source, v));
        auto namer = EntityNamer::Create(o->naming);
        return namer.ok() ? Status::Ok() : ConfigError(source, v, namer.status().message());
      });
  return settings.Read(source, root);
}

struct StreamProcessor::Impl {
  StreamOptions options;
  MetricsRegistry* metrics = nullptr;
  EntityNamer namer;
  rd_kafka_t* consumer = nullptr;
  rd_kafka_t* producer = nullptr;
  std::unique_ptr<KafkaChangelog> changelog;  // null without --changelog-topic
  int metrics_partitions = 0;  // of the metrics topic, for the watermark records (0: unknown yet)
  std::map<int32_t, std::unique_ptr<PartitionState>> states;
  ApplyCounters counters, reported;
  Clock::time_point last_commit = Clock::now();
  Clock::time_point first_apply{}, last_apply{};

  prometheus::Counter &messages, &events, &late, &future, &undecodable, &folded, &unattributed,
      &peers_evicted, &closed,
      &published, &publish_failed, &outbox_expired, &commits, &commit_seconds, &commit_errors,
      &rebalances, &kafka_errors, &changelog_errors, &restores, &restored_bytes, &restore_seconds,
      &snapshots, &changelog_bytes_snapshot, &changelog_bytes_delta, &fenced;
  prometheus::Gauge &partitions, &open_series, &state_bytes, &lag, &last_commit_seconds;
  uint64_t outbox_expired_reported = 0;

  // Liveness: the consume loop; it may spend a while opening partitions after a crash (their
  // logs replayed, a previous owner's lock awaited for up to 30 s), hence the long limit.
  Health health{std::chrono::seconds(120)};
  std::mutex status_mu;
  nlohmann::json status = nlohmann::json::object();
  std::unique_ptr<HttpServer> http;

  explicit Impl(const StreamOptions& o, MetricsRegistry* m, EntityNamer n)
      : options(o),
        metrics(m),
        namer(std::move(n)),
        messages(m->Counter("faultline_stream_messages_total", "Event batches consumed")),
        events(m->Counter("faultline_stream_events_total", "Events consumed")),
        late(Dropped("late")),
        future(Dropped("future")),
        undecodable(Dropped("undecodable")),
        folded(
            m->Counter("faultline_stream_endpoints_folded_total",
                       "Events whose endpoint was folded into 'other' (per-service endpoint cap)")),
        unattributed(m->Counter(
            "faultline_stream_unattributed_total",
            "Flow and reset events with no owning process, kept in their machine's series")),
        peers_evicted(m->Counter("faultline_stream_peers_evicted_total",
                                 "Client ends of connections forgotten past max_peers (their "
                                 "callee's side then names the caller by address)")),
        closed(m->Counter("faultline_stream_windows_closed_total", "Series windows closed")),
        published(m->Counter("faultline_stream_windows_published_total",
                             "Closed windows delivered to the metrics topic")),
        publish_failed(
            m->Counter("faultline_stream_publish_failures_total",
                       "Closed windows the metrics topic did not take (retried from the outbox)")),
        outbox_expired(Dropped("outbox_expired")),
        commits(m->Counter("faultline_stream_commits_total", "State commits (all partitions)")),
        commit_seconds(
            m->Counter("faultline_stream_commit_seconds_total", "Time spent committing state")),
        commit_errors(
            m->Counter("faultline_stream_commit_errors_total", "Partition commits that failed")),
        rebalances(m->Counter("faultline_stream_rebalances_total", "Partition assignment changes")),
        kafka_errors(
            m->Counter("faultline_stream_kafka_errors_total", "Consumer errors reported by Kafka")),
        changelog_errors(m->Counter(
            "faultline_stream_changelog_errors_total",
            "Partition commits the changelog did not take (kept in memory, retried)")),
        restores(m->Counter("faultline_stream_changelog_restores_total",
                            "Partitions caught up or rebuilt from the changelog on opening")),
        restored_bytes(m->Counter("faultline_stream_changelog_restored_bytes_total",
                                  "Changelog batches written into local state by restores")),
        restore_seconds(m->Counter(
            "faultline_stream_changelog_restore_seconds_total",
            "Time spent reading the changelog and applying it when opening partitions")),
        snapshots(m->Counter("faultline_stream_changelog_snapshots_total",
                             "Snapshots of a partition's state delivered to the changelog")),
        changelog_bytes_snapshot(m->Counter("faultline_stream_changelog_bytes_total",
                                            "Bytes delivered to the changelog, by kind",
                                            {{"kind", "snapshot"}})),
        changelog_bytes_delta(m->Counter("faultline_stream_changelog_bytes_total",
                                         "Bytes delivered to the changelog, by kind",
                                         {{"kind", "delta"}})),
        fenced(m->Counter("faultline_stream_changelog_fenced_total",
                          "Changelog records of writers that had lost their partition to a later "
                          "claim, ignored by restores")),
        partitions(m->Gauge("faultline_stream_partitions", "Input partitions this processor owns")),
        open_series(m->Gauge("faultline_stream_open_series", "Series in open windows")),
        state_bytes(m->Gauge("faultline_stream_state_bytes",
                             "Approximate size of the owned partitions' state")),
        lag(m->Gauge("faultline_stream_lag_messages",
                     "Messages behind the end of the owned partitions")),
        last_commit_seconds(
            m->Gauge("faultline_stream_last_commit_seconds", "Duration of the last commit")) {}

  prometheus::Counter& Dropped(const std::string& reason) {
    return metrics->Counter("faultline_stream_dropped_total",
                            "Events or windows dropped, by reason", {{"reason", reason}});
  }

  ~Impl() {
    http.reset();
    if (consumer) rd_kafka_destroy(consumer);
    if (producer) rd_kafka_destroy(producer);
  }

  // --- Rebalancing ----------------------------------------------------------------------------

  // librdkafka's own log lines, through spdlog and at a bounded rate for warnings.
  static void OnKafkaLog(const rd_kafka_t*, int level, const char* fac, const char* buf) {
    if (level <= 3) {
      FAULTLINE_WARN_RATE_LIMITED("kafka error {}: {}", fac, buf);
    } else if (level <= 4) {
      FAULTLINE_WARN_RATE_LIMITED("kafka {}: {}", fac, buf);
    } else {
      spdlog::debug("kafka {}: {}", fac, buf);
    }
  }

  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* parts, void* opaque) {
    static_cast<Impl*>(opaque)->Rebalance(rk, err, parts);
  }

  void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    rebalances.Increment();
    const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      health.SetReady(false, "opening " + std::to_string(parts->cnt) + " assigned partitions");
      rd_kafka_topic_partition_list_t* assign = rd_kafka_topic_partition_list_new(parts->cnt);
      // All at once: after a crash each replays its own log.
      std::vector<int32_t> wanted;
      for (int i = 0; i < parts->cnt; ++i) wanted.push_back(parts->elems[i].partition);
      auto opened = PartitionState::OpenAll(wanted, [&](int32_t p) {
        return OpenPartition(options.events_topic, p);
      });
      for (int i = 0; i < parts->cnt; ++i) {
        const int32_t p = parts->elems[i].partition;
        auto& state = opened[static_cast<size_t>(i)].state;
        const double open_ms = opened[static_cast<size_t>(i)].open_ms;
        if (!state.ok()) {
          spdlog::error("partition {}: {}; it is not consumed here", p, state.status().message());
          continue;
        }
        if (changelog) {
          const ChangelogCounters& c = (*state)->changelog_counters();
          restores.Increment(static_cast<double>(c.restores));
          restored_bytes.Increment(static_cast<double>(c.restored_bytes));
          restore_seconds.Increment(c.restore_seconds);
          fenced.Increment(static_cast<double>(c.fenced));
          spdlog::info("partition {}: state {}", p, (*state)->restore_summary());
          if (c.fenced) {
            FAULTLINE_WARN_RATE_LIMITED(
                "partition {}: the changelog held {} records of writers that had lost the "
                "partition to a later claim (fenced: ignored)",
                p, c.fenced);
          }
          const ChangelogOpen& o = (*state)->changelog_open();
          if (o.source != ChangelogOpen::Source::kLocal) {
            spdlog::info(
                "restored partition {} from {} seq {} (+{} deltas), resuming input at offset {}; "
                "claimed epoch {} as chain {}",
                p, o.source == ChangelogOpen::Source::kRebuilt ? "snapshot" : "local", o.from_seq,
                o.deltas, (*state)->next_offset(), o.epoch, o.chain);
          } else {
            spdlog::info("partition {}: claimed epoch {} as chain {}", p, o.epoch, o.chain);
          }
        }
        const int64_t next = (*state)->next_offset();
        rd_kafka_topic_partition_list_add(assign, parts->elems[i].topic, p)->offset =
            next >= 0 ? next : RD_KAFKA_OFFSET_BEGINNING;
        spdlog::info(
            "partition {}: assigned, resuming at {} (state of {} open series loaded in {:.1f} ms)",
            p, next >= 0 ? std::to_string(next) : "the beginning", (*state)->open_series(),
            open_ms);
        states[p] = std::move(state).value();
      }
      rd_kafka_error_t* e = cooperative ? rd_kafka_incremental_assign(rk, assign) : nullptr;
      if (!cooperative) rd_kafka_assign(rk, assign);
      if (e) {
        spdlog::error("incremental assign: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
      rd_kafka_topic_partition_list_destroy(assign);
      health.SetReady(true);
    } else {
      // Revoked or lost: commit what was applied and release the database for the next owner.
      // Even when the group already gave the partition away ("lost"), the next owner cannot
      // open the database before this releases it, so committing here loses nothing.
      for (int i = 0; i < parts->cnt; ++i) {
        auto it = states.find(parts->elems[i].partition);
        if (it == states.end()) continue;
        CommitPartition(*it->second);
        spdlog::info("partition {}: released at offset {}", it->first, it->second->next_offset());
        states.erase(it);
      }
      if (cooperative) {
        rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts);
        if (e) rd_kafka_error_destroy(e);
      } else {
        rd_kafka_assign(rk, nullptr);
      }
    }
    partitions.Set(static_cast<double>(states.size()));
  }

  Result<std::unique_ptr<PartitionState>> OpenPartition(const std::string& topic, int32_t p) {
    const auto deadline = Clock::now() + kLockWait;
    for (int changelog_reads = 1;; ++changelog_reads) {
      ChangelogOptions log;
      log.link = changelog.get();
      log.snapshot_commits = options.changelog_snapshot_commits;
      log.snapshot_bytes = options.changelog_snapshot_bytes;
      auto state =
          PartitionState::Open(options.state_dir, topic, p, options.windows, namer, nullptr, log);
      if (state.ok() || state.status().code() != StatusCode::kUnavailable ||
          Clock::now() > deadline)
        return state;
      const std::string why = state.status().message();
      if (why.find("held by another process") != std::string::npos) {
        // The previous owner is still closing it.
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      } else if (why.starts_with("changelog ") && changelog_reads < kChangelogReadAttempts) {
        // A broker that does not answer for a moment; for longer, the partition waits for the
        // next assignment rather than block the rebalance.
        spdlog::warn("partition {}: {}; trying again", p, why);
        std::this_thread::sleep_for(std::chrono::seconds(1));
      } else {
        return state;
      }
    }
  }

  // --- Committing and publishing --------------------------------------------------------------

  void CommitPartition(PartitionState& s) {
    const ChangelogCounters before = s.changelog_counters();
    CountCommit(s, s.Commit(), before);
  }

  // A commit's outcome and the changelog's counters since `before`, into /metrics.
  void CountCommit(const PartitionState& s, const Status& st, const ChangelogCounters& before) {
    const ChangelogCounters& after = s.changelog_counters();
    snapshots.Increment(static_cast<double>(after.snapshots - before.snapshots));
    changelog_bytes_snapshot.Increment(
        static_cast<double>(after.snapshot_bytes - before.snapshot_bytes));
    changelog_bytes_delta.Increment(static_cast<double>(after.delta_bytes - before.delta_bytes));
    if (!st.ok()) {
      commit_errors.Increment();
      // The changelog's errors are kUnavailable; the state stays in memory and is retried.
      if (st.code() == StatusCode::kUnavailable) changelog_errors.Increment();
      FAULTLINE_WARN_RATE_LIMITED("partition {}: commit failed: {}", s.partition(), st.message());
    }
  }

  void CommitAll() {
    const auto t0 = Clock::now();
    rd_kafka_topic_partition_list_t* offsets =
        rd_kafka_topic_partition_list_new(static_cast<int>(states.size()));
    size_t series = 0;
    uint64_t bytes = 0, expired = 0;
    // Every partition's batch goes to the changelog first, then each waits and writes: the
    // partitions wait for the changelog's acknowledgements together, not one after another.
    std::map<int32_t, ChangelogCounters> before;
    std::map<int32_t, Status> begun;
    for (auto& [p, s] : states) {
      before[p] = s->changelog_counters();
      begun[p] = s->BeginCommit();
    }
    for (auto& [p, s] : states) {
      CountCommit(*s, begun[p].ok() ? s->FinishCommit() : begun[p], before[p]);
      series += s->open_series();
      bytes += s->ApproximateBytes();
      expired += s->outbox_expired();
      if (s->next_offset() >= 0) {
        rd_kafka_topic_partition_list_add(offsets, options.events_topic.c_str(), p)->offset =
            s->next_offset();
      }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    commits.Increment();
    commit_seconds.Increment(secs);
    last_commit_seconds.Set(secs);
    open_series.Set(static_cast<double>(series));
    state_bytes.Set(static_cast<double>(bytes));
    // Offsets in Kafka are informational (lag tools); the truth is in RocksDB.
    if (offsets->cnt > 0) rd_kafka_commit(consumer, offsets, 1);
    rd_kafka_topic_partition_list_destroy(offsets);
    PublishOutboxes();
    UpdateStatus();
    (void)expired;
    last_commit = Clock::now();
  }

  struct Delivery {
    Impl* self;
    int32_t partition;
    int64_t start_s;
    model::SeriesKey key;
  };

  void PublishOutboxes() {
    if (options.print_windows) {
      // Printed when committed: a crash before delivery can print a window again, never lose one.
      for (auto& [p, s] : states) {
        for (const model::StoredWindow& w : s->PeekOutbox())
          std::printf("%s\n", model::WindowToJson(w, options.windows.window_s).c_str());
      }
      std::fflush(stdout);
    }
    if (options.metrics_topic.empty() || !producer) {
      for (auto& [p, s] : states) {
        for (const model::StoredWindow& w : s->TakeOutbox()) s->Published(w.start_s, w.key);
      }
      return;
    }
    std::string value;
    std::map<int32_t, int64_t> produced_until;  // input partition -> newest window start produced
    for (auto& [p, s] : states) {
      for (const model::StoredWindow& w : s->TakeOutbox()) {
        v1::WindowRecord record;
        model::ToWindowRecord(w, options.windows.window_s, p, &record);
        record.SerializeToString(&value);
        const std::string key = std::string(EntityKindName(w.key.kind)) + ":" + w.key.Entity();
        auto* d = new Delivery{this, p, w.start_s, w.key};
        rd_kafka_resp_err_t err = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(options.metrics_topic.c_str()),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key.data(), key.size()),
            RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (err) {
          delete d;
          publish_failed.Increment();
          FAULTLINE_WARN_RATE_LIMITED("metrics topic: {} (the window stays in the outbox)",
                                      rd_kafka_err2str(err));
        } else {
          int64_t& until = produced_until[p];
          until = std::max(until, w.start_s);
        }
      }
    }
    PublishWatermarks(produced_until);
  }

  // After an input partition's closed windows, one watermark record on every partition of the
  // metrics topic (the producer keeps each partition's order): a consumer that has read it on
  // every partition has every window of that input partition up to its start.
  void PublishWatermarks(const std::map<int32_t, int64_t>& produced_until) {
    if (produced_until.empty()) return;
    if (metrics_partitions == 0) {
      Result<int> n = kafka::PartitionCount(producer, options.metrics_topic, 5000);
      if (!n.ok()) return;  // tried again at the next publication
      metrics_partitions = *n;
    }
    std::string value;
    for (const auto& [p, until] : produced_until) {
      v1::WindowRecord marker;
      marker.set_schema_version(2);
      marker.set_kind(std::string(model::kWatermarkRecordKind));
      marker.set_input_partition(p);
      marker.set_window_start_unix_s(until);
      marker.set_window_seconds(static_cast<uint32_t>(options.windows.window_s));
      marker.SerializeToString(&value);
      const std::string key = "watermark:" + std::to_string(p);
      for (int32_t m = 0; m < metrics_partitions; ++m) {
        rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(options.metrics_topic.c_str()),
                          RD_KAFKA_V_PARTITION(m), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(key.data(), key.size()),
                          RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_END);
      }
    }
  }

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    std::unique_ptr<Delivery> d(static_cast<Delivery*>(m->_private));
    if (!d) return;
    Impl* self = d->self;
    if (m->err) {
      self->publish_failed.Increment();
      FAULTLINE_WARN_RATE_LIMITED("metrics topic: delivery failed: {}", rd_kafka_err2str(m->err));
      return;  // still in the outbox: published again after the next restart or reassignment
    }
    self->published.Increment();
    auto it = self->states.find(d->partition);
    if (it != self->states.end()) it->second->Published(d->start_s, d->key);
  }

  void UpdateStatus() {
    nlohmann::json parts = nlohmann::json::object();
    double total_lag = 0;
    for (auto& [p, s] : states) {
      int64_t low = 0, high = 0;
      const bool known = rd_kafka_get_watermark_offsets(consumer, options.events_topic.c_str(), p,
                                                        &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR;
      const int64_t behind =
          known && high >= 0 ? std::max<int64_t>(0, high - std::max<int64_t>(s->next_offset(), low))
                             : -1;
      if (behind > 0) total_lag += static_cast<double>(behind);
      parts[std::to_string(p)] = {{"next_offset", s->next_offset()},
                                  {"end_offset", known ? high : -1},
                                  {"lag", behind},
                                  {"watermark_s", s->watermark_s()},
                                  {"open_series", s->open_series()}};
    }
    lag.Set(total_lag);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                       static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    std::lock_guard<std::mutex> lock(status_mu);
    status = {{"partitions", parts},
              {"cpu_seconds", cpu},
              {"max_rss_bytes", static_cast<uint64_t>(usage.ru_maxrss) * 1024},
              {"busy_seconds", std::chrono::duration<double>(last_apply - first_apply).count()},
              {"messages", counters.messages},
              {"events", counters.events},
              {"late", counters.late},
              {"future", counters.future},
              {"undecodable", counters.undecodable},
              {"windows_closed", counters.windows_closed}};
  }

  void ReportCounters() {
    auto add = [](prometheus::Counter& c, uint64_t now, uint64_t& before) {
      if (now > before) c.Increment(static_cast<double>(now - before));
      before = now;
    };
    add(messages, counters.messages, reported.messages);
    add(events, counters.events, reported.events);
    add(late, counters.late, reported.late);
    add(future, counters.future, reported.future);
    add(undecodable, counters.undecodable, reported.undecodable);
    add(folded, counters.endpoints_folded, reported.endpoints_folded);
    add(closed, counters.windows_closed, reported.windows_closed);
    add(unattributed, counters.unattributed, reported.unattributed);
    add(peers_evicted, counters.peers_evicted, reported.peers_evicted);
    uint64_t expired = 0;
    for (auto& [p, s] : states) expired += s->outbox_expired();
    add(outbox_expired, expired, outbox_expired_reported);
  }

  // --- HTTP -----------------------------------------------------------------------------------

  Status StartHttp() {
    HttpServerOptions ho;
    ho.addr = options.http_addr, ho.metrics = metrics, ho.health = &health;
    ho.routes = options.http_routes;
    ho.routes.push_back({"/status", [this](const HttpRequest&) {
                           std::lock_guard<std::mutex> lock(status_mu);
                           return HttpReply{200, status.dump()};
                         }});
    ho.routes.push_back({"/windows", [this](const HttpRequest& req) { return Windows(req); }});
    FAULTLINE_ASSIGN_OR_RETURN(http, HttpServer::Start(std::move(ho)));
    return Status::Ok();
  }

  // GET /windows?entity=&kind=&since=&open=: the stored windows as a JSON array.
  HttpReply Windows(const HttpRequest& req) const {
    WindowQuery q;
    auto param = [&](const char* k) {
      auto it = req.params.find(k);
      return it == req.params.end() ? nullptr : &it->second;
    };
    if (const std::string* v = param("entity")) q.entity = *v;
    if (const std::string* v = param("kind")) {
      auto k = model::ParseStreamKind(*v);
      if (!k.ok()) return HttpReply::Error(k.status());
      q.kind = *k;
    }
    if (const std::string* v = param("since")) {
      try {
        q.since_s = std::stoll(*v);
      } catch (...) {
        return HttpReply::Text(400, "since: expected Unix seconds");
      }
    }
    const std::string* open = param("open");
    q.include_open = !open || *open != "false";
    int64_t window_s = options.windows.window_s;
    auto windows = QueryWindows(options.state_dir, options.events_topic, q, &window_s);
    if (!windows.ok()) return HttpReply::Error(windows.status());
    std::string body = "[";
    for (size_t i = 0; i < windows->size(); ++i) {
      if (i) body += ",\n";
      body += model::WindowToJson((*windows)[i], window_s);
    }
    return HttpReply{200, body + "]\n"};
  }
};

Result<std::unique_ptr<StreamProcessor>> StreamProcessor::Create(const StreamOptions& options,
                                                                 MetricsRegistry* metrics) {
  // protobuf logs every malformed string field it meets; such batches are counted as undecodable,
  // and the log must stay bounded however many arrive.
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string& message) {
        FAULTLINE_WARN_RATE_LIMITED("protobuf: {}", message);
      });
  if (options.brokers.empty()) return InvalidArgument("--brokers: expected HOST:PORT[,HOST:PORT…]");
  if (options.state_dir.empty()) return InvalidArgument("--state-dir: required");
  FAULTLINE_ASSIGN_OR_RETURN(EntityNamer namer, EntityNamer::Create(options.naming));
  std::unique_ptr<StreamProcessor> sp(new StreamProcessor());
  sp->impl_ = std::make_unique<Impl>(options, metrics, std::move(namer));
  Impl& im = *sp->impl_;
  FAULTLINE_ASSIGN_OR_RETURN(rd_kafka_conf_t * conf, kafka::Config("Kafka consumer", {
      {"bootstrap.servers", options.brokers},
      {"group.id", options.group_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // Partitions start where their state says (or at the beginning when it has none); a stored
      // offset outside the log (topic recreated, data expired) must stop that partition loudly,
      // not re-read it from the start and count it twice.
      {"auto.offset.reset", "error"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      {"session.timeout.ms", std::to_string(options.session_timeout_ms)},
      {"heartbeat.interval.ms", std::to_string(std::max(100, options.session_timeout_ms / 3))},
      {"enable.partition.eof", "false"},
  }));
  rd_kafka_conf_set_opaque(conf, &im);
  rd_kafka_conf_set_log_cb(conf, Impl::OnKafkaLog);
  rd_kafka_conf_set_rebalance_cb(conf, Impl::OnRebalance);
  FAULTLINE_ASSIGN_OR_RETURN(im.consumer, kafka::Create(RD_KAFKA_CONSUMER, "Kafka consumer", conf));
  rd_kafka_poll_set_consumer(im.consumer);

  if (!options.metrics_topic.empty()) {
    FAULTLINE_ASSIGN_OR_RETURN(
        rd_kafka_conf_t * pconf,
        kafka::Config("Kafka producer", {{"bootstrap.servers", options.brokers},
                                         {"enable.idempotence", "true"},
                                         {"compression.codec", "lz4"},
                                         {"linger.ms", "50"},
                                         {"message.timeout.ms", "60000"}}));
    rd_kafka_conf_set_dr_msg_cb(pconf, Impl::OnDelivery);
    rd_kafka_conf_set_log_cb(pconf, Impl::OnKafkaLog);
    FAULTLINE_ASSIGN_OR_RETURN(im.producer, kafka::Create(RD_KAFKA_PRODUCER, "Kafka producer", pconf));
  }
  if (!options.changelog_topic.empty()) {
    FAULTLINE_ASSIGN_OR_RETURN(im.changelog, KafkaChangelog::Create(options.brokers,
                                                                    options.changelog_topic,
                                                                    kChangelogWait));
  }
  if (!options.http_addr.empty()) FAULTLINE_RETURN_IF_ERROR(im.StartHttp());
  return sp;
}

StreamProcessor::~StreamProcessor() = default;

int StreamProcessor::http_port() const { return impl_->http ? impl_->http->port() : 0; }

Status StreamProcessor::Run(const std::atomic<bool>& stop) {
  Impl& im = *impl_;
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, im.options.events_topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(im.consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err)
    return Unavailable("subscribe to " + im.options.events_topic + ": " + rd_kafka_err2str(err));
  const auto interval = std::chrono::milliseconds(im.options.commit_interval_ms);
  im.health.SetReady(true);
  while (!stop.load()) {
    im.health.Beat();
    rd_kafka_message_t* m = rd_kafka_consumer_poll(im.consumer, 50);
    if (m) {
      if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
        im.kafka_errors.Increment();
        spdlog::error(
            "partition {}: the stored offset is outside the topic's log ({}); it is not consumed "
            "until an "
            "operator resolves it (another --state-dir starts it afresh)",
            m->partition, rd_kafka_message_errstr(m));
      } else if (m->err) {
        im.kafka_errors.Increment();
        FAULTLINE_WARN_RATE_LIMITED("Kafka consumer: {}", rd_kafka_message_errstr(m));
      } else if (auto it = im.states.find(m->partition); it != im.states.end()) {
        PartitionState& s = *it->second;
        // Anything before the stored offset is already in the state (a fetch racing a seek).
        if (m->offset >= s.next_offset()) {
          rd_kafka_timestamp_type_t type;
          const int64_t ts = rd_kafka_message_timestamp(m, &type);
          s.Apply(std::string_view(static_cast<const char*>(m->payload), m->len), m->offset, ts,
                  &im.counters);
          im.last_apply = Clock::now();
          if (im.counters.messages == 1) im.first_apply = im.last_apply;
        }
      }
      rd_kafka_message_destroy(m);
    }
    if (im.producer) rd_kafka_poll(im.producer, 0);
    if (Clock::now() - im.last_commit >= interval) {
      im.CommitAll();
      im.ReportCounters();
    }
  }
  im.CommitAll();
  if (im.producer) {
    rd_kafka_flush(im.producer, 5000);  // deliveries mark outbox entries published…
    for (auto& [p, s] : im.states) im.CommitPartition(*s);  // …which this commit forgets
  }
  im.ReportCounters();
  // Release every partition (state committed above) before leaving the group, so that nothing
  // depends on the group coordinator answering; then leave it, for at most 10 s: with the broker
  // gone, closing must not hang (the group notices by the session timeout instead).
  im.states.clear();
  im.partitions.Set(0);
  rd_kafka_queue_t* q = rd_kafka_queue_new(im.consumer);
  if (rd_kafka_error_t* e = rd_kafka_consumer_close_queue(im.consumer, q)) {
    spdlog::warn("leaving the consumer group: {}", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  } else {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!rd_kafka_consumer_closed(im.consumer) && Clock::now() < deadline) {
      rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 100);
      if (!ev) continue;
      if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
        // Nothing is owned any more: just acknowledge the revocation.
        if (std::strcmp(rd_kafka_rebalance_protocol(im.consumer), "COOPERATIVE") == 0) {
          if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(
                  im.consumer, rd_kafka_event_topic_partition_list(ev))) {
            rd_kafka_error_destroy(e);
          }
        } else {
          rd_kafka_assign(im.consumer, nullptr);
        }
      }
      rd_kafka_event_destroy(ev);
    }
    if (!rd_kafka_consumer_closed(im.consumer))
      spdlog::warn("left the consumer group without the broker's answer");
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy_flags(im.consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  im.consumer = nullptr;
  if (im.producer) {
    // Windows still undelivered stay in the outbox (published by the next owner): drop the copies.
    rd_kafka_purge(im.producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(im.producer, 0);
    rd_kafka_destroy(im.producer);
    im.producer = nullptr;
  }
  return Status::Ok();
}

}  // namespace faultline::stream
