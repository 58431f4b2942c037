// Liveness and readiness of a faultline process, for the /healthz and /readyz endpoints that
// Kubernetes probes (and people) ask.
//
// Liveness: the process's main loop calls Beat() every iteration; /healthz answers 200 "ok"
// while the last beat is at most `stall` old, else 503 naming how long the loop has been stuck
// (a stuck loop is what a restart fixes). Readiness: the process says when it serves (the agent
// once its programs are attached, the stream once it has opened what it was assigned, the
// diagnosis once its state is loaded) and why not otherwise; /readyz answers 200 "ready" or 503
// with the reason.
//
// Thread-safe: Beat and SetReady from the main loop, the answers from a server's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <utility>

namespace faultline {

class Health {
 public:
  using Clock = std::chrono::steady_clock;
  // Default stall: 30 s (a loop that polls every 20-100 ms and commits every second).
  explicit Health(std::chrono::milliseconds stall = std::chrono::seconds(30));

  void Beat(Clock::time_point now = Clock::now()) {
    last_beat_ns_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  }
  void SetReady(bool ready, std::string why_not = "");

  // (HTTP status, body) for /healthz and /readyz.
  std::pair<int, std::string> Liveness(Clock::time_point now = Clock::now()) const;
  std::pair<int, std::string> Readiness() const;

 private:
  std::chrono::milliseconds stall_;
  std::atomic<int64_t> last_beat_ns_;
  mutable std::mutex mu_;
  bool ready_ = false;
  std::string why_not_ = "starting";
};

}  // namespace faultline
