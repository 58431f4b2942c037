// event_generator: produces a known, reproducible stream of agent event batches to Kafka, and
// (with --reference) computes the windows the stream processor must produce from it, with its
// own independent implementation of the windowing rules (per input partition, in offset order:
// the watermark is the highest event time seen minus the lateness; an event whose window ends at
// or before it is dropped).
//
// The cluster: --services services, service i runs as pid 1000+i ("svc-i") on node-(i % machines)
// and listens on 10.0.<i/250>.<i%250+1>:8080; service i calls service (i+1) % services. Every
// round, each machine sends one batch (key = node, partition = machine % partitions) of
// --events-per-batch events: server-side exchanges, client-side exchanges, flow statistics and
// connects, some out of order, a fraction --late beyond the grace period.
//
// Prints "partition=<p> messages=<n>" per partition, then "events=<n>".
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "events.pb.h"
#include "faultline/common/kafka.h"

namespace {

constexpr int64_t kNs = 1'000'000'000;

struct Flags {
  std::string brokers, topic = "faultline.events", reference;
  int partitions = 4, machines = 4, services = 12, rounds = 200, events_per_batch = 50;
  int window_s = 5, lateness_s = 5;
  double late = 0.02;
  uint64_t seed = 1;
  int64_t start_s = 1'700'000'000;
  int round_ms = 250;  // event time between rounds
  int pace_ms = 0;     // wall time between rounds (0: as fast as possible)
};

std::string Ip(int service) {
  return std::string{10, 0, static_cast<char>(service / 250), static_cast<char>(service % 250 + 1)};
}
std::string IpText(int service) {
  return "10.0." + std::to_string(service / 250) + "." + std::to_string(service % 250 + 1);
}

// The reference: independent of the processor's code; counts only.
struct RefCounts {
  uint64_t requests = 0, s4xx = 0, s5xx = 0, latency_count = 0, packets_out = 0, retransmits = 0,
           connects_ok = 0;
};
using RefKey = std::pair<int64_t, std::string>;  // window start, canonical "kind|k=v|k=v…"

struct Reference {
  int window_s, lateness_s;
  std::map<int, int64_t> max_ns;  // per partition
  std::map<RefKey, RefCounts> windows;
  uint64_t late = 0;

  // Returns the counts to update, or null when the event is late.
  RefCounts* At(int partition, int64_t t_ns, const std::string& key) {
    const int64_t w = window_s * kNs;
    const int64_t start = t_ns - t_ns % w;
    int64_t& mx = max_ns[partition];
    if (start + w <= mx - lateness_s * kNs) {
      late++;
      return nullptr;
    }
    mx = std::max(mx, t_ns);
    return &windows[{start / kNs, key}];
  }
};

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Produce a known stream of event batches; optionally write the expected windows"};
  app.add_option("--brokers", f.brokers)->required();
  app.add_option("--topic", f.topic);
  app.add_option("--partitions", f.partitions);
  app.add_option("--machines", f.machines);
  app.add_option("--services", f.services);
  app.add_option("--rounds", f.rounds);
  app.add_option("--events-per-batch", f.events_per_batch);
  app.add_option("--late", f.late, "Fraction of events beyond the grace period");
  app.add_option("--seed", f.seed);
  app.add_option("--window-s", f.window_s);
  app.add_option("--lateness-s", f.lateness_s);
  app.add_option("--reference", f.reference, "Write the expected windows here (JSON lines)");
  app.add_option("--pace-ms", f.pace_ms,
                 "Wall-clock milliseconds between rounds, to spread the stream over time");
  CLI11_PARSE(app, argc, argv);

  auto producer = faultline::kafka::Create(RD_KAFKA_PRODUCER, "Kafka producer",
                                           {{"bootstrap.servers", f.brokers},
                                            {"enable.idempotence", "true"},
                                            {"compression.codec", "lz4"},
                                            {"linger.ms", "20"}});
  if (!producer.ok()) {
    std::cerr << "event_generator: " << producer.status().message() << "\n";
    return producer.status().code() == faultline::StatusCode::kInvalidArgument ? 2 : 1;
  }
  rd_kafka_t* rk = *producer;

