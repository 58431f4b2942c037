// fill_state: builds a large stream state directory for bench/stream_recovery.sh, through the same
// PartitionState code the processor uses, then waits to be SIGKILLed (a crash: memtables are not
// flushed, the write-ahead log must be replayed on restart).
//   fill_state DIR PARTITIONS TARGET_BYTES   prints "filled bytes=… series_windows=…", then waits
//   fill_state --reopen DIR PARTITIONS [--serial]   opens every partition as a restart does
//                                                   (OpenAll; --serial: one after another)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "events.pb.h"
#include "faultline/stream/entity_namer.h"
#include "faultline/stream/partition_state.h"

using faultline::stream::ApplyCounters;
using faultline::stream::EntityNamer;
using faultline::stream::PartitionState;
using faultline::stream::WindowOptions;

namespace {

uint64_t DirBytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

WindowOptions Options() {
  WindowOptions o;
  o.retention_s = 30 * 86400;  // keep every closed window: the state only grows
  o.max_endpoints_per_service = 16;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const EntityNamer namer = EntityNamer::Create({}).value();
  if ((argc == 4 || argc == 5) && std::string(argv[1]) == "--reopen") {
    const int partitions = std::stoi(argv[3]);
    // One thread: the partitions one after another, as before OpenAll.
    const size_t threads = argc == 5 && std::string(argv[4]) == "--serial" ? 1 : 0;
    std::vector<int32_t> wanted;
    for (int p = 0; p < partitions; ++p) wanted.push_back(p);
    const auto t0 = std::chrono::steady_clock::now();
    auto opened = PartitionState::OpenAll(
        wanted,
        [&](int32_t p) { return PartitionState::Open(argv[2], "faultline.events", p, Options(), namer); },
        threads);
    const double total_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    size_t series = 0;
    for (int p = 0; p < partitions; ++p) {
      auto& o = opened[static_cast<size_t>(p)];
      if (!o.state.ok()) {
        std::fprintf(stderr, "%s\n", o.state.status().message().c_str());
        return 1;
      }
      series += (*o.state)->open_series();
      std::printf("partition=%d open_ms=%.1f next_offset=%lld open_series=%zu\n", p, o.open_ms,
                  static_cast<long long>((*o.state)->next_offset()), (*o.state)->open_series());
    }
    std::printf("reopen_ms=%.1f open_series=%zu threads=%s\n", total_ms, series,
                threads == 1 ? "1" : "per core");
    return 0;
  }
  if (argc != 4) {
    std::fprintf(
        stderr,
        "usage: fill_state DIR PARTITIONS TARGET_BYTES | fill_state --reopen DIR PARTITIONS "
        "[--serial]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int partitions = std::stoi(argv[2]);
  const uint64_t target = std::stoull(argv[3]);
  std::vector<std::unique_ptr<PartitionState>> states;
  for (int p = 0; p < partitions; ++p) {
    states.push_back(PartitionState::Open(dir, "faultline.events", p, Options(), namer).value());
  }
  std::mt19937_64 rng(5);
  ApplyCounters counters;
  std::string bytes;
  const int64_t t0 = 1'700'000'000LL * 1'000'000'000LL;
  uint64_t size = 0;
  for (int64_t round = 0; size < target; ++round) {
    for (int p = 0; p < partitions; ++p) {
      faultline::v1::EventBatch batch;
      batch.mutable_node()->set_name("node-" + std::to_string(p));
      for (int s = 0; s < 500; ++s) {
        auto* proc = batch.add_processes();
        proc->set_pid(static_cast<uint32_t>(1000 + s));
        proc->set_comm("svc-" + std::to_string(p * 500 + s));
      }
      for (int e = 0; e < 4000; ++e) {
        auto* ev = batch.add_events();
        ev->set_time_unix_ns(static_cast<uint64_t>(t0 + round * 1'000'000'000LL +
                                                   static_cast<int64_t>(rng() % 1'000'000'000)));
        const uint32_t s = static_cast<uint32_t>(rng() % 500);
        ev->set_pid(1000 + s);
        auto* c = ev->mutable_connection();
        c->mutable_local()->set_addr(
            std::string{10, 1, static_cast<char>(p), static_cast<char>(s % 250)});
        c->mutable_local()->set_port(8000 + s);
        c->mutable_remote()->set_addr(std::string{10, 2, 0, 1});
        c->mutable_remote()->set_port(40000 + static_cast<uint32_t>(rng() % 20000));
        auto* h = ev->mutable_http();
        h->set_role(faultline::v1::ROLE_SERVER);
        h->set_method("GET");
        h->set_path("/api/v" + std::to_string(rng() % 16) + "/items/" +
                    std::to_string(rng() % 100000));
        h->set_status(rng() % 50 ? 200 : 500);
        h->set_latency_ns(1'000'000 + rng() % 50'000'000);
      }
      batch.SerializeToString(&bytes);
      states[static_cast<size_t>(p)]->Apply(bytes, round, -1, &counters);
      if (!states[static_cast<size_t>(p)]->Commit().ok()) return 1;
      for (const auto& w : states[static_cast<size_t>(p)]->TakeOutbox()) {
        states[static_cast<size_t>(p)]->Published(w.start_s, w.key);  // as if delivered
      }
    }
    if (round % 20 == 0) size = DirBytes(dir);
  }
  std::printf("filled bytes=%llu events=%llu series_windows=%llu\n",
              static_cast<unsigned long long>(DirBytes(dir)),
              static_cast<unsigned long long>(counters.events),
              static_cast<unsigned long long>(counters.windows_closed));
  std::fflush(stdout);
  pause();  // SIGKILL arrives here: no clean close
  return 0;
}
