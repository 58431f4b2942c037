#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "faultline/common/metrics.h"
#include "faultline/stream/stream_processor.h"
#include "faultline/model/window_record.h"
#include "faultline/stream/window_query.h"
#include "faultline/topology/situation.h"

namespace faultline::cli {
namespace {

struct QueryFlags {
  std::string state_dir;
  std::string topic = "faultline.events";
  std::string entity;
  std::string kind;
  std::string since;
  bool closed_only = false;
  bool by_partition = false;
};

// "1700000000" (Unix seconds) or "-10m" / "-2h" / "-30s" (relative to now).
Result<int64_t> ParseSince(const std::string& s) {
  if (s.empty()) return INT64_MIN;
  char* end = nullptr;
  if (s[0] == '-') {
    const double n = std::strtod(s.c_str() + 1, &end);
    const std::string unit(end);
    const int64_t mult = unit == "s"   ? 1
                         : unit == "m" ? 60
                         : unit == "h" ? 3600
                         : unit == "d" ? 86400
                                       : 0;
    if (end == s.c_str() + 1 || mult == 0 || n < 0) {
      return InvalidArgument("--since '" + s + "': expected Unix seconds or -N[s|m|h|d]");
    }
    return static_cast<int64_t>(std::time(nullptr)) -
           static_cast<int64_t>(n * static_cast<double>(mult));
  }
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (*end != '\0')
    return InvalidArgument("--since '" + s + "': expected Unix seconds or -N[s|m|h|d]");
  return static_cast<int64_t>(v);
}

int RunQuery(const QueryFlags& f) {
  stream::WindowQuery q;
  q.entity = f.entity;
  q.include_open = !f.closed_only;
  q.merge_partitions = !f.by_partition;
  if (!f.kind.empty()) {
    auto k = model::ParseStreamKind(f.kind);
    if (!k.ok()) {
      std::cerr << "faultline stream query: --kind: " << k.status().message() << "\n";
      return 2;
    }
    q.kind = *k;
  }
  auto since = ParseSince(f.since);
  if (!since.ok()) {
    std::cerr << "faultline stream query: " << since.status().message() << "\n";
    return 2;
  }
  q.since_s = *since;
  int64_t window_s = 0;
  auto windows = stream::QueryWindows(f.state_dir, f.topic, q, &window_s);
  if (!windows.ok()) {
    std::cerr << "faultline stream query: " << windows.status().message() << "\n";
    return 1;
  }
  for (const auto& w : *windows) std::cout << model::WindowToJson(w, window_s) << "\n";
  return 0;
}

struct SituationFlags {
  std::string state_dir;
  std::string topic = "faultline.events";
  std::string alarm;
  int64_t at_s = 0;
  int64_t lookback_s = 180;
};

// The situation around an alarm, from the stored windows: [at - lookback, latest window end).
Result<std::string> SituationJson(const SituationFlags& f) {
  topology::Alarm alarm;
  // The stream builds service, edge and machine series.
  auto ref = topology::ParseSeriesRef(
      f.alarm, {EntityKind::kService, EntityKind::kEdge, EntityKind::kMachine});
  if (!ref.ok()) return InvalidArgument("alarm " + ref.status().message());
  alarm.ref = std::move(*ref);
  if (f.lookback_s < 1 || f.lookback_s > 86400) {
    return InvalidArgument("lookback " + std::to_string(f.lookback_s) +
                           ": expected 1..86400 seconds");
  }
  int64_t window_s = 0;
  FAULTLINE_ASSIGN_OR_RETURN(
      auto windows, stream::QueryWindows(f.state_dir, f.topic, stream::WindowQuery{}, &window_s));
  if (windows.empty()) return NotFound("no windows stored under " + f.state_dir);
  const int64_t latest = windows.back().start_s + window_s;
  alarm.at_s = f.at_s ? f.at_s : windows.back().start_s;
  return topology::SituationToJson(
      topology::BuildSituation(windows, window_s, alarm.at_s - f.lookback_s, latest, alarm));
}

int RunSituation(const SituationFlags& f) {
  auto json = SituationJson(f);
  if (!json.ok()) {
    std::cerr << "faultline stream situation: " << json.status().message() << "\n";
    return json.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::cout << *json << "\n";
  return 0;
}

}  // namespace

Runner RegisterStream(CLI::App& app) {
  auto o = std::make_shared<stream::StreamOptions>();
  auto config = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("stream",
                                     "Stream processor: consume agents' events, keep windowed "
                                     "statistics in RocksDB, publish closed windows");
  sub->add_option("--brokers", o->brokers, "Kafka bootstrap servers HOST:PORT[,…]");
  sub->add_option("--events-topic", o->events_topic, "Input topic")->capture_default_str();
  sub->add_option("--metrics-topic", o->metrics_topic,
                  "Output topic for closed windows (\"\" for none)")
      ->capture_default_str();
  sub->add_option("--group", o->group_id, "Consumer group")->capture_default_str();
  sub->add_option("--state-dir", o->state_dir,
                  "RocksDB state directory (shared by the group's processors, or each its own "
                  "with --changelog-topic)");
  sub->add_option("--changelog-topic", o->changelog_topic,
                  "Deliver every state commit here first, so that processors need not share "
                  "--state-dir (as many partitions as the events topic; \"\" for none)")
      ->capture_default_str();
  sub->add_option("--config", *config, "YAML settings (windows, lateness, retention, naming)");
  sub->add_option("--http-addr", o->http_addr,
                  "Serve /windows, /situation, /status and /metrics on HOST:PORT");
  sub->add_option("--commit-interval-ms", o->commit_interval_ms, "State commit interval")
      ->capture_default_str();
  sub->add_flag("--print-windows", o->print_windows,
                "Print every closed window to stdout as a JSON line");

  auto q = std::make_shared<QueryFlags>();
  CLI::App* query = sub->add_subcommand(
      "query", "Print stored windows as JSON lines (read-only; works while running)");
  query->add_option("--state-dir", q->state_dir, "The processor's --state-dir")->required();
  query->add_option("--events-topic", q->topic, "The processor's input topic")
      ->capture_default_str();
  query->add_option("--entity", q->entity, "A service, machine, address or caller->callee");
  query->add_option("--kind", q->kind, "service, edge, listener, machine or container");
  query->add_option("--since", q->since, "Unix seconds, or -N[s|m|h|d] before now");
  query->add_flag("--closed-only", q->closed_only, "Leave out windows still open");
  query->add_flag("--by-partition", q->by_partition,
                  "One record per input partition instead of merged");

  auto sf = std::make_shared<SituationFlags>();
  CLI::App* situation = sub->add_subcommand(
      "situation",
      "Print the situation (JSON) around an alarm, for faultline attribute --situation");
  situation->add_option("--state-dir", sf->state_dir, "The processor's --state-dir")->required();
  situation->add_option("--events-topic", sf->topic, "The processor's input topic")
      ->capture_default_str();
  situation
      ->add_option("--alarm", sf->alarm, "KIND:ENTITY:METRIC, e.g. service:gateway:latency_p99_ms")
      ->required();
  situation->add_option("--at", sf->at_s,
                        "When the alarm was raised (Unix seconds; default: the latest window)");
  situation->add_option("--lookback", sf->lookback_s, "Seconds of history before the alarm")
      ->check(CLI::Range(int64_t{1}, int64_t{86400}))
      ->capture_default_str();

  return [=] {
    if (query->parsed()) return RunQuery(*q);
    if (situation->parsed()) return RunSituation(*sf);
    if (!config->empty()) {
      std::ifstream in(*config);
      if (!in) {
        std::cerr << "faultline stream: --config " << *config << ": cannot open\n";
        return 2;
      }
      std::stringstream text;
      text << in.rdbuf();
      if (Status s = stream::ParseStreamConfig(text.str(), *config, o.get()); !s.ok()) {
        std::cerr << "faultline stream: " << s.message() << "\n";
        return 2;
      }
    }
    // GET /situation?alarm=KIND:ENTITY:METRIC[&at=UNIX_S][&lookback=S] on --http-addr.
    o->http_routes.push_back(
        {"/situation", [state_dir = o->state_dir, topic = o->events_topic](const HttpRequest& req) {
           SituationFlags f;
           f.state_dir = state_dir, f.topic = topic;
           auto get = [&](const char* k) {
             auto it = req.params.find(k);
             return it == req.params.end() ? std::string() : it->second;
           };
           f.alarm = get("alarm");
           for (auto [name, into] :
                {std::pair{"at", &f.at_s}, std::pair{"lookback", &f.lookback_s}}) {
             const std::string v = get(name);
             if (v.empty()) continue;
             char* end = nullptr;
             *into = std::strtoll(v.c_str(), &end, 10);
             if (*end != '\0')
               return HttpReply::Text(400, std::string(name) + " '" + v + "': not a number");
           }
           Result<std::string> json = SituationJson(f);
           return json.ok() ? HttpReply{200, *json + "\n"} : HttpReply::Error(json.status());
         }});
    MetricsRegistry metrics;
    auto sp = stream::StreamProcessor::Create(*o, &metrics);
    if (!sp.ok()) {
      std::cerr << "faultline stream: " << sp.status().message() << "\n";
      return sp.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
    }
    if ((*sp)->http_port() > 0) std::cout << "http_port=" << (*sp)->http_port() << std::endl;
    Status s = (*sp)->Run(g_stop);
    if (!s.ok()) {
      std::cerr << "faultline stream: " << s.message() << "\n";
      return 1;
    }
    return 0;
  };
}

}  // namespace faultline::cli