  std::mt19937_64 rng(f.seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::lognormal_distribution<double> latency(std::log(2e6), 0.8);
  Reference ref{f.window_s, f.lateness_s, {}, {}, 0};
  std::map<int, uint64_t> per_partition;
  uint64_t events = 0;
  std::string bytes;

  for (int round = 0; round < f.rounds; ++round) {
    if (f.pace_ms > 0 && round > 0) {
      rd_kafka_poll(rk, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(f.pace_ms));
    }
    const int64_t tick_ns = f.start_s * kNs + int64_t(round) * f.round_ms * 1'000'000;
    for (int m = 0; m < f.machines; ++m) {
      const std::string node = "node-" + std::to_string(m);
      const int partition = m % f.partitions;
      std::vector<int> local;
      for (int s = m; s < f.services; s += f.machines) local.push_back(s);
      if (local.empty()) continue;
      faultline::v1::EventBatch batch;
      batch.set_schema_version(1);
      batch.mutable_node()->set_name(node);
      batch.set_sequence(static_cast<uint64_t>(round));
      for (int s : local) {
        auto* p = batch.add_processes();
        p->set_pid(static_cast<uint32_t>(1000 + s));
        p->set_comm("svc-" + std::to_string(s));
      }
      for (int e = 0; e < f.events_per_batch; ++e) {
        const int s = local[static_cast<size_t>(rng() % local.size())];
        const int callee = (s + 1) % f.services;
        // Out of order within 2 s, or late by 6..20 s beyond the newest event.
        int64_t t = tick_ns - static_cast<int64_t>(u(rng) * 2e9);
        if (u(rng) < f.late)
          t = tick_ns - f.lateness_s * kNs - static_cast<int64_t>((1 + u(rng) * 15) * 1e9);
        t = std::max<int64_t>(t, 0);
        auto* ev = batch.add_events();
        ev->set_time_unix_ns(static_cast<uint64_t>(t));
        ev->set_pid(static_cast<uint32_t>(1000 + s));
        const std::string svc = "svc-" + std::to_string(s);
        const std::string instance = node + "/" + std::to_string(1000 + s);
        const double kind = u(rng);
        const uint32_t ephemeral = 40000 + static_cast<uint32_t>(rng() % 20000);
        auto* c = ev->mutable_connection();
        if (kind < 0.85) {
          const bool server = kind < 0.6;
          const uint32_t status = u(rng) < 0.95 ? 200 : (u(rng) < 0.6 ? 404 : 503);
          const std::string path = "/api/" + std::to_string(rng() % 1000);
          const bool complete = u(rng) > 0.01;
          auto* h = ev->mutable_http();
          h->set_role(server ? faultline::v1::ROLE_SERVER : faultline::v1::ROLE_CLIENT);
          h->set_method("GET"), h->set_path(path), h->set_status(status);
          h->set_latency_ns(static_cast<uint64_t>(latency(rng)));
          h->set_outcome(complete ? faultline::v1::HttpExchange::OUTCOME_COMPLETE
                                  : faultline::v1::HttpExchange::OUTCOME_CONNECTION_CLOSED);
          std::string key;
          if (server) {
            c->mutable_local()->set_addr(Ip(s)), c->mutable_local()->set_port(8080);
            c->mutable_remote()->set_addr(Ip((s + f.services - 1) % f.services));
            c->mutable_remote()->set_port(ephemeral);
            key = "service|endpoint=GET /api/:id|instance=" + instance + "|machine=" + node +
                  "|service=" + svc;
            if (auto* r = ref.At(partition, t, key)) {
              // the listener series shares the event's window
              auto& l = ref.windows[{
                  t / kNs - (t / kNs) % f.window_s,
                  "listener|address=" + IpText(s) + ":8080|machine=" + node + "|service=" + svc}];
              l.requests++;
              r->requests++, r->s4xx += status == 404, r->s5xx += status == 503,
                  r->latency_count += complete;
            }
          } else {
            c->mutable_local()->set_addr(Ip(s)), c->mutable_local()->set_port(ephemeral);
            c->mutable_remote()->set_addr(Ip(callee)), c->mutable_remote()->set_port(8080);
            key = "edge|callee=" + IpText(callee) + ":8080|caller=" + svc +
                  "|endpoint=GET /api/:id|instance=" + instance + "|machine=" + node +
                  "|side=client";
            if (auto* r = ref.At(partition, t, key)) {
              r->requests++, r->s4xx += status == 404, r->s5xx += status == 503,
                  r->latency_count += complete;
            }
          }
        } else {
          c->mutable_local()->set_addr(Ip(s)), c->mutable_local()->set_port(ephemeral);
          c->mutable_remote()->set_addr(Ip(callee)), c->mutable_remote()->set_port(8080);
          const std::string key = "edge|callee=" + IpText(callee) + ":8080|caller=" + svc +
                                  "|instance=" + instance + "|machine=" + node + "|side=client";
          if (kind < 0.95) {
            auto* fl = ev->mutable_flow_stats();
            const uint64_t packets = 1 + rng() % 100, retrans = rng() % 3;
            fl->set_interval_ns(1'000'000'000), fl->set_packets_out(packets),
                fl->set_bytes_out(packets * 1400);
            fl->set_packets_in(packets), fl->set_bytes_in(packets * 200),
                fl->set_retransmits(retrans);
            fl->set_srtt_us(100 + static_cast<uint32_t>(rng() % 500));
            if (auto* r = ref.At(partition, t, key))
              r->packets_out += packets, r->retransmits += retrans;
          } else {
            auto* tc = ev->mutable_tcp_connect();
            tc->set_result(faultline::v1::TcpConnect::RESULT_ESTABLISHED);
            tc->set_duration_ns(100'000 + rng() % 1'000'000);
            if (auto* r = ref.At(partition, t, key)) r->connects_ok++;
          }
        }
        events++;
      }
      batch.SerializeToString(&bytes);
      while (true) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(f.topic.c_str()), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(node.data(), node.size()),
            RD_KAFKA_V_VALUE(bytes.data(), bytes.size()), RD_KAFKA_V_TIMESTAMP(tick_ns / 1'000'000),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          rd_kafka_poll(rk, 10);
          continue;
        }
        if (e) {
          std::cerr << "produce: " << rd_kafka_err2str(e) << "\n";
          return 1;
        }
        break;
      }
      per_partition[partition]++;
      rd_kafka_poll(rk, 0);
    }
  }
  if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::cerr << "flush: " << rd_kafka_outq_len(rk) << " messages undelivered\n";
    return 1;
  }
  rd_kafka_destroy(rk);

  if (!f.reference.empty()) {
    std::ofstream out(f.reference);
    for (const auto& [k, c] : ref.windows) {
      nlohmann::ordered_json j;
      j["start"] = k.first;
      j["key"] = k.second;
      j["requests"] = c.requests, j["status_4xx"] = c.s4xx, j["status_5xx"] = c.s5xx;
      j["latency_count"] = c.latency_count;
      j["packets_out"] = c.packets_out, j["retransmits"] = c.retransmits,
      j["connects_ok"] = c.connects_ok;
      out << j.dump() << "\n";
    }
  }
  for (const auto& [p, n] : per_partition)
    std::cout << "partition=" << p << " messages=" << n << "\n";
  std::cout << "events=" << events << " late=" << ref.late << std::endl;
  return 0;
}
