// How many series one live-diagnosis instance sustains: window records of a synthetic system
// (SERVICES services in a binary call tree behind one load generator, one machine per 10
// services; every series split into partials over two input partitions, as the stream publishes
// them) go through LiveDiagnosis::Apply and Advance, and every window's state changes through a
// real RocksDB write batch on disk, as `faultline diagnose` commits them. Record generation is not
// timed. Prints per-window cost, window records and detector series per second, and the resident
// memory per watched series once the lookback (180 s) is full.
//
// Usage: diagnosis_throughput SERVICES WINDOWS STATE_DIR
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "faultline/diagnosis/live.h"
#include "faultline/model/window_record.h"
#include "metrics.pb.h"

namespace {

using namespace faultline;

long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}

model::SeriesKey Key(EntityKind kind, std::vector<std::pair<std::string, std::string>> dims) {
  std::sort(dims.begin(), dims.end());
  return model::SeriesKey{kind, std::move(dims)};
}

std::vector<std::string> Records(int services, int64_t start, std::mt19937_64* rng) {
  std::uniform_real_distribution<double> noise(0.9, 1.1);
  std::vector<std::string> out;
  auto emit = [&](const model::StoredWindow& w) {
    for (int p = 0; p < 2; ++p) {
      model::StoredWindow part = w;
      part.stats.requests = p == 0 ? w.stats.requests / 2 : w.stats.requests - w.stats.requests / 2;
      if (p == 1) part.stats.latency_ns = model::LatencySketch();
      v1::WindowRecord r;
      model::ToWindowRecord(part, 5, p, &r);
      out.push_back(r.SerializeAsString());
    }
  };
  auto requests = [&](double ms) {
    model::WindowStats s;
    s.requests = 100;
    for (int i = 0; i < 100; ++i) s.latency_ns.Add(ms * 1e6 * noise(*rng));
    return s;
  };
  auto name = [](int i) { return "svc" + std::to_string(i); };
  auto addr = [](int i) {
    return "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":80";
  };
  for (int i = 0; i < services; ++i) {
    const std::string machine = "m" + std::to_string(i / 10);
    model::StoredWindow s;
    s.start_s = start;
    s.key = Key(EntityKind::kService, {{"service", name(i)},
                                       {"endpoint", "GET /"},
                                       {"instance", name(i) + "-1"},
                                       {"machine", machine}});
    s.stats = requests(5);
    emit(s);
    model::StoredWindow l;
    l.start_s = start;
    l.key = Key(EntityKind::kListener,
                {{"service", name(i)}, {"address", addr(i)}, {"machine", machine}});
    l.stats.requests = 100;
    emit(l);
    const std::string caller = i == 0 ? "loadgen" : name((i - 1) / 2);
    model::StoredWindow e;
    e.start_s = start;
    e.key = Key(EntityKind::kEdge, {{"caller", caller},
                                    {"callee", addr(i)},
                                    {"endpoint", "GET /"},
                                    {"instance", caller + "-1"},
                                    {"machine", machine},
                                    {"side", "client"}});
    e.stats = requests(5.2);
    e.stats.rtt_samples = 10, e.stats.rtt_us_sum = 400;
    emit(e);
  }
  for (int m = 0; m * 10 < services; ++m) {
    model::StoredWindow w;
    w.start_s = start;
    w.key = Key(EntityKind::kMachine, {{"machine", "m" + std::to_string(m)}});
    w.stats.resource_samples = 5;
    w.stats.cpu_total_ns = 5 * 2'000'000'000ull;
    w.stats.cpu_busy_ns = static_cast<uint64_t>(0.3 * noise(*rng) * w.stats.cpu_total_ns);
    for (int i = 0; i < 50; ++i) w.stats.runq_ns.Add(50'000 * noise(*rng));
    emit(w);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: diagnosis_throughput SERVICES WINDOWS STATE_DIR\n");
    return 2;
  }
  const int services = std::atoi(argv[1]), windows = std::atoi(argv[2]);
  rocksdb::Options ro;
  ro.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (rocksdb::Status s = rocksdb::DB::Open(ro, argv[3], &raw); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  diagnosis::LiveOptions o;
  o.max_series = 10'000'000;
  diagnosis::LiveDiagnosis live(o, &fta::DefaultFaultTrees());
  std::mt19937_64 rng(1);
  const long rss0 = RssKiB();
  double busy_s = 0, busy_steady_s = 0;
  uint64_t records = 0, evaluations_steady = 0, records_steady = 0;
  const int steady_from = 40;  // the lookback (36 windows) is full from here
  long rss_full = 0;
  int64_t start = 1'800'000'000;
  for (int w = 0; w < windows; ++w, start += 5) {
    const std::vector<std::string> batch = Records(services, start, &rng);
    const uint64_t evals_before = live.counters().evaluations;
    const auto t0 = std::chrono::steady_clock::now();
    for (const std::string& r : batch) (void)live.Apply(r);
    (void)live.Advance();
    std::vector<diagnosis::LiveDiagnosis::Change> changes;
    live.TakeChanges(&changes);
    rocksdb::WriteBatch wb;
    for (const auto& [k, v] : changes) v ? (void)wb.Put(k, *v) : (void)wb.Delete(k);
    (void)db->Write(rocksdb::WriteOptions(), &wb);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    busy_s += s;
    records += batch.size();
    if (w >= steady_from) {
      busy_steady_s += s;
      records_steady += batch.size();
      evaluations_steady += live.counters().evaluations - evals_before;
    }
    if (w == steady_from) rss_full = RssKiB();
  }
  const long rss_end = RssKiB();
  const int steady = windows - steady_from;
  std::printf("services %d  window records per window %zu  watched series %zu  windows %d\n",
              services, Records(services, 0, &rng).size(), live.watched_series(), windows);
  std::printf(
      "per window (steady, lookback full): %.1f ms  ->  %.0f window records/s, %.0f series "
      "judged/s\n",
      1e3 * busy_steady_s / steady, records_steady / busy_steady_s,
      evaluations_steady / busy_steady_s);
  std::printf("a 5 s window's work takes %.2f%% of one core\n", 100 * busy_steady_s / steady / 5);
  std::printf(
      "rss: %ld KiB at start, %ld KiB with the lookback full, %ld KiB at the end: %.1f KiB per "
      "watched series\n",
      rss0, rss_full, rss_end,
      static_cast<double>(rss_end - rss0) / std::max<size_t>(1, live.watched_series()));
  std::printf(
      "all windows: %.2f s busy, %llu records, %llu incidents opened (fault-free: expected 0)\n",
      busy_s, static_cast<unsigned long long>(records),
      static_cast<unsigned long long>(live.counters().opened));
  return 0;
}
